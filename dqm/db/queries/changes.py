"""Changes made through the dashboard (who and when), and the settings they change."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dqm.db.models import (
    Change,
    CutDefaults,
    Job,
    Run,
)

#: Run attributes that ``update_run`` may change.
from dqm.db.queries.files_jobs import get_job, retry_jobs
from dqm.db.queries.runs import get_run
from dqm.errors import InvalidValueError
from dqm.messages import RUN_TYPES
from dqm.pmtclass import HitRateCuts
from dqm.runs import check_comment
from dqm.times import utcnow
from dqm.users import require_writer


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


def cut_defaults(session: Session, *, run_type: str) -> CutDefaults | None:
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
        InvalidValueError: an unknown run type, a cut outside [0, 1], a band whose ends are
            swapped, or no user.
    """
    if run_type not in RUN_TYPES:
        raise InvalidValueError(
            f"{run_type[:40]!r} is not a run type; the run types are {', '.join(RUN_TYPES)}."
        )
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


def set_run_comment(session: Session, *, run_id: int, comment: str, user: str) -> Run:
    """Replace a run's comment, recording who and when.

    Raises:
        NotFoundError: no such run.
        InvalidValueError: no user, or a comment over :data:`dqm.runs.COMMENT_MAX_CHARS`
            characters.
    """
    comment = check_comment(comment)
    run = get_run(session, run_id=run_id)
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


def retry_job_as(
    session: Session, *, job_id: int, user: str, role: str = "admin", reason: str = ""
) -> Job:
    """Put a FAILED or TOCHECK job back to TODO (see :func:`retry_jobs`: a certified run goes
    back to sign-off, with ``reason``), recording who and when."""
    job = get_job(session, job_id=job_id)
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
            **({"reason": reason.strip()} if reason.strip() else {}),
        },
    )
    (job,) = retry_jobs(session, job_id=job_id, user=user, role=role, reason=reason)
    return job
