"""What every route needs: the portal's state, a unit of work on the books, the principal.

A route opens its own unit of work (``with portal.books() as books``) so the commit happens
before the response is sent: a client never sees success for something that was not stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import HTTPConnection

from portal.problems import Problem
from portal.settings import PortalSettings
from portal.tokens import InvalidToken, verify
from quotas.access import Principal, Role, Scope, principal
from quotas.clock import Clock, utc_now
from quotas.db.access import ApiTokenRepository, IdentityLinkRepository, RoleRepository
from quotas.db.session import transaction
from quotas.errors import NotFound
from quotas.service import Books

TOUCH_EVERY = timedelta(minutes=1)
MAX_CACHED_TOKENS = 10_000
TOKEN_CACHE_SECONDS = 2.0
"""How long a verified token's principal is reused: a revocation or a role change takes effect
within this time, and a busy client does not pay five queries per request."""


class BearerVerifier(Protocol):
    """Checks a bearer JWT from the identity provider and returns its claims."""

    issuer: str

    def verify(self, token: str) -> dict[str, Any]: ...


class InvalidBearer(Exception):
    """A JWT that fails validation (signature, issuer, audience, expiry)."""


@dataclass
class Portal:
    settings: PortalSettings
    engine: Engine
    sessions: sessionmaker[Session]
    verifier: BearerVerifier | None = None
    scheduler_ready: Callable[[], bool] = field(default=lambda: True)
    clock: Clock = utc_now
    """What "now" is for the books: the wall clock, or a test's."""
    verified: dict[str, tuple[float, int, Principal]] = field(default_factory=dict)
    """Recently verified tokens: token -> (when, token id, principal)."""

    def forget_token(self, token_id: int) -> None:
        """Drop a revoked token from this process's cache at once."""
        for credential, (_, cached_id, _) in list(self.verified.items()):
            if cached_id == token_id:
                self.verified.pop(credential, None)

    @contextmanager
    def books(self) -> Iterator[Books]:
        with transaction(self.sessions) as session:
            yield Books(session, self.clock)


def get_portal(request: Request) -> Portal:
    found: Portal = request.app.state.portal
    return found


PortalDep = Annotated[Portal, Depends(get_portal)]

UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="gpupool"'}


def principal_from_claims(
    session: Session, issuer: str, claims: dict[str, Any], groups_claim: str
) -> Principal:
    """Map an identity provider's subject and groups onto gpupool's own records."""
    links = IdentityLinkRepository(session)
    subject = str(claims.get("sub", ""))
    user = links.user_for_subject(issuer, subject)
    if user is None:
        raise Problem(
            403,
            f"identity {subject!r} from {issuer} is not linked to a gpupool user; "
            "ask an administrator to link it",
        )
    raw_groups = claims.get(groups_claim, [])
    groups = [str(g) for g in raw_groups] if isinstance(raw_groups, list) else []
    return with_group_grants(session, RoleRepository(session).principal(user), issuer, groups)


def with_group_grants(
    session: Session, base: Principal, issuer: str, groups: list[str]
) -> Principal:
    """``base`` plus the roles the identity provider's groups are linked to."""
    pool_roles = set(base.pool_roles)
    projects = dict(base.projects)
    programs = set(base.programs)
    for role, account in IdentityLinkRepository(session).group_grants(issuer, groups):
        if account is None:
            pool_roles.add(role)
        elif role is Role.PROGRAM_MANAGER:
            programs.add(account)
        elif projects.get(account) is not Role.PI:
            projects[account] = role
    return principal(base.user, pool_roles, projects, programs)


def authenticate(request: HTTPConnection, portal: Portal) -> Principal | None:
    """The principal behind this request's bearer token or browser session, if any."""
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if header and scheme.lower() != "bearer":
        raise Problem(401, "use 'Authorization: Bearer <token>'", UNAUTHORIZED)
    if credential:
        now = utc_now()
        if credential.startswith("gpp_"):
            cached = portal.verified.get(credential)
            if cached is not None and time.monotonic() - cached[0] < TOKEN_CACHE_SECONDS:
                return cached[2]
            with transaction(portal.sessions) as session:
                try:
                    token, found = verify(session, credential, now)
                except (InvalidToken, NotFound) as error:
                    raise Problem(401, str(error), UNAUTHORIZED) from error
                if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
                    ApiTokenRepository(session).touch(token.id, now)
            if len(portal.verified) > MAX_CACHED_TOKENS:
                portal.verified.clear()
            portal.verified[credential] = (time.monotonic(), token.id, found)
            return found
        if portal.verifier is None:
            raise Problem(401, "unknown token", UNAUTHORIZED)
        try:
            claims = portal.verifier.verify(credential)
        except InvalidBearer as error:
            raise Problem(401, f"invalid token: {error}", UNAUTHORIZED) from error
        with transaction(portal.sessions) as session:
            return principal_from_claims(
                session, portal.verifier.issuer, claims, portal.settings.oidc_groups_claim
            )
    if "session" in request.scope:
        user = request.session.get("user")
        if isinstance(user, str):
            with transaction(portal.sessions) as session:
                try:
                    found = RoleRepository(session).principal(user)
                except NotFound:
                    request.session.clear()
                    return None
                identity = request.session.get("identity")
                if isinstance(identity, dict) and isinstance(identity.get("groups"), list):
                    found = with_group_grants(
                        session,
                        found,
                        str(identity.get("issuer", "")),
                        [str(group) for group in identity["groups"]],
                    )
                return found
    return None


def current_principal(request: Request, portal: PortalDep) -> Principal:
    found = authenticate(request, portal)
    if found is None:
        raise Problem(401, "sign in or send 'Authorization: Bearer <token>'", UNAUTHORIZED)
    return found


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def require(principal: Principal, allowed: bool, what: str) -> None:
    """Answer 403 with what the principal lacks when an action is not theirs to take."""
    if not allowed:
        raise Problem(403, f"{principal.user} may not {what}")


def require_scope(principal: Principal, scope: Scope) -> None:
    if not principal.allows(scope):
        raise Problem(403, f"this token lacks the '{scope}' scope")
