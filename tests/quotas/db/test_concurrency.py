"""Concurrent holds never overspend: 32 threads race for the last credits of one project.

Each thread opens its own connection and transaction, as separate scheduler or portal workers
would; the ledger lock (PostgreSQL advisory lock, SQLite's immediate write lock) serialises the
read-check-append of every hold.
"""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from quotas.db.models import LedgerEntryRow
from quotas.db.session import make_engine, session_factory, transaction
from quotas.errors import BudgetExhausted
from quotas.ledger import Balances, EntryKind
from quotas.quantities import Credits
from quotas.service import Books
from tests.quotas.db.conftest import NOW, set_up_small_pool
from tests.quotas.ledger_ops import PERIOD

RACERS = 32


def test_racing_holds_take_exactly_the_credits_there_are(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url, pool_size=RACERS, max_overflow=0)
    factory = session_factory(engine)
    with transaction(factory) as session:
        books = Books(session, clock=lambda: NOW)
        set_up_small_pool(books)
        books.award("startups", "hanbit-robot-policy", PERIOD, Credits.of(10), "pm", "last ten")

    start = threading.Barrier(RACERS)
    outcomes: list[str] = []
    lock = threading.Lock()

    def race(number: int) -> None:
        start.wait()
        try:
            with transaction(factory) as session:
                Books(session, clock=lambda: NOW).hold(
                    "hanbit-robot-policy",
                    f"job-{number}",
                    Credits.of(1),
                    "scheduler",
                    "admitted",
                    PERIOD,
                )
            result = "held"
        except BudgetExhausted:
            result = "refused"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(RACERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(outcomes) == ["held"] * 10 + ["refused"] * (RACERS - 10)
    with transaction(factory) as session:
        books = Books(session)
        balances = books.balances("hanbit-robot-policy", PERIOD)
        assert (balances.held, balances.available) == (Credits.of(10), Credits.zero())
        entries = books.ledger.entries(limit=10_000)
        holds = [e for e in entries if e.posting.kind is EntryKind.HOLD]
        assert sum(e.posting.amount.milli for e in holds) == Credits.of(10).milli
        assert len({e.posting.job for e in holds}) == 10
        derived = Balances.of(entry.posting for entry in entries)
        stored = books.ledger.balances(PERIOD)
        assert {k: v for k, v in derived.amounts.items() if v} == {
            k: v for k, v in stored.amounts.items() if v
        }
        assert session.scalar(select(func.count()).select_from(LedgerEntryRow)) == len(entries)
    engine.dispose()
