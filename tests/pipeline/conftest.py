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
