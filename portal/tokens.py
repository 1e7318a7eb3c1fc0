"""Personal access tokens and the bootstrap admin token.

A token reads ``gpp_<lookup>_<secret>``: ``lookup`` finds the row, only the SHA-256 of the secret
is stored and compared in constant time. The secret holds 256 random bits, so a plain hash is
as strong as a slow one here (there is no low-entropy password to guess).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from quotas.access import Principal, Role, Scope
from quotas.db.access import ApiToken, ApiTokenRepository, RoleRepository
from quotas.db.repositories import PeopleRepository
from quotas.errors import InvalidInput, NotFound
from quotas.service import Books

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
    return IssuedToken(token_id, f"{PREFIX}{lookup}_{secret}")


def verify(session: Session, token: str, now: datetime) -> tuple[ApiToken, Principal]:
    """The token's record and the principal it stands for; raises ``InvalidToken``."""
    lookup, secret = _split(token)
    found = ApiTokenRepository(session).by_lookup(lookup)
    if found is None or not hmac.compare_digest(found.secret_sha256, _digest(secret)):
        raise InvalidToken("unknown token")
    if found.revoked_at is not None:
        raise InvalidToken("this token was revoked")
    if found.expires_at is not None and found.expires_at <= now:
        raise InvalidToken("this token has expired")
    return found, RoleRepository(session).principal(found.user, found.scopes)


def ensure_admin(books: Books, token_file: Path) -> str | None:
    """Make sure the bootstrap admin exists and ``token_file`` holds a working admin token.

    Returns the token when a new one was issued (to be printed once), else ``None``.
    """
    people = PeopleRepository(books.session)
    if ADMIN_USER not in {name for name, _, _ in people.users()}:
        people.add_user(ADMIN_USER, "Bootstrap administrator")
    if Role.ADMIN not in books.roles.principal(ADMIN_USER).pool_roles:
        books.grant_role(ADMIN_USER, Role.ADMIN, actor="bootstrap")
    if token_file.exists():
        try:
            verify(books.session, token_file.read_text().strip(), books.clock())
            return None
        except (InvalidToken, NotFound):
            pass  # a new database behind an old file: issue a new token
    issued = issue(books.session, ADMIN_USER, "bootstrap admin token", list(Scope), books.clock())
    token_file.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(issued.token + "\n")
    os.chmod(token_file, 0o600)
    return issued.token
