"""Query functions of the DQM database.

Plain functions with keyword-only arguments that take a :class:`~sqlalchemy.orm.Session`; the caller
owns the transaction (``with transaction(url) as session: ...``). The job server, the dashboard's
state classes and the command line all go through these: nothing else writes SQL.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import hist
import numpy as np
from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from dqm import eventtable
from dqm.config import REC_METHODS
from dqm.db.models import (
    Calibration,
    Change,
    CutDefaults,
    EventTable,
    File,
    FileState,
    Histogram,
    Job,
    JobState,
    Message,
    MessageOutcome,
    PmtStats,
    Run,
    RunStatus,
)
from dqm.errors import InvalidValueError, NotFoundError
from dqm.histcodec import array_from_bytes, array_to_bytes, decode, encode
from dqm.pmtclass import HitRateCuts
from dqm.pmtstats import PMT_ARRAYS
from dqm.runs import check_comment
from dqm.runstatus import derive_run_status
from dqm.times import parse_time, utcnow
from dqm.users import require_writer

#: Run attributes that ``update_run`` may change.
RUN_FIELDS = (
    "detector",
    "run_type",
    "start_time",
    "end_time",
    "status",
    "n_events",
    "n_files",
    "sampling_fraction",
    "rec_method",
    "comment",
)

#: Run statuses that mean processing has finished, well or badly.
FINAL_STATUSES = (RunStatus.ALL_COMPLETED, RunStatus.FAILED)


def parse_status(value: str | RunStatus) -> RunStatus:
    """A run status from its display name or enum name, case-insensitively.

    ``"All Completed"``, ``"all-completed"`` and ``"ALL_COMPLETED"`` all give
    :attr:`RunStatus.ALL_COMPLETED`.

    Raises:
        InvalidValueError: not a run status (the message lists the valid ones).
    """
    if isinstance(value, RunStatus):
        return value
    key = value.strip().replace("-", " ").replace("_", " ").casefold()
    for status in RunStatus:
        if key == status.value.casefold():
            return status
    valid = ", ".join(repr(s.value) for s in RunStatus)
    raise InvalidValueError(f"{value!r} is not a run status; use one of {valid}.")


# --- runs --------------------------------------------------------------------------------------


def get_run(session: Session, run_id: int) -> Run:
    """The run ``run_id``.

    Raises:
        NotFoundError: no such run.
    """
    run = session.get(Run, run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} does not exist.")
    return run


def find_run(session: Session, run_id: int) -> Run | None:
    """The run ``run_id``, or ``None``."""
    return session.get(Run, run_id)


def _check_run(run: Run) -> None:
    if run.run_id < 0:
        raise InvalidValueError(f"run id {run.run_id} is negative; run ids are positive integers.")
    if run.end_time is not None and run.start_time is not None and run.end_time < run.start_time:
        raise InvalidValueError(
            f"run {run.run_id}: end time {run.end_time:%Y-%m-%d %H:%M:%S} is before its start time "
            f"{run.start_time:%Y-%m-%d %H:%M:%S}."
        )
    if run.sampling_fraction is not None and not 0.0 < run.sampling_fraction <= 1.0:
        raise InvalidValueError(
            f"run {run.run_id}: sampling fraction {run.sampling_fraction} is not in (0, 1]."
        )
    if run.rec_method is not None and run.rec_method not in REC_METHODS:
        raise InvalidValueError(
            f"run {run.run_id}: reconstruction method {run.rec_method!r} is not one of "
            f"{', '.join(REC_METHODS)}."
        )
    for name in ("n_events", "n_files"):
        value = getattr(run, name)
        if value is not None and value < 0:
            raise InvalidValueError(f"run {run.run_id}: {name} {value} is negative.")


def add_run(
    session: Session,
    *,
    run_id: int,
    run_type: str,
    start_time: dt.datetime | str,
    detector: str = "CD",
    end_time: dt.datetime | str | None = None,
    status: RunStatus | str | None = None,
    n_events: int | None = None,
    n_files: int | None = None,
    sampling_fraction: float = 1.0,
    rec_method: str | None = None,
    comment: str | None = None,
) -> Run:
    """Record a new run.

    The status defaults to Data Taking, or to Rec Running when an end time is given.

    Raises:
        InvalidValueError: the run exists already, or a value is invalid.
    """
    if session.get(Run, run_id) is not None:
        raise InvalidValueError(f"run {run_id} exists already; use 'dqm run set' to change it.")
    if status is None:
        status = RunStatus.DATA_TAKING if end_time is None else RunStatus.REC_RUNNING
    run = Run(
        run_id=run_id,
        run_type=run_type,
        detector=detector,
        start_time=parse_time(start_time, what="start time"),
        end_time=None if end_time is None else parse_time(end_time, what="end time"),
        status=parse_status(status),
        n_events=n_events,
        n_files=n_files,
        sampling_fraction=sampling_fraction,
        rec_method=rec_method,
        comment=comment,
    )
    _check_run(run)
    session.add(run)
    session.flush()
    return run


def update_run(session: Session, run_id: int, **changes: Any) -> Run:
    """Change attributes of a run (any of :data:`RUN_FIELDS`).

    Times may be given as ISO 8601 text; the status by name.

    Raises:
        NotFoundError: no such run.
        InvalidValueError: unknown attribute or invalid value.
    """
    run = get_run(session, run_id)
    for name, value in changes.items():
        if name not in RUN_FIELDS:
            raise InvalidValueError(
                f"{name!r} is not a run attribute; use one of {', '.join(RUN_FIELDS)}."
            )
        if name in ("start_time", "end_time") and value is not None:
            value = parse_time(value, what=name.replace("_", " "))
        if name == "status":
            value = parse_status(value)
        setattr(run, name, value)
    _check_run(run)
    session.flush()
    return run


def delete_run(session: Session, run_id: int) -> None:
    """Delete a run with its files, jobs, histograms and PMT statistics.

    Raises:
        NotFoundError: no such run.
    """
    get_run(session, run_id)
    # Explicit deletes, children first, so that the result does not depend on whether the
    # backend enforces ON DELETE CASCADE (SQLite does only with foreign keys on).
    for model in (Histogram, PmtStats, Job, File):
        session.execute(delete(model).where(model.run_id == run_id))
    session.execute(delete(Run).where(Run.run_id == run_id))
    session.expunge_all()


def recent_runs(
    session: Session,
    *,
    limit: int | None = None,
    days: float | None = None,
    status: RunStatus | str | Iterable[RunStatus | str] | None = None,
    run_type: str | Iterable[str] | None = None,
    completed: bool = False,
    now: dt.datetime | None = None,
) -> list[Run]:
    """Recent runs, the running ones first, then by end time, newest first.

    Args:
        limit: at most this many runs (the "Recent Runs" mode).
        days: only runs still taking data or that ended in the last ``days`` days, or started in
            them (the "Recent Days" mode).
        status: only runs in this status (or these statuses).
        run_type: only runs of this type (or these types).
        completed: only runs whose processing has finished (All Completed or Failed).
        now: the reference time for ``days`` (default: the current UTC time).
    """
    query = select(Run)
    if days is not None:
        if days < 0:
            raise InvalidValueError(f"days {days} is negative.")
        cutoff = (now or utcnow()) - dt.timedelta(days=days)
        query = query.where(
            or_(Run.end_time.is_(None), Run.end_time >= cutoff, Run.start_time >= cutoff)
        )
    if status is not None:
        statuses = [status] if isinstance(status, str | RunStatus) else list(status)
        query = query.where(Run.status.in_([parse_status(s) for s in statuses]))
    if completed:
        query = query.where(Run.status.in_(FINAL_STATUSES))
    if run_type is not None:
        types = [run_type] if isinstance(run_type, str) else list(run_type)
        query = query.where(Run.run_type.in_(types))
    # Two indexed queries rather than one ORDER BY over an expression (which scans every run):
    # the few runs still taking data, then the ended ones by end time.
    running = list(
        session.scalars(
            query.where(Run.end_time.is_(None)).order_by(Run.start_time.desc(), Run.run_id.desc())
        )
    )
    if limit is not None:
        if limit < 0:
            raise InvalidValueError(f"limit {limit} is negative.")
        running = running[:limit]
    ended_query = query.where(Run.end_time.is_not(None)).order_by(
        Run.end_time.desc(), Run.start_time.desc(), Run.run_id.desc()
    )
    if limit is not None:
        ended_query = ended_query.limit(limit - len(running))
    return running + list(session.scalars(ended_query))


def run_types(session: Session) -> list[str]:
    """The run types present in the database, sorted."""
    return list(session.scalars(select(Run.run_type).distinct().order_by(Run.run_type)))


def count_runs_by_status(session: Session) -> dict[RunStatus, int]:
    """Number of runs in each status (statuses with no run are absent)."""
    rows = session.execute(select(Run.status, func.count()).group_by(Run.status))
    return {RunStatus(status): count for status, count in rows}


# --- files -------------------------------------------------------------------------------------


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
    get_run(session, run_id)
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


def files_of_run(session: Session, run_id: int) -> list[File]:
    """The files of a run, by sequence number."""
    return list(session.scalars(select(File).where(File.run_id == run_id).order_by(File.seq)))


# --- jobs ------------------------------------------------------------------------------------


def add_job(
    session: Session,
    *,
    kind: str,
    run_id: int,
    file_id: int | None = None,
    parameters: Mapping[str, Any] | None = None,
    code_version: str | None = None,
    not_before: dt.datetime | None = None,
) -> Job:
    """Create a job in state TODO."""
    job = Job(
        kind=kind,
        run_id=run_id,
        file_id=file_id,
        state=JobState.TODO,
        attempts=0,
        parameters=dict(parameters or {}),
        code_version=code_version,
        not_before=not_before,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, job_id: int) -> Job:
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
    """TODO jobs whose time has come (no backoff pending), oldest first."""
    return list(
        session.scalars(
            select(Job)
            .where(Job.state == JobState.TODO, or_(Job.not_before.is_(None), Job.not_before <= now))
            .order_by(Job.id)
            .limit(limit)
        )
    )


def jobs_in_states(
    session: Session, states: Iterable[JobState], *, worker: str | None = None
) -> list[Job]:
    """Jobs in any of ``states`` (of one worker if given)."""
    query = select(Job).where(Job.state.in_(list(states)))
    if worker is not None:
        query = query.where(Job.worker == worker)
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


def parse_job_state(value: str | JobState) -> JobState:
    """A job state from its name, case-insensitively.

    Raises:
        InvalidValueError: not a job state.
    """
    if isinstance(value, JobState):
        return value
    for state in JobState:
        if value.strip().upper() == state.value:
            return state
    raise InvalidValueError(
        f"{value!r} is not a job state; use one of {', '.join(s.value for s in JobState)}."
    )


def count_jobs_by_state(session: Session, *, run_id: int | None = None) -> dict[JobState, int]:
    """Number of jobs in each state (of one run if given)."""
    query = select(Job.state, func.count()).group_by(Job.state)
    if run_id is not None:
        query = query.where(Job.run_id == run_id)
    return {JobState(state): count for state, count in session.execute(query)}


def get_file(session: Session, file_id: int) -> File:
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


def find_job(session: Session, job_id: int) -> Job | None:
    """The job ``job_id``, or None if there is no such job."""
    return session.get(Job, job_id)


def jobs_with_ids(
    session: Session, job_ids: Iterable[int], *, states: Iterable[JobState] | None = None
) -> list[Job]:
    """The jobs among ``job_ids`` (those in ``states``, if given), by id."""
    query = select(Job).where(Job.id.in_(list(job_ids)))
    if states is not None:
        query = query.where(Job.state.in_(list(states)))
    return list(session.scalars(query.order_by(Job.id)))


def record_heartbeat(session: Session, job_ids: Iterable[int], *, now: dt.datetime) -> None:
    """Note that the jobs ``job_ids`` are still out with their job server."""
    ids = list(job_ids)
    if ids:
        session.execute(update(Job).where(Job.id.in_(ids)).values(heartbeat_at=now))


# --- job state transitions ---------------------------------------------------------------------

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
    job: Job,
    state: JobState,
    reason: str | None = None,
    *,
    retry: Retry | None = None,
    worker: str | None = None,
    not_before: dt.datetime | None = None,
    now: dt.datetime | None = None,
    note: str | None = None,
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

    Raises:
        InvalidValueError: ``retry`` missing for TODO, or ``worker`` missing for SUBMITTED.
    """
    now = now or utcnow()
    old = job.state
    if state == JobState.TODO and retry is None:
        raise InvalidValueError(f"job {job.id}: a return to TODO needs a Retry rule.")
    if retry == Retry.FRESH:
        job.attempts = job.interruptions = 0
        job.error = job.worker = job.finished_at = None
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
        job.error = None
        job.finished_at = now
        if job.started_at is None:
            job.started_at = job.submitted_at
    else:  # FAILED, TOCHECK
        job.error = reason
        job.finished_at = now
    job.state = state
    if job.file_id is not None:
        get_file(session, job.file_id).state = FILE_STATE_OF_JOB[state]
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
    session: Session, *, job_id: int | None = None, run_id: int | None = None
) -> list[Job]:
    """Put FAILED and TOCHECK jobs (one job, or all of a run) back to TODO with fresh attempts.

    Raises:
        NotFoundError: the job or run does not exist.
        InvalidValueError: the job is not FAILED or TOCHECK.
    """
    if job_id is not None:
        job = get_job(session, job_id)
        if job.state not in (JobState.FAILED, JobState.TOCHECK):
            raise InvalidValueError(
                f"job {job_id} is {job.state.value}; only FAILED or TOCHECK jobs are retried."
            )
        jobs = [job]
    else:
        if run_id is None:
            raise InvalidValueError("give a job id or a run.")
        get_run(session, run_id)
        jobs = list(
            session.scalars(
                select(Job).where(
                    Job.run_id == run_id, Job.state.in_([JobState.FAILED, JobState.TOCHECK])
                )
            )
        )
    for job in jobs:
        transition_job(session, job, JobState.TODO, "retried by hand", retry=Retry.FRESH)
    session.flush()
    for run in {job.run_id for job in jobs}:
        refresh_run_status(session, run)
    return jobs


def runs_missing_files(session: Session) -> list[Run]:
    """Ended runs with fewer files recorded than their run_end counted."""
    counts = select(File.run_id, func.count().label("n")).group_by(File.run_id).subquery()
    query = (
        select(Run)
        .outerjoin(counts, counts.c.run_id == Run.run_id)
        .where(Run.end_time.is_not(None), Run.n_files > func.coalesce(counts.c.n, 0))
    )
    return list(session.scalars(query))


def run_end_received_at(session: Session, run_id: int) -> dt.datetime | None:
    """When the accepted run_end of a run was received."""
    return session.scalar(
        select(Message.received_at).where(
            Message.run_id == run_id,
            Message.type == "run_end",
            Message.outcome == MessageOutcome.ACCEPTED,
        )
    )


def refresh_run_status(session: Session, run_id: int) -> RunStatus:
    """Derive the run's status from its files and jobs and store it (in the caller's transaction)."""
    run = get_run(session, run_id)
    file_states = list(session.scalars(select(File.state).where(File.run_id == run_id)))
    job_states = list(session.scalars(select(Job.state).where(Job.run_id == run_id)))
    status = derive_run_status(
        ended=run.end_time is not None,
        n_files_announced=len(file_states),
        n_files_expected=run.n_files if run.end_time is not None else None,
        file_states=file_states,
        job_states=job_states,
    )
    if run.status != status:
        run.status = status
    return status


# --- messages ----------------------------------------------------------------------------------


def message_seen(session: Session, message_id: str) -> bool:
    """Whether a message with this id has been recorded already."""
    return session.scalar(select(Message.id).where(Message.message_id == message_id)) is not None


def record_message(
    session: Session,
    *,
    payload: str,
    outcome: MessageOutcome,
    message_id: str | None = None,
    type: str | None = None,
    run_id: int | None = None,
    error: str | None = None,
) -> Message:
    """Record a received message (accepted or rejected) exactly as it arrived."""
    message = Message(
        message_id=message_id,
        type=type,
        run_id=run_id,
        payload=payload,
        outcome=outcome,
        error=error,
    )
    session.add(message)
    session.flush()
    return message


def messages(
    session: Session, *, outcome: MessageOutcome | None = None, limit: int | None = 100
) -> list[Message]:
    """Received messages, newest first."""
    query = select(Message).order_by(Message.received_at.desc(), Message.id.desc())
    if outcome is not None:
        query = query.where(Message.outcome == outcome)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def _of_file(model: type[Histogram | PmtStats], run_id: int, file_id: int | None) -> Any:
    """Rows of one file of a run, or the run's merged row when ``file_id`` is None.

    A file's histograms are selected by ``file_id`` alone (file ids are unique across runs): that
    uses the unique index that starts with ``file_id``, where ``run_id AND file_id`` leads SQLite to
    the ``(run_id, stage, name)`` index and a scan of all the run's rows.
    """
    if file_id is not None and model is Histogram:
        return model.file_id == file_id
    scope = model.file_id.is_(None) if file_id is None else model.file_id == file_id
    return and_(model.run_id == run_id, scope)


# --- histograms --------------------------------------------------------------------------------


def save_histogram(
    session: Session,
    *,
    run_id: int,
    file_id: int | None,
    stage: str,
    name: str,
    histogram: hist.Hist,
    title: str | None = None,
    entries: float | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Histogram:
    """Store a histogram of a file (or of the run when ``file_id`` is None), replacing any earlier
    one of the same stage and name, so that storing twice gives the same rows."""
    encoded = encode(histogram, entries=entries)
    old = session.scalar(
        select(Histogram).where(
            _of_file(Histogram, run_id, file_id),
            Histogram.stage == stage,
            Histogram.name == name,
        )
    )
    row = old or Histogram(run_id=run_id, file_id=file_id, stage=stage, name=name)
    row.title = title
    row.axes = encoded.axes
    row.storage = encoded.storage
    row.values = encoded.values
    row.variances = encoded.variances
    row.entries = encoded.entries
    row.provenance = dict(provenance or {})
    row.created_at = utcnow()
    session.add(row)
    session.flush()
    return row


def histogram_rows(
    session: Session,
    *,
    run_id: int,
    file_id: int | None = None,
    stage: str | None = None,
    names: Sequence[str] | None = None,
) -> list[Histogram]:
    """The stored histograms of a run (``file_id`` None: the run's merged ones), by stage and name."""
    query = select(Histogram).where(
        _of_file(Histogram, run_id, file_id),
    )
    if stage is not None:
        query = query.where(Histogram.stage == stage)
    if names is not None:
        query = query.where(Histogram.name.in_(list(names)))
    return list(session.scalars(query.order_by(Histogram.stage, Histogram.name)))


def histograms_of_files(
    session: Session, *, run_id: int, file_ids: Sequence[int]
) -> dict[int, list[Histogram]]:
    """The stored histograms of several files of a run in one query, by file id (then by stage and
    name)."""
    found: dict[int, list[Histogram]] = {file_id: [] for file_id in file_ids}
    if not found:
        return found
    query = (
        select(Histogram)
        .where(Histogram.run_id == run_id, Histogram.file_id.in_(list(found)))
        .order_by(Histogram.file_id, Histogram.stage, Histogram.name)
    )
    for row in session.scalars(query):
        assert row.file_id is not None
        found[row.file_id].append(row)
    return found


def load_histogram(row: Histogram) -> hist.Hist:
    """The ``hist.Hist`` of a stored histogram row."""
    return decode(row.axes, row.storage, row.values, row.variances)


# --- PMT statistics ----------------------------------------------------------------------------

#: The per-PMT arrays of :class:`PmtStats`.


def save_pmt_stats(
    session: Session,
    *,
    run_id: int,
    file_id: int | None,
    n_events: int,
    livetime_ns: float,
    arrays: Mapping[str, np.ndarray],
    provenance: Mapping[str, Any] | None = None,
) -> PmtStats:
    """Store per-PMT sums of a file (or of the run), replacing earlier ones (idempotent).

    Raises:
        InvalidValueError: an array is missing or the arrays differ in length.
    """
    missing = [name for name in PMT_ARRAYS if name not in arrays]
    if missing:
        raise InvalidValueError(f"PMT statistics lack the array(s) {', '.join(missing)}.")
    lengths = {len(arrays[name]) for name in PMT_ARRAYS}
    if len(lengths) != 1:
        raise InvalidValueError(f"PMT statistics arrays differ in length: {sorted(lengths)}.")
    old = session.scalar(
        select(PmtStats).where(
            _of_file(PmtStats, run_id, file_id),
        )
    )
    row = old or PmtStats(run_id=run_id, file_id=file_id)
    row.n_pmts = lengths.pop()
    row.n_events = n_events
    row.livetime_ns = livetime_ns
    for name in PMT_ARRAYS:
        setattr(row, name, array_to_bytes(arrays[name]))
    row.provenance = dict(provenance or {})
    row.created_at = utcnow()
    session.add(row)
    session.flush()
    return row


def pmt_stats_row(session: Session, *, run_id: int, file_id: int | None = None) -> PmtStats | None:
    """The PMT statistics of a file, or of the run (``file_id`` None), if stored."""
    return session.scalar(
        select(PmtStats).where(
            _of_file(PmtStats, run_id, file_id),
        )
    )


def pmt_stats_of_files(
    session: Session, *, run_id: int, file_ids: Sequence[int]
) -> dict[int, PmtStats]:
    """The PMT statistics of several files of a run in one query, by file id (stored ones only)."""
    if not file_ids:
        return {}
    query = select(PmtStats).where(PmtStats.run_id == run_id, PmtStats.file_id.in_(list(file_ids)))
    return {row.file_id: row for row in session.scalars(query) if row.file_id is not None}


def pmt_arrays(row: PmtStats) -> dict[str, np.ndarray]:
    """The per-PMT arrays of a stored row, by name (see :data:`PMT_ARRAYS`)."""
    return {name: array_from_bytes(getattr(row, name)) for name in PMT_ARRAYS}


# --- calibrations ------------------------------------------------------------------------------


def add_calibration(
    session: Session,
    *,
    valid_from_run: int,
    gains: np.ndarray,
    time_offsets: np.ndarray,
    pmt_status: np.ndarray,
    source_run: int | None = None,
    created_by: str | None = None,
    comment: str | None = None,
) -> Calibration:
    """Store a new version of the per-PMT constants, valid from run ``valid_from_run`` on.

    The version number is one more than the highest so far.
    """
    if not len(gains) == len(time_offsets) == len(pmt_status):
        raise InvalidValueError("calibration arrays differ in length.")
    version = (session.scalar(select(func.max(Calibration.version))) or 0) + 1
    calibration = Calibration(
        version=version,
        valid_from_run=valid_from_run,
        source_run=source_run,
        n_pmts=len(gains),
        gains=array_to_bytes(gains),
        time_offsets=array_to_bytes(time_offsets),
        pmt_status=array_to_bytes(pmt_status),
        created_by=created_by,
        comment=comment,
    )
    session.add(calibration)
    session.flush()
    return calibration


def first_calibration(session: Session) -> Calibration | None:
    """The calibration valid from the earliest run (None: no calibration is stored)."""
    return session.scalar(
        select(Calibration).order_by(Calibration.valid_from_run, Calibration.version).limit(1)
    )


def calibration_for_run(session: Session, run_id: int) -> Calibration | None:
    """The calibration valid for ``run_id``: the newest version whose validity range contains it."""
    return session.scalar(
        select(Calibration)
        .where(
            Calibration.valid_from_run <= run_id,
            or_(Calibration.valid_to_run.is_(None), Calibration.valid_to_run >= run_id),
        )
        .order_by(Calibration.version.desc())
        .limit(1)
    )


# --- changes made through the dashboard (who and when) ---------------------------------------


def record_change(
    session: Session, *, user: str, action: str, target: str, detail: dict[str, Any]
) -> Change:
    """Record that ``user`` did ``action`` to ``target`` (a run type, job or run), now.

    Raises:
        InvalidValueError: ``user`` may not change anything (see :func:`dqm.users.may_write`).
    """
    require_writer(user)
    change = Change(user=user[:64], action=action, target=str(target)[:64], detail=detail)
    session.add(change)
    session.flush()
    return change


def changes(session: Session, *, limit: int | None = 50) -> list[Change]:
    """The latest recorded changes, newest first."""
    query = select(Change).order_by(Change.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def cut_defaults(session: Session, run_type: str) -> CutDefaults | None:
    """The PMT-map cuts saved for a run type, if any."""
    return session.get(CutDefaults, run_type)


def save_cut_defaults(
    session: Session,
    *,
    run_type: str,
    dead_cut: float,
    hot_cut: float,
    normal_band: tuple[float, float],
    user: str,
) -> CutDefaults:
    """Make these cuts the ones that the PMT map of every run of ``run_type`` starts from.

    Raises:
        InvalidValueError: a cut outside [0, 1], a band whose ends are swapped, or no user.
    """
    cuts = HitRateCuts(dead_cut=dead_cut, hot_cut=hot_cut, normal_band=normal_band)
    low, high = cuts.normal_band
    values = {"dead_cut": cuts.dead_cut, "hot_cut": cuts.hot_cut, "normal_low": low}
    values["normal_high"] = high
    # The PMT map shows a backwards band (no PMT normal) while a slider moves; a default, never.
    if low > high:
        raise InvalidValueError(f"the normal band runs backwards ({low} to {high}).")
    record_change(session, user=user, action="cut_defaults", target=run_type, detail=values)
    row = session.get(CutDefaults, run_type)
    if row is None:
        row = CutDefaults(run_type=run_type, saved_by=user, **values)
        session.add(row)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    row.saved_by, row.saved_at = user[:64], utcnow()
    session.flush()
    return row


def set_run_comment(session: Session, run_id: int, comment: str, *, user: str) -> Run:
    """Replace a run's comment, recording who and when.

    Raises:
        NotFoundError: no such run.
        InvalidValueError: no user, or a comment over :data:`dqm.runs.COMMENT_MAX_CHARS`
            characters.
    """
    comment = check_comment(comment)
    run = get_run(session, run_id)
    record_change(
        session,
        user=user,
        action="run_comment",
        target=str(run_id),
        detail={"before": run.comment or "", "after": comment},
    )
    run.comment = comment or None
    session.flush()
    return run


def retry_job_as(session: Session, job_id: int, *, user: str) -> Job:
    """Put a FAILED or TOCHECK job back to TODO (see :func:`retry_jobs`), recording who and when."""
    job = get_job(session, job_id)
    record_change(
        session,
        user=user,
        action="retry_job",
        target=str(job_id),
        detail={
            "kind": job.kind,
            "run_id": job.run_id,
            "state": str(job.state),
            "error": job.error,
        },
    )
    (job,) = retry_jobs(session, job_id=job_id)
    return job


def run_change_token(session: Session, run_id: int) -> tuple | None:
    """A value that changes whenever anything shown about a run does (its attributes, its jobs'
    states, its merged histograms or PMT statistics): a few aggregate queries on indexed columns,
    so that a page can refresh often and read the run again only when this changes. None if
    there is no such run."""
    run = session.get(Run, run_id)
    if run is None:
        return None
    jobs = session.execute(
        select(Job.state, func.count(), func.max(Job.id), func.max(Job.finished_at))
        .where(Job.run_id == run_id)
        .group_by(Job.state)
        .order_by(Job.state)
    ).all()
    merged = session.execute(
        select(func.count(), func.max(Histogram.id), func.max(Histogram.created_at)).where(
            Histogram.run_id == run_id, Histogram.file_id.is_(None)
        )
    ).one()
    stats = session.execute(
        select(func.max(PmtStats.id), func.max(PmtStats.created_at)).where(
            PmtStats.run_id == run_id, PmtStats.file_id.is_(None)
        )
    ).one()
    attributes = (run.updated_at, str(run.status), run.comment, run.n_events, run.n_files)
    return (attributes, tuple(map(tuple, jobs)), tuple(merged), tuple(stats))


# --- event tables ------------------------------------------------------------------------------


def save_event_table(
    session: Session, *, run_id: int, file_id: int, columns: dict[str, Any]
) -> EventTable:
    """Store (or replace) a file's reconstructed events (see :mod:`dqm.eventtable`)."""
    data = eventtable.encode(columns)
    row = session.scalars(select(EventTable).where(EventTable.file_id == file_id)).one_or_none()
    n_events = len(columns[eventtable.COLUMNS[0]])
    if row is None:
        row = EventTable(run_id=run_id, file_id=file_id, n_events=n_events, data=data)
        session.add(row)
    else:
        row.run_id, row.n_events, row.data, row.created_at = run_id, n_events, data, utcnow()
    session.flush()
    return row


def run_events(session: Session, run_id: int, *, max_events: int | None = None) -> dict[str, Any]:
    """The reconstructed events of a run's DONE files, in file order, as float32 columns (the
    first ``max_events`` if given)."""
    rows = session.scalars(
        select(EventTable)
        .join(File, File.id == EventTable.file_id)
        .where(EventTable.run_id == run_id, File.state == FileState.DONE)
        .order_by(File.seq)
    )
    parts: list[dict[str, Any]] = []
    total = 0
    for row in rows:
        if max_events is not None and total >= max_events:
            break
        parts.append(eventtable.decode(row.data))
        total += row.n_events
    columns = {
        name: np.concatenate([p[name] for p in parts]) if parts else np.zeros(0, "<f4")
        for name in eventtable.COLUMNS
    }
    if max_events is not None:
        columns = {name: values[:max_events] for name, values in columns.items()}
    return columns
