"""Alarms: opening, reopening, acknowledging, resolving and closing them (each transition recorded
with who and when), the reminders that are due, and the runs whose processing stalls."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqm.alarms import due_audiences
from dqm.checks.quality import SEVERITY, Quality
from dqm.db.models import Alarm, AlarmEvent, File, Job, Run
from dqm.errors import InvalidValueError, NotFoundError
from dqm.states import AlarmState, FileState, JobState, RunStatus
from dqm.times import format_time, utcnow
from dqm.users import require_writer

__all__ = [
    "AlarmCounts",
    "StalledRun",
    "acknowledge_alarm",
    "alarm_counts",
    "alarms_token",
    "close_alarm",
    "due_notifications",
    "get_alarm",
    "list_alarms",
    "mark_notified",
    "raise_alarm",
    "resolve_alarm",
    "stalled_runs",
]

_FILE_JOB_KIND = "process_file"
_WAITING = (FileState.ANNOUNCED, FileState.PROCESSING)


def _event(
    alarm: Alarm, action: str, now: dt.datetime, user: str | None = None, comment: str = ""
) -> None:
    alarm.events.append(
        AlarmEvent(action=action, state=alarm.state, user=user, comment=comment, at=now)
    )
    alarm.updated_at = now


def raise_alarm(
    session: Session,
    *,
    key: str,
    kind: str,
    severity: Quality,
    sentence: str,
    check_name: str | None = None,
    run_id: int | None = None,
    run_type: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[Alarm, str | None]:
    """Open the alarm of ``key``, or keep it open with the new sentence.

    A resolved alarm reopens; an acknowledged one reopens if it worsened (Warning to Bad).

    Returns:
        The alarm and what happened: ``opened``, ``reopened``, ``worsened`` or None (it was open
        already).
    """
    now = now or utcnow()
    alarm = session.scalar(select(Alarm).where(Alarm.key == key))
    if alarm is None:
        alarm = Alarm(
            key=key,
            kind=kind,
            check_name=check_name,
            run_id=run_id,
            run_type=run_type,
            severity=severity,
            state=AlarmState.OPEN,
            sentence=sentence,
            opened_at=now,
            notifications=0,
        )
        session.add(alarm)
        _event(alarm, "opened", now, comment=sentence)
        session.flush()
        return alarm, "opened"
    worse = SEVERITY[severity] > SEVERITY[alarm.severity]
    alarm.sentence = sentence
    action: str | None = None
    if alarm.state == AlarmState.RESOLVED or (alarm.state == AlarmState.ACKNOWLEDGED and worse):
        action = "reopened" if alarm.state == AlarmState.RESOLVED else "worsened"
        alarm.state = AlarmState.OPEN
        alarm.opened_at = now
        alarm.notified_at = alarm.escalated_at = None
        alarm.resolved_at = alarm.resolved_by = None
        alarm.severity = severity
        _event(alarm, action, now, comment=sentence)
    elif worse:
        alarm.severity = severity
        alarm.updated_at = now
    session.flush()
    return alarm, action


def resolve_alarm(
    session: Session, *, key: str, sentence: str, now: dt.datetime | None = None
) -> Alarm | None:
    """Resolve the alarm of ``key`` by itself (its check turned Good, its stall ended), if it is
    not resolved already. Returns the alarm if it changed."""
    alarm = session.scalar(select(Alarm).where(Alarm.key == key))
    if alarm is None or alarm.state == AlarmState.RESOLVED:
        return None
    now = now or utcnow()
    alarm.state = AlarmState.RESOLVED
    alarm.resolved_at = now
    alarm.resolved_by = None
    alarm.sentence = sentence
    _event(alarm, "resolved", now, comment=sentence)
    session.flush()
    return alarm


def get_alarm(session: Session, *, alarm_id: int) -> Alarm:
    """The alarm of this id.

    Raises:
        NotFoundError: no such alarm.
    """
    alarm = session.get(Alarm, alarm_id)
    if alarm is None:
        raise NotFoundError(f"there is no alarm {alarm_id}.")
    return alarm


def _comment(comment: str | None, what: str) -> str:
    text = (comment or "").strip()
    if not text:
        raise InvalidValueError(f"{what} needs a comment: say what was done or why.")
    if len(text) > 2000:
        raise InvalidValueError(f"a comment is at most 2,000 characters, not {len(text):,}.")
    return text


def acknowledge_alarm(
    session: Session,
    *,
    alarm_id: int,
    user: str | None,
    comment: str | None,
    now: dt.datetime | None = None,
) -> Alarm:
    """A shifter acknowledges an open alarm: the reminders stop.

    Raises:
        InvalidValueError: nobody logged in, no comment, or the alarm is not open.
        NotFoundError: no such alarm.
    """
    require_writer(user)
    assert user is not None
    text = _comment(comment, "acknowledging an alarm")
    alarm = get_alarm(session, alarm_id=alarm_id)
    if alarm.state == AlarmState.ACKNOWLEDGED:
        raise InvalidValueError(
            f"alarm {alarm_id} was acknowledged already by {alarm.acknowledged_by} at "
            f"{format_time(alarm.acknowledged_at)}."
        )
    if alarm.state == AlarmState.RESOLVED:
        raise InvalidValueError(f"alarm {alarm_id} is resolved: there is nothing to acknowledge.")
    now = now or utcnow()
    alarm.state = AlarmState.ACKNOWLEDGED
    alarm.acknowledged_at, alarm.acknowledged_by = now, user[:64]
    _event(alarm, "acknowledged", now, user=user[:64], comment=text)
    session.flush()
    return alarm


def close_alarm(
    session: Session,
    *,
    alarm_id: int,
    user: str | None,
    comment: str | None,
    now: dt.datetime | None = None,
) -> Alarm:
    """An expert closes an alarm by hand, with a comment (it reopens if its check turns Bad again).

    Raises:
        InvalidValueError: nobody logged in, no comment, or the alarm is resolved already.
        NotFoundError: no such alarm.
    """
    require_writer(user)
    assert user is not None
    text = _comment(comment, "closing an alarm")
    alarm = get_alarm(session, alarm_id=alarm_id)
    if alarm.state == AlarmState.RESOLVED:
        raise InvalidValueError(f"alarm {alarm_id} is resolved already.")
    now = now or utcnow()
    alarm.state = AlarmState.RESOLVED
    alarm.resolved_at, alarm.resolved_by = now, user[:64]
    _event(alarm, "closed", now, user=user[:64], comment=text)
    session.flush()
    return alarm


def list_alarms(
    session: Session,
    *,
    states: Collection[AlarmState] | None = None,
    run_id: int | None = None,
    check_name: str | None = None,
    severity: Quality | None = None,
    before_id: int | None = None,
    limit: int | None = 100,
) -> list[Alarm]:
    """Alarms, newest first, filtered (``before_id``: the next page after an earlier one)."""
    query = select(Alarm).order_by(Alarm.id.desc())
    if states is not None:
        query = query.where(Alarm.state.in_(list(states)))
    if run_id is not None:
        query = query.where(Alarm.run_id == run_id)
    if check_name is not None:
        query = query.where(Alarm.check_name == check_name)
    if severity is not None:
        query = query.where(Alarm.severity == severity)
    if before_id is not None:
        query = query.where(Alarm.id < before_id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class AlarmCounts:
    """The alarms not resolved: open (not acknowledged) and acknowledged, by severity."""

    open: dict[str, int]
    acknowledged: dict[str, int]

    @property
    def n_open(self) -> int:
        return sum(self.open.values())

    @property
    def n_acknowledged(self) -> int:
        return sum(self.acknowledged.values())


def alarm_counts(session: Session) -> AlarmCounts:
    """How many alarms are open and acknowledged, by severity (for the banner)."""
    counts: dict[AlarmState, dict[str, int]] = {
        AlarmState.OPEN: {},
        AlarmState.ACKNOWLEDGED: {},
    }
    query = (
        select(Alarm.state, Alarm.severity, func.count())
        .where(Alarm.state != AlarmState.RESOLVED)
        .group_by(Alarm.state, Alarm.severity)
    )
    for state, severity, n in session.execute(query):
        counts[state][str(severity)] = n
    return AlarmCounts(counts[AlarmState.OPEN], counts[AlarmState.ACKNOWLEDGED])


def alarms_token(session: Session) -> tuple[object, ...]:
    """A value that changes whenever an alarm does."""
    return tuple(
        session.execute(select(func.count(), func.max(Alarm.updated_at), func.max(Alarm.id))).one()
    )


def due_notifications(
    session: Session,
    *,
    now: dt.datetime,
    remind_after_s: float,
    escalate_after_s: float,
) -> list[tuple[Alarm, str]]:
    """``(alarm, audience)`` of the notifications due now (:func:`dqm.alarms.due_audiences`),
    oldest alarm first."""
    due = []
    for alarm in session.scalars(
        select(Alarm).where(Alarm.state == AlarmState.OPEN).order_by(Alarm.id)
    ):
        for audience in due_audiences(
            state=alarm.state,
            opened_at=alarm.opened_at,
            notified_at=alarm.notified_at,
            escalated_at=alarm.escalated_at,
            now=now,
            remind_after_s=remind_after_s,
            escalate_after_s=escalate_after_s,
        ):
            due.append((alarm, audience))
    return due


def mark_notified(
    session: Session, *, alarm_id: int, audience: str, now: dt.datetime | None = None
) -> None:
    """Record that an alarm was handed to the channels for ``audience`` (shifter or expert)."""
    now = now or utcnow()
    alarm = get_alarm(session, alarm_id=alarm_id)
    if audience == "expert":
        alarm.escalated_at = now
        _event(alarm, "escalated", now)
    else:
        first = alarm.notified_at is None
        alarm.notified_at = now
        alarm.notifications = (alarm.notifications or 0) + 1
        _event(alarm, "notified" if first else "reminded", now)
    session.flush()


@dataclass(frozen=True)
class StalledRun:
    """A run taking data whose processing makes no progress."""

    run_id: int
    run_type: str
    waiting_files: int
    since: dt.datetime  # the last file done, or the oldest waiting file's arrival


def stalled_runs(session: Session, *, now: dt.datetime, stall_after_s: float) -> list[StalledRun]:
    """Runs taking data with files waiting and no file done for ``stall_after_s``."""
    waiting = (
        select(File.run_id, func.count().label("n"), func.min(File.arrived_at).label("oldest"))
        .join(Run, Run.run_id == File.run_id)
        .where(Run.status == RunStatus.DATA_TAKING, File.state.in_(list(_WAITING)))
        .group_by(File.run_id)
    )
    found = []
    for run_id, n, oldest in session.execute(waiting).all():
        last_done = session.scalar(
            select(func.max(Job.finished_at)).where(
                Job.run_id == run_id, Job.kind == _FILE_JOB_KIND, Job.state == JobState.DONE
            )
        )
        since = (
            max(t for t in (last_done, oldest) if t is not None) if (last_done or oldest) else None
        )
        if since is not None and (now - since).total_seconds() >= stall_after_s:
            run_type = session.scalar(select(Run.run_type).where(Run.run_id == run_id)) or ""
            found.append(StalledRun(run_id, run_type, n, since))
    return found
