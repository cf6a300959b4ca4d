"""The dashboard's /metrics and /health: a real `dqm serve` scraped over HTTP as pages are built and
alarms open; 503 with the reason once its database is gone; the page timer of the app."""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from apiserver import Served
from metricsclient import health, scrape, total, value, wait_for
from uihelpers import dashboard

from app.main import PAGES, create_app
from app.metrics import DashboardMetrics, metrics_routes
from app.source import Source
from dqm.checks.quality import Quality
from dqm.db import queries
from dqm.db.session import transaction

DQM = str(Path(sys.executable).parent / "dqm")


def raise_alarm(database_url: str, key: str, severity: Quality = Quality.BAD) -> int:
    with transaction(database_url) as session:
        alarm, _ = queries.raise_alarm(
            session, key=key, kind="check", severity=severity, sentence="A check is Bad."
        )
        return alarm.id


def test_dqm_serve_answers_metrics_and_health(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DQM_")}
    env["DQM_DATA_DIR"] = str(tmp_path)
    subprocess.run([DQM, "init-db"], env=env, check=True, capture_output=True)
    database = tmp_path / "dqm.sqlite"
    raise_alarm(f"sqlite:///{database}", "check:energy_scale:1")

    with dashboard(env, "--refresh", "0", name="metrics") as (url, _log):
        assert health(url) == (200, {"status": "ok", "database": "ok"})
        before = scrape(url)
        assert value(before, "dqm_dashboard_sessions") == 0
        assert total(before, "dqm_page_build_seconds_count") == 0
        assert value(before, "dqm_page_build_seconds_count", page="jobs") == 0
        assert value(before, "dqm_open_alarms", severity="Bad") == 1
        assert value(before, "dqm_open_alarms", severity="Warning") == 0
        assert value(before, "dqm_acknowledged_alarms", severity="Bad") == 0
        assert value(before, "dqm_database_up") == 1

        with urllib.request.urlopen(f"{url}/?page=jobs", timeout=60) as page:  # a session
            assert page.status == 200
        after = scrape(url)
        assert value(after, "dqm_dashboard_sessions") >= 1
        assert value(after, "dqm_page_build_seconds_count", page="jobs") >= 1
        assert value(after, "dqm_page_build_seconds_sum", page="jobs") > 0

        for path in tmp_path.glob("dqm.sqlite*"):
            path.unlink()
        _, body = wait_for(lambda: (found := health(url))[0] == 503 and found)
        assert body["status"] == "unavailable"
        assert "is not reachable" in body["database"] and "\n" not in body["database"]
        wait_for(lambda: value(scrape(url), "dqm_database_up") == 0)


@pytest.fixture
def served(sqlite_database: str) -> Iterator[tuple[Served, DashboardMetrics]]:
    metrics = DashboardMetrics(Source(sqlite_database), cache_s=0.0)
    server = Served(metrics_routes(metrics))
    yield server, metrics
    server.close()


def test_the_numbers_move_with_the_pages_and_the_alarms(
    sqlite_database: str, served: tuple[Served, DashboardMetrics]
) -> None:
    """Read afresh at each scrape: the pages built, the alarms as they open and are acknowledged,
    then nothing from a database that is gone (and no wait for it)."""
    server, metrics = served
    before = scrape(server.url)
    counted = {dict(labels)["page"] for name, labels in before if name.endswith("_count")}
    assert counted == set(PAGES)  # every page's series, from the start

    app = create_app(sqlite_database, refresh_s=0, page_timer=metrics.page_built)
    app.param.update(page="jobs")
    app.param.update(page="run", run="12345")  # no such run: the recent runs are shown
    built = scrape(server.url)
    assert value(built, "dqm_page_build_seconds_count", page="overview") == 1
    assert value(built, "dqm_page_build_seconds_count", page="jobs") == 1
    assert value(built, "dqm_page_build_seconds_count", page="runs") == 1
    assert value(built, "dqm_page_build_seconds_bucket", page="jobs", le="+Inf") == 1
    assert value(built, "dqm_dashboard_sessions") >= 1

    alarm = raise_alarm(sqlite_database, "check:energy_scale:7", Quality.WARNING)
    raise_alarm(sqlite_database, "check:light_yield:7", Quality.BAD)
    opened = scrape(server.url)
    assert value(opened, "dqm_open_alarms", severity="Warning") == 1
    assert value(opened, "dqm_open_alarms", severity="Bad") == 1
    with transaction(sqlite_database) as session:
        queries.acknowledge_alarm(session, alarm_id=alarm, user="sam", comment="looking")
    acknowledged = scrape(server.url)
    assert value(acknowledged, "dqm_open_alarms", severity="Warning") == 0
    assert value(acknowledged, "dqm_acknowledged_alarms", severity="Warning") == 1
    assert health(server.url) == (200, {"status": "ok", "database": "ok"})

    for path in Path(sqlite_database.removeprefix("sqlite:///")).parent.glob("dqm.sqlite*"):
        path.unlink()
    _, body = wait_for(lambda: (found := health(server.url))[0] == 503 and found)
    assert body["status"] == "unavailable" and "is not reachable" in body["database"]
    gone = scrape(server.url)
    assert value(gone, "dqm_database_up") == 0
    assert not any(name == "dqm_open_alarms" for name, _ in gone)  # not read: no timeout waited
