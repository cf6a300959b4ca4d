"""Every write of the dashboard, for every role that may not make it, is refused by the server (the
data access, whatever the page offered) with one sentence naming the role it needs, and changes
nothing; the role that may, makes it."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from judgedruns import fill_judged_runs

from app.source import Source
from dqm.db import queries
from dqm.db.session import transaction
from dqm.states import JobState
from dqm.users import PERMISSIONS, Actor, PermissionDenied, Role

#: Each write of the dashboard: its action (dqm.users.PERMISSIONS) and how it is made.
WRITES: dict[str, Callable[[Source, Actor, dict[str, int]], object]] = {
    "acknowledge_alarm": lambda s, a, ids: s.acknowledge_alarm(
        ids["alarm"], actor=a, comment="looked at it"
    ),
    "close_alarm": lambda s, a, ids: s.close_alarm(ids["alarm"], actor=a, comment="known"),
    "retry_job": lambda s, a, ids: s.retry_job(ids["job"], actor=a),
    "reprocess_certified": lambda s, a, ids: s.retry_job(
        ids["certified_job"], actor=a, reason="the new calibration"
    ),
    "comment": lambda s, a, ids: s.set_run_comment(105, "HV trip", actor=a),
    "run_tags": lambda s, a, ids: s.change_run_tags(105, a, add=["messy"]),
    "pin_reference_run": lambda s, a, ids: s.pin_reference(
        105, 104, actor=a, for_type=False, comment="before the trip"
    ),
    "pin_reference_type": lambda s, a, ids: s.pin_reference(
        105, 103, actor=a, for_type=True, comment="the best run"
    ),
    "edit_checks": lambda s, a, ids: s.save_check(
        "energy_po210_peak", {"bad": "0.444, 0.46"}, actor=a, comment="tighter"
    ),
    "sign_off": lambda s, a, ids: s.decide(105, "sign_off", actor=a, comment="PMT sector dead"),
    "certify": lambda s, a, ids: s.decide(103, "certify", actor=a, comment=""),
    "reopen": lambda s, a, ids: s.decide(102, "reopen", actor=a, comment="reprocessed"),
    "edit_cuts": lambda s, a, ids: s.save_cut_defaults("physics", 0.02, 0.99, (0.05, 0.2), actor=a),
    "edit_masks": lambda s, a, ids: s.edit_mask(
        valid_from_run=105, add="17, 100-102", remove="", actor=a, comment="HV board off"
    ),
}


@pytest.fixture
def installation(sqlite_database: str) -> tuple[Source, dict[str, int]]:
    url = fill_judged_runs(sqlite_database)
    with transaction(url) as s:
        job = queries.add_job(s, kind="process_file", run_id=105)
        job.state, job.error = JobState.FAILED, "105.0.root is truncated"
        (alarm,) = queries.list_alarms(s, run_id=105)
        ids = {"job": job.id, "alarm": alarm.id}
        # 103 waits for certification, 102 and 101 are certified (101 with a failed job)
        for run_id, actions in (
            (103, ["sign_off"]),
            (102, ["sign_off", "certify"]),
            (101, ["sign_off", "certify"]),
        ):
            for action in actions:
                queries.decide(
                    s, run_id=run_id, action=action, user="setup", role="admin", comment="x"
                )
        certified_job = queries.add_job(s, kind="process_file", run_id=101)
        certified_job.state, certified_job.error = JobState.FAILED, "101.0.root is truncated"
        ids["certified_job"] = certified_job.id
    return Source(url), ids


def _changes(source: Source) -> int:
    with transaction(source.database_url) as s:
        return len(queries.changes(s, limit=None))


@pytest.mark.parametrize("action", sorted(WRITES))
def test_a_write_is_refused_to_every_role_below_the_one_it_needs(
    installation: tuple[Source, dict[str, int]], action: str
) -> None:
    source, ids = installation
    write = WRITES[action]
    needed = PERMISSIONS[action]
    before = _changes(source)
    for actor in [Actor.anonymous(), Actor(None), *(Actor("low", r) for r in Role if r < needed)]:
        with pytest.raises(PermissionDenied) as refused:
            write(source, actor, ids)
        sentence = str(refused.value)
        assert "\n" not in sentence and sentence.endswith(".")
        if actor.logged_in:
            assert f"needs the {needed} role; low is {actor.role.with_article}." in sentence
        else:
            assert f"needs a login (as {needed} or above)" in sentence
    assert _changes(source) == before  # nothing was written
    write(source, Actor("high", needed), ids)  # the role it needs makes it
    # alarms and sign-off keep histories of their own; everything else is in the changes
    if action not in ("acknowledge_alarm", "close_alarm", "sign_off", "certify", "reopen"):
        with transaction(source.database_url) as s:
            assert queries.changes(s, limit=1)[0].user == "high"


def test_every_write_of_the_dashboard_is_covered() -> None:
    assert set(WRITES) == set(PERMISSIONS)


def test_the_jobs_page_reprocesses_a_certified_run_with_a_reason_only(
    installation: tuple[Source, dict[str, int]],
) -> None:
    from app.state import JobsState

    source, ids = installation
    job = ids["certified_job"]
    expert = JobsState(source=source, user="eve", role=Role.EXPERT)
    expert.retry(job)
    assert expert.notice == (
        f"Job {job} not retried: run 101 is certified: reprocessing it sends it back to "
        "sign-off, and needs an expert and the reason."
    )
    with transaction(source.database_url) as s:
        assert queries.get_job(s, job_id=job).state is JobState.FAILED
        assert str(queries.get_run(s, run_id=101).certification) == "CERTIFIED"
    shifter = JobsState(source=source, user="sam", role=Role.SHIFTER, retry_reason="copied again")
    shifter.retry(job)
    assert "needs the expert role" in shifter.notice
    expert.retry_reason = "the new calibration"
    expert.retry(job)
    assert expert.notice.startswith(f"Job {job} is back to TODO") and expert.retry_reason == ""
    with transaction(source.database_url) as s:
        assert queries.get_job(s, job_id=job).state is JobState.TODO
        assert str(queries.get_run(s, run_id=101).certification) == "OPEN"
        change = queries.changes(s, limit=1)[0]
        assert change.detail["reason"] == "the new calibration" and change.user == "eve"
