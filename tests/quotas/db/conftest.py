"""Fixtures for the books on a real database: a fixed clock and small or demo pools."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from quotas.demo import demo_pool
from quotas.flavors import Flavor
from quotas.funding import Funder, FunderKind, Period
from quotas.quantities import Credits, Rate
from quotas.seed import seed_demo
from quotas.service import Books
from tests.quotas.ledger_ops import FUNDERS, PERIOD, small_tree

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
Q4 = Period(PERIOD, datetime(2026, 10, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


def set_up_small_pool(books: Books) -> None:
    """The tree of ``ledger_ops.small_tree`` with 1,000 + 500 credits appropriated 900 / 600."""
    books.add_flavor(Flavor("h100-80g", 80, 1.0))
    books.publish_rate_card({"h100-80g": Rate.of(1)}, Q4.starts_at, "admin")
    books.add_period(Q4)
    for name in FUNDERS:
        books.funding.add_funder(Funder(name, name.title(), FunderKind.MINISTRY))
    tree = small_tree()
    for account in tree:  # parents come before their children
        books.add_account(account)
    books.set_budget("kaist", PERIOD, tree["kaist"].budget)
    books.contribute("msit", PERIOD, Credits.of(1_000), "admin", "test funding")
    books.contribute("gyeonggi", PERIOD, Credits.of(500), "admin", "test funding")
    books.appropriate("universities", PERIOD, Credits.of(900), "admin", "test")
    books.appropriate("startups", PERIOD, Credits.of(600), "admin", "test")


@pytest.fixture
def books(session: Session) -> Books:
    return Books(session, clock=lambda: NOW)


@pytest.fixture
def small_pool(books: Books) -> Books:
    set_up_small_pool(books)
    return books


@pytest.fixture
def demo(books: Books) -> Books:
    seed_demo(books, demo_pool(NOW))
    return books
