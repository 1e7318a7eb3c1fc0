"""The catalogue's use cases: only an admin, with the ``manage`` scope, adds flavors, periods
and funders or publishes a rate card; everyone else is refused and nothing changes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from quotas.access import Principal, Scope
from quotas.cases.catalog import (
    add_flavor,
    add_funder,
    add_period,
    in_utc,
    publish_rate_card,
    rate_card_in_force,
)
from quotas.errors import InvalidInput, MissingScope, NotFound
from quotas.flavors import Flavor
from quotas.funding import Funder, FunderKind, Period
from quotas.quantities import Rate
from quotas.service import Books
from tests.quotas.cases.conftest import ROLES, narrowed, outcome
from tests.quotas.db.conftest import NOW

NEXT_YEAR = Period("2028", datetime(2028, 1, 1, tzinfo=UTC), datetime(2029, 1, 1, tzinfo=UTC))
ADDITIONS: dict[str, Callable[[Books, Principal], object]] = {
    "add flavors": lambda books, who: add_flavor(
        books, who, Flavor("npu-64g", 64, 0.5), "vendor benchmark"
    ),
    "add periods": lambda books, who: add_period(books, who, NEXT_YEAR),
    "add funders": lambda books, who: add_funder(
        books, who, Funder("busan", "Busan City", FunderKind.LOCAL_GOVERNMENT)
    ),
    "publish rate cards": lambda books, who: publish_rate_card(
        books, who, rate_card_in_force(books).rates, note="same again"
    ),
}


@pytest.mark.parametrize("what", list(ADDITIONS))
def test_only_an_admin_adds_to_the_catalogue(
    pool: Books, cast: dict[str, Principal], what: str
) -> None:
    add = ADDITIONS[what]

    refused = {role: outcome(add, pool, cast[role]) for role in ROLES if role != "admin"}

    assert set(refused.values()) == {"Forbidden"}
    assert outcome(add, pool, narrowed(cast["admin"], Scope.READ)) == "MissingScope"
    add(pool, cast["admin"])


def test_the_refusal_says_what_may_not_be_done(pool: Books, cast: dict[str, Principal]) -> None:
    with pytest.raises(MissingScope):
        ADDITIONS["add periods"](pool, narrowed(cast["admin"], Scope.READ, Scope.JOBS))
    with pytest.raises(Exception, match=r"^auditor.kim may not add periods$"):
        ADDITIONS["add periods"](pool, cast["auditor"])
    assert "2028" not in {period.name for period in pool.funding.periods()}

    add_period(pool, cast["admin"], NEXT_YEAR)

    assert "2028" in {period.name for period in pool.funding.periods()}


def test_an_admin_publishes_a_rate_card_in_force_from_now_by_default(
    pool: Books, cast: dict[str, Principal]
) -> None:
    before = rate_card_in_force(pool)
    doubled = {flavor: Rate(rate.milli_per_gpu_hour * 2) for flavor, rate in before.rates.items()}

    card = publish_rate_card(pool, cast["admin"], doubled, note="doubled")

    assert card.version == before.version + 1
    assert card.effective_from == NOW
    assert rate_card_in_force(pool).rates == doubled


def test_a_time_outside_the_calendar_in_utc_is_refused_naming_the_field(
    pool: Books, cast: dict[str, Principal]
) -> None:
    edge = datetime.min.replace(tzinfo=timezone(timedelta(hours=1)))

    with pytest.raises(InvalidInput, match=r"^effective_from: out of range$"):
        publish_rate_card(pool, cast["admin"], rate_card_in_force(pool).rates, edge)
    assert in_utc(datetime(2026, 1, 1, 9, tzinfo=timezone(timedelta(hours=9))), "x") == datetime(
        2026, 1, 1, tzinfo=UTC
    )


def test_no_rate_card_in_force_is_not_found(books: Books) -> None:
    with pytest.raises(NotFound):
        rate_card_in_force(books)
