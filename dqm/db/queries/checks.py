"""Checks: their recorded declarations, their results per run, the quality of runs, the runs fit
to be references or history, and the references pinned by hand."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from dqm.checks.quality import Quality, worst
from dqm.db.models import (
    AnalysisResult,
    AnalysisValue,
    CheckDeclarationRow,
    CheckResult,
    Job,
    ReferencePin,
    Run,
    RunStageQuality,
)
from dqm.db.queries.analyses import record_declaration
from dqm.db.queries.changes import record_change
from dqm.db.queries.runs import get_run
from dqm.errors import InvalidValueError, NotFoundError
from dqm.runstatus import CHECKS_JOB_KIND
from dqm.states import Certification, JobState, RunStatus
from dqm.times import utcnow
from dqm.users import require_writer

__all__ = [
    "CHECKS_JOB_KIND",
    "CLEAN_QUALITIES",
    "NewCheckResult",
    "analyses_with_results",
    "check_declarations",
    "check_result_history",
    "check_results",
    "checks_token",
    "clean_runs",
    "highest_check_versions",
    "history_values",
    "latest_analysis_values",
    "open_checks_job",
    "pin_reference",
    "record_check_declaration",
    "reference_pin",
    "reference_pins",
    "run_stage_qualities",
    "runs_judged_before",
    "save_check_results",
]


#: The qualities of a run that may serve as a reference or in the history of Good runs: nothing in
#: it was found wrong. A check that could not judge yet (TooFew, Unknown: no reference at all for a
#: new detector) does not disqualify a run, or a new detector would never get its first reference.
CLEAN_QUALITIES = (Quality.GOOD, Quality.TOOFEW, Quality.UNKNOWN)


# --- declarations --------------------------------------------------------------------------------


def record_check_declaration(
    session: Session,
    *,
    name: str,
    version: int,
    declaration: Mapping[str, Any],
    origin: str,
    now: dt.datetime | None = None,
) -> CheckDeclarationRow:
    """Record a declared version of a check (see :func:`~dqm.db.queries.analyses.
    record_declaration`: several servers may record it at once)."""
    row: CheckDeclarationRow = record_declaration(
        session,
        CheckDeclarationRow,
        name=name,
        version=version,
        declaration=declaration,
        origin=origin,
        now=now,
    )
    return row


def check_declarations(session: Session, *, name: str | None = None) -> list[CheckDeclarationRow]:
    """The recorded versions of the checks (of one if given), by name and version."""
    query = select(CheckDeclarationRow).order_by(
        CheckDeclarationRow.name, CheckDeclarationRow.version
    )
    if name is not None:
        query = query.where(CheckDeclarationRow.name == name)
    return list(session.scalars(query))


def highest_check_versions(session: Session) -> dict[str, int]:
    """The highest version of each check that was ever recorded or has results."""
    highest: dict[str, int] = {}
    for query in (
        select(CheckDeclarationRow.name, func.max(CheckDeclarationRow.version)).group_by(
            CheckDeclarationRow.name
        ),
        select(CheckResult.check_name, func.max(CheckResult.version)).group_by(
            CheckResult.check_name
        ),
    ):
        for name, version in session.execute(query):
            highest[name] = max(highest.get(name, version), version)
    return highest


# --- results and quality -------------------------------------------------------------------------


@dataclass(frozen=True)
class NewCheckResult:
    """One check's judgement of a run, to be stored."""

    name: str
    version: int
    stage: str
    quality: Quality
    sentence: str
    reference_run: int | None = None
    statistics: float | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def save_check_results(
    session: Session,
    *,
    run_id: int,
    results: Sequence[NewCheckResult],
    job_id: int | None = None,
    now: dt.datetime | None = None,
) -> Quality | None:
    """Store an evaluation of a run's checks and the quality it gives the run.

    Each result replaces the one of the same (check, version, run). The run's quality per stage
    and as a whole become the worst of these results (:func:`dqm.checks.quality.worst`): the
    evaluation covers every check that applies to the run, so a stage none of them judges any
    more loses its quality.

    Returns:
        The run's quality (None: no check applies to it).
    """
    now = now or utcnow()
    existing = {
        (row.check_name, row.version): row
        for row in session.scalars(select(CheckResult).where(CheckResult.run_id == run_id))
    }
    for result in results:
        row = existing.get((result.name, result.version))
        if row is None:
            row = CheckResult(check_name=result.name, version=result.version, run_id=run_id)
            session.add(row)
        row.stage = result.stage
        row.quality = result.quality
        row.sentence = result.sentence
        row.reference_run = result.reference_run
        row.statistics = result.statistics
        row.details = _json_safe(result.details)
        row.evaluated_at = now
        row.job_id = job_id
    stages: dict[str, list[Quality]] = {}
    for result in results:
        stages.setdefault(result.stage, []).append(result.quality)
    session.execute(delete(RunStageQuality).where(RunStageQuality.run_id == run_id))
    for stage, qualities in sorted(stages.items()):
        session.add(
            RunStageQuality(run_id=run_id, stage=stage, quality=worst(qualities) or Quality.GOOD)
        )
    run = get_run(session, run_id=run_id)
    run.quality = worst(result.quality for result in results)
    session.flush()
    return run.quality


def _json_safe(details: Mapping[str, Any]) -> dict[str, Any]:
    """Details as plain JSON (numpy numbers and arrays become floats and lists; NaN None)."""

    def convert(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        if hasattr(value, "tolist"):
            return convert(value.tolist())
        if isinstance(value, float) and not math.isfinite(value):
            return None  # JSON has no NaN
        return value

    return convert(dict(details))  # type: ignore[no-any-return]


def check_results(
    session: Session, *, run_id: int, versions: Mapping[str, int] | None = None
) -> list[CheckResult]:
    """A run's check results, by stage and name: of the given version of each check if
    ``versions`` is given (the declared ones), else every version stored."""
    query = (
        select(CheckResult)
        .where(CheckResult.run_id == run_id)
        .order_by(CheckResult.stage, CheckResult.check_name, CheckResult.version)
    )
    rows = list(session.scalars(query))
    if versions is not None:
        rows = [row for row in rows if versions.get(row.check_name) == row.version]
    return rows


def run_stage_qualities(
    session: Session, *, run_ids: Iterable[int]
) -> dict[int, dict[str, Quality]]:
    """The quality per stage of each of these runs (runs never judged are left out)."""
    ids = list(run_ids)
    found: dict[int, dict[str, Quality]] = {}
    if not ids:
        return found
    for row in session.scalars(select(RunStageQuality).where(RunStageQuality.run_id.in_(ids))):
        found.setdefault(row.run_id, {})[row.stage] = row.quality
    return found


def check_result_history(
    session: Session, *, name: str, version: int, run_type: str, before_run: int, limit: int
) -> list[tuple[int, Quality]]:
    """``(run, quality)`` of one check in the runs of a type before ``before_run``, newest
    first (for streaks of Warnings)."""
    query = (
        select(CheckResult.run_id, CheckResult.quality)
        .join(Run, Run.run_id == CheckResult.run_id)
        .where(
            CheckResult.check_name == name,
            CheckResult.version == version,
            Run.run_type == run_type,
            Run.run_id < before_run,
        )
        .order_by(CheckResult.run_id.desc())
        .limit(limit)
    )
    return [(run_id, quality) for run_id, quality in session.execute(query)]


def checks_token(session: Session, *, run_id: int | None = None) -> tuple[object, ...]:
    """A value that changes whenever check results are stored (of one run if given)."""
    query = select(func.count(), func.max(CheckResult.evaluated_at), func.max(CheckResult.id))
    if run_id is not None:
        query = query.where(CheckResult.run_id == run_id)
    return tuple(session.execute(query).one())


def open_checks_job(session: Session, *, run_id: int) -> Job | None:
    """The checks job of this run that has not started yet (TODO), if any."""
    return session.scalar(
        select(Job)
        .where(Job.kind == CHECKS_JOB_KIND, Job.run_id == run_id, Job.state == JobState.TODO)
        .order_by(Job.id)
        .limit(1)
    )


# --- references and history ----------------------------------------------------------------------


def clean_runs(
    session: Session,
    *,
    run_type: str,
    before_run: int | None = None,
    exclude_run: int | None = None,
    source: str | None = None,
    source_z_mm: float | None = None,
    same_source: bool = False,
    certified: bool = False,
    limit: int | None = 1,
) -> list[Run]:
    """Completed runs of a type in which no check found anything wrong (:data:`CLEAN_QUALITIES`),
    newest first: the candidates for a reference and the history of Good runs.

    Args:
        before_run: only runs before this one.
        exclude_run: never this run.
        source, source_z_mm, same_source: with ``same_source``, only runs of this calibration
            source at this position (None matches None).
        certified: only runs certified Good (then whatever their checks said).
    """
    query = select(Run).where(Run.run_type == run_type, Run.status == RunStatus.ALL_COMPLETED)
    if certified:
        query = query.where(
            Run.certification == Certification.CERTIFIED, Run.verdict == Quality.GOOD
        )
    else:
        query = query.where(Run.quality.in_(list(CLEAN_QUALITIES)))
    if before_run is not None:
        query = query.where(Run.run_id < before_run)
    if exclude_run is not None:
        query = query.where(Run.run_id != exclude_run)
    if same_source:
        query = query.where(
            Run.source.is_(None) if source is None else Run.source == source,
            Run.source_z_mm.is_(None)
            if source_z_mm is None
            else func.abs(Run.source_z_mm - source_z_mm) < 1.0,
        )
    query = query.order_by(Run.run_id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def latest_analysis_values(
    session: Session, *, run_id: int, keys: Collection[tuple[str, str]]
) -> dict[tuple[str, str], tuple[float, float | None, str]]:
    """This run's values of the given (analysis, variable)s, ``(value, error, unit)``, each from
    the highest version of its analysis with a result for the run."""
    if not keys:
        return {}
    analyses = sorted({analysis for analysis, _ in keys})
    query = (
        select(AnalysisValue)
        .where(AnalysisValue.run_id == run_id, AnalysisValue.analysis.in_(analyses))
        .order_by(AnalysisValue.version)
    )
    found: dict[tuple[str, str], tuple[float, float | None, str]] = {}
    for row in session.scalars(query):
        key = (row.analysis, row.variable)
        if key in keys:
            found[key] = (row.value, row.error, row.unit)  # the highest version comes last
    return found


def history_values(
    session: Session,
    *,
    run_ids: Sequence[int],
    keys: Collection[tuple[str, str]],
) -> dict[tuple[str, str], list[float]]:
    """The values of these (analysis, variable)s in these runs, in the order of ``run_ids``
    (runs without the variable skipped); per run, the highest version of the analysis."""
    found: dict[tuple[str, str], list[float]] = {key: [] for key in keys}
    if not keys or not run_ids:
        return found
    analyses = sorted({analysis for analysis, _ in keys})
    best: dict[tuple[str, str, int], tuple[int, float]] = {}
    query = select(
        AnalysisValue.analysis,
        AnalysisValue.variable,
        AnalysisValue.run_id,
        AnalysisValue.version,
        AnalysisValue.value,
    ).where(AnalysisValue.run_id.in_(list(run_ids)), AnalysisValue.analysis.in_(analyses))
    for analysis, variable, run_id, version, value in session.execute(query):
        if (analysis, variable) not in found:
            continue
        slot = (analysis, variable, run_id)
        if slot not in best or best[slot][0] < version:
            best[slot] = (version, value)
    for analysis, variable in found:
        found[(analysis, variable)] = [
            best[(analysis, variable, run_id)][1]
            for run_id in run_ids
            if (analysis, variable, run_id) in best
        ]
    return found


def analyses_with_results(session: Session, *, run_id: int) -> set[str]:
    """The analyses (any version) with a result for the run."""
    return set(
        session.scalars(
            select(AnalysisResult.analysis).where(AnalysisResult.run_id == run_id).distinct()
        )
    )


def reference_pin(session: Session, *, run_type: str, run_id: int) -> ReferencePin | None:
    """The pin in force for a run: its own if it has one, else its run type's (the latest pin of
    each scope; a pin without a reference run lifts the earlier ones)."""
    scopes = (
        ReferencePin.run_id == run_id,
        (ReferencePin.run_type == run_type) & ReferencePin.run_id.is_(None),
    )
    for scope in scopes:
        pin = session.scalar(
            select(ReferencePin).where(scope).order_by(ReferencePin.id.desc()).limit(1)
        )
        if pin is not None and pin.reference_run is not None:
            return pin
    return None


def reference_pins(session: Session, *, limit: int | None = 50) -> list[ReferencePin]:
    """The latest pins and lifts, newest first."""
    query = select(ReferencePin).order_by(ReferencePin.id.desc())
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def pin_reference(
    session: Session,
    *,
    user: str,
    reference_run: int | None,
    run_type: str | None = None,
    run_id: int | None = None,
    comment: str = "",
    now: dt.datetime | None = None,
) -> ReferencePin:
    """Pin a reference for every run of a type, or for one run (``reference_run`` None lifts the
    pin: the automatic choice holds again). Recorded in ``changes``.

    Raises:
        InvalidValueError: neither or both scopes given, a reference of another run type, the run
            itself, or ``user`` may not write.
        NotFoundError: no such run or reference run.
    """
    require_writer(user)
    if (run_type is None) == (run_id is None):
        raise InvalidValueError("pin a reference either for a run type or for one run.")
    if run_id is not None:
        run_type = get_run(session, run_id=run_id).run_type
    if reference_run is not None:
        reference = session.get(Run, reference_run)
        if reference is None:
            raise NotFoundError(f"run {reference_run} is not in the DQM database.")
        if reference.run_type != run_type:
            raise InvalidValueError(
                f"run {reference_run} is a {reference.run_type} run; the reference of {run_type} "
                "runs must be one too."
            )
        if reference_run == run_id:
            raise InvalidValueError(f"run {run_id} cannot be its own reference.")
    scope = f"run {run_id}" if run_id is not None else f"{run_type} runs"
    record_change(
        session,
        user=user,
        action="reference",
        target=str(run_id) if run_id is not None else str(run_type),
        detail={"scope": scope, "reference_run": reference_run, "comment": comment},
    )
    pin = ReferencePin(
        run_type=None if run_id is not None else run_type,
        run_id=run_id,
        reference_run=reference_run,
        user=user[:64],
        at=now or utcnow(),
        comment=comment,
    )
    session.add(pin)
    session.flush()
    return pin


def runs_judged_before(
    session: Session, *, run_type: str, reference_run: int, limit: int = 20
) -> dict[int, int]:
    """The All Completed runs of ``run_type`` after ``reference_run`` whose checks were judged
    against an earlier reference (a run that was not yet clean when they were checked): run →
    the reference their checks used, the first ``limit`` by run number."""
    used = func.max(CheckResult.reference_run)
    rows = session.execute(
        select(Run.run_id, used)
        .join(CheckResult, CheckResult.run_id == Run.run_id)
        .where(
            Run.run_type == run_type,
            Run.run_id > reference_run,
            Run.status == RunStatus.ALL_COMPLETED,
            CheckResult.reference_run.is_not(None),
        )
        .group_by(Run.run_id)
        .having(used < reference_run)
        .order_by(Run.run_id)
        .limit(limit)
    )
    return {run_id: reference for run_id, reference in rows if reference is not None}
