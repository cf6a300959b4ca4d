"""Checks and alarms in the database, on every backend: one result per (check, version, run), the
run's quality per stage and as a whole, clean runs as references and history, pins recorded in the
changes, one alarm per (check, run) through its whole life, reminders and stalls."""

from __future__ import annotations

import datetime as dt

import pytest

from dqm.alarms import alarm_key
from dqm.checks.quality import Quality
from dqm.checks.references import choose_reference
from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import InvalidValueError
from dqm.states import AlarmState, FileState

START = dt.datetime(2026, 11, 1, 8, 0)


def add_runs(session, run_ids, run_type="physics", status="All Completed", **fields):
    for run_id in run_ids:
        queries.add_run(
            session,
            run_id=run_id,
            run_type=run_type,
            start_time=START + dt.timedelta(hours=run_id - 100),
            end_time=START + dt.timedelta(hours=run_id - 100, minutes=50),
            status=status,
            **fields,
        )


def result(name, quality, stage="calib", version=1, sentence="why", **more):
    return queries.NewCheckResult(name, version, stage, Quality(quality), sentence, **more)


def test_results_replace_each_other_and_give_the_quality_per_stage(database: str) -> None:
    with transaction(database) as s:
        add_runs(s, [101])
        quality = queries.save_check_results(
            s,
            run_id=101,
            results=[
                result("shape", "Good"),
                result("mean", "TooFew", details={"x": float("nan"), "ids": (1, 2)}),
                result("dead", "Warning", stage="pmt", reference_run=100, statistics=4000.0),
            ],
        )
        assert quality == Quality.WARNING
    with transaction(database) as s:
        # a re-evaluation replaces the results of the same (check, version, run)
        queries.save_check_results(
            s,
            run_id=101,
            results=[result("shape", "Bad"), result("mean", "Good"), result("dead", "Good", "pmt")],
        )
        rows = queries.check_results(s, run_id=101)
        assert [(r.check_name, r.quality) for r in rows] == [
            ("mean", Quality.GOOD),
            ("shape", Quality.BAD),
            ("dead", Quality.GOOD),
        ]
        assert queries.get_run(s, run_id=101).quality == Quality.BAD
        assert queries.run_stage_qualities(s, run_ids=[101, 999]) == {
            101: {"calib": Quality.BAD, "pmt": Quality.GOOD}
        }
        # a new version stands beside the old one; asking for the declared versions picks it
        queries.save_check_results(s, run_id=101, results=[result("shape", "Good", version=2)])
        assert len(queries.check_results(s, run_id=101)) == 4
        current = queries.check_results(s, run_id=101, versions={"shape": 2})
        assert [(r.check_name, r.version) for r in current] == [("shape", 2)]
        # the evaluation covers every check that applies: calib is now only the Good v2
        assert queries.get_run(s, run_id=101).quality == Quality.GOOD
        assert queries.run_stage_qualities(s, run_ids=[101])[101] == {"calib": Quality.GOOD}


def test_history_of_a_check_and_details_are_plain_json(database: str) -> None:
    with transaction(database) as s:
        add_runs(s, [101, 102, 103, 104])
        add_runs(s, [105], run_type="laser")
        for run_id, q in zip([101, 102, 103, 105], ["Good", "Warning", "Bad", "Warning"]):
            queries.save_check_results(
                s, run_id=run_id, results=[result("c", q, details={"v": float("inf")})]
            )
        history = queries.check_result_history(
            s, name="c", version=1, run_type="physics", before_run=104, limit=5
        )
        assert history == [(103, Quality.BAD), (102, Quality.WARNING), (101, Quality.GOOD)]
        assert queries.check_results(s, run_id=101)[0].details == {"v": None}


def test_clean_runs_and_the_automatic_reference(database: str) -> None:
    with transaction(database) as s:
        add_runs(s, [101, 102, 103, 104, 105])
        add_runs(s, [106], status="Data Taking")
        add_runs(s, [201, 202], run_type="calibration", source="Cs137", source_z_mm=0.0)
        add_runs(s, [203], run_type="calibration", source="Cs137", source_z_mm=5000.0)
        add_runs(s, [204], run_type="calibration", source="Cs137", source_z_mm=0.0)
        for run_id, q in {101: "Good", 102: "Unknown", 103: "Bad", 104: "Warning"}.items():
            queries.save_check_results(s, run_id=run_id, results=[result("c", q)])
        for run_id in (201, 202, 203):
            queries.save_check_results(s, run_id=run_id, results=[result("c", "Good")])
        # 105 is never judged; 103 and 104 found something wrong: 102 (Unknown: nothing wrong)
        choice = choose_reference(s, run_id=106)
        assert choice.run_id == 102 and "latest completed physics run" in choice.reason
        assert choose_reference(s, run_id=102).run_id == 101  # before it, never itself
        assert choose_reference(s, run_id=101).run_id is None
        # calibration runs: the same source at the same position
        assert choose_reference(s, run_id=204).run_id == 202
        assert "source Cs137 at z = 0 mm" in choose_reference(s, run_id=204).reason
        clean = queries.clean_runs(s, run_type="physics", limit=None)
        assert [r.run_id for r in clean] == [102, 101]


def test_pins_win_are_recorded_and_can_be_lifted(database: str) -> None:
    with transaction(database) as s:
        add_runs(s, [101, 102, 103, 104])
        add_runs(s, [301], run_type="laser")
        for run_id in (101, 102, 103):
            queries.save_check_results(s, run_id=run_id, results=[result("c", "Good")])
        queries.pin_reference(
            s, user="expert", reference_run=101, run_type="physics", comment="best"
        )
        choice = choose_reference(s, run_id=104)
        assert (choice.run_id, choice.pinned) == (101, True)
        assert "pinned for physics runs by expert" in choice.reason and "(best)" in choice.reason
        queries.pin_reference(s, user="shifter", reference_run=102, run_id=104)
        assert choose_reference(s, run_id=104).run_id == 102
        # the type's pin never makes a run its own reference
        assert choose_reference(s, run_id=101).run_id is None
        queries.pin_reference(s, user="shifter", reference_run=None, run_id=104)
        assert choose_reference(s, run_id=104).run_id == 101
        queries.pin_reference(s, user="expert", reference_run=None, run_type="physics")
        assert choose_reference(s, run_id=104).run_id == 103
        actions = [(c.action, c.user, c.target) for c in queries.changes(s, limit=4)]
        assert actions[0] == ("reference", "expert", "physics")
        assert ("reference", "shifter", "104") in actions
        with pytest.raises(InvalidValueError, match="laser run"):
            queries.pin_reference(s, user="x", reference_run=301, run_id=104)
        with pytest.raises(InvalidValueError, match="its own reference"):
            queries.pin_reference(s, user="x", reference_run=104, run_id=104)
        with pytest.raises(InvalidValueError, match="log in"):
            queries.pin_reference(s, user="", reference_run=101, run_id=104)


def test_one_alarm_per_check_and_run_through_its_life(database: str) -> None:
    now = START
    with transaction(database) as s:
        add_runs(s, [101])
        key = alarm_key("shape", 101)
        alarm, happened = queries.raise_alarm(
            s,
            key=key,
            kind="check",
            severity=Quality.BAD,
            sentence="bad",
            check_name="shape",
            run_id=101,
            run_type="physics",
            now=now,
        )
        assert happened == "opened" and alarm.state == AlarmState.OPEN
        again, happened = queries.raise_alarm(
            s, key=key, kind="check", severity=Quality.BAD, sentence="still bad", now=now
        )
        assert (again.id, happened, again.sentence) == (alarm.id, None, "still bad")
        alarm_id = alarm.id
    with transaction(database) as s:
        with pytest.raises(InvalidValueError, match="needs a comment"):
            queries.acknowledge_alarm(s, alarm_id=alarm_id, user="ana", comment="  ")
        with pytest.raises(InvalidValueError, match="log in"):
            queries.acknowledge_alarm(s, alarm_id=alarm_id, user=None, comment="looked")
    with transaction(database) as s:
        queries.acknowledge_alarm(
            s, alarm_id=alarm_id, user="ana", comment="HV trip, called expert"
        )
        with pytest.raises(InvalidValueError, match="acknowledged already by ana"):
            queries.acknowledge_alarm(s, alarm_id=alarm_id, user="bo", comment="me too")
        assert queries.alarm_counts(s).n_open == 0
        assert queries.alarm_counts(s).acknowledged == {"Bad": 1}
        assert queries.resolve_alarm(s, key=key, sentence="Good again") is not None
        assert queries.resolve_alarm(s, key=key, sentence="Good again") is None
        # the check turns Bad again: the same alarm reopens
        alarm, happened = queries.raise_alarm(
            s, key=key, kind="check", severity=Quality.BAD, sentence="bad again"
        )
        assert (alarm.id, happened, alarm.state) == (alarm_id, "reopened", AlarmState.OPEN)
        queries.close_alarm(s, alarm_id=alarm_id, user="expert", comment="known, masked")
        events = [(e.action, e.user) for e in queries.get_alarm(s, alarm_id=alarm_id).events]
        assert events == [
            ("opened", None),
            ("acknowledged", "ana"),
            ("resolved", None),
            ("reopened", None),
            ("closed", "expert"),
        ]
        assert [a.id for a in queries.list_alarms(s, states=[AlarmState.RESOLVED])] == [alarm_id]
        assert queries.list_alarms(s, states=[AlarmState.OPEN]) == []


def test_reminders_escalation_and_a_worsening_acknowledged_alarm(database: str) -> None:
    now = START
    with transaction(database) as s:
        add_runs(s, [101])
        alarm, _ = queries.raise_alarm(
            s, key="check:c:101", kind="streak", severity=Quality.WARNING, sentence="w", now=now
        )
        due = queries.due_notifications(s, now=now, remind_after_s=600, escalate_after_s=1800)
        assert [(a.id, who) for a, who in due] == [(alarm.id, "shifter")]
        queries.mark_notified(s, alarm_id=alarm.id, audience="shifter", now=now)
        later = now + dt.timedelta(minutes=5)
        assert (
            queries.due_notifications(s, now=later, remind_after_s=600, escalate_after_s=1800) == []
        )
        later = now + dt.timedelta(minutes=31)
        due = queries.due_notifications(s, now=later, remind_after_s=600, escalate_after_s=1800)
        assert sorted(who for _a, who in due) == ["expert", "shifter"]
        for _a, who in due:
            queries.mark_notified(s, alarm_id=alarm.id, audience=who, now=later)
        assert queries.get_alarm(s, alarm_id=alarm.id).notifications == 2
        queries.acknowledge_alarm(s, alarm_id=alarm.id, user="ana", comment="watching")
        assert (
            queries.due_notifications(
                s, now=later + dt.timedelta(hours=1), remind_after_s=600, escalate_after_s=1800
            )
            == []
        )
        # a Warning turning Bad reopens an acknowledged alarm, and it is told again at once
        alarm, happened = queries.raise_alarm(
            s, key="check:c:101", kind="check", severity=Quality.BAD, sentence="b", now=later
        )
        assert happened == "worsened" and alarm.severity == Quality.BAD
        due = queries.due_notifications(s, now=later, remind_after_s=600, escalate_after_s=1800)
        assert [who for _a, who in due] == ["shifter"]


def test_a_run_whose_files_wait_with_none_done_stalls(database: str) -> None:
    now = START + dt.timedelta(hours=1)
    with transaction(database) as s:
        add_runs(s, [101, 102], status="Data Taking")
        for run_id, minutes in ((101, 30), (102, 2)):
            file = queries.add_file(s, run_id=run_id, seq=0, uri=f"/raw/{run_id}.root")
            file.arrived_at = now - dt.timedelta(minutes=minutes)
        stalled = queries.stalled_runs(s, now=now, stall_after_s=900)
        assert [(r.run_id, r.waiting_files) for r in stalled] == [(101, 1)]
        for f in queries.files_of_run(s, run_id=101):
            f.state = FileState.DONE
        assert queries.stalled_runs(s, now=now, stall_after_s=900) == []
