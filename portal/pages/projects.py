"""Project pages: the projects a viewer may see with their credits, and one project with its
balances in a period, its spending over time, its allocation requests and its members.

Every read and write goes through ``quotas.cases`` (the API's use cases) with the viewer's
principal: a project outside the viewer's scope is "not found" here as in the API, and whether
the viewer may change the members is the use case's answer (``member_refusal``), which also says
who may when they may not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from portal.api.common import NO_NUL, Segment, csv_response
from portal.deps import PortalDep
from portal.pages.charts import Series, line_chart
from portal.pages.render import Csrf, Viewer, check_form, render, see_other, signed_in
from portal.problems import status_of
from portal.scopes import MANAGE, READ
from quotas.access import Principal, Role
from quotas.accounts import AccountKind
from quotas.allocations import RequestState
from quotas.cases import accounts
from quotas.cases.accounts import (
    AccountView,
    Spending,
    account_view,
    member_refusal,
    members,
    running_period,
    spending_per_day,
    visible_accounts,
)
from quotas.cases.allocations import visible_requests
from quotas.db.repositories import Member, StoredRequest
from quotas.errors import BooksError
from quotas.funding import Period
from quotas.service import Books

router = APIRouter(include_in_schema=False)

SCOPES = {
    ("GET", "/projects"): READ,
    ("GET", "/projects/{name}"): READ,
    ("POST", "/projects/{name}/members"): MANAGE,
    ("POST", "/projects/{name}/members/{user}/role"): MANAGE,
    ("POST", "/projects/{name}/members/{user}/remove"): MANAGE,
}

PeriodQuery = Annotated[str | None, Query(max_length=64, pattern=NO_NUL)]
MemberRoleForm = Annotated[Literal["researcher", "pi"], Form()]
REQUESTS_SHOWN = 10
ROLES = ("researcher", "pi")


def _period(books: Books, asked: str | None) -> str | None:
    """The period asked for, else the one running now, else the latest one (none: no periods)."""
    if asked:
        return asked
    running = running_period(books)
    if running is not None:
        return running
    periods = books.funding.periods()
    return periods[-1].name if periods else None


@router.get("/projects", response_model=None)
def projects_page(
    request: Request,
    portal: PortalDep,
    period: PeriodQuery = None,
    format: Annotated[Literal["html", "csv"], Query()] = "html",
) -> Response:
    viewer = signed_in(request, portal)
    with portal.books() as books:
        chosen = _period(books, period)
        views: list[AccountView] = []
        if chosen is not None:
            chosen, every = visible_accounts(books, viewer.principal, chosen)
            views = [view for view in every if view.account.kind is AccountKind.PROJECT]
        periods = books.funding.periods()
    if format == "csv":
        return _projects_csv(chosen, views)
    return render(
        viewer,
        "projects.html",
        period=chosen,
        periods=periods,
        projects=views,
        csv_href=f"/projects?period={chosen}&format=csv" if chosen else "/projects?format=csv",
    )


def _projects_csv(period: str | None, views: list[AccountView]) -> Response:
    header = ["project", "display_name", "parent", "period", "budget", "available", "held"]
    header += ["spent"]
    rows = [
        [
            view.account.name,
            view.account.display_name,
            view.account.parent or "",
            period or "",
            str(view.account.budget) if view.account.budget is not None else "",
            str(view.balances.available),
            str(view.balances.held),
            str(view.balances.spent),
        ]
        for view in views
    ]
    return csv_response(header, rows, f"projects-{period or 'none'}.csv")


@dataclass
class ProjectPage:
    view: AccountView
    period: str
    periods: list[Period]
    spending: Spending
    members: list[Member]
    member_refusal: str | None
    requests: list[StoredRequest]
    requests_total: int


def _project(books: Books, viewer: Viewer, name: str, period: str | None) -> ProjectPage:
    project_members = members(books, viewer.principal, name)  # not found, or not a project
    chosen = _period(books, period) or books.current_period().name
    view = account_view(books, viewer.principal, name, chosen)
    spending = spending_per_day(books, viewer.principal, name, chosen, viewer.t.timezone)
    found, total = visible_requests(books, viewer.principal, project=name, limit=REQUESTS_SHOWN)
    return ProjectPage(
        view=view,
        period=chosen,
        periods=books.funding.periods(),
        spending=spending,
        members=project_members,
        member_refusal=member_refusal(books, viewer.principal, name),
        requests=found,
        requests_total=total,
    )


def spending_chart(viewer: Viewer, page: ProjectPage) -> Markup:
    """Credits spent so far in the period, day by day, and the budget as a dashed line."""
    t = viewer.t
    zone = t.timezone
    points: list[tuple[datetime, float]] = []
    spent = 0
    for each in page.spending.days:
        spent += each.spent.milli
        points.append((datetime.combine(each.day, time(23, 59), zone), spent / 1000))
    series: list[Series[datetime]] = [
        Series(t("project.spent_so_far"), points, css_class="chart-used")
    ]
    budget = page.view.account.budget
    if budget is not None and points:
        line = [(points[0][0], budget.milli / 1000), (points[-1][0], budget.milli / 1000)]
        series.append(Series(t("balance.budget"), line, css_class="chart-entitled", dashed=True))
    return line_chart(
        t("project.usage_chart", period=page.period),
        series,
        x_format=lambda moment: t.day(moment),
        y_format=lambda value: t.number(value, 2),
        y_label=t("project.credits_axis"),
        empty_message=t("project.no_usage"),
        description=t("project.usage_description"),
        chart_id="project-usage",
    )


def _project_page(
    portal: PortalDep,
    viewer: Viewer,
    name: str,
    period: str | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    with portal.books() as books:
        page = _project(books, viewer, name, period)
    can_request = viewer.principal.can_request_allocation(name)
    return render(
        viewer,
        "project.html",
        status=status,
        page=page,
        chart=spending_chart(viewer, page),
        roles=ROLES,
        can_request=can_request,
        states=RequestState,
        error=error,
    )


@router.get("/projects/{name}")
def project_page(
    name: Segment, request: Request, portal: PortalDep, period: PeriodQuery = None
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    return _project_page(portal, viewer, name, period)


def _change_members(
    request: Request,
    portal: PortalDep,
    name: str,
    csrf: str,
    change: Callable[[Books, Principal], None],
) -> Response:
    """Make ``change(books, principal)``; on a refusal, the page again saying why."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            change(books, viewer.principal)
    except BooksError as error:
        return _project_page(portal, viewer, name, error=str(error), status=status_of(error))
    return see_other(f"/projects/{name}#members")


@router.post("/projects/{name}/members")
def add_member(
    name: Segment,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    user: Annotated[str, Form(min_length=1, max_length=64, pattern=NO_NUL)],
    role: MemberRoleForm = "researcher",
) -> Response:
    def change(books: Books, principal: Principal) -> None:
        accounts.add_member(books, principal, name, user.strip(), Role(role))

    return _change_members(request, portal, name, csrf, change)


@router.post("/projects/{name}/members/{user}/role")
def set_member_role(
    name: Segment,
    user: Segment,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    role: MemberRoleForm,
) -> Response:
    def change(books: Books, principal: Principal) -> None:
        accounts.set_member_role(books, principal, name, user, Role(role))

    return _change_members(request, portal, name, csrf, change)


@router.post("/projects/{name}/members/{user}/remove")
def remove_member(
    name: Segment,
    user: Segment,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
) -> Response:
    def change(books: Books, principal: Principal) -> None:
        accounts.remove_member(books, principal, name, user)

    return _change_members(request, portal, name, csrf, change)
