"""The home page: what matters to the viewer now.

Running and waiting jobs they may see, the credits of the projects they belong to, the
allocation requests waiting for their review (a program manager's, an admin's), and alerts: a
project of theirs low on credits, capacity down (for those who read the whole pool), no period
running. Each part reads through the same use cases as the API.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from jobs.cases import visible_jobs
from portal.deps import PortalDep
from portal.pages.jobs import ACTIVE
from portal.pages.render import Viewer, render, signed_in
from portal.scopes import ANY
from quotas.allocations import RequestState
from quotas.cases.accounts import AccountView, running_period, visible_accounts
from quotas.cases.allocations import visible_requests
from quotas.service import Books

router = APIRouter(include_in_schema=False)

SCOPES = {("GET", "/"): ANY}

ACTIVE_SHOWN = 10
LOW_CREDITS = 0.1
"""A project with less than this fraction of its credits available is low on them."""


@dataclass(frozen=True)
class Alert:
    text: str
    href: str | None = None


@router.get("/")
def home_page(request: Request, portal: PortalDep) -> HTMLResponse:
    viewer = signed_in(request, portal)
    with portal.books() as books:
        active, active_total = visible_jobs(
            books, viewer.principal, states=ACTIVE, limit=ACTIVE_SHOWN
        )
        period = running_period(books)
        projects = _own_projects(books, viewer, period)
        to_review: list[object] = []
        if viewer.principal.programs or viewer.is_admin:
            requests, _ = visible_requests(
                books, viewer.principal, states=[RequestState.SUBMITTED], limit=20
            )
            tree = books.tree()
            to_review = [
                each
                for each in requests
                if viewer.is_admin
                or viewer.principal.manages_program_of(tree, each.request.project)
            ]
        alerts = _alerts(books, viewer, period, projects)
    return render(
        viewer,
        "home.html",
        active=active,
        active_total=active_total,
        period=period,
        projects=projects,
        to_review=to_review,
        reviews_anything=bool(viewer.principal.programs or viewer.is_admin),
        alerts=alerts,
    )


def _own_projects(books: Books, viewer: Viewer, period: str | None) -> list[AccountView]:
    if period is None or not viewer.principal.projects:
        return []
    _, views = visible_accounts(books, viewer.principal, period)
    return [view for view in views if view.account.name in viewer.principal.projects]


def _alerts(
    books: Books, viewer: Viewer, period: str | None, projects: list[AccountView]
) -> list[Alert]:
    t = viewer.t
    alerts = []
    if period is None:
        alerts.append(Alert(t("home.alert_no_period")))
    for view in projects:
        total = view.balances.total
        if total.milli > 0 and view.balances.available.milli < total.milli * LOW_CREDITS:
            alerts.append(
                Alert(
                    t(
                        "home.alert_low_credits",
                        project=view.account.name,
                        left=t.credits(view.balances.available),
                        percent=t.percent(view.balances.available.milli / total.milli),
                    ),
                    f"/projects/{view.account.name}",
                )
            )
    if viewer.reads_everything:
        for outage in books.outages.open():
            alerts.append(
                Alert(
                    t(
                        "home.alert_down",
                        cluster=outage.cluster,
                        count=outage.gpus,
                        flavor=outage.flavor,
                    ),
                    "/admin/clusters",
                )
            )
    return alerts
