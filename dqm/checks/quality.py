"""The quality a check gives, and how qualities aggregate into a stage's and a run's.

=========  =========================================================================================
Good       the check ran on enough statistics and found nothing wrong
Warning    something is off, below the Bad limit
Bad        the check failed
TooFew     the run has not yet the statistics the check needs (a run taking data, a short run)
Unknown    the check could not run (no reference, an input missing, the check itself failed)
=========  =========================================================================================

A stage's and a run's quality is the worst of its checks' qualities: Bad, then Warning, then
Unknown, then TooFew, then Good. So TooFew and Unknown show as what they are (a stage with one
check still TooFew is not Good yet) and never hide a Bad or a Warning.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

__all__ = ["SEVERITY", "Quality", "parse_quality", "worst"]


class Quality(enum.StrEnum):
    """The quality of a check, a stage or a run."""

    GOOD = "Good"
    WARNING = "Warning"
    BAD = "Bad"
    TOOFEW = "TooFew"
    UNKNOWN = "Unknown"


#: How much each quality weighs when qualities are aggregated: the largest wins.
SEVERITY: dict[Quality, int] = {
    Quality.GOOD: 0,
    Quality.TOOFEW: 1,
    Quality.UNKNOWN: 2,
    Quality.WARNING: 3,
    Quality.BAD: 4,
}


def worst(qualities: Iterable[Quality]) -> Quality | None:
    """The aggregate of some qualities (None if there are none): the most severe of them."""
    found = list(qualities)
    return max(found, key=SEVERITY.__getitem__) if found else None


def parse_quality(text: str) -> Quality:
    """A quality from its name, in any case (``bad``, ``TOOFEW``, ``too few``).

    Raises:
        ValueError: not a quality; the message names the qualities.
    """
    key = text.strip().lower().replace(" ", "").replace("_", "")
    for quality in Quality:
        if quality.value.lower() == key:
            return quality
    raise ValueError(
        f"{text!r} is not a quality; the qualities are {', '.join(q.value for q in Quality)}."
    )
