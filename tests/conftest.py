"""Shared fixtures: databases on every backend, migrated or empty."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from services import fresh_database

from dqm.db import migrate
from dqm.db.session import dispose_engines

BACKENDS = [
    "sqlite",
    pytest.param("mariadb", marks=pytest.mark.services),
    pytest.param("postgresql", marks=pytest.mark.services),
]


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a new, empty database on each backend (SQLite file, MariaDB, PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'dqm.sqlite'}"
        dispose_engines()
        return
    with fresh_database(request.param) as url:
        yield url


@pytest.fixture
def database(empty_database: str) -> str:
    """URL of a new database on each backend, migrated to the newest revision."""
    migrate.upgrade(empty_database, "head")
    return empty_database


@pytest.fixture
def sqlite_database(tmp_path: Path) -> Iterator[str]:
    """URL of a new SQLite database migrated to head (for tests that need only one backend)."""
    url = f"sqlite:///{tmp_path / 'dqm.sqlite'}"
    migrate.upgrade(url, "head")
    yield url
    dispose_engines()


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory: pytest.TempPathFactory):
    """A small processed demo installation (see demo.py), built once per test run."""
    import demo

    data = demo.build(tmp_path_factory.mktemp("demo"))
    yield data
    dispose_engines()
