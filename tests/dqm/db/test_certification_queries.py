"""Sign-off and certification stored on every backend: decisions kept for ever, the run's state and
verdict following the latest, the runs waiting, the good-run list with its versions."""

from __future__ import annotations

import pytest
from judgedruns import fill_judged_runs

from dqm.checks.quality import Quality
from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import InvalidValueError
from dqm.states import Certification, RunStatus


def test_sign_off_certify_reopen_and_the_good_run_list(database: str) -> None:
    url = fill_judged_runs(database)  # runs 101..106, All Completed; 105's PMT stage is Bad
    with transaction(url) as s:
        queries.add_run(
            s, run_id=107, run_type="physics", start_time=queries.get_run(s, run_id=106).end_time
        )
        waiting = [r.run_id for r in queries.runs_to_sign_off(s)]
        assert waiting == [101, 102, 103, 104, 105, 106]  # 107 takes data: not open yet
        form = queries.sign_off_form(s, run_id=105)
        assert form["pmt"] is Quality.BAD and form["calib"] is Quality.GOOD
        with pytest.raises(InvalidValueError, match="run 107 is Data Taking"):
            queries.decide(
                s, run_id=107, action="sign_off", user="sam", role="shifter", comment="x"
            )
        with pytest.raises(InvalidValueError, match="log in to change anything"):
            queries.decide(
                s, run_id=104, action="sign_off", user="guest", role="viewer", comment="x"
            )
        for run_id in (101, 102, 103, 104, 105):
            queries.decide(
                s,
                run_id=run_id,
                action="sign_off",
                user="sam",
                role="shifter",
                comment="looked at every tab",
            )
        assert queries.get_run(s, run_id=105).verdict is Quality.BAD  # the prefill's Bad PMT
        # 104 signed off again, its calib Bad after a second look: an undo is a new decision
        again = dict(queries.sign_off_form(s, run_id=104), calib=Quality.BAD)
        queries.decide(
            s,
            run_id=104,
            action="sign_off",
            user="sam",
            role="shifter",
            comment="charge spectrum odd",
            stages=again,
        )
        for run_id in (101, 102, 104, 105):
            queries.decide(s, run_id=run_id, action="certify", user="eve", role="expert")
        with pytest.raises(InvalidValueError, match="run 106 is not signed off yet"):
            queries.decide(s, run_id=106, action="certify", user="eve", role="expert")
        with pytest.raises(InvalidValueError, match="run 101 is certified: an expert sends"):
            queries.decide(
                s, run_id=101, action="sign_off", user="sam", role="shifter", comment="again"
            )
        queries.decide(
            s, run_id=102, action="reopen", user="eve", role="expert", comment="reprocessed"
        )
        assert [r.run_id for r in queries.runs_to_sign_off(s)] == [102, 103, 106]

        run = queries.get_run(s, run_id=104)
        assert (run.certification, run.verdict) == (Certification.CERTIFIED, Quality.BAD)
        history = queries.run_decisions(s, run_id=104)
        assert [(d.action, d.user, d.role) for d in history] == [
            ("sign_off", "sam", "shifter"),
            ("sign_off", "sam", "shifter"),
            ("certify", "eve", "expert"),
        ]
        assert history[0].stages["calib"] == "Good" and history[1].stages["calib"] == "Bad"
        assert queries.current_certification(queries.get_run(s, run_id=102)) is Certification.OPEN
        assert queries.current_certification(queries.get_run(s, run_id=107)) is None
        assert queries.get_run(s, run_id=107).status is RunStatus.DATA_TAKING

        good = queries.good_runs(s)
        assert [g.run_id for g in good] == [101]  # 102 sent back, 104 and 105 Bad
        (first,) = good
        assert first.certified_by == "eve" and first.code_version
        assert first.check_versions == {"pmt_classes": 1}
        assert first.calibration_version is None  # no calibration in this installation
        assert (
            queries.good_runs(s, since=102) == []
            and queries.good_runs(s, run_types=["laser"]) == []
        )
        with pytest.raises(InvalidValueError, match="--since 105 is above --until 101"):
            queries.good_runs(s, since=105, until=101)


def test_the_reference_is_the_latest_run_certified_good_once_there_is_one(database: str) -> None:
    from dqm.checks.references import choose_reference

    url = fill_judged_runs(database)
    with transaction(url) as s:
        before = choose_reference(s, run_id=106)
        assert before.run_id == 104 and "no check found anything wrong" in before.reason
        for action in ("sign_off", "certify"):
            queries.decide(s, run_id=102, action=action, user="eve", role="expert", comment="ok")
        chosen = choose_reference(s, run_id=106)
        assert chosen.run_id == 102
        assert chosen.reason == "run 102 is the latest physics run before run 106 certified Good."
        assert choose_reference(s, run_id=102).run_id == 101  # never itself: the clean rule
