"""Real services for the tests: a fresh, uniquely named database on MariaDB or PostgreSQL.

Each test that asks for a server database gets one of its own (``dqm_test_<random>``), created
before and dropped after it, so that no run sees another's leftovers. Where a server is not
reachable the test is skipped with the reason, unless ``DQM_REQUIRE_SERVICES=1`` (as on CI), where
it fails instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from dqm.db.session import dispose_engines

#: Admin URLs of the servers (their database ``test`` exists; we create our own beside it).
SERVER_URLS = {
    "mariadb": os.environ.get("DQM_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    "postgresql": os.environ.get(
        "DQM_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    ),
}


def services_required() -> bool:
    """Whether an unreachable service must fail the run (``DQM_REQUIRE_SERVICES=1``)."""
    return os.environ.get("DQM_REQUIRE_SERVICES", "") not in ("", "0")


def unavailable(service: str, reason: object) -> None:
    """Skip (or, with ``DQM_REQUIRE_SERVICES=1``, fail) because ``service`` is unreachable."""
    message = f"{service} is not reachable: {str(reason).strip().splitlines()[0]}"
    if services_required():
        pytest.fail(f"{message} (DQM_REQUIRE_SERVICES=1 requires it)", pytrace=False)
    pytest.skip(message)


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """Create an empty database with a unique name on ``backend``; yield its URL; drop it."""
    admin_url = make_url(SERVER_URLS[backend])
    name = f"dqm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5}
    )
    try:
        with admin.connect() as connection:
            if backend == "mariadb":
                connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4"))
            else:
                connection.execute(text(f"CREATE DATABASE {name}"))
    except OperationalError as exc:
        admin.dispose()
        unavailable(backend, exc.orig)
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as connection:
            if backend == "mariadb":
                connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            else:
                connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


RABBITMQ_URL = os.environ.get("DQM_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672//")


@contextmanager
def fresh_queue(url: str = RABBITMQ_URL) -> Iterator[tuple[str, str]]:
    """A uniquely named queue on RabbitMQ: yield (broker URL, queue name); delete the queue after."""
    import kombu

    name = f"dqm.test.{uuid.uuid4().hex[:12]}"
    connection = kombu.Connection(url, connect_timeout=5)
    try:
        connection.ensure_connection(max_retries=1)
    except Exception as exc:  # noqa: BLE001 - any failure to connect means the service is absent
        connection.release()
        unavailable("rabbitmq", exc)
    try:
        yield url, name
    finally:
        with connection.channel() as channel:
            kombu.Queue(name, channel=channel).delete()
        connection.release()


#: Real ROOT files of other experiments, committed with the tests (see its README.md).
FOREIGN_ROOT_DIR = Path(__file__).resolve().parent / "data" / "foreign-root"


def foreign_root_dir() -> Path:
    """Real ROOT files of other experiments (scikit-hep-testdata): :data:`FOREIGN_ROOT_DIR`, or
    where ``DQM_FOREIGN_ROOT_DIR`` says (a larger collection, say)."""
    path = Path(os.environ.get("DQM_FOREIGN_ROOT_DIR") or FOREIGN_ROOT_DIR)
    if not any(path.glob("*.root")):
        pytest.fail(
            f"the foreign ROOT files are missing in {path}; set DQM_FOREIGN_ROOT_DIR", pytrace=False
        )
    return path
