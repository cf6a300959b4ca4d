"""Exceptions that carry one clear sentence for the user.

Every entry point (command line, message intake, dashboard) catches :class:`DQMError` and shows its
message as it is, without a traceback: the message says what was wrong and, where possible, what to do.
"""

from __future__ import annotations


class DQMError(Exception):
    """Base class of all errors meant to be shown to a user as one sentence."""


class ConfigError(DQMError):
    """The configuration (environment variable, TOML file or option) is invalid."""


class DatabaseError(DQMError):
    """The database cannot be reached or is not at the expected schema revision."""


class NotFoundError(DQMError):
    """A run, file, job or other record that was asked for does not exist."""


class InvalidValueError(DQMError):
    """A value given by the user (status, date, number) is not acceptable."""


def first_line(exc: BaseException | None, *, with_type: bool = False, limit: int = 2000) -> str:
    """The first line of an error's message, for a log line, a job's reason or a sentence.

    A database driver's error wrapped by SQLAlchemy is given in the driver's words (``exc.orig``);
    an error without a message by its type's name. With ``with_type``, an error that is not a
    :class:`DQMError` (already one sentence for the user) is named by its type too
    (``OSError: [Errno 28] No space left on device``).
    """
    if exc is None:
        return "unknown error"
    exc = getattr(exc, "orig", None) or exc
    lines = str(exc).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if not text:
        return type(exc).__name__
    if with_type and not isinstance(exc, DQMError):
        text = f"{type(exc).__name__}: {text}"
    return text[:limit]
