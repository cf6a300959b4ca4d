"""An unreachable service skips its tests, except under DQM_REQUIRE_SERVICES=1 where it fails them."""

from __future__ import annotations

import pytest
from services import fresh_database, unavailable


def test_unreachable_service_skips_or_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DQM_REQUIRE_SERVICES", "0")
    with pytest.raises(pytest.skip.Exception, match="mariadb is not reachable: refused"):
        unavailable("mariadb", "refused\nmore detail")
    monkeypatch.setenv("DQM_REQUIRE_SERVICES", "1")
    with pytest.raises(pytest.fail.Exception, match="DQM_REQUIRE_SERVICES=1 requires it"):
        unavailable("mariadb", "refused")


def test_a_server_that_is_down_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        __import__("services").SERVER_URLS,
        "postgresql",
        "postgresql+psycopg://postgres@127.0.0.1:1/test",
    )
    monkeypatch.setenv("DQM_REQUIRE_SERVICES", "1")
    with (
        pytest.raises(pytest.fail.Exception, match="postgresql is not reachable"),
        fresh_database("postgresql"),
    ):
        pass
