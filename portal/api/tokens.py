"""Who you are and your tokens; for an admin, users, pool-wide roles and identity links.

A personal access token is shown once, when it is made; gpupool keeps only its hash. A token
made with a token carries at most that token's scopes and expires no later than it (a browser
session makes tokens as the token it was signed in with); asking for more is refused with 403,
and a token made without ``expires_in_days`` expires with its maker. Making or revoking a token
needs the ``manage`` scope. Users, role grants and identity links are an admin's; an auditor may
read the list of users. The rules are the use cases' (``quotas.cases.tokens`` and
``quotas.cases.people``). Every change is written to the audit log.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import Field, model_validator

from portal.api.common import Limit, Offset, Page, Segment, Strict
from portal.deps import PortalDep, PrincipalDep
from quotas.access import POOL_ROLES, Role, Scope
from quotas.cases import people, tokens
from quotas.db.access import ApiToken, IdentityLink

router = APIRouter(tags=["people"])

TokenId = Annotated[int, Path(ge=1, le=2**31 - 1)]
UserName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._@-]*$",
        description="Lower-case letters, digits and . _ @ -",
        examples=["minji.park"],
    ),
]
PoolRole = Literal["admin", "auditor"]


class MeOut(Strict):
    user: str
    roles: list[Role]
    projects: dict[str, Role] = Field(description="Project -> your role in it")
    programs: list[str] = Field(description="Programs you manage")
    scopes: list[Scope] = Field(description="What the credential of this request allows")


class TokenOut(Strict):
    id: int
    name: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None


class NewToken(Strict):
    name: str = Field(min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    expires_in_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="Default: when the token making this one expires, or never if it never "
        "does. A token cannot outlive the token that makes it: more days than it has left are "
        "refused (403)",
    )


class IssuedTokenOut(Strict):
    id: int
    token: str = Field(description="Shown once; keep it secret")
    name: str
    scopes: list[Scope]
    created_at: datetime
    expires_at: datetime | None


class UserOut(Strict):
    name: str
    display_name: str
    email: str
    roles: list[Role] = Field(description="Pool-wide roles: admin, auditor")


class NewUser(Strict):
    name: UserName
    display_name: str = Field(default="", max_length=200)
    email: str = Field(default="", max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$")


class RoleGrant(Strict):
    role: PoolRole


class NewIdentityLink(Strict):
    """``sub`` links a subject to ``user``; ``group`` grants ``role`` (in ``account``, for
    researcher, pi and program_manager) to the group's members."""

    issuer: str = Field(min_length=1, max_length=500)
    claim: Literal["sub", "group"]
    value: str = Field(min_length=1, max_length=200)
    user: str | None = Field(default=None, max_length=64)
    role: Role | None = None
    account: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def one_kind_of_link(self) -> NewIdentityLink:
        if self.claim == "sub" and (self.user is None or self.role or self.account):
            raise ValueError("a sub link names a user, and no role or account")
        if self.claim == "group" and (self.role is None or self.user):
            raise ValueError("a group link names a role (and an account for project roles)")
        if self.role is not None and (self.role in POOL_ROLES) == (self.account is not None):
            raise ValueError(
                "admin and auditor are granted pool-wide (no account); other roles in an account"
            )
        return self


class IdentityLinkOut(Strict):
    id: int
    issuer: str
    claim: str
    value: str
    user: str | None
    role: Role | None
    account: str | None


def token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        scopes=list(token.scopes),
        created_at=token.created_at,
        expires_at=token.expires_at,
        last_used_at=token.last_used_at,
    )


# -- you and your tokens -----------------------------------------------------------------------


@router.get("/me", summary="Who you are: roles, projects, programs and this token's scopes")
def me(principal: PrincipalDep) -> MeOut:
    return MeOut(
        user=principal.user,
        roles=sorted(principal.roles),
        projects=dict(sorted(principal.projects.items())),
        programs=sorted(principal.programs),
        scopes=sorted(principal.scopes),
    )


@router.get("/tokens", summary="Your tokens that are not revoked (never their secrets)")
def list_tokens(portal: PortalDep, principal: PrincipalDep) -> list[TokenOut]:
    with portal.books() as books:
        found = tokens.own_tokens(books, principal)
    return [token_out(token) for token in found]


@router.post("/tokens", status_code=201, summary="Make a personal access token, shown once")
def make_token(body: NewToken, portal: PortalDep, principal: PrincipalDep) -> IssuedTokenOut:
    scopes = sorted(set(body.scopes))
    lifetime = timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with portal.books() as books:
        issued, made_at = tokens.make_token(books, principal, body.name, scopes, lifetime)
    return IssuedTokenOut(
        id=issued.id,
        token=issued.token,
        name=body.name,
        scopes=scopes,
        created_at=made_at,
        expires_at=issued.expires_at,
    )


@router.delete(
    "/tokens/{token_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke a token: your own, or anyone's as admin",
)
def revoke_token(token_id: TokenId, portal: PortalDep, principal: PrincipalDep) -> Response:
    with portal.books() as books:
        tokens.revoke_token(books, principal, token_id)
    portal.forget_token(token_id)
    return Response(status_code=204)


# -- users, roles and identity links (admin) ----------------------------------------------


def user_out(user: people.User) -> UserOut:
    return UserOut(
        name=user.name, display_name=user.display_name, email=user.email, roles=user.roles
    )


def link_out(link: IdentityLink) -> IdentityLinkOut:
    return IdentityLinkOut(
        id=link.id,
        issuer=link.issuer,
        claim=link.claim,
        value=link.value,
        user=link.user,
        role=link.role,
        account=link.account,
    )


@router.get("/users", summary="Users with their pool-wide roles (admin and auditor)")
def list_users(
    portal: PortalDep, principal: PrincipalDep, limit: Limit = 50, offset: Offset = 0
) -> Page[UserOut]:
    with portal.books() as books:
        found, total = people.users(books, principal, limit=limit, offset=offset)
    items = [user_out(user) for user in found]
    return Page[UserOut](items=items, total=total, limit=limit, offset=offset)


@router.post("/users", status_code=201, summary="Add a user")
def add_user(body: NewUser, portal: PortalDep, principal: PrincipalDep) -> UserOut:
    with portal.books() as books:
        added = people.add_user(books, principal, body.name, body.display_name, body.email)
    return user_out(added)


@router.post("/users/{name}/roles", summary="Grant a user a pool-wide role (admin or auditor)")
def grant_role(
    name: Segment, body: RoleGrant, portal: PortalDep, principal: PrincipalDep
) -> UserOut:
    with portal.books() as books:
        return user_out(people.grant_role(books, principal, name, Role(body.role)))


@router.delete(
    "/users/{name}/roles/{role}",
    status_code=204,
    response_class=Response,
    summary="Revoke a pool-wide role",
)
def revoke_role(
    name: Segment, role: PoolRole, portal: PortalDep, principal: PrincipalDep
) -> Response:
    with portal.books() as books:
        people.revoke_role(books, principal, name, Role(role))
    return Response(status_code=204)


@router.post(
    "/identity-links", status_code=201, summary="Link an identity provider's subject or group"
)
def link_identity(
    body: NewIdentityLink, portal: PortalDep, principal: PrincipalDep
) -> IdentityLinkOut:
    with portal.books() as books:
        if body.claim == "sub":
            assert body.user is not None
            link = people.link_subject(books, principal, body.issuer, body.value, body.user)
        else:
            assert body.role is not None
            link = people.link_group(
                books, principal, body.issuer, body.value, body.role, body.account
            )
    return IdentityLinkOut(
        id=link,
        issuer=body.issuer,
        claim=body.claim,
        value=body.value,
        user=body.user,
        role=body.role,
        account=body.account,
    )


@router.get("/identity-links", summary="How identity-provider subjects and groups map here")
def list_identity_links(portal: PortalDep, principal: PrincipalDep) -> list[IdentityLinkOut]:
    with portal.books() as books:
        links = people.identity_links(books, principal)
    return [link_out(link) for link in links]


@router.delete(
    "/identity-links/{link_id}",
    status_code=204,
    response_class=Response,
    summary="Remove an identity link",
)
def unlink_identity(
    link_id: Annotated[int, Path(ge=1, le=2**31 - 1)], portal: PortalDep, principal: PrincipalDep
) -> Response:
    with portal.books() as books:
        people.unlink_identity(books, principal, link_id)
    return Response(status_code=204)
