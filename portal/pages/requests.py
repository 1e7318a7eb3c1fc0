"""Allocation request pages: the requests a viewer may see (and, for a program manager, those
waiting for their review), drafting one, submitting or withdrawing it, and one request with
its review and tranches.

Every read and write goes through ``quotas.cases.allocations`` (the API's use cases) with the
viewer's principal. Who may review a request or release its tranches is the books' rule: the
page asks it (``review_refusal``) and, where the viewer may not, shows who may instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import HTMLResponse, Response

from portal.api.common import NO_NUL
from portal.deps import PortalDep
from portal.pages.render import (
    Csrf,
    Offset,
    Paging,
    Viewer,
    check_form,
    render,
    see_other,
    signed_in,
)
from portal.problems import status_of
from portal.scopes import MANAGE, READ
from quotas.access import Principal
from quotas.allocations import RequestState
from quotas.cases import allocations
from quotas.cases.accounts import running_period
from quotas.cases.allocations import (
    RequestRecord,
    request_record,
    requester_refusal,
    requests_to_review,
    review_refusal,
    visible_requests,
)
from quotas.errors import BooksError, InvalidInput
from quotas.quantities import Credits
from quotas.service import Books

router = APIRouter(include_in_schema=False)

SCOPES = {
    ("GET", "/requests"): READ,
    ("GET", "/requests/new"): MANAGE,
    ("POST", "/requests/new"): MANAGE,
    ("GET", "/requests/{request_id}"): READ,
    ("POST", "/requests/{request_id}/submit"): MANAGE,
    ("POST", "/requests/{request_id}/withdraw"): MANAGE,
    ("POST", "/requests/{request_id}/review"): MANAGE,
    ("POST", "/requests/{request_id}/tranches/{seq}/release"): MANAGE,
}

PAGE_SIZE = 25
RequestId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/requests")
def requests_page(
    request: Request,
    portal: PortalDep,
    state: Annotated[list[RequestState] | None, Query()] = None,
    project: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    review: bool = False,
    offset: Offset = 0,
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    project = project or None
    reviews = bool(viewer.principal.programs) or viewer.is_admin
    with portal.books() as books:
        if review:
            found, total = requests_to_review(
                books, viewer.principal, limit=PAGE_SIZE, offset=offset
            )
        else:
            found, total = visible_requests(
                books,
                viewer.principal,
                project=project,
                states=state,
                limit=PAGE_SIZE,
                offset=offset,
            )
        projects = viewer.principal.readable_projects(books.tree())
    filters: list[tuple[str, str]] = []
    if review:
        filters.append(("review", "true"))
    else:
        filters += [("state", each.value) for each in state or ()]
        if project:
            filters.append(("project", project))
    api_filters = [("state", RequestState.SUBMITTED.value)] if review else filters
    csv_href = "/api/v1/allocation-requests?" + urlencode(
        [*api_filters, ("limit", "500"), ("format", "csv")]
    )
    return render(
        viewer,
        "requests.html",
        requests=found,
        paging=Paging(total, PAGE_SIZE, offset, "/requests", tuple(filters)),
        states=list(RequestState),
        chosen_states={each.value for each in state or ()},
        project=project,
        projects=sorted(projects) if projects is not None else None,
        review=review,
        reviews=reviews,
        csv_href=csv_href,
    )


@dataclass
class Draft:
    """What the new-request form holds: a fresh form, or one sent back with what was wrong."""

    project: str = ""
    period: str = ""
    requested: str = ""
    justification: str = ""
    flavors: tuple[str, ...] = ()
    tranches: str = "100"
    errors: list[str] = field(default_factory=list)


def _new_form(
    portal: PortalDep, viewer: Viewer, draft: Draft, error: str | None = None, status: int = 200
) -> HTMLResponse:
    with portal.books() as books:
        periods = books.funding.periods()
        flavors = sorted(books.flavors.all())
        if not draft.period:
            draft.period = running_period(books) or (periods[-1].name if periods else "")
        if viewer.is_admin:
            projects = sorted(viewer.principal.readable_projects(books.tree()) or [])
        else:
            projects = viewer.leads_projects
    if not draft.project and projects:
        draft.project = projects[0]
    return render(
        viewer,
        "request_new.html",
        status=status,
        draft=draft,
        projects=projects,
        periods=periods,
        flavors=flavors,
        error=error,
    )


@router.get("/requests/new")
def new_request_page(
    request: Request,
    portal: PortalDep,
    project: Annotated[str, Query(max_length=64, pattern=NO_NUL)] = "",
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    return _new_form(portal, viewer, Draft(project=project))


def tranche_percents(text: str) -> list[int]:
    """``"50,50"`` (or ``"50 50"``, ``"50%, 50%"``) as percentages; refused unless numbers."""
    parts = [part.strip().removesuffix("%") for part in text.replace(",", " ").split()]
    if not parts or not all(part.isdigit() and len(part) <= 3 for part in parts):
        raise InvalidInput(
            f"tranches: write percentages that add up to 100, e.g. 50,50; not {text!r}"
        )
    if len(parts) > 12:
        raise InvalidInput("tranches: at most 12")
    return [int(part) for part in parts]


def credits_of(text: str, what: str) -> Credits:
    try:
        return Credits.of(text.strip().replace(",", ""))
    except ValueError as error:
        raise InvalidInput(f"{what}: {error}") from error


@router.post("/requests/new")
def create_request(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    project: Annotated[str, Form(min_length=1, max_length=64, pattern=NO_NUL)],
    requested: Annotated[str, Form(min_length=1, max_length=20)],
    justification: Annotated[str, Form(min_length=1, max_length=20_000, pattern=NO_NUL)],
    period: Annotated[str, Form(max_length=64, pattern=NO_NUL)] = "",
    flavors: Annotated[list[str] | None, Form(max_length=32)] = None,
    tranches: Annotated[str, Form(max_length=100)] = "100",
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = Draft(project, period, requested, justification, tuple(flavors or ()), tranches)
    try:
        amount = credits_of(requested, "requested credits")
        percents = tranche_percents(tranches)
        with portal.books() as books:
            record = allocations.create_request(
                books,
                viewer.principal,
                project,
                amount,
                justification,
                period=period or None,
                flavors=draft.flavors,
                tranche_percents=percents,
            )
    except BooksError as error:
        return _new_form(portal, viewer, draft, error=str(error), status=status_of(error))
    return see_other(f"/requests/{record.stored.id}")


@dataclass
class RequestPage:
    record: RequestRecord
    review_refusal: str | None
    requester_refusal: str | None


def _request_page(
    portal: PortalDep,
    viewer: Viewer,
    request_id: int,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    with portal.books() as books:
        record = request_record(books, viewer.principal, request_id)
        page = RequestPage(
            record,
            review_refusal(books, viewer.principal, request_id),
            requester_refusal(books, viewer.principal, request_id),
        )
    return render(
        viewer, "request.html", status=status, page=page, stored=record.stored, error=error
    )


@router.get("/requests/{request_id}")
def request_page(request_id: RequestId, request: Request, portal: PortalDep) -> HTMLResponse:
    viewer = signed_in(request, portal)
    return _request_page(portal, viewer, request_id)


def _act(
    request: Request,
    portal: PortalDep,
    request_id: int,
    csrf: str | None,
    action: Callable[[Books, Principal], object],
) -> Response:
    """Do ``action(books, principal)``; on a refusal, the request's page again saying why."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            action(books, viewer.principal)
    except BooksError as error:
        return _request_page(portal, viewer, request_id, error=str(error), status=status_of(error))
    return see_other(f"/requests/{request_id}")


@router.post("/requests/{request_id}/submit")
def submit_request(
    request_id: RequestId, request: Request, portal: PortalDep, csrf: Csrf
) -> Response:
    return _act(
        request,
        portal,
        request_id,
        csrf,
        lambda books, principal: allocations.submit_request(books, principal, request_id),
    )


@router.post("/requests/{request_id}/withdraw")
def withdraw_request(
    request_id: RequestId, request: Request, portal: PortalDep, csrf: Csrf
) -> Response:
    return _act(
        request,
        portal,
        request_id,
        csrf,
        lambda books, principal: allocations.withdraw_request(books, principal, request_id),
    )


@router.post("/requests/{request_id}/review")
def review_request(
    request_id: RequestId,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    decision: Annotated[Literal["approve", "adjust", "decline"], Form()],
    reason: Annotated[str, Form(max_length=10_000, pattern=NO_NUL)] = "",
    awarded: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    def review(books: Books, principal: Principal) -> object:
        if not reason.strip():
            raise InvalidInput("a review gives its reason")
        amount = None
        if decision == "adjust":
            if not awarded.strip():
                raise InvalidInput("an adjustment names the credits awarded")
            amount = credits_of(awarded, "awarded credits")
        return allocations.review_request(
            books, principal, request_id, decision, reason.strip(), amount
        )

    return _act(request, portal, request_id, csrf, review)


@router.post("/requests/{request_id}/tranches/{seq}/release")
def release_tranche(
    request_id: RequestId,
    seq: Annotated[int, Path(ge=1, le=1000)],
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
) -> Response:
    return _act(
        request,
        portal,
        request_id,
        csrf,
        lambda books, principal: allocations.release_tranche(books, principal, request_id, seq),
    )
