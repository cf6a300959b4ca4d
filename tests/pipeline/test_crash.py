"""kill -9 the job server at many moments while a 10-file run is processed; restart it; every file
is processed exactly once, no message is lost, and the run's histograms are those of an
uninterrupted run."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import make_settings, run_server, session, simulate

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


def dqm_jobserver(
    env: dict[str, str], log: Path, failpoints: str = "", kill_after_s: float | None = None
) -> int:
    command = [
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
        # Ten kills fall on a ten-file run: the same job may be out with three servers that die,
        # which the default policy (3 attempts) rightly takes for a job that kills its server.
        "--max-attempts",
        "20",
    ]
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
def test_kill_9_at_any_moment_loses_nothing(tmp_path: Path, broker_url: tuple[str, str]) -> None:
    reference_db = f"sqlite:///{tmp_path / 'reference.sqlite'}"
    crashed_db = f"sqlite:///{tmp_path / 'crashed.sqlite'}"
    for url in (reference_db, crashed_db):
        migrate.upgrade(url)
    reference = make_settings(tmp_path / "reference", reference_db)
    crashed = make_settings(tmp_path / "crashed", crashed_db, *broker_url)

    sent: list[str] = []

    def capture(*items):
        sent.extend(m.message_id for m in items)
        broker.publish(crashed, *items)

    from daqsim import SimulationConfig, simulate_run

    simulate(reference, 600, n_files=10, events=150, seed=11)
    config = SimulationConfig(
        run_id=600,
        n_files=10,
        events_per_file=150,
        seed=11,
        n_jobs=1,
        start_time=__import__("datetime").datetime(2026, 11, 1, 8, 0),
    )
    simulate_run(config, crashed, notify=True, progress=False, publish=capture)
    run_server(reference)

    env = {
        **os.environ,
        "DQM_DATA_DIR": str(crashed.data_dir),
        "DQM_DATABASE_URL": crashed_db,
        "DQM_BROKER_URL": crashed.broker_url,
        "DQM_BROKER_QUEUE": crashed.broker_queue,
    }
    env.pop("DQM_CONFIG", None)
    killed = 0
    log = tmp_path / "jobserver.log"
    for point in CRASH_POINTS:
        killed += dqm_jobserver(env, log, failpoints=point) == -signal.SIGKILL
    rng = random.Random(5)
    for _ in range(3):
        killed += dqm_jobserver(env, log, kill_after_s=rng.uniform(1.5, 3.5)) == -signal.SIGKILL
    assert killed >= 5, "the crash points must actually have been hit"
    for _ in range(3):  # a clean run (or a few) finishes the work
        assert dqm_jobserver(env, log) == 0
        with session(crashed) as s:
            if queries.get_run(s, 600).status is RunStatus.ALL_COMPLETED:
                break

    with session(crashed) as s, session(reference) as r:
        assert queries.get_run(s, 600).status is RunStatus.ALL_COMPLETED
        process_jobs = queries.list_jobs(s, run_id=600, kind="process_file", limit=None)
        assert sorted(j.file_id for j in process_jobs) == sorted(
            f.id for f in queries.files_of_run(s, 600)
        )
        assert {j.state for j in process_jobs} == {JobState.DONE}
        # Every message that was sent is recorded as accepted exactly once.
        accepted = queries.messages(s, outcome=MessageOutcome.ACCEPTED, limit=None)
        assert sorted(m.message_id for m in accepted) == sorted(sent)
        assert not queries.messages(s, outcome=MessageOutcome.REJECTED)

        # The histograms are those of the uninterrupted run, file by file and merged.
        def contents(session, file_id):
            return {
                (h.stage, h.name): (h.values, h.variances, h.axes)
                for h in queries.histogram_rows(session, run_id=600, file_id=file_id)
            }

        for f, g in zip(queries.files_of_run(s, 600), queries.files_of_run(r, 600), strict=True):
            assert contents(s, f.id) == contents(r, g.id)
        assert contents(s, None) == contents(r, None)
        (merged,) = queries.histogram_rows(s, run_id=600, names=["nhits"])
        assert merged.provenance["n_files"] == 10 and merged.provenance["events_used"] == 1500
        np.testing.assert_array_equal(
            queries.pmt_arrays(queries.pmt_stats_row(s, run_id=600))["charge_sum"],
            queries.pmt_arrays(queries.pmt_stats_row(r, run_id=600))["charge_sum"],
        )
    # Nothing is left on the embedded broker, taken or not.
    if crashed.broker_url.startswith("filesystem"):
        assert not [p for p in (crashed.broker_dir / "queues").iterdir() if p.name.endswith(".msg")]
        assert not list((crashed.broker_dir / "unacked").iterdir())
