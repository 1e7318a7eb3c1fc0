"""The credit ledger: append-only, double-entry, in integer milli-credits.

Every entry moves a positive amount of credits from one *pocket* to another. A pocket is an
account's bucket: ``available`` (awarded, neither held nor spent), ``held`` (reserved for one
admitted job), ``spent`` (charged for one job) and ``expired`` (lapsed at period end); the
``funder`` pocket stands outside the pool and goes negative by what a funder contributed. Every
entry carries the period and the funder its credits trace back to: credits stay earmarked by
funder as they flow down from the pool to programs and projects, so a charge on a job says which
funder paid. Balances are derived by summing entries, never stored. Corrections are new entries.

The three balances a person reads, for any account's subtree in a period, named for their
pockets and used with these names everywhere (API, CLI, reports):
  spent      charged for work that ran, net of refunds
  held       reserved for admitted or running jobs (what is not charged returns at their end)
  available  awarded and neither held nor spent: what the project can still spend on new jobs

Conservation, per period and funder: what the funder contributed equals the sum of every other
pocket. No pocket but a funder's may ever go negative. The operations below compute the entries
for one movement from the current balances (pure); the service persists them under a lock.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from quotas.accounts import AccountKind, AccountTree
from quotas.errors import BudgetExhausted, InsufficientCredits, InvalidInput, TreeError
from quotas.quantities import Credits


class EntryKind(StrEnum):
    CONTRIBUTION = "contribution"
    """A funder puts credits into the pool (funder -> pool available)."""
    APPROPRIATION = "appropriation"
    """The pool gives credits to a program (pool available -> program available)."""
    AWARD = "award"
    """A program (or organization) awards credits to a project below it."""
    HOLD = "hold"
    """Credits reserved for one job at admission (project available -> project held)."""
    CHARGE = "charge"
    """Actual use by a running or finished job (held -> spent)."""
    RELEASE = "release"
    """The unused part of a hold goes back (held -> available)."""
    REFUND = "refund"
    """A system fault killed the job: its charges go back (spent -> available)."""
    ADJUSTMENT = "adjustment"
    """A person moves credits between an account and its parent, with a reason."""
    REVERSAL = "reversal"
    """Undoes one earlier entry exactly (same amount, pockets swapped)."""
    EXPIRY = "expiry"
    """Unused credits lapse at the end of the period (available -> expired)."""


class Bucket(StrEnum):
    FUNDER = "funder"
    AVAILABLE = "available"
    HELD = "held"
    SPENT = "spent"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True, order=True)
class Pocket:
    """Where credits sit: a funder's source, or one bucket of one account (per job for holds)."""

    bucket: Bucket
    account: str | None = None
    job: str | None = None

    def __post_init__(self) -> None:
        if (self.bucket is Bucket.FUNDER) != (self.account is None):
            raise InvalidInput("a funder pocket has no account and every other pocket has one")
        if self.job is not None and self.bucket not in (Bucket.HELD, Bucket.SPENT):
            raise InvalidInput("only held and spent credits belong to a job")


@dataclass(frozen=True, slots=True)
class Posting:
    """One ledger entry to append: ``amount`` moves from ``source`` to ``target``."""

    kind: EntryKind
    period: str
    funder: str
    source: Pocket
    target: Pocket
    amount: Credits
    actor: str
    reason: str
    allocation: int | None = None
    reverses: int | None = None

    def __post_init__(self) -> None:
        if self.amount.milli <= 0:
            raise InvalidInput(f"a ledger entry moves a positive amount, got {self.amount}")
        if self.source == self.target:
            raise InvalidInput("a ledger entry must move credits between two pockets")
        if not self.actor.strip():
            raise InvalidInput("every ledger entry names its actor")
        if not self.reason.strip():
            raise InvalidInput("every ledger entry gives a reason")

    @property
    def job(self) -> str | None:
        return self.target.job or self.source.job


BalanceKey = tuple[str, str, Pocket]
"""(period, funder, pocket)."""


@dataclass(frozen=True, slots=True)
class AccountBalances:
    """The three balances of an account's subtree in one period."""

    spent: Credits
    held: Credits
    available: Credits

    @property
    def total(self) -> Credits:
        return self.spent + self.held + self.available


@dataclass
class Balances:
    """Balances derived from ledger entries: milli-credits per (period, funder, pocket)."""

    amounts: dict[BalanceKey, int] = field(default_factory=lambda: defaultdict(int))
    _by_pocket: dict[tuple[str, Pocket], dict[str, int]] | None = field(
        default=None, repr=False, compare=False
    )
    """``amounts`` by (period, pocket), then funder; built on first use, kept up to date by
    ``apply``: a cycle's holds draw from thousands of pockets."""
    _by_account: dict[tuple[str, str | None], dict[Bucket, int]] | None = field(
        default=None, repr=False, compare=False
    )
    """``amounts`` summed by (period, account), then bucket; the same way."""

    @classmethod
    def of(cls, postings: Iterable[Posting]) -> Balances:
        balances = cls()
        balances.apply(postings)
        return balances

    @classmethod
    def from_amounts(cls, amounts: Mapping[BalanceKey, int]) -> Balances:
        return cls(defaultdict(int, amounts))

    def copy(self) -> Balances:
        return Balances(defaultdict(int, self.amounts))

    def apply(self, postings: Iterable[Posting]) -> None:
        """Apply postings, refusing any that would leave a non-funder pocket negative."""
        delta: dict[BalanceKey, int] = defaultdict(int)
        for posting in postings:
            source = (posting.period, posting.funder, posting.source)
            delta[source] -= posting.amount.milli
            delta[(posting.period, posting.funder, posting.target)] += posting.amount.milli
            if (
                posting.source.bucket is not Bucket.FUNDER
                and self.amounts.get(source, 0) + delta[source] < 0
            ):
                raise InsufficientCredits(
                    f"{posting.kind} of {posting.amount} would overdraw "
                    f"{describe(posting.source)} ({posting.period}, funder {posting.funder})"
                )
        for key, change in delta.items():  # all or nothing: nothing changed before here
            amount = self.amounts.get(key, 0) + change
            self.amounts[key] = amount
            period, funder, pocket = key
            if self._by_pocket is not None:
                self._by_pocket.setdefault((period, pocket), {})[funder] = amount
            if self._by_account is not None:
                sums = self._by_account.setdefault((period, pocket.account), {})
                sums[pocket.bucket] = sums.get(pocket.bucket, 0) + change

    def get(self, period: str, funder: str, pocket: Pocket) -> int:
        return self.amounts.get((period, funder, pocket), 0)

    def by_funder(self, period: str, pocket: Pocket) -> dict[str, int]:
        """Positive amounts in ``pocket`` per funder, in funder order."""
        if self._by_pocket is None:
            self._by_pocket = {}
            for (key_period, each_funder, key_pocket), each in self.amounts.items():
                self._by_pocket.setdefault((key_period, key_pocket), {})[each_funder] = each
        found = self._by_pocket.get((period, pocket), {})
        return {funder: amount for funder, amount in sorted(found.items()) if amount}

    def total(self, period: str, pocket: Pocket) -> Credits:
        return Credits(sum(self.by_funder(period, pocket).values()))

    def of_account(self, tree: AccountTree, name: str, period: str) -> AccountBalances:
        """Spent, held and available credits of ``name``'s whole subtree."""
        if self._by_account is None:
            self._by_account = {}
            for (key_period, _funder, pocket), amount in self.amounts.items():
                each = self._by_account.setdefault((key_period, pocket.account), {})
                each[pocket.bucket] = each.get(pocket.bucket, 0) + amount
        names = {name, *(account.name for account in tree.descendants(name))}
        sums = dict.fromkeys(Bucket, 0)
        for account in names:
            for bucket, amount in self._by_account.get((period, account), {}).items():
                sums[bucket] += amount
        return AccountBalances(
            spent=Credits(sums[Bucket.SPENT]),
            held=Credits(sums[Bucket.HELD]),
            available=Credits(sums[Bucket.AVAILABLE]),
        )

    def contributed(self, period: str, funder: str) -> Credits:
        return Credits(-self.get(period, funder, Pocket(Bucket.FUNDER)))

    def held_by_job(self, period: str, project: str, job: str) -> dict[str, int]:
        return self.by_funder(period, Pocket(Bucket.HELD, project, job))


def describe(pocket: Pocket) -> str:
    if pocket.bucket is Bucket.FUNDER:
        return "the funder"
    where = f"{pocket.account}'s {pocket.bucket} credits"
    return f"{where} for job {pocket.job}" if pocket.job else where


@dataclass(frozen=True, slots=True)
class Actor:
    """Who makes a movement and why; carried onto every entry."""

    name: str
    reason: str


class Ledger:
    """The posting rules: each method returns the entries for one movement, or raises.

    It reads balances and the tree but changes neither; apply the postings to the balances (and
    append them to the store) to make the movement happen.
    """

    def __init__(self, tree: AccountTree, balances: Balances, period: str) -> None:
        self.tree = tree
        self.balances = balances
        self.period = period

    def _available(self, account: str) -> Pocket:
        self.tree[account]
        return Pocket(Bucket.AVAILABLE, account)

    def _draw(
        self,
        kind: EntryKind,
        source: Pocket,
        target: Pocket,
        amount: Credits,
        actor: Actor,
        funder: str | None = None,
        allocation: int | None = None,
    ) -> list[Posting]:
        """Entries moving ``amount`` out of ``source``, funder by funder (or from one funder)."""
        if amount.milli <= 0:
            raise InvalidInput(f"{kind} amount must be positive, got {amount}")
        available = self.balances.by_funder(self.period, source)
        if funder is not None:
            available = {funder: available.get(funder, 0)}
        have = sum(available.values())
        if have < amount.milli:
            earmark = f" from funder {funder}" if funder else ""
            raise InsufficientCredits(
                f"{kind} of {amount} credits needs more than the {Credits(have)} "
                f"{describe(source)} hold{earmark} in {self.period}"
            )
        postings: list[Posting] = []
        remaining = amount.milli
        for each_funder, milli in available.items():
            take = min(milli, remaining)
            if take <= 0:
                continue
            postings.append(
                Posting(
                    kind,
                    self.period,
                    each_funder,
                    source,
                    target,
                    Credits(take),
                    actor.name,
                    actor.reason,
                    allocation=allocation,
                )
            )
            remaining -= take
            if not remaining:
                break
        return postings

    def contribute(self, funder: str, amount: Credits, actor: Actor) -> list[Posting]:
        if amount.milli <= 0:
            raise InvalidInput(f"a contribution must be positive, got {amount}")
        pool = Pocket(Bucket.AVAILABLE, self.tree.root.name)
        return [
            Posting(
                EntryKind.CONTRIBUTION,
                self.period,
                funder,
                Pocket(Bucket.FUNDER),
                pool,
                amount,
                actor.name,
                actor.reason,
            )
        ]

    def appropriate(
        self, program: str, amount: Credits, actor: Actor, funder: str | None = None
    ) -> list[Posting]:
        if self.tree[program].kind is not AccountKind.PROGRAM:
            raise TreeError(f"{program} is not a program: appropriations go to programs")
        return self._draw(
            EntryKind.APPROPRIATION,
            self._available(self.tree.root.name),
            self._available(program),
            amount,
            actor,
            funder,
        )

    def award(
        self,
        source: str,
        project: str,
        amount: Credits,
        actor: Actor,
        funder: str | None = None,
        allocation: int | None = None,
    ) -> list[Posting]:
        if self.tree[project].kind is not AccountKind.PROJECT:
            raise TreeError(f"{project} is not a project: awards go to projects")
        if not self.tree.is_ancestor(source, project):
            raise TreeError(f"{source} cannot award {project}: it is not above it in the tree")
        return self._draw(
            EntryKind.AWARD,
            self._available(source),
            self._available(project),
            amount,
            actor,
            funder,
            allocation,
        )

    def hold(self, project: str, job: str, amount: Credits, actor: Actor) -> list[Posting]:
        """Reserve credits for a job; refused if any budget cap on the path would be passed."""
        if self.tree[project].kind is not AccountKind.PROJECT:
            raise TreeError(f"{project} is not a project: only projects run jobs")
        for account in self.tree.path(project):
            if account.budget is None:
                continue
            used = self.balances.of_account(self.tree, account.name, self.period)
            left = account.budget - used.spent - used.held
            if left < amount:
                raise BudgetExhausted(
                    f"budget of {account.kind} {account.name}: needs {amount} credits, "
                    f"{max(left, Credits.zero())} left of {account.budget}"
                )
        try:
            return self._draw(
                EntryKind.HOLD,
                self._available(project),
                Pocket(Bucket.HELD, project, job),
                amount,
                actor,
            )
        except InsufficientCredits as error:
            left = self.balances.total(self.period, self._available(project))
            raise BudgetExhausted(
                f"budget of project {project}: needs {amount} credits, {left} available"
            ) from error

    def charge(self, project: str, job: str, amount: Credits, actor: Actor) -> list[Posting]:
        return self._draw(
            EntryKind.CHARGE,
            Pocket(Bucket.HELD, project, job),
            Pocket(Bucket.SPENT, project, job),
            amount,
            actor,
        )

    def release(
        self, project: str, job: str, actor: Actor, amount: Credits | None = None
    ) -> list[Posting]:
        """Give back ``amount`` of a job's hold, or all that is left of it; nothing if none is."""
        held = Pocket(Bucket.HELD, project, job)
        if amount is None:
            amount = self.balances.total(self.period, held)
            if not amount:
                return []
        return self._draw(
            EntryKind.RELEASE,
            held,
            self._available(project),
            amount,
            actor,
        )

    def refund(self, project: str, job: str, amount: Credits, actor: Actor) -> list[Posting]:
        return self._draw(
            EntryKind.REFUND,
            Pocket(Bucket.SPENT, project, job),
            self._available(project),
            amount,
            actor,
        )

    def adjust(
        self, account: str, delta: Credits, actor: Actor, funder: str | None = None
    ) -> list[Posting]:
        """Move credits between ``account`` and its parent (the funder, for the pool)."""
        node = self.tree[account]
        if not delta:
            raise InvalidInput("an adjustment must change something")
        if node.parent is None:
            if funder is None:
                raise InvalidInput("an adjustment of the pool names the funder it corrects")
            parent = Pocket(Bucket.FUNDER)
            if delta.milli > 0:
                return [
                    Posting(
                        EntryKind.ADJUSTMENT,
                        self.period,
                        funder,
                        parent,
                        self._available(account),
                        delta,
                        actor.name,
                        actor.reason,
                    )
                ]
            return self._draw(
                EntryKind.ADJUSTMENT, self._available(account), parent, -delta, actor, funder
            )
        parent = self._available(node.parent)
        own = self._available(account)
        if delta.milli > 0:
            return self._draw(EntryKind.ADJUSTMENT, parent, own, delta, actor, funder)
        return self._draw(EntryKind.ADJUSTMENT, own, parent, -delta, actor, funder)

    def reverse(self, entry_id: int, entry: Posting, actor: Actor) -> list[Posting]:
        if entry.kind is EntryKind.REVERSAL:
            raise InvalidInput("a reversal cannot itself be reversed; post a new entry instead")
        return [
            Posting(
                EntryKind.REVERSAL,
                entry.period,
                entry.funder,
                entry.target,
                entry.source,
                entry.amount,
                actor.name,
                actor.reason,
                allocation=entry.allocation,
                reverses=entry_id,
            )
        ]

    def expire(self, actor: Actor) -> list[Posting]:
        """Every account's unused credits of the period lapse."""
        postings: list[Posting] = []
        for (period, funder, pocket), amount in sorted(
            self.balances.amounts.items(), key=lambda item: (item[0][1], item[0][2])
        ):
            if period == self.period and pocket.bucket is Bucket.AVAILABLE and amount > 0:
                postings.append(
                    Posting(
                        EntryKind.EXPIRY,
                        period,
                        funder,
                        pocket,
                        Pocket(Bucket.EXPIRED, pocket.account),
                        Credits(amount),
                        actor.name,
                        actor.reason,
                    )
                )
        return postings
