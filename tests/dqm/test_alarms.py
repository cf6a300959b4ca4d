"""The rules of alarms: what a check's result does to its alarm, and who is told when."""

from __future__ import annotations

import datetime as dt

import pytest

from dqm.alarms import AlarmAction, decide, due_audiences
from dqm.checks.quality import Quality
from dqm.states import AlarmState

G, W, B, T, U = Quality.GOOD, Quality.WARNING, Quality.BAD, Quality.TOOFEW, Quality.UNKNOWN


@pytest.mark.parametrize(
    ("quality", "earlier", "expected"),
    [
        (B, [], (AlarmAction.OPEN, B, 1)),
        (G, [B, B], (AlarmAction.RESOLVE, None, 0)),
        (T, [B], (AlarmAction.KEEP, None, 0)),  # says nothing new
        (U, [B], (AlarmAction.KEEP, None, 0)),
        (W, [], (AlarmAction.KEEP, None, 1)),
        (W, [W], (AlarmAction.KEEP, None, 2)),
        (W, [W, B, G, W], (AlarmAction.OPEN, W, 3)),  # a Bad counts as at least a Warning
        (W, [W, T, W], (AlarmAction.KEEP, None, 2)),  # a TooFew run breaks the streak
    ],
)
def test_what_a_result_does_to_its_alarm(quality, earlier, expected) -> None:
    assert decide(quality, earlier, warning_streak=3) == expected


def test_a_streak_of_one_opens_on_the_first_warning() -> None:
    assert decide(W, [], warning_streak=1)[0] == AlarmAction.OPEN


def test_who_is_told_when() -> None:
    opened = dt.datetime(2026, 12, 1, 8, 0)

    def due(minutes, notified=None, escalated=None, state=AlarmState.OPEN):
        return due_audiences(
            state=state,
            opened_at=opened,
            notified_at=notified,
            escalated_at=escalated,
            now=opened + dt.timedelta(minutes=minutes),
            remind_after_s=600,
            escalate_after_s=1800,
        )

    assert due(0) == ["shifter"]
    assert due(9, notified=opened) == []
    assert due(10, notified=opened) == ["shifter"]
    assert due(30, notified=opened + dt.timedelta(minutes=25)) == ["expert"]
    assert due(45, notified=opened + dt.timedelta(minutes=40), escalated=opened) == []
    assert due(45, state=AlarmState.ACKNOWLEDGED) == []
    assert due(45, state=AlarmState.RESOLVED) == []
