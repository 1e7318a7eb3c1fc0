"""The books on a real database (SQLite, and PostgreSQL in CI): exact balances, refusals that
change nothing, an append-only ledger, allocation requests that award through the ledger."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from quotas.accounts import Account, AccountKind
from quotas.allocations import AUTO_APPROVER, AllocationRequest, RequestState
from quotas.db.models import LedgerEntryRow
from quotas.errors import (
    AlreadyDone,
    AlreadyExists,
    BooksError,
    BudgetExhausted,
    Conflict,
    Forbidden,
    InsufficientCredits,
    InvalidInput,
    InvalidTransition,
    PeriodClosed,
    TreeError,
)
from quotas.ledger import Balances, Bucket, EntryKind
from quotas.quantities import Credits, Rate
from quotas.service import Books
from tests.quotas.db.conftest import NOW
from tests.quotas.ledger_ops import FUNDERS, PERIOD, PROGRAM_OF, Op, operations


def ledger_rows(books: Books) -> int:
    return books.session.scalar(select(func.count()).select_from(LedgerEntryRow)) or 0


def test_the_demo_pool_has_exact_balances_from_its_ledger(demo: Books) -> None:
    period = demo.current_period().name

    assert demo.balances("national", period).available == Credits.of(250_000)
    assert demo.balances("kaist-nlp", period).available == Credits.of(24_000)  # adjusted award
    assert demo.balances("hanbit-robot-policy", period).available == Credits.of(6_000)  # tranche 1
    assert demo.balances("seoulvision-doc-ocr", period).available == Credits.of(1_500)  # auto
    assert demo.balances("snu-medical-imaging", period).available == Credits.of(20_000)
    assert demo.tree(period)["kaist"].budget == Credits.of(40_000)
    assert {c.name for c in demo.clusters.all()} == {
        "kube-pangyo",
        "national-daejeon",
        "national-gwangju",
    }


def test_seeding_twice_changes_nothing(demo: Books) -> None:
    from quotas.demo import demo_pool
    from quotas.seed import seed_demo

    rows = ledger_rows(demo)
    report = seed_demo(demo, demo_pool(NOW))

    assert not report.seeded
    assert ledger_rows(demo) == rows


def test_a_job_is_held_charged_and_settled_to_the_milli_credit(small_pool: Books) -> None:
    books = small_pool
    books.award("universities", "kaist-nlp", PERIOD, Credits.of(100), "pm", "award")
    books.hold("kaist-nlp", "job-1", Credits.of(32), "scheduler", "admitted", PERIOD)
    books.charge("kaist-nlp", "job-1", Credits.of("12.345"), "scheduler", "ran 46 min", PERIOD)
    books.release("kaist-nlp", "job-1", "scheduler", "finished", PERIOD)
    books.refund("kaist-nlp", "job-1", Credits.of("2.345"), "scheduler", "node fault", PERIOD)

    balances = books.balances("kaist-nlp", PERIOD)
    assert (balances.spent, balances.held, balances.available) == (
        Credits.of(10),
        Credits.zero(),
        Credits.of(90),
    )
    assert books.balances("universities", PERIOD).available == Credits.of(890)


def test_every_charge_says_which_funder_paid(small_pool: Books) -> None:
    books = small_pool
    books.award("startups", "hanbit-robot-policy", PERIOD, Credits.of(600), "pm", "award")
    books.hold("hanbit-robot-policy", "job-9", Credits.of(550), "scheduler", "admitted", PERIOD)
    books.charge("hanbit-robot-policy", "job-9", Credits.of(550), "scheduler", "ran", PERIOD)

    charges = books.ledger.entries(job="job-9", kinds=[EntryKind.CHARGE])
    paid = {entry.posting.funder: entry.posting.amount for entry in charges}
    assert sum(amount.milli for amount in paid.values()) == Credits.of(550).milli
    assert set(paid) <= set(FUNDERS)
    assert all(entry.posting.actor == "scheduler" for entry in charges)


def test_a_hold_past_an_organization_budget_is_refused_and_writes_nothing(
    small_pool: Books,
) -> None:
    books = small_pool
    books.award("universities", "kaist-nlp", PERIOD, Credits.of(250), "pm", "award")
    books.award("universities", "kaist-protein", PERIOD, Credits.of(250), "pm", "award")
    books.hold("kaist-nlp", "job-1", Credits.of(200), "scheduler", "admitted", PERIOD)
    rows = ledger_rows(books)

    with pytest.raises(BudgetExhausted, match="organization kaist"):
        books.hold("kaist-protein", "job-2", Credits.of(101), "scheduler", "admitted", PERIOD)

    assert ledger_rows(books) == rows
    books.hold("kaist-protein", "job-2", Credits.of(100), "scheduler", "admitted", PERIOD)


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (
            lambda b: b.award("universities", "kaist-nlp", PERIOD, Credits.of(901), "pm", "x"),
            InsufficientCredits,
        ),
        (
            lambda b: b.add_account(Account("kaist-nlp", AccountKind.PROJECT, "kaist")),
            AlreadyExists,
        ),
        (
            lambda b: b.update_account(Account("kaist", AccountKind.ORGANIZATION, "kaist-nlp")),
            TreeError,
        ),
        (
            lambda b: b.add_account(Account("newlab", AccountKind.PROJECT, "universities")),
            TreeError,
        ),
        (
            lambda b: b.update_account(
                Account("kaist", AccountKind.ORGANIZATION, "universities", share=-1)
            ),
            InvalidInput,
        ),
        (
            lambda b: b.publish_rate_card({"h100-80g": Rate.of(1), "x100": Rate.of(2)}, NOW, "a"),
            InvalidInput,
        ),
        (lambda b: b.hold("kaist-nlp", "j", Credits.of(1), "s", "r", PERIOD), BudgetExhausted),
        (lambda b: b.contribute("unknown-funder", PERIOD, Credits.of(5), "a", "r"), BooksError),
        (
            lambda b: b.request_allocation(
                AllocationRequest("kaist-nlp", PERIOD, Credits.of(5), "why", ("x100",)), "a"
            ),
            InvalidInput,
        ),
        (lambda b: b.expire(PERIOD, "admin"), InvalidInput),
    ],
)
def test_bad_input_gets_a_domain_error_and_changes_nothing(
    small_pool: Books, change, error
) -> None:  # type: ignore[no-untyped-def]
    books = small_pool
    before = (ledger_rows(books), books.tree(PERIOD), books.ledger.balances(PERIOD).amounts)

    with pytest.raises(error):
        change(books)

    books.session.expire_all()
    assert (ledger_rows(books), books.tree(PERIOD), books.ledger.balances(PERIOD).amounts) == before


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_entries SET amount_milli = amount_milli + 1",
        "DELETE FROM ledger_entries",
    ],
)
def test_the_database_refuses_to_rewrite_the_ledger(small_pool: Books, statement: str) -> None:
    books = small_pool
    rows = ledger_rows(books)

    with pytest.raises(DBAPIError, match="append-only"), books.session.begin_nested():
        books.session.execute(text(statement))

    assert ledger_rows(books) == rows


def test_a_reversal_undoes_an_entry_once(small_pool: Books) -> None:
    books = small_pool
    [award] = books.award("universities", "kaist-nlp", PERIOD, Credits.of(40), "pm", "typo")
    books.reverse(award, "pm", "awarded to the wrong project")

    assert books.balances("kaist-nlp", PERIOD).available == Credits.zero()
    with pytest.raises(AlreadyDone, match="already been reversed"):
        books.reverse(award, "pm", "again")


def test_an_expired_period_closes_its_books(small_pool: Books) -> None:
    books = small_pool
    books.award("universities", "kaist-nlp", PERIOD, Credits.of(40), "pm", "award")
    books.clock = lambda: NOW + timedelta(days=90)

    books.expire(PERIOD, "admin")

    assert books.balances("national", PERIOD).available == Credits.zero()
    assert books.ledger.balances(PERIOD).total(
        PERIOD, _pocket(Bucket.EXPIRED, "kaist-nlp")
    ) == Credits.of(40)
    with pytest.raises(PeriodClosed, match="expired"):
        books.award("universities", "kaist-nlp", PERIOD, Credits.of(1), "pm", "late")


def _pocket(bucket: Bucket, account: str):  # type: ignore[no-untyped-def]
    from quotas.ledger import Pocket

    return Pocket(bucket, account)


class TestAllocationRequests:
    def test_small_requests_are_approved_and_awarded_on_submission(self, demo: Books) -> None:
        period = demo.current_period().name
        # The demo auto-approved 4,000 of the tier's 5,000 to postech-materials: 1,000 still fits.
        request = AllocationRequest("postech-materials", period, Credits.of(1_000), "pilot")
        request_id = demo.request_allocation(request, "eunji.han")

        submitted = demo.submit_request(request_id, "eunji.han")

        assert (submitted.state, submitted.reviewer) == (RequestState.APPROVED, AUTO_APPROVER)
        assert demo.balances("postech-materials", period).available == Credits.of(5_000)
        awards = demo.ledger.entries(account="postech-materials", kinds=[EntryKind.AWARD])
        assert awards[-1].posting.allocation == request_id
        assert demo.allocations.auto_approved("postech-materials", period) == Credits.of(5_000)

    def test_the_tier_caps_a_projects_cumulative_auto_approved_credits(self, demo: Books) -> None:
        period = demo.current_period().name
        request = AllocationRequest("postech-materials", period, Credits.of("1000.5"), "again")
        request_id = demo.request_allocation(request, "eunji.han")

        submitted = demo.submit_request(request_id, "eunji.han")

        assert (submitted.state, submitted.awarded) == (RequestState.SUBMITTED, None)
        assert demo.balances("postech-materials", period).available == Credits.of(4_000)
        entry = demo.audit.search(action="allocation.submit", target=f"allocation/{request_id}")
        after = entry[0][0].after
        assert after is not None
        assert after["auto_approval"] == {
            "tier": "5000.0",
            "auto_approved_before": "4000.0",
            "cumulative": "5000.5",
            "approved": False,
        }
        assert "over the program's auto-approval tier" in after["why"]
        assert "the review goes to a manager of universities (jaehyun.kim)" in after["why"]

    def test_large_requests_wait_for_a_program_manager_of_their_program(self, demo: Books) -> None:
        period = demo.current_period().name
        request = AllocationRequest("kaist-protein", period, Credits.of(9_000), "phase two")
        request_id = demo.request_allocation(request, "seoyeon.lee")

        assert demo.submit_request(request_id, "seoyeon.lee").state is RequestState.SUBMITTED
        with pytest.raises(Forbidden, match=r"minji\.park does not manage program universities"):
            demo.review(request_id, "minji.park", "approve", "looks fine")
        adjusted = demo.review(request_id, "jaehyun.kim", "adjust", "half now", Credits.of(4_500))

        assert (adjusted.state, adjusted.awarded) == (RequestState.ADJUSTED, Credits.of(4_500))
        assert demo.balances("kaist-protein", period).available == Credits.of(12_500)
        with pytest.raises(InvalidTransition):
            demo.review(request_id, "jaehyun.kim", "decline", "changed my mind")

    def test_later_tranches_are_released_once(self, demo: Books) -> None:
        period = demo.current_period().name
        [(request_id, request)] = demo.allocations.find(project="hanbit-robot-policy")
        assert request.tranche_percents == (50, 50)

        demo.release_tranche(request_id, 2, "minji.park")

        assert demo.balances("hanbit-robot-policy", period).available == Credits.of(12_000)
        with pytest.raises(InvalidInput, match="tranche 2 was released"):
            demo.release_tranche(request_id, 2, "minji.park")

    def test_a_declined_request_awards_nothing(self, demo: Books) -> None:
        period = demo.current_period().name
        before = demo.balances("snu-medical-imaging", period)
        [(request_id, _)] = demo.allocations.find(state=RequestState.SUBMITTED)

        declined = demo.review(request_id, "jaehyun.kim", "decline", "apply next quarter")

        assert declined.state is RequestState.DECLINED
        assert demo.balances("snu-medical-imaging", period) == before
        with pytest.raises(InvalidTransition):
            demo.release_tranche(request_id, 1, "jaehyun.kim")


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=st.lists(operations, max_size=15))
def test_stored_ledger_conserves_credits_for_any_sequence(small_pool: Books, ops: list[Op]) -> None:
    books = small_pool
    with books.session.begin_nested() as example:
        for op in ops:
            run(books, op)
        entries = books.ledger.entries(limit=10_000)
        derived = Balances.of(entry.posting for entry in entries)
        stored = books.ledger.balances(PERIOD)
        assert {k: v for k, v in stored.amounts.items() if v} == {
            k: v for k, v in derived.amounts.items() if v
        }
        for (_period, _funder, pocket), amount in stored.amounts.items():
            assert pocket.bucket is Bucket.FUNDER or amount >= 0
        for funder in FUNDERS:
            inside = sum(
                amount
                for (_p, each, pocket), amount in stored.amounts.items()
                if each == funder and pocket.bucket is not Bucket.FUNDER
            )
            assert inside == stored.contributed(PERIOD, funder).milli
        example.rollback()


def run(books: Books, op: Op) -> None:
    program = PROGRAM_OF[op.project]
    try:
        with books.session.begin_nested():
            match op.name:
                case "award":
                    books.award(program, op.project, PERIOD, op.amount, "pm", "award")
                case "hold":
                    books.hold(op.project, op.job, op.amount, "s", "admit", PERIOD)
                case "charge":
                    books.charge(op.project, op.job, op.amount, "s", "run", PERIOD)
                case "release":
                    books.release(op.project, op.job, "s", "end", PERIOD)
                case "refund":
                    books.refund(op.project, op.job, op.amount, "s", "fault", PERIOD)
                case "adjust":
                    books.adjust(op.project, PERIOD, op.amount, "admin", "fix")
                case "adjust_down":
                    books.adjust(op.project, PERIOD, -op.amount, "admin", "fix")
    except BooksError:
        pass


def test_a_budget_below_what_is_already_spent_or_held_is_refused(small_pool: Books) -> None:
    books = small_pool
    books.award("universities", "kaist-nlp", PERIOD, Credits.of(40), "pm", "award")
    books.hold("kaist-nlp", "j1", Credits.of(10), "scheduler", "admitted", PERIOD)
    books.charge("kaist-nlp", "j1", Credits.of(4), "scheduler", "usage", PERIOD)

    with pytest.raises(Conflict, match=r"already spent or holds 10\.0 credits.*at least 10\.0"):
        books.set_budget("kaist", PERIOD, Credits.of(9))
    books.set_budget("kaist", PERIOD, Credits.of(10))  # exactly what is spoken for is fine

    assert books.tree(PERIOD)["kaist"].budget == Credits.of(10)
