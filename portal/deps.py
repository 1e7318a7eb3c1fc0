"""What every route needs: the portal's state, a unit of work on the books, the principal.

A route opens its own unit of work (``with portal.books() as books``) so the commit happens
before the response is sent: a client never sees success for something that was not stored.

The principal comes from a bearer credential (a gpupool token or the identity provider's JWT)
or a browser session (``portal.sessions``): a session signed in with a token re-checks that
token on every request and is signed out once it is revoked or expired. Every credential is
held to the scope its operation needs (``portal.scopes``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from portal import sessions
from portal.problems import Problem
from portal.scopes import require_operation_scope
from portal.settings import PortalSettings
from quotas.access import Principal, Role, principal
from quotas.clock import Clock, utc_now
from quotas.db.access import ApiToken, ApiTokenRepository, IdentityLinkRepository, RoleRepository
from quotas.db.session import session_factory, transaction
from quotas.errors import NotFound
from quotas.service import Books
from quotas.tokens import InvalidToken, verify, verify_id
from scheduler.logs import LogReader

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

    @contextmanager
    def books_for_one_write(self) -> Iterator[Books]:
        """Books for a unit of work that writes in one statement and checks the catalogue in
        it (a submission: ``jobs.cases.submit``). On PostgreSQL its session is in autocommit,
        so the write costs one round trip, with no BEGIN or COMMIT of its own; elsewhere it is
        an ordinary transaction."""
        if self.engine.dialect.name != "postgresql":
            with transaction(self.sessions) as session:
                yield Books(session, self.clock, trust_cached_catalogue=True)
            return
        with transaction(self._autocommit_sessions) as session:
            yield Books(session, self.clock, trust_cached_catalogue=True)

    @cached_property
    def _autocommit_sessions(self) -> sessionmaker[Session]:
        return session_factory(self.engine.execution_options(isolation_level="AUTOCOMMIT"))

    @property
    def logs(self) -> LogReader:
        """Jobs' output, read from the clusters they ran on."""
        return LogReader(self.sessions, self.settings.data_dir, self.settings.ray_tokens())


async def get_portal(request: Request) -> Portal:
    """The portal's state (async: reading it needs no worker thread)."""
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
    """The principal behind this request's bearer credential or browser session, if any, once
    the credential's scopes allow the operation the request is routed to (``portal.scopes``)."""
    found = _bearer_principal(request, portal)
    if found is None:
        found = session_principal(request, portal)
    if found is not None:
        require_operation_scope(request, found)
    return found


def _bearer_principal(request: HTTPConnection, portal: Portal) -> Principal | None:
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    if header and scheme.lower() != "bearer":
        raise Problem(401, "use 'Authorization: Bearer <token>'", UNAUTHORIZED)
    if not credential:
        return None
    now = portal.clock()
    if credential.startswith("gpp_"):
        cached = _recently_verified(portal, credential, now)
        if cached is not None:
            return cached
        with transaction(portal.sessions) as session:
            try:
                token, found = verify(session, credential, now)
            except (InvalidToken, NotFound) as error:
                raise Problem(401, str(error), UNAUTHORIZED) from error
            _touch(session, token, now)
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


def _recently_verified(portal: Portal, credential: str, now: datetime) -> Principal | None:
    """The principal of a token this process verified under ``TOKEN_CACHE_SECONDS`` ago."""
    cached = portal.verified.get(credential)
    if (
        cached is not None
        and time.monotonic() - cached[0] < TOKEN_CACHE_SECONDS
        and not _expired(cached[2], now)
    ):
        return cached[2]
    return None


def session_principal(connection: HTTPConnection, portal: Portal) -> Principal | None:
    """The principal of this browser session while it holds; a session that ended, whose token
    was revoked or expired, or whose user is gone is signed out (cleared) and gives ``None``."""
    if "session" not in connection.scope:
        return None
    stored = connection.session
    user = stored.get(sessions.USER)
    if not isinstance(user, str):
        return None
    now = portal.clock()
    end = sessions.ends_at(stored)
    token_id = sessions.token_of(stored)
    identity = stored.get(sessions.IDENTITY)
    if end is None or end <= now or (token_id is None and not isinstance(identity, dict)):
        stored.clear()  # ended, or made before sessions were tied to their credential
        return None
    with transaction(portal.sessions) as session:
        try:
            if token_id is not None:
                token, found = verify_id(session, token_id, user, now)
                _touch(session, token, now)
                return found
            found = RoleRepository(session).principal(user)
        except (InvalidToken, NotFound):
            stored.clear()
            return None
        assert isinstance(identity, dict)
        groups = identity.get("groups")
        if isinstance(groups, list):
            found = with_group_grants(
                session, found, str(identity.get("issuer", "")), [str(g) for g in groups]
            )
        return found


def _expired(found: Principal, now: datetime) -> bool:
    return found.token_expires_at is not None and found.token_expires_at <= now


def _touch(session: Session, token: ApiToken, now: datetime) -> None:
    if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
        ApiTokenRepository(session).touch(token.id, now)


async def current_principal(request: Request, portal: PortalDep) -> Principal:
    """The request's principal. A gpupool token this process verified moments ago is answered
    on the event loop; anything that needs the database is read in a worker thread."""
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    found = None
    if scheme.lower() == "bearer" and credential.strip().startswith("gpp_"):
        found = _recently_verified(portal, credential.strip(), portal.clock())
    if found is not None:
        require_operation_scope(request, found)
    else:
        found = await run_in_threadpool(authenticate, request, portal)
    if found is None:
        raise Problem(401, "sign in or send 'Authorization: Bearer <token>'", UNAUTHORIZED)
    return found


PrincipalDep = Annotated[Principal, Depends(current_principal)]
