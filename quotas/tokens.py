"""Personal access tokens and the bootstrap admin token.

A token reads ``gpp_<lookup>_<secret>``: ``lookup`` finds the row, only the SHA-256 of the secret
is stored and compared in constant time. The secret holds 256 random bits, so a plain hash is
as strong as a slow one here (there is no low-entropy password to guess).

A token made with a token never outgrows it (``mint``): it carries a subset of the maker's
scopes and expires no later than the maker. Asking for more is refused (403), never trimmed;
leaving the expiry out means "when the maker expires" (or never, for a maker that never does).
A browser session signed in with a token makes tokens as that token. The identity provider's
credentials (a bearer JWT, a browser session opened through the provider) are the person
themselves, not a gpupool token: what they make is bounded only by the request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from quotas.access import Principal, Role, Scope
from quotas.db.access import ApiToken, ApiTokenRepository, RoleRepository
from quotas.db.repositories import PeopleRepository
from quotas.errors import Forbidden, InvalidInput, NotFound
from quotas.service import Books
from quotas.settings import write_private

PREFIX = "gpp_"
ADMIN_USER = "admin"
MAX_TOKENS_PER_USER = 100


class InvalidToken(Exception):
    """The token is unknown, malformed, expired or revoked."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _split(token: str) -> tuple[str, str]:
    if not token.startswith(PREFIX):
        raise InvalidToken("not a gpupool token")
    lookup, _, secret = token[len(PREFIX) :].partition("_")
    if len(lookup) != 12 or not secret:
        raise InvalidToken("malformed token")
    return lookup, secret


@dataclass(frozen=True, slots=True)
class IssuedToken:
    id: int
    token: str
    """Shown once; gpupool keeps only its hash."""
    expires_at: datetime | None = None


def issue(
    session: Session,
    user: str,
    name: str,
    scopes: list[Scope] | tuple[Scope, ...],
    now: datetime,
    expires_at: datetime | None = None,
) -> IssuedToken:
    if not name.strip() or len(name) > 100:
        raise InvalidInput("a token needs a name of 1-100 characters")
    if not scopes:
        raise InvalidInput("a token needs at least one scope")
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("a token must expire in the future")
    tokens = ApiTokenRepository(session)
    if len([t for t in tokens.of_user(user) if t.revoked_at is None]) >= MAX_TOKENS_PER_USER:
        raise InvalidInput(f"{user} already holds {MAX_TOKENS_PER_USER} tokens; revoke some")
    lookup = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    token_id = tokens.add(lookup, _digest(secret), user, name, list(scopes), now, expires_at)
    return IssuedToken(token_id, f"{PREFIX}{lookup}_{secret}", expires_at)


def mint(
    session: Session,
    maker: Principal,
    name: str,
    scopes: Sequence[Scope],
    now: datetime,
    lifetime: timedelta | None = None,
) -> IssuedToken:
    """A token for ``maker.user`` that does not outgrow the credential making it.

    Scopes beyond the maker's are refused. Made with a gpupool token that expires, the new token
    expires with it when ``lifetime`` is left out, and a ``lifetime`` reaching past it is
    refused; both raise ``Forbidden`` and write nothing.
    """
    beyond = sorted(set(scopes) - maker.scopes)
    if beyond:
        raise Forbidden(
            f"a token cannot carry scopes the credential making it lacks: {', '.join(beyond)}"
        )
    expires_at = now + lifetime if lifetime is not None else None
    limit = maker.token_expires_at if maker.token_id is not None else None
    if limit is not None:
        if expires_at is None:
            expires_at = limit
        elif expires_at > limit:
            raise Forbidden(
                f"the token making this one expires at {limit.isoformat(timespec='seconds')}, "
                "and a token cannot outlive the token that makes it: ask for an earlier "
                "expiry, or leave expires_in_days out to expire with it"
            )
    return issue(session, maker.user, name, list(scopes), now, expires_at)


def verify(session: Session, token: str, now: datetime) -> tuple[ApiToken, Principal]:
    """The token's record and the principal it stands for; raises ``InvalidToken``."""
    lookup, secret = _split(token)
    found = ApiTokenRepository(session).by_lookup(lookup)
    if found is None or not hmac.compare_digest(found.secret_sha256, _digest(secret)):
        raise InvalidToken("unknown token")
    return found, _principal(session, found, now)


def verify_id(
    session: Session, token_id: int, user: str, now: datetime
) -> tuple[ApiToken, Principal]:
    """The token a browser session was signed in with, checked again; raises ``InvalidToken``."""
    try:
        found = ApiTokenRepository(session).get(token_id)
    except NotFound as error:
        raise InvalidToken("the token this session was signed in with is gone") from error
    if found.user != user:
        raise InvalidToken("the token this session was signed in with is not this user's")
    return found, _principal(session, found, now)


def _principal(session: Session, found: ApiToken, now: datetime) -> Principal:
    if found.revoked_at is not None:
        raise InvalidToken("this token was revoked")
    if found.expires_at is not None and found.expires_at <= now:
        raise InvalidToken("this token has expired")
    held = RoleRepository(session).principal(found.user, found.scopes)
    return replace(held, token_id=found.id, token_expires_at=found.expires_at)


BOOTSTRAP_TOKEN_NAME = "bootstrap admin token"  # noqa: S105 - a name, not a secret


def ensure_admin(books: Books, token_file: Path, reissue: bool = False) -> str | None:
    """Make sure the bootstrap admin exists and holds a working admin token, kept in
    ``token_file``.

    Returns the token when a new one was issued (to be printed once), else ``None``. None is
    issued while a working one exists, even when ``token_file`` is missing: a fresh data dir on
    a kept database (every restart of a Kubernetes pod) must not mint, and log, another
    all-powerful token each time. ``reissue`` revokes the bootstrap admin's tokens and issues
    a new one (``gpupool init --new-admin-token``), for when the old one is lost.
    """
    people = PeopleRepository(books.session)
    if ADMIN_USER not in {name for name, _, _ in people.users()}:
        people.add_user(ADMIN_USER, "Bootstrap administrator")
    if Role.ADMIN not in books.roles.principal(ADMIN_USER).pool_roles:
        books.grant_role(ADMIN_USER, Role.ADMIN, actor="bootstrap")
    now = books.clock()
    if not reissue and token_file.exists():
        try:
            verify(books.session, token_file.read_text().strip(), now)
            return None
        except (InvalidToken, NotFound):
            pass  # a new database behind an old file: issue a new token
    tokens = ApiTokenRepository(books.session)
    working = [
        token
        for token in tokens.of_user(ADMIN_USER)
        if token.name == BOOTSTRAP_TOKEN_NAME
        and token.revoked_at is None
        and (token.expires_at is None or token.expires_at > now)
    ]
    if working and not reissue:
        return None
    for token in working:
        tokens.revoke(token.id, now)
    issued = issue(books.session, ADMIN_USER, BOOTSTRAP_TOKEN_NAME, list(Scope), now)
    write_private(token_file, issued.token + "\n")
    return issued.token
