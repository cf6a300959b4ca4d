"""Metrics and health for operators: what the job server and the dashboard export to Prometheus
on ``/metrics``, and the rule of their ``/health`` answer.

The names of the metrics (each process builds them in a registry of its own):

========================================  =========  ============================================
``dqm_messages_total{outcome}``            counter    broker messages recorded by this job server:
                                                      accepted, rejected, duplicate
``dqm_jobs{state,kind}``                   gauge      jobs in the database by state and kind
``dqm_job_duration_seconds{kind}``         histogram  a job's hand-off to a worker to its result
                                                      stored, per kind (this job server's jobs)
``dqm_files_processed_total``              counter    files this job server processed (DONE);
                                                      ``rate()`` of it is files per second
``dqm_oldest_waiting_job_age_seconds``     gauge      age of the oldest job waiting (TODO), 0 if
                                                      none waits
``dqm_database_up``                        gauge      1 when the process reaches the database
``dqm_broker_up``                          gauge      1 when the job server reaches the broker
``dqm_open_alarms{severity}``              gauge      alarms open, not yet acknowledged
``dqm_acknowledged_alarms{severity}``      gauge      alarms acknowledged, not yet resolved
``dqm_dashboard_sessions``                 gauge      dashboard sessions held by the process
``dqm_page_build_seconds{page}``           histogram  building a dashboard page for a session
========================================  =========  ============================================

``dqm_jobs``, ``dqm_oldest_waiting_job_age_seconds`` and the alarms are read from the database
(every job server and dashboard process reports the same numbers: aggregate them with ``max``),
at most every few seconds (:class:`CachedCollector`), in the thread that answers the scrape: a
slow scrape never holds up the job server's loop.

``/health`` answers 200 with ``{"status": "ok", "database": "ok", ...}`` when every part is
reachable, else 503 with ``{"status": "unavailable", part: one sentence why, ...}``
(:func:`health_answer`); the database is tried with a new connection and a short timeout
(:class:`DatabaseProbe`). The job server serves both over HTTP with :class:`MetricsServer`; the
dashboard adds them as tornado routes beside its pages.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from dqm.errors import first_line

log = logging.getLogger("dqm.metrics")

# --- names -----------------------------------------------------------------------------------

MESSAGES = "dqm_messages"  # a counter: exported as dqm_messages_total
JOBS = "dqm_jobs"
JOB_DURATION = "dqm_job_duration_seconds"
FILES_PROCESSED = "dqm_files_processed"  # a counter: exported as dqm_files_processed_total
OLDEST_WAITING_JOB = "dqm_oldest_waiting_job_age_seconds"
DATABASE_UP = "dqm_database_up"
BROKER_UP = "dqm_broker_up"
OPEN_ALARMS = "dqm_open_alarms"
ACKNOWLEDGED_ALARMS = "dqm_acknowledged_alarms"
SESSIONS = "dqm_dashboard_sessions"
PAGE_BUILD = "dqm_page_build_seconds"

#: What each metric means (its HELP line).
HELP = {
    MESSAGES: "Broker messages recorded by this job server, by outcome.",
    JOBS: "Jobs in the database, by state and kind.",
    JOB_DURATION: "Seconds from a job's hand-off to a worker to its result stored, by kind.",
    FILES_PROCESSED: "Raw files processed (their job DONE) by this job server.",
    OLDEST_WAITING_JOB: "Age in seconds of the oldest job waiting to be submitted (0: none).",
    DATABASE_UP: "1 when this process reaches the database, else 0.",
    BROKER_UP: "1 when this job server reaches the broker, else 0.",
    OPEN_ALARMS: "Alarms open and not yet acknowledged, by severity.",
    ACKNOWLEDGED_ALARMS: "Alarms acknowledged and not yet resolved, by severity.",
    SESSIONS: "Dashboard sessions held by this process (open, or closed and not yet dropped).",
    PAGE_BUILD: "Seconds to build a dashboard page for a session, by page.",
}

#: Buckets of the job durations: a check takes a second, a file minutes, a long analysis hours.
JOB_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600)
#: Buckets of the page builds: a page is built within tens of milliseconds to seconds.
PAGE_BUILD_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
#: The severities of alarms, reported at 0 when none is open.
SEVERITIES = ("Bad", "Warning")

#: Seconds the numbers read from the database are kept between scrapes.
CACHE_S = 5.0


def alarm_families(
    open_: Mapping[str, int], acknowledged: Mapping[str, int]
) -> list[GaugeMetricFamily]:
    """The alarms' gauges from their counts by severity (every severity there, 0 if none)."""
    families = []
    for name, counts in ((OPEN_ALARMS, open_), (ACKNOWLEDGED_ALARMS, acknowledged)):
        family = GaugeMetricFamily(name, HELP[name], labels=["severity"])
        for severity in sorted({*SEVERITIES, *counts}):
            family.add_metric([severity], counts.get(severity, 0))
        families.append(family)
    return families


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry's metrics in Prometheus's text format (its content type: CONTENT_TYPE)."""
    return generate_latest(registry)


CONTENT_TYPE = CONTENT_TYPE_LATEST


class CachedCollector(Collector):
    """Metrics read by ``read`` (from the database, say), read again at most every ``max_age_s``
    seconds; one scrape reads at a time, the others get the numbers it read.

    A read that fails gives no metrics (rather than stale ones) until a later read succeeds; it is
    logged once until then. While ``readable()`` says no (the database is known to be away), nothing
    is read: a scrape stays quick instead of waiting for a connection's timeout.
    """

    def __init__(
        self,
        read: Callable[[], Sequence[Metric]],
        max_age_s: float = CACHE_S,
        readable: Callable[[], bool] = lambda: True,
    ) -> None:
        self.read = read
        self.max_age_s = max_age_s
        self.readable = readable
        self._lock = threading.Lock()
        self._metrics: Sequence[Metric] = ()
        self._read_at: float | None = None
        self._failing = False

    def describe(self) -> Iterable[Metric]:
        return []  # nothing is read when the collector is registered

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._read_at is None or now - self._read_at >= self.max_age_s:
                try:
                    if not self.readable():
                        raise ConnectionError("the database cannot be reached")
                    self._metrics = list(self.read())
                    self._failing = False
                except Exception as exc:  # noqa: BLE001 - a scrape reports what it can
                    if not self._failing:
                        log.warning("metrics: cannot read the database: %s", first_line(exc))
                    self._metrics, self._failing = (), True
                self._read_at = now
            return list(self._metrics)


# --- health ----------------------------------------------------------------------------------

OK = "ok"


def health_answer(problems: Mapping[str, str | None]) -> tuple[int, dict[str, str]]:
    """The ``/health`` answer from what is wrong with each part (None: nothing): 200 and
    ``{"status": "ok", part: "ok", ...}``, or 503 and ``{"status": "unavailable", part: sentence
    or "ok", ...}``."""
    body = {part: problem or OK for part, problem in problems.items()}
    if any(problems.values()):
        return 503, {"status": "unavailable", **body}
    return 200, {"status": OK, **body}


class DatabaseProbe:
    """Whether the database can be reached now: a new connection and a trivial query, given up
    after ``timeout_s``; the answer is kept ``cache_s`` seconds (a load balancer may ask often).

    The probe runs in a thread of its own, so that a database that does not answer at all costs
    the caller ``timeout_s`` at most; while such a probe hangs, no other is started.
    """

    def __init__(self, database_url: str, timeout_s: float = 2.0, cache_s: float = 1.0) -> None:
        self.database_url = database_url
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._lock = threading.Lock()
        self._answer: str | None = None
        self._answered_at: float | None = None
        self._running: threading.Thread | None = None
        self._result: list[str | None] = []

    def problem(self) -> str | None:
        """None when the database answered, else one sentence why not."""
        with self._lock:
            now = time.monotonic()
            if self._answered_at is not None and now - self._answered_at < self.cache_s:
                return self._answer
            if self._running is None or not self._running.is_alive():
                self._result = []
                self._running = threading.Thread(
                    target=self._probe, args=(self._result,), name="dqm-database-probe", daemon=True
                )
                self._running.start()
            running, result = self._running, self._result
            running.join(self.timeout_s + 0.5)
            if result:
                answer = result[0]
            else:
                answer = f"the database did not answer within {self.timeout_s:g} s."
            self._answer, self._answered_at = answer, time.monotonic()
            return answer

    def _probe(self, result: list[str | None]) -> None:
        from dqm.db.session import ping

        try:
            ping(self.database_url, timeout_s=self.timeout_s)
            result.append(None)
        except Exception as exc:  # noqa: BLE001 - whatever stops it is the answer
            result.append(first_line(exc))


# --- serving over HTTP (the job server) ------------------------------------------------------


class MetricsServer:
    """``/metrics`` (the registry) and ``/health`` (``health()``: status and JSON body) over HTTP
    on ``address:port`` (port 0: a free one, then in :attr:`port`), served by threads of its own.

    Raises:
        OSError: the address cannot be listened on (taken, or not this machine's).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        health: Callable[[], tuple[int, dict[str, str]]],
        address: str,
        port: int,
    ) -> None:
        handler = type(
            "Handler", (_Handler,), {"registry": registry, "health": staticmethod(health)}
        )
        server = type(
            "Server",
            (ThreadingHTTPServer,),
            {
                "address_family": socket.AF_INET6 if ":" in address else socket.AF_INET,
                "daemon_threads": True,
            },
        )
        self._server = server((address, port), handler)
        self.address = address
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="dqm-metrics", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    registry: CollectorRegistry
    health: Callable[[], tuple[int, dict[str, str]]]

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        try:
            if path == "/metrics":
                self._send(200, exposition(self.registry), CONTENT_TYPE)
            elif path == "/health":
                status, body = self.health()
                self._json(status, body)
            else:
                self._json(
                    404, {"error": "no such endpoint; the endpoints are /metrics and /health."}
                )
        except Exception as exc:
            log.exception("metrics: %s failed", path)
            self._json(500, {"error": f"{path} failed: {first_line(exc)}"})

    def _json(self, status: int, body: Any) -> None:
        self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


__all__ = [
    "ACKNOWLEDGED_ALARMS",
    "BROKER_UP",
    "CONTENT_TYPE",
    "DATABASE_UP",
    "FILES_PROCESSED",
    "HELP",
    "JOBS",
    "JOB_DURATION",
    "JOB_DURATION_BUCKETS",
    "MESSAGES",
    "OLDEST_WAITING_JOB",
    "OPEN_ALARMS",
    "PAGE_BUILD",
    "PAGE_BUILD_BUCKETS",
    "SESSIONS",
    "CachedCollector",
    "DatabaseProbe",
    "MetricsServer",
    "alarm_families",
    "exposition",
    "health_answer",
]
