"""Threaded comments on runs, their histograms and their PMTs; each user's visits (what is new).

A comment's target is ``run``, ``histogram:STAGE/NAME`` (a histogram the pipeline makes) or
``pmt:ID`` (a PMT of the detector); a reply is on its parent's run and target.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from dqm.checks.declarations import HISTOGRAMS
from dqm.db.models import Comment, Visit
from dqm.db.queries.runs import get_run
from dqm.errors import InvalidValueError, NotFoundError
from dqm.geometry import N_PMTS
from dqm.runs import check_comment
from dqm.times import utcnow
from dqm.users import require_writer

__all__ = [
    "add_comment",
    "check_target",
    "comments_of_run",
    "record_visit",
    "runs_with_new_comments",
]


def check_target(target: str) -> str:
    """A comment's target as stored, checked.

    Raises:
        InvalidValueError: not ``run``, a known histogram, or a PMT of the detector.
    """
    target = target.strip()
    if target == "run":
        return target
    kind, _, what = target.partition(":")
    if kind == "histogram":
        stage, _, name = what.partition("/")
        if stage in HISTOGRAMS and name in HISTOGRAMS[stage]:
            return f"histogram:{stage}/{name}"
        raise InvalidValueError(f"there is no histogram {what[:40]!r} to comment on.")
    if kind == "pmt":
        if what.isdigit() and int(what) < N_PMTS:
            return f"pmt:{int(what)}"
        raise InvalidValueError(
            f"there is no PMT {what[:20]!r}: the PMTs are numbered 0 to {N_PMTS - 1}."
        )
    raise InvalidValueError(
        f"a comment is on the run, on histogram:STAGE/NAME or on pmt:ID, not {target[:40]!r}."
    )


def add_comment(
    session: Session,
    *,
    run_id: int,
    text: str,
    user: str,
    role: str,
    target: str = "run",
    parent_id: int | None = None,
    now: dt.datetime | None = None,
) -> Comment:
    """Add a comment (a reply if ``parent_id``: on its parent's run and target).

    Raises:
        InvalidValueError: nobody logged in, an empty or too long text, a bad target, a parent
            on another run.
        NotFoundError: no such run or parent.
    """
    require_writer(user)
    get_run(session, run_id=run_id)
    body = check_comment(text)
    if not body:
        raise InvalidValueError("a comment needs some text.")
    if parent_id is not None:
        parent = session.get(Comment, parent_id)
        if parent is None:
            raise NotFoundError(f"comment {parent_id} does not exist.")
        if parent.run_id != run_id:
            raise InvalidValueError(
                f"comment {parent_id} is on run {parent.run_id}: a reply is on the same run."
            )
        target = parent.target
    comment = Comment(
        run_id=run_id,
        parent_id=parent_id,
        target=check_target(target),
        user=user[:64],
        role=role[:16],
        at=now or utcnow(),
        text=body,
    )
    session.add(comment)
    session.flush()
    return comment


def comments_of_run(session: Session, *, run_id: int) -> list[Comment]:
    """A run's comments, oldest first (a thread is its first comment and the replies to it)."""
    query = select(Comment).where(Comment.run_id == run_id).order_by(Comment.id)
    return list(session.scalars(query))


def record_visit(
    session: Session, *, user: str, now: dt.datetime | None = None
) -> dt.datetime | None:
    """A user opens the dashboard: returns when they did before (None: never)."""
    now = now or utcnow()
    visit = session.get(Visit, user[:64])
    if visit is None:
        session.add(Visit(user=user[:64], previous_at=None, last_at=now))
        session.flush()
        return None
    visit.previous_at, visit.last_at = visit.last_at, now
    session.flush()
    return visit.previous_at


def runs_with_new_comments(
    session: Session, *, run_ids: Iterable[int], since: dt.datetime
) -> dict[int, int]:
    """Of these runs, those with comments made after ``since``, and how many."""
    ids = list(run_ids)
    if not ids:
        return {}
    query = (
        select(Comment.run_id, func.count())
        .where(Comment.run_id.in_(ids), Comment.at > since)
        .group_by(Comment.run_id)
    )
    return {run_id: int(n) for run_id, n in session.execute(query)}
