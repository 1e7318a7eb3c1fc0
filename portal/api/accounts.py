"""The account tree: accounts with their budgets and balances, quota changes, project members
and program managers.

Balances are exact, summed from the ledger for the period asked (default the current one). Who
may see and change what is the use cases' rule (``quotas.cases.accounts``): a read outside the
principal's scope answers 404, a change they may not make 403. Every change goes through
``Books``, which writes the audit entry with the record before and after.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field

from portal.api.common import NO_NUL, Segment, Strict
from portal.deps import PortalDep, PrincipalDep
from portal.problems import Problem
from quotas.access import Role
from quotas.accounts import Account, AccountKind
from quotas.cases import accounts
from quotas.cases.accounts import (
    NO_BALANCES,
    AccountView,
    account_view,
    members,
    visible_accounts,
)
from quotas.ledger import AccountBalances
from quotas.quantities import Credits

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
MAY_BURST = (
    "A project's: whether its jobs may burst to cloud capacity (a cluster at a domestic or "
    "foreign cloud site) when the pool's clusters cannot start them in time; set by an admin "
    "or the program's manager"
)


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
    may_burst: bool = Field(description=MAY_BURST)
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
    may_burst: bool | None = Field(default=None, description=MAY_BURST)


class NewAccount(Strict):
    name: AccountName
    kind: AccountKind
    parent: str | None = Field(default=None, max_length=64)
    share: int = Field(default=1, ge=0, le=1_000_000)
    display_name: str = Field(default="", max_length=200)
    guaranteed_gpus: Gpus = 0
    borrowing_limit_gpus: Gpus | None = None
    may_burst: bool = Field(default=False, description=MAY_BURST)


class BudgetChange(Strict):
    period: str = Field(min_length=1, max_length=64)
    budget: CreditsText | None = Field(description="None: no cap")


class MemberIn(Strict):
    user: str = Field(min_length=1, max_length=64)
    role: Literal["researcher", "pi"]


class MemberOut(Strict):
    user: str
    role: str


class MemberRole(Strict):
    role: Literal["researcher", "pi"]


class ManagerOut(Strict):
    program: str
    user: str


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
        may_burst=account.may_burst,
        balances=balances_out(balances),
    )


def view_out(view: AccountView) -> AccountOut:
    return account_out(view.account, view.balances)


@router.get("/accounts", summary="Accounts you may see, with budgets and balances of a period")
def list_accounts(
    portal: PortalDep, principal: PrincipalDep, period: PeriodQuery = None
) -> AccountsOut:
    with portal.books() as books:
        name, views = visible_accounts(books, principal, period)
    return AccountsOut(period=name, accounts=[view_out(view) for view in views])


@router.post("/accounts", status_code=201, summary="Add an account to the tree")
def add_account(body: NewAccount, portal: PortalDep, principal: PrincipalDep) -> AccountOut:
    settings = body.model_dump(exclude={"name", "kind", "parent"})
    with portal.books() as books:
        account = accounts.add_account(
            books, principal, body.name, body.kind, body.parent, **settings
        )
    return account_out(account, NO_BALANCES)


@router.get("/accounts/{name}", summary="One account with its budget and balances of a period")
def get_account(
    name: Segment, portal: PortalDep, principal: PrincipalDep, period: PeriodQuery = None
) -> AccountOut:
    with portal.books() as books:
        return view_out(account_view(books, principal, name, period))


@router.patch(
    "/accounts/{name}",
    summary="Change an account's share, guarantee or limits, or whether a project may burst",
)
def change_account(
    name: Segment, body: AccountChange, portal: PortalDep, principal: PrincipalDep
) -> AccountOut:
    changes = body.model_dump(exclude_unset=True)
    for field in ("share", "guaranteed_gpus", "display_name", "may_burst"):
        if field in changes and changes[field] is None:
            raise Problem(422, f"{field} cannot be null")
    if not changes:
        raise Problem(422, "name at least one of " + ", ".join(AccountChange.model_fields))
    with portal.books() as books:
        return view_out(accounts.change_account(books, principal, name, changes))


@router.put("/accounts/{name}/budget", summary="Set or lift an account's budget for a period")
def set_budget(
    name: Segment, body: BudgetChange, portal: PortalDep, principal: PrincipalDep
) -> AccountOut:
    budget = credits_of(body.budget, "budget") if body.budget is not None else None
    with portal.books() as books:
        return view_out(accounts.set_budget(books, principal, name, body.period, budget))


@router.get("/accounts/{project}/members", summary="A project's members and their roles")
def list_members(project: Segment, portal: PortalDep, principal: PrincipalDep) -> list[MemberOut]:
    with portal.books() as books:
        found = members(books, principal, project)
    return [MemberOut(user=member.user, role=member.role) for member in found]


@router.post(
    "/accounts/{project}/members", status_code=201, summary="Add a researcher or pi to a project"
)
def add_member(
    project: Segment, body: MemberIn, portal: PortalDep, principal: PrincipalDep
) -> MemberOut:
    with portal.books() as books:
        accounts.add_member(books, principal, project, body.user, Role(body.role))
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
        accounts.remove_member(books, principal, project, user)
    return Response(status_code=204)


@router.put(
    "/accounts/{project}/members/{user}",
    summary="Make someone a researcher or pi of a project (added if not a member)",
)
def set_member_role(
    project: Segment, user: Segment, body: MemberRole, portal: PortalDep, principal: PrincipalDep
) -> MemberOut:
    with portal.books() as books:
        accounts.set_member_role(books, principal, project, user, Role(body.role))
    return MemberOut(user=user, role=body.role)


@router.get("/accounts/{program}/managers", summary="A program's managers")
def list_program_managers(
    program: Segment, portal: PortalDep, principal: PrincipalDep
) -> list[ManagerOut]:
    with portal.books() as books:
        found = accounts.program_managers(books, principal, program)
    return [ManagerOut(program=program, user=user) for user in found]


@router.put("/accounts/{program}/managers/{user}", summary="Appoint a program manager (admin)")
def add_program_manager(
    program: Segment, user: Segment, portal: PortalDep, principal: PrincipalDep
) -> ManagerOut:
    with portal.books() as books:
        accounts.add_program_manager(books, principal, program, user)
    return ManagerOut(program=program, user=user)


@router.delete(
    "/accounts/{program}/managers/{user}",
    status_code=204,
    response_class=Response,
    summary="Remove a program manager (admin)",
)
def remove_program_manager(
    program: Segment, user: Segment, portal: PortalDep, principal: PrincipalDep
) -> Response:
    with portal.books() as books:
        accounts.remove_program_manager(books, principal, program, user)
    return Response(status_code=204)
