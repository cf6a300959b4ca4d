"""Times in the DQM: naive datetimes in UTC everywhere (database, messages, command line)."""

from __future__ import annotations

import datetime as dt

from dqm.errors import InvalidValueError


def utcnow() -> dt.datetime:
    """The current time in UTC, without time zone, to the microsecond."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def parse_time(value: str | dt.datetime, *, what: str = "time") -> dt.datetime:
    """Parse an ISO 8601 date or date-time into a naive UTC datetime.

    Accepts ``2026-11-21``, ``2026-11-21T08:30``, ``2026-11-21 08:30:00``, with an optional
    ``Z`` or UTC offset (converted to UTC); a time without an offset is taken as UTC. The word
    ``now`` gives the current time.

    Raises:
        InvalidValueError: the text is not such a date, in one sentence naming ``what``.
    """
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = value.strip()
        if text.lower() == "now":
            return utcnow()
        try:
            parsed = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise InvalidValueError(
                f"{what} {value!r} is not a date; use ISO 8601 such as 2026-11-21 or "
                f"2026-11-21T08:30:00 (UTC unless an offset is given)."
            ) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def format_time(value: dt.datetime | None) -> str | None:
    """A time as shown and exported everywhere: ``YYYY-MM-DD HH:MM:SS`` (UTC), or None."""
    return None if value is None else value.isoformat(sep=" ", timespec="seconds")
