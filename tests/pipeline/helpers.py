"""Helpers for the job-server tests: settings, an in-process job server, raw publishing."""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import kombu
import numpy as np
from sqlalchemy.orm import Session

from daqsim import SimulationConfig, SimulationResult, parse_fault, simulate_run
from dqm import broker
from dqm.config import Settings, load_settings
from dqm.db.session import transaction
from pipeline.executors import LocalExecutor
from pipeline.server import JobServer, ServerOptions
from pipeline.stages import processing

_POOL: LocalExecutor | None = None


class SharedLocalExecutor(LocalExecutor):
    """The local executor, kept alive between tests (starting worker processes takes seconds)."""

    def close(self) -> None:
        pass


def shared_executor() -> LocalExecutor:
    global _POOL
    if _POOL is None:
        _POOL = SharedLocalExecutor(2)
    return _POOL


def make_settings(
    tmp_path: Path,
    database_url: str,
    broker_url: str = "filesystem://",
    queue: str = "dqm.transfer",
) -> Settings:
    return load_settings(
        env={
            "DQM_DATA_DIR": str(tmp_path / "data"),
            "DQM_DATABASE_URL": database_url,
            "DQM_BROKER_URL": broker_url,
            "DQM_BROKER_QUEUE": queue,
        }
    )


FAST = {"retry_base_s": 0.2, "availability_poll_s": 0.2, "poll_s": 0.05, "outage_retry_s": 1.0}


def run_server(
    settings: Settings, *, executor: Any = None, max_seconds: float = 120, **options: Any
) -> JobServer:
    """Run a job server in this process until it has nothing left to do."""
    server = JobServer(
        settings, executor or shared_executor(), ServerOptions(**{**FAST, **options})
    )
    server.run(once=True, max_seconds=max_seconds)
    return server


def simulate(
    settings: Settings,
    run_id: int,
    *,
    n_files: int = 2,
    events: int = 60,
    notify: bool = True,
    faults: tuple[str, ...] = (),
    publish: Any = None,
    **kwargs: Any,
) -> SimulationResult:
    config = SimulationConfig(
        run_id=run_id,
        n_files=n_files,
        events_per_file=events,
        n_jobs=1,
        faults=tuple(parse_fault(f) for f in faults),
        start_time=dt.datetime(2026, 11, 1, 8, run_id % 60),
        **kwargs,
    )
    return simulate_run(
        config, settings, notify=notify, progress=False, overwrite=True, publish=publish
    )


def publish_raw(settings: Settings, *bodies: bytes | str) -> None:
    """Publish message bodies exactly as given (no validation), as a faulty sender would."""
    queue = broker.transfer_queue(settings)
    with broker.connection(settings) as connection:
        producer = connection.Producer()
        for body in bodies:
            producer.publish(
                body,
                exchange=broker.EXCHANGE,
                routing_key=settings.broker_queue,
                declare=[queue],
                content_type="application/json",
                content_encoding="binary" if isinstance(body, bytes) else "utf-8",
            )


def assert_identical(a: processing.FileResult, b: processing.FileResult) -> None:
    assert (a.n_events, a.n_read, a.livetime_ns) == (b.n_events, b.n_read, b.livetime_ns)
    assert a.histograms.keys() == b.histograms.keys()
    for stage, by_name in a.histograms.items():
        assert by_name.keys() == b.histograms[stage].keys()
        for name, histogram in by_name.items():
            other = b.histograms[stage][name]
            assert np.array_equal(histogram.view(flow=True), other.view(flow=True)), (stage, name)
    for name, values in a.pmt_sums.items():
        assert np.array_equal(values, b.pmt_sums[name]), name
    assert a.events.keys() == b.events.keys()
    for name, values in a.events.items():  # the same events, in the same order
        assert np.array_equal(values, b.events[name]), name


def session(settings: Settings) -> AbstractContextManager[Session]:
    return transaction(settings.database_url)


__all__ = [
    "assert_identical",
    "kombu",
    "make_settings",
    "publish_raw",
    "run_server",
    "session",
    "shared_executor",
    "simulate",
]


# --- job kinds for scheduler tests (module level, so that worker processes can import them) ------


def flaky(argument: dict[str, Any]) -> str:
    """Fails until its attempt number reaches ``succeed_on``."""
    if argument["attempt"] < argument["succeed_on"]:
        raise RuntimeError(f"transient failure on attempt {argument['attempt']}")
    return "ok"


def sleepy(argument: dict[str, Any]) -> str:
    """Sleeps, reporting its pid in a file first (so that a test can kill it)."""
    import os
    import time

    Path(argument["pid_file"]).write_text(str(os.getpid()))
    time.sleep(argument["seconds"])
    return "slept"
