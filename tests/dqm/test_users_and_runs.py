"""Rules that are not queries: who may change what (roles), and what a run's comment may hold."""

from __future__ import annotations

import pytest

from dqm.errors import InvalidValueError
from dqm.runs import COMMENT_MAX_CHARS, check_comment
from dqm.users import (
    ACTIONS,
    PERMISSIONS,
    Actor,
    PermissionDenied,
    Role,
    may_write,
    parse_role,
    require_writer,
    role_for,
)


@pytest.mark.parametrize(("user", "allowed"), [("ana", True), ("guest", False), ("", False)])
def test_only_logged_in_users_write(user: str, allowed: bool) -> None:
    assert may_write(user) is allowed
    if allowed:
        require_writer(user)
    else:
        with pytest.raises(InvalidValueError, match="log in to change anything"):
            require_writer(user)
    assert not may_write(None)


def test_a_comment_is_stripped_and_limited() -> None:
    assert check_comment("  HV trip \n") == "HV trip"
    assert check_comment(" " + "x" * COMMENT_MAX_CHARS + " ") == "x" * COMMENT_MAX_CHARS
    with pytest.raises(InvalidValueError, match="at most 2,000 characters, not 2,001"):
        check_comment("x" * (COMMENT_MAX_CHARS + 1))


def test_roles_rank_and_refuse_in_one_sentence() -> None:
    assert Role.VIEWER < Role.SHIFTER < Role.EXPERT < Role.ADMIN
    assert parse_role(" Expert ") is Role.EXPERT and str(Role.SHIFTER) == "shifter"
    with pytest.raises(InvalidValueError, match="'boss' is not a role; the roles are viewer"):
        parse_role("boss")
    assert set(PERMISSIONS) == set(ACTIONS)  # every write has its sentence
    shifter = Actor("sam", Role.SHIFTER)
    assert shifter.may("acknowledge_alarm") and not shifter.may("certify")
    assert shifter.require("retry_job") == "sam"
    with pytest.raises(PermissionDenied) as refused:
        shifter.require("certify")
    assert str(refused.value) == "certifying a run needs the expert role; sam is a shifter."
    with pytest.raises(PermissionDenied, match="needs the shifter role; vic is a viewer"):
        Actor("vic", Role.VIEWER).require("acknowledge_alarm")
    anonymous = Actor.anonymous()
    assert not anonymous.logged_in and not anonymous.may("comment")
    with pytest.raises(PermissionDenied, match="needs a login .as shifter or above."):
        anonymous.require("comment")
    admin = Actor("root", Role.ADMIN)
    assert all(admin.may(action) for action in PERMISSIONS)


def test_a_user_gets_the_highest_role_their_name_or_groups_give() -> None:
    roles = {"alice": "expert", "group:dqm-shift": "shifter", "group:dqm-experts": Role.EXPERT}
    assert role_for("alice", roles=roles) is Role.EXPERT
    assert role_for("bob", ["physics", "dqm-shift"], roles=roles) is Role.SHIFTER
    assert role_for("bob", ["dqm-shift", "dqm-experts"], roles=roles) is Role.EXPERT
    assert role_for("carol", ["physics"], roles=roles) is Role.VIEWER
    assert role_for("carol", roles=roles, default=Role.SHIFTER) is Role.SHIFTER
    assert role_for("guest", ["dqm-experts"], roles=roles) is Role.VIEWER
    assert role_for(None, roles=roles, default=Role.ADMIN) is Role.VIEWER
