"""The scheduler's state machine: waiting for data, TOCHECK, retries with backoff, a vanished worker
or job server, silent jobs, the concurrency limit, and retrying by hand."""

from __future__ import annotations

import datetime as dt
import itertools
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import flaky, make_settings, run_server, session, simulate, sleepy

from dqm import broker, messages
from dqm.cli import cli
from dqm.db import queries
from dqm.db.models import FileState, Job, JobState, RunStatus
from dqm.times import utcnow
from pipeline import jobs
from pipeline import scheduler as scheduler_module
from pipeline.server import JobServer, ServerOptions


@pytest.fixture
def settings(tmp_path: Path, sqlite_database: str):
    return make_settings(tmp_path, sqlite_database)


def announce(settings, result, seqs=None, end=True) -> None:
    run = result.run_id
    broker.publish(
        settings,
        messages.make(
            "run_start", run_id=run, run_type="physics", start_time=result.start_time, detector="CD"
        ),
    )
    for f in result.files:
        if seqs is None or f.seq in seqs:
            broker.publish(
                settings,
                messages.make(
                    "file_ready",
                    run_id=run,
                    seq=f.seq,
                    uri=str(f.path),
                    size=f.size,
                    checksum=f.checksum,
                    n_events=f.n_events,
                ),
            )
    if end:
        broker.publish(
            settings,
            messages.make(
                "run_end",
                run_id=run,
                end_time=result.end_time,
                n_files=len(result.files),
                n_events=result.n_events,
            ),
        )


def test_job_waits_for_its_data_then_runs(settings, tmp_path: Path) -> None:
    result = simulate(settings, 20, n_files=1, events=30, notify=False)
    path = result.files[0].path
    hidden = tmp_path / "hidden.root"
    path.rename(hidden)  # announced before it has arrived
    announce(settings, result)
    run_server(settings, availability_timeout_s=60)
    with session(settings) as s:
        (job,) = queries.list_jobs(s, run_id=20, kind="process_file")
        assert job.state is JobState.TODO and job.not_before is not None and job.attempts == 0
        assert queries.get_run(s, run_id=20).status is RunStatus.REC_RUNNING
    hidden.rename(path)  # the transfer completes
    with session(settings) as s:
        s.get(Job, job.id).not_before = utcnow()
    run_server(settings)
    with session(settings) as s:
        assert queries.get_run(s, run_id=20).status is RunStatus.ALL_COMPLETED


def test_data_that_never_arrives_goes_to_tocheck(settings) -> None:
    result = simulate(settings, 21, n_files=2, events=30, faults=("missing:seq=1",))
    run_server(settings, availability_timeout_s=0.5, max_seconds=5)
    time.sleep(0.6)
    run_server(settings, availability_timeout_s=0.5)
    with session(settings) as s:
        files = queries.files_of_run(s, run_id=21)
        assert [f.state for f in files] == [FileState.DONE, FileState.MISSING]
        missing_job = next(
            j
            for j in queries.list_jobs(s, run_id=21, kind="process_file")
            if j.file_id == files[1].id
        )
        assert missing_job.state is JobState.TOCHECK
        assert (
            "has not arrived" in missing_job.error
            and str(result.files[1].path) in missing_job.error
        )
        assert queries.get_run(s, run_id=21).status is RunStatus.FAILED


def test_checksum_mismatch_waits_like_missing_data(settings) -> None:
    result = simulate(settings, 22, n_files=1, events=30, notify=False)
    f = result.files[0]
    run = result.run_id
    broker.publish(
        settings,
        messages.make(
            "run_start", run_id=run, run_type="physics", start_time=result.start_time, detector="CD"
        ),
    )
    broker.publish(
        settings,
        messages.make(
            "file_ready",
            run_id=run,
            seq=0,
            uri=str(f.path),
            size=f.size,
            checksum="0badc0de",
            n_events=f.n_events,
        ),
    )
    run_server(settings, availability_timeout_s=0.3, max_seconds=10)
    time.sleep(0.4)
    run_server(settings, availability_timeout_s=0.3)
    with session(settings) as s:
        (job,) = queries.list_jobs(s, run_id=run, kind="process_file")
        assert job.state is JobState.TOCHECK
        assert "adler32" in job.error and "0badc0de" in job.error


@pytest.fixture
def test_kinds() -> Iterator[dict[str, Any]]:
    """Register job kinds for the tests (run on every run_ended), removed afterwards."""
    seen: dict[str, Any] = {}

    def prepare(session, job, context):
        return {**seen.get("argument", {}), "attempt": job.attempts + 1}

    def complete(session, job, result, context):
        seen.setdefault("results", []).append(result)

    kinds = {
        "test_flaky": jobs.JobKind(
            "test_flaky",
            "fails at first",
            frozenset({"run_ended"}),
            False,
            flaky,
            prepare,
            complete,
        ),
        "test_sleepy": jobs.JobKind(
            "test_sleepy", "sleeps", frozenset({"run_ended"}), False, sleepy, prepare, complete
        ),
    }
    yield {"kinds": kinds, "seen": seen}
    for name in kinds:
        jobs.REGISTRY.pop(name, None)


def test_retries_with_exponential_backoff(settings, test_kinds, monkeypatch) -> None:
    jobs.register(test_kinds["kinds"]["test_flaky"])
    test_kinds["seen"]["argument"] = {"succeed_on": 3}
    result = simulate(settings, 23, n_files=1, events=20)
    times: list[dt.datetime] = []
    server = JobServer(
        settings,
        __import__("helpers").shared_executor(),
        ServerOptions(retry_base_s=0.3, poll_s=0.05, max_attempts=3),
    )
    original = scheduler_module.transition_job

    def spy(session, **kwargs):
        if kwargs["job"].kind == "test_flaky" and kwargs["state"] is JobState.SUBMITTED:
            times.append(utcnow())
        original(session, **kwargs)

    monkeypatch.setattr(scheduler_module, "transition_job", spy)
    server.run(once=False, max_seconds=8)
    with session(settings) as s:
        (job,) = queries.list_jobs(s, run_id=23, kind="test_flaky")
        assert job.state is JobState.DONE and job.attempts == 3
        assert queries.get_run(s, run_id=23).status is RunStatus.ALL_COMPLETED
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert len(gaps) == 2 and gaps[0] >= 0.3 and gaps[1] >= 0.6  # at least 0.3 s, then 0.6 s
    assert result.run_id == 23


def test_fails_after_the_last_attempt_and_is_retried_by_hand(
    settings, test_kinds, tmp_path: Path
) -> None:
    jobs.register(test_kinds["kinds"]["test_flaky"])
    test_kinds["seen"]["argument"] = {"succeed_on": 99}
    simulate(settings, 24, n_files=1, events=20)
    server = JobServer(
        settings,
        __import__("helpers").shared_executor(),
        ServerOptions(retry_base_s=0.05, poll_s=0.05, max_attempts=2),
    )
    server.run(once=True, max_seconds=120)  # until nothing is left to do, however busy
    with session(settings) as s:
        (job,) = queries.list_jobs(s, run_id=24, kind="test_flaky")
        assert job.state is JobState.FAILED and job.attempts == 2
        assert job.error == "RuntimeError: transient failure on attempt 2"
        assert queries.get_run(s, run_id=24).status is RunStatus.FAILED
    runner = CliRunner()
    env = {"DQM_DATABASE_URL": settings.database_url}
    listed = runner.invoke(cli, ["jobs", "--run", "24", "--state", "failed"], env=env)
    assert "test_flaky" in listed.output and "transient failure" in listed.output
    test_kinds["seen"]["argument"] = {"succeed_on": 1}
    retried = runner.invoke(cli, ["retry", str(job.id)], env=env)
    assert retried.exit_code == 0, retried.output
    assert (
        runner.invoke(cli, ["retry", str(job.id)], env=env).exit_code == 2
    )  # it is TODO now, not FAILED
    run_server(settings)
    with session(settings) as s:
        assert queries.get_job(s, job_id=job.id).state is JobState.DONE
        assert queries.get_run(s, run_id=24).status is RunStatus.ALL_COMPLETED


def test_a_killed_worker_process_is_detected_and_the_job_resubmitted(
    settings, test_kinds, tmp_path: Path
) -> None:
    jobs.register(test_kinds["kinds"]["test_sleepy"])
    pid_file = tmp_path / "worker.pid"
    test_kinds["seen"]["argument"] = {"seconds": 3.0, "pid_file": str(pid_file)}
    simulate(settings, 25, n_files=1, events=20)

    def killer() -> None:
        deadline = time.monotonic() + 20
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        pid_file.unlink()

    thread = threading.Thread(target=killer)
    thread.start()
    server = JobServer(
        settings,
        __import__("helpers").shared_executor(),
        ServerOptions(retry_base_s=0.1, poll_s=0.05),
    )
    server.run(max_seconds=15, once=True)
    thread.join()
    with session(settings) as s:
        (job,) = queries.list_jobs(s, run_id=25, kind="test_sleepy")
        assert job.state is JobState.DONE and job.attempts == 2
    assert test_kinds["seen"]["results"] == ["slept"]


def test_jobs_of_a_vanished_job_server_are_resubmitted(settings) -> None:
    simulate(settings, 26, n_files=2, events=20)
    run_server(settings)
    with session(settings) as s:
        (first, _second) = queries.list_jobs(s, run_id=26, kind="process_file")
        # As if a job server (pid 999999, long gone) had died with this job out.
        job = s.get(Job, first.id)
        job.state, job.worker, job.attempts = JobState.RUNNING, f"{os.uname().nodename}:999999", 1
        job.heartbeat_at = utcnow()
        queries.refresh_run_status(s, run_id=26)
        assert queries.get_run(s, run_id=26).status is RunStatus.PARTLY_COMPLETED
    run_server(settings)
    with session(settings) as s:
        job = queries.get_job(s, job_id=first.id)
        # The vanished server's attempt is given back; its interruption is counted instead.
        assert job.state is JobState.DONE and job.attempts == 1 and job.interruptions == 1
        assert queries.get_run(s, run_id=26).status is RunStatus.ALL_COMPLETED


def test_a_job_whose_job_servers_keep_vanishing_ends_failed(settings) -> None:
    simulate(settings, 30, n_files=1, events=20)
    run_server(settings)
    with session(settings) as s:
        (job,) = queries.list_jobs(s, run_id=30, kind="process_file")
        # Out with a job server long gone, whose predecessors vanished twice with it out already.
        job = s.get(Job, job.id)
        job.state, job.worker, job.attempts = JobState.RUNNING, f"{os.uname().nodename}:999999", 1
        job.interruptions = 2
    run_server(settings, max_interruptions=3)
    with session(settings) as s:
        job = queries.get_job(s, job_id=job.id)
        assert job.state is JobState.FAILED and job.interruptions == 3 and job.attempts == 0
        assert "vanished 3 times while it was out" in job.error
        assert queries.files_of_run(s, run_id=30)[0].state is FileState.FAILED
        assert queries.get_run(s, run_id=30).status is RunStatus.FAILED


def test_a_silent_job_goes_to_tocheck(settings, test_kinds, tmp_path: Path) -> None:
    jobs.register(test_kinds["kinds"]["test_sleepy"])
    test_kinds["seen"]["argument"] = {"seconds": 20.0, "pid_file": str(tmp_path / "pid")}
    simulate(settings, 27, n_files=1, events=20)
    server = JobServer(
        settings,
        __import__("helpers").shared_executor(),
        ServerOptions(job_timeout_s=1.0, poll_s=0.05),
    )
    server.scheduler._last_housekeeping = time.monotonic()
    server.run(max_seconds=9, once=True)
    with session(settings) as s:
        (job,) = queries.list_jobs(s, run_id=27, kind="test_sleepy")
        assert job.state is JobState.TOCHECK and job.error == "no result after 1 s"
    os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)  # free the worker


def test_the_concurrency_limit_holds(settings) -> None:
    simulate(settings, 28, n_files=6, events=30)
    server = JobServer(
        settings, __import__("helpers").shared_executor(), ServerOptions(max_jobs=1, poll_s=0.02)
    )
    peak = 0
    original = server.scheduler._submit

    def watch() -> bool:
        nonlocal peak
        busy = original()
        peak = max(peak, len(server.active))
        return busy

    server.scheduler._submit = watch  # type: ignore[method-assign]
    server.run(once=True, max_seconds=60)
    assert peak == 1
    with session(settings) as s:
        process = queries.list_jobs(s, run_id=28, kind="process_file")
        intervals = sorted((j.submitted_at, j.finished_at) for j in process)
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(intervals))
        assert queries.get_run(s, run_id=28).status is RunStatus.ALL_COMPLETED


def test_sigterm_stops_cleanly(settings, test_kinds, tmp_path: Path) -> None:
    jobs.register(test_kinds["kinds"]["test_sleepy"])
    test_kinds["seen"]["argument"] = {"seconds": 30.0, "pid_file": str(tmp_path / "pid")}
    simulate(settings, 29, n_files=1, events=20)
    server = JobServer(
        settings,
        __import__("helpers").shared_executor(),
        ServerOptions(poll_s=0.05, shutdown_grace_s=0.5),
    )
    threading.Timer(3.0, server.stop).start()
    started = time.monotonic()
    server.run()
    assert time.monotonic() - started < 8
    with session(settings) as s:
        (job,) = queries.list_jobs(s, run_id=29, kind="test_sleepy")
        assert (
            job.state is JobState.TODO and job.attempts == 0
        )  # submitted again by the next server
    os.kill(int((tmp_path / "pid").read_text()), signal.SIGKILL)
