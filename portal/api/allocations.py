"""Allocation requests: a pi asks, a program manager approves, adjusts or declines, tranches.

A request starts as a draft, is submitted (and approved at once while the project's
auto-approved credits in the period stay within the program's tier), then reviewed by a manager
of its program or an admin, never by someone who made it or belongs to its project. An award
reaches the ledger only through ``Books``: the first tranche on approval, later ones when a
reviewer releases them. Who may see and act on a request is the use cases' rule
(``quotas.cases.allocations``), not this module's: reads are scoped to the projects a principal
may see (404 outside them); the actions need the ``manage`` scope.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from portal.api.accounts import CreditsText, credits_of
from portal.api.common import (
    CSV_ANSWER,
    NO_NUL,
    Format,
    Limit,
    Offset,
    Page,
    ReportFormat,
    Strict,
    page_csv,
)
from portal.deps import PortalDep, PrincipalDep
from quotas.allocations import RequestState
from quotas.cases import allocations
from quotas.cases.allocations import RequestRecord, request_record, visible_requests
from quotas.db.repositories import StoredRequest

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


def request_detail(record: RequestRecord) -> RequestDetail:
    tranches = [
        TrancheOut(seq=seq, amount=str(amount), released_at=released)
        for seq, amount, released in record.tranches
    ]
    return RequestDetail(**request_out(record.stored).model_dump(), tranches=tranches)


@router.get(
    "/allocation-requests",
    summary="Allocation requests you may see, newest first",
    response_model=Page[RequestOut],
    responses=CSV_ANSWER,
)
def list_requests(
    portal: PortalDep,
    principal: PrincipalDep,
    limit: Limit = 50,
    offset: Offset = 0,
    project: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    state: Annotated[list[RequestState] | None, Query()] = None,
    form: Format = ReportFormat.JSON,
) -> BaseModel | Response:
    with portal.books() as books:
        found, total = visible_requests(
            books, principal, project=project, states=state, limit=limit, offset=offset
        )
    items = [request_out(each) for each in found]
    if form is ReportFormat.CSV:
        return page_csv(RequestOut, items, "allocation-requests.csv", total)
    return Page[RequestOut](items=items, total=total, limit=limit, offset=offset)


@router.post("/allocation-requests", status_code=201, summary="Draft an allocation request")
def create_request(body: NewRequest, portal: PortalDep, principal: PrincipalDep) -> RequestDetail:
    requested = credits_of(body.requested, "requested")
    with portal.books() as books:
        record = allocations.create_request(
            books,
            principal,
            body.project,
            requested,
            body.justification,
            period=body.period,
            flavors=body.flavors,
            tranche_percents=body.tranche_percents,
        )
    return request_detail(record)


@router.get("/allocation-requests/{request_id}", summary="One request with its tranches")
def get_request(request_id: RequestId, portal: PortalDep, principal: PrincipalDep) -> RequestDetail:
    with portal.books() as books:
        return request_detail(request_record(books, principal, request_id))


@router.post(
    "/allocation-requests/{request_id}/submit",
    summary="Submit a draft; within the program's auto-approval tier it is approved at once",
)
def submit_request(
    request_id: RequestId, portal: PortalDep, principal: PrincipalDep
) -> RequestDetail:
    with portal.books() as books:
        return request_detail(allocations.submit_request(books, principal, request_id))


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
    awarded = credits_of(body.awarded, "awarded") if body.awarded is not None else None
    with portal.books() as books:
        record = allocations.review_request(
            books, principal, request_id, body.decision, body.reason, awarded
        )
    return request_detail(record)


@router.post("/allocation-requests/{request_id}/withdraw", summary="Withdraw a request")
def withdraw_request(
    request_id: RequestId, portal: PortalDep, principal: PrincipalDep
) -> RequestDetail:
    with portal.books() as books:
        return request_detail(allocations.withdraw_request(books, principal, request_id))


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
        return request_detail(allocations.release_tranche(books, principal, request_id, seq))
