"""The connection pool: sized by its caller, and a connection the server closed while it sat
idle is replaced before use rather than failing a request."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from quotas.db import session as db_session
from quotas.db.session import make_engine


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_the_pool_keeps_as_many_connections_as_it_is_told(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url, connections=6)
    try:
        assert engine.pool.size() == 6  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_a_connection_closed_by_the_server_while_idle_is_replaced(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fresh_database_url.startswith("postgresql"):
        pytest.skip("the server closes connections on PostgreSQL only")
    engine = make_engine(fresh_database_url, connections=1)
    killer = make_engine(fresh_database_url)
    try:
        pooled = _backend_pid(engine)
        with killer.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pooled})
        monkeypatch.setattr(db_session, "IDLE_BEFORE_PING", 0.0)
        assert _backend_pid(engine) != pooled  # pinged, found dead, replaced: no error
    finally:
        engine.dispose()
        killer.dispose()


def test_a_connection_in_steady_use_is_not_pinged(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not fresh_database_url.startswith("postgresql"):
        pytest.skip("pings are for PostgreSQL")
    engine = make_engine(fresh_database_url, connections=1)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda connection: pings.append(connection))
    try:
        for _ in range(5):
            _backend_pid(engine)
        assert pings == []
        monkeypatch.setattr(db_session, "IDLE_BEFORE_PING", 0.0)
        _backend_pid(engine)
        assert len(pings) == 1
    finally:
        engine.dispose()
