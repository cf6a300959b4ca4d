"""The rules of sign-off and certification (dqm.certification): what may follow what, in one
sentence when not; the prefill from the automatic quality; the verdict."""

from __future__ import annotations

import pytest

from dqm.certification import (
    certification_of,
    next_state,
    parse_stage_decisions,
    prefill,
    verdict,
)
from dqm.checks.quality import Quality
from dqm.errors import InvalidValueError
from dqm.states import Certification, RunStatus

OPEN, SIGNED, CERTIFIED = Certification.OPEN, Certification.SIGNED_OFF, Certification.CERTIFIED
DONE = RunStatus.ALL_COMPLETED


def test_a_run_opens_when_all_completed_and_goes_through_sign_off_and_certification() -> None:
    assert certification_of(RunStatus.REC_RUNNING, None) is None
    assert certification_of(DONE, None) is OPEN
    assert certification_of(DONE, CERTIFIED) is CERTIFIED
    assert next_state(7, DONE, None, "sign_off", "fine") is SIGNED
    assert next_state(7, DONE, SIGNED, "sign_off", "second look: calib Bad") is SIGNED  # an undo
    assert next_state(7, DONE, SIGNED, "certify", "") is CERTIFIED
    assert next_state(7, DONE, CERTIFIED, "reopen", "reprocessed") is OPEN
    assert next_state(7, DONE, SIGNED, "reopen", "the PMT stage was misjudged") is OPEN


@pytest.mark.parametrize(
    ("status", "state", "action", "comment", "message"),
    [
        (RunStatus.DATA_TAKING, None, "sign_off", "x", "run 7 is Data Taking: a run is signed"),
        (RunStatus.FAILED, None, "certify", "", "run 7 is Failed: a run is signed off once"),
        (DONE, None, "sign_off", "  ", "a sign-off needs a comment"),
        (DONE, None, "certify", "", "run 7 is not signed off yet: a shifter signs it off first"),
        (DONE, CERTIFIED, "certify", "", "run 7 is certified already"),
        (DONE, CERTIFIED, "sign_off", "x", "run 7 is certified: an expert sends it back"),
        (DONE, None, "reopen", "why", "run 7 is open for sign-off already"),
        (DONE, SIGNED, "reopen", "", "sending a run back to sign-off needs the reason"),
        (DONE, None, "approve", "x", "'approve' is not a decision; the decisions are sign_off"),
    ],
)
def test_a_decision_not_possible_now_is_one_sentence(
    status: RunStatus, state: Certification | None, action: str, comment: str, message: str
) -> None:
    with pytest.raises(InvalidValueError, match=message) as refused:
        next_state(7, status, state, action, comment)
    assert "\n" not in str(refused.value)


def test_the_form_starts_from_the_automatic_quality_and_the_verdict_follows() -> None:
    automatic = {"calib": Quality.BAD, "rec": Quality.WARNING, "pmt": "TooFew"}
    start = prefill(automatic)
    assert start == {
        "calib": Quality.BAD,
        "rec": Quality.GOOD,
        "pmt": Quality.GOOD,
        "analyses": Quality.GOOD,
        "processing": Quality.GOOD,
    }
    assert verdict(start) is Quality.BAD
    changed = parse_stage_decisions({"calib": "good", "rec": " BAD "}, start)
    assert changed["calib"] is Quality.GOOD and changed["rec"] is Quality.BAD
    assert verdict(parse_stage_decisions({"calib": "Good"}, start)) is Quality.GOOD
    with pytest.raises(InvalidValueError, match="there is no stage 'hv'; the stages are calib"):
        parse_stage_decisions({"hv": "Good"}, start)
    with pytest.raises(InvalidValueError, match="stage rec is signed off Good or Bad, not 'Warn"):
        parse_stage_decisions({"rec": "Warning"}, start)
