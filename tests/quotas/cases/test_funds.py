"""The pool's funds: only an admin, with the ``manage`` scope, records a funder's contribution or
appropriates the pool's credits to a program; what the books refuse (a closed period, more than
the pool holds, an account that is not a program) changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from quotas.access import Principal, Scope
from quotas.cases.catalog import (
    MOST_CREDITS_MOVED,
    appropriate,
    contribute,
    funder_records,
    pool_funds,
)
from quotas.errors import (
    BooksError,
    Forbidden,
    InsufficientCredits,
    InvalidInput,
    NotFound,
    PeriodClosed,
)
from quotas.funding import Period
from quotas.ledger import Bucket, EntryKind
from quotas.quantities import Credits
from quotas.service import Books
from tests.quotas.cases.conftest import ROLES, narrowed, outcome

PERIOD = "2026-q4"
"""The demo pool's period (the quarter of ``NOW``): 250,000 credits contributed (msit 200,000,
gyeonggi 50,000), 230,000 appropriated; the pool holds 10,000 of each funder's unappropriated."""
Q3 = Period("2026-q3", datetime(2026, 7, 1, tzinfo=UTC), datetime(2026, 10, 1, tzinfo=UTC))

MOVEMENTS: dict[str, Callable[[Books, Principal], object]] = {
    "record contributions": lambda books, who: contribute(
        books, who, "msit", PERIOD, Credits.of(1_000), "supplementary budget"
    ),
    "appropriate credits to programs": lambda books, who: appropriate(
        books, who, "universities", PERIOD, Credits.of(1_000), "spring call"
    ),
}
MOVES: dict[str, Callable[[Books, Principal, Credits, str], object]] = {
    "contribution": lambda books, who, amount, reason: contribute(
        books, who, "msit", PERIOD, amount, reason
    ),
    "appropriation": lambda books, who, amount, reason: appropriate(
        books, who, "startups", PERIOD, amount, reason
    ),
}


def unappropriated(books: Books, principal: Principal) -> dict[str, Credits]:
    funds = pool_funds(books, principal)
    assert funds is not None
    return dict(funds.unappropriated)


@pytest.mark.parametrize("what", list(MOVEMENTS))
def test_only_an_admin_moves_the_pools_funds(
    pool: Books, cast: dict[str, Principal], what: str
) -> None:
    move = MOVEMENTS[what]
    before = pool.ledger.last_id()

    refused = {role: outcome(move, pool, cast[role]) for role in ROLES if role != "admin"}
    narrowed_admin = outcome(move, pool, narrowed(cast["admin"], Scope.READ, Scope.JOBS))

    assert set(refused.values()) == {"Forbidden"}
    assert narrowed_admin == "MissingScope"
    assert pool.ledger.last_id() == before
    with pytest.raises(Forbidden, match=rf"^auditor.kim may not {what}$"):
        move(pool, cast["auditor"])
    move(pool, cast["admin"])
    assert pool.ledger.last_id() > before


def test_a_contribution_grows_the_pools_unappropriated_credits(
    pool: Books, cast: dict[str, Principal]
) -> None:
    admin = cast["admin"]

    posted = contribute(pool, admin, "gyeonggi", PERIOD, Credits.of("2500.5"), " extra budget ")

    assert posted.period == PERIOD
    assert posted.amount == Credits.of("2500.5")
    [entry] = posted.entries
    assert entry.posting.kind is EntryKind.CONTRIBUTION
    assert entry.posting.funder == "gyeonggi"
    assert entry.posting.source.bucket is Bucket.FUNDER
    assert entry.posting.target.account == "national"
    assert entry.posting.amount == Credits.of("2500.5")
    assert (entry.posting.actor, entry.posting.reason) == ("admin", "extra budget")
    assert unappropriated(pool, admin) == {
        "gyeonggi": Credits.of("12500.5"),
        "msit": Credits.of(10_000),
    }
    gyeonggi = next(each for each in funder_records(pool, admin) if each.funder.name == "gyeonggi")
    assert gyeonggi.contributed == {PERIOD: Credits.of("52500.5")}


def test_an_appropriation_draws_funder_by_funder_unless_it_names_one(
    pool: Books, cast: dict[str, Principal]
) -> None:
    admin = cast["admin"]
    funds = pool_funds(pool, admin)
    assert funds is not None
    before = {each.program: each for each in funds.programs}

    drawn = appropriate(pool, admin, "startups", PERIOD, Credits.of(12_000), "second call")
    named = appropriate(
        pool, admin, "universities", PERIOD, Credits.of(3_000), "msit's share", funder="msit"
    )

    assert {(e.posting.funder, e.posting.amount) for e in drawn.entries} == {
        ("gyeonggi", Credits.of(10_000)),
        ("msit", Credits.of(2_000)),
    }
    assert all(e.posting.kind is EntryKind.APPROPRIATION for e in drawn.entries)
    assert [(e.posting.funder, e.posting.amount) for e in named.entries] == [
        ("msit", Credits.of(3_000))
    ]
    after = pool_funds(pool, admin)
    assert after is not None
    programs = {each.program: each for each in after.programs}
    assert after.unappropriated == {"msit": Credits.of(5_000)}
    assert programs["startups"].appropriated == {
        "gyeonggi": Credits.of(40_000),
        "msit": Credits.of(62_000),
    }
    assert programs["startups"].total == Credits.of(102_000)
    assert programs["universities"].total == Credits.of(143_000)
    assert programs["startups"].balances.available == before[
        "startups"
    ].balances.available + Credits.of(12_000)


@pytest.mark.parametrize(
    ("amount", "funder", "error"),
    [
        ("20000.001", None, r"needs more than the 20000.0"),
        ("10000.001", "gyeonggi", r"from funder gyeonggi"),
    ],
)
def test_more_than_the_pool_holds_is_refused_by_the_ledger(
    pool: Books, cast: dict[str, Principal], amount: str, funder: str | None, error: str
) -> None:
    before = pool.ledger.last_id()

    with pytest.raises(InsufficientCredits, match=error):
        appropriate(pool, cast["admin"], "startups", PERIOD, Credits.of(amount), "x", funder)

    assert pool.ledger.last_id() == before


@pytest.mark.parametrize(
    ("program", "error", "message"),
    [
        ("kaist-nlp", InvalidInput, r"^kaist-nlp is a project, not a program: .*startups"),
        ("kaist", InvalidInput, r"^kaist is an organization, not a program"),
        ("national", InvalidInput, r"^national is a pool, not a program"),
        ("nowhere", NotFound, r"^no account nowhere; the programs are: startups, universities$"),
    ],
)
def test_only_a_program_receives_an_appropriation(
    pool: Books,
    cast: dict[str, Principal],
    program: str,
    error: type[BooksError],
    message: str,
) -> None:
    before = pool.ledger.last_id()

    with pytest.raises(error, match=message):
        appropriate(pool, cast["admin"], program, PERIOD, Credits.of(10), "misdirected")

    assert pool.ledger.last_id() == before


@pytest.mark.parametrize(
    ("amount", "reason", "message"),
    [
        (Credits.of(0), "x", r"must be positive"),
        (Credits.of(-5), "x", r"must be positive"),
        (MOST_CREDITS_MOVED, "x", r"must be less than 1000000000000.0 credits"),
        (Credits.of(10**15), "x", r"must be less than"),
        (Credits.of(5), "  ", r"needs a reason"),
    ],
)
@pytest.mark.parametrize("what", list(MOVES))
def test_amounts_the_books_do_not_move_are_refused(
    pool: Books,
    cast: dict[str, Principal],
    what: str,
    amount: Credits,
    reason: str,
    message: str,
) -> None:
    before = pool.ledger.last_id()

    move = MOVES[what]

    with pytest.raises(InvalidInput, match=message):
        move(pool, cast["admin"], amount, reason)

    assert pool.ledger.last_id() == before


def test_unknown_funders_and_periods_are_not_found(pool: Books, cast: dict[str, Principal]) -> None:
    admin = cast["admin"]
    one = Credits.of(1)

    with pytest.raises(
        NotFound, match=r"^unknown funder 'busan'; the funders are: gyeonggi, msit$"
    ):
        contribute(pool, admin, "busan", PERIOD, one, "x")
    with pytest.raises(NotFound, match=r"unknown funder 'busan'"):
        appropriate(pool, admin, "startups", PERIOD, one, "x", funder="busan")
    with pytest.raises(NotFound, match=r"^unknown period '2031'$"):
        contribute(pool, admin, "msit", "2031", one, "x")
    with pytest.raises(NotFound, match=r"^unknown period '2031'$"):
        appropriate(pool, admin, "startups", "2031", one, "x")
    with pytest.raises(NotFound):
        pool_funds(pool, admin, "2031")


def test_a_closed_period_takes_no_more_movements(pool: Books, cast: dict[str, Principal]) -> None:
    admin = cast["admin"]
    pool.add_period(Q3)
    contribute(pool, admin, "msit", Q3.name, Credits.of(100), "late grant")
    appropriate(pool, admin, "startups", Q3.name, Credits.of(60), "late grant")
    pool.expire(Q3.name, "admin")
    before = pool.ledger.last_id()

    with pytest.raises(PeriodClosed, match=r"^period 2026-q3 has expired"):
        contribute(pool, admin, "msit", Q3.name, Credits.of(1), "too late")
    with pytest.raises(PeriodClosed):
        appropriate(pool, admin, "startups", Q3.name, Credits.of(1), "too late")

    assert pool.ledger.last_id() == before
    funds = pool_funds(pool, admin, Q3.name)
    assert funds is not None
    assert {each.program: each.total for each in funds.programs} == {
        "startups": Credits.of(60),
        "universities": Credits.zero(),
    }


def test_a_reversed_appropriation_is_netted_out(pool: Books, cast: dict[str, Principal]) -> None:
    admin = cast["admin"]
    posted = appropriate(pool, admin, "universities", PERIOD, Credits.of(4_000), "by mistake")

    pool.reverse(posted.entries[0].id, "admin", "wrong program")

    funds = pool_funds(pool, admin)
    assert funds is not None
    universities = next(each for each in funds.programs if each.program == "universities")
    assert universities.total == Credits.of(140_000)
    assert funds.total_unappropriated == Credits.of(20_000)


def test_the_pools_funds_are_read_by_admin_and_auditor_only(
    pool: Books, cast: dict[str, Principal]
) -> None:
    read = {role: outcome(pool_funds, pool, cast[role]) for role in ROLES}

    assert read == {role: "ok" if role in ("admin", "auditor") else "Forbidden" for role in ROLES}
    funds = pool_funds(pool, cast["auditor"])
    assert funds is not None
    assert funds.period == PERIOD
    assert [each.program for each in funds.programs] == ["startups", "universities"]
    assert funds.programs[0].display_name == "Startup Growth"
