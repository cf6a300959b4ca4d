"""``/metrics`` and ``/health`` of the dashboard server, tornado routes beside its pages.

    GET /metrics    Prometheus's text format: sessions, page builds, alarms, database up
    GET /health     200 {"status": "ok", "database": "ok"}, or 503 with the reason in one sentence

The names and the rule of ``/health`` are :mod:`dqm.metrics`'s. The alarms and the database are
read through :class:`app.source.Source`, at most every few seconds, off the server's event loop:
a scrape never holds up the sessions. With ``--num-procs`` above 1, each request is answered by
the process that takes it, with that process's numbers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import tornado.web
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client.core import Metric
from tornado.ioloop import IOLoop

from app.main import PAGES, apps_in_memory
from app.source import Source
from dqm import metrics

__all__ = ["DashboardMetrics", "metrics_routes"]


class DashboardMetrics:
    """The dashboard server's metrics, in a registry of its own.

    Args:
        source: where the alarms and the database's health are read.
        cache_s: seconds the alarms read from the database are kept.
    """

    def __init__(self, source: Source, cache_s: float = metrics.CACHE_S) -> None:
        self.source = source
        self.registry = CollectorRegistry()
        Gauge(
            metrics.SESSIONS, metrics.HELP[metrics.SESSIONS], registry=self.registry
        ).set_function(lambda: float(apps_in_memory(collect=False)))
        self.page_build = Histogram(
            metrics.PAGE_BUILD,
            metrics.HELP[metrics.PAGE_BUILD],
            ["page"],
            buckets=metrics.PAGE_BUILD_BUCKETS,
            registry=self.registry,
        )
        for page in PAGES:
            self.page_build.labels(page)
        Gauge(
            metrics.DATABASE_UP, metrics.HELP[metrics.DATABASE_UP], registry=self.registry
        ).set_function(lambda: 0.0 if self.source.database_problem() else 1.0)
        self.from_database = metrics.CachedCollector(
            self._read_alarms, cache_s, lambda: self.source.database_problem() is None
        )
        self.registry.register(self.from_database)

    def page_built(self, page: str, seconds: float) -> None:
        """A session's page was built in ``seconds`` (``DQMApp``'s ``page_timer``)."""
        self.page_build.labels(page if page in PAGES else "other").observe(seconds)

    def health(self) -> tuple[int, dict[str, str]]:
        """The ``/health`` answer: the database reachable or not."""
        return metrics.health_answer({"database": self.source.database_problem()})

    def _read_alarms(self) -> Sequence[Metric]:
        counts = self.source.alarm_counts()
        return metrics.alarm_families(counts["open"], counts["acknowledged"])


class _Handler(tornado.web.RequestHandler):
    def initialize(self, metrics: DashboardMetrics) -> None:
        self.metrics = metrics

    def set_default_headers(self) -> None:
        self.set_header("Cache-Control", "no-store")


class MetricsHandler(_Handler):
    async def get(self) -> None:
        body = await IOLoop.current().run_in_executor(
            None, metrics.exposition, self.metrics.registry
        )
        self.set_header("Content-Type", metrics.CONTENT_TYPE)
        self.finish(body)


class HealthHandler(_Handler):
    async def get(self) -> None:
        status, body = await IOLoop.current().run_in_executor(None, self.metrics.health)
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))


def metrics_routes(
    dashboard_metrics: DashboardMetrics,
) -> list[tuple[str, type[tornado.web.RequestHandler], dict[str, Any]]]:
    """The routes of ``/metrics`` and ``/health``, for ``pn.serve(extra_patterns=...)``."""
    shared = {"metrics": dashboard_metrics}
    return [(r"/metrics/?", MetricsHandler, shared), (r"/health/?", HealthHandler, shared)]
