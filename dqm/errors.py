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
