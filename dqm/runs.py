"""Rules about runs that are not queries: what a run number (or any id the database keeps in an
integer column) may be, what a run's comment may hold, and a run as plain values.

The query that saves a comment and the dashboard's comment editor both take the limit from here;
``dqm run show`` and ``dqm export`` write a run's attributes the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from dqm.errors import InvalidValueError
from dqm.times import format_time

if TYPE_CHECKING:
    from dqm.db.models import Run

__all__ = [
    "COMMENT_MAX_CHARS",
    "MAX_ID",
    "TAG_PATTERN",
    "check_comment",
    "check_tags",
    "parse_id",
    "run_attributes",
]

#: The largest run number, job id, version, ...: the database keeps them as 32-bit integers.
MAX_ID = 2**31 - 1

#: The most characters a run's comment may hold (after surrounding blanks are removed).
COMMENT_MAX_CHARS = 2000


def parse_id(text: str | int, what: str = "a run number", low: int = 0) -> int:
    """A run number (or another id: ``what`` names it) from user input: ASCII digits, from ``low``
    to :data:`MAX_ID`.

    Raises:
        InvalidValueError: not such a number.
    """
    value = str(text).strip()
    if not re.fullmatch(r"[0-9]{1,12}", value) or not low <= int(value) <= MAX_ID:
        raise InvalidValueError(
            f"{value[:40]!r} is not {what}: {what.split(' ', 1)[-1]}s are whole numbers from "
            f"{low} to {MAX_ID:,}."
        )
    return int(value)


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


#: What a run tag may be: a lower-case word of letters, digits, ``_`` and ``-``, at most 32
#: characters (XENONnT's ``messy``, ``bad``, ``ramp_up``).
TAG_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def check_tags(tags: Iterable[str]) -> list[str]:
    """Run tags as they are stored: stripped, lower case, without repeats, sorted.

    Raises:
        InvalidValueError: a tag is not a word of letters, digits, ``_`` and ``-`` (at most 32).
    """
    clean = set()
    for tag in tags:
        if not isinstance(tag, str):
            raise InvalidValueError(f"a run tag is a word, not {tag!r}.")
        word = tag.strip().lower()
        if not TAG_PATTERN.fullmatch(word):
            raise InvalidValueError(
                f"run tag {tag!r} is not a word of letters, digits, '_' and '-' (at most 32, "
                "starting with a letter or digit)."
            )
        clean.add(word)
    return sorted(clean)


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
        "source": run.source,
        "source_z_mm": run.source_z_mm,
        "trigger_rate_hz": run.trigger_rate_hz,
        "software_version": run.software_version,
    }
