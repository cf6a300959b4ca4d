"""Runs: adding, changing, finding and listing them, and deriving their status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import and_, delete, false, func, insert, or_, select
from sqlalchemy.orm import Session

from dqm.certification import CERTIFICATION_FILTER, NOT_OPEN
from dqm.config import REC_METHODS
from dqm.db.models import (
    AnalysisFigure,
    AnalysisResult,
    AnalysisValue,
    Comment,
    EventTable,
    File,
    Histogram,
    Job,
    KeptEvents,
    PmtBlock,
    PmtStats,
    PmtStatus,
    Run,
    RunDecision,
    RunTag,
)
from dqm.errors import InvalidValueError, NotFoundError
from dqm.runs import check_comment
from dqm.runstatus import CHECKS_JOB_KIND, derive_run_status
from dqm.states import Certification, RunStatus, parse_run_status
from dqm.times import utcnow

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
    "source",
    "source_z_mm",
    "trigger_rate_hz",
    "software_version",
)


#: Run statuses that mean processing has finished, well or badly.
FINAL_STATUSES = (RunStatus.ALL_COMPLETED, RunStatus.FAILED)


def lock_run(session: Session, *, run_id: int) -> Run | None:
    """The run ``run_id`` (None if there is none), its row locked until the transaction ends
    (``SELECT … FOR UPDATE``): what several job servers take in turn before deciding for a run."""
    return session.get(Run, run_id, with_for_update=True, populate_existing=True)


def get_run(session: Session, *, run_id: int) -> Run:
    """The run ``run_id``.

    Raises:
        NotFoundError: no such run.
    """
    run = session.get(Run, run_id)
    if run is None:
        raise NotFoundError(f"run {run_id} does not exist.")
    return run


def find_run(session: Session, *, run_id: int) -> Run | None:
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
    start_time: dt.datetime,
    detector: str = "CD",
    end_time: dt.datetime | None = None,
    status: RunStatus | str | None = None,
    n_events: int | None = None,
    n_files: int | None = None,
    sampling_fraction: float = 1.0,
    rec_method: str | None = None,
    comment: str | None = None,
    source: str | None = None,
    source_z_mm: float | None = None,
    trigger_rate_hz: float | None = None,
    software_version: str | None = None,
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
        start_time=start_time,
        end_time=end_time,
        status=parse_run_status(status),
        n_events=n_events,
        n_files=n_files,
        sampling_fraction=sampling_fraction,
        rec_method=rec_method,
        comment=comment,
        source=source,
        source_z_mm=source_z_mm,
        trigger_rate_hz=trigger_rate_hz,
        software_version=software_version,
    )
    _check_run(run)
    session.add(run)
    session.flush()
    return run


def add_runs(session: Session, *, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record many runs at once, as given (a back-fill or an import: one bulk statement, none of
    :func:`add_run`'s checks).

    Args:
        rows: the runs' columns by name (``run_id``, ``run_type``, ``start_time``, ...).
    """
    if rows:
        session.execute(insert(Run), list(rows))


def update_run(session: Session, *, run_id: int, **changes: Any) -> Run:
    """Change attributes of a run (any of :data:`RUN_FIELDS`).

    Times are naive UTC datetimes (parsed where they were given); the status may be given by name.

    Raises:
        NotFoundError: no such run.
        InvalidValueError: unknown attribute or invalid value.
    """
    run = get_run(session, run_id=run_id)
    for name, value in changes.items():
        if name not in RUN_FIELDS:
            raise InvalidValueError(
                f"{name!r} is not a run attribute; use one of {', '.join(RUN_FIELDS)}."
            )
        if name == "status":
            value = parse_run_status(value)
        if name == "comment" and value is not None:
            value = check_comment(str(value)) or None
        setattr(run, name, value)
    _check_run(run)
    session.flush()
    return run


def delete_run(session: Session, *, run_id: int) -> None:
    """Delete a run with its files, jobs, histograms and PMT statistics.

    Raises:
        NotFoundError: no such run.
    """
    get_run(session, run_id=run_id)
    # Explicit deletes, children first, so that the result does not depend on whether the
    # backend enforces ON DELETE CASCADE (SQLite does only with foreign keys on).
    results = select(AnalysisResult.id).where(AnalysisResult.run_id == run_id)
    for child in (AnalysisValue, AnalysisFigure):
        session.execute(delete(child).where(child.result_id.in_(results)))
    for model in (
        AnalysisResult,
        RunTag,
        Histogram,
        PmtStats,
        EventTable,
        KeptEvents,
        PmtBlock,
        PmtStatus,
        Job,
        File,
    ):
        session.execute(delete(model).where(model.run_id == run_id))
    session.execute(delete(Run).where(Run.run_id == run_id))
    session.expunge_all()


#: How the recent runs' quality filter names runs that no check has judged yet.
NOT_JUDGED = "Not judged"


def _certification_condition(wanted: list[str]) -> Any:
    """Runs in these sign-off states (see :func:`dqm.certification.certification_of`)."""
    unknown = [w for w in wanted if w not in CERTIFICATION_FILTER]
    if unknown:
        raise InvalidValueError(
            f"{unknown[0]!r} is not a sign-off state; the states are "
            f"{', '.join(CERTIFICATION_FILTER)}."
        )
    undecided = Run.certification.is_(None)
    conditions: list[Any] = []
    decided = [Certification(w) for w in wanted if w != NOT_OPEN]
    if decided:
        conditions.append(Run.certification.in_(decided))
    if Certification.OPEN.value in wanted:
        conditions.append(and_(undecided, Run.status == RunStatus.ALL_COMPLETED))
    if NOT_OPEN in wanted:
        conditions.append(and_(undecided, Run.status != RunStatus.ALL_COMPLETED))
    return or_(*conditions) if conditions else false()


def recent_runs(
    session: Session,
    *,
    limit: int | None = None,
    days: float | None = None,
    status: RunStatus | str | Iterable[RunStatus | str] | None = None,
    run_type: str | Iterable[str] | None = None,
    completed: bool = False,
    quality: Iterable[str] | None = None,
    certification: Iterable[str] | None = None,
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
        quality: only runs of these qualities (``Not judged``: runs without one).
        certification: only runs in these sign-off states (``OPEN``, ``SIGNED_OFF``,
            ``CERTIFIED``; ``Not open``: not All Completed and never decided).
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
        query = query.where(Run.status.in_([parse_run_status(s) for s in statuses]))
    if completed:
        query = query.where(Run.status.in_(FINAL_STATUSES))
    if run_type is not None:
        types = [run_type] if isinstance(run_type, str) else list(run_type)
        query = query.where(Run.run_type.in_(types))
    if quality is not None:
        wanted = list(quality)
        judged = [q for q in wanted if q != NOT_JUDGED]
        condition = Run.quality.in_(judged)
        query = query.where(
            or_(condition, Run.quality.is_(None)) if NOT_JUDGED in wanted else condition
        )
    if certification is not None:
        query = query.where(_certification_condition(list(certification)))
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


def runs_missing_files(session: Session) -> list[Run]:
    """Ended runs with fewer files recorded than their run_end counted."""
    counts = select(File.run_id, func.count().label("n")).group_by(File.run_id).subquery()
    query = (
        select(Run)
        .outerjoin(counts, counts.c.run_id == Run.run_id)
        .where(Run.end_time.is_not(None), Run.n_files > func.coalesce(counts.c.n, 0))
    )
    return list(session.scalars(query))


def refresh_run_status(session: Session, *, run_id: int) -> RunStatus:
    """Derive the run's status from its files and jobs and store it (in the caller's transaction)."""
    run = get_run(session, run_id=run_id)
    file_states = list(session.scalars(select(File.state).where(File.run_id == run_id)))
    # A backfill's analysis jobs run over finished runs, and checks judge a run: neither reopens it.
    jobs = session.execute(
        select(Job.state, Job.analysis).where(
            Job.run_id == run_id, Job.backfill_id.is_(None), Job.kind != CHECKS_JOB_KIND
        )
    ).all()
    status = derive_run_status(
        ended=run.end_time is not None,
        n_files_announced=len(file_states),
        n_files_expected=run.n_files if run.end_time is not None else None,
        file_states=file_states,
        job_states=[state for state, analysis in jobs if analysis is None],
        analysis_job_states=[state for state, analysis in jobs if analysis is not None],
    )
    if run.status != status:
        run.status = status
    return status


def run_change_token(session: Session, *, run_id: int) -> tuple[object, ...] | None:
    """A value that changes whenever anything shown about a run does (its attributes, its jobs'
    states, its merged histograms or PMT statistics, its sign-off decisions, its comments): a few aggregate queries on indexed columns,
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
    decisions = session.execute(
        select(func.count(), func.max(RunDecision.id)).where(RunDecision.run_id == run_id)
    ).one()
    comments = session.execute(
        select(func.count(), func.max(Comment.id)).where(Comment.run_id == run_id)
    ).one()
    attributes = (
        run.updated_at,
        str(run.status),
        run.comment,
        run.n_events,
        run.n_files,
        str(run.certification),
        str(run.verdict),
    )
    return (
        attributes,
        tuple(map(tuple, jobs)),
        tuple(merged),
        tuple(stats),
        tuple(decisions),
        tuple(comments),
    )


def runs_page(
    session: Session,
    *,
    after: int | None = None,
    limit: int = 100,
    run_types: Sequence[str] | None = None,
    statuses: Sequence[RunStatus | str] | None = None,
) -> list[Run]:
    """Runs by run number after ``after``, at most ``limit``: one page of a keyset pagination
    (one range of the primary key, whatever the number of runs)."""
    query = select(Run)
    if after is not None:
        query = query.where(Run.run_id > after)
    if run_types:
        query = query.where(Run.run_type.in_(list(run_types)))
    if statuses:
        query = query.where(Run.status.in_([parse_run_status(s) for s in statuses]))
    return list(session.scalars(query.order_by(Run.run_id).limit(limit)))
