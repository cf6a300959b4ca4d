"""dqm simulate --notify, then the job server: runs from Data Taking to All Completed, on every
database backend and on both brokers (conftest.PAIRS)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import uproot
from helpers import make_settings, run_server, session, simulate

from dqm import keptevents, pmtstatus
from dqm.db import queries
from dqm.db.models import FileState, JobState, MessageOutcome, RunStatus

#: PMTs the physics run has dead, and a mask of them valid from that run on.
DEAD = [17, 4242]


def test_runs_go_from_data_taking_to_all_completed(
    tmp_path: Path, database_and_broker: tuple[str, str, str]
) -> None:
    settings = make_settings(tmp_path, *database_and_broker)
    with session(settings) as s:
        queries.add_pmt_mask(
            s, valid_from_run=301, pmts=np.array(DEAD), origin={"kind": "edited"}, user="expert"
        )
    physics = simulate(settings, 301, n_files=3, events=80, faults=("dead:ids=17;4242",))
    laser = simulate(settings, 302, n_files=1, events=40, run_type="laser")

    run_server(settings)

    with session(settings) as s:
        for result in (physics, laser):
            run = queries.get_run(s, run_id=result.run_id)
            assert run.status is RunStatus.ALL_COMPLETED
            assert (run.n_files, run.n_events) == (len(result.files), result.n_events)
            files = queries.files_of_run(s, run_id=result.run_id)
            assert [f.state for f in files] == [FileState.DONE] * len(result.files)
            jobs = queries.list_jobs(s, run_id=result.run_id)
            assert {j.state for j in jobs} == {JobState.DONE}
            assert sorted(j.kind for j in jobs if j.kind == "process_file") == [
                "process_file"
            ] * len(result.files)
            # Every summed histogram of the run is the sum of its files'; the PMT sums too.
            merged_rows = {r.name: r for r in queries.histogram_rows(s, run_id=result.run_id)}
            assert set(merged_rows) >= {
                "charge_pe",
                "total_pe",
                "nhits",
                "hit_time",
                "occupancy",
                "dark_rate",
            }
            for name, row in merged_rows.items():
                if name in ("dark_rate", "hit_rate"):
                    continue  # derived from the summed PMT statistics, not summed
                per_file = [
                    queries.load_histogram(r)
                    for f in files
                    for r in queries.histogram_rows(
                        s, run_id=result.run_id, file_id=f.id, names=[name]
                    )
                ]
                assert queries.load_histogram(row) == sum(per_file[1:], per_file[0]), name
                assert row.provenance["n_files"] == len(result.files)
                assert row.provenance["calibration_version"] == 0  # nominal: no calibration stored
                assert row.provenance["mask_version"] == 1
            stats = queries.pmt_arrays(queries.pmt_stats_row(s, run_id=result.run_id))
            per_file_stats = [
                queries.pmt_arrays(queries.pmt_stats_row(s, run_id=result.run_id, file_id=f.id))
                for f in files
            ]
            np.testing.assert_array_equal(
                stats["hit_count"], sum(p["hit_count"] for p in per_file_stats)
            )
            merged = queries.load_histogram(merged_rows["nhits"])
            assert merged.sum(flow=True) == result.n_events
            assert (
                stats["hit_count"].sum() == queries.load_histogram(merged_rows["occupancy"]).sum()
            )
            # ... and it is the histogram of the raw data.
            counts = np.concatenate(
                [uproot.open(f.path)["events"]["nhits"].array(library="np") for f in result.files]
            )
            np.testing.assert_array_equal(
                merged.values(flow=True),
                np.histogram(counts, bins=np.r_[-np.inf, np.linspace(0, 25_000, 251), np.inf])[0],
            )
        # The PMT status of each run is stored with its merge; one PMT's history reads it back.
        status = queries.pmt_status(s, run_id=301)
        assert status is not None and status.run_type == "physics"
        codes = pmtstatus.decode_codes(status.codes)
        assert len(codes) == status.n_pmts and status.n_dead >= len(DEAD)
        assert codes[DEAD].tolist() == [pmtstatus.S_DEAD] * len(DEAD)
        alive = int(np.flatnonzero(codes == pmtstatus.S_NORMAL)[0])
        stats_row = queries.pmt_stats_row(s, run_id=301)
        sums = queries.pmt_arrays(stats_row)
        for pmt in (DEAD[1], alive):
            (row,) = queries.pmt_history(s, pmt_id=pmt, run_type="physics")
            assert row.run_id == 301
            assert row.status == ("dead" if pmt in DEAD else "normal")
            # (kept as float32 with the status)
            hit_rate = sums["fired_events"][pmt] / stats_row.n_events
            dark_rate = sums["dark_count"][pmt] / (stats_row.livetime_ns * 1e-9)
            assert row.hit_rate == pytest.approx(hit_rate, rel=1e-6)
            assert row.dark_rate_hz == pytest.approx(dark_rate, rel=1e-6)
        assert [r.run_id for r in queries.pmt_history(s, pmt_id=alive)] == [301, 302]
        assert queries.first_dead_run(s, pmt_id=DEAD[0]) == 301
        assert queries.first_dead_run(s, pmt_id=alive) is None
        # A few raw events of each file are kept for the event display: the first 10 physics
        # events and the 10 of highest energy, with their PMTs' charges and times.
        stored = queries.kept_events(s, run_id=301)
        assert [seq for seq, _ in stored] == [0, 1, 2]
        events = queries.run_events(s, run_id=301)
        for seq, data in stored:
            kept = keptevents.decode(data, seq=seq)
            assert 10 <= len(kept) <= 20 and {e.seq for e in kept} == {seq}
            first = [e for e in kept if "first" in e.reasons]
            highest = sorted(
                (e for e in kept if "highest" in e.reasons), key=lambda e: -e.energy_mev
            )
            assert len(first) == 10 and len(highest) == 10
            assert [e.entry for e in first] == sorted(e.entry for e in first)
            assert all(set(e.pmt_id) <= set(range(17_612)) and len(e.pmt_id) for e in kept)
            energies = np.asarray([e.energy_mev for e in highest], dtype=np.float32)
            assert np.isin(energies, events["energy_mev"]).all()
        accepted = queries.messages(s, outcome=MessageOutcome.ACCEPTED, limit=None)
        assert len(accepted) == 2 + 2 + 3 + 1  # run_start, run_end of each, one file_ready per file
        assert not queries.messages(s, outcome=MessageOutcome.REJECTED)


def test_status_follows_the_run(tmp_path: Path, sqlite_database: str) -> None:
    settings = make_settings(tmp_path, sqlite_database)
    from dqm import broker, messages

    broker.publish(
        settings,
        messages.make(
            "run_start",
            run_id=7,
            run_type="physics",
            start_time="2026-11-01T08:00:00",
            detector="CD",
        ),
    )
    run_server(settings)
    with session(settings) as s:
        assert queries.get_run(s, run_id=7).status is RunStatus.DATA_TAKING
    result = simulate(settings, 8, n_files=2, events=30, notify=False)
    broker.publish(
        settings,
        messages.make(
            "run_start",
            run_id=8,
            run_type="physics",
            start_time="2026-11-01T09:00:00",
            detector="CD",
        ),
    )
    f0 = result.files[0]
    broker.publish(
        settings,
        messages.make(
            "file_ready",
            run_id=8,
            seq=0,
            uri=str(f0.path),
            size=f0.size,
            checksum=f0.checksum,
            n_events=f0.n_events,
        ),
    )
    broker.publish(
        settings,
        messages.make("run_end", run_id=8, end_time="2026-11-01T10:00:00", n_files=2, n_events=60),
    )
    run_server(settings)
    with session(settings) as s:
        # One of the two files is done, the other was never announced: work is still pending.
        assert queries.get_run(s, run_id=8).status is RunStatus.PARTLY_COMPLETED
    f1 = result.files[1]
    broker.publish(
        settings,
        messages.make(
            "file_ready",
            run_id=8,
            seq=1,
            uri=str(f1.path),
            size=f1.size,
            checksum=f1.checksum,
            n_events=f1.n_events,
        ),
    )
    run_server(settings)
    with session(settings) as s:
        assert queries.get_run(s, run_id=8).status is RunStatus.ALL_COMPLETED
