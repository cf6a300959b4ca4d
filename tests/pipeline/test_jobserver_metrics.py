"""The job server's /metrics and /health, scraped over HTTP while it works: messages by outcome,
jobs by state and kind, durations, files processed; 503 with the reason when the database or the
broker cannot be reached; the command line's --metrics-port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import FAST, make_settings, publish_raw, session, shared_executor, simulate
from metricsclient import health, scrape, total, value, wait_for
from notifyservers import free_port

from dqm import broker, messages
from dqm.cli import cli
from dqm.config import Settings
from dqm.db import queries
from dqm.db.models import RunStatus
from pipeline.server import JobServer, ServerOptions

DQM = str(Path(sys.executable).parent / "dqm")


@contextmanager
def serving(settings: Settings, **options: float) -> Iterator[str]:
    """A job server running in a thread, its metrics on a free port (read afresh each scrape)."""
    server = JobServer(
        settings, shared_executor(), ServerOptions(**{**FAST, **options}), metrics_cache_s=0.0
    )
    url = server.serve_metrics("127.0.0.1", 0)
    thread = threading.Thread(target=server.run, kwargs={"max_seconds": 120})
    thread.start()
    try:
        yield url
    finally:
        server.stop()
        thread.join(60)


def test_the_metrics_follow_the_work(tmp_path: Path, sqlite_database: str) -> None:
    settings = make_settings(tmp_path, sqlite_database)
    with serving(settings) as url:
        assert health(url) == (200, {"status": "ok", "database": "ok", "broker": "ok"})
        before = scrape(url)
        for outcome in ("accepted", "rejected", "duplicate"):
            assert value(before, "dqm_messages_total", outcome=outcome) == 0
        assert total(before, "dqm_jobs") == 0
        assert value(before, "dqm_jobs", state="DONE", kind="process_file") == 0
        assert value(before, "dqm_files_processed_total") == 0
        assert value(before, "dqm_job_duration_seconds_count", kind="process_file") == 0
        assert value(before, "dqm_oldest_waiting_job_age_seconds") == 0
        assert value(before, "dqm_database_up") == value(before, "dqm_broker_up") == 1
        assert value(before, "dqm_open_alarms", severity="Bad") == 0

        simulate(settings, 811, n_files=2, events=40)  # run_start, 2 file_ready, run_end
        publish_raw(settings, b"not a message")
        start = messages.make(
            "run_start",
            run_id=812,
            run_type="physics",
            start_time="2026-11-01T09:00:00",
            detector="CD",
        )
        broker.publish(settings, start)
        broker.publish(settings, start)  # delivered twice: the second is a duplicate

        def done() -> bool:
            with session(settings) as s:
                run = queries.find_run(s, run_id=811)
                if run is None or run.status is not RunStatus.ALL_COMPLETED:
                    return False
            now = scrape(url)
            return value(now, "dqm_job_duration_seconds_count", kind="merge_run") >= 1

        wait_for(done, timeout=120)
        after = scrape(url)
        assert value(after, "dqm_messages_total", outcome="accepted") == 4 + 1
        assert value(after, "dqm_messages_total", outcome="rejected") == 1
        assert value(after, "dqm_messages_total", outcome="duplicate") == 1
        assert value(after, "dqm_files_processed_total") == 2
        assert value(after, "dqm_jobs", state="DONE", kind="process_file") == 2
        assert value(after, "dqm_jobs", state="TODO", kind="process_file") == 0
        assert value(after, "dqm_job_duration_seconds_count", kind="process_file") == 2
        assert value(after, "dqm_job_duration_seconds_sum", kind="process_file") > 0
        # every observation lies under the last bucket (+Inf), and the buckets only grow
        buckets = sorted(
            (float(dict(labels)["le"]), v)
            for (name, labels), v in after.items()
            if name == "dqm_job_duration_seconds_bucket" and ("kind", "process_file") in labels
        )
        assert buckets[-1] == (float("inf"), 2)
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)
        with session(settings) as s:
            jobs = queries.list_jobs(s, limit=None)
        kinds = {job.kind for job in jobs}
        assert {"process_file", "merge_run"} <= kinds
        for kind in kinds:  # the gauge counts what the database holds
            assert total(after, "dqm_jobs", kind=kind) == sum(j.kind == kind for j in jobs)
        assert health(url)[0] == 200


def test_health_says_why_the_database_is_unreachable(tmp_path: Path, sqlite_database: str) -> None:
    """The loop's own outage tracking, then a database that cannot be opened at all."""
    settings = make_settings(tmp_path, sqlite_database)
    server = JobServer(settings, shared_executor(), ServerOptions(**FAST))
    url = server.serve_metrics("127.0.0.1", 0)
    try:
        assert health(url)[0] == 200
        server.database.failed(ConnectionRefusedError("Connection refused"), 1.0)
        status, body = health(url)
        assert status == 503 and body["status"] == "unavailable" and body["broker"] == "ok"
        assert "unreachable: ConnectionRefusedError: Connection refused" in body["database"]
        assert value(scrape(url), "dqm_database_up") == 0
        server.database.ok()
        assert health(url)[0] == 200

        database = Path(sqlite_database.removeprefix("sqlite:///"))
        database.rename(database.with_suffix(".away"))
        status, body = wait_for(lambda: (found := health(url))[0] == 503 and found)
        assert "is not reachable" in body["database"] and "\n" not in body["database"]
        database.with_suffix(".away").rename(database)
        wait_for(lambda: health(url)[0] == 200)
    finally:
        server._shutdown()  # never run: its metrics' server and its connections closed


@pytest.mark.services
def test_health_follows_a_database_and_a_broker_that_go_away(tmp_path: Path) -> None:
    from proxy import CuttableProxy
    from services import fresh_database, fresh_queue
    from sqlalchemy.engine import make_url

    from dqm.db import migrate

    with fresh_database("postgresql") as database_url, fresh_queue() as (broker_url, queue):
        db = make_url(database_url)
        db_proxy = CuttableProxy((db.host or "127.0.0.1", db.port or 5432))
        mq_proxy = CuttableProxy(("127.0.0.1", 5672))
        migrate.upgrade(database_url)
        settings = make_settings(
            tmp_path,
            db.set(host="127.0.0.1", port=db_proxy.port).render_as_string(hide_password=False),
            broker_url.replace(":5672", f":{mq_proxy.port}"),
            queue,
        )
        try:
            with serving(settings) as url:
                wait_for(lambda: health(url)[0] == 200)
                db_proxy.cut()
                _, body = wait_for(lambda: (found := health(url))[0] == 503 and found)
                assert body["database"] != "ok" and "\n" not in body["database"]
                cut = scrape(url)
                assert value(cut, "dqm_database_up") == 0
                assert not any(name == "dqm_jobs" for name, _ in cut)  # not read meanwhile
                db_proxy.restore()
                wait_for(
                    lambda: (
                        health(url)
                        == (200, {"status": "ok", **dict.fromkeys(("database", "broker"), "ok")})
                    )
                )

                mq_proxy.cut()
                _, body = wait_for(lambda: (found := health(url))[0] == 503 and found)
                assert body["database"] == "ok" and "broker" in body["broker"]
                assert value(scrape(url), "dqm_broker_up") == 0
                mq_proxy.restore()
                wait_for(lambda: health(url)[0] == 200)
                assert value(scrape(url), "dqm_broker_up") == 1
        finally:
            db_proxy.close()
            mq_proxy.close()


def test_the_command_line_serves_the_metrics_and_refuses_a_taken_port(
    tmp_path: Path, sqlite_database: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
    env |= {"DQM_DATA_DIR": str(tmp_path), "DQM_DATABASE_URL": sqlite_database}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [DQM, "jobserver", "--max-jobs", "1"],
        env={**env, "DQM_METRICS_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def answers() -> bool:
            try:
                return health(url)[0] == 200
            except OSError:
                assert server.poll() is None, server.communicate()[1]
                return False

        wait_for(answers)
        assert value(scrape(url), "dqm_database_up") == 1
        runner = CliRunner()
        second = runner.invoke(cli, ["jobserver", "--metrics-port", str(port)], env=env)
        assert second.exit_code == 2, second.output
        assert f"cannot listen on 127.0.0.1:{port} for the metrics" in second.output
        assert len(second.output.strip().splitlines()) == 1, second.output
        for args in (["--metrics-port", "http"], ["--metrics-port", "70000"]):
            bad = runner.invoke(cli, ["jobserver", *args], env=env)
            assert bad.exit_code == 2 and "--metrics-port" in bad.output, args
        bad = runner.invoke(
            cli,
            ["jobserver", "--metrics-port", str(port), "--metrics-address", "192.0.2.1"],
            env=env,
        )
        assert bad.exit_code == 2 and "cannot listen on 192.0.2.1:" in bad.output
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 0, stderr
    assert f"metrics on {url}/metrics" in stderr and "Traceback" not in stderr
