"""Personal access tokens and the bootstrap admin token: hashed, scoped, expiring, revocable."""

from __future__ import annotations

import stat
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from quotas.access import Role, Scope
from quotas.clock import utc_now
from quotas.db.access import ApiTokenRepository
from quotas.db.models import ApiTokenRow
from quotas.errors import InvalidInput
from quotas.tokens import InvalidToken, ensure_admin, issue, verify
from tests.portal.conftest import Demo


def test_the_admin_token_is_written_once_with_mode_0600(demo: Demo, tmp_path: Path) -> None:
    token_file = tmp_path / "again" / "admin.token"
    with demo.books() as books:  # the demo has one already: replace it, writing the file
        first = ensure_admin(books, token_file, reissue=True)
    with demo.books() as books:
        second = ensure_admin(books, token_file)
        _, admin = verify(books.session, token_file.read_text().strip(), utc_now())

    assert first is not None
    assert second is None
    assert token_file.read_text().strip() == first
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert Role.ADMIN in admin.pool_roles


def test_only_a_hash_is_stored_and_a_wrong_secret_is_refused(demo: Demo) -> None:
    token = demo.tokens["jiwoo.jung"]
    lookup = token.split("_")[1]
    with demo.books() as books:
        stored = books.session.scalars(
            select(ApiTokenRow).where(ApiTokenRow.lookup == lookup)
        ).one()
        with pytest.raises(InvalidToken):
            verify(books.session, token[:-2] + "xx", utc_now())

    assert token.split("_", 2)[2] not in (stored.secret_sha256, stored.lookup)
    assert len(stored.secret_sha256) == 64


def test_expired_and_revoked_tokens_are_refused_by_the_api(demo: Demo) -> None:
    with demo.books() as books:
        soon = issue(
            books.session,
            "jiwoo.jung",
            "short",
            [Scope.READ],
            utc_now(),
            utc_now() + timedelta(seconds=1),
        )
        revoked = issue(books.session, "jiwoo.jung", "gone", [Scope.READ], utc_now())
        ApiTokenRepository(books.session).revoke(revoked.id, utc_now())
    with demo.books() as books, pytest.raises(InvalidToken, match="expired"):
        verify(books.session, soon.token, utc_now() + timedelta(seconds=2))

    answer = demo.client.get("/api/v1/jobs", headers={"Authorization": f"Bearer {revoked.token}"})

    assert answer.status_code == 401
    assert "revoked" in answer.json()["detail"]


def test_a_read_only_token_cannot_submit(demo: Demo) -> None:
    token = demo.token("jiwoo.jung", [Scope.READ])
    body = {"project": "kaist-nlp", "entrypoint": "python train.py"}

    answer = demo.client.post(
        "/api/v1/jobs", json=body, headers={"Authorization": f"Bearer {token}"}
    )

    assert answer.status_code == 403
    assert "jobs" in answer.json()["detail"]


def test_a_token_needs_a_name_and_a_scope(demo: Demo) -> None:
    with demo.books() as books:
        with pytest.raises(InvalidInput):
            issue(books.session, "jiwoo.jung", " ", [Scope.READ], utc_now())
        with pytest.raises(InvalidInput):
            issue(books.session, "jiwoo.jung", "x", [], utc_now())
