"""Checks in the database: recording the declared checks, storing an evaluation of a run with the
alarms it opens or resolves, and queueing evaluations again (``dqm checks rerun``)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from dqm.alarms import AlarmAction, alarm_key, decide
from dqm.checks.declarations import CheckCatalog, CheckDeclaration, check_versions
from dqm.checks.evaluate import CheckOutcome
from dqm.checks.quality import Quality
from dqm.db import queries
from dqm.db.models import Job
from dqm.runstatus import CHECKS_JOB_KIND
from dqm.times import format_time, utcnow

__all__ = [
    "SAVED_BY",
    "AlarmChange",
    "queue_checks",
    "record_checks",
    "save_check_version",
    "store_outcomes",
    "with_saved_versions",
]

log = logging.getLogger("dqm.checks")


def record_checks(session: Session, catalog: CheckCatalog) -> CheckCatalog:
    """Record the declared checks in the database (refusing a version that went backwards), and
    return the catalog in force: with the versions saved by hand (:func:`with_saved_versions`).

    Raises:
        DeclarationError: a check's version is below one the database knows.
    """
    effective = with_saved_versions(session, catalog)
    check_versions(effective, queries.highest_check_versions(session))
    for declaration in effective:
        if declaration.origin.startswith(SAVED_BY):
            continue  # recorded when it was saved
        queries.record_check_declaration(
            session,
            name=declaration.name,
            version=declaration.version,
            declaration=declaration.to_json(),
            origin=declaration.origin,
        )
    return effective


@dataclass(frozen=True)
class AlarmChange:
    """What an evaluation did to an alarm."""

    alarm_id: int
    check: str
    action: str  # opened, reopened, worsened, resolved
    severity: Quality


def store_outcomes(
    session: Session,
    *,
    run_id: int,
    outcomes: Sequence[CheckOutcome],
    warning_streak: int,
    job_id: int | None = None,
    now: dt.datetime | None = None,
) -> tuple[Quality | None, list[AlarmChange]]:
    """Store an evaluation of a run's checks, its quality, and open or resolve the alarms it calls
    for (:func:`dqm.alarms.decide`), in the caller's transaction.

    Returns:
        The run's quality and what happened to alarms.
    """
    now = now or utcnow()
    run = queries.get_run(session, run_id=run_id)
    quality = queries.save_check_results(
        session,
        run_id=run_id,
        results=[
            queries.NewCheckResult(
                name=o.name,
                version=o.version,
                stage=o.stage,
                quality=o.outcome.quality,
                sentence=o.outcome.sentence,
                reference_run=o.outcome.reference_run,
                statistics=o.outcome.statistics,
                details=dict(o.outcome.details),
            )
            for o in outcomes
        ],
        job_id=job_id,
        now=now,
    )
    changes: list[AlarmChange] = []
    for o in outcomes:
        earlier: list[Quality] = []
        if o.outcome.quality == Quality.WARNING and warning_streak > 1:
            earlier = [
                q
                for _run, q in queries.check_result_history(
                    session,
                    name=o.name,
                    version=o.version,
                    run_type=run.run_type,
                    before_run=run_id,
                    limit=warning_streak - 1,
                )
            ]
        action, severity, streak = decide(o.outcome.quality, earlier, warning_streak=warning_streak)
        key = alarm_key(o.name, run_id)
        if action == AlarmAction.OPEN and severity is not None:
            streak_text = (
                f" (Warning in {streak} consecutive {run.run_type} runs)"
                if severity == Quality.WARNING
                else ""
            )
            alarm, happened = queries.raise_alarm(
                session,
                key=key,
                kind="check" if severity == Quality.BAD else "streak",
                severity=severity,
                sentence=f"run {run_id}, check {o.name}{streak_text}: {o.outcome.sentence}",
                check_name=o.name,
                run_id=run_id,
                run_type=run.run_type,
                now=now,
            )
            if happened:
                changes.append(AlarmChange(alarm.id, o.name, happened, severity))
        elif action == AlarmAction.RESOLVE:
            resolved = queries.resolve_alarm(
                session,
                key=key,
                sentence=f"run {run_id}, check {o.name} is Good again: {o.outcome.sentence}",
                now=now,
            )
            if resolved is not None:
                changes.append(AlarmChange(resolved.id, o.name, "resolved", resolved.severity))
    for change in changes:
        log.warning(
            "run %d: alarm %d %s (%s, check %s)",
            run_id,
            change.alarm_id,
            change.action,
            change.severity,
            change.check,
        )
    return quality, changes


def queue_checks(session: Session, *, run_id: int, code_version: str | None = None) -> Job | None:
    """Queue an evaluation of a run's checks (a TODO one already waiting is reused: it will read
    whatever is there when it runs). Returns the new job, or None if one was waiting."""
    waiting = queries.open_checks_job(session, run_id=run_id)
    if waiting is not None:
        waiting.not_before = None
        return None
    return queries.add_job(session, kind=CHECKS_JOB_KIND, run_id=run_id, code_version=code_version)


#: How the origin of a version saved from the dashboard or the command line begins.
SAVED_BY = "saved by "


def save_check_version(
    session: Session,
    *,
    current: CheckDeclaration,
    proposed: CheckDeclaration,
    user: str,
    comment: str = "",
    now: dt.datetime | None = None,
) -> CheckDeclaration:
    """Save a check's proposed definition as its new version (above every version the database
    knows), recorded in ``changes``; it holds from the checks' next evaluation on, and beats the
    files' declarations of a lower version.

    Raises:
        InvalidValueError: ``user`` may not write.
    """
    now = now or utcnow()
    version = max(queries.highest_check_versions(session).get(current.name, 0), current.version) + 1
    saved = replace(
        proposed, version=version, origin=f"{SAVED_BY}{user[:48]} at {format_time(now)}"
    )
    changed = {
        key: value
        for key, value in saved.parameters.items()
        if current.parameters.get(key) != value
    }
    queries.record_change(
        session,
        user=user,
        action="check_version",
        target=current.name,
        detail={
            "from_version": current.version,
            "version": version,
            "changed": changed,
            "comment": comment,
        },
    )
    queries.record_check_declaration(
        session,
        name=saved.name,
        version=saved.version,
        declaration=saved.to_json(),
        origin=saved.origin,
        now=now,
    )
    return saved


def with_saved_versions(session: Session, catalog: CheckCatalog) -> CheckCatalog:
    """The catalog with the versions saved from the dashboard or the command line in place of the
    declared ones they supersede (a saved version above the declared one wins; a file that
    declares a version as high or higher wins back)."""
    saved: dict[str, CheckDeclaration] = {}
    for row in queries.check_declarations(session):
        if not row.origin.startswith(SAVED_BY) or row.name not in catalog:
            continue
        declared = catalog.get(row.name)
        if row.version <= declared.version:
            continue
        parameters = dict(declared.parameters)
        parameters.update(row.declaration.get("parameters", {}))
        if row.name not in saved or saved[row.name].version < row.version:
            saved[row.name] = replace(
                declared, version=row.version, parameters=parameters, origin=row.origin
            )
    if not saved:
        return catalog
    return replace(catalog, checks={**catalog.checks, **saved})
