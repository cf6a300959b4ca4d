"""The rules of alarms, without the database: when a check's result opens or resolves an alarm,
when an open alarm is notified again or escalated, and what a notification says.

- **Opening.** A check turning Bad opens its alarm for the run. A check Warning in
  ``warning_streak`` consecutive runs of a type (this one included; a Bad counts as at least a
  Warning) opens an alarm too, as a Warning. A run taking data whose files wait with none done for
  ``stall_after`` opens a stall alarm. There is one alarm per (check, run) and per stalled run,
  whatever the number of evaluations: a check still Bad keeps its alarm, one turning Bad again
  reopens it.
- **Resolving.** An alarm resolves by itself when its check turns Good (TooFew and Unknown leave
  it as it is: they say nothing new), or when the stall ends; an expert may close it by hand.
- **Reminding.** An OPEN alarm (not acknowledged) notifies the shifters at once, then again every
  ``remind_after``; once open for ``escalate_after`` it goes to the experts as well (once).
  Acknowledging stops the reminders; a worsening (Warning to Bad) reopens it.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Sequence

from dqm.checks.quality import Quality
from dqm.states import AlarmState

__all__ = [
    "AlarmAction",
    "alarm_key",
    "decide",
    "due_audiences",
    "stall_key",
]


class AlarmAction(enum.StrEnum):
    """What a check's new result does to its alarm."""

    OPEN = "open"  # open it (or reopen it, or keep it open with the new sentence)
    RESOLVE = "resolve"  # resolve it if it is open
    KEEP = "keep"  # leave it as it is


def alarm_key(check: str, run_id: int) -> str:
    """The key of the alarm of a check on a run (one alarm per (check, run))."""
    return f"check:{check}:{run_id}"


def stall_key(run_id: int) -> str:
    """The key of the stall alarm of a run."""
    return f"stall:{run_id}"


def decide(
    quality: Quality, earlier: Sequence[Quality], *, warning_streak: int
) -> tuple[AlarmAction, Quality | None, int]:
    """What a check's result does to the alarm of its (check, run).

    Args:
        quality: the check's new quality for the run.
        earlier: the same check's qualities in the earlier runs of the type, newest first.
        warning_streak: Warnings in this many consecutive runs open an alarm.

    Returns:
        The action, the alarm's severity when it opens (Bad or Warning), and the length of the
        streak of Warnings (or worse) that ends with this run.
    """
    if quality == Quality.GOOD:
        return AlarmAction.RESOLVE, None, 0
    if quality == Quality.BAD:
        return AlarmAction.OPEN, Quality.BAD, 1
    if quality != Quality.WARNING:
        return AlarmAction.KEEP, None, 0
    streak = 1
    for before in earlier:
        if before not in (Quality.WARNING, Quality.BAD):
            break
        streak += 1
    if streak >= warning_streak:
        return AlarmAction.OPEN, Quality.WARNING, streak
    return AlarmAction.KEEP, None, streak


def due_audiences(
    *,
    state: AlarmState,
    opened_at: dt.datetime,
    notified_at: dt.datetime | None,
    escalated_at: dt.datetime | None,
    now: dt.datetime,
    remind_after_s: float,
    escalate_after_s: float,
) -> list[str]:
    """Who should be told about an alarm now: ``shifter`` (first notice or reminder) and/or
    ``expert`` (escalation), or nobody."""
    if state != AlarmState.OPEN:
        return []
    due = []
    if notified_at is None or (now - notified_at).total_seconds() >= remind_after_s:
        due.append("shifter")
    if escalated_at is None and (now - opened_at).total_seconds() >= escalate_after_s:
        due.append("expert")
    return due
