"""Who may change things: logged-in users write (cut defaults, run comments, job retries);
anonymous visitors, who are ``"guest"`` or nobody, only read.

The one place for this rule: the query layer refuses a write with :func:`require_writer`, and the
dashboard asks :func:`may_write` to decide what to offer.
"""

from __future__ import annotations

from dqm.errors import InvalidValueError

__all__ = ["GUEST", "may_write", "require_writer"]

#: The name under which an anonymous visitor of the dashboard is known.
GUEST = "guest"


def may_write(user: str | None) -> bool:
    """Whether ``user`` may change anything: a logged-in user, not nobody nor the guest."""
    return bool(user) and user != GUEST


def require_writer(user: str | None) -> None:
    """Refuse a change by someone who may not write.

    Raises:
        InvalidValueError: nobody is logged in, or only the guest.
    """
    if not may_write(user):
        raise InvalidValueError("log in to change anything: anonymous visitors only read.")
