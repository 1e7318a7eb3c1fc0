"""What every page needs: who is looking, in which language, the page frame, and its guards.

A page is a plain FastAPI route in ``portal.pages`` that reads through the core's use cases (the
same ones the API calls) with the viewer's principal, so a page shows only what its viewer may
see and holds no rule of its own. ``signed_in`` gives the viewer of a browser session, or sends
the browser to ``/signin``; pages take no bearer token, so every page's credential is a session
cookie and every form that POSTs carries the session's CSRF value (``check_form``).

Pages answer with the security headers of ``/signin`` plus a Content-Security-Policy that lets
in only gpupool's own scripts, styles and images (``portal.pages.assets``): nothing inline,
nothing from elsewhere. Errors from the books (not found, forbidden, invalid) on a page are
answered as a page in the viewer's language, not as a problem document (``error_page``).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.concurrency import run_in_threadpool

from portal.deps import Portal, session_principal
from portal.pages.assets import asset_url
from portal.pages.i18n import LANGUAGE_COOKIE, Words, chosen_language
from portal.pages.messages import MESSAGES
from portal.pages.reasons import reason
from portal.scopes import require_operation_scope
from portal.signin import csrf_token
from quotas.access import Principal, Role
from quotas.quantities import Credits

TEMPLATES = Path(__file__).parent / "templates"

PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


Csrf = Annotated[str, Form(max_length=128)]
"""The ``csrf`` field every page's POST form carries (``check_form``)."""
Offset = Annotated[int, Query(ge=0, le=1_000_000)]
"""Where a list page starts."""


@dataclass(frozen=True)
class Paging:
    """Where a list page stands, with links to its neighbours that keep its filters."""

    total: int
    limit: int
    offset: int
    path: str
    filters: tuple[tuple[str, str], ...]

    @property
    def first(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last(self) -> int:
        return min(self.offset + self.limit, self.total)

    def _at(self, offset: int) -> str:
        return f"{self.path}?{urlencode([*self.filters, ('offset', str(offset))])}"

    @property
    def previous(self) -> str | None:
        return self._at(max(self.offset - self.limit, 0)) if self.offset > 0 else None

    @property
    def next(self) -> str | None:
        return self._at(self.offset + self.limit) if self.last < self.total else None


class SignInFirst(Exception):
    """No browser session: the page sends the browser to ``/signin``."""


class StaleForm(Exception):
    """A POST without this session's CSRF value: sent from elsewhere, or from an old page."""


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["asset"] = asset_url
    env.globals["credits_of_milli"] = Credits
    env.globals["reason"] = reason
    env.filters["urlpart"] = lambda text: quote(str(text), safe="")
    return env


@dataclass(frozen=True)
class NavItem:
    href: str
    label: str


@dataclass
class Viewer:
    """The signed-in person looking at a page, in their language."""

    principal: Principal
    t: Words
    csrf: str
    path: str
    nav: list[NavItem] = field(default_factory=list)

    @property
    def current(self) -> str | None:
        """The navigation entry this page is under: the longest that leads to its path."""
        under = [
            item.href
            for item in self.nav
            if self.path == item.href or self.path.startswith(item.href.rstrip("/") + "/")
        ]
        return max(under, key=len) if under else None

    @property
    def user(self) -> str:
        return self.principal.user

    @property
    def is_admin(self) -> bool:
        return self.principal.is_admin

    @property
    def reads_everything(self) -> bool:
        return self.principal.reads_everything

    @property
    def manages_programs(self) -> bool:
        return bool(self.principal.programs)

    @property
    def leads_projects(self) -> list[str]:
        return sorted(p for p, role in self.principal.projects.items() if role is Role.PI)


def words(request: Request, portal: Portal) -> Words:
    language = chosen_language(
        request.cookies.get(LANGUAGE_COOKIE), request.headers.get("accept-language")
    )
    return Words(language, _zone(portal.settings.timezone))


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def signed_in(request: Request, portal: Portal) -> Viewer:
    """The viewer of this browser session, held to the scope the page needs; raises
    ``SignInFirst`` without one. Call it from a worker thread (it may read the database)."""
    found = session_principal(request, portal)
    if found is None:
        raise SignInFirst
    require_operation_scope(request, found)
    t = words(request, portal)
    return Viewer(found, t, csrf_token(request), request.url.path, _nav(found, t))


async def signed_in_async(request: Request, portal: Portal) -> Viewer:
    return await run_in_threadpool(signed_in, request, portal)


def _nav(principal: Principal, t: Words) -> list[NavItem]:
    items = [NavItem("/", t("nav.home")), NavItem("/jobs", t("nav.jobs"))]
    if principal.projects or principal.programs or principal.reads_everything:
        items.append(NavItem("/projects", t("nav.projects")))
    items.append(NavItem("/requests", t("nav.requests")))
    if principal.programs or principal.reads_everything:
        items.append(NavItem("/programs", t("nav.programs")))
        items.append(NavItem("/reports", t("nav.reports")))
    items.append(NavItem("/ledger", t("nav.ledger")))  # each sees the entries they may
    if principal.reads_everything:
        items.append(NavItem("/admin", t("nav.admin")))
        items.append(NavItem("/admin/people", t("nav.people")))
    items.append(NavItem("/tokens", t("nav.tokens")))
    return items


def check_form(request: Request, sent: str | None) -> None:
    """Refuse a POST whose ``csrf`` field is not this session's value."""
    expected = request.session.get("csrf")
    if (
        not isinstance(expected, str)
        or not isinstance(sent, str)
        or not hmac.compare_digest(expected, sent)
    ):
        raise StaleForm


def render(viewer: Viewer, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = environment().get_template(template).render(viewer=viewer, t=viewer.t, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def fragment(viewer: Viewer, template: str, **context: Any) -> HTMLResponse:
    """A piece of a page the page's script swaps in (live job state, a quote)."""
    return render(viewer, template, **context)


def see_other(location: str) -> RedirectResponse:
    return RedirectResponse(location, status_code=303, headers=PAGE_HEADERS)


def error_page(
    request: Request, portal: Portal, status: int, message: str, viewer: Viewer | None = None
) -> Response:
    """A refusal or failure on a page, as a page in the viewer's language."""
    t = viewer.t if viewer is not None else words(request, portal)
    key = f"error.{status}"
    heading = t(key) if key in MESSAGES else t("error.title")
    html = (
        environment()
        .get_template("error.html")
        .render(viewer=viewer, t=t, heading=heading, message=message)
    )
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)
