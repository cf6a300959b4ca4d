"""Rules about runs that are not queries: what a run's comment may hold.

The query that saves a comment and the dashboard's comment editor both take the limit from here.
"""

from __future__ import annotations

from dqm.errors import InvalidValueError

__all__ = ["COMMENT_MAX_CHARS", "check_comment"]

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
