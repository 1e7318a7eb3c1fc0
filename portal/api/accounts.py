"""The account tree: accounts with their budgets and balances, quota changes, project members.

Balances are exact, summed from the ledger for the period asked (default the current one). A
read outside the principal's scope answers 404; a change they may not make answers 403. Every
change goes through ``Books``, which writes the audit entry with the record before and after.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field

from portal.api.common import NO_NUL, Segment, Strict
from portal.deps import PortalDep, PrincipalDep, require, require_scope
from portal.problems import Problem
from quotas.access import Principal, Role, Scope
from quotas.accounts import Account, AccountKind, AccountTree
from quotas.errors import NotFound
from quotas.ledger import AccountBalances
from quotas.quantities import Credits
from quotas.service import Books

router = APIRouter(tags=["accounts"])

MAX_CREDITS_DIGITS = 12
CreditsText = Annotated[
    str,
    Field(
        pattern=rf"^\d{{1,{MAX_CREDITS_DIGITS}}}(\.\d{{1,3}})?$",
        max_length=MAX_CREDITS_DIGITS + 4,
        description='Credits as a decimal string, e.g. "1234.5" (at most three decimals)',
        examples=["1234.5"],
    ),
]
AccountName = Annotated[str, Field(min_length=1, max_length=64, examples=["kaist-nlp"])]
PeriodQuery = Annotated[
    str | None,
    Query(max_length=64, pattern=NO_NUL, description="Period (default: the current one)"),
]
Gpus = Annotated[int, Field(ge=0, le=1_000_000)]
NOTHING = AccountBalances(Credits.zero(), Credits.zero(), Credits.zero())


def credits_of(text: str, what: str) -> Credits:
    """Credits from a decimal string, or 422 naming the field."""
    try:
        return Credits.of(text)
    except ValueError as error:
        raise Problem(422, f"{what}: {error}") from error


class BalancesOut(Strict):
    spent: str = Field(description="Credits charged for work that ran, net of refunds")
    held: str = Field(description="Credits held for admitted or running jobs")
    available: str = Field(
        description="Credits awarded and neither held nor spent: what new jobs can still use"
    )


class AccountOut(Strict):
    name: str
    kind: AccountKind
    parent: str | None
    display_name: str
    share: int
    budget: str | None = Field(description="Credit cap of the subtree in the period; none: no cap")
    guaranteed_gpus: int
    borrowing_limit_gpus: int | None = Field(description="None: may borrow without limit")
    balances: BalancesOut


class AccountsOut(Strict):
    period: str
    accounts: list[AccountOut]


class AccountChange(Strict):
    """Only the fields sent change; ``borrowing_limit_gpus: null`` lifts the limit."""

    share: int | None = Field(default=None, ge=0, le=1_000_000)
    guaranteed_gpus: Gpus | None = None
    borrowing_limit_gpus: Gpus | None = None
    display_name: str | None = Field(default=None, max_length=200)


class NewAccount(Strict):
    name: AccountName
    kind: AccountKind
    parent: str | None = Field(default=None, max_length=64)
    share: int = Field(default=1, ge=0, le=1_000_000)
    display_name: str = Field(default="", max_length=200)
    guaranteed_gpus: Gpus = 0
    borrowing_limit_gpus: Gpus | None = None


class BudgetChange(Strict):
    period: str = Field(min_length=1, max_length=64)
    budget: CreditsText | None = Field(description="None: no cap")


class MemberIn(Strict):
    user: str = Field(min_length=1, max_length=64)
    role: Literal["researcher", "pi"]


class MemberOut(Strict):
    user: str
    role: str


def balances_out(balances: AccountBalances) -> BalancesOut:
    return BalancesOut(
        spent=str(balances.spent),
        held=str(balances.held),
        available=str(balances.available),
    )


def account_out(account: Account, balances: AccountBalances) -> AccountOut:
    return AccountOut(
        name=account.name,
        kind=account.kind,
        parent=account.parent,
        display_name=account.display_name,
        share=account.share,
        budget=str(account.budget) if account.budget is not None else None,
        guaranteed_gpus=account.guaranteed_gpus,
        borrowing_limit_gpus=account.borrowing_limit_gpus,
        balances=balances_out(balances),
    )


def readable_account(tree: AccountTree, principal: Principal, name: str) -> Account:
    """The account, or "not found" when it is not this principal's to see (names do not leak)."""
    if name not in tree or not principal.can_read_account(tree, name):
        raise NotFound(f"no account {name}")
    return tree[name]


def period_name(books: Books, period: str | None) -> str:
    if period is None:
        return books.current_period().name
    books.funding.period(period)
    return period


def one_account(books: Books, name: str, period: str | None) -> AccountOut:
    """The account with its budget and balances in ``period`` (none: no budget, nothing)."""
    if period is None:
        return account_out(books.tree()[name], NOTHING)
    return account_out(books.tree(period)[name], books.balances(name, period))


def current_period(books: Books) -> str | None:
    """The period running now, if one is."""
    now = books.clock()
    return next((each.name for each in books.funding.periods() if each.contains(now)), None)


def may_add_account(
    principal: Principal, tree: AccountTree, kind: AccountKind, parent: str
) -> bool:
    """Admin anywhere; a program manager adds organizations and projects inside their program."""
    if principal.is_admin:
        return True
    return kind in (AccountKind.ORGANIZATION, AccountKind.PROJECT) and (
        principal.manages_program_of(tree, parent)
    )


@router.get("/accounts", summary="Accounts you may see, with budgets and balances of a period")
def list_accounts(
    portal: PortalDep, principal: PrincipalDep, period: PeriodQuery = None
) -> AccountsOut:
    with portal.books() as books:
        name = period_name(books, period)
        tree = books.tree(name)
        readable = principal.readable_accounts(tree) if tree.accounts else []
        balances = books.balances_of(readable, name)
        accounts = [account_out(tree[each], balances[each]) for each in readable]
    return AccountsOut(period=name, accounts=accounts)


@router.post("/accounts", status_code=201, summary="Add an account to the tree")
def add_account(body: NewAccount, portal: PortalDep, principal: PrincipalDep) -> AccountOut:
    with portal.books() as books:
        tree = books.tree()
        if body.parent is not None:
            readable_account(tree, principal, body.parent)
        require_scope(principal, Scope.MANAGE)
        if body.parent is None:
            allowed = principal.is_admin
        else:
            allowed = may_add_account(principal, tree, body.kind, body.parent)
        require(principal, allowed, f"add {body.kind} {body.name} under {body.parent}")
        account = Account(
            name=body.name,
            kind=body.kind,
            parent=body.parent,
            share=body.share,
            guaranteed_gpus=body.guaranteed_gpus,
            borrowing_limit_gpus=body.borrowing_limit_gpus,
            display_name=body.display_name,
        )
        books.add_account(account, actor=principal.user)
    return account_out(account, NOTHING)


@router.get("/accounts/{name}", summary="One account with its budget and balances of a period")
def get_account(
    name: Segment, portal: PortalDep, principal: PrincipalDep, period: PeriodQuery = None
) -> AccountOut:
    with portal.books() as books:
        readable_account(books.tree(), principal, name)
        return one_account(books, name, period_name(books, period))


@router.patch("/accounts/{name}", summary="Change an account's share, guarantee or limits")
def change_account(
    name: Segment, body: AccountChange, portal: PortalDep, principal: PrincipalDep
) -> AccountOut:
    changes = body.model_dump(exclude_unset=True)
    for field in ("share", "guaranteed_gpus", "display_name"):
        if field in changes and changes[field] is None:
            raise Problem(422, f"{field} cannot be null")
    if not changes:
        raise Problem(422, "name at least one of " + ", ".join(AccountChange.model_fields))
    with portal.books() as books:
        tree = books.tree()
        account = readable_account(tree, principal, name)
        require_scope(principal, Scope.MANAGE)
        require(principal, principal.can_manage_account(tree, name), f"change account {name}")
        books.update_account(replace(account, **changes), actor=principal.user)
        return one_account(books, name, current_period(books))


@router.put("/accounts/{name}/budget", summary="Set or lift an account's budget for a period")
def set_budget(
    name: Segment, body: BudgetChange, portal: PortalDep, principal: PrincipalDep
) -> AccountOut:
    budget = credits_of(body.budget, "budget") if body.budget is not None else None
    with portal.books() as books:
        tree = books.tree()
        readable_account(tree, principal, name)
        require_scope(principal, Scope.MANAGE)
        require(principal, principal.can_manage_account(tree, name), f"set the budget of {name}")
        books.set_budget(name, body.period, budget, actor=principal.user)
        return one_account(books, name, body.period)


def readable_project(books: Books, principal: Principal, project: str) -> Account:
    account = readable_account(books.tree(), principal, project)
    if account.kind is not AccountKind.PROJECT:
        raise Problem(422, f"{project} is {_a(account.kind)}; only projects have members")
    return account


def _a(kind: AccountKind) -> str:
    return f"an {kind}" if kind is AccountKind.ORGANIZATION else f"a {kind}"


@router.get("/accounts/{project}/members", summary="A project's members and their roles")
def list_members(project: Segment, portal: PortalDep, principal: PrincipalDep) -> list[MemberOut]:
    with portal.books() as books:
        readable_project(books, principal, project)
        members = books.people.members_of(project)
    return [MemberOut(user=member.user, role=member.role) for member in members]


@router.post(
    "/accounts/{project}/members", status_code=201, summary="Add a researcher or pi to a project"
)
def add_member(
    project: Segment, body: MemberIn, portal: PortalDep, principal: PrincipalDep
) -> MemberOut:
    with portal.books() as books:
        readable_project(books, principal, project)
        require_scope(principal, Scope.MANAGE)
        require(
            principal,
            principal.can_manage_members(books.tree(), project),
            f"manage the members of {project}",
        )
        books.add_member(body.user, project, Role(body.role), actor=principal.user)
    return MemberOut(user=body.user, role=body.role)


@router.delete(
    "/accounts/{project}/members/{user}",
    status_code=204,
    response_class=Response,
    summary="Remove a member from a project",
)
def remove_member(
    project: Segment, user: Segment, portal: PortalDep, principal: PrincipalDep
) -> Response:
    with portal.books() as books:
        readable_project(books, principal, project)
        require_scope(principal, Scope.MANAGE)
        require(
            principal,
            principal.can_manage_members(books.tree(), project),
            f"manage the members of {project}",
        )
        books.remove_member(user, project, actor=principal.user)
    return Response(status_code=204)
