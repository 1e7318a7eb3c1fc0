"""The node outages repository, on each database: outages are recorded with their numbers,
ended once, found while open, and found by the report window they overlap."""

from __future__ import annotations

from datetime import timedelta

import pytest

from quotas.errors import InvalidInput
from quotas.outages import NodeOutage
from quotas.service import Books
from tests.quotas.db.conftest import NOW

HOUR = timedelta(hours=1)


def an_outage(flavor: str = "h100-80g", nodes: int = 1, since_hours: float = 0) -> NodeOutage:
    return NodeOutage("national-daejeon", flavor, nodes, nodes * 8, NOW + since_hours * HOUR)


def test_started_outages_are_open_with_their_numbers_until_ended(books: Books) -> None:
    h100, a100 = books.outages.start([an_outage(), an_outage("a100-80g", nodes=2)])

    assert 0 < h100.id != a100.id > 0
    assert books.outages.open() == [a100, h100]  # by cluster and flavor
    assert books.outages.open_ids() == {h100.id, a100.id}

    books.outages.end([h100.id], NOW + 2 * HOUR)
    books.outages.end([h100.id], NOW + 3 * HOUR)  # ending one that ended changes nothing

    assert books.outages.open() == [a100]
    assert books.outages.open_ids() == {a100.id}
    (ended,) = [o for o in books.outages.overlapping(NOW, NOW + HOUR) if o.id == h100.id]
    assert ended.until == NOW + 2 * HOUR
    assert ended.until.tzinfo is not None  # UTC on SQLite too
    assert ended.since == NOW


def test_overlapping_finds_the_outages_that_touch_the_window(books: Books) -> None:
    before, during, after, still = books.outages.start(
        [
            an_outage(since_hours=-5),
            an_outage(since_hours=-1),
            an_outage(since_hours=3),
            an_outage("a100-80g", since_hours=-10),
        ]
    )
    books.outages.end([before.id], NOW - 2 * HOUR)  # ended before the window
    books.outages.end([during.id], NOW + HOUR)
    books.outages.end([after.id], NOW + 4 * HOUR)  # began at the window's end

    found = books.outages.overlapping(NOW - 2 * HOUR, NOW + 3 * HOUR)

    assert [outage.id for outage in found] == [still.id, during.id]  # by when they began


def test_an_outage_takes_down_something_and_ends_after_it_began() -> None:
    with pytest.raises(InvalidInput):
        NodeOutage("national-daejeon", "h100-80g", 0, 0, NOW)
    with pytest.raises(InvalidInput):
        NodeOutage("national-daejeon", "h100-80g", 1, 8, NOW, until=NOW - HOUR)
