"""The scheduler of the job server: jobs through their states, at most ``max_jobs`` out at once.

Each :meth:`Scheduler.step`

1. stores the results of finished jobs (DONE, or TODO again after a backoff, or FAILED after the
   last attempt) together with the jobs they call for and the run's new status, in one transaction
   each;
2. marks as RUNNING the submitted jobs that a worker has started;
3. every few seconds, puts back to TODO the jobs of a job server that vanished (its process is
   gone, or its lease ran out), sends jobs that stayed silent too long to TOCHECK, and records the
   files that run_end counted but nobody announced;
4. submits due TODO jobs up to the concurrency limit, after checking that their data are there
   (jobs whose data never arrive go to TOCHECK after the availability timeout).

Every change of a job's state goes through :func:`dqm.db.queries.transition_job`, which also keeps
its file's state and says what a retry resets.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dqm.db import queries
from dqm.db.models import Job
from dqm.db.queries import Retry, transition_job
from dqm.errors import DQMError, first_line
from dqm.states import FileState, JobState
from dqm.times import utcnow
from pipeline import analyses, checks, jobs
from pipeline.executors import Executor
from pipeline.failpoints import failpoint
from pipeline.stages.reading import FileNotReady

log = logging.getLogger("dqm.jobserver")


@dataclass(frozen=True)
class ServerOptions:
    """Limits and timings of the job server (seconds)."""

    max_jobs: int = 2  # jobs out at once (the concurrency limit)
    max_attempts: int = 3  # a job that fails this many times is FAILED
    max_interruptions: int = 10  # a job whose job server vanished this many times is FAILED
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
    alarm_poll_s: float = 2.0  # how often the alarm watcher looks for stalls and due notices


def server_identity() -> str:
    """``host:pid`` of this job server, as recorded in the jobs it submits."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _run_key(job: Job) -> tuple[str, int, str | None, int | None]:
    """What only one job may be out for at a time among run-level jobs: a run's merge, or one
    version of one analysis on a run."""
    return (job.kind, job.run_id, job.analysis, job.analysis_version)


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


@dataclass
class _Out:
    """A job out with the executor: its handle, its kind, the attempt it is and when it was handed
    off (``time.monotonic()``)."""

    handle: Any
    kind: jobs.JobKind
    attempt: int
    since: float


class Scheduler:
    """Jobs from TODO to DONE, FAILED or TOCHECK through the executor.

    Args:
        executor: where the work runs (local processes or a Dask cluster).
        options: limits and timings.
        context: what the job kinds' ``prepare`` and ``complete`` may use.
        transaction: opens a session in a transaction (the job server's way to the database).
        on_finished: told each job whose result is stored: its kind, the state the result left
            it in, and the seconds since its hand-off (the metrics).
    """

    def __init__(
        self,
        executor: Executor,
        options: ServerOptions,
        context: jobs.Context,
        transaction: Callable[[], AbstractContextManager[Session]],
        on_finished: Callable[[str, JobState, float], None] | None = None,
    ) -> None:
        self.executor = executor
        self.options = options
        self.context = context
        self.server_id = context.server_id
        self.transaction = transaction
        self.on_finished = on_finished
        self.active: dict[int, _Out] = {}
        self._backoff: set[int] = set()  # jobs this server put back to TODO to be retried later
        self._last_housekeeping = 0.0
        self._last_heartbeat = 0.0

    def step(self, *, submit: bool = True) -> bool:
        """One pass over the jobs (``submit=False``: none are sent out). Whether anything changed."""
        busy = self._collect()
        if hasattr(self.executor, "refresh"):
            self.executor.refresh()
        busy |= self._mark_started()
        now_s = time.monotonic()
        if now_s - self._last_housekeeping > 5.0 or self._last_housekeeping == 0.0:
            busy |= self.housekeeping()
        if now_s - self._last_heartbeat > min(10.0, self.options.lease_s / 4) and self.active:
            with self.transaction() as session:
                queries.record_heartbeat(session, job_ids=self.active, now=utcnow())
            self._last_heartbeat = now_s
        if submit:
            busy |= self._submit()
        return busy

    def housekeeping(self) -> bool:
        """Jobs of vanished job servers back to TODO, silent jobs to TOCHECK, files never announced
        recorded as missing, final runs compacted (every few seconds, and once more before
        ``--once`` stops). Whether anything changed (compaction changes nothing of the work)."""
        busy = self._recover_orphans()
        busy |= self._time_out()
        busy |= self._unannounced_files()
        self._compact()
        self._last_housekeeping = time.monotonic()
        return busy

    def _compact(self, per_pass: int = 5) -> None:
        """The retention policy: runs final, and untouched by any job, for ``compact_after`` (the
        settings) lose their per-file histograms and PMT sums, a few runs a pass, each under its run's lock (several
        job servers may look at once)."""
        after_s = self.context.settings.compact_after_s
        if after_s is None:
            return
        before = utcnow() - dt.timedelta(seconds=after_s)
        with self.transaction() as session:
            run_ids = queries.runs_to_compact(session, before=before, limit=per_pass)
        for run_id in run_ids:
            with self.transaction() as session:
                queries.lock_run(session, run_id=run_id)
                if not queries.runs_to_compact(session, before=before, run_ids=[run_id]):
                    continue  # changed meanwhile: compacted, or at work again
                done = queries.compact_run(session, run_id=run_id)
            log.info(
                "run %d compacted: %d histograms and %d PMT sums of its files dropped (%.1f MB)",
                run_id,
                done.histograms,
                done.pmt_stats,
                done.bytes / 1e6,
            )

    def waiting_retries(self) -> bool:
        """Whether a job this server is to retry after a backoff still waits."""
        if not self._backoff:
            return False
        with self.transaction() as session:
            waiting = {
                job.id
                for job in queries.jobs_with_ids(
                    session, job_ids=self._backoff, states=[JobState.TODO]
                )
            }
        self._backoff &= waiting
        return bool(waiting)

    # --- submission ------------------------------------------------------------------------------

    def _submit(self) -> bool:
        free = self.options.max_jobs - len(self.active)
        if free <= 0:
            return False
        busy = False
        now = utcnow()
        with self.transaction() as session:
            due = queries.due_jobs(session, now=now, limit=free + 50)
            active_runs = {
                _run_key(job) for job in queries.jobs_in_states(session, states=jobs.ACTIVE_STATES)
            }
        for candidate in due:
            if free <= 0:
                break
            kind = jobs.REGISTRY.get(candidate.kind)
            if kind is not None and not kind.per_file and _run_key(candidate) in active_runs:
                continue  # one run-level job of a kind at a time: merges never overtake each other
            submitted = self._submit_one(candidate.id, now)
            busy = True
            if submitted is not None:
                free -= 1
                active_runs.add(_run_key(submitted))
        return busy

    def _submit_one(self, job_id: int, now: dt.datetime) -> Job | None:
        with self.transaction() as session:
            # Locked: of several job servers that see it due, one only submits it.
            job = queries.find_job(session, job_id=job_id, lock=True, skip_locked=True)
            if job is None or job.state != JobState.TODO:
                return None
            kind = jobs.REGISTRY.get(job.kind)
            if kind is not None and not kind.per_file and not self._run_free(session, job):
                return None
            if kind is None:
                reason = f"no job kind {job.kind!r} is registered in this job server"
                transition_job(session, job=job, state=JobState.FAILED, reason=reason, now=now)
                queries.refresh_run_status(session, run_id=job.run_id)
                return None
            try:
                waiting = kind.check_ready(session, job, self.context) if kind.check_ready else None
                argument = None if waiting else kind.prepare(session, job, self.context)
            except DQMError as exc:
                transition_job(
                    session,
                    job=job,
                    state=JobState.FAILED,
                    reason=first_line(exc, with_type=True),
                    now=now,
                )
                queries.refresh_run_status(session, run_id=job.run_id)
                return None
            if waiting:
                self._wait_for_data(session, job, waiting, now)
                queries.refresh_run_status(session, run_id=job.run_id)
                return None
            transition_job(
                session, job=job, state=JobState.SUBMITTED, worker=self.server_id, now=now
            )
            queries.refresh_run_status(session, run_id=job.run_id)
            attempt = job.attempts
        failpoint("submit:after-commit", kind.name)
        handle = self.executor.submit(kind.execute, argument, key=f"{job.kind}-{job.id}-{attempt}")
        self.active[job.id] = _Out(handle, kind, attempt, time.monotonic())
        failpoint("submit:after-handoff", kind.name)
        return job

    @staticmethod
    def _run_free(session: Session, job: Job) -> bool:
        """Whether no job of the same run-level key is out, asked with the run's row locked, so
        that two job servers never submit two merges of one run (or two of one analysis) at
        once: they would overtake each other."""
        queries.lock_run(session, run_id=job.run_id)
        key = _run_key(job)
        return not any(
            _run_key(other) == key and other.id != job.id
            for other in queries.jobs_in_states(session, states=jobs.ACTIVE_STATES)
        )

    def _wait_for_data(self, session: Session, job: Job, reason: str, now: dt.datetime) -> None:
        """Keep a TODO job waiting for its data, or send it to TOCHECK once it waited too long."""
        file = queries.get_file(session, file_id=job.file_id) if job.file_id is not None else None
        since = file.arrived_at if file is not None else job.created_at
        waited = (now - since).total_seconds()
        if waited > self.options.availability_timeout_s:
            transition_job(
                session,
                job=job,
                state=JobState.TOCHECK,
                reason=f"{reason} after {waited:.0f} s",
                now=now,
            )
        else:
            if job.not_before is None or job.error != reason:
                log.info("job %d %s run %d: waiting: %s", job.id, job.kind, job.run_id, reason)
            job.error = reason  # what it waits for, shown with it until it is done
            job.not_before = now + dt.timedelta(seconds=self.options.availability_poll_s)

    # --- results ---------------------------------------------------------------------------------

    def _mark_started(self) -> bool:
        started = [
            job_id for job_id, out in self.active.items() if self.executor.started(out.handle)
        ]
        if not started:
            return False
        changed = False
        with self.transaction() as session:
            for job in queries.jobs_with_ids(session, job_ids=started, states=[JobState.SUBMITTED]):
                transition_job(session, job=job, state=JobState.RUNNING)
                changed = True
        return changed

    def _collect(self) -> bool:
        done = [job_id for job_id, out in self.active.items() if self.executor.done(out.handle)]
        for job_id in done:
            out = self.active[job_id]
            try:
                result, error = self.executor.outcome(out.handle), None
            except BaseException as exc:  # noqa: BLE001 - whatever the job raised is its outcome
                result, error = None, exc
            stored: JobState | None = None
            with self.transaction() as session:
                job = queries.find_job(session, job_id=job_id, lock=True)
                if (
                    job is None
                    or job.state not in jobs.ACTIVE_STATES
                    or job.attempts != out.attempt
                    or job.worker != self.server_id
                ):
                    log.warning(
                        "job %d: result of attempt %d dropped: the job changed meanwhile",
                        job_id,
                        out.attempt,
                    )
                else:
                    self._store_outcome(session, job, out.kind, result, error)
                    stored = job.state
                    failpoint("complete:before-commit", out.kind.name)
            failpoint("complete:after-commit", out.kind.name)
            del self.active[job_id]
            if stored is not None and self.on_finished is not None:
                self.on_finished(out.kind.name, stored, time.monotonic() - out.since)
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
        if error is None:
            kind.complete(session, job, result, self.context)
            transition_job(session, job=job, state=JobState.DONE, now=now)
            if job.file_id is not None:
                run = queries.get_run(session, run_id=job.run_id)
                file = queries.get_file(session, file_id=job.file_id)
                jobs.create_jobs(session, "file_done", run, file, self.context)
            elif job.kind == jobs.MERGE_RUN.name:
                analyses.after_merge(session, job.run_id, self.context)
                checks.after_merge(session, job.run_id, self.context)
        elif isinstance(error, FileNotReady):
            # Not the job's fault: it waits for its data, as before its submission.
            transition_job(
                session,
                job=job,
                state=JobState.TODO,
                reason="data not ready",
                retry=Retry.NOT_COUNTED,
                now=now,
            )
            self._wait_for_data(session, job, first_line(error, with_type=True), now)
        else:
            reason = first_line(error, with_type=True)
            trace = getattr(error, "traceback_text", None)  # where an analysis failed, if known
            permanent = isinstance(error, kind.permanent_errors)
            if permanent or job.attempts >= self.options.max_attempts:
                why = (
                    "cannot succeed"
                    if permanent
                    else f"attempt {job.attempts} of {self.options.max_attempts}"
                )
                transition_job(
                    session,
                    job=job,
                    state=JobState.FAILED,
                    reason=reason,
                    now=now,
                    note=why,
                    traceback=trace,
                )
            else:
                delay = min(
                    self.options.retry_base_s * 2 ** (job.attempts - 1), self.options.retry_max_s
                )
                self._backoff.add(job.id)
                transition_job(
                    session,
                    job=job,
                    state=JobState.TODO,
                    reason=reason,
                    retry=Retry.AFTER_FAILURE,
                    not_before=now + dt.timedelta(seconds=delay),
                    now=now,
                    note=f"retry in {delay:.0f} s after",
                    traceback=trace,
                )
        if job.kind == analyses.ANALYSIS.name and job.state not in (
            *jobs.ACTIVE_STATES,
            JobState.TODO,
        ):
            checks.after_analysis(session, job.run_id, self.context)
        queries.refresh_run_status(session, run_id=job.run_id)

    # --- housekeeping ----------------------------------------------------------------------------

    def _recover_orphans(self) -> bool:
        """Jobs out with a job server that is gone go back to TODO (they are submitted again),
        unless their job servers vanished so often that the job itself is the likely cause."""
        now = utcnow()
        lease = dt.timedelta(seconds=self.options.lease_s)
        changed = False
        with self.transaction() as session:
            # the jobs another server is storing the result of right now are left alone
            active = queries.jobs_in_states(session, states=jobs.ACTIVE_STATES, lock_free_only=True)
            for job in active:
                if job.id in self.active:
                    continue
                stale = job.heartbeat_at is None or now - job.heartbeat_at > lease
                if not (job.worker == self.server_id or _owner_gone(job.worker) or stale):
                    continue
                note = f"its job server {job.worker} vanished"
                if job.interruptions + 1 >= self.options.max_interruptions:
                    reason = (
                        f"{note}; its job servers vanished {job.interruptions + 1} times while it "
                        "was out: the job itself may be what stops them"
                    )
                    transition_job(
                        session,
                        job=job,
                        state=JobState.FAILED,
                        reason=reason,
                        retry=Retry.AFTER_INTERRUPTION,
                        now=now,
                    )
                else:
                    transition_job(
                        session,
                        job=job,
                        state=JobState.TODO,
                        reason=f"{note}; submitting again",
                        retry=Retry.AFTER_INTERRUPTION,
                        now=now,
                    )
                queries.refresh_run_status(session, run_id=job.run_id)
                changed = True
        return changed

    def _unannounced_files(self) -> bool:
        """Files that run_end counted but no file_ready announced, once the availability timeout has
        passed since run_end: recorded as MISSING with a TOCHECK job that says so."""
        now = utcnow()
        changed = False
        with self.transaction() as session:
            for run in queries.runs_missing_files(session):
                ended_at = queries.run_end_received_at(session, run_id=run.run_id) or now
                waited = (now - ended_at).total_seconds()
                if waited < self.options.availability_timeout_s:
                    continue
                known = {f.seq for f in queries.files_of_run(session, run_id=run.run_id)}
                for seq in sorted(set(range(run.n_files or 0)) - known):
                    file = queries.add_file(
                        session, run_id=run.run_id, seq=seq, uri="", state=FileState.MISSING
                    )
                    job = queries.add_job(
                        session, kind=jobs.PROCESS_FILE.name, run_id=run.run_id, file_id=file.id
                    )
                    transition_job(
                        session,
                        job=job,
                        state=JobState.TOCHECK,
                        reason=f"file {seq} of run {run.run_id} was counted by run_end but never "
                        f"announced (waited {waited:.0f} s)",
                        now=now,
                    )
                queries.refresh_run_status(session, run_id=run.run_id)
                changed = True
        return changed

    def _time_out(self) -> bool:
        """Jobs out past their kind's time limit are FAILED (their work cannot finish); jobs out
        past the job timeout go to TOCHECK (something is wrong that a person should look at)."""
        now = utcnow()
        limit = dt.timedelta(seconds=self.options.job_timeout_s)
        late = []
        with self.transaction() as session:
            for job in queries.jobs_with_ids(session, job_ids=list(self.active)):
                if job.submitted_at is None:
                    continue
                out_s = (now - job.submitted_at).total_seconds()
                kind = self.active[job.id].kind
                own = kind.time_limit(job, self.context) if kind.time_limit else None
                if own is not None and out_s > own:
                    reason = f"no result after {out_s:.0f} s, past its time limit of {own:.0f} s"
                    transition_job(session, job=job, state=JobState.FAILED, reason=reason, now=now)
                elif out_s > limit.total_seconds():
                    reason = f"no result after {limit.total_seconds():.0f} s"
                    transition_job(session, job=job, state=JobState.TOCHECK, reason=reason, now=now)
                else:
                    continue
                if job.kind == analyses.ANALYSIS.name:
                    checks.after_analysis(session, job.run_id, self.context)
                queries.refresh_run_status(session, run_id=job.run_id)
                late.append(job.id)
        for job_id in late:
            self.executor.cancel(self.active.pop(job_id).handle)
        return bool(late)

    # --- shutdown --------------------------------------------------------------------------------

    def finish(self, grace_s: float) -> None:
        """Wait up to ``grace_s`` for the jobs out, then give the rest back (TODO, attempt not
        counted): the next job server submits them again."""
        deadline = time.monotonic() + grace_s
        while self.active and time.monotonic() < deadline:
            if not self._collect():
                time.sleep(0.1)
        if not self.active:
            return
        with self.transaction() as session:
            for job in queries.jobs_with_ids(session, job_ids=list(self.active)):
                if job.state in jobs.ACTIVE_STATES and job.worker == self.server_id:
                    transition_job(
                        session,
                        job=job,
                        state=JobState.TODO,
                        reason="interrupted by the job server's shutdown",
                        retry=Retry.NOT_COUNTED,
                    )
                    queries.refresh_run_status(session, run_id=job.run_id)
