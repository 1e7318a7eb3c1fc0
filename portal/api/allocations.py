"""Allocation requests: a pi asks, a program manager approves, adjusts or declines, tranches.

A request starts as a draft, is submitted (and approved at once while the project's
auto-approved credits in the period stay within the program's tier), then reviewed by a manager
of its program or an admin, never by someone who made it or belongs to its project. An award
reaches the ledger only through ``Books``: the first tranche on approval, later ones when a
reviewer releases them. Who may review is the use case's rule (``Books.review``), not this
module's. Reads are scoped to the projects a principal may see (404 outside them); the actions
need the ``manage`` scope.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import Field

from portal.api.accounts import CreditsText, credits_of
from portal.api.common import NO_NUL, Limit, Offset, Page, Strict
from portal.deps import PortalDep, PrincipalDep, require, require_scope
from portal.problems import Problem
from quotas.access import Principal, Scope
from quotas.accounts import AccountKind
from quotas.allocations import AllocationRequest, RequestState
from quotas.db.repositories import StoredRequest
from quotas.errors import NotFound
from quotas.service import Books

router = APIRouter(tags=["allocations"])

RequestId = Annotated[int, Path(ge=1, le=2**31 - 1)]
FlavorName = Annotated[str, Field(min_length=1, max_length=64)]


class NewRequest(Strict):
    project: str = Field(min_length=1, max_length=64)
    period: str | None = Field(
        default=None, max_length=64, description="Default: the current period"
    )
    requested: CreditsText
    justification: str = Field(min_length=1, max_length=20_000)
    flavors: list[FlavorName] = Field(default=[], max_length=32)
    tranche_percents: list[Annotated[int, Field(ge=1, le=100)]] = Field(
        default=[100], min_length=1, max_length=12, description="How the award is released"
    )


class Review(Strict):
    decision: Literal["approve", "adjust", "decline"]
    reason: str = Field(min_length=1, max_length=10_000)
    awarded: CreditsText | None = Field(default=None, description="Only with adjust")


class TrancheOut(Strict):
    seq: int
    amount: str
    released_at: datetime | None


class RequestOut(Strict):
    id: int
    project: str
    period: str
    state: RequestState
    requested: str
    awarded: str | None
    justification: str
    flavors: list[str]
    tranche_percents: list[int]
    reviewer: str | None
    reason: str | None
    created_by: str
    created_at: datetime
    updated_at: datetime


class RequestDetail(RequestOut):
    tranches: list[TrancheOut]


def request_out(stored: StoredRequest) -> RequestOut:
    request = stored.request
    return RequestOut(
        id=stored.id,
        project=request.project,
        period=request.period,
        state=request.state,
        requested=str(request.requested),
        awarded=str(request.awarded) if request.awarded is not None else None,
        justification=request.justification,
        flavors=list(request.flavors),
        tranche_percents=list(request.tranche_percents),
        reviewer=request.reviewer,
        reason=request.reason,
        created_by=stored.created_by,
        created_at=stored.created_at,
        updated_at=stored.updated_at,
    )


def request_detail(books: Books, request_id: int) -> RequestDetail:
    stored = books.allocations.stored(request_id)
    tranches = [
        TrancheOut(seq=seq, amount=str(amount), released_at=released)
        for seq, amount, released in books.allocations.tranches(request_id)
    ]
    return RequestDetail(**request_out(stored).model_dump(), tranches=tranches)


def readable_request(books: Books, principal: Principal, request_id: int) -> StoredRequest:
    """The request, or "not found" when its project is not this principal's to see."""
    stored = books.allocations.stored(request_id)
    if not principal.can_read_account(books.tree(), stored.request.project):
        raise NotFound(f"no allocation request {request_id}")
    return stored


@router.get("/allocation-requests", summary="Allocation requests you may see, newest first")
def list_requests(
    portal: PortalDep,
    principal: PrincipalDep,
    limit: Limit = 50,
    offset: Offset = 0,
    project: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    state: Annotated[list[RequestState] | None, Query()] = None,
) -> Page[RequestOut]:
    with portal.books() as books:
        tree = books.tree()
        projects = principal.readable_projects(tree) if tree.accounts else []
        if project is not None:
            if project not in tree or not principal.can_read_account(tree, project):
                raise NotFound(f"no project {project}")
            projects = [project, *(node.name for node in tree.descendants(project))]
        found, total = books.allocations.search(
            projects=projects, states=state, limit=limit, offset=offset
        )
    return Page[RequestOut](
        items=[request_out(each) for each in found], total=total, limit=limit, offset=offset
    )


@router.post("/allocation-requests", status_code=201, summary="Draft an allocation request")
def create_request(body: NewRequest, portal: PortalDep, principal: PrincipalDep) -> RequestDetail:
    requested = credits_of(body.requested, "requested")
    with portal.books() as books:
        tree = books.tree()
        if body.project not in tree or not principal.can_read_account(tree, body.project):
            raise NotFound(f"no project {body.project}")
        require_scope(principal, Scope.MANAGE)
        require(
            principal,
            principal.can_request_allocation(body.project),
            f"request an allocation for {body.project}",
        )
        if tree[body.project].kind is not AccountKind.PROJECT:
            raise Problem(422, f"{body.project} is a {tree[body.project].kind}, not a project")
        period = body.period or books.current_period().name
        request = AllocationRequest(
            project=body.project,
            period=period,
            requested=requested,
            justification=body.justification,
            flavors=tuple(body.flavors),
            tranche_percents=tuple(body.tranche_percents),
        )
        request_id = books.request_allocation(request, actor=principal.user)
        return request_detail(books, request_id)


@router.get("/allocation-requests/{request_id}", summary="One request with its tranches")
def get_request(request_id: RequestId, portal: PortalDep, principal: PrincipalDep) -> RequestDetail:
    with portal.books() as books:
        readable_request(books, principal, request_id)
        return request_detail(books, request_id)


@router.post(
    "/allocation-requests/{request_id}/submit",
    summary="Submit a draft; within the program's auto-approval tier it is approved at once",
)
def submit_request(
    request_id: RequestId, portal: PortalDep, principal: PrincipalDep
) -> RequestDetail:
    with portal.books() as books:
        project = readable_request(books, principal, request_id).request.project
        require_scope(principal, Scope.MANAGE)
        require(
            principal,
            principal.can_request_allocation(project),
            f"submit allocation request {request_id}",
        )
        books.submit_request(request_id, actor=principal.user)
        return request_detail(books, request_id)


@router.post(
    "/allocation-requests/{request_id}/review",
    summary="Approve, adjust (award another amount) or decline a submitted request",
    description=(
        "A manager of the request's program or an admin reviews; nobody reviews a request "
        "they made or whose project they belong to (403)."
    ),
)
def review_request(
    request_id: RequestId, body: Review, portal: PortalDep, principal: PrincipalDep
) -> RequestDetail:
    if (body.awarded is not None) != (body.decision == "adjust"):
        raise Problem(422, "awarded names the amount of an adjustment, and only of one")
    awarded = credits_of(body.awarded, "awarded") if body.awarded is not None else None
    with portal.books() as books:
        readable_request(books, principal, request_id)
        require_scope(principal, Scope.MANAGE)
        books.review(request_id, principal, body.decision, body.reason, awarded)
        return request_detail(books, request_id)


@router.post("/allocation-requests/{request_id}/withdraw", summary="Withdraw a request")
def withdraw_request(
    request_id: RequestId, portal: PortalDep, principal: PrincipalDep
) -> RequestDetail:
    with portal.books() as books:
        project = readable_request(books, principal, request_id).request.project
        require_scope(principal, Scope.MANAGE)
        require(
            principal,
            principal.can_request_allocation(project),
            f"withdraw allocation request {request_id}",
        )
        books.withdraw_request(request_id, actor=principal.user)
        return request_detail(books, request_id)


@router.post(
    "/allocation-requests/{request_id}/tranches/{seq}/release",
    summary="Release a later tranche of an award to the project",
    description="Whoever may review the request releases its tranches, on the same terms.",
)
def release_tranche(
    request_id: RequestId,
    seq: Annotated[int, Path(ge=1, le=1000)],
    portal: PortalDep,
    principal: PrincipalDep,
) -> RequestDetail:
    with portal.books() as books:
        readable_request(books, principal, request_id)
        require_scope(principal, Scope.MANAGE)
        books.release_tranche(request_id, seq, actor=principal)
        return request_detail(books, request_id)
