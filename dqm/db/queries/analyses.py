"""Analyses: run tags, the declarations seen, results with their variables and figures, trends
over runs, and backfills."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import and_, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from dqm.db.models import (
    AnalysisDeclaration,
    AnalysisFigure,
    AnalysisResult,
    AnalysisValue,
    Backfill,
    CheckDeclarationRow,
    Job,
    Run,
    RunTag,
)
from dqm.db.queries.changes import record_change
from dqm.db.queries.runs import FINAL_STATUSES, get_run
from dqm.errors import NotFoundError
from dqm.runs import check_tags
from dqm.states import JobState
from dqm.times import utcnow

#: The kind of job that runs an analysis on a run.
ANALYSIS_JOB_KIND = "analysis"


# --- run tags ------------------------------------------------------------------------------------


def run_tags(session: Session, *, run_id: int) -> list[str]:
    """The tags of a run, sorted."""
    return list(
        session.scalars(select(RunTag.tag).where(RunTag.run_id == run_id).order_by(RunTag.tag))
    )


def tags_of_runs(session: Session, *, run_ids: Iterable[int]) -> dict[int, list[str]]:
    """The tags of each of ``run_ids`` that has any."""
    ids = list(run_ids)
    tags: dict[int, list[str]] = {}
    for start in range(0, len(ids), 1000):  # bounded IN lists
        query = (
            select(RunTag.run_id, RunTag.tag)
            .where(RunTag.run_id.in_(ids[start : start + 1000]))
            .order_by(RunTag.run_id, RunTag.tag)
        )
        for run_id, tag in session.execute(query):
            tags.setdefault(run_id, []).append(tag)
    return tags


def all_tags(session: Session) -> list[str]:
    """Every tag in use, sorted."""
    return list(session.scalars(select(RunTag.tag).distinct().order_by(RunTag.tag)))


def change_run_tags(
    session: Session,
    *,
    run_id: int,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
    user: str,
) -> list[str]:
    """Add and remove tags of a run, recording the change (who, which tags); the run's tags after.

    Tags added that the run has already, and tags removed that it does not have, change nothing
    and are not recorded.

    Raises:
        NotFoundError: no such run.
        InvalidValueError: a tag is not a valid word, or ``user`` may not write.
    """
    get_run(session, run_id=run_id)
    wanted, unwanted = check_tags(add), check_tags(remove)
    before = set(run_tags(session, run_id=run_id))
    added = [tag for tag in wanted if tag not in before]
    removed = [tag for tag in unwanted if tag in before and tag not in wanted]
    if not added and not removed:
        return sorted(before)
    record_change(
        session,
        user=user,
        action="run_tags",
        target=str(run_id),
        detail={"added": added, "removed": removed},
    )
    session.add_all(RunTag(run_id=run_id, tag=tag) for tag in added)
    if removed:
        session.execute(delete(RunTag).where(RunTag.run_id == run_id, RunTag.tag.in_(removed)))
    session.flush()
    return sorted((before | set(added)) - set(removed))


# --- declarations --------------------------------------------------------------------------------


def record_declaration(
    session: Session,
    model: type[AnalysisDeclaration | CheckDeclarationRow],
    *,
    name: str,
    version: int,
    declaration: Mapping[str, Any],
    origin: str,
    now: dt.datetime | None = None,
) -> Any:
    """Record a declared version of an analysis or a check (or refresh it: the last declaration
    wins). Several job servers starting at once each record the same declarations: a row another
    one inserted meanwhile is refreshed instead (the insert is tried in a savepoint)."""
    now = now or utcnow()
    row: Any = session.get(model, (name, version))
    if row is None:
        try:
            with session.begin_nested():
                row = model(
                    name=name,
                    version=version,
                    declaration=dict(declaration),
                    origin=origin[:512],
                    first_seen=now,
                    last_seen=now,
                )
                session.add(row)
            return row
        except IntegrityError:  # inserted by another process since the get
            # a locking read: the committed row, whatever the transaction's snapshot
            row = session.get(model, (name, version), populate_existing=True, with_for_update=True)
            if row is None:
                raise
    row.declaration, row.origin, row.last_seen = dict(declaration), origin[:512], now
    session.flush()
    return row


def record_analysis_declaration(
    session: Session,
    *,
    name: str,
    version: int,
    declaration: Mapping[str, Any],
    origin: str,
    now: dt.datetime | None = None,
) -> AnalysisDeclaration:
    """Record a declared version of an analysis (see :func:`record_declaration`)."""
    row: AnalysisDeclaration = record_declaration(
        session,
        AnalysisDeclaration,
        name=name,
        version=version,
        declaration=declaration,
        origin=origin,
        now=now,
    )
    return row


def analysis_declarations(
    session: Session, *, name: str | None = None
) -> list[AnalysisDeclaration]:
    """The recorded versions of the analyses (of one if given), by name and version."""
    query = select(AnalysisDeclaration).order_by(
        AnalysisDeclaration.name, AnalysisDeclaration.version
    )
    if name is not None:
        query = query.where(AnalysisDeclaration.name == name)
    return list(session.scalars(query))


def highest_analysis_versions(session: Session) -> dict[str, int]:
    """The highest version of each analysis that was ever recorded or has results or jobs."""
    highest: dict[str, int] = {}
    for query in (
        select(AnalysisDeclaration.name, func.max(AnalysisDeclaration.version)).group_by(
            AnalysisDeclaration.name
        ),
        select(AnalysisResult.analysis, func.max(AnalysisResult.version)).group_by(
            AnalysisResult.analysis
        ),
    ):
        for name, version in session.execute(query):
            highest[name] = max(highest.get(name, version), version)
    return highest


# --- jobs ----------------------------------------------------------------------------------------


def open_analysis_job(session: Session, *, run_id: int, analysis: str, version: int) -> Job | None:
    """The analysis job of this run and version that has not started yet (TODO), if any."""
    return session.scalar(
        select(Job)
        .where(
            Job.kind == ANALYSIS_JOB_KIND,
            Job.run_id == run_id,
            Job.analysis == analysis,
            Job.analysis_version == version,
            Job.state == JobState.TODO,
        )
        .limit(1)
    )


def analysis_jobs(
    session: Session,
    *,
    run_id: int | None = None,
    analysis: str | None = None,
    version: int | None = None,
) -> list[Job]:
    """Analysis jobs (of a run, an analysis, a version), newest first."""
    query = select(Job).where(Job.kind == ANALYSIS_JOB_KIND)
    if run_id is not None:
        query = query.where(Job.run_id == run_id)
    if analysis is not None:
        query = query.where(Job.analysis == analysis)
    if version is not None:
        query = query.where(Job.analysis_version == version)
    return list(session.scalars(query.order_by(Job.id.desc())))


def add_analysis_jobs(
    session: Session,
    *,
    run_ids: Sequence[int],
    analysis: str,
    version: int,
    code_version: str | None = None,
    backfill_id: int | None = None,
) -> None:
    """Queue a TODO job of an analysis version for each run, in one statement (a backfill)."""
    if not run_ids:
        return
    now = utcnow()
    session.execute(
        insert(Job),
        [
            {
                "kind": ANALYSIS_JOB_KIND,
                "run_id": run_id,
                "state": JobState.TODO,
                "attempts": 0,
                "interruptions": 0,
                "parameters": {},
                "created_at": now,
                "code_version": code_version,
                "analysis": analysis,
                "analysis_version": version,
                "backfill_id": backfill_id,
            }
            for run_id in run_ids
        ],
    )


def finished_runs(
    session: Session,
    *,
    run_types: Sequence[str] | None = None,
    min_run: int | None = None,
    max_run: int | None = None,
) -> list[tuple[int, str]]:
    """``(run, run type)`` of the runs whose processing has finished, by run number."""
    query = select(Run.run_id, Run.run_type).where(Run.status.in_(FINAL_STATUSES))
    if run_types is not None:
        query = query.where(Run.run_type.in_(list(run_types)))
    if min_run is not None:
        query = query.where(Run.run_id >= min_run)
    if max_run is not None:
        query = query.where(Run.run_id <= max_run)
    return [(run_id, run_type) for run_id, run_type in session.execute(query.order_by(Run.run_id))]


def runs_with_result(session: Session, *, analysis: str, version: int) -> set[int]:
    """The runs that have a result of this version of an analysis."""
    return set(
        session.scalars(
            select(AnalysisResult.run_id).where(
                AnalysisResult.analysis == analysis, AnalysisResult.version == version
            )
        )
    )


# --- results -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredValue:
    """A variable of a result as it is stored."""

    variable: str
    value: float
    error: float | None
    unit: str


def save_analysis_result(
    session: Session,
    *,
    analysis: str,
    version: int,
    run_id: int,
    values: Sequence[StoredValue],
    data: Mapping[str, Any],
    lineage: Mapping[str, Any],
    figures: Mapping[str, bytes] | None = None,
    job_id: int | None = None,
    now: dt.datetime | None = None,
) -> AnalysisResult:
    """Store the result of an analysis version on a run, replacing the one stored before (a live
    analysis runs again after each merge): there is exactly one per (analysis, version, run)."""
    now = now or utcnow()
    session.execute(
        delete(AnalysisResult).where(
            AnalysisResult.analysis == analysis,
            AnalysisResult.version == version,
            AnalysisResult.run_id == run_id,
        )
    )
    # Explicit deletes of the children too, for backends without ON DELETE CASCADE in force.
    orphans = select(AnalysisResult.id)
    session.execute(delete(AnalysisValue).where(AnalysisValue.result_id.not_in(orphans)))
    session.execute(delete(AnalysisFigure).where(AnalysisFigure.result_id.not_in(orphans)))
    result = AnalysisResult(
        analysis=analysis,
        version=version,
        run_id=run_id,
        job_id=job_id,
        created_at=now,
        data=dict(data),
        lineage=dict(lineage),
    )
    session.add(result)
    session.flush()
    session.add_all(
        AnalysisValue(
            result_id=result.id,
            analysis=analysis,
            version=version,
            run_id=run_id,
            variable=value.variable,
            value=value.value,
            error=value.error,
            unit=value.unit,
        )
        for value in values
    )
    session.add_all(
        AnalysisFigure(result_id=result.id, name=name, png=png)
        for name, png in (figures or {}).items()
    )
    session.flush()
    return result


def analysis_result(
    session: Session, *, analysis: str, version: int, run_id: int
) -> AnalysisResult | None:
    """The stored result of a version of an analysis on a run, with its values, if any."""
    return session.scalar(
        select(AnalysisResult)
        .options(selectinload(AnalysisResult.values))
        .where(
            AnalysisResult.analysis == analysis,
            AnalysisResult.version == version,
            AnalysisResult.run_id == run_id,
        )
    )


def analysis_results(
    session: Session,
    *,
    run_id: int | None = None,
    analysis: str | None = None,
    version: int | None = None,
    limit: int | None = 1000,
) -> list[AnalysisResult]:
    """Stored results with their values: by run (newest first), then analysis and version."""
    query = select(AnalysisResult).options(selectinload(AnalysisResult.values))
    if run_id is not None:
        query = query.where(AnalysisResult.run_id == run_id)
    if analysis is not None:
        query = query.where(AnalysisResult.analysis == analysis)
    if version is not None:
        query = query.where(AnalysisResult.version == version)
    query = query.order_by(
        AnalysisResult.run_id.desc(), AnalysisResult.analysis, AnalysisResult.version
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def figure_names(session: Session, *, result_ids: Iterable[int]) -> dict[int, list[str]]:
    """The names of the figures of each result."""
    ids = list(result_ids)
    names: dict[int, list[str]] = {}
    if not ids:
        return names
    query = (
        select(AnalysisFigure.result_id, AnalysisFigure.name)
        .where(AnalysisFigure.result_id.in_(ids))
        .order_by(AnalysisFigure.result_id, AnalysisFigure.name)
    )
    for result_id, name in session.execute(query):
        names.setdefault(result_id, []).append(name)
    return names


def analysis_figure(session: Session, *, result_id: int, name: str) -> bytes:
    """A figure of a result, as PNG.

    Raises:
        NotFoundError: no such figure.
    """
    figure = session.get(AnalysisFigure, (result_id, name))
    if figure is None:
        raise NotFoundError(f"result {result_id} has no figure {name!r}.")
    return figure.png


def result_counts(session: Session) -> dict[tuple[str, int], int]:
    """How many runs have a result of each (analysis, version)."""
    query = select(AnalysisResult.analysis, AnalysisResult.version, func.count()).group_by(
        AnalysisResult.analysis, AnalysisResult.version
    )
    return {(name, version): count for name, version, count in session.execute(query)}


def _trend_query(
    *,
    analysis: str,
    version: int,
    variables: Sequence[str],
    run_types: Sequence[str] | None,
    min_run: int | None,
    max_run: int | None,
    since: dt.datetime | None,
    include_tags: Sequence[str],
    exclude_tags: Sequence[str],
    after_run: int | None,
) -> Any:
    """The one statement of a trend (see :func:`analysis_trend_columns`), by run number then
    variable: run, start time, variable, value, error, unit."""
    query = (
        select(
            AnalysisValue.run_id,
            Run.start_time,
            AnalysisValue.variable,
            AnalysisValue.value,
            AnalysisValue.error,
            AnalysisValue.unit,
        )
        .join(Run, Run.run_id == AnalysisValue.run_id)
        .where(
            AnalysisValue.analysis == analysis,
            AnalysisValue.version == version,
            AnalysisValue.variable.in_(list(variables)),
        )
    )
    if run_types:
        query = query.where(Run.run_type.in_(list(run_types)))
    if min_run is not None:
        query = query.where(AnalysisValue.run_id >= min_run)
    if max_run is not None:
        query = query.where(AnalysisValue.run_id <= max_run)
    if after_run is not None:
        query = query.where(AnalysisValue.run_id > after_run)
    if since is not None:
        query = query.where(Run.start_time >= since)
    for tag in check_tags(include_tags):
        query = query.where(
            select(RunTag.run_id)
            .where(and_(RunTag.run_id == AnalysisValue.run_id, RunTag.tag == tag))
            .exists()
        )
    excluded = check_tags(exclude_tags)
    if excluded:
        query = query.where(
            ~select(RunTag.run_id)
            .where(and_(RunTag.run_id == AnalysisValue.run_id, RunTag.tag.in_(excluded)))
            .exists()
        )
    return query.order_by(AnalysisValue.run_id, AnalysisValue.variable)


# --- backfills -----------------------------------------------------------------------------------


def add_backfill(
    session: Session,
    *,
    analysis: str,
    version: int,
    since_run: int | None,
    until_run: int | None,
    n_runs: int,
    created_by: str | None = None,
) -> Backfill:
    """Record a backfill (its jobs refer to it)."""
    backfill = Backfill(
        analysis=analysis,
        version=version,
        since_run=since_run,
        until_run=until_run,
        n_runs=n_runs,
        created_by=created_by,
    )
    session.add(backfill)
    session.flush()
    return backfill


@dataclass(frozen=True)
class BackfillProgress:
    """A backfill and how far its jobs have got."""

    backfill: Backfill
    jobs_by_state: Mapping[JobState, int]

    @property
    def finished(self) -> int:
        """Jobs that will not run again (DONE, FAILED, TOCHECK)."""
        return sum(
            n
            for state, n in self.jobs_by_state.items()
            if state in (JobState.DONE, JobState.FAILED, JobState.TOCHECK)
        )

    @property
    def total(self) -> int:
        return sum(self.jobs_by_state.values())


def backfill_progress(
    session: Session, *, backfill_id: int | None = None, limit: int = 20
) -> list[BackfillProgress]:
    """The latest backfills (or one), newest first, with their jobs counted by state.

    Raises:
        NotFoundError: ``backfill_id`` given and no such backfill.
    """
    query = select(Backfill).order_by(Backfill.id.desc())
    if backfill_id is not None:
        query = query.where(Backfill.id == backfill_id)
    backfills = list(session.scalars(query.limit(limit)))
    if backfill_id is not None and not backfills:
        raise NotFoundError(f"backfill {backfill_id} does not exist.")
    counts: dict[int, dict[JobState, int]] = {b.id: {} for b in backfills}
    if backfills:
        rows = session.execute(
            select(Job.backfill_id, Job.state, func.count())
            .where(Job.backfill_id.in_(list(counts)))
            .group_by(Job.backfill_id, Job.state)
        )
        for job_backfill, state, count in rows:
            if job_backfill is not None:
                counts[job_backfill][JobState(state)] = count
    return [BackfillProgress(b, counts[b.id]) for b in backfills]


# --- for the dashboard: trends as columns, and what tells a page that something changed ----------


def analysis_trend_columns(
    session: Session,
    *,
    analysis: str,
    version: int,
    variables: Sequence[str],
    run_types: Sequence[str] | None = None,
    min_run: int | None = None,
    max_run: int | None = None,
    since: dt.datetime | None = None,
    include_tags: Sequence[str] = (),
    exclude_tags: Sequence[str] = (),
    after_run: int | None = None,
) -> dict[str, Any]:
    """The values of ``variables`` of a version of an analysis over runs, as columns: a trend
    over thousands of runs is drawn at once.

    Args:
        run_types: only runs of these types.
        min_run, max_run: only runs in this range (inclusive).
        since: only runs started at or after this time.
        include_tags: only runs with all of these tags.
        exclude_tags: no run with any of these tags.
        after_run: only runs after this one (the new points of a trend already drawn).

    Returns:
        ``run_id`` (int64), ``start_time`` (datetime64[us]), ``variable`` (str), ``value`` and
        ``error`` (float64, NaN where no error was given) and ``unit`` (str), numpy arrays of
        one length, by run number then variable.
    """
    query = _trend_query(
        analysis=analysis,
        version=version,
        variables=variables,
        run_types=run_types,
        min_run=min_run,
        max_run=max_run,
        since=since,
        include_tags=include_tags,
        exclude_tags=exclude_tags,
        after_run=after_run,
    )
    # pandas converts the times five times faster than numpy; imported here, where the dashboard
    # has it already, rather than by every command that touches the database.
    import pandas as pd

    rows = session.execute(query).all()
    # One transposition of the rows, then one array per column.
    run_id, start_time, variable, value, error, unit = zip(*rows) if rows else ((),) * 6
    return {
        "run_id": np.array(run_id, dtype=np.int64),
        "start_time": pd.to_datetime(list(start_time)).to_numpy("datetime64[us]"),
        "variable": np.array(variable, dtype=str),
        "value": np.array(value, dtype=np.float64),
        "error": np.array(error, dtype=np.float64),  # None becomes NaN
        "unit": np.array(unit, dtype=str),
    }


def analysis_trend_token(
    session: Session, *, analysis: str, version: int, before_run: int | None = None
) -> tuple[object, ...]:
    """A value that changes whenever a result of a version of an analysis on a run before
    ``before_run`` (on any run if None) is stored, replaced or deleted: a trend already drawn up
    to ``before_run`` needs only its new points while this stays the same."""
    query = select(
        func.count(), func.max(AnalysisResult.id), func.max(AnalysisResult.created_at)
    ).where(AnalysisResult.analysis == analysis, AnalysisResult.version == version)
    if before_run is not None:
        query = query.where(AnalysisResult.run_id < before_run)
    return tuple(session.execute(query).one())


def analysis_variables(session: Session, *, analysis: str, version: int) -> dict[str, str]:
    """The variables stored for a version of an analysis, with their units (for a version whose
    declaration was never recorded)."""
    query = (
        select(AnalysisValue.variable, func.max(AnalysisValue.unit))
        .where(AnalysisValue.analysis == analysis, AnalysisValue.version == version)
        .group_by(AnalysisValue.variable)
        .order_by(AnalysisValue.variable)
    )
    return {variable: unit for variable, unit in session.execute(query)}


def run_analyses_token(session: Session, *, run_id: int) -> tuple[object, ...]:
    """A value that changes whenever a run's tags or analysis results change (with
    :func:`~dqm.db.queries.runs.run_change_token`, which covers its jobs)."""
    results = session.execute(
        select(
            func.count(), func.max(AnalysisResult.id), func.max(AnalysisResult.created_at)
        ).where(AnalysisResult.run_id == run_id)
    ).one()
    return (tuple(run_tags(session, run_id=run_id)), tuple(results))


def analysis_values_page(
    session: Session,
    *,
    analysis: str,
    version: int,
    after: int | None = None,
    limit: int = 100,
) -> list[tuple[AnalysisResult, list[AnalysisValue]]]:
    """The results of a version of an analysis, by run number after ``after``, at most ``limit``,
    each with its variables: one page of a keyset pagination."""
    query = select(AnalysisResult).where(
        AnalysisResult.analysis == analysis, AnalysisResult.version == version
    )
    if after is not None:
        query = query.where(AnalysisResult.run_id > after)
    results = list(session.scalars(query.order_by(AnalysisResult.run_id).limit(limit)))
    if not results:
        return []
    values: dict[int, list[AnalysisValue]] = {}
    rows = select(AnalysisValue).where(AnalysisValue.result_id.in_([r.id for r in results]))
    for value in session.scalars(rows.order_by(AnalysisValue.variable)):
        values.setdefault(value.result_id, []).append(value)
    return [(result, values.get(result.id, [])) for result in results]
