"""kill -9 the job server at many moments while a run is processed; restart it; every file is
processed exactly once, no message is lost, and the run's histograms are those of an uninterrupted
run. A restart costs no attempt: only a job whose job servers keep vanishing ends FAILED."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from helpers import make_settings, run_server, session, simulate
from services import fresh_database, fresh_queue

from dqm import broker
from dqm.db import migrate, queries
from dqm.db.models import JobState, MessageOutcome, RunStatus

#: (failpoint, on which pass): the moments the job server kills itself.
CRASH_POINTS = [
    "intake:after-commit@2",  # a file_ready recorded, not acknowledged
    "submit:after-commit@1",  # a job SUBMITTED, never handed to a worker
    "complete:before-commit@2",  # a result computed, not stored
    "complete:after-commit@1",  # a file DONE, its merge job created but not run
    "complete:after-commit@3",  # again, later in the run
    "intake:after-commit@4",
    "submit:after-commit@3",
]

RUN = 600


class Crashed:
    """A run simulated twice: processed without interruption (the reference) and announced on a
    broker for job servers that will be killed."""

    def __init__(
        self,
        tmp_path: Path,
        broker_url: tuple[str, str],
        n_files: int,
        analyses_file: Path | None = None,
        database_url: str | None = None,
    ) -> None:
        reference_db = f"sqlite:///{tmp_path / 'reference.sqlite'}"
        crashed_db = database_url or f"sqlite:///{tmp_path / 'crashed.sqlite'}"
        for url in (reference_db, crashed_db):
            migrate.upgrade(url)
        self.reference = replace(
            make_settings(tmp_path / "reference", reference_db), analyses_file=analyses_file
        )
        self.settings = replace(
            make_settings(tmp_path / "crashed", crashed_db, *broker_url),
            analyses_file=analyses_file,
        )
        self.sent: list[str] = []

        def capture(*items):
            self.sent.extend(m.message_id for m in items)
            broker.publish(self.settings, *items)

        from daqsim import SimulationConfig, simulate_run

        simulate(self.reference, RUN, n_files=n_files, events=150, seed=11)
        config = SimulationConfig(
            run_id=RUN,
            n_files=n_files,
            events_per_file=150,
            seed=11,
            n_jobs=1,
            start_time=dt.datetime(2026, 11, 1, 8, 0),
        )
        simulate_run(config, self.settings, notify=True, progress=False, publish=capture)
        run_server(self.reference)
        self.n_files = n_files
        self.env = {
            **os.environ,
            "DQM_DATA_DIR": str(self.settings.data_dir),
            "DQM_DATABASE_URL": crashed_db,
            "DQM_BROKER_URL": self.settings.broker_url,
            "DQM_BROKER_QUEUE": self.settings.broker_queue,
        }
        self.env.pop("DQM_CONFIG", None)
        if analyses_file is not None:
            self.env["DQM_ANALYSES_FILE"] = str(analyses_file)
            # the job server's workers import the analyses' module from here
            here = str(Path(__file__).parent)
            self.env["PYTHONPATH"] = os.pathsep.join(
                filter(None, (here, os.environ.get("PYTHONPATH")))
            )
        self.log = tmp_path / "jobserver.log"

    def server(self, **kwargs) -> int:
        return dqm_jobserver(self.env, self.log, **kwargs)

    def finish(self) -> None:
        """A clean run (or a few) finishes the work."""
        for _ in range(3):
            assert self.server() == 0
            with session(self.settings) as s:
                if queries.get_run(s, run_id=RUN).status is RunStatus.ALL_COMPLETED:
                    break

    def check_as_uninterrupted(self) -> None:
        """Every file DONE exactly once, every message accepted once, histograms as uninterrupted."""
        with session(self.settings) as s, session(self.reference) as r:
            assert queries.get_run(s, run_id=RUN).status is RunStatus.ALL_COMPLETED
            process_jobs = queries.list_jobs(s, run_id=RUN, kind="process_file", limit=None)
            files = queries.files_of_run(s, run_id=RUN)
            assert sorted(j.file_id for j in process_jobs) == sorted(f.id for f in files)
            assert {j.state for j in process_jobs} == {JobState.DONE}
            # Every message that was sent is recorded as accepted exactly once.
            accepted = queries.messages(s, outcome=MessageOutcome.ACCEPTED, limit=None)
            assert sorted(m.message_id for m in accepted) == sorted(self.sent)
            assert not queries.messages(s, outcome=MessageOutcome.REJECTED)

            # The histograms are those of the uninterrupted run, file by file and merged, and
            # each is stored once.
            def contents(session, file_id):
                rows = queries.histogram_rows(session, run_id=RUN, file_id=file_id)
                stored = {(h.stage, h.name): (h.values, h.variances, h.axes) for h in rows}
                assert len(stored) == len(rows)
                return stored

            for f, g in zip(files, queries.files_of_run(r, run_id=RUN), strict=True):
                assert contents(s, f.id) == contents(r, g.id)
            assert contents(s, None) == contents(r, None)
            (merged,) = queries.histogram_rows(s, run_id=RUN, names=["nhits"])
            assert merged.provenance["n_files"] == self.n_files
            assert merged.provenance["events_used"] == 150 * self.n_files
            np.testing.assert_array_equal(
                queries.pmt_arrays(queries.pmt_stats_row(s, run_id=RUN))["charge_sum"],
                queries.pmt_arrays(queries.pmt_stats_row(r, run_id=RUN))["charge_sum"],
            )
        # Nothing is left on the embedded broker, taken or not.
        if self.settings.broker_url.startswith("filesystem"):
            queues = self.settings.broker_dir / "queues"
            assert not [p for p in queues.iterdir() if p.name.endswith(".msg")]
            assert not list((self.settings.broker_dir / "unacked").iterdir())


def jobserver_command(*extra: str) -> list[str]:
    """``dqm jobserver --once`` with short retries and lease (and the default attempts)."""
    return [
        str(Path(sys.executable).parent / "dqm"),
        "jobserver",
        "--once",
        "--max-jobs",
        "2",
        "--retry-base",
        "0.2",
        "--availability-poll",
        "0.2",
        "--lease",
        "5",
        *extra,
    ]


def dqm_jobserver(
    env: dict[str, str],
    log: Path,
    failpoints: str = "",
    kill_after_s: float | None = None,
    extra: tuple[str, ...] = (),
) -> int:
    """Run ``dqm jobserver --once`` (with the default attempts and interruptions) until it stops,
    dies at a failpoint, or is killed with SIGKILL after ``kill_after_s``; its return code."""
    command = jobserver_command(*extra)
    with log.open("ab") as out:
        process = subprocess.Popen(
            command,
            env={**env, "DQM_FAILPOINTS": failpoints},
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            if kill_after_s is not None:
                try:
                    process.wait(timeout=kill_after_s)
                except subprocess.TimeoutExpired:
                    process.send_signal(signal.SIGKILL)
            process.wait(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
            # The dead server's worker processes would finish their job and idle out; do not wait.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    return process.returncode


@pytest.mark.slow
@pytest.mark.soak
def test_kill_9_at_any_moment_loses_nothing(tmp_path: Path, broker_url: tuple[str, str]) -> None:
    run = Crashed(tmp_path, broker_url, n_files=10)
    killed = 0
    for point in CRASH_POINTS:
        killed += run.server(failpoints=point) == -signal.SIGKILL
    rng = random.Random(5)
    for _ in range(3):
        killed += run.server(kill_after_s=rng.uniform(1.5, 3.5)) == -signal.SIGKILL
    assert killed >= 5, "the crash points must actually have been hit"
    run.finish()
    run.check_as_uninterrupted()


#: The broker of the tests about jobs: what a kill does to the messages is the first test's, on
#: both brokers; what it does to jobs does not depend on the broker.
EMBEDDED = ("filesystem://", "dqm.transfer")


@pytest.mark.slow
@pytest.mark.soak
def test_repeated_kills_with_the_same_job_out_cost_no_attempt(tmp_path: Path) -> None:
    """The same job out with four job servers that die (more than its three attempts), then five
    kills at random moments 1.5-6 s apart: every file DONE once, as if uninterrupted."""
    run = Crashed(tmp_path, EMBEDDED, n_files=8)
    for _ in range(4):  # each new server submits the orphan first, and dies with it out
        assert run.server(failpoints="submit:after-handoff@1") == -signal.SIGKILL
    with session(run.settings) as s:
        (first,) = [j for j in queries.list_jobs(s, run_id=RUN, limit=None) if j.interruptions]
        assert first.interruptions == 3 and first.state in (JobState.SUBMITTED, JobState.RUNNING)
    rng = random.Random(8)
    for _ in range(5):
        run.server(kill_after_s=rng.uniform(1.5, 6.0))
    run.finish()
    run.check_as_uninterrupted()
    with session(run.settings) as s:
        job = queries.get_job(s, job_id=first.id)
        assert job.state is JobState.DONE and job.interruptions >= 4
        assert job.attempts <= 3


ANALYSES = """
[analyses.live_hits]
version = 1
function = "sample_analyses:mean_hits"
requires = ["calib_histograms"]
when = "live"
[analyses.live_hits.variables]
mean_nhits = { unit = "1", meaning = "mean hits per event" }
events = { unit = "1", meaning = "events used" }

[analyses.final_hits]
version = 3
function = "sample_analyses:mean_hits"
requires = ["calib_histograms", "pmt_stats"]
[analyses.final_hits.parameters]
scale = 2.0
[analyses.final_hits.variables]
mean_nhits = { unit = "1", meaning = "twice the mean hits per event" }
events = { unit = "1", meaning = "events used" }
"""

#: Moments in the lives of analysis jobs (counted per job server, analysis jobs only).
ANALYSIS_CRASH_POINTS = [
    "submit:after-commit:analysis@1",
    "complete:before-commit:analysis@1",
    "submit:after-handoff:analysis@1",
    "complete:after-commit:analysis@1",
    "complete:before-commit:analysis@1",
    "complete:after-commit:analysis@1",
    "complete:before-commit:analysis@1",
]


@pytest.mark.slow
@pytest.mark.soak
def test_kill_9_during_analyses_leaves_exactly_one_result(tmp_path: Path) -> None:
    """Analysis jobs killed at every moment of their lives: at the end, exactly one result per
    (analysis, version, run), equal to the uninterrupted run's, and every analysis job DONE."""
    analyses_file = tmp_path / "analyses.toml"
    analyses_file.write_text(ANALYSES)
    run = Crashed(tmp_path, EMBEDDED, n_files=6, analyses_file=analyses_file)
    killed = 0
    for point in ANALYSIS_CRASH_POINTS:
        killed += run.server(failpoints=point) == -signal.SIGKILL
    assert killed >= 4, "the crash points must actually have been hit"
    run.finish()
    run.check_as_uninterrupted()
    with session(run.settings) as s, session(run.reference) as r:
        results = [
            x for x in queries.analysis_results(s, run_id=RUN) if x.analysis.endswith("_hits")
        ]
        assert sorted((x.analysis, x.version) for x in results) == [
            ("final_hits", 3),
            ("live_hits", 1),
        ]
        for result in results:
            expected = queries.analysis_result(
                r, analysis=result.analysis, version=result.version, run_id=RUN
            )
            assert {v.variable: v.value for v in result.values} == {
                v.variable: v.value for v in expected.values
            }
            assert result.lineage["data_complete"] is True
            assert result.lineage["events_used"] == 150 * run.n_files
        jobs = queries.analysis_jobs(s, run_id=RUN)
        assert {j.state for j in jobs} == {JobState.DONE}


@pytest.mark.slow
@pytest.mark.soak
def test_two_job_servers_share_a_run_and_one_takes_over_when_the_other_is_killed(
    tmp_path: Path,
) -> None:
    """Two job servers on one RabbitMQ queue and one PostgreSQL database share the 20 files of a
    run; one is killed (kill -9) mid-run; the other takes over its jobs: every file is done
    exactly once and the run's results are those of an uninterrupted run."""
    with fresh_database("postgresql") as database_url, fresh_queue() as broker_url:
        run = Crashed(tmp_path, broker_url, n_files=20, database_url=database_url)
        logs = [tmp_path / "first.log", tmp_path / "second.log"]
        outs = [log.open("ab") for log in logs]
        servers = [
            subprocess.Popen(
                jobserver_command(),
                env=run.env,
                stdout=out,
                stderr=out,
                start_new_session=True,
            )
            for out in outs
        ]
        first, second = servers
        first_id = f"{os.uname().nodename}:{first.pid}"
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:  # the first has done a file and holds another
                with session(run.settings) as s:
                    jobs = queries.list_jobs(s, run_id=RUN, kind="process_file", limit=None)
                done = [j for j in jobs if j.state is JobState.DONE]
                held = [
                    j
                    for j in jobs
                    if j.worker == first_id and j.state in (JobState.SUBMITTED, JobState.RUNNING)
                ]
                if held and any(j.worker == first_id for j in done):
                    break
                time.sleep(0.05)
            assert len(done) < run.n_files, "the run ended before the kill"
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(30)
            assert second.wait(timeout=240) == 0  # it stops once the run is done
        finally:
            for process in servers:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            for out in outs:
                out.close()
        for log in logs:
            assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
            # no job was out with both at once (its result would be dropped by one of them)
            assert "dropped: the job changed meanwhile" not in log.read_text()
        run.check_as_uninterrupted()  # without another server: the second finished it
        with session(run.settings) as s:
            jobs = queries.list_jobs(s, run_id=RUN, kind="process_file", limit=None)
            workers = {j.worker for j in jobs}
            assert first_id in workers and len(workers) == 2  # both did files
            taken_over = [j for j in jobs if j.interruptions]
            assert all(j.worker != first_id for j in taken_over)
