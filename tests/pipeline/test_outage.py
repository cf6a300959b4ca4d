"""The database or the broker away for 30 s: the job server says so in one line, retries, recovers
and loses nothing."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from helpers import make_settings, session, shared_executor, simulate
from proxy import CuttableProxy
from services import fresh_database, fresh_queue

from dqm.config import load_settings
from dqm.db import migrate, queries
from dqm.db.models import MessageOutcome, RunStatus
from pipeline.server import JobServer, ServerOptions

OUTAGE_S = 30.0


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


@pytest.mark.slow
@pytest.mark.soak
@pytest.mark.services
def test_database_and_broker_outages(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from sqlalchemy.engine import make_url

    with fresh_database("postgresql") as database_url, fresh_queue() as (broker_url, queue):
        db = make_url(database_url)
        amqp = make_url(
            broker_url.replace("amqp://", "postgresql://")
        )  # only to read host and port
        db_proxy = CuttableProxy((db.host or "127.0.0.1", db.port or 5432))
        mq_proxy = CuttableProxy((amqp.host or "127.0.0.1", amqp.port or 5672))
        migrate.upgrade(database_url)
        through_proxies = make_settings(
            tmp_path,
            db.set(host="127.0.0.1", port=db_proxy.port).render_as_string(hide_password=False),
            f"amqp://guest:guest@127.0.0.1:{mq_proxy.port}//",
            queue,
        )
        direct = load_settings(
            env={
                "DQM_DATA_DIR": str(through_proxies.data_dir),
                "DQM_DATABASE_URL": database_url,
                "DQM_BROKER_URL": broker_url,
                "DQM_BROKER_QUEUE": queue,
            }
        )
        server = JobServer(
            through_proxies, shared_executor(), ServerOptions(poll_s=0.05, outage_retry_s=2.0)
        )
        thread = threading.Thread(target=server.run, kwargs={"max_seconds": 240})
        caplog.set_level(logging.INFO, logger="dqm")
        thread.start()

        def completed(run_id: int) -> bool:
            with session(direct) as s:
                run = queries.find_run(s, run_id=run_id)
                return run is not None and run.status is RunStatus.ALL_COMPLETED

        try:
            simulate(direct, 701, n_files=2, events=40)
            wait_for(lambda: completed(701))

            mq_proxy.cut()
            simulate(
                direct, 702, n_files=2, events=40
            )  # published while the job server cannot hear
            time.sleep(OUTAGE_S)
            assert not completed(702)
            mq_proxy.restore()
            wait_for(lambda: completed(702))

            db_proxy.cut()
            simulate(direct, 703, n_files=3, events=40)
            time.sleep(OUTAGE_S)
            db_proxy.restore()
            wait_for(lambda: completed(703))
        finally:
            server.stop()
            thread.join(timeout=60)
            db_proxy.close()
            mq_proxy.close()

        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len([e for e in errors if e.startswith("broker ")]) == 1, errors
        assert len([e for e in errors if e.startswith("database ")]) == 1, errors
        assert all("unreachable" in e and "retrying every 2 s" in e for e in errors)
        recovered = [r.getMessage() for r in caplog.records if "again after" in r.getMessage()]
        assert any(m.startswith("broker ") for m in recovered) and any(
            m.startswith("database ") for m in recovered
        )
        with session(direct) as s:
            accepted = queries.messages(s, outcome=MessageOutcome.ACCEPTED, limit=None)
            assert sorted((m.run_id, m.type) for m in accepted).count((703, "file_ready")) == 3
            assert len(accepted) == 3 * 2 + 2 + 2 + 3
            assert not queries.messages(s, outcome=MessageOutcome.REJECTED)
            for run_id, n_files in ((701, 2), (702, 2), (703, 3)):
                (merged,) = queries.histogram_rows(s, run_id=run_id, names=["nhits"])
                assert merged.provenance["n_files"] == n_files
