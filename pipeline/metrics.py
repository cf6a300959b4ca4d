"""The job server's metrics, in a registry of each server's own (:mod:`dqm.metrics` names them).

Counted as they happen: the messages recorded, by outcome (told by the consumer), the jobs
finished with their durations and the files processed (told by the scheduler). Read from the
database when scraped, at most every few seconds: the jobs by state and kind, the age of the
oldest waiting job, the alarms. Told by the loop's outage tracking: whether the database and the
broker are reachable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy.orm import Session

from dqm import metrics
from dqm.db import queries
from dqm.states import JobState, MessageOutcome
from dqm.times import utcnow
from pipeline import jobs


def _as_number(up: Callable[[], bool]) -> Callable[[], float]:
    return lambda: 1.0 if up() else 0.0


class JobServerMetrics:
    """The metrics of one job server.

    Args:
        transaction: opens a session in a transaction (the job server's way to the database).
        database_up: whether the job server reaches the database now (its loop's view).
        readable: whether the database can be read now (the numbers read from it are left out
            while not, so that a scrape stays quick).
        broker_up: whether it reaches the broker now.
        kinds: the job kinds it runs (their series exist from the start, at 0).
        cache_s: seconds the numbers read from the database are kept.
    """

    def __init__(
        self,
        transaction: Callable[[], AbstractContextManager[Session]],
        *,
        database_up: Callable[[], bool],
        broker_up: Callable[[], bool],
        readable: Callable[[], bool] = lambda: True,
        kinds: Iterable[str],
        cache_s: float = metrics.CACHE_S,
    ) -> None:
        self.transaction = transaction
        self.kinds = sorted(kinds)
        self.registry = CollectorRegistry()
        self.messages = Counter(
            metrics.MESSAGES, metrics.HELP[metrics.MESSAGES], ["outcome"], registry=self.registry
        )
        for outcome in MessageOutcome:
            self.messages.labels(outcome.value)
        self.job_duration = Histogram(
            metrics.JOB_DURATION,
            metrics.HELP[metrics.JOB_DURATION],
            ["kind"],
            buckets=metrics.JOB_DURATION_BUCKETS,
            registry=self.registry,
        )
        for kind in self.kinds:
            self.job_duration.labels(kind)
        self.files_processed = Counter(
            metrics.FILES_PROCESSED, metrics.HELP[metrics.FILES_PROCESSED], registry=self.registry
        )
        for name, up in ((metrics.DATABASE_UP, database_up), (metrics.BROKER_UP, broker_up)):
            Gauge(name, metrics.HELP[name], registry=self.registry).set_function(_as_number(up))
        self.from_database = metrics.CachedCollector(self._read_database, cache_s, readable)
        self.registry.register(self.from_database)

    def message_recorded(self, outcome: MessageOutcome) -> None:
        """A message was recorded (and acknowledged) with this outcome."""
        self.messages.labels(outcome.value).inc()

    def job_finished(self, kind: str, state: JobState, seconds: float) -> None:
        """A job's result was stored, leaving it in ``state``, ``seconds`` after its hand-off."""
        self.job_duration.labels(kind).observe(seconds)
        if kind == jobs.PROCESS_FILE.name and state == JobState.DONE:
            self.files_processed.inc()

    def _read_database(self) -> list[Metric]:
        with self.transaction() as session:
            counts = queries.count_jobs_by_state_and_kind(session)
            oldest = queries.oldest_waiting_job(session)
            alarms = queries.alarm_counts(session)
        by_kind = GaugeMetricFamily(
            metrics.JOBS, metrics.HELP[metrics.JOBS], labels=["state", "kind"]
        )
        for kind in sorted({*self.kinds, *(kind for _state, kind in counts)}):
            for state in JobState:
                by_kind.add_metric([state.value, kind], counts.get((state, kind), 0))
        age = max((utcnow() - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
        waiting = GaugeMetricFamily(
            metrics.OLDEST_WAITING_JOB, metrics.HELP[metrics.OLDEST_WAITING_JOB], value=age
        )
        return [by_kind, waiting, *metrics.alarm_families(alarms.open, alarms.acknowledged)]
