"""The rules of sign-off and certification (pure: no database).

A run is OPEN for sign-off once it is All Completed. A shifter SIGNS it OFF with a Good or Bad
decision per stage (Calib, Rec, PMT, Analyses, Processing) and a comment; the form starts from the
automatic quality (:func:`prefill`). An expert CERTIFIES a signed-off run, or sends it back to
OPEN with a reason (also a certified one: certified runs are frozen otherwise). Every decision is
kept; an undo is a new decision. The run's verdict is Bad if any stage was signed off Bad.

The good-run list is the certified runs whose verdict is Good.
"""

from __future__ import annotations

from collections.abc import Mapping

from dqm.checks.declarations import STAGES
from dqm.checks.quality import Quality
from dqm.errors import InvalidValueError
from dqm.states import Certification, RunStatus

__all__ = [
    "ACTIONS",
    "CERTIFICATION_FILTER",
    "DECISIONS",
    "NOT_OPEN",
    "certification_of",
    "describe",
    "next_state",
    "parse_stage_decisions",
    "prefill",
    "verdict",
]

#: The decisions a run may get, and the state each leads to.
ACTIONS: dict[str, Certification] = {
    "sign_off": Certification.SIGNED_OFF,
    "certify": Certification.CERTIFIED,
    "reopen": Certification.OPEN,
}

#: What a shifter decides of a stage.
DECISIONS = (Quality.GOOD, Quality.BAD)

#: The filter of runs not open for sign-off yet (still taking data or processing, or failed).
NOT_OPEN = "Not open"
#: What the runs can be filtered on.
CERTIFICATION_FILTER = (*[c.value for c in Certification], NOT_OPEN)

_TITLES = {
    Certification.OPEN: "Open",
    Certification.SIGNED_OFF: "Signed off",
    Certification.CERTIFIED: "Certified",
}


def describe(state: Certification | None, verdict: Quality | None) -> str:
    """A run's sign-off state as the pages show it: ``Certified · Good``, ``Open``, ``""``."""
    if state is None:
        return ""
    title = _TITLES[state]
    return f"{title} · {verdict}" if verdict is not None and state != Certification.OPEN else title


def certification_of(
    status: RunStatus, certification: Certification | None
) -> Certification | None:
    """A run's sign-off state: its latest decision's, else OPEN once All Completed (None before)."""
    if certification is not None:
        return certification
    return Certification.OPEN if status == RunStatus.ALL_COMPLETED else None


def next_state(
    run_id: int,
    status: RunStatus,
    certification: Certification | None,
    action: str,
    comment: str,
) -> Certification:
    """The state a decision leads to.

    Raises:
        InvalidValueError: the decision is not possible now, in one sentence saying why.
    """
    if action not in ACTIONS:
        raise InvalidValueError(
            f"{action!r} is not a decision; the decisions are {', '.join(ACTIONS)}."
        )
    state = certification_of(status, certification)
    if state is None:
        raise InvalidValueError(
            f"run {run_id} is {status}: a run is signed off once it is All Completed."
        )
    if action == "sign_off" and not comment.strip():
        raise InvalidValueError("a sign-off needs a comment (what was seen, what was done).")
    if action == "reopen" and not comment.strip():
        raise InvalidValueError("sending a run back to sign-off needs the reason.")
    if action == "sign_off" and state == Certification.CERTIFIED:
        raise InvalidValueError(
            f"run {run_id} is certified: an expert sends it back to sign-off first."
        )
    if action == "certify" and state != Certification.SIGNED_OFF:
        raise InvalidValueError(
            f"run {run_id} is certified already."
            if state == Certification.CERTIFIED
            else f"run {run_id} is not signed off yet: a shifter signs it off first."
        )
    if action == "reopen" and state == Certification.OPEN:
        raise InvalidValueError(f"run {run_id} is open for sign-off already.")
    return ACTIONS[action]


def prefill(stage_qualities: Mapping[str, Quality | str]) -> dict[str, Quality]:
    """The sign-off form as it starts: Bad where the automatic quality of a stage is Bad, Good
    elsewhere (Warning, TooFew, Unknown and a stage not judged are the shifter's to look at)."""
    return {
        stage: Quality.BAD if str(stage_qualities.get(stage)) == Quality.BAD else Quality.GOOD
        for stage in STAGES
    }


def parse_stage_decisions(
    given: Mapping[str, str | Quality], start: Mapping[str, Quality]
) -> dict[str, Quality]:
    """``start`` (the prefill) with the stages given changed: ``{"calib": "bad"}``.

    Raises:
        InvalidValueError: an unknown stage, or a decision that is neither Good nor Bad.
    """
    decisions = dict(start)
    for stage, value in given.items():
        if stage not in STAGES:
            raise InvalidValueError(
                f"there is no stage {stage!r}; the stages are {', '.join(STAGES)}."
            )
        text = str(value).strip().lower()
        found = next((d for d in DECISIONS if d.value.lower() == text), None)
        if found is None:
            raise InvalidValueError(
                f"stage {stage} is signed off Good or Bad, not {str(value)[:40]!r}."
            )
        decisions[stage] = found
    return decisions


def verdict(stages: Mapping[str, Quality]) -> Quality:
    """The run's verdict: Bad if any stage is Bad, else Good."""
    return Quality.BAD if any(q == Quality.BAD for q in stages.values()) else Quality.GOOD
