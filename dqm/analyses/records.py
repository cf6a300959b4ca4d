"""The analyses and the database: the declarations recorded (and their versions checked), results
stored with their lineage, and backfills queued.

The job server and the ``dqm analyses`` commands both go through these, so a version that went
backwards is refused the same way everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from dqm.analyses.declarations import Catalog, Declaration, check_versions
from dqm.analyses.execute import AnalysisOutput
from dqm.db import queries
from dqm.db.models import AnalysisResult, Backfill
from dqm.errors import InvalidValueError
from dqm.runstatus import PENDING_JOB_STATES

__all__ = ["BackfillPlan", "plan_backfill", "queue_backfill", "record_catalog", "store_output"]


def record_catalog(session: Session, catalog: Catalog) -> None:
    """Check that no declared version went backwards, then record every declaration (the dashboard
    reads the variables, units and bands of every version from there).

    Raises:
        DeclarationError: a declared version is below one the database already has.
    """
    check_versions(catalog, queries.highest_analysis_versions(session))
    for declaration in catalog:
        queries.record_analysis_declaration(
            session,
            name=declaration.name,
            version=declaration.version,
            declaration=declaration.to_json(),
            origin=declaration.origin,
        )


def store_output(
    session: Session,
    *,
    output: AnalysisOutput,
    lineage: Mapping[str, Any] | None = None,
    job_id: int | None = None,
) -> AnalysisResult:
    """Store an analysis's checked output as the one result of its (analysis, version, run), with
    its lineage (default: the one its task carried)."""
    lineage = output.lineage if lineage is None else lineage
    return queries.save_analysis_result(
        session,
        analysis=output.analysis,
        version=output.version,
        run_id=output.run_id,
        values=[
            queries.StoredValue(v.variable, v.value, v.error, v.unit) for v in output.variables
        ],
        data=output.data,
        lineage={**lineage, "seconds": round(output.seconds, 4)},
        figures=output.figures,
        job_id=job_id,
    )


@dataclass(frozen=True)
class BackfillPlan:
    """The runs a backfill would queue, and those it leaves out (with how many of each)."""

    declaration: Declaration
    runs: tuple[int, ...]
    with_result: int  # runs that already have a result of this version (left out unless redo)
    pending: int  # runs with a job of this version already pending (left out)


def plan_backfill(
    session: Session,
    *,
    declaration: Declaration,
    since_run: int | None = None,
    until_run: int | None = None,
    redo: bool = False,
) -> BackfillPlan:
    """The finished runs that ``declaration`` applies to in ``[since_run, until_run]``.

    Raises:
        InvalidValueError: ``since_run`` is above ``until_run``.
    """
    if since_run is not None and until_run is not None and since_run > until_run:
        raise InvalidValueError(f"--since {since_run} is above --until {until_run}.")
    candidates = queries.finished_runs(
        session,
        run_types=sorted(declaration.run_types) if declaration.run_types is not None else None,
        min_run=max(v for v in (since_run, declaration.min_run, 0) if v is not None),
        max_run=min((v for v in (until_run, declaration.max_run) if v is not None), default=None),
    )
    tags = queries.tags_of_runs(session, run_ids=[run_id for run_id, _ in candidates])
    applicable = [
        run_id
        for run_id, run_type in candidates
        if declaration.applies_to(run_id=run_id, run_type=run_type, tags=tags.get(run_id, ()))
    ]
    done = queries.runs_with_result(session, analysis=declaration.name, version=declaration.version)
    pending = {
        job.run_id
        for job in queries.analysis_jobs(
            session, analysis=declaration.name, version=declaration.version
        )
        if job.state in PENDING_JOB_STATES
    }
    runs = [
        run_id for run_id in applicable if run_id not in pending and (redo or run_id not in done)
    ]
    return BackfillPlan(
        declaration=declaration,
        runs=tuple(runs),
        with_result=sum(1 for run_id in applicable if run_id in done),
        pending=sum(1 for run_id in applicable if run_id in pending),
    )


def queue_backfill(
    session: Session,
    *,
    plan: BackfillPlan,
    since_run: int | None,
    until_run: int | None,
    code_version: str | None,
    created_by: str | None = None,
    progress: Callable[[int], object] | None = None,
) -> Backfill:
    """Record a backfill and queue a TODO analysis job for each of its runs (``progress(n)`` after
    each batch of ``n`` jobs)."""
    declaration = plan.declaration
    backfill = queries.add_backfill(
        session,
        analysis=declaration.name,
        version=declaration.version,
        since_run=since_run,
        until_run=until_run,
        n_runs=len(plan.runs),
        created_by=created_by,
    )
    batch = 500
    for start in range(0, len(plan.runs), batch):
        chunk = plan.runs[start : start + batch]
        queries.add_analysis_jobs(
            session,
            run_ids=chunk,
            analysis=declaration.name,
            version=declaration.version,
            code_version=code_version,
            backfill_id=backfill.id,
        )
        if progress is not None:
            progress(len(chunk))
    return backfill
