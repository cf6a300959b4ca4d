"""Fixtures of the job-server tests: a broker (embedded or RabbitMQ) for each test."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from services import fresh_queue

BROKERS = ["embedded", pytest.param("rabbitmq", marks=pytest.mark.services)]


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(broker URL, queue name): the embedded broker, or a fresh queue on RabbitMQ."""
    if request.param == "embedded":
        yield "filesystem://", "dqm.transfer"
        return
    with fresh_queue() as (url, queue):
        yield url, queue


#: The (database, broker) pairs of the slow end-to-end tests: every database with the embedded
#: broker, and RabbitMQ with one of them (the broker's part does not depend on the database).
PAIRS = [
    pytest.param(("sqlite", "embedded"), id="sqlite-embedded"),
    pytest.param(("mariadb", "embedded"), id="mariadb-embedded", marks=pytest.mark.services),
    pytest.param(("postgresql", "embedded"), id="postgresql-embedded", marks=pytest.mark.services),
    pytest.param(("postgresql", "rabbitmq"), id="postgresql-rabbitmq", marks=pytest.mark.services),
]


@pytest.fixture(params=PAIRS)
def database_and_broker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str, str]]:
    """(database URL, broker URL, queue) of a new migrated database and a queue of its own."""
    from contextlib import ExitStack

    from services import fresh_database

    from dqm.db import migrate
    from dqm.db.session import dispose_engines

    backend, broker_kind = request.param
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp_path / 'dqm.sqlite'}"
            stack.callback(dispose_engines)
        else:
            url = stack.enter_context(fresh_database(backend))
        migrate.upgrade(url, "head")
        if broker_kind == "embedded":
            yield url, "filesystem://", "dqm.transfer"
        else:
            broker, queue = stack.enter_context(fresh_queue())
            yield url, broker, queue
