"""Who may change what: the roles, and the role each write needs.

Four roles, each allowed what the ones below it are:

=========  ======================================================================================
viewer     reads everything (anonymous visitors, and logged-in users given no other role)
shifter    acknowledges alarms, signs runs off, retries jobs, comments and tags runs, pins a
           reference for one run
expert     certifies runs and sends them back, closes alarms, edits checks, PMT cuts, masks and
           the reference of a run type, reprocesses a certified run
admin      everything (the command line and the job server act as the installation's admin)
=========  ======================================================================================

The one place for these rules: :data:`PERMISSIONS` says what each write needs, :class:`Actor`
refuses a write with one sentence naming the role it needs (the dashboard's data access asks it
before every write, whatever the page offered), and :func:`role_for` gives a logged-in user a role
from the configuration. The query layer refuses any write by nobody or the guest
(:func:`require_writer`).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dqm.errors import InvalidValueError

__all__ = [
    "ACTIONS",
    "GUEST",
    "PERMISSIONS",
    "Actor",
    "PermissionDenied",
    "Role",
    "may_write",
    "parse_role",
    "require_writer",
    "role_for",
]

#: The name under which an anonymous visitor of the dashboard is known.
GUEST = "guest"


class Role(enum.IntEnum):
    """A role; a higher one may do all that a lower one may."""

    VIEWER = 0
    SHIFTER = 1
    EXPERT = 2
    ADMIN = 3

    def __str__(self) -> str:
        return self.name.lower()

    @property
    def with_article(self) -> str:
        """``a shifter``, ``an expert``: for sentences."""
        return f"an {self}" if str(self)[0] in "aeiou" else f"a {self}"


#: What each write is called in sentences.
ACTIONS: dict[str, str] = {
    "acknowledge_alarm": "acknowledging an alarm",
    "close_alarm": "closing an alarm",
    "sign_off": "signing a run off",
    "certify": "certifying a run",
    "reopen": "sending a run back to sign-off",
    "reprocess_certified": "reprocessing a certified run",
    "retry_job": "retrying a job",
    "comment": "commenting",
    "run_tags": "changing a run's tags",
    "pin_reference_run": "pinning the reference of a run",
    "pin_reference_type": "pinning the reference of a run type",
    "edit_checks": "changing a check",
    "edit_cuts": "changing the PMT cuts of a run type",
    "edit_masks": "changing a PMT mask",
}

#: The role each write needs.
PERMISSIONS: dict[str, Role] = {
    "acknowledge_alarm": Role.SHIFTER,
    "close_alarm": Role.EXPERT,
    "sign_off": Role.SHIFTER,
    "certify": Role.EXPERT,
    "reopen": Role.EXPERT,
    "reprocess_certified": Role.EXPERT,
    "retry_job": Role.SHIFTER,
    "comment": Role.SHIFTER,
    "run_tags": Role.SHIFTER,
    "pin_reference_run": Role.SHIFTER,
    "pin_reference_type": Role.EXPERT,
    "edit_checks": Role.EXPERT,
    "edit_cuts": Role.EXPERT,
    "edit_masks": Role.EXPERT,
}


class PermissionDenied(InvalidValueError):
    """A write by someone whose role does not allow it (one sentence naming the role needed)."""


def parse_role(text: str) -> Role:
    """A role from its name, in any case.

    Raises:
        InvalidValueError: not a role; the sentence names the roles.
    """
    try:
        return Role[text.strip().upper()]
    except (KeyError, AttributeError):
        raise InvalidValueError(
            f"{text!r} is not a role; the roles are {', '.join(str(r) for r in Role)}."
        ) from None


@dataclass(frozen=True)
class Actor:
    """Who acts: a user's name (None or ``"guest"``: nobody logged in) and role."""

    name: str | None
    role: Role = Role.VIEWER

    @classmethod
    def anonymous(cls) -> Actor:
        return cls(GUEST, Role.VIEWER)

    @property
    def logged_in(self) -> bool:
        return may_write(self.name)

    def may(self, action: str) -> bool:
        """Whether this actor may do ``action`` (a key of :data:`PERMISSIONS`)."""
        return self.logged_in and self.role >= PERMISSIONS[action]

    def require(self, action: str) -> str:
        """Refuse ``action`` unless this actor may do it; returns the actor's name.

        Raises:
            PermissionDenied: one sentence: what is refused, the role it needs, the actor's.
        """
        if not self.logged_in:
            raise PermissionDenied(
                f"{ACTIONS[action]} needs a login (as {PERMISSIONS[action]} or above): "
                "anonymous visitors only read."
            )
        needed = PERMISSIONS[action]
        if self.role < needed:
            raise PermissionDenied(
                f"{ACTIONS[action]} needs the {needed} role; {self.name} is "
                f"{self.role.with_article}."
            )
        assert self.name is not None
        return self.name


def role_for(
    user: str | None,
    groups: Iterable[str] = (),
    *,
    roles: Mapping[str, str | Role],
    default: Role = Role.VIEWER,
) -> Role:
    """The role of a logged-in user: the highest that ``roles`` gives the user's name or one of
    their groups (a key ``group:NAME``), else ``default``; anonymous visitors are viewers.

    Raises:
        InvalidValueError: a role in ``roles`` that is not one.
    """
    if user is None or not may_write(user):
        return Role.VIEWER
    keys = [user, *(f"group:{g}" for g in groups)]
    found = [r if isinstance(r, Role) else parse_role(r) for k in keys if (r := roles.get(k))]
    return max(found, default=default)


def may_write(user: str | None) -> bool:
    """Whether ``user`` is someone: logged in, not nobody nor the guest."""
    return bool(user) and user != GUEST


def require_writer(user: str | None) -> None:
    """Refuse a change by nobody or the guest (the query layer's last line; the roles are
    asked before, by :meth:`Actor.require`).

    Raises:
        InvalidValueError: nobody is logged in, or only the guest.
    """
    if not may_write(user):
        raise InvalidValueError("log in to change anything: anonymous visitors only read.")
