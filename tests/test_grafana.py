"""deploy/grafana/dqm.json: valid JSON, a panel for every metric, and only metrics that the job
server and the dashboard export."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from metricsclient import exported_names

from dqm import metrics

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dqm.json"


class _NoExecutor:
    """Enough of an executor for a job server that is built and never run."""

    name = "local"

    def close(self) -> None:
        pass


@pytest.fixture
def exported(sqlite_database: str, tmp_path: Path) -> set[str]:
    """Every sample name the registries of a job server and of the dashboard can export."""
    from app.metrics import DashboardMetrics
    from app.source import Source
    from dqm.config import load_settings
    from pipeline.server import JobServer

    settings = load_settings(
        env={"DQM_DATA_DIR": str(tmp_path), "DQM_DATABASE_URL": sqlite_database}
    )
    server = JobServer(settings, _NoExecutor())
    try:
        names = exported_names(server.metrics.registry)
    finally:
        server.engine.dispose()
    return names | exported_names(DashboardMetrics(Source(sqlite_database)).registry)


def _expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    panels: list[dict[str, Any]] = dashboard["panels"]
    expressions = []
    for panel in panels:
        for target in panel.get("targets", []):
            expressions.append(target["expr"])
    return expressions


def test_the_dashboard_is_grafana_json_with_one_id_per_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["title"] and dashboard["uid"] and dashboard["schemaVersion"] >= 30
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] != "row":
            assert panel["targets"], panel["title"]
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]


def test_every_metric_it_asks_for_is_exported_and_every_metric_has_a_panel(
    exported: set[str],
) -> None:
    asked = {name for expr in _expressions() for name in re.findall(r"\bdqm_[a-z0-9_]+", expr)}
    assert asked, "no metric in the dashboard"
    assert asked <= exported, asked - exported
    for name in metrics.HELP:  # each metric is shown somewhere
        assert any(a == name or a.startswith(f"{name}_") for a in asked), name
