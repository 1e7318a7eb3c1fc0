"""The books as a service: the engine's operations run against the database.

``Books`` binds the repositories to one session. Every ledger movement follows the same path:
take the ledger lock, read the balances it touches, let the pure ``Ledger`` compute the entries
(or refuse), check them against the balances, and append them. Nothing here commits: the edge
that opened the session owns the transaction, so a refused operation leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

from sqlalchemy.orm import Session

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.allocations import AllocationRequest
from quotas.clock import Clock, utc_now
from quotas.db.repositories import (
    AccountRepository,
    AllocationRepository,
    ClusterRepository,
    FlavorRepository,
    FundingRepository,
    LedgerRepository,
    PeopleRepository,
)
from quotas.db.session import lock_ledger
from quotas.errors import Forbidden, InvalidInput, InvalidTransition, NotFound, TreeError
from quotas.flavors import Flavor, RateCard, rate_card_in_force
from quotas.funding import Period
from quotas.ledger import AccountBalances, Actor, Ledger, Posting
from quotas.quantities import Credits, Rate


class Books:
    """Operations on the books within one session (one transaction, owned by the caller)."""

    def __init__(self, session: Session, clock: Clock = utc_now) -> None:
        self.session = session
        self.clock = clock
        self.flavors = FlavorRepository(session)
        self.funding = FundingRepository(session)
        self.accounts = AccountRepository(session)
        self.people = PeopleRepository(session)
        self.clusters = ClusterRepository(session)
        self.ledger = LedgerRepository(session)
        self.allocations = AllocationRepository(session)
        self._trees: dict[str | None, AccountTree] = {}

    # -- catalogue -------------------------------------------------------------------------

    def add_flavor(self, flavor: Flavor, throughput_source: str = "") -> None:
        if flavor.name in self.flavors.all():
            raise InvalidInput(f"flavor {flavor.name} already exists")
        self.flavors.add(flavor, throughput_source)

    def publish_rate_card(
        self, rates: Mapping[str, Rate], effective_from: datetime, actor: str, note: str = ""
    ) -> RateCard:
        """A new version of the rate card; jobs admitted before it keep their recorded rate."""
        known = self.flavors.all()
        missing = sorted(set(known) - set(rates))
        if missing:
            raise InvalidInput(f"a rate card prices every flavor; missing {', '.join(missing)}")
        card = RateCard(self.flavors.next_rate_card_version(), effective_from, dict(rates))
        self.flavors.add_rate_card(card, actor, note)
        return card

    def rate_card(self, at: datetime | None = None) -> RateCard:
        return rate_card_in_force(self.flavors.rate_cards(), at or self.clock())

    def add_period(self, period: Period) -> None:
        for other in self.funding.periods():
            if other.name == period.name:
                raise InvalidInput(f"period {period.name} already exists")
            if period.starts_at < other.ends_at and other.starts_at < period.ends_at:
                raise InvalidInput(f"period {period.name} overlaps period {other.name}")
        self.funding.add_period(period)

    def current_period(self, at: datetime | None = None) -> Period:
        moment = at or self.clock()
        for period in self.funding.periods():
            if period.contains(moment):
                return period
        raise NotFound(f"no allocation period covers {moment.isoformat()}")

    # -- the account tree ------------------------------------------------------------------

    def tree(self, period: str | None = None) -> AccountTree:
        """The account tree, with budgets of ``period`` when one is named.

        Read once per unit of work (this session) and kept: a scheduling cycle holds credits
        for thousands of jobs against one tree. Changes made through ``Books`` refresh it.
        """
        if period not in self._trees:
            if period is not None:
                self.funding.period(period)
            self._trees[period] = self.accounts.tree(period)
        return self._trees[period]

    def add_account(self, account: Account) -> None:
        tree = self.tree()
        if account.name in tree:
            raise TreeError(f"an account named {account.name} already exists")
        if account.kind is AccountKind.POOL and len(tree.accounts):
            raise TreeError("there is one pool; add programs under it")
        tree.with_account(account)  # validates the whole new tree
        self.accounts.save(account)
        self._trees.clear()

    def update_account(self, account: Account) -> None:
        """Change an account's share, guarantee, borrowing limit or parent."""
        tree = self.tree()
        if tree[account.name].kind is not account.kind:
            raise TreeError(f"{account.name} is a {tree[account.name].kind}; its kind is fixed")
        tree.with_account(account)
        self.accounts.save(account)
        self._trees.clear()

    def set_budget(self, account: str, period: str, budget: Credits | None) -> None:
        self.tree()[account]
        self.funding.period(period)
        if budget is not None and budget.milli < 0:
            raise InvalidInput("a budget cannot be negative")
        self.accounts.set_budget(account, period, budget)
        self._trees.clear()

    # -- the ledger ------------------------------------------------------------------------

    def _post(
        self,
        period: str,
        touches: Callable[[AccountTree], Iterable[str] | None],
        build: Callable[[Ledger], list[Posting]],
    ) -> list[int]:
        """Lock, read the balances the movement touches, compute its entries, append them."""
        self.funding.period(period)
        if self.funding.expired_at(period) is not None:
            raise InvalidInput(f"period {period} has expired; its books are closed")
        lock_ledger(self.session)
        tree = self.tree(period)
        if not tree.accounts:
            raise TreeError("the pool has no accounts yet")
        accounts = touches(tree)
        balances = self.ledger.balances(period, None if accounts is None else set(accounts))
        postings = build(Ledger(tree, balances, period))
        balances.copy().apply(postings)  # refuses any overdraft before anything is written
        return self.ledger.append(postings, self.clock())

    def contribute(
        self, funder: str, period: str, amount: Credits, actor: str, reason: str
    ) -> list[int]:
        if funder not in {each.name for each in self.funding.funders()}:
            raise NotFound(f"unknown funder {funder!r}")
        return self._post(
            period,
            lambda tree: [tree.root.name],
            lambda ledger: ledger.contribute(funder, amount, Actor(actor, reason)),
        )

    def appropriate(
        self,
        program: str,
        period: str,
        amount: Credits,
        actor: str,
        reason: str,
        funder: str | None = None,
    ) -> list[int]:
        return self._post(
            period,
            lambda tree: [tree.root.name, program],
            lambda ledger: ledger.appropriate(program, amount, Actor(actor, reason), funder),
        )

    def award(
        self,
        source: str,
        project: str,
        period: str,
        amount: Credits,
        actor: str,
        reason: str,
        funder: str | None = None,
        allocation: int | None = None,
    ) -> list[int]:
        return self._post(
            period,
            lambda _tree: [source, project],
            lambda ledger: ledger.award(
                source, project, amount, Actor(actor, reason), funder, allocation
            ),
        )

    def hold(
        self, project: str, job: str, amount: Credits, actor: str, reason: str, period: str
    ) -> list[int]:
        """Reserve credits for a job; never past the project's credits or any budget above it."""
        return self._post(
            period,
            lambda tree: _hold_scope(tree, project),
            lambda ledger: ledger.hold(project, job, amount, Actor(actor, reason)),
        )

    def charge(
        self, project: str, job: str, amount: Credits, actor: str, reason: str, period: str
    ) -> list[int]:
        return self._post(
            period,
            lambda _tree: [project],
            lambda ledger: ledger.charge(project, job, amount, Actor(actor, reason)),
        )

    def release(
        self,
        project: str,
        job: str,
        actor: str,
        reason: str,
        period: str,
        amount: Credits | None = None,
    ) -> list[int]:
        return self._post(
            period,
            lambda _tree: [project],
            lambda ledger: ledger.release(project, job, Actor(actor, reason), amount),
        )

    def refund(
        self, project: str, job: str, amount: Credits, actor: str, reason: str, period: str
    ) -> list[int]:
        return self._post(
            period,
            lambda _tree: [project],
            lambda ledger: ledger.refund(project, job, amount, Actor(actor, reason)),
        )

    def adjust(
        self,
        account: str,
        period: str,
        delta: Credits,
        actor: str,
        reason: str,
        funder: str | None = None,
    ) -> list[int]:
        return self._post(
            period,
            lambda tree: [step.name for step in tree.path(account)[-2:]],
            lambda ledger: ledger.adjust(account, delta, Actor(actor, reason), funder),
        )

    def reverse(self, entry_id: int, actor: str, reason: str) -> list[int]:
        entry = self.ledger.get(entry_id)
        if self.ledger.is_reversed(entry_id):
            raise InvalidInput(f"ledger entry {entry_id} has already been reversed")
        touched = [name for name in (entry.posting.target.account,) if name]
        return self._post(
            entry.posting.period,
            lambda _tree: touched,
            lambda ledger: ledger.reverse(entry_id, entry.posting, Actor(actor, reason)),
        )

    def expire(self, period: str, actor: str) -> list[int]:
        """Close a period: every account's unused credits lapse; no more entries after this."""
        ends_at = self.funding.period(period).ends_at
        if self.clock() < ends_at:
            raise InvalidInput(f"period {period} runs until {ends_at.isoformat()}")
        ids = self._post(
            period,
            lambda _tree: None,
            lambda ledger: ledger.expire(Actor(actor, f"period {period} ended")),
        )
        self.funding.mark_expired(period, self.clock())
        return ids

    def balances(self, account: str, period: str) -> AccountBalances:
        """Settled, in flight and committed credits of ``account``'s subtree, exact."""
        tree = self.tree(period)
        names = [account, *(node.name for node in tree.descendants(account))]
        return self.ledger.balances(period, names).of_account(tree, account, period)

    # -- allocation requests ---------------------------------------------------------------

    def request_allocation(self, request: AllocationRequest, actor: str) -> int:
        tree = self.tree()
        if tree[request.project].kind is not AccountKind.PROJECT:
            raise InvalidInput(f"{request.project} is not a project")
        self.funding.period(request.period)
        known = self.flavors.all()
        for flavor in request.flavors:
            if flavor not in known:
                raise InvalidInput(f"unknown flavor {flavor!r}")
        return self.allocations.add(request, actor, self.clock())

    def program_of(self, project: str) -> str:
        path = self.tree().path(project)
        return next(node.name for node in path if node.kind is AccountKind.PROGRAM)

    def submit_request(self, request_id: int, actor: str) -> AllocationRequest:
        """Submit; within the program's auto-approval tier it is approved and awarded at once."""
        request = self.allocations.get(request_id)
        threshold = self.accounts.auto_approve_threshold(self.program_of(request.project))
        submitted = request.submit(threshold)
        self.allocations.save(request_id, submitted, self.clock())
        if submitted.awarded is not None:
            self._award_request(request_id, submitted, actor)
        return submitted

    def review(
        self,
        request_id: int,
        reviewer: str,
        decision: str,
        reason: str,
        awarded: Credits | None = None,
    ) -> AllocationRequest:
        """A program manager of the project's program approves, adjusts or declines."""
        request = self.allocations.get(request_id)
        program = self.program_of(request.project)
        if reviewer not in self.people.program_managers(program):
            raise Forbidden(f"{reviewer} does not manage program {program}")
        if decision == "approve":
            reviewed = request.approve(reviewer, reason)
        elif decision == "adjust":
            if awarded is None:
                raise InvalidInput("an adjustment names the amount awarded")
            reviewed = request.adjust(reviewer, reason, awarded)
        elif decision == "decline":
            reviewed = request.decline(reviewer, reason)
        else:
            raise InvalidInput(f"a review approves, adjusts or declines; not {decision!r}")
        self.allocations.save(request_id, reviewed, self.clock())
        if reviewed.awarded is not None:
            self._award_request(request_id, reviewed, reviewer)
        return reviewed

    def _award_request(self, request_id: int, request: AllocationRequest, actor: str) -> None:
        """Record the tranches and release the first one as an award from the program."""
        tranches = request.tranches()
        self.allocations.add_tranches(request_id, tranches)
        self.release_tranche(request_id, 1, actor)

    def release_tranche(self, request_id: int, seq: int, actor: str) -> list[int]:
        request = self.allocations.get(request_id)
        if not request.state.is_awarded:
            raise InvalidTransition(f"a {request.state} request has nothing to release")
        tranches = {
            number: (amount, released)
            for number, amount, released in self.allocations.tranches(request_id)
        }
        if seq not in tranches:
            raise NotFound(f"allocation request {request_id} has no tranche {seq}")
        amount, released = tranches[seq]
        if released is not None:
            raise InvalidInput(f"tranche {seq} was released on {released.date().isoformat()}")
        ids = self.award(
            self.program_of(request.project),
            request.project,
            request.period,
            amount,
            actor,
            f"allocation request {request_id}, tranche {seq} of {len(tranches)}",
            allocation=request_id,
        )
        self.allocations.mark_released(request_id, seq, actor, self.clock())
        return ids

    def withdraw_request(self, request_id: int) -> AllocationRequest:
        withdrawn = self.allocations.get(request_id).withdraw()
        self.allocations.save(request_id, withdrawn, self.clock())
        return withdrawn


def _hold_scope(tree: AccountTree, project: str) -> list[str]:
    """Accounts whose balances a hold reads: the project and every budget-capped subtree."""
    names = {project}
    for account in tree.path(project):
        if account.budget is not None:
            names.add(account.name)
            names.update(node.name for node in tree.descendants(account.name))
    return sorted(names)
