"""Threaded comments on every backend: on the run, a histogram or a PMT; replies on their parent's
target; bad input in one sentence; the runs with comments new since a user's last visit."""

from __future__ import annotations

import datetime as dt

import pytest
from judgedruns import fill_judged_runs

from dqm.db import queries
from dqm.db.session import transaction
from dqm.errors import InvalidValueError, NotFoundError

T0 = dt.datetime(2026, 12, 1, 8, 0)


def test_threads_targets_and_what_is_new(database: str) -> None:
    url = fill_judged_runs(database)
    with transaction(url) as s:
        assert queries.record_visit(s, user="sam", now=T0) is None  # a first visit
        first = queries.add_comment(
            s,
            run_id=105,
            text="  <script>alert('x')</script> sector 4 dark  ",
            user="sam",
            role="shifter",
            target="pmt:1234",
            now=T0 + dt.timedelta(minutes=5),
        )
        assert first.text == "<script>alert('x')</script> sector 4 dark"  # as typed, stripped
        reply = queries.add_comment(
            s,
            run_id=105,
            text="HV trip, see the log",
            user="eve",
            role="expert",
            parent_id=first.id,
            now=T0 + dt.timedelta(minutes=6),
        )
        assert reply.target == "pmt:1234" and reply.parent_id == first.id
        queries.add_comment(
            s,
            run_id=104,
            text="tail a bit high",
            user="sam",
            role="shifter",
            target=" histogram:calib/charge_pe ",
            now=T0 - dt.timedelta(days=1),
        )
        listed = queries.comments_of_run(s, run_id=105)
        assert [(c.user, c.target) for c in listed] == [("sam", "pmt:1234"), ("eve", "pmt:1234")]
        assert queries.record_visit(s, user="sam", now=T0 + dt.timedelta(hours=1)) == T0
        new = queries.runs_with_new_comments(s, run_ids=[101, 104, 105], since=T0)
        assert new == {105: 2}

        for kwargs, error, message in [
            ({"text": "  "}, InvalidValueError, "a comment needs some text"),
            ({"text": "x" * 1_048_576}, InvalidValueError, "at most 2,000 characters, not 1,048"),
            ({"target": "pmt:99999"}, InvalidValueError, "there is no PMT '99999'"),
            ({"target": "pmt:-1"}, InvalidValueError, "there is no PMT '-1'"),
            ({"target": "histogram:calib/nothing"}, InvalidValueError, "no histogram"),
            ({"target": "hv"}, InvalidValueError, "a comment is on the run, on histogram"),
            ({"run_id": 999}, NotFoundError, "run 999 does not exist"),
            ({"parent_id": 99999}, NotFoundError, "comment 99999 does not exist"),
            ({"run_id": 104, "parent_id": first.id}, InvalidValueError, "a reply is on the same"),
            ({"user": "guest"}, InvalidValueError, "log in to change anything"),
        ]:
            arguments = {"run_id": 105, "text": "fine", "user": "sam", "role": "shifter"}
            with pytest.raises(error, match=message):
                queries.add_comment(s, **{**arguments, **kwargs})
        assert len(queries.comments_of_run(s, run_id=105)) == 2  # nothing added
