"""The job server: the loop that drives the broker consumer and the scheduler.

Each pass of the loop lets the consumer (:mod:`pipeline.consumer`) record the messages waiting on
the broker, then lets the scheduler (:mod:`pipeline.scheduler`) move the jobs along.

A database or broker that goes away is reported in one log line, retried every few seconds, and its
return is reported too; nothing is lost meanwhile: messages stay on the broker, results of finished
jobs stay in memory until they are stored.

With :meth:`JobServer.serve_metrics`, the server answers ``/metrics`` (:mod:`pipeline.metrics`)
and ``/health`` (the database and the broker reachable) over HTTP, from threads of their own.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from dqm import metrics
from dqm.analyses.declarations import Catalog, load_catalog
from dqm.analyses.records import record_catalog
from dqm.checks.declarations import CheckCatalog, load_checks
from dqm.checks.records import record_checks
from dqm.config import Settings, mask_url
from dqm.db.session import make_engine, transaction
from dqm.errors import DatabaseError, first_line
from dqm.notify import parse_channels
from pipeline import jobs
from pipeline.alarms import AlarmWatcher
from pipeline.consumer import BrokerUnavailable, MessageConsumer
from pipeline.executors import Executor, WorkerLost
from pipeline.metrics import JobServerMetrics
from pipeline.reports import ReportWriter
from pipeline.scheduler import Scheduler, ServerOptions, server_identity

log = logging.getLogger("dqm.jobserver")

#: What a database that went away raises: SQLAlchemy's errors, or ours that wrap them.
DATABASE_ERRORS = (SQLAlchemyError, DatabaseError)


class _Outage:
    """Tracks one kind of outage and logs its start and its end once each."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None
        self.reason: str | None = None  # what the outage's start said, while it lasts
        self.retry_at = 0.0
        self._lock = threading.Lock()  # the loop and the alarm watcher both report

    def failed(self, exc: BaseException, retry_s: float) -> None:
        with self._lock:
            self._failed(exc, retry_s)

    def _failed(self, exc: BaseException, retry_s: float) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            # the driver's words, not the wrapping of SQLAlchemy or of dqm.db.session
            cause = exc.__cause__ if isinstance(exc, DatabaseError | BrokerUnavailable) else exc
            self.reason = f"{self.what}: {first_line(cause, with_type=True)}"
            log.error("%s; retrying every %.0f s", self.reason, retry_s)
        self.retry_at = now + retry_s

    def ok(self) -> None:
        with self._lock:
            self._ok()

    def _ok(self) -> None:
        if self.since is not None:
            log.warning(
                "%s again after %.0f s",
                self.what.replace("unreachable", "reachable"),
                time.monotonic() - self.since,
            )
            self.since = None
            self.reason = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def may_try(self) -> bool:
        return self.since is None or time.monotonic() >= self.retry_at


class JobServer:
    """Intake and scheduler. ``run()`` loops until stopped; ``run(once=True)`` until idle."""

    def __init__(
        self,
        settings: Settings,
        executor: Executor,
        options: ServerOptions | None = None,
        catalog: Catalog | None = None,
        checks: CheckCatalog | None = None,
        metrics_cache_s: float = metrics.CACHE_S,
    ) -> None:
        """``metrics_cache_s``: seconds the metrics read from the database are kept.

        Raises:
            DeclarationError: an analysis or check declaration is wrong, or its version went
                backwards against the database.
        """
        self.settings = settings
        self.executor = executor
        self.options = options or ServerOptions()
        self.server_id = server_identity()
        self.catalog = catalog if catalog is not None else load_catalog(settings.analyses_file)
        self.checks = (
            checks
            if checks is not None
            else load_checks(settings.checks_file, analyses=self.catalog)
        )
        self.database = _Outage(f"database {mask_url(settings.database_url)} unreachable")
        self.reports = ReportWriter(
            settings.data_dir / "reports",
            self._transaction,
            database_errors=DATABASE_ERRORS,
            on_database_error=lambda exc: self.database.failed(exc, self.options.outage_retry_s),
            retry_s=self.options.outage_retry_s,
        )
        context = jobs.Context(
            settings=settings,
            server_id=self.server_id,
            file_jobs=self.options.file_jobs,
            backend="dask" if getattr(executor, "name", None) == "dask" else None,
            catalog=self.catalog,
            checks=self.checks,
            on_checked=self.reports.submit,
        )
        self.engine = make_engine(settings.database_url, pool_pre_ping=True)
        with transaction(self.engine) as session:
            record_catalog(session, self.catalog)
            self.checks = record_checks(session, self.checks)
        alarms = settings.alarms
        channels = parse_channels(
            smtp_url=alarms.smtp_url,
            sender=alarms.sender,
            recipients=alarms.recipients,
            expert_recipients=alarms.expert_recipients,
            webhook_url=alarms.webhook_url,
            expert_webhook_url=alarms.expert_webhook_url,
        )
        self.watcher = AlarmWatcher(
            alarms,
            self._transaction,
            channels,
            poll_s=self.options.alarm_poll_s,
            database_errors=DATABASE_ERRORS,
            on_database_error=lambda exc: self.database.failed(exc, self.options.outage_retry_s),
            on_database_ok=self.database.ok,
        )
        self.broker_outage = _Outage(f"broker {mask_url(settings.broker_url)} unreachable")
        self.metrics = JobServerMetrics(
            self._transaction,
            database_up=lambda: not self.database.down,
            broker_up=lambda: not self.broker_outage.down,
            readable=lambda: self._database_problem() is None,
            kinds=jobs.REGISTRY,
            cache_s=metrics_cache_s,
        )
        self._probe = metrics.DatabaseProbe(settings.database_url)
        self._metrics_server: metrics.MetricsServer | None = None
        self.consumer = MessageConsumer(
            settings, context, self._transaction, on_recorded=self.metrics.message_recorded
        )
        self.scheduler = Scheduler(
            executor,
            self.options,
            context,
            self._transaction,
            on_finished=self.metrics.job_finished,
        )
        self.stopping = threading.Event()

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with transaction(self.engine) as session:
            yield session

    def serve_metrics(self, address: str = "127.0.0.1", port: int = 0) -> str:
        """Answer ``/metrics`` and ``/health`` over HTTP on ``address:port`` (0: a free port) until
        the server stops; their URL.

        Raises:
            OSError: the address cannot be listened on.
        """
        self._metrics_server = metrics.MetricsServer(
            self.metrics.registry, self.health, address, port
        )
        url = self._metrics_server.url
        log.info("metrics on %s/metrics, health on %s/health", url, url)
        return url

    def health(self) -> tuple[int, dict[str, str]]:
        """The ``/health`` answer: the database (this loop's outage, else a new connection tried
        with a short timeout) and the broker (this loop's outage) reachable or not."""
        return metrics.health_answer(
            {"database": self._database_problem(), "broker": self.broker_outage.reason}
        )

    def _database_problem(self) -> str | None:
        return self.database.reason or self._probe.problem()

    @property
    def active(self) -> dict[int, object]:
        """The jobs out with the executor, by id."""
        return dict(self.scheduler.active)

    def run(self, *, once: bool = False, max_seconds: float | None = None) -> None:
        """Run until SIGTERM/SIGINT (or ``stop()``); with ``once``, until nothing is left to do now."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        log.info(
            "job server %s: database %s, broker %s (queue %s), executor %s, at most %d jobs at once",
            self.server_id,
            mask_url(self.settings.database_url),
            mask_url(self.settings.broker_url),
            self.settings.broker_queue,
            self.executor.name,
            self.options.max_jobs,
        )
        self.watcher.start()
        self.reports.start()
        try:
            while not self.stopping.is_set():
                busy = self.step()
                if once and not busy and self._idle():
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                if not busy:
                    self.stopping.wait(self.options.poll_s if self.consumer.connected else 0.2)
        finally:
            self._shutdown()

    def _idle(self) -> bool:
        """Nothing out, no retry waiting, database and broker there, and a last look at the
        housekeeping changes nothing (``once`` stops then)."""
        if self.scheduler.active or self.database.down or self.broker_outage.down:
            return False
        try:
            return not self.scheduler.waiting_retries() and not self.scheduler.housekeeping()
        except DATABASE_ERRORS:
            return False

    def stop(self, *_args: object) -> None:
        """Ask the loop to stop (signal handler)."""
        if not self.stopping.is_set():
            log.info(
                "stopping: no new messages or jobs; waiting up to %.0f s for running jobs",
                self.options.shutdown_grace_s,
            )
        self.stopping.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)

    def step(self) -> bool:
        """One pass: messages, then the scheduler. Returns whether anything happened."""
        if not self.database.may_try():
            return False
        recorded = 0
        try:
            recorded = self._intake()
            busy = self.scheduler.step(submit=not self.stopping.is_set())
            self.database.ok()
        except DATABASE_ERRORS as exc:
            self.database.failed(exc, self.options.outage_retry_s)
            self.consumer.close()  # unacknowledged messages go back to the queue
            busy = False
        return busy or recorded > 0

    def _intake(self) -> int:
        if self.stopping.is_set() or not self.broker_outage.may_try():
            return 0
        try:
            recorded = self.consumer.take(self.options.poll_s, self.stopping.is_set)
        except BrokerUnavailable as exc:
            self.broker_outage.failed(exc, self.options.outage_retry_s)
            return 0
        self.broker_outage.ok()
        return recorded

    def _shutdown(self) -> None:
        self.watcher.stop()
        self.consumer.close()
        try:
            self.scheduler.finish(self.options.shutdown_grace_s)
        except DATABASE_ERRORS as exc:
            self.database.failed(exc, self.options.outage_retry_s)
        self.executor.close()
        self.reports.stop()  # the reports asked for are written before the engine goes
        if self._metrics_server is not None:
            self._metrics_server.close()
            self._metrics_server = None
        self.engine.dispose()
        log.info("job server %s stopped", self.server_id)


__all__ = ["JobServer", "ServerOptions", "WorkerLost", "server_identity"]
