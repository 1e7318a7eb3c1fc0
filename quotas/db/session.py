"""Engines and sessions for SQLite and PostgreSQL, and the ledger lock.

SQLite: foreign keys on, WAL journal, and every transaction begins IMMEDIATE so that reading
balances and appending entries happen under one write lock (no two writers interleave).
PostgreSQL: ledger writes take a transaction-scoped advisory lock first (``lock_ledger``), so
concurrent holds are serialised and can never overspend; it is released at commit or rollback.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker

LEDGER_LOCK_KEY = 0x67707570  # "gpup": one advisory lock key for ledger writes


IDLE_BEFORE_PING = 10.0
"""Seconds a pooled PostgreSQL connection may sit unused before it is checked on checkout."""


def make_engine(url: str, connections: int | None = None, **options: Any) -> Engine:
    """An engine for ``url``; ``connections``, where given, is how many its pool keeps open
    (the number of threads that use it at once, so none is opened and closed per request)."""
    if connections is not None:
        options.setdefault("pool_size", connections)
        options.setdefault("max_overflow", max(2, connections // 4))
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, **options)
        _sqlite_transactions(engine)
        return engine
    engine = create_engine(url, **options)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use once it sat unused ``IDLE_BEFORE_PING`` seconds
    (a database restart or an idle timeout may have closed it); one in steady use is not
    pinged, which saves a round trip per request. A dead one is replaced (the pool retries)."""

    @event.listens_for(engine, "checkin")
    def on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as error:
            raise exc.DisconnectionError(str(error)) from error
        if not alive:
            raise exc.DisconnectionError("the connection did not answer a ping")


def _sqlite_transactions(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA busy_timeout = 60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def lock_ledger(session: Session) -> None:
    """Serialise ledger writers until this transaction ends (PostgreSQL; SQLite already is)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEDGER_LOCK_KEY})
