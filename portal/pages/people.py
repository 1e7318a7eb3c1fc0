"""People pages: users and their roles, invitations, and one's own personal access tokens.

``/admin/people`` lists the users with every role they hold (pool-wide roles, project
memberships, programs they manage) and the pending invitations, for admins and auditors. Its
forms invite a named person (made if new) with a one-time sign-in link, revoke an invitation,
grant and revoke the auditor and admin roles, appoint and remove program managers, and make
someone a researcher or pi of a project. Each form goes through the use case the API calls
(``quotas.cases.people``, ``invitations`` and ``accounts``), so whoever the core refuses is
refused here too, told who may act instead.

``/tokens`` lists the viewer's own tokens (never their secrets, never anyone else's), makes one
with the scopes ticked and revokes one (``quotas.cases.tokens``).

A new invitation's link and a new token's secret are shown once: in the answer to the form that
made them (no redirect, ``Cache-Control: no-store``), and never kept anywhere a later page could
read them back, so loading the page again does not show them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, Response

from portal.api.common import NO_NUL
from portal.api.invitations import signin_link
from portal.deps import Portal, PortalDep
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
from portal.scopes import MANAGE, READ, READ_OR_MANAGE
from quotas.access import Role, Scope
from quotas.accounts import AccountKind
from quotas.cases import accounts, invitations, people, tokens
from quotas.errors import BooksError
from quotas.invitations import DEFAULT_LIFETIME, MAX_LIFETIME

router = APIRouter(include_in_schema=False)

SCOPES = {
    ("GET", "/admin/people"): READ,
    ("POST", "/admin/people/invitations"): MANAGE,
    ("POST", "/admin/people/invitations/{invitation_id}/revoke"): MANAGE,
    ("POST", "/admin/people/roles"): MANAGE,
    ("POST", "/admin/people/roles/revoke"): MANAGE,
    ("POST", "/admin/people/managers"): MANAGE,
    ("POST", "/admin/people/managers/revoke"): MANAGE,
    ("POST", "/admin/people/members"): MANAGE,
    ("POST", "/admin/people/members/remove"): MANAGE,
    ("GET", "/tokens"): READ_OR_MANAGE,
    ("POST", "/tokens"): MANAGE,
    ("POST", "/tokens/{token_id}/revoke"): MANAGE,
}

PAGE_SIZE = 50
USER_NAME = r"^[a-z0-9][a-z0-9._@-]*$"
"""A user's name, as the API takes it (``portal.api.tokens.UserName``)."""
EMAIL = r"^$|^[^@\s]+@[^@\s]+$"
TOKEN_LIFETIMES = (7, 30, 90, 365)
"""The lifetimes, in days, the token form offers beside "as long as this sign-in"."""

UserName = Annotated[str, Form(min_length=1, max_length=64, pattern=USER_NAME)]
AccountName = Annotated[str, Form(min_length=1, max_length=64, pattern=NO_NUL)]
RecordId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class PoolRole(StrEnum):
    ADMIN = "admin"
    AUDITOR = "auditor"


class ProjectRole(StrEnum):
    RESEARCHER = "researcher"
    PI = "pi"


class Done(StrEnum):
    """What a form just did, said on the page it sends the browser back to."""

    INVITATION_REVOKED = "invitation_revoked"
    ROLE_GRANTED = "role_granted"
    ROLE_REVOKED = "role_revoked"
    MANAGER_ADDED = "manager_added"
    MANAGER_REMOVED = "manager_removed"
    MEMBER_SET = "member_set"
    MEMBER_REMOVED = "member_removed"
    TOKEN_REVOKED = "token_revoked"  # noqa: S105 (what was done, not a secret)


# -- people -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Person:
    """A row of the users table: who, and every role they hold."""

    user: people.User
    projects: list[tuple[str, Role]]
    programs: list[str]


@dataclass(frozen=True)
class Issued:
    """A new invitation, shown once."""

    user: str
    link: str
    expires_at: datetime
    created: bool
    project: str | None
    role: Role | None


def _people_page(
    portal: Portal,
    viewer: Viewer,
    offset: int = 0,
    *,
    done: Done | None = None,
    issued: Issued | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    with portal.books() as books:
        found, total = people.users(books, viewer.principal, limit=PAGE_SIZE, offset=offset)
        held = people.holdings(books, viewer.principal, [user.name for user in found])
        pending = invitations.pending_invitations(books, viewer.principal)
        tree = books.tree()
    persons = [
        Person(user, sorted(held[user.name].projects.items()), held[user.name].programs)
        for user in found
    ]
    return render(
        viewer,
        "people.html",
        status=status,
        persons=persons,
        paging=Paging(total, PAGE_SIZE, offset, "/admin/people", ()),
        pending=pending,
        programs=sorted(a.name for a in tree if a.kind is AccountKind.PROGRAM),
        projects=sorted(a.name for a in tree.projects()),
        pool_roles=list(PoolRole),
        project_roles=list(ProjectRole),
        default_days=DEFAULT_LIFETIME.days,
        max_days=MAX_LIFETIME.days,
        done=done,
        issued=issued,
        error=error,
    )


@router.get("/admin/people")
def people_page(
    request: Request,
    portal: PortalDep,
    offset: Offset = 0,
    done: Done | None = None,
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    return _people_page(portal, viewer, offset, done=done)


def _refused(portal: Portal, viewer: Viewer, error: BooksError) -> HTMLResponse:
    """The people page again, saying why the books refused; for a viewer who may not read the
    people page (a pi, a program manager), the refusal as an error page."""
    if not viewer.reads_everything:
        raise error
    return _people_page(portal, viewer, error=str(error), status=status_of(error))


def _done(viewer: Viewer, done: Done, back: str | None = None) -> Response:
    """Back to the people page, or where a viewer who may not read it manages the change."""
    if viewer.reads_everything or back is None:
        return see_other(f"/admin/people?done={done.value}")
    return see_other(back)


@router.post("/admin/people/invitations")
def invite(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    user: UserName,
    display_name: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=254, pattern=EMAIL)] = "",
    expires_in_days: Annotated[int, Form(ge=1, le=MAX_LIFETIME.days)] = DEFAULT_LIFETIME.days,
    project: Annotated[str, Form(max_length=64, pattern=NO_NUL)] = "",
    role: Annotated[ProjectRole, Form()] = ProjectRole.RESEARCHER,
) -> Response:
    """Invite ``user``; the answer is the people page showing the sign-in link, once."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            invited = invitations.invite(
                books,
                viewer.principal,
                user,
                display_name=display_name,
                email=email,
                lifetime=timedelta(days=expires_in_days),
                project=project or None,
                role=Role(role.value),
            )
    except BooksError as error:
        return _refused(portal, viewer, error)
    made = invited.invitation
    issued = Issued(
        made.user,
        signin_link(portal.settings.base_url, made.invitation),
        made.expires_at,
        invited.created,
        invited.project,
        invited.role,
    )
    if not viewer.reads_everything:
        return render(viewer, "people_invited.html", status=201, issued=issued)
    return _people_page(portal, viewer, issued=issued, status=201)


@router.post("/admin/people/invitations/{invitation_id}/revoke")
def revoke_invitation(
    invitation_id: RecordId,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            invitations.revoke_invitation(books, viewer.principal, invitation_id)
    except BooksError as error:
        return _refused(portal, viewer, error)
    return _done(viewer, Done.INVITATION_REVOKED, "/")


@router.post("/admin/people/roles")
def grant_role(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    user: UserName,
    role: Annotated[PoolRole, Form()],
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            people.grant_role(books, viewer.principal, user, Role(role.value))
    except BooksError as error:
        return _refused(portal, viewer, error)
    return _done(viewer, Done.ROLE_GRANTED)


@router.post("/admin/people/roles/revoke")
def revoke_role(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    user: UserName,
    role: Annotated[PoolRole, Form()],
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            people.revoke_role(books, viewer.principal, user, Role(role.value))
    except BooksError as error:
        return _refused(portal, viewer, error)
    return _done(viewer, Done.ROLE_REVOKED)


@router.post("/admin/people/managers")
def add_manager(
    request: Request, portal: PortalDep, csrf: Csrf, user: UserName, program: AccountName
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            accounts.add_program_manager(books, viewer.principal, program, user)
    except BooksError as error:
        return _refused(portal, viewer, error)
    return _done(viewer, Done.MANAGER_ADDED)


@router.post("/admin/people/managers/revoke")
def remove_manager(
    request: Request, portal: PortalDep, csrf: Csrf, user: UserName, program: AccountName
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            accounts.remove_program_manager(books, viewer.principal, program, user)
    except BooksError as error:
        return _refused(portal, viewer, error)
    return _done(viewer, Done.MANAGER_REMOVED)


@router.post("/admin/people/members")
def set_member(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    user: UserName,
    project: AccountName,
    role: Annotated[ProjectRole, Form()],
) -> Response:
    """Make ``user`` a researcher or pi of ``project`` (added if not a member)."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            accounts.set_member_role(books, viewer.principal, project, user, Role(role.value))
    except BooksError as error:
        return _refused(portal, viewer, error)
    return _done(viewer, Done.MEMBER_SET, f"/projects/{project}")


@router.post("/admin/people/members/remove")
def remove_member(
    request: Request, portal: PortalDep, csrf: Csrf, user: UserName, project: AccountName
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    try:
        with portal.books() as books:
            accounts.remove_member(books, viewer.principal, project, user)
    except BooksError as error:
        return _refused(portal, viewer, error)
    return _done(viewer, Done.MEMBER_REMOVED, f"/projects/{project}")


# -- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewToken:
    """A token just made, its secret shown once."""

    name: str
    secret: str
    scopes: list[Scope]
    expires_at: datetime | None


@dataclass
class TokenDraft:
    """What the token form holds: a fresh form, or one sent back with what was wrong."""

    name: str = ""
    scopes: tuple[Scope, ...] = (Scope.READ,)
    days: int | None = None


def _tokens_page(
    portal: Portal,
    viewer: Viewer,
    *,
    draft: TokenDraft | None = None,
    made: NewToken | None = None,
    done: Done | None = None,
    error: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    with portal.books() as books:
        found = tokens.own_tokens(books, viewer.principal)
    context: dict[str, Any] = {
        "tokens": found,
        "this_token": viewer.principal.token_id,
        "draft": draft or TokenDraft(),
        "all_scopes": list(Scope),
        "lifetimes": TOKEN_LIFETIMES,
        "session_ends": viewer.principal.token_expires_at,
        "made": made,
        "done": done,
        "error": error,
    }
    return render(viewer, "tokens.html", status=status, **context)


@router.get("/tokens")
def tokens_page(request: Request, portal: PortalDep, done: Done | None = None) -> HTMLResponse:
    viewer = signed_in(request, portal)
    return _tokens_page(portal, viewer, done=done)


@router.post("/tokens")
def make_token(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    name: Annotated[str, Form(max_length=100, pattern=NO_NUL)] = "",
    scopes: Annotated[list[Scope] | None, Form(max_length=3)] = None,
    days: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Make a token of the viewer's with exactly the scopes ticked; the answer is the tokens page
    showing its secret, once."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    chosen = sorted(set(scopes or ()))
    draft = TokenDraft(name, tuple(chosen), int(days) if days.isdigit() else None)
    problem = None
    if not name.strip():
        problem = viewer.t("tokens.name_needed")
    elif not chosen:
        problem = viewer.t("tokens.scope_needed")
    elif days and (draft.days is None or draft.days not in TOKEN_LIFETIMES):
        problem = viewer.t("tokens.lifetime_unknown")
    if problem is not None:
        return _tokens_page(portal, viewer, draft=draft, error=problem, status=422)
    lifetime = timedelta(days=draft.days) if draft.days else None
    try:
        with portal.books() as books:
            issued, _ = tokens.make_token(books, viewer.principal, name.strip(), chosen, lifetime)
    except BooksError as error:
        return _tokens_page(portal, viewer, draft=draft, error=str(error), status=422)
    made = NewToken(name.strip(), issued.token, chosen, issued.expires_at)
    return _tokens_page(portal, viewer, made=made, status=201)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(
    token_id: RecordId,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    with portal.books() as books:
        tokens.revoke_token(books, viewer.principal, token_id)
    portal.forget_token(token_id)
    return see_other(f"/tokens?done={Done.TOKEN_REVOKED.value}")
