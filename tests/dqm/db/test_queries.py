"""CRUD and query functions, on SQLite, MariaDB and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import hist
import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from dqm import pmtstats
from dqm.db import queries
from dqm.db.models import FileState, Histogram, Job, JobState, MessageOutcome, RunStatus
from dqm.db.session import transaction
from dqm.errors import InvalidValueError, NotFoundError

T0 = dt.datetime(2026, 11, 1, 8, 0, 0)


def add_runs(url: str) -> None:
    """Five runs: two still taking data, three ended at different times."""
    with transaction(url) as s:
        queries.add_run(
            s,
            run_id=1,
            run_type="physics",
            start_time=T0,
            end_time=T0 + dt.timedelta(hours=1),
            status="All Completed",
            n_events=1000,
            n_files=2,
        )
        queries.add_run(
            s,
            run_id=2,
            run_type="laser",
            start_time=T0 + dt.timedelta(days=5),
            end_time=T0 + dt.timedelta(days=5, hours=1),
            status=RunStatus.FAILED,
        )
        queries.add_run(
            s,
            run_id=3,
            run_type="physics",
            start_time=T0 + dt.timedelta(days=9),
            end_time=T0 + dt.timedelta(days=9, hours=2),
            status="partly completed",
        )
        queries.add_run(s, run_id=4, run_type="physics", start_time=T0 + dt.timedelta(days=10))
        queries.add_run(s, run_id=5, run_type="calibration", start_time=T0 + dt.timedelta(days=1))


def test_add_get_update_run(database: str) -> None:
    add_runs(database)
    with transaction(database) as s:
        run = queries.get_run(s, run_id=1)
        assert (run.run_type, run.status, run.n_events, run.sampling_fraction) == (
            "physics",
            RunStatus.ALL_COMPLETED,
            1000,
            1.0,
        )
        assert queries.get_run(s, run_id=4).status is RunStatus.DATA_TAKING
        queries.update_run(
            s,
            run_id=4,
            end_time=dt.datetime(2026, 11, 11, 8, 0, 0),
            status="rec running",
            comment="shifter: beam-off check",
        )
    with transaction(database) as s:
        run = queries.get_run(s, run_id=4)
        assert run.end_time == dt.datetime(2026, 11, 11, 8, 0, 0)
        assert run.status is RunStatus.REC_RUNNING
        assert run.comment == "shifter: beam-off check"


def test_bad_values_are_refused(database: str) -> None:
    add_runs(database)
    with pytest.raises(InvalidValueError, match="exists already"), transaction(database) as s:
        queries.add_run(s, run_id=1, run_type="physics", start_time=T0)
    with pytest.raises(NotFoundError, match="run 99 does not exist"), transaction(database) as s:
        queries.update_run(s, run_id=99, comment="x")
    with pytest.raises(InvalidValueError, match="not a run status"), transaction(database) as s:
        queries.update_run(s, run_id=1, status="finished")
    with (
        pytest.raises(InvalidValueError, match="before its start time"),
        transaction(database) as s,
    ):
        queries.update_run(s, run_id=1, end_time=T0 - dt.timedelta(seconds=1))
    with pytest.raises(InvalidValueError, match="not a run attribute"), transaction(database) as s:
        queries.update_run(s, run_id=1, colour="red")
    with pytest.raises(InvalidValueError, match="sampling fraction"), transaction(database) as s:
        queries.update_run(s, run_id=1, sampling_fraction=1.5)
    # Nothing of the refused changes was written.
    with transaction(database) as s:
        run = queries.get_run(s, run_id=1)
        assert (run.end_time, run.status, run.sampling_fraction) == (
            T0 + dt.timedelta(hours=1),
            RunStatus.ALL_COMPLETED,
            1.0,
        )


def test_recent_runs_order_and_filters(database: str) -> None:
    add_runs(database)
    now = T0 + dt.timedelta(days=10, hours=5)
    with transaction(database) as s:
        # Running ones first (newest start first), then by end time, newest first.
        assert [r.run_id for r in queries.recent_runs(s)] == [4, 5, 3, 2, 1]
        assert [r.run_id for r in queries.recent_runs(s, limit=3)] == [4, 5, 3]
        assert [r.run_id for r in queries.recent_runs(s, days=2, now=now)] == [4, 5, 3]
        assert [r.run_id for r in queries.recent_runs(s, status="Failed")] == [2]
        assert [r.run_id for r in queries.recent_runs(s, completed=True)] == [2, 1]
        assert [r.run_id for r in queries.recent_runs(s, run_type="physics")] == [4, 3, 1]
        assert [r.run_id for r in queries.recent_runs(s, run_type=["laser", "calibration"])] == [
            5,
            2,
        ]
        assert queries.run_types(s) == ["calibration", "laser", "physics"]


def test_files_and_jobs(database: str) -> None:
    add_runs(database)
    with transaction(database) as s:
        f0 = queries.add_file(
            s, run_id=1, seq=0, uri="raw/1/1.0.root", size=123, checksum="0a1b2c3d", n_events=500
        )
        queries.add_file(s, run_id=1, seq=1, uri="raw/1/1.1.root", state=FileState.MISSING)
        s.add(Job(kind="process_file", run_id=1, file_id=f0.id, parameters={"n_jobs": 2}))
    with pytest.raises(InvalidValueError, match="already has file 1"), transaction(database) as s:
        queries.add_file(s, run_id=1, seq=1, uri="raw/1/1.1bis.root")
    with pytest.raises(NotFoundError), transaction(database) as s:
        queries.add_file(s, run_id=77, seq=0, uri="x.root")
    with transaction(database) as s:
        files = queries.files_of_run(s, run_id=1)
        assert [(f.seq, f.state, f.checksum) for f in files] == [
            (0, FileState.ANNOUNCED, "0a1b2c3d"),
            (1, FileState.MISSING, None),
        ]
        job = s.scalars(select(Job)).one()
        assert (job.state, job.attempts, job.parameters) == (JobState.TODO, 0, {"n_jobs": 2})


def test_messages_are_unique_by_id(database: str) -> None:
    with transaction(database) as s:
        queries.record_message(
            s,
            payload='{"x": 1}',
            outcome=MessageOutcome.ACCEPTED,
            message_id="m-1",
            type="run_start",
            run_id=1,
        )
        # Rejected messages without a valid id can be many.
        queries.record_message(
            s, payload="not json", outcome=MessageOutcome.REJECTED, error="not JSON"
        )
        queries.record_message(s, payload="{}", outcome=MessageOutcome.REJECTED, error="no schema")
    with transaction(database) as s:
        assert queries.message_seen(s, message_id="m-1")
        assert not queries.message_seen(s, message_id="m-2")
        assert [m.error for m in queries.messages(s, outcome=MessageOutcome.REJECTED)] == [
            "no schema",
            "not JSON",
        ]
    with pytest.raises(IntegrityError), transaction(database) as s:
        queries.record_message(s, payload="{}", outcome=MessageOutcome.ACCEPTED, message_id="m-1")


def test_histograms_round_trip_and_replace(database: str) -> None:
    add_runs(database)
    rng = np.random.default_rng(1)
    # 17,612 x 20 bins of doubles: far more than a 64 kB BLOB holds.
    big = hist.Hist(
        hist.axis.Integer(0, 17_612, name="pmt"), hist.axis.Regular(20, 0, 1000, name="t")
    )
    big.fill(rng.integers(0, 17_612, 100_000), rng.uniform(0, 1000, 100_000))
    weighted = hist.Hist(
        hist.axis.Regular(50, 0, 10, name="energy", label="E [MeV]"), storage=hist.storage.Weight()
    )
    weighted.fill(rng.exponential(2, 1000), weight=rng.uniform(0.5, 1.5, 1000))
    with transaction(database) as s:
        f0 = queries.add_file(s, run_id=1, seq=0, uri="raw/1/1.0.root")
        queries.save_histogram(
            s,
            run_id=1,
            file_id=f0.id,
            stage="calib",
            name="pmt_time",
            histogram=big,
            provenance={"code_version": "0.1.0", "events_used": 100_000},
        )
        queries.save_histogram(
            s, run_id=1, file_id=None, stage="rec", name="energy", histogram=weighted
        )
        file_id = f0.id
    with transaction(database) as s:
        (row,) = queries.histogram_rows(s, run_id=1, file_id=file_id)
        assert queries.load_histogram(row) == big
        assert row.entries == 100_000
        assert row.provenance == {"code_version": "0.1.0", "events_used": 100_000}
        (merged,) = queries.histogram_rows(s, run_id=1, stage="rec")
        assert queries.load_histogram(merged) == weighted
    # Saving again replaces: same number of rows, new content.
    with transaction(database) as s:
        queries.save_histogram(
            s, run_id=1, file_id=None, stage="rec", name="energy", histogram=weighted * 2
        )
    with transaction(database) as s:
        (merged,) = queries.histogram_rows(s, run_id=1, stage="rec")
        assert queries.load_histogram(merged) == weighted * 2
        assert s.scalar(select(func.count()).select_from(Histogram)) == 2


def test_pmt_stats_and_calibrations(database: str) -> None:
    add_runs(database)
    rng = np.random.default_rng(2)
    arrays = {name: rng.uniform(0, 100, 17_612) for name in pmtstats.PMT_ARRAYS}
    with transaction(database) as s:
        queries.save_pmt_stats(
            s, run_id=1, file_id=None, n_events=1000, livetime_ns=1e6, arrays=arrays
        )
        queries.save_pmt_stats(
            s, run_id=1, file_id=None, n_events=1000, livetime_ns=1e6, arrays=arrays
        )
    with transaction(database) as s:
        row = queries.pmt_stats_row(s, run_id=1)
        assert row is not None and row.n_pmts == 17_612
        loaded = queries.pmt_arrays(row)
        for name in pmtstats.PMT_ARRAYS:
            np.testing.assert_array_equal(loaded[name], arrays[name])
    with pytest.raises(InvalidValueError, match="lack"), transaction(database) as s:
        queries.save_pmt_stats(s, run_id=1, file_id=None, n_events=1, livetime_ns=1.0, arrays={})

    gains = rng.normal(100, 10, 17_612)
    with transaction(database) as s:
        v1 = queries.add_calibration(
            s,
            valid_from_run=1,
            gains=gains,
            time_offsets=np.zeros(17_612),
            pmt_status=np.zeros(17_612),
            source_run=1,
        )
        v2 = queries.add_calibration(
            s,
            valid_from_run=3,
            gains=gains * 1.01,
            time_offsets=np.ones(17_612),
            pmt_status=np.zeros(17_612),
            source_run=3,
        )
        assert (v1.version, v2.version) == (1, 2)
    with transaction(database) as s:
        assert queries.calibration_for_run(s, run_id=0) is None
        assert queries.calibration_for_run(s, run_id=2).version == 1
        assert queries.calibration_for_run(s, run_id=4).version == 2


def test_delete_run_removes_everything_of_it(database: str) -> None:
    add_runs(database)
    h = hist.Hist(hist.axis.Regular(4, 0, 4))
    with transaction(database) as s:
        f = queries.add_file(s, run_id=3, seq=0, uri="raw/3/3.0.root")
        s.add(Job(kind="process_file", run_id=3, file_id=f.id))
        queries.save_histogram(s, run_id=3, file_id=f.id, stage="calib", name="nhits", histogram=h)
        queries.save_histogram(s, run_id=3, file_id=None, stage="calib", name="nhits", histogram=h)
    with transaction(database) as s:
        queries.delete_run(s, run_id=3)
    with transaction(database) as s:
        assert queries.find_run(s, run_id=3) is None
        assert s.scalar(select(func.count()).select_from(Histogram)) == 0
        assert s.scalar(select(func.count()).select_from(Job)) == 0
        assert [r.run_id for r in queries.recent_runs(s)] == [4, 5, 2, 1]
    with pytest.raises(NotFoundError), transaction(database) as s:
        queries.delete_run(s, run_id=3)
