"""The job server: message intake plus the scheduler of jobs, in one loop.

Each pass of the loop takes the messages waiting on the broker (each recorded in its own transaction
and acknowledged after it), then lets the scheduler

1. store the results of finished jobs (DONE, or TODO again after a backoff, or FAILED after the last
   attempt) together with the jobs they call for and the run's new status, in one transaction each;
2. mark as RUNNING the submitted jobs that a worker has started;
3. put back to TODO the jobs of a job server that vanished (its process is gone, or its lease ran out);
4. send jobs that stayed silent too long to TOCHECK;
5. submit due TODO jobs up to the concurrency limit, after checking that their data are there (jobs
   whose data never arrive go to TOCHECK after the availability timeout).

A database or broker that goes away is reported in one log line, retried every few seconds, and its
return is reported too; nothing is lost meanwhile: messages stay on the broker, results of finished
jobs stay in memory until they are stored.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any

import kombu
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dqm import broker
from dqm.config import Settings, mask_url
from dqm.db import queries
from dqm.db.models import File, FileState, Job, JobState, MessageOutcome
from dqm.db.session import make_engine
from dqm.errors import DQMError
from dqm.times import utcnow
from pipeline import intake, jobs
from pipeline.executors import Executor, WorkerLost
from pipeline.failpoints import failpoint
from pipeline.stages.reading import FileNotReady

log = logging.getLogger("dqm.jobserver")


@dataclass(frozen=True)
class ServerOptions:
    """Limits and timings of the job server (seconds)."""

    max_jobs: int = 2  # jobs out at once (the concurrency limit)
    max_attempts: int = 3  # a job that fails this many times is FAILED
    retry_base_s: float = 5.0  # backoff after the first failure, doubling each time ...
    retry_max_s: float = 600.0  # ... up to this
    availability_timeout_s: float = 3600.0  # data not there this long after announcement: TOCHECK
    availability_poll_s: float = 10.0  # how often to look again for data not yet there
    job_timeout_s: float = 6 * 3600.0  # a job out this long without a result: TOCHECK
    lease_s: float = 120.0  # another server's job without a heartbeat this long: resubmitted
    poll_s: float = 0.1  # longest wait for a message in one pass
    outage_retry_s: float = 5.0  # how often to try a database or broker that went away
    shutdown_grace_s: float = 30.0  # on SIGTERM, wait this long for running jobs
    file_jobs: int = 1  # processes over the chunks of one file (for few, large files)


def server_identity() -> str:
    """``host:pid`` of this job server, as recorded in the jobs it submits."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_gone(worker: str | None) -> bool:
    """Whether the job server named ``host:pid`` is certainly gone (same host, no such process)."""
    if not worker or ":" not in worker:
        return True
    host, _, pid = worker.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return first if isinstance(exc, DQMError) and first else f"{type(exc).__name__}: {first}"[:2000]


class _Outage:
    """Tracks one kind of outage and logs its start and its end once each."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.since: float | None = None
        self.retry_at = 0.0

    def failed(self, exc: BaseException, retry_s: float) -> None:
        now = time.monotonic()
        if self.since is None:
            self.since = now
            cause = (
                getattr(exc, "orig", None) or exc
            )  # the driver's words, not SQLAlchemy's wrapping
            log.error("%s: %s; retrying every %.0f s", self.what, _reason(cause), retry_s)
        self.retry_at = now + retry_s

    def ok(self) -> None:
        if self.since is not None:
            log.warning(
                "%s again after %.0f s",
                self.what.replace("unreachable", "reachable"),
                time.monotonic() - self.since,
            )
            self.since = None

    @property
    def down(self) -> bool:
        return self.since is not None

    def may_try(self) -> bool:
        return self.since is None or time.monotonic() >= self.retry_at


class _StopIntake(Exception):
    """Raised inside a message callback to stop consuming (the database is away)."""


class JobServer:
    """Intake and scheduler. ``run()`` loops until stopped; ``run(once=True)`` until idle."""

    def __init__(
        self, settings: Settings, executor: Executor, options: ServerOptions | None = None
    ) -> None:
        self.settings = settings
        self.executor = executor
        self.options = options or ServerOptions()
        self.server_id = server_identity()
        self.context = jobs.Context(
            settings=settings,
            server_id=self.server_id,
            file_jobs=self.options.file_jobs,
            backend="dask" if getattr(executor, "name", None) == "dask" else None,
        )
        self.engine = make_engine(settings.database_url, pool_pre_ping=True)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.active: dict[int, tuple[Any, jobs.JobKind, int]] = {}
        self.stopping = threading.Event()
        self.database = _Outage(f"database {mask_url(settings.database_url)} unreachable")
        self.broker_outage = _Outage(f"broker {mask_url(settings.broker_url)} unreachable")
        self._connection: kombu.Connection | None = None
        self._consumer: kombu.Consumer | None = None
        self._messages_this_pass = 0
        self._backoff: set[int] = set()  # jobs this server put back to TODO to be retried later
        self._last_housekeeping = 0.0
        self._last_heartbeat = 0.0

    # --- the loop --------------------------------------------------------------------------------

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
        try:
            while not self.stopping.is_set():
                busy = self.step()
                if (
                    once
                    and not busy
                    and not self.active
                    and not self._waiting_retries()
                    and not self.database.down
                    and not self.broker_outage.down
                ):
                    break
                if deadline is not None and time.monotonic() > deadline:
                    break
                if not busy:
                    self.stopping.wait(self.options.poll_s if self._connection else 0.2)
        finally:
            self._shutdown()

    def _waiting_retries(self) -> bool:
        """Whether a job this server is to retry after a backoff still waits (``once`` waits for it)."""
        if not self._backoff:
            return False
        try:
            with self.sessions.begin() as session:
                waiting = {
                    job.id
                    for job in session.query(Job).filter(
                        Job.id.in_(self._backoff), Job.state == JobState.TODO
                    )
                }
        except SQLAlchemyError:
            return True
        self._backoff &= waiting
        return bool(waiting)

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
        self._messages_this_pass = 0
        busy = False
        if self.database.may_try():
            try:
                self._intake()
                busy = self._schedule()
                self.database.ok()
            except SQLAlchemyError as exc:
                self.database.failed(exc, self.options.outage_retry_s)
                self._close_consumer()  # unacknowledged messages go back to the queue
        return busy or self._messages_this_pass > 0

    # --- intake ----------------------------------------------------------------------------------

    def _intake(self) -> None:
        if self.stopping.is_set() or not self.broker_outage.may_try():
            return
        try:
            if self._connection is None:
                self._open_consumer()
            assert self._connection is not None
            deadline = time.monotonic() + max(self.options.poll_s, 0.05)
            while time.monotonic() < deadline and not self.stopping.is_set():
                try:
                    self._connection.drain_events(timeout=max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
            self.broker_outage.ok()
        except _StopIntake as stop:
            raise stop.__cause__ from None  # type: ignore[misc]
        except (OSError, kombu.exceptions.KombuError, ConnectionError) as exc:
            self._close_consumer()
            self.broker_outage.failed(exc, self.options.outage_retry_s)
        except Exception as exc:
            if type(exc).__module__.startswith("amqp"):
                self._close_consumer()
                self.broker_outage.failed(exc, self.options.outage_retry_s)
            else:
                raise

    def _open_consumer(self) -> None:
        connection = broker.connection(self.settings)
        try:
            connection.ensure_connection(max_retries=1, timeout=5)
            channel = connection.channel()
            channel.basic_qos(0, 10, False)
            consumer = kombu.Consumer(
                channel, queues=[broker.transfer_queue(self.settings)], on_message=self._on_message
            )
            consumer.consume()
        except BaseException:
            connection.collect()  # drop it without talking to a broker that is not there
            raise
        self._connection, self._consumer = connection, consumer
        log.info(
            "listening on %s, queue %s",
            mask_url(self.settings.broker_url),
            self.settings.broker_queue,
        )

    def _close_consumer(self) -> None:
        connection, self._connection, self._consumer = self._connection, None, None
        if connection is not None:
            try:
                connection.release()
            except Exception:  # noqa: BLE001 - a broken connection cannot be closed politely
                connection.collect()

    def _on_message(self, message: kombu.Message) -> None:
        try:
            with self.sessions.begin() as session:
                outcome = intake.record(session, message.body, self.context)
        except SQLAlchemyError as exc:
            raise _StopIntake() from exc
        failpoint("intake:after-commit")
        message.ack()
        self._messages_this_pass += 1
        run = f" run {outcome.run_id}" if outcome.run_id is not None else ""
        if outcome.outcome == MessageOutcome.ACCEPTED:
            log.info("message %s%s accepted", outcome.type, run)
        else:
            log.warning(
                "message %s%s %s: %s",
                outcome.type or "?",
                run,
                outcome.outcome.value,
                outcome.reason,
            )

    # --- scheduler -------------------------------------------------------------------------------

    def _schedule(self) -> bool:
        busy = self._collect()
        if hasattr(self.executor, "refresh"):
            self.executor.refresh()  # type: ignore[attr-defined]
        busy |= self._mark_started()
        now_s = time.monotonic()
        if now_s - self._last_housekeeping > 5.0 or self._last_housekeeping == 0.0:
            busy |= self._recover_orphans()
            busy |= self._time_out()
            busy |= self._unannounced_files()
            self._last_housekeeping = now_s
        if now_s - self._last_heartbeat > min(10.0, self.options.lease_s / 4) and self.active:
            with self.sessions.begin() as session:
                session.execute(
                    update(Job).where(Job.id.in_(list(self.active))).values(heartbeat_at=utcnow())
                )
            self._last_heartbeat = now_s
        if not self.stopping.is_set():
            busy |= self._submit()
        return busy

    def _transition(self, job: Job, state: JobState, note: str = "") -> None:
        old = job.state
        job.state = state
        where = f" file {job.file_id}" if job.file_id is not None else ""
        log.info(
            "job %d %s run %d%s: %s -> %s%s",
            job.id,
            job.kind,
            job.run_id,
            where,
            old.value,
            state.value,
            f" ({note})" if note else "",
        )

    def _file(self, session: Session, job: Job) -> File | None:
        return session.get(File, job.file_id) if job.file_id is not None else None

    def _submit(self) -> bool:
        free = self.options.max_jobs - len(self.active)
        if free <= 0:
            return False
        busy = False
        now = utcnow()
        with self.sessions.begin() as session:
            due = queries.due_jobs(session, now=now, limit=free + 50)
            active_runs = {
                (job.kind, job.run_id)
                for job in queries.jobs_in_states(session, jobs.ACTIVE_STATES)
            }
        for candidate in due:
            if free <= 0:
                break
            kind = jobs.REGISTRY.get(candidate.kind)
            if (
                kind is not None
                and not kind.per_file
                and (kind.name, candidate.run_id) in active_runs
            ):
                continue  # one run-level job of a kind at a time: merges never overtake each other
            submitted = self._submit_one(candidate.id, now)
            busy = True
            if submitted is not None:
                free -= 1
                active_runs.add((submitted.kind, submitted.run_id))
        return busy

    def _submit_one(self, job_id: int, now: dt.datetime) -> Job | None:
        with self.sessions.begin() as session:
            job = session.get(Job, job_id)
            if job is None or job.state != JobState.TODO:
                return None
            kind = jobs.REGISTRY.get(job.kind)
            if kind is None:
                job.error = f"no job kind {job.kind!r} is registered in this job server"
                self._transition(job, JobState.FAILED, job.error)
                queries.refresh_run_status(session, job.run_id)
                return None
            file = self._file(session, job)
            try:
                waiting = kind.check_ready(session, job, self.context) if kind.check_ready else None
                argument = None if waiting else kind.prepare(session, job, self.context)
            except DQMError as exc:
                job.error = _reason(exc)
                job.finished_at = now
                self._transition(job, JobState.FAILED, job.error)
                if file is not None:
                    file.state = FileState.FAILED
                queries.refresh_run_status(session, job.run_id)
                return None
            if waiting:
                self._wait_for_data(job, file, waiting, now)
                queries.refresh_run_status(session, job.run_id)
                return None
            job.attempts += 1
            job.worker = self.server_id
            job.submitted_at = now
            job.heartbeat_at = now
            job.started_at = None
            job.not_before = None
            self._transition(job, JobState.SUBMITTED, f"attempt {job.attempts}")
            if file is not None:
                file.state = FileState.PROCESSING
            queries.refresh_run_status(session, job.run_id)
            attempt = job.attempts
        failpoint("submit:after-commit")
        handle = self.executor.submit(kind.execute, argument, key=f"{job.kind}-{job.id}-{attempt}")
        self.active[job.id] = (handle, kind, attempt)
        return job

    def _wait_for_data(self, job: Job, file: File | None, reason: str, now: dt.datetime) -> None:
        since = file.arrived_at if file is not None else job.created_at
        waited = (now - since).total_seconds()
        if waited > self.options.availability_timeout_s:
            job.error = f"{reason} after {waited:.0f} s"
            job.finished_at = now
            self._transition(job, JobState.TOCHECK, job.error)
            if file is not None:
                file.state = FileState.MISSING
        else:
            if job.not_before is None:
                log.info("job %d %s run %d: waiting: %s", job.id, job.kind, job.run_id, reason)
            job.not_before = now + dt.timedelta(seconds=self.options.availability_poll_s)

    def _mark_started(self) -> bool:
        started = [
            job_id
            for job_id, (handle, _k, _a) in self.active.items()
            if self.executor.started(handle)
        ]
        if not started:
            return False
        changed = False
        with self.sessions.begin() as session:
            for job in session.query(Job).filter(
                Job.id.in_(started), Job.state == JobState.SUBMITTED
            ):
                job.started_at = utcnow()
                self._transition(job, JobState.RUNNING)
                changed = True
        return changed

    def _collect(self) -> bool:
        done = [
            job_id for job_id, (handle, _k, _a) in self.active.items() if self.executor.done(handle)
        ]
        for job_id in done:
            handle, kind, attempt = self.active[job_id]
            try:
                result, error = self.executor.outcome(handle), None
            except BaseException as exc:  # noqa: BLE001 - whatever the job raised is its outcome
                result, error = None, exc
            with self.sessions.begin() as session:
                job = session.get(Job, job_id)
                if (
                    job is None
                    or job.state not in jobs.ACTIVE_STATES
                    or job.attempts != attempt
                    or job.worker != self.server_id
                ):
                    log.warning(
                        "job %d: result of attempt %d dropped: the job changed meanwhile",
                        job_id,
                        attempt,
                    )
                else:
                    self._store_outcome(session, job, kind, result, error)
                    failpoint("complete:before-commit")
            failpoint("complete:after-commit")
            del self.active[job_id]
        return bool(done)

    def _store_outcome(
        self,
        session: Session,
        job: Job,
        kind: jobs.JobKind,
        result: Any,
        error: BaseException | None,
    ) -> None:
        now = utcnow()
        file = self._file(session, job)
        run = queries.get_run(session, job.run_id)
        if error is None:
            kind.complete(session, job, result, self.context)
            job.error = None
            job.finished_at = now
            if job.started_at is None:
                job.started_at = job.submitted_at
            self._transition(job, JobState.DONE)
            if file is not None:
                jobs.create_jobs(session, "file_done", run, file, self.context)
        elif isinstance(error, FileNotReady):
            job.attempts -= 1  # not the job's fault: wait for the data, as before submission
            self._transition(job, JobState.TODO, "data not ready")
            self._wait_for_data(job, file, _reason(error), now)
            if file is not None and job.state == JobState.TODO:
                file.state = FileState.ANNOUNCED
        else:
            job.error = _reason(error)
            permanent = isinstance(error, kind.permanent_errors)
            if permanent or job.attempts >= self.options.max_attempts:
                job.finished_at = now
                why = (
                    "cannot succeed"
                    if permanent
                    else f"attempt {job.attempts} of {self.options.max_attempts}"
                )
                self._transition(job, JobState.FAILED, f"{why}: {job.error}")
                if file is not None:
                    file.state = FileState.FAILED
            else:
                delay = min(
                    self.options.retry_base_s * 2 ** (job.attempts - 1), self.options.retry_max_s
                )
                job.not_before = now + dt.timedelta(seconds=delay)
                self._backoff.add(job.id)
                self._transition(job, JobState.TODO, f"retry in {delay:.0f} s after: {job.error}")
                if file is not None:
                    file.state = FileState.ANNOUNCED
        queries.refresh_run_status(session, job.run_id)

    def _recover_orphans(self) -> bool:
        """Jobs out with a job server that is gone go back to TODO (they are submitted again)."""
        now = utcnow()
        lease = dt.timedelta(seconds=self.options.lease_s)
        changed = False
        with self.sessions.begin() as session:
            for job in queries.jobs_in_states(session, jobs.ACTIVE_STATES):
                if job.id in self.active:
                    continue
                stale = job.heartbeat_at is None or now - job.heartbeat_at > lease
                if not (job.worker == self.server_id or _owner_gone(job.worker) or stale):
                    continue
                file = self._file(session, job)
                note = f"its job server {job.worker} vanished"
                if job.attempts >= self.options.max_attempts:
                    job.error = f"{note} on the last of {job.attempts} attempts"
                    job.finished_at = now
                    self._transition(job, JobState.FAILED, job.error)
                    if file is not None:
                        file.state = FileState.FAILED
                else:
                    job.error = note
                    self._transition(job, JobState.TODO, f"{note}; submitting again")
                    if file is not None:
                        file.state = FileState.ANNOUNCED
                queries.refresh_run_status(session, job.run_id)
                changed = True
        return changed

    def _unannounced_files(self) -> bool:
        """Files that run_end counted but no file_ready announced, once the availability timeout has
        passed since run_end: recorded as MISSING with a TOCHECK job that says so."""
        now = utcnow()
        changed = False
        with self.sessions.begin() as session:
            for run in queries.runs_missing_files(session):
                ended_at = queries.run_end_received_at(session, run.run_id) or now
                waited = (now - ended_at).total_seconds()
                if waited < self.options.availability_timeout_s:
                    continue
                known = {f.seq for f in queries.files_of_run(session, run.run_id)}
                for seq in sorted(set(range(run.n_files or 0)) - known):
                    file = queries.add_file(
                        session, run_id=run.run_id, seq=seq, uri="", state=FileState.MISSING
                    )
                    job = queries.add_job(
                        session, kind=jobs.PROCESS_FILE.name, run_id=run.run_id, file_id=file.id
                    )
                    job.error = f"file {seq} of run {run.run_id} was counted by run_end but never announced (waited {waited:.0f} s)"
                    job.finished_at = now
                    self._transition(job, JobState.TOCHECK, job.error)
                queries.refresh_run_status(session, run.run_id)
                changed = True
        return changed

    def _time_out(self) -> bool:
        now = utcnow()
        limit = dt.timedelta(seconds=self.options.job_timeout_s)
        late = []
        with self.sessions.begin() as session:
            for job_id in list(self.active):
                job = session.get(Job, job_id)
                if job is None or job.submitted_at is None or now - job.submitted_at <= limit:
                    continue
                job.error = f"no result after {limit.total_seconds():.0f} s"
                job.finished_at = now
                self._transition(job, JobState.TOCHECK, job.error)
                queries.refresh_run_status(session, job.run_id)
                late.append(job_id)
        for job_id in late:
            handle, _kind, _attempt = self.active.pop(job_id)
            self.executor.cancel(handle)
        return bool(late)

    # --- shutdown --------------------------------------------------------------------------------

    def _shutdown(self) -> None:
        self._close_consumer()
        deadline = time.monotonic() + self.options.shutdown_grace_s
        while self.active and time.monotonic() < deadline:
            try:
                if not self._collect():
                    time.sleep(0.1)
            except SQLAlchemyError as exc:
                self.database.failed(exc, self.options.outage_retry_s)
                break
        if self.active:
            with contextlib.suppress(SQLAlchemyError), self.sessions.begin() as session:
                for job_id in list(self.active):
                    job = session.get(Job, job_id)
                    if (
                        job is not None
                        and job.state in jobs.ACTIVE_STATES
                        and job.worker == self.server_id
                    ):
                        job.attempts -= 1
                        self._transition(
                            job, JobState.TODO, "interrupted by the job server's shutdown"
                        )
                        file = self._file(session, job)
                        if file is not None:
                            file.state = FileState.ANNOUNCED
                        queries.refresh_run_status(session, job.run_id)
        self.executor.close()
        self.engine.dispose()
        log.info("job server %s stopped", self.server_id)


__all__ = ["JobServer", "ServerOptions", "WorkerLost", "server_identity"]
