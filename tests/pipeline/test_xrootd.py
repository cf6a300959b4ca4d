"""Raw files over XRootD, against a real server (Debian's xrootd): a run announced with root://
URLs is processed as if its files were local; each way a remote file can be wrong, or its server
down, is one sentence in the job's reason; a server that comes back lets the waiting job go on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import FAST, assert_identical, run_server, session, shared_executor, simulate
from xrootdserver import XRootDServer, served_directory, xrootd_server

from daqsim import SimulationResult
from dqm import broker, messages
from dqm.config import Settings, load_settings
from dqm.db import queries
from dqm.db.migrate import upgrade
from dqm.db.models import FileState, JobState
from pipeline.server import JobServer, ServerOptions
from pipeline.stages import calib, processing, remote
from pipeline.stages.reading import FileNotReady, RawFile, verify_file

RUN = 4301


@dataclass
class Simulated:
    """A simulated run under a directory the XRootD server may serve, with its messages."""

    data_dir: Path
    result: SimulationResult
    sent: list[messages.Message]

    @property
    def raw(self) -> Path:
        return self.data_dir / "raw"

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.data_dir))


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulated]:
    with served_directory() as served:
        data_dir = served / "data"
        settings = load_settings(
            env={
                "DQM_DATA_DIR": str(data_dir),
                "DQM_DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('x') / 'unused.sqlite'}",
            }
        )
        sent: list[messages.Message] = []
        result = simulate(settings, RUN, n_files=2, events=150, publish=lambda *m: sent.extend(m))
        yield Simulated(data_dir, result, sent)


@pytest.fixture(scope="module")
def server(simulated: Simulated) -> Iterator[XRootDServer]:
    with xrootd_server(simulated.data_dir, checksums=True) as running:
        yield running


def settings_for(tmp_path: Path, data_dir: Path, raw_roots: str) -> Settings:
    settings = load_settings(
        env={
            "DQM_DATA_DIR": str(tmp_path / "state"),
            "DQM_DATABASE_URL": f"sqlite:///{tmp_path / 'dqm.sqlite'}",
            "DQM_RAW_ROOTS": raw_roots,
        }
    )
    upgrade(settings.database_url)
    return settings


def announce(
    settings: Settings, sent: list[messages.Message], uri: Any = str, **change: Any
) -> None:
    """Publish the run's messages again, each file's URI given by ``uri(path)``, and ``change``
    applied to the file_ready fields."""
    for message in sent:
        fields = dict(message.fields)
        if message.type == "file_ready":
            fields = {**fields, "uri": uri(Path(fields["uri"])), **change}
        broker.publish(settings, messages.make(message.type, **fields))


def merged(settings: Settings, run_id: int) -> dict[str, Any]:
    """What the database holds of a run after its merge: histograms, PMT sums, kept events."""
    with session(settings) as s:
        histograms = {
            (row.stage, row.name): queries.load_histogram(row)
            for row in queries.histogram_rows(s, run_id=run_id)
        }
        stats = queries.pmt_stats_row(s, run_id=run_id)
        assert stats is not None
        return {
            "histograms": histograms,
            "pmt": queries.pmt_arrays(stats),
            "n_events": stats.n_events,
            "kept": queries.kept_events(s, run_id=run_id),
            "events": queries.run_events(s, run_id=run_id),
        }


def test_a_run_announced_with_root_urls_is_processed_as_its_local_files_are(
    simulated: Simulated, server: XRootDServer, tmp_path: Path
) -> None:
    local = settings_for(tmp_path / "local", simulated.data_dir, str(simulated.raw))
    announce(local, simulated.sent)
    run_server(local)
    url_root = server.url("raw")
    over_xrootd = settings_for(tmp_path / "remote", simulated.data_dir, url_root)
    announce(over_xrootd, simulated.sent, uri=lambda p: server.url(simulated.relative(p)))
    run_server(over_xrootd)
    with session(over_xrootd) as s:
        files = queries.files_of_run(s, run_id=RUN)
        assert [f.state for f in files] == [FileState.DONE, FileState.DONE]
        assert all(f.uri.startswith("root://127.0.0.1:") for f in files)
        assert {j.state for j in queries.list_jobs(s, run_id=RUN)} == {JobState.DONE}
    a, b = merged(local, RUN), merged(over_xrootd, RUN)
    assert a["n_events"] == b["n_events"] == simulated.result.n_events
    assert a["histograms"].keys() == b["histograms"].keys()
    for key, histogram in a["histograms"].items():
        assert np.array_equal(histogram.view(flow=True), b["histograms"][key].view(flow=True)), key
    for name, values in a["pmt"].items():
        assert np.array_equal(values, b["pmt"][name]), name
    assert a["kept"] == b["kept"]
    for name, values in a["events"].items():
        assert np.array_equal(values, b["events"][name]), name


@pytest.mark.parametrize("checksums", [True, False], ids=["server-checksum", "no-server-checksum"])
def test_processing_reads_a_remote_file_once_and_gives_the_local_result(
    simulated: Simulated, checksums: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the server's checksum the file is read where it is; without, it is copied once, its
    adler32 computed on the way, and the copy processed. Either way, the local file's result."""
    copies: list[str] = []
    copy = remote.copy_with_adler32
    monkeypatch.setattr(
        remote, "copy_with_adler32", lambda url, *a, **k: copies.append(url) or copy(url, *a, **k)
    )
    sim_file = simulated.result.files[0]
    with xrootd_server(simulated.data_dir, checksums=checksums) as running:
        url = running.url(simulated.relative(sim_file.path))
        task = processing.FileTask(
            file=RawFile(sim_file.path, RUN, 0, sim_file.size, sim_file.checksum),
            calibration=calib.CalibConstants.nominal(),
            rec_method="centroid",
            n_jobs=1,
        )
        local = processing.process_file(task)
        over_xrootd = processing.process_file(replace(task, file=replace(task.file, path=url)))
        assert_identical(local, over_xrootd)
        assert copies == ([] if checksums else [url])
        assert remote.checksum(url) == (sim_file.checksum if checksums else None)
        assert remote.size(url) == sim_file.size
        verify_file(url, sim_file.size, sim_file.checksum)
        with pytest.raises(FileNotReady, match=f"has adler32 {sim_file.checksum}, 0badc0de was"):
            processing.process_file(
                replace(task, file=replace(task.file, path=url, checksum="0badc0de"))
            )


def test_each_wrong_remote_file_is_one_sentence_in_its_jobs_reason(
    simulated: Simulated, server: XRootDServer, tmp_path: Path
) -> None:
    settings = settings_for(tmp_path, simulated.data_dir, server.url("raw"))
    first, second = simulated.result.files
    start, end = simulated.sent[0], simulated.sent[-1]
    ready = [m for m in simulated.sent if m.type == "file_ready"]
    broker.publish(settings, messages.make(start.type, **start.fields))
    cases = {
        # seq: (fields changed, words of the reason)
        0: ({"uri": server.url("raw/4301/4301.9.root")}, "has not arrived (yet)"),
        1: ({"size": second.size + 1}, f"has {second.size} bytes, {second.size + 1} were"),
    }
    for message in ready:
        seq = message.fields["seq"]
        fields = {
            **message.fields,
            "uri": server.url(simulated.relative(Path(message.fields["uri"]))),
            **cases[seq][0],
        }
        broker.publish(settings, messages.make("file_ready", **fields))
    # the third: a wrong checksum; the fourth: outside the allowed prefix
    bad_checksum = {**ready[0].fields, "seq": 2, "checksum": "0badc0de"}
    bad_checksum["uri"] = server.url(simulated.relative(first.path))
    broker.publish(settings, messages.make("file_ready", **bad_checksum))
    outside = {**ready[0].fields, "seq": 3, "uri": server.url("elsewhere/4301.0.root")}
    broker.publish(settings, messages.make("file_ready", **outside))
    broker.publish(settings, messages.make(end.type, **{**end.fields, "n_files": 4}))
    run_server(settings, availability_timeout_s=0.5, max_seconds=20)
    time.sleep(0.6)
    run_server(settings, availability_timeout_s=0.5, max_seconds=20)
    with session(settings) as s:
        jobs = {
            queries.get_file(s, file_id=j.file_id).seq: j
            for j in queries.list_jobs(s, run_id=RUN, kind="process_file")
        }
        assert {0, 1, 2} <= set(jobs)  # seq 3 was refused: the run end counts it missing
        for seq, (_, words) in cases.items():
            assert jobs[seq].state is JobState.TOCHECK, seq
            assert words in jobs[seq].error, (seq, jobs[seq].error)
            assert "\n" not in jobs[seq].error
        assert jobs[2].state is JobState.TOCHECK
        assert "has adler32 " in jobs[2].error and "0badc0de was announced" in jobs[2].error
        rejected = [m for m in queries.messages(s, limit=None) if m.error]
        assert any("is outside the allowed raw roots" in m.error for m in rejected)


def test_a_server_that_is_down_makes_the_job_wait_and_its_return_lets_it_go_on(
    simulated: Simulated, tmp_path: Path
) -> None:
    with xrootd_server(simulated.data_dir, checksums=True) as down:
        settings = settings_for(tmp_path, simulated.data_dir, down.url("raw"))
        down.stop()
        announce(settings, simulated.sent, uri=lambda p: down.url(simulated.relative(p)))
        options = ServerOptions(**{**FAST, "availability_timeout_s": 600})
        server = JobServer(settings, shared_executor(), options)
        server.run(once=True, max_seconds=4)
        with session(settings) as s:
            jobs = queries.list_jobs(s, run_id=RUN, kind="process_file")
            assert len(jobs) == 2
            for job in jobs:
                assert job.state is JobState.TODO
                reason = job.error or ""
                assert f"the XRootD server {down.address} does not answer" in reason, reason
                assert "\n" not in reason
        down.start()
        deadline = time.monotonic() + 90  # the client waits out its error window (5 s) first
        while time.monotonic() < deadline:
            server.run(once=True, max_seconds=5)
            with session(settings) as s:
                if {j.state for j in queries.list_jobs(s, run_id=RUN)} == {JobState.DONE}:
                    break
            time.sleep(0.5)
        with session(settings) as s:
            states = {(j.kind, j.state, j.error) for j in queries.list_jobs(s, run_id=RUN)}
            assert {state for _, state, _ in states} == {JobState.DONE}, states
            assert queries.pmt_stats_row(s, run_id=RUN).n_events == simulated.result.n_events
