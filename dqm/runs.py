"""Rules about runs that are not queries: what a run's comment may hold, and a run as plain values.

The query that saves a comment and the dashboard's comment editor both take the limit from here;
``dqm run show`` and ``dqm export`` write a run's attributes the same way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dqm.errors import InvalidValueError
from dqm.times import format_time

if TYPE_CHECKING:
    from dqm.db.models import Run

__all__ = ["COMMENT_MAX_CHARS", "check_comment", "run_attributes"]

#: The most characters a run's comment may hold (after surrounding blanks are removed).
COMMENT_MAX_CHARS = 2000


def check_comment(comment: str) -> str:
    """A run's comment as it is stored: without surrounding blanks, and not too long.

    Args:
        comment: the comment as typed; empty to remove the comment.

    Raises:
        InvalidValueError: the comment holds more than :data:`COMMENT_MAX_CHARS` characters.
    """
    comment = comment.strip()
    if len(comment) > COMMENT_MAX_CHARS:
        raise InvalidValueError(
            f"a comment holds at most {COMMENT_MAX_CHARS:,} characters, not {len(comment):,}."
        )
    return comment


def run_attributes(run: Run) -> dict[str, Any]:
    """A run's attributes as plain values (times as ``YYYY-MM-DD HH:MM:SS`` UTC), for JSON and for
    the files the DQM writes."""
    return {
        "run_id": run.run_id,
        "run_type": run.run_type,
        "detector": run.detector,
        "status": run.status.value,
        "start_time": format_time(run.start_time),
        "end_time": format_time(run.end_time),
        "n_events": run.n_events,
        "n_files": run.n_files,
        "sampling_fraction": run.sampling_fraction,
        "rec_method": run.rec_method,
        "comment": run.comment,
    }
