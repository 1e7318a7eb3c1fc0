"""The ledger's posting rules: conservation, no overdraft, balances derived from entries."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotas.errors import BooksError, BudgetExhausted, InsufficientCredits, InvalidInput, TreeError
from quotas.ledger import Actor, Balances, Bucket, EntryKind, Ledger, Pocket, Posting
from quotas.quantities import Credits
from tests.quotas.ledger_ops import FUNDERS, PERIOD, PROGRAM_OF, Op, operations, small_tree

ADMIN = Actor("admin", "test")


class Books:
    """The pure ledger with an in-memory journal: what the service does, minus the database."""

    def __init__(self) -> None:
        self.tree = small_tree()
        self.balances = Balances()
        self.journal: list[Posting] = []

    def post(self, build: Callable[[Ledger], list[Posting]]) -> list[Posting]:
        postings = build(Ledger(self.tree, self.balances, PERIOD))
        staged = self.balances.copy()
        staged.apply(postings)
        self.balances = staged
        self.journal.extend(postings)
        return postings

    def fund(self) -> None:
        self.post(lambda ledger: ledger.contribute("msit", Credits.of(1_000), ADMIN))
        self.post(lambda ledger: ledger.contribute("gyeonggi", Credits.of(500), ADMIN))
        self.post(lambda ledger: ledger.appropriate("universities", Credits.of(900), ADMIN))
        self.post(lambda ledger: ledger.appropriate("startups", Credits.of(600), ADMIN))

    def run(self, op: Op) -> None:
        program = PROGRAM_OF[op.project]
        actions: dict[str, Callable[[Ledger], list[Posting]]] = {
            "award": lambda ledger: ledger.award(program, op.project, op.amount, ADMIN),
            "hold": lambda ledger: ledger.hold(op.project, op.job, op.amount, ADMIN),
            "charge": lambda ledger: ledger.charge(op.project, op.job, op.amount, ADMIN),
            "release": lambda ledger: ledger.release(op.project, op.job, ADMIN),
            "refund": lambda ledger: ledger.refund(op.project, op.job, op.amount, ADMIN),
            "adjust": lambda ledger: ledger.adjust(op.project, op.amount, ADMIN),
            "adjust_down": lambda ledger: ledger.adjust(op.project, -op.amount, ADMIN),
        }
        self.post(actions[op.name])


def check_invariants(books: Books) -> None:
    derived = Balances.of(books.journal)
    assert {k: v for k, v in derived.amounts.items() if v} == {
        k: v for k, v in books.balances.amounts.items() if v
    }
    for (_period, _funder, pocket), amount in derived.amounts.items():
        if pocket.bucket is not Bucket.FUNDER:
            assert amount >= 0, f"{pocket} went negative"
    for funder in FUNDERS:
        inside = sum(
            amount
            for (period, each, pocket), amount in derived.amounts.items()
            if period == PERIOD and each == funder and pocket.bucket is not Bucket.FUNDER
        )
        assert inside == derived.contributed(PERIOD, funder).milli
    kaist = derived.of_account(books.tree, "kaist", PERIOD)
    assert (kaist.spent + kaist.held).milli <= Credits.of(300).milli


@settings(max_examples=200, deadline=None)
@given(st.lists(operations, max_size=40))
def test_any_sequence_conserves_credits_and_never_overdraws(ops: list[Op]) -> None:
    books = Books()
    books.fund()
    for op in ops:
        before = dict(books.balances.amounts), len(books.journal)
        try:
            books.run(op)
        except BooksError:
            assert (dict(books.balances.amounts), len(books.journal)) == before
        check_invariants(books)


def test_hold_charge_release_leaves_exact_balances() -> None:
    books = Books()
    books.fund()
    books.post(lambda ledger: ledger.award("universities", "kaist-nlp", Credits.of(100), ADMIN))
    books.post(lambda ledger: ledger.hold("kaist-nlp", "job-1", Credits.of(32), ADMIN))
    books.post(lambda ledger: ledger.charge("kaist-nlp", "job-1", Credits.of("12.5"), ADMIN))
    released = books.post(lambda ledger: ledger.release("kaist-nlp", "job-1", ADMIN))

    assert sum(p.amount.milli for p in released) == 19_500
    balances = books.balances.of_account(books.tree, "kaist-nlp", PERIOD)
    assert (balances.spent, balances.held, balances.available) == (
        Credits.of("12.5"),
        Credits.zero(),
        Credits.of("87.5"),
    )


def test_credits_stay_earmarked_by_funder_down_to_the_charge() -> None:
    books = Books()
    books.post(lambda ledger: ledger.contribute("msit", Credits.of(60), ADMIN))
    books.post(lambda ledger: ledger.contribute("gyeonggi", Credits.of(40), ADMIN))
    books.post(lambda ledger: ledger.appropriate("universities", Credits.of(100), ADMIN))
    books.post(lambda ledger: ledger.award("universities", "kaist-nlp", Credits.of(100), ADMIN))
    books.post(lambda ledger: ledger.hold("kaist-nlp", "job-1", Credits.of(80), ADMIN))
    charges = books.post(lambda ledger: ledger.charge("kaist-nlp", "job-1", Credits.of(70), ADMIN))

    assert {(p.funder, p.amount) for p in charges} == {
        ("gyeonggi", Credits.of(40)),
        ("msit", Credits.of(30)),
    }


def test_hold_never_passes_an_ancestor_budget() -> None:
    books = Books()
    books.fund()
    books.post(lambda ledger: ledger.award("universities", "kaist-nlp", Credits.of(250), ADMIN))
    books.post(lambda ledger: ledger.award("universities", "kaist-protein", Credits.of(250), ADMIN))
    books.post(lambda ledger: ledger.hold("kaist-nlp", "job-1", Credits.of(200), ADMIN))

    with pytest.raises(
        BudgetExhausted, match=r"organization kaist: needs 150\.0 credits, 100\.0 left"
    ):
        books.post(lambda ledger: ledger.hold("kaist-protein", "job-2", Credits.of(150), ADMIN))


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (
            lambda ledger: ledger.hold("kaist-nlp", "j", Credits.of(1), ADMIN),
            BudgetExhausted,
            "0.0 available",
        ),
        (
            lambda ledger: ledger.charge("kaist-nlp", "j", Credits.of(1), ADMIN),
            InsufficientCredits,
            "held",
        ),
        (
            lambda ledger: ledger.award("startups", "kaist-nlp", Credits.of(1), ADMIN),
            TreeError,
            "not above",
        ),
        (
            lambda ledger: ledger.award("universities", "kaist", Credits.of(1), ADMIN),
            TreeError,
            "project",
        ),
        (
            lambda ledger: ledger.award("universities", "kaist-nlp", Credits.of(10_000), ADMIN),
            InsufficientCredits,
            "needs more",
        ),
        (lambda ledger: ledger.contribute("msit", Credits(0), ADMIN), InvalidInput, "positive"),
        (
            lambda ledger: ledger.appropriate("kaist", Credits.of(1), ADMIN),
            TreeError,
            "not a program",
        ),
        (
            lambda ledger: ledger.adjust("national", Credits.of(1), ADMIN),
            InvalidInput,
            "names the funder",
        ),
    ],
)
def test_refused_movements_say_why_and_change_nothing(
    build: Callable[[Ledger], list[Posting]], error: type[Exception], message: str
) -> None:
    books = Books()
    books.fund()
    before = dict(books.balances.amounts)

    with pytest.raises(error, match=message):
        books.post(build)

    assert dict(books.balances.amounts) == before


def test_reversal_undoes_an_entry_exactly_and_cannot_be_reversed_itself() -> None:
    books = Books()
    books.fund()
    [award] = books.post(
        lambda ledger: ledger.award("universities", "kaist-nlp", Credits.of(50), ADMIN)
    )
    [reversal] = books.post(lambda ledger: ledger.reverse(7, award, ADMIN))

    assert (reversal.kind, reversal.source, reversal.target) == (
        EntryKind.REVERSAL,
        award.target,
        award.source,
    )
    assert books.balances.total(PERIOD, Pocket(Bucket.AVAILABLE, "kaist-nlp")) == Credits.zero()
    with pytest.raises(InvalidInput):
        books.post(lambda ledger: ledger.reverse(8, reversal, ADMIN))


def test_expiry_lapses_every_unused_credit_of_the_period() -> None:
    books = Books()
    books.fund()
    books.post(lambda ledger: ledger.award("universities", "kaist-nlp", Credits.of(50), ADMIN))
    books.post(lambda ledger: ledger.hold("kaist-nlp", "job-1", Credits.of(20), ADMIN))
    expiries = books.post(lambda ledger: ledger.expire(ADMIN))

    assert sum(p.amount.milli for p in expiries) == Credits.of(1_480).milli
    assert books.balances.of_account(books.tree, "national", PERIOD).available == Credits.zero()
    assert books.balances.of_account(books.tree, "national", PERIOD).held == Credits.of(20)


def test_a_posting_must_move_a_positive_amount_between_two_pockets() -> None:
    pocket = Pocket(Bucket.AVAILABLE, "kaist-nlp")
    with pytest.raises(InvalidInput):
        Posting(EntryKind.AWARD, PERIOD, "msit", pocket, pocket, Credits(5), "a", "r")
    with pytest.raises(InvalidInput):
        Posting(
            EntryKind.AWARD, PERIOD, "msit", Pocket(Bucket.FUNDER), pocket, Credits(-5), "a", "r"
        )
    with pytest.raises(InvalidInput):
        Pocket(Bucket.AVAILABLE, "kaist-nlp", job="job-1")
