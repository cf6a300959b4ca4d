"""Rules that are not queries: who may change things, and what a run's comment may hold."""

from __future__ import annotations

import pytest

from dqm.errors import InvalidValueError
from dqm.runs import COMMENT_MAX_CHARS, check_comment
from dqm.users import may_write, require_writer


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
