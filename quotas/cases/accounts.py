"""Use cases of the account tree: accounts with their balances, quota changes, members and
program managers.

A read outside the principal's scope is "not found"; a change needs the ``manage`` scope and
the role for it: an admin anywhere, a program manager inside their programs (organizations and
projects, never a program or the pool), and for members also the project's pi. Only an admin
appoints and removes program managers. A refusal says who may act instead, naming a program's
managers only to someone who may read the program.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, timedelta, tzinfo
from typing import Any

from quotas.access import Principal, Role, Scope
from quotas.accounts import Account, AccountKind, AccountTree, with_article
from quotas.cases import require
from quotas.db.repositories import Member
from quotas.errors import Forbidden, InvalidInput, NotFound
from quotas.funding import Period
from quotas.ledger import AccountBalances, Bucket, EntryKind
from quotas.quantities import Credits
from quotas.service import Books

NO_BALANCES = AccountBalances(Credits.zero(), Credits.zero(), Credits.zero())
"""The balances of an account outside any period, or just added: nothing spent, held or left."""


@dataclass(frozen=True, slots=True)
class AccountView:
    """An account as of a period (its budget there) with its subtree's balances in it."""

    account: Account
    balances: AccountBalances


def readable_in(tree: AccountTree, principal: Principal, name: str) -> Account:
    """The account of ``tree``, or "not found" when it is not this principal's to see."""
    if name not in tree or not principal.can_read_account(tree, name):
        raise NotFound(f"no account {name}")
    return tree[name]


def period_name(books: Books, period: str | None) -> str:
    """``period`` once it is known to exist, or the one running now."""
    if period is None:
        return books.current_period().name
    books.funding.period(period)
    return period


def running_period(books: Books) -> str | None:
    """The period running now, if one is."""
    now = books.clock()
    return next((each.name for each in books.funding.periods() if each.contains(now)), None)


def _view(books: Books, name: str, period: str | None) -> AccountView:
    """The account with its budget and balances in ``period`` (none: no budget, nothing)."""
    if period is None:
        return AccountView(books.tree()[name], NO_BALANCES)
    return AccountView(books.tree(period)[name], books.balances(name, period))


def visible_accounts(
    books: Books, principal: Principal, period: str | None = None
) -> tuple[str, list[AccountView]]:
    """The period (default: the current one) and the accounts the principal may see, in tree
    order, each with its budget and balances in that period."""
    name = period_name(books, period)
    tree = books.tree(name)
    readable = principal.readable_accounts(tree) if tree.accounts else []
    balances = books.balances_of(readable, name)
    return name, [AccountView(tree[each], balances[each]) for each in readable]


def account_view(
    books: Books, principal: Principal, name: str, period: str | None = None
) -> AccountView:
    """One account the principal may see, with its budget and balances in ``period``."""
    readable_in(books.tree(), principal, name)
    return _view(books, name, period_name(books, period))


SPENDING_KINDS = (EntryKind.CHARGE, EntryKind.REFUND, EntryKind.REVERSAL)
"""The entries that move credits into or out of spent."""
ENTRIES_PAGE = 5_000


@dataclass(frozen=True, slots=True)
class DaySpend:
    day: date
    spent: Credits
    """What the account spent that day, net: charges less refunds, and reversals of either."""


@dataclass(frozen=True, slots=True)
class Spending:
    """An account's spending in a period, day by day from its first day to today (or its last,
    once it is over); no days for a period still to come."""

    period: Period
    days: list[DaySpend]


def spending_per_day(
    books: Books,
    principal: Principal,
    name: str,
    period: str | None = None,
    zone: tzinfo = UTC,
) -> Spending:
    """What the account (its own spent credits: a project's) spent per day in ``period``
    (default: the current one), read from its ledger entries; days are ``zone``'s."""
    readable_in(books.tree(), principal, name)
    found = books.funding.period(period_name(books, period))
    net: dict[date, int] = defaultdict(int)
    after = 0
    while True:
        entries = books.ledger.entries(
            period=found.name,
            account=name,
            kinds=SPENDING_KINDS,
            after_id=after,
            limit=ENTRIES_PAGE,
        )
        for entry in entries:
            posting, day = entry.posting, entry.at.astimezone(zone).date()
            if posting.target.bucket is Bucket.SPENT and posting.target.account == name:
                net[day] += posting.amount.milli
            if posting.source.bucket is Bucket.SPENT and posting.source.account == name:
                net[day] -= posting.amount.milli
        if len(entries) < ENTRIES_PAGE:
            break
        after = entries[-1].id
    now = books.clock()
    if now < found.starts_at:
        return Spending(found, [])
    first = found.starts_at.astimezone(zone).date()
    last = min(now, found.ends_at - timedelta(microseconds=1)).astimezone(zone).date()
    last = max([last, *net])
    days = [first + timedelta(days=offset) for offset in range((last - first).days + 1)]
    return Spending(found, [DaySpend(day, Credits(net.get(day, 0))) for day in days])


def may_add_account(
    principal: Principal, tree: AccountTree, kind: AccountKind, parent: str | None
) -> bool:
    """Admin anywhere (the only one who adds a root); a program manager adds organizations and
    projects inside their program."""
    if principal.is_admin:
        return True
    if parent is None:
        return False
    return kind in (AccountKind.ORGANIZATION, AccountKind.PROJECT) and (
        principal.manages_program_of(tree, parent)
    )


def add_account(
    books: Books,
    principal: Principal,
    name: str,
    kind: AccountKind,
    parent: str | None,
    **settings: Any,
) -> Account:
    """Add an account of ``kind`` under ``parent``, which the principal must be able to see;
    ``settings`` are its other fields (share, display name, guaranteed and borrowing limit
    GPUs, whether a project may burst), checked only once the principal may add it."""
    tree = books.tree()
    if parent is not None:
        readable_in(tree, principal, parent)
    principal.require(Scope.MANAGE)
    require(
        principal,
        may_add_account(principal, tree, kind, parent),
        f"add {kind} {name} under {parent}",
    )
    account = Account(name=name, kind=kind, parent=parent, **settings)
    books.add_account(account, actor=principal.user)
    return account


def change_account(
    books: Books, principal: Principal, name: str, changes: Mapping[str, Any]
) -> AccountView:
    """Change the account's fields named in ``changes`` (share, guaranteed and borrowing limit
    GPUs, display name, whether a project may burst); answers the account as of the period
    running now."""
    tree = books.tree()
    account = readable_in(tree, principal, name)
    principal.require(Scope.MANAGE)
    _require_manages_account(books, principal, tree, name, f"change account {name}")
    books.update_account(replace(account, **changes), actor=principal.user)
    return _view(books, name, running_period(books))


def set_budget(
    books: Books, principal: Principal, name: str, period: str, budget: Credits | None
) -> AccountView:
    """Cap the credits the account's subtree may spend in ``period`` (``None`` lifts the cap)."""
    tree = books.tree()
    readable_in(tree, principal, name)
    principal.require(Scope.MANAGE)
    _require_manages_account(books, principal, tree, name, f"set the budget of {name}")
    books.set_budget(name, period, budget, actor=principal.user)
    return _view(books, name, period)


def _program_of(tree: AccountTree, account: str) -> str | None:
    return next(
        (node.name for node in tree.path(account) if node.kind is AccountKind.PROGRAM), None
    )


def program_managers_in_words(
    books: Books, principal: Principal, tree: AccountTree, account: str
) -> str:
    """The managers of ``account``'s program, by name only to someone who may read it."""
    program = _program_of(tree, account)
    if program is None or not principal.can_read_account(tree, program):
        return "the managers of its program"
    names = books.people.program_managers(program)
    if not names:
        return f"the managers of {program} (it has none)"
    return f"the managers of {program} ({', '.join(names)})"


def _require_manages_account(
    books: Books, principal: Principal, tree: AccountTree, name: str, what: str
) -> None:
    """Refuse, saying who may, unless the principal may change account ``name``."""
    if principal.can_manage_account(tree, name):
        return
    if tree[name].kind in (AccountKind.POOL, AccountKind.PROGRAM):
        admins = books.roles.holders(Role.ADMIN)
        raise Forbidden(
            f"{principal.user} may not {what}: programs and the pool are changed by admins"
            + (f" ({', '.join(admins)})" if admins else "")
        )
    raise Forbidden(
        f"{principal.user} may not {what}: "
        f"{program_managers_in_words(books, principal, tree, name)} or an admin may"
    )


def readable_project(books: Books, principal: Principal, project: str) -> Account:
    """The project the principal may see; another kind of account has no members (422)."""
    account = readable_in(books.tree(), principal, project)
    if account.kind is not AccountKind.PROJECT:
        raise InvalidInput(f"{project} is {with_article(account.kind)}; only projects have members")
    return account


def members(books: Books, principal: Principal, project: str) -> list[Member]:
    """The members of a project the principal may see, by name."""
    readable_project(books, principal, project)
    return books.people.members_of(project)


def _member_refusal(books: Books, principal: Principal, project: str) -> str | None:
    """Why the principal may not manage the project's members, saying who may; ``None``."""
    tree = books.tree()
    if principal.can_manage_members(tree, project):
        return None
    pis = [member.user for member in books.people.members_of(project) if member.role == Role.PI]
    who = [f"its pi ({', '.join(pis)})"] if pis else []
    who.append(program_managers_in_words(books, principal, tree, project))
    return (
        f"{principal.user} may not manage the members of {project}: "
        f"{', '.join(who)} or an admin may"
    )


def member_refusal(books: Books, principal: Principal, project: str) -> str | None:
    """Why the principal may not add, remove or change the members of a project they may see,
    in the refusal's words (naming who may); ``None`` when they may."""
    readable_project(books, principal, project)
    return _member_refusal(books, principal, project)


def _check_manages_members(books: Books, principal: Principal, project: str) -> None:
    readable_project(books, principal, project)
    principal.require(Scope.MANAGE)
    refusal = _member_refusal(books, principal, project)
    if refusal is not None:
        raise Forbidden(refusal)


def add_member(books: Books, principal: Principal, project: str, user: str, role: Role) -> None:
    """Make ``user`` a researcher or pi of the project: its pi, its program's manager, an admin."""
    _check_manages_members(books, principal, project)
    books.add_member(user, project, role, actor=principal.user)


def remove_member(books: Books, principal: Principal, project: str, user: str) -> None:
    """Take ``user`` out of the project, on the same terms as adding one."""
    _check_manages_members(books, principal, project)
    books.remove_member(user, project, actor=principal.user)


def set_member_role(
    books: Books, principal: Principal, project: str, user: str, role: Role
) -> Role | None:
    """Make ``user`` a researcher or pi of the project, adding them if they are not a member,
    on the same terms as adding one; answers the role they held before (``None``: none)."""
    _check_manages_members(books, principal, project)
    held = {member.user: member.role for member in books.people.members_of(project)}
    if user not in held:
        books.add_member(user, project, role, actor=principal.user)
        return None
    books.set_member_role(user, project, role, actor=principal.user)
    return Role(held[user])


def readable_program(books: Books, principal: Principal, program: str) -> Account:
    """The program the principal may see; another kind of account has no managers (422)."""
    account = readable_in(books.tree(), principal, program)
    if account.kind is not AccountKind.PROGRAM:
        raise InvalidInput(
            f"{program} is {with_article(account.kind)}; only programs have program managers"
        )
    return account


def program_managers(books: Books, principal: Principal, program: str) -> list[str]:
    """The managers of a program the principal may see, by name."""
    readable_program(books, principal, program)
    return books.people.program_managers(program)


def _check_appoints_managers(books: Books, principal: Principal, program: str, what: str) -> None:
    readable_program(books, principal, program)
    principal.require(Scope.MANAGE)
    if not principal.can_administer():
        admins = books.roles.holders(Role.ADMIN)
        raise Forbidden(
            f"{principal.user} may not {what}: admins appoint program managers"
            + (f" ({', '.join(admins)})" if admins else "")
        )


def add_program_manager(books: Books, principal: Principal, program: str, user: str) -> bool:
    """Make ``user`` a manager of the program (admin); whether they were not one already."""
    _check_appoints_managers(books, principal, program, f"appoint managers of {program}")
    if user in books.people.program_managers(program):
        return False
    books.add_program_manager(user, program, actor=principal.user)
    return True


def remove_program_manager(books: Books, principal: Principal, program: str, user: str) -> None:
    """Take ``user``'s management of the program away (admin)."""
    _check_appoints_managers(books, principal, program, f"remove managers of {program}")
    books.remove_program_manager(user, program, actor=principal.user)
