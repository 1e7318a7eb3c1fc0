"""Use cases of a program as its managers run it: the program's account tree with entitled shares,
a preview of the entitled shares a change would make, saving the change, adding an account, and
the program's credit burn-down.

A program is read by whoever may read it (``quotas.access``: its managers, admin and auditor);
another principal is told it is "not found". The changes go through the use cases the REST API
calls (``quotas.cases.accounts``: ``change_account``, ``set_budget``, ``add_account``), so a
program manager changes the organizations and projects of their program and an admin anything,
and the refusals say who may. Changing a program's accounts is for program managers and admins
at all: anyone else is refused before the program is looked up, so a refusal tells them nothing
of which programs exist.

Entitled shares are the fair-share engine's (``quotas.fairshare.fair_share``): an account's
share normalised among its siblings, and overall, the product of those down the path from the
pool (the part of the whole pool it is entitled to under contention). A preview computes them
with the very same function on a copy of the tree with the edits, and writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from quotas.access import Principal, Scope
from quotas.accounts import Account, AccountKind, AccountTree
from quotas.cases import accounts as account_cases
from quotas.cases.accounts import (
    NO_BALANCES,
    AccountView,
    _require_manages_account,
    may_add_account,
    readable_in,
    readable_program,
    running_period,
    visible_accounts,
)
from quotas.db.programs import ProgramRepository
from quotas.db.reports import ReportRepository
from quotas.errors import Forbidden, InvalidInput, NotFound
from quotas.fairshare import fair_share
from quotas.funding import Period
from quotas.ledger import AccountBalances
from quotas.quantities import Credits
from quotas.reports import BURN_WINDOW, SECONDS_PER_DAY, Burn, burn
from quotas.service import Books

CHANGEABLE = ("share", "guaranteed_gpus", "borrowing_limit_gpus", "display_name", "may_burst")
"""The fields of an account a tree change may set (``change_account``'s)."""
CHILD_KIND = {
    AccountKind.PROGRAM: AccountKind.ORGANIZATION,
    AccountKind.ORGANIZATION: AccountKind.PROJECT,
}
"""What is added under a program's accounts."""


@dataclass(frozen=True, slots=True)
class Entitlement:
    """An account's entitled share under contention, as fair share computes it."""

    among_siblings: float
    """Its share over the sum of its siblings' shares (0 when they all have none)."""
    overall: float
    """Its part of the whole pool: ``among_siblings`` multiplied down the path from the pool."""


def entitlements(tree: AccountTree) -> dict[str, Entitlement]:
    """Every account's entitled share, from the fair-share engine's normalised shares (they do
    not depend on usage, so none is given)."""
    if not tree.accounts:
        return {}
    nodes = fair_share(tree, {}).nodes
    found: dict[str, Entitlement] = {}
    for account in [tree.root, *tree.descendants(tree.root.name)]:
        among = nodes[account.name].norm_share
        above = found[account.parent].overall if account.parent is not None else 1.0
        found[account.name] = Entitlement(among, above * among)
    return found


@dataclass(frozen=True, slots=True)
class NodeChange:
    """What a change sets on one account: fields ``change_account`` takes, and, when
    ``sets_budget``, its budget in the running period (``None``: no cap). Fields already at
    the value given, and a budget already at it, are no change."""

    fields: Mapping[str, Any] = field(default_factory=dict)
    sets_budget: bool = False
    budget: Credits | None = None


@dataclass(frozen=True, slots=True)
class ProgramNode:
    """One account of a program's tree as of the running period."""

    account: Account
    """With its budget in the running period (none running: no budget)."""
    depth: int
    """0 for the program, 1 for its organizations, 2 for their projects."""
    balances: AccountBalances
    entitled: Entitlement
    may_change: bool
    """Whether the principal may change its share, budget, guarantee and borrowing limit."""
    proposed: Account | None = None
    """In a preview: the account as the change would leave it."""
    proposed_entitled: Entitlement | None = None
    """In a preview: its entitled share after the change."""

    @property
    def changed(self) -> bool:
        return self.proposed is not None and self.proposed != self.account

    @property
    def entitlement_moves(self) -> bool:
        return self.proposed_entitled is not None and self.proposed_entitled != self.entitled


@dataclass(frozen=True, slots=True)
class ProgramTree:
    period: str | None
    """The running period (budgets and balances are of it); ``None`` when none runs."""
    program: Account
    nodes: list[ProgramNode]
    """The program first, then its subtree depth first."""
    may_add_under: list[Account] = field(default_factory=list)
    """The accounts the principal may add an account under (``CHILD_KIND`` says which kind)."""

    @property
    def may_change_any(self) -> bool:
        return any(node.may_change for node in self.nodes)

    @property
    def is_preview(self) -> bool:
        return any(node.proposed is not None for node in self.nodes)


@dataclass(frozen=True, slots=True)
class ProgramList:
    period: str | None
    programs: list[AccountView]


def visible_programs(books: Books, principal: Principal) -> ProgramList:
    """The programs the principal may read (a program manager: theirs; admin and auditor: all),
    each with its budget and balances in the running period."""
    period = running_period(books)
    if period is None:
        tree = books.tree()
        readable = principal.readable_accounts(tree) if tree.accounts else []
        views = [AccountView(tree[name], NO_BALANCES) for name in readable]
    else:
        _, views = visible_accounts(books, principal, period)
    return ProgramList(period, [view for view in views if view.account.kind is AccountKind.PROGRAM])


def program_tree(books: Books, principal: Principal, program: str) -> ProgramTree:
    """The program's accounts with their budgets, guarantees, borrowing limits and balances in
    the running period, their entitled shares, and which of them the principal may change."""
    readable_program(books, principal, program)
    return _program_tree(books, principal, program)


def preview_tree_changes(
    books: Books, principal: Principal, program: str, changes: Mapping[str, NodeChange]
) -> ProgramTree:
    """The program's tree as ``changes`` would leave it, each account with its entitled share
    now and after, computed on a copy of the tree; writes nothing. Refused as saving them would
    be for who may change what and for values no account can have."""
    tree, _ = _check_changes(books, principal, program, changes)
    edited = tree
    for name, change in _effective(tree, changes).items():
        edited = edited.with_account(_apply(edited[name], change))
    return _program_tree(books, principal, program, edited)


def apply_tree_changes(
    books: Books, principal: Principal, program: str, changes: Mapping[str, NodeChange]
) -> list[str]:
    """Make ``changes`` through ``change_account`` and ``set_budget``, in tree order; answers
    the accounts changed. The caller's unit of work holds them all: on a refusal it rolls
    back, and nothing changes."""
    tree, period = _check_changes(books, principal, program, changes)
    effective = _effective(tree, changes)
    for name, change in effective.items():
        if change.fields:
            account_cases.change_account(books, principal, name, change.fields)
        if change.sets_budget and period is not None:
            account_cases.set_budget(books, principal, name, period, change.budget)
    return list(effective)


def add_to_program(
    books: Books, principal: Principal, program: str, name: str, parent: str, **settings: Any
) -> Account:
    """Add an organization under the program, or a project under one of its organizations,
    through ``add_account``; ``settings`` are the new account's other fields."""
    _require_changes_programs(principal)
    readable_program(books, principal, program)
    tree = books.tree()
    above = readable_in(tree, principal, parent)
    if parent != program and not tree.is_ancestor(program, parent):
        raise NotFound(f"no account {parent} in program {program}")
    kind = CHILD_KIND.get(above.kind)
    if kind is None:
        raise InvalidInput(f"{parent} is a project: nothing is added under a project")
    return account_cases.add_account(books, principal, name, kind, parent, **settings)


# -- the burn-down ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BurnDown:
    """A program's uncharged credits (held + available) across the running period: at its
    start, at the end of each day since (in the time zone asked), and now; and where the
    recent burn takes them by the period's end."""

    period: Period
    now: datetime
    remaining: list[tuple[datetime, Credits]]
    burn: Burn
    """Credits per day charged over the last ``BURN_WINDOW``, and the day the uncharged credits
    run out at that rate (the fair-share report's ``burn``)."""
    projection: list[tuple[datetime, Credits]]
    """A straight line from now at ``burn.per_day`` to the period's end, or to zero before it;
    empty without a burn."""

    @property
    def left(self) -> Credits:
        return self.remaining[-1][1]

    @property
    def exhausted_within_period(self) -> bool:
        """Whether the credits run out before the period ends, at the recent burn."""
        last_day = (self.period.ends_at - timedelta(microseconds=1)).astimezone(UTC).date()
        return self.burn.exhausted_on is not None and self.burn.exhausted_on <= last_day


def program_burn_down(
    books: Books, principal: Principal, program: str, zone: tzinfo = UTC
) -> BurnDown | None:
    """The program's burn-down in the running period (``None`` when none runs), read from the
    ledger's entries; days end at midnight in ``zone``."""
    readable_program(books, principal, program)
    name = running_period(books)
    if name is None:
        return None
    period = books.funding.period(name)
    now = books.clock()
    tree = books.tree()
    subtree = [program, *(account.name for account in tree.descendants(program))]
    moves = ProgramRepository(books.session).uncharged_moves(name, subtree)
    remaining = _daily(moves, period.starts_at, now, zone)
    projects = [each.name for each in tree.projects(program)]
    recent = sum(
        item.milli
        for item in ReportRepository(books.session).spend(
            name, projects, after=now - BURN_WINDOW, until=now
        )
    )
    left = remaining[-1][1]
    rate = burn(recent, left, now, BURN_WINDOW)
    return BurnDown(period, now, remaining, rate, _projection(left, rate, now, period.ends_at))


def _daily(
    moves: list[tuple[datetime, int]], start: datetime, now: datetime, zone: tzinfo
) -> list[tuple[datetime, Credits]]:
    """The running total of ``moves`` at ``start``, at each midnight in ``zone`` after it and
    before ``now``, and at ``now``."""
    moments = [start]
    day = start.astimezone(zone).date() + timedelta(days=1)
    while (midnight := _midnight(day, zone)) < now:
        moments.append(midnight)
        day += timedelta(days=1)
    if now > start:
        moments.append(now)
    points: list[tuple[datetime, Credits]] = []
    total = 0
    position = 0
    for moment in moments:
        while position < len(moves) and moves[position][0] <= moment:
            total += moves[position][1]
            position += 1
        points.append((moment, Credits(total)))
    return points


def _midnight(day: date, zone: tzinfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)


def _projection(
    left: Credits, rate: Burn, now: datetime, end: datetime
) -> list[tuple[datetime, Credits]]:
    if rate.per_day.milli <= 0 or now >= end:
        return []
    days_left = (end - now).total_seconds() / SECONDS_PER_DAY
    at_end = left.milli - rate.per_day.milli * days_left
    if at_end >= 0:
        return [(now, left), (end, Credits(math.floor(at_end)))]
    empty_in = max(left.milli, 0) / rate.per_day.milli
    return [(now, left), (now + timedelta(days=empty_in), Credits.zero())]


# -- the rules -------------------------------------------------------------------------------


def _require_changes_programs(principal: Principal) -> None:
    """Only a program manager or an admin changes a program's accounts (which program is asked
    only after: this refusal depends on nothing named, so it gives nothing away)."""
    principal.require(Scope.MANAGE)
    if not (principal.is_admin or principal.programs):
        raise Forbidden(
            f"{principal.user} may not change a program's accounts: "
            "its program managers or an admin may"
        )


def _check_changes(
    books: Books, principal: Principal, program: str, changes: Mapping[str, NodeChange]
) -> tuple[AccountTree, str | None]:
    """The tree with budgets of the running period, once every change names an account of the
    program the principal may change, with fields an account has."""
    _require_changes_programs(principal)
    readable_program(books, principal, program)
    period = running_period(books)
    tree = books.tree(period) if period is not None else books.tree()
    inside = {program, *(account.name for account in tree.descendants(program))}
    for name, change in changes.items():
        readable_in(tree, principal, name)
        if name not in inside:
            raise NotFound(f"no account {name} in program {program}")
        unknown = set(change.fields) - set(CHANGEABLE)
        if unknown:
            raise InvalidInput(f"{', '.join(sorted(unknown))}: not a field a change may set")
        if change.sets_budget and period is None:
            raise InvalidInput("no allocation period is running: budgets are set per period")
    for name in _effective(tree, changes):
        # The refusal saving would meet, in its words, before anything is computed or written.
        _require_manages_account(books, principal, tree, name, f"change account {name}")
    return tree, period


def _effective(tree: AccountTree, changes: Mapping[str, NodeChange]) -> dict[str, NodeChange]:
    """``changes`` less what is already so, in tree order; accounts with nothing to change go."""
    order = [tree.root.name, *(account.name for account in tree.descendants(tree.root.name))]
    found: dict[str, NodeChange] = {}
    for name in order:
        change = changes.get(name)
        if change is None:
            continue
        account = tree[name]
        fields = {
            key: value for key, value in change.fields.items() if getattr(account, key) != value
        }
        sets_budget = change.sets_budget and change.budget != account.budget
        if fields or sets_budget:
            found[name] = NodeChange(fields, sets_budget, change.budget)
    return found


def _apply(account: Account, change: NodeChange) -> Account:
    edited = replace(account, **change.fields)
    return replace(edited, budget=change.budget) if change.sets_budget else edited


def _program_tree(
    books: Books,
    principal: Principal,
    program: str,
    edited: AccountTree | None = None,
) -> ProgramTree:
    period = running_period(books)
    tree = books.tree(period) if period is not None else books.tree()
    names = [program, *(account.name for account in tree.descendants(program))]
    balances = books.balances_of(names, period) if period is not None else {}
    now = entitlements(tree)
    after = entitlements(edited) if edited is not None else {}
    top = len(tree.path(program))
    nodes = [
        ProgramNode(
            account=tree[name],
            depth=len(tree.path(name)) - top,
            balances=balances.get(name, NO_BALANCES),
            entitled=now[name],
            may_change=principal.can_manage_account(tree, name),
            proposed=edited[name] if edited is not None else None,
            proposed_entitled=after.get(name),
        )
        for name in names
    ]
    whole = books.tree()
    may_add_under = [
        tree[name]
        for name in names
        if tree[name].kind in CHILD_KIND
        and principal.allows(Scope.MANAGE)
        and may_add_account(principal, whole, CHILD_KIND[tree[name].kind], name)
    ]
    return ProgramTree(period, tree[program], nodes, may_add_under)
