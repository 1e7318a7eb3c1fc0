"""The catalogue a process shares between requests: reused while nothing changed, read afresh
the moment a change is made through the books, and never shared from a unit of work that is
itself changing it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from quotas.accounts import Account, AccountKind
from quotas.db.migrate import upgrade
from quotas.db.session import make_engine, session_factory, transaction
from quotas.flavors import Flavor
from quotas.service import Books
from tests.quotas.db.conftest import NOW, set_up_small_pool


@pytest.fixture
def factory(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fresh_database_url)
    upgrade(engine)
    factory = session_factory(engine)
    with transaction(factory) as session:
        set_up_small_pool(Books(session, lambda: NOW))
    yield factory
    engine.dispose()


def books(session: Session) -> Books:
    return Books(session, lambda: NOW)


def test_an_unchanged_catalogue_is_read_once_and_shared(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        first = books(session).catalogue()
    with transaction(factory) as session:
        again = books(session).catalogue()
    assert again is first
    assert "kaist-nlp" in first.tree
    assert set(first.flavors) == {"h100-80g"}


def test_a_change_through_the_books_is_seen_by_the_next_request(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        before = books(session).catalogue()
    with transaction(factory) as session:
        books(session).add_account(Account("kaist-vision", AccountKind.PROJECT, "kaist"))
        books(session).add_flavor(Flavor("a100-80g", 80, 0.8))
    with transaction(factory) as session:
        after = books(session).catalogue()
    assert after is not before
    assert "kaist-vision" in after.tree
    assert "a100-80g" in after.flavors


def test_a_unit_of_work_sees_its_own_changes_and_does_not_share_them(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        shared = books(session).catalogue()
    session = factory()
    try:
        changing = books(session)
        changing.add_account(Account("kaist-vision", AccountKind.PROJECT, "kaist"))
        assert "kaist-vision" in changing.catalogue().tree
        assert "kaist-vision" in changing.tree()
        session.rollback()  # the change never happened
    finally:
        session.close()
    with transaction(factory) as session:
        seen = books(session).catalogue()
    assert "kaist-vision" not in seen.tree
    assert seen is shared
