"""Use cases of personal access tokens: listing your own, making one, revoking one.

Making or revoking a token needs the ``manage`` scope. A token is revoked by its holder or an
admin; anyone else is told there is no such token (ids do not leak). A token made with a token
never outgrows it: ``quotas.tokens.mint`` refuses more scopes or a longer life than the
maker's. Each issue and revocation is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from quotas.access import Principal, Scope
from quotas.db.access import ApiToken, ApiTokenRepository
from quotas.errors import NotFound
from quotas.service import Books
from quotas.tokens import IssuedToken, mint


def own_tokens(books: Books, principal: Principal) -> list[ApiToken]:
    """The principal's tokens that are not revoked, oldest first."""
    tokens = ApiTokenRepository(books.session).of_user(principal.user)
    return [token for token in tokens if token.revoked_at is None]


def make_token(
    books: Books,
    principal: Principal,
    name: str,
    scopes: Sequence[Scope],
    lifetime: timedelta | None,
) -> tuple[IssuedToken, datetime]:
    """A new token of the principal's named ``name`` with ``scopes``, living ``lifetime`` (or as
    long as the token making it); answers it (its secret shown once) and when it was made."""
    principal.require(Scope.MANAGE)
    now = books.clock()
    issued = mint(books.session, principal, name, scopes, now, lifetime)
    books.audit.record(
        now,
        principal.user,
        "token.issue",
        f"user/{principal.user}",
        None,
        {
            "id": issued.id,
            "name": name,
            "scopes": [scope.value for scope in scopes],
            "expires_at": issued.expires_at.isoformat() if issued.expires_at else None,
            "made_with_token": principal.token_id,
        },
    )
    return issued, now


def revoke_token(books: Books, principal: Principal, token_id: int) -> None:
    """Revoke a token: one's own, or anyone's as admin; revoking it again changes nothing."""
    tokens = ApiTokenRepository(books.session)
    token = tokens.get(token_id)
    if token.user != principal.user and not principal.is_admin:
        raise NotFound(f"no token {token_id}")
    principal.require(Scope.MANAGE)
    if token.revoked_at is not None:
        return
    now = books.clock()
    tokens.revoke(token_id, now)
    books.audit.record(
        now,
        principal.user,
        "token.revoke",
        f"user/{token.user}",
        {"id": token.id, "name": token.name},
        None,
    )
