"""Engines and sessions for the DQM database.

SQLite runs with write-ahead logging, foreign keys on and a busy timeout, so that the job server and
the dashboard can use the same file at once. MariaDB and PostgreSQL connections are checked before
use (``pool_pre_ping``), so that a server that went away and came back is reconnected to.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from dqm.config import mask_url
from dqm.errors import DatabaseError, first_line

#: Seconds SQLite waits for a lock held by another process before giving up.
SQLITE_BUSY_TIMEOUT_S = 30


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, begin transactions, so that SAVEPOINT works.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.close()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """A new engine for ``url``, configured for the DQM.

    For SQLite the parent directory of the file is created if needed.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_S})
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("pool_recycle", 3600)
    if parsed.get_backend_name() in {"mysql", "mariadb"}:
        kwargs.setdefault("connect_args", {"charset": "utf8mb4", "connect_timeout": 10})
    elif parsed.get_backend_name() == "postgresql":
        kwargs.setdefault("connect_args", {"connect_timeout": 10})
    return create_engine(parsed, **kwargs)


_ENGINES: dict[str, Engine] = {}


def engine_for(url: str) -> Engine:
    """The process-wide engine for ``url`` (created once, then shared)."""
    engine = _ENGINES.get(url)
    if engine is None:
        engine = _ENGINES[url] = make_engine(url)
    return engine


def dispose_engines() -> None:
    """Close the connections of every shared engine and forget them (tests, forks)."""
    for url in list(_ENGINES):
        _ENGINES.pop(url).dispose()


def session_factory(url_or_engine: str | Engine) -> sessionmaker[Session]:
    """A ``sessionmaker`` bound to the engine (objects stay usable after commit)."""
    engine = engine_for(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(url_or_engine: str | Engine) -> Iterator[Session]:
    """A session inside a transaction: committed on success, rolled back on an exception.

    Raises:
        DatabaseError: the database cannot be reached (one sentence naming the masked URL).
    """
    factory = session_factory(url_or_engine)
    try:
        with factory.begin() as session:
            yield session
    except OperationalError as exc:
        url = str(factory.kw["bind"].url.render_as_string(hide_password=True))
        raise DatabaseError(
            f"database {mask_url(url)} is not reachable or refused the request: "
            f"{first_line(exc.orig)}"
        ) from exc


def check_schema(engine: Engine) -> None:
    """Raise :class:`DatabaseError` unless the database is reachable and migrated.

    Raises:
        DatabaseError: unreachable, or no ``runs`` table (run ``dqm init-db``).
    """
    url = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            has_runs = inspect(connection).has_table("runs")
    except OperationalError as exc:
        raise DatabaseError(f"database {url} is not reachable: {first_line(exc.orig)}") from exc
    if not has_runs:
        raise DatabaseError(f"database {url} has no DQM schema yet; run 'dqm init-db' first.")


_PINGS: dict[tuple[str, float], Engine] = {}
_PINGS_LOCK = threading.Lock()


def _ping_engine(url: str, timeout_s: float) -> Engine:
    """An engine that opens a new connection each time, and gives up on one after about
    ``timeout_s`` (a SQLite file is opened read-write only: a missing one is not created)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.database and parsed.database != ":memory:":
        uri = Path(parsed.database).absolute().as_uri() + "?mode=rw"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, timeout=timeout_s, check_same_thread=False)

        return create_engine("sqlite://", creator=connect, poolclass=NullPool)
    seconds = max(1, math.ceil(timeout_s))
    connect_args: dict[str, Any] = {}
    if backend in {"mysql", "mariadb"}:
        connect_args = {"connect_timeout": seconds, "read_timeout": seconds}
    elif backend == "postgresql":
        connect_args = {"connect_timeout": seconds}
    return create_engine(parsed, poolclass=NullPool, connect_args=connect_args)


def ping(url: str, *, timeout_s: float = 2.0) -> None:
    """Open a new connection to the database and ask it the simplest question, giving up after
    about ``timeout_s`` (whether the database can be reached now; its schema is not looked at).

    Raises:
        DatabaseError: it cannot be reached, in one sentence naming the masked URL.
    """
    with _PINGS_LOCK:
        engine = _PINGS.get((url, timeout_s))
        if engine is None:
            engine = _PINGS[(url, timeout_s)] = _ping_engine(url, timeout_s)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"database {mask_url(url)} is not reachable: {first_line(exc, with_type=True)}"
        ) from exc
