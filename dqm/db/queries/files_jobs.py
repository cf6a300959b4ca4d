"""Files and jobs: recording them, finding them, and the one transition function of jobs."""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from dqm.db.models import File, Job, Run

#: Run attributes that ``update_run`` may change.
from dqm.db.queries.runs import get_run, refresh_run_status
from dqm.errors import InvalidValueError, NotFoundError
from dqm.states import Certification, FileState, JobState, parse_job_state
from dqm.times import utcnow


def add_file(
    session: Session,
    *,
    run_id: int,
    seq: int,
    uri: str,
    size: int | None = None,
    checksum: str | None = None,
    n_events: int | None = None,
    state: FileState = FileState.ANNOUNCED,
) -> File:
    """Record a raw file of a run.

    Raises:
        NotFoundError: the run does not exist.
        InvalidValueError: the run already has a file with this sequence number.
    """
    get_run(session, run_id=run_id)
    existing = session.scalar(select(File).where(File.run_id == run_id, File.seq == seq))
    if existing is not None:
        raise InvalidValueError(f"run {run_id} already has file {seq} ({existing.uri}).")
    file = File(
        run_id=run_id,
        seq=seq,
        uri=uri,
        size=size,
        checksum=checksum,
        n_events=n_events,
        state=state,
    )
    session.add(file)
    session.flush()
    return file


def files_of_run(session: Session, *, run_id: int) -> list[File]:
    """The files of a run, by sequence number."""
    return list(session.scalars(select(File).where(File.run_id == run_id).order_by(File.seq)))


def add_job(
    session: Session,
    *,
    kind: str,
    run_id: int,
    file_id: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    code_version: str | None = None,
    not_before: dt.datetime | None = None,
    analysis: str | None = None,
    analysis_version: int | None = None,
    backfill_id: int | None = None,
) -> Job:
    """Create a job in state TODO (an analysis job names its analysis and version)."""
    job = Job(
        kind=kind,
        run_id=run_id,
        file_id=file_id,
        state=JobState.TODO,
        attempts=0,
        parameters=dict(parameters or {}),
        code_version=code_version,
        not_before=not_before,
        analysis=analysis,
        analysis_version=analysis_version,
        backfill_id=backfill_id,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, *, job_id: int) -> Job:
    """The job ``job_id``.

    Raises:
        NotFoundError: no such job.
    """
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"job {job_id} does not exist.")
    return job


def open_job(session: Session, *, kind: str, run_id: int, file_id: int | None = None) -> Job | None:
    """A job of this kind for this run (and file) that has not started yet (TODO), if any."""
    query = select(Job).where(Job.kind == kind, Job.run_id == run_id, Job.state == JobState.TODO)
    if file_id is not None:
        query = query.where(Job.file_id == file_id)
    return session.scalar(query.limit(1))


def due_jobs(session: Session, *, now: dt.datetime, limit: int) -> list[Job]:
    """TODO jobs whose time has come (no backoff pending), oldest first; a backfill's jobs only
    after every other (a backfill over a year of runs never delays the runs coming in)."""
    due = select(Job).where(
        Job.state == JobState.TODO, or_(Job.not_before.is_(None), Job.not_before <= now)
    )
    found = list(
        session.scalars(due.where(Job.backfill_id.is_(None)).order_by(Job.id).limit(limit))
    )
    if len(found) < limit:
        found += session.scalars(
            due.where(Job.backfill_id.is_not(None)).order_by(Job.id).limit(limit - len(found))
        )
    return found


def jobs_in_states(
    session: Session,
    *,
    states: Iterable[JobState],
    worker: str | None = None,
    lock_free_only: bool = False,
) -> list[Job]:
    """Jobs in any of ``states`` (of one worker if given); ``lock_free_only``: those no other
    transaction holds, locked until this one ends (see :func:`find_job`)."""
    query = select(Job).where(Job.state.in_(list(states)))
    if worker is not None:
        query = query.where(Job.worker == worker)
    if lock_free_only:
        query = query.with_for_update(skip_locked=True)
    return list(session.scalars(query.order_by(Job.id)))


def list_jobs(
    session: Session,
    *,
    run_id: int | None = None,
    state: JobState | str | None = None,
    kind: str | None = None,
    limit: int | None = 200,
) -> list[Job]:
    """Jobs, newest first, filtered by run, state and kind."""
    query = select(Job)
    if run_id is not None:
        query = query.where(Job.run_id == run_id)
    if state is not None:
        query = query.where(Job.state == parse_job_state(state))
    if kind is not None:
        query = query.where(Job.kind == kind)
    query = query.order_by(Job.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def job_kinds(session: Session) -> list[str]:
    """The kinds of job in the database, sorted."""
    return sorted(session.scalars(select(Job.kind).distinct()))


def count_jobs_by_state(session: Session, *, run_id: int | None = None) -> dict[JobState, int]:
    """Number of jobs in each state (of one run if given)."""
    query = select(Job.state, func.count()).group_by(Job.state)
    if run_id is not None:
        query = query.where(Job.run_id == run_id)
    return {JobState(state): count for state, count in session.execute(query)}


def count_jobs_by_state_and_kind(session: Session) -> dict[tuple[JobState, str], int]:
    """Number of jobs of each (state, kind) there are jobs of (one grouped count)."""
    query = select(Job.state, Job.kind, func.count()).group_by(Job.state, Job.kind)
    return {(JobState(state), kind): count for state, kind, count in session.execute(query)}


def oldest_waiting_job(session: Session) -> dt.datetime | None:
    """When the oldest job waiting to be submitted (TODO) was created; None: none waits."""
    oldest: dt.datetime | None = session.scalar(
        select(func.min(Job.created_at)).where(Job.state == JobState.TODO)
    )
    return oldest


def get_file(session: Session, *, file_id: int) -> File:
    """The file ``file_id``.

    Raises:
        NotFoundError: no such file.
    """
    file = session.get(File, file_id)
    if file is None:
        raise NotFoundError(f"file {file_id} does not exist.")
    return file


def find_file(session: Session, *, run_id: int, seq: int) -> File | None:
    """File ``seq`` of a run, if it is recorded."""
    return session.scalar(select(File).where(File.run_id == run_id, File.seq == seq))


def find_job(
    session: Session, *, job_id: int, lock: bool = False, skip_locked: bool = False
) -> Job | None:
    """The job ``job_id``, or None if there is no such job.

    ``lock``: its row is locked until the transaction ends (``SELECT … FOR UPDATE`` on PostgreSQL
    and MariaDB; SQLite has one writer at a time anyway), so that of several job servers one only
    changes it; with ``skip_locked``, a job another transaction holds is None at once.
    """
    if not lock:
        return session.get(Job, job_id)
    return session.get(
        Job, job_id, with_for_update={"skip_locked": skip_locked}, populate_existing=True
    )


def jobs_with_ids(
    session: Session, *, job_ids: Iterable[int], states: Iterable[JobState] | None = None
) -> list[Job]:
    """The jobs among ``job_ids`` (those in ``states``, if given), by id."""
    query = select(Job).where(Job.id.in_(list(job_ids)))
    if states is not None:
        query = query.where(Job.state.in_(list(states)))
    return list(session.scalars(query.order_by(Job.id)))


def record_heartbeat(session: Session, *, job_ids: Iterable[int], now: dt.datetime) -> None:
    """Note that the jobs ``job_ids`` are still out with their job server."""
    ids = list(job_ids)
    if ids:
        session.execute(update(Job).where(Job.id.in_(ids)).values(heartbeat_at=now))


_jobs_log = logging.getLogger("dqm.jobs")


#: What the state of a per-file job means for its file. Every transition applies this table, so a
#: file's state is always its job's, seen from the file.
FILE_STATE_OF_JOB: dict[JobState, FileState] = {
    JobState.TODO: FileState.ANNOUNCED,
    JobState.SUBMITTED: FileState.PROCESSING,
    JobState.RUNNING: FileState.PROCESSING,
    JobState.DONE: FileState.DONE,
    JobState.FAILED: FileState.FAILED,
    JobState.TOCHECK: FileState.MISSING,
}


class Retry(enum.StrEnum):
    """Why a job goes back to TODO (or ends after an interruption): what that resets.

    This is the one rule of retries:

    - ``FRESH``: a person asked (``dqm retry``), or data given up on arrived after all. Attempts
      and interruptions start again from zero; error, worker, backoff and end time are cleared.
    - ``AFTER_FAILURE``: its attempt failed and it is tried again after a backoff. The attempt
      counts; the error is kept for the shifter.
    - ``AFTER_INTERRUPTION``: its job server vanished while it was out (``kill -9``, the OOM
      killer, a power cut). The attempt is given back and the interruption counts instead,
      against a limit of its own, so that a restart costs no data while a job that kills its job
      server each time still ends FAILED.
    - ``NOT_COUNTED``: its job server stopped cleanly, or its data turned out not to be there yet.
      The attempt is given back and nothing counts.
    """

    FRESH = "fresh"
    AFTER_FAILURE = "after failure"
    AFTER_INTERRUPTION = "after interruption"
    NOT_COUNTED = "not counted"


def transition_job(
    session: Session,
    *,
    job: Job,
    state: JobState,
    reason: str | None = None,
    retry: Retry | None = None,
    worker: str | None = None,
    not_before: dt.datetime | None = None,
    now: dt.datetime | None = None,
    note: str | None = None,
    traceback: str | None = None,
) -> None:
    """Move a job to ``state``, with everything that goes with it, in the caller's transaction.

    The one place where a job changes state: its counters and times follow the state, its file
    (if any) takes the state ``FILE_STATE_OF_JOB`` gives, and one log line says what happened.
    The caller refreshes the run's status once its unit of work is complete.

    Args:
        job: the job; ``state`` may be the state it is in (a TODO job that keeps waiting).
        state: the new state.
        reason: why, for the log; kept as the job's error for FAILED and TOCHECK, and for a return
            to TODO after a failure or an interruption.
        retry: what a return to TODO resets (:class:`Retry`); required for TODO, and given with
            ``AFTER_INTERRUPTION`` for a job that ends FAILED because its server vanished.
        worker: the job server a SUBMITTED job is out with (``host:pid``).
        not_before: when a TODO job may be submitted again (a backoff, or a wait for data).
        now: the time of the change (default: now, UTC).
        note: words for the log line only, before the reason (``attempt 3 of 3``).
        traceback: where the failure happened in code (an analysis that raised), kept with the
            error for FAILED and for a return to TODO after a failure; cleared otherwise.

    Raises:
        InvalidValueError: ``retry`` missing for TODO, or ``worker`` missing for SUBMITTED.
    """
    now = now or utcnow()
    old = job.state
    if state == JobState.TODO and retry is None:
        raise InvalidValueError(f"job {job.id}: a return to TODO needs a Retry rule.")
    if retry == Retry.FRESH:
        job.attempts = job.interruptions = 0
        job.error = job.worker = job.finished_at = job.traceback = None
    elif retry in (Retry.AFTER_INTERRUPTION, Retry.NOT_COUNTED) and old in (
        JobState.SUBMITTED,
        JobState.RUNNING,
    ):
        job.attempts = max(job.attempts - 1, 0)
        if retry == Retry.AFTER_INTERRUPTION:
            job.interruptions += 1
    if state == JobState.TODO:
        job.not_before = not_before
        if retry in (Retry.AFTER_FAILURE, Retry.AFTER_INTERRUPTION):
            job.error = reason
        if retry == Retry.AFTER_FAILURE:
            job.traceback = traceback
    elif state == JobState.SUBMITTED:
        if worker is None:
            raise InvalidValueError(f"job {job.id}: a submitted job needs its job server.")
        job.attempts += 1
        job.worker = worker
        job.submitted_at = job.heartbeat_at = now
        job.started_at = job.not_before = None
        reason = reason or f"attempt {job.attempts}"
    elif state == JobState.RUNNING:
        job.started_at = now
    elif state == JobState.DONE:
        job.error = job.traceback = None
        job.finished_at = now
        if job.started_at is None:
            job.started_at = job.submitted_at
    else:  # FAILED, TOCHECK
        job.error = reason
        job.traceback = traceback
        job.finished_at = now
    job.state = state
    if job.file_id is not None:
        get_file(session, file_id=job.file_id).state = FILE_STATE_OF_JOB[state]
    if old != state or retry is not None:
        where = f" file {job.file_id}" if job.file_id is not None else ""
        _jobs_log.info(
            "job %d %s run %d%s: %s -> %s%s",
            job.id,
            job.kind,
            job.run_id,
            where,
            old.value,
            state.value,
            f" ({': '.join(filter(None, (note, reason)))})" if note or reason else "",
        )


def retry_jobs(
    session: Session,
    *,
    job_id: int | None = None,
    run_id: int | None = None,
    user: str | None = None,
    role: str = "admin",
    reason: str = "",
) -> list[Job]:
    """Put FAILED and TOCHECK jobs (one job, or all of a run) back to TODO with fresh attempts.

    A certified run is frozen: reprocessing it sends it back to sign-off, recorded as a decision
    of ``user`` with ``reason`` (both needed then; whether ``role`` may is the caller's to ask,
    see dqm.users' ``reprocess_certified``).

    Raises:
        NotFoundError: the job or run does not exist.
        InvalidValueError: the job is not FAILED or TOCHECK; a certified run without a user or
            a reason.
    """
    if job_id is not None:
        job = get_job(session, job_id=job_id)
        if job.state not in (JobState.FAILED, JobState.TOCHECK):
            raise InvalidValueError(
                f"job {job_id} is {job.state.value}; only FAILED or TOCHECK jobs are retried."
            )
        jobs = [job]
    else:
        if run_id is None:
            raise InvalidValueError("give a job id or a run.")
        get_run(session, run_id=run_id)
        jobs = list(
            session.scalars(
                select(Job).where(
                    Job.run_id == run_id, Job.state.in_([JobState.FAILED, JobState.TOCHECK])
                )
            )
        )
    from dqm.db.queries.certification import decide  # (certification reads jobs' modules)

    for run in sorted({job.run_id for job in jobs}):
        certified = session.get(Run, run)
        if certified is None or certified.certification != Certification.CERTIFIED:
            continue
        if not user or not reason.strip():
            raise InvalidValueError(
                f"run {run} is certified: reprocessing it sends it back to sign-off, and needs "
                "an expert and the reason."
            )
        decide(
            session,
            run_id=run,
            action="reopen",
            user=user,
            role=role,
            comment=f"reprocessed: {reason.strip()}",
        )
    for job in jobs:
        transition_job(
            session, job=job, state=JobState.TODO, reason="retried by hand", retry=Retry.FRESH
        )
    session.flush()
    for run in {job.run_id for job in jobs}:
        refresh_run_status(session, run_id=run)
    return jobs


def processing_lag(session: Session) -> tuple[int, dt.datetime | None]:
    """How many files wait for their processing (announced or being processed), and when the
    oldest of them arrived (None: none waits)."""
    count, oldest = session.execute(
        select(func.count(), func.min(File.arrived_at)).where(
            File.state.in_([FileState.ANNOUNCED, FileState.PROCESSING])
        )
    ).one()
    return int(count), oldest


def job_activity(session: Session) -> tuple[dt.datetime | None, int]:
    """When a job last changed (finished, or beat its heart), and how many are out now."""
    last = session.execute(
        select(func.max(Job.finished_at), func.max(Job.heartbeat_at), func.max(Job.submitted_at))
    ).one()
    out = session.scalar(
        select(func.count()).where(Job.state.in_([JobState.SUBMITTED, JobState.RUNNING]))
    )
    times = [t for t in last if t is not None]
    return (max(times) if times else None), int(out or 0)


def events_so_far(session: Session, *, run_id: int) -> int:
    """The events in the files of a run announced so far (a run taking data has no count yet)."""
    return int(
        session.scalar(
            select(func.coalesce(func.sum(File.n_events), 0)).where(File.run_id == run_id)
        )
        or 0
    )
