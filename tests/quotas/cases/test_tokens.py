"""The token use cases: a token is made and revoked only with the ``manage`` scope, revoked
by its holder or an admin (anyone else is told there is no such token), and audited."""

from __future__ import annotations

from datetime import timedelta

import pytest

from quotas.access import Principal, Scope
from quotas.cases.tokens import make_token, own_tokens, revoke_token
from quotas.errors import Forbidden, MissingScope, NotFound
from quotas.service import Books
from tests.quotas.cases.conftest import ROLES, narrowed, outcome
from tests.quotas.db.conftest import NOW


def audited(books: Books, action: str) -> int:
    return books.audit.search(action=action)[1]


def test_a_token_is_made_with_manage_and_audited(pool: Books, cast: dict[str, Principal]) -> None:
    with pytest.raises(MissingScope):
        make_token(pool, narrowed(cast["pi"], Scope.READ), "ci", [Scope.READ], None)
    assert own_tokens(pool, cast["pi"]) == []

    issued, made_at = make_token(
        pool, cast["pi"], "ci", [Scope.JOBS, Scope.READ], timedelta(days=3)
    )

    assert made_at == NOW
    assert issued.expires_at == NOW + timedelta(days=3)
    (listed,) = own_tokens(pool, cast["pi"])
    assert (listed.id, listed.name, set(listed.scopes)) == (issued.id, "ci", {"jobs", "read"})
    (entry,), _ = pool.audit.search(action="token.issue")
    assert entry.actor == "seoyeon.lee"
    assert entry.after is not None
    assert entry.after["scopes"] == ["jobs", "read"]


def test_a_token_never_carries_more_than_the_credential_making_it(
    pool: Books, cast: dict[str, Principal]
) -> None:
    maker = narrowed(cast["pi"], Scope.MANAGE)

    with pytest.raises(Forbidden, match=r"lacks: jobs"):
        make_token(pool, maker, "wider", [Scope.JOBS], None)
    assert audited(pool, "token.issue") == 0


def test_a_token_is_revoked_by_its_holder_or_an_admin(
    pool: Books, cast: dict[str, Principal]
) -> None:
    issued, _ = make_token(pool, cast["researcher"], "laptop", [Scope.READ], None)

    revoked = {
        role: outcome(revoke_token, pool, cast[role], issued.id)
        for role in ROLES
        if role not in ("admin", "researcher")
    }

    assert set(revoked.values()) == {"NotFound"}
    with pytest.raises(MissingScope):
        revoke_token(pool, narrowed(cast["researcher"], Scope.READ), issued.id)
    assert [token.id for token in own_tokens(pool, cast["researcher"])] == [issued.id]
    revoke_token(pool, cast["admin"], issued.id)
    revoke_token(pool, cast["researcher"], issued.id)  # again: nothing more happens
    assert own_tokens(pool, cast["researcher"]) == []
    assert audited(pool, "token.revoke") == 1
    with pytest.raises(NotFound, match=r"^no token 999999$"):
        revoke_token(pool, cast["admin"], 999_999)
