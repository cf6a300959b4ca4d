"""Writes made through the dashboard: cut defaults per run type, run comments and job retries,
each recorded with who and when; anonymous visitors are refused. On every backend."""

from __future__ import annotations

import datetime as dt

import pytest

from dqm.db import queries
from dqm.db.models import JobState
from dqm.db.session import transaction
from dqm.errors import InvalidValueError, NotFoundError

T0 = dt.datetime(2026, 11, 1, 8, 0, 0)


def _run_with_failed_job(url: str) -> int:
    with transaction(url) as s:
        queries.add_run(s, run_id=7, run_type="physics", start_time=T0, comment="first")
        file = queries.add_file(s, run_id=7, seq=0, uri="/raw/7.0.root")
        job = queries.add_job(s, kind="process_file", run_id=7, file_id=file.id)
        job.state, job.attempts, job.error = JobState.FAILED, 3, "7.0.root is truncated"
        return job.id


def test_cut_defaults_are_saved_per_run_type_with_who_and_when(database: str) -> None:
    with transaction(database) as s:
        assert queries.cut_defaults(s, run_type="physics") is None
        queries.save_cut_defaults(
            s, run_type="physics", dead_cut=0.02, hot_cut=0.95, normal_band=(0.04, 0.2), user="ana"
        )
    with transaction(database) as s:
        queries.save_cut_defaults(
            s, run_type="physics", dead_cut=0.03, hot_cut=0.9, normal_band=(0.05, 0.2), user="bo"
        )
    with transaction(database) as s:
        row = queries.cut_defaults(s, run_type="physics")
        assert (row.dead_cut, row.hot_cut, row.normal_low, row.normal_high) == (
            0.03,
            0.9,
            0.05,
            0.2,
        )
        assert row.saved_by == "bo" and row.saved_at is not None
        assert queries.cut_defaults(s, run_type="laser") is None
        changes = queries.changes(s)
        assert [(c.user, c.action, c.target) for c in changes] == [
            ("bo", "cut_defaults", "physics"),
            ("ana", "cut_defaults", "physics"),
        ]
        assert changes[1].detail["dead_cut"] == 0.02 and changes[0].at >= changes[1].at


@pytest.mark.parametrize(
    ("cuts", "message"),
    [
        ({"dead_cut": 1.5}, "dead cut must lie in"),
        ({"normal_band": (0.3, 0.1)}, "runs backwards"),
        ({"user": "guest"}, "log in to change anything"),
        ({"user": ""}, "log in to change anything"),
    ],
)
def test_bad_cut_defaults_are_refused_and_nothing_is_written(
    database: str, cuts: dict, message: str
) -> None:
    arguments = {
        "run_type": "physics",
        "dead_cut": 0.01,
        "hot_cut": 0.99,
        "normal_band": (0.05, 0.15),
        "user": "ana",
    } | cuts
    with pytest.raises(InvalidValueError, match=message), transaction(database) as s:
        queries.save_cut_defaults(s, **arguments)
    with transaction(database) as s:
        assert queries.cut_defaults(s, run_type="physics") is None and queries.changes(s) == []


def test_a_run_comment_and_a_retry_are_recorded(database: str) -> None:
    job_id = _run_with_failed_job(database)
    tokens = []
    with transaction(database) as s:
        tokens.append(queries.run_change_token(s, run_id=7))
        assert queries.run_change_token(s, run_id=7) == tokens[0]  # nothing changed
        assert queries.run_change_token(s, run_id=999) is None
    with transaction(database) as s:
        queries.set_run_comment(s, run_id=7, comment="  HV trip at 10:42 ", user="ana")
    with transaction(database) as s:
        tokens.append(queries.run_change_token(s, run_id=7))
        job = queries.retry_job_as(s, job_id=job_id, user="bo")
        assert job.state is JobState.TODO and job.attempts == 0 and job.error is None
    with transaction(database) as s:
        tokens.append(queries.run_change_token(s, run_id=7))
    assert len(set(tokens)) == 3  # the comment and the retry each change what a page shows
    with transaction(database) as s:
        assert queries.get_run(s, run_id=7).comment == "HV trip at 10:42"
        retry, comment = queries.changes(s)
        assert (comment.user, comment.action, comment.target) == ("ana", "run_comment", "7")
        assert comment.detail == {"before": "first", "after": "HV trip at 10:42"}
        assert (retry.user, retry.action, retry.target) == ("bo", "retry_job", str(job_id))
        assert retry.detail["error"] == "7.0.root is truncated"
    with (
        pytest.raises(InvalidValueError, match="only FAILED or TOCHECK"),
        transaction(database) as s,
    ):
        queries.retry_job_as(s, job_id=job_id, user="bo")  # it is TODO now
    with pytest.raises(NotFoundError), transaction(database) as s:
        queries.set_run_comment(s, run_id=999, comment="no such run", user="ana")
    with pytest.raises(InvalidValueError, match="log in"), transaction(database) as s:
        queries.set_run_comment(s, run_id=7, comment="anonymous", user="guest")
    with pytest.raises(InvalidValueError, match="at most 2,000"), transaction(database) as s:
        queries.set_run_comment(s, run_id=7, comment="x" * 2001, user="ana")
    with transaction(database) as s:
        assert len(queries.changes(s)) == 2  # the refused ones left nothing
