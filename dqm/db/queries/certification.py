"""Sign-off and certification: the decisions on runs (kept for ever), and the good-run list.

The rules (what may follow what, the prefill, the verdict) are :mod:`dqm.certification`'s; who may
decide is :mod:`dqm.users`' (asked by the caller). This module stores and reads.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from dqm import __version__
from dqm.certification import certification_of, next_state, prefill, verdict
from dqm.checks.quality import Quality
from dqm.db.models import Run, RunDecision
from dqm.db.queries.calibrations import calibration_for_run
from dqm.db.queries.checks import check_results, run_stage_qualities
from dqm.db.queries.runs import get_run
from dqm.errors import InvalidValueError
from dqm.runs import check_comment
from dqm.states import Certification, RunStatus
from dqm.times import format_time, utcnow
from dqm.users import require_writer

__all__ = [
    "GoodRun",
    "current_certification",
    "decide",
    "good_runs",
    "run_decisions",
    "runs_to_sign_off",
    "sign_off_counts",
    "sign_off_form",
]


def _versions(session: Session, run: Run) -> dict[str, Any]:
    """What a run is judged under: its calibration, its checks' versions, the code's version."""
    calibration = calibration_for_run(session, run_id=run.run_id)
    checks: dict[str, int] = {}
    for row in check_results(session, run_id=run.run_id):
        checks[row.check_name] = max(row.version, checks.get(row.check_name, 0))
    return {
        "calibration": calibration.version if calibration is not None else None,
        "checks": checks,
        "code": __version__,
    }


def sign_off_form(session: Session, *, run_id: int) -> dict[str, Quality]:
    """The sign-off decisions per stage as the form starts: from the automatic quality."""
    get_run(session, run_id=run_id)
    return prefill(run_stage_qualities(session, run_ids=[run_id]).get(run_id, {}))


def decide(
    session: Session,
    *,
    run_id: int,
    action: str,
    user: str,
    role: str,
    comment: str = "",
    stages: Mapping[str, Quality] | None = None,
    now: dt.datetime | None = None,
) -> RunDecision:
    """Record a decision on a run: ``sign_off`` (with ``stages``: a Good or Bad decision per
    stage, default the prefill), ``certify`` or ``reopen``; the run's state and verdict follow.

    Raises:
        InvalidValueError: nobody logged in, a decision not possible now, no comment where one
            is needed, a comment too long.
        NotFoundError: no such run.
    """
    require_writer(user)
    run = get_run(session, run_id=run_id)
    text = check_comment(comment) if comment else ""
    state = next_state(run_id, run.status, run.certification, action, text)
    decided: Quality | None
    stage_decisions: dict[str, str] = {}
    versions: dict[str, Any] = {}
    if action == "sign_off":
        chosen = dict(stages) if stages is not None else sign_off_form(session, run_id=run_id)
        stage_decisions = {stage: str(q) for stage, q in chosen.items()}
        decided = verdict(chosen)
    elif action == "certify":
        decided = run.verdict
        versions = _versions(session, run)
    else:
        decided = None
    decision = RunDecision(
        run_id=run_id,
        at=now or utcnow(),
        action=action,
        state=state,
        verdict=decided,
        stages=stage_decisions,
        user=user[:64],
        role=role[:16],
        comment=text,
        versions=versions,
    )
    session.add(decision)
    run.certification, run.verdict = state, decided
    session.flush()
    return decision


def run_decisions(session: Session, *, run_id: int) -> list[RunDecision]:
    """A run's decisions, oldest first."""
    get_run(session, run_id=run_id)
    query = select(RunDecision).where(RunDecision.run_id == run_id).order_by(RunDecision.id)
    return list(session.scalars(query))


def _waiting() -> Any:
    return or_(
        and_(Run.certification.is_(None), Run.status == RunStatus.ALL_COMPLETED),
        Run.certification.in_([Certification.OPEN, Certification.SIGNED_OFF]),
    )


def sign_off_counts(session: Session) -> dict[str, int]:
    """How many runs wait for a sign-off (``OPEN``) and for a certification (``SIGNED_OFF``)."""
    undecided = session.scalar(
        select(func.count()).where(
            Run.certification.is_(None), Run.status == RunStatus.ALL_COMPLETED
        )
    )
    counts = {str(Certification.OPEN): int(undecided or 0), str(Certification.SIGNED_OFF): 0}
    for state, n in session.execute(
        select(Run.certification, func.count())
        .where(Run.certification.in_([Certification.OPEN, Certification.SIGNED_OFF]))
        .group_by(Run.certification)
    ):
        counts[str(state)] += int(n)
    return counts


def runs_to_sign_off(session: Session, *, limit: int | None = 50) -> list[Run]:
    """The runs that wait for a decision, oldest end first: open (All Completed, never decided
    or sent back) or signed off and waiting for certification."""
    query = select(Run).where(_waiting()).order_by(Run.end_time, Run.run_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class GoodRun:
    """A certified Good run, and what it was certified under."""

    run_id: int
    run_type: str
    start_time: dt.datetime
    end_time: dt.datetime | None
    n_events: int | None
    certified_at: dt.datetime
    certified_by: str
    calibration_version: int | None
    check_versions: dict[str, int]
    code_version: str

    def as_dict(self) -> dict[str, Any]:
        """As JSON: the good-run list of ``dqm goodruns --json``, the API and the download."""
        return {
            "run": self.run_id,
            "run_type": self.run_type,
            "start_time": format_time(self.start_time),
            "end_time": format_time(self.end_time) if self.end_time else None,
            "events": self.n_events,
            "certified_at": format_time(self.certified_at),
            "certified_by": self.certified_by,
            "calibration_version": self.calibration_version,
            "check_versions": dict(self.check_versions),
            "code_version": self.code_version,
        }


def good_runs(
    session: Session,
    *,
    run_types: Sequence[str] | None = None,
    since: int | None = None,
    until: int | None = None,
    limit: int | None = None,
) -> list[GoodRun]:
    """The good-run list: certified runs whose verdict is Good, by run number (at most ``limit``).

    Raises:
        InvalidValueError: ``since`` above ``until``.
    """
    if since is not None and until is not None and since > until:
        raise InvalidValueError(f"--since {since} is above --until {until}: no run is in between.")
    # Columns rather than objects, and the decisions joined in one query: a year of runs is
    # thousands of rows, which the ORM's objects would take a second to build.
    query = select(Run.run_id, Run.run_type, Run.start_time, Run.end_time, Run.n_events).where(
        Run.certification == Certification.CERTIFIED, Run.verdict == Quality.GOOD
    )
    if run_types:
        query = query.where(Run.run_type.in_(list(run_types)))
    if since is not None:
        query = query.where(Run.run_id >= since)
    if until is not None:
        query = query.where(Run.run_id <= until)
    query = query.order_by(Run.run_id)
    runs = session.execute(query if limit is None else query.limit(limit)).all()
    if not runs:
        return []
    if limit is None:  # the runs' own conditions, not thousands of numbers in the statement
        chosen: Any = RunDecision.run_id.in_(
            query.with_only_columns(Run.run_id).order_by(None).scalar_subquery()
        )
    else:
        chosen = RunDecision.run_id.in_([run.run_id for run in runs])
    latest: dict[int, Any] = {}
    decisions = (
        select(RunDecision.run_id, RunDecision.at, RunDecision.user, RunDecision.versions)
        .where(chosen, RunDecision.action == "certify")
        .order_by(RunDecision.id)
    )
    for decision in session.execute(decisions):
        latest[decision.run_id] = decision
    found = []
    for run in runs:
        decision = latest[run.run_id]
        versions = decision.versions or {}
        found.append(
            GoodRun(
                run_id=run.run_id,
                run_type=run.run_type,
                start_time=run.start_time,
                end_time=run.end_time,
                n_events=run.n_events,
                certified_at=decision.at,
                certified_by=decision.user,
                calibration_version=versions.get("calibration"),
                check_versions=dict(versions.get("checks") or {}),
                code_version=str(versions.get("code", "")),
            )
        )
    return found


def current_certification(run: Run) -> Certification | None:
    """The run's sign-off state (see :func:`dqm.certification.certification_of`)."""
    return certification_of(run.status, run.certification)
