"""Tokens that outgrow their maker, and browser sessions that outlive their token.

Issue 8, item 8. A 90-second token minted a token without expiry; a ``read``-only token tried
for ``manage``; a browser signed in with a token stayed signed in for 14 days after that token
was revoked or had expired. Now a token made with a token carries a subset of its scopes and
expires no later than it (asking for more is refused with 403, leaving the expiry out means
"with the maker"), and a session is tied to the token it signed in with: every request re-checks
it, and the cookie lives no longer than the token.

Every attack runs through the public API of the seeded demo pool (``tests/portal``); the portal's
clock is moved forward to let tokens expire.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import itsdangerous
import pytest
from fastapi.testclient import TestClient

from portal.deps import Portal
from portal.sessions import COOKIE, MAX_SESSION
from quotas.access import Scope
from quotas.clock import utc_now
from quotas.db.access import ApiTokenRepository
from quotas.tokens import ADMIN_USER, ensure_admin, issue
from tests.portal.conftest import Demo

API = "/api/v1"
USER = "jiwoo.jung"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def portal_of(demo: Demo) -> Portal:
    found: Portal = demo.client.app.state.portal  # type: ignore[attr-defined]
    return found


def move_clock(demo: Demo, by: timedelta) -> None:
    """Every "now" of the portal (tokens, sessions, the books) moves forward by ``by``."""
    later = utc_now() + by
    portal_of(demo).clock = lambda: later


def short_token(demo: Demo, lives: timedelta, scopes: list[Scope] | None = None) -> tuple[int, str]:
    with demo.books() as books:
        now = utc_now()
        made = issue(books.session, USER, "short", scopes or list(Scope), now, now + lives)
    return made.id, made.token


def tokens_of(demo: Demo, user: str = USER) -> list[Any]:
    with demo.books() as books:
        return ApiTokenRepository(books.session).of_user(user)


def audit_total(demo: Demo) -> int:
    with demo.books() as books:
        return books.audit.search(limit=1)[1]


def expiry_of(made: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(made["expires_at"])


def csrf_of(client: TestClient) -> str:
    page: str = client.get("/signin").text
    marker = 'name="csrf" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def sign_in(demo: Demo, token: str) -> str:
    """Sign the demo's browser in with ``token``; the session cookie's ``Set-Cookie``."""
    answer = demo.client.post(
        "/auth/token",
        data={"token": token, "csrf": csrf_of(demo.client)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    cookie: str = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    return cookie


def max_age(set_cookie: str) -> int:
    found = re.search(r"Max-Age=(\d+)", set_cookie, re.IGNORECASE)
    assert found is not None, set_cookie
    return int(found.group(1))


def signed_out(demo: Demo) -> bool:
    """The browser's session gives nothing any more: the API says 401, the page no user."""
    api = demo.client.get(f"{API}/jobs")
    page = demo.client.get("/signin").text
    return api.status_code == 401 and "Signed in as" not in page


# minting


def test_a_90_second_token_cannot_mint_a_token_that_outlives_it(demo: Demo) -> None:
    maker_id, maker = short_token(demo, timedelta(seconds=90))
    before, audited = len(tokens_of(demo)), audit_total(demo)

    for_a_day = demo.client.post(
        f"{API}/tokens",
        json={"name": "forever", "scopes": ["read"], "expires_in_days": 1},
        headers=bearer(maker),
    )
    left_out = demo.client.post(
        f"{API}/tokens", json={"name": "forever", "scopes": ["read"]}, headers=bearer(maker)
    )

    assert for_a_day.status_code == 403
    assert for_a_day.headers["content-type"] == "application/problem+json"
    assert "cannot outlive the token that makes it" in for_a_day.json()["detail"]
    assert left_out.status_code == 201, left_out.text
    [made] = [token for token in tokens_of(demo) if token.id == left_out.json()["id"]]
    [maker_record] = [token for token in tokens_of(demo) if token.id == maker_id]
    assert made.expires_at == maker_record.expires_at  # capped, and said so in the answer
    assert expiry_of(left_out.json()) == maker_record.expires_at
    assert len(tokens_of(demo)) == before + 1
    assert audit_total(demo) == audited + 1

    move_clock(demo, timedelta(seconds=91))
    child = demo.client.get(f"{API}/me", headers=bearer(left_out.json()["token"]))
    assert child.status_code == 401
    assert "expired" in child.json()["detail"]


def test_a_read_only_token_cannot_mint_a_manage_token(demo: Demo) -> None:
    reader = demo.token(USER, [Scope.READ])
    narrow = demo.token(USER, [Scope.READ, Scope.MANAGE])
    before, audited = len(tokens_of(demo)), audit_total(demo)

    from_read = demo.client.post(
        f"{API}/tokens", json={"name": "root", "scopes": ["manage"]}, headers=bearer(reader)
    )
    widen = demo.client.post(
        f"{API}/tokens",
        json={"name": "root", "scopes": ["manage", "jobs"]},
        headers=bearer(narrow),
    )

    assert from_read.status_code == 403
    assert "manage" in from_read.json()["detail"]
    assert widen.status_code == 403
    assert "jobs" in widen.json()["detail"]
    assert "token" not in from_read.json()
    assert "token" not in widen.json()
    assert len(tokens_of(demo)) == before
    assert audit_total(demo) == audited


def test_a_token_that_never_expires_still_mints_as_asked(demo: Demo) -> None:
    made = demo.client.post(
        f"{API}/tokens",
        json={"name": "ci", "scopes": ["jobs"], "expires_in_days": 30},
        headers=demo.headers(USER),
    )
    forever = demo.client.post(
        f"{API}/tokens", json={"name": "ci", "scopes": ["jobs"]}, headers=demo.headers(USER)
    )

    assert made.status_code == 201, made.text
    assert expiry_of(made.json()) - utc_now() > timedelta(days=29)
    assert forever.status_code == 201
    assert forever.json()["expires_at"] is None


# browser sessions


def test_revoking_the_token_a_browser_signed_in_with_signs_the_browser_out(demo: Demo) -> None:
    laptop = demo.client.post(
        f"{API}/tokens",
        json={"name": "laptop", "scopes": ["read", "jobs", "manage"]},
        headers=demo.headers(USER),
    ).json()
    sign_in(demo, laptop["token"])
    assert demo.client.get(f"{API}/jobs").status_code == 200
    assert f"Signed in as <strong>{USER}</strong>" in demo.client.get("/signin").text

    revoked = demo.client.delete(f"{API}/tokens/{laptop['id']}", headers=demo.headers(USER))
    before, audited = len(tokens_of(demo)), audit_total(demo)
    refused = demo.client.get(f"{API}/jobs")
    mint = demo.client.post(f"{API}/tokens", json={"name": "again", "scopes": ["read"]})

    assert revoked.status_code == 204
    assert refused.status_code == 401
    assert "items" not in refused.json()
    assert f"{COOKIE}=null" in refused.headers["set-cookie"]  # the browser drops the cookie
    assert mint.status_code == 401
    assert len(tokens_of(demo)) == before
    assert audit_total(demo) == audited
    assert signed_out(demo)


def test_a_session_on_an_expired_token_is_refused(demo: Demo) -> None:
    _, token = short_token(demo, timedelta(hours=1))
    cookie = sign_in(demo, token)
    assert demo.client.get(f"{API}/me").json()["user"] == USER

    move_clock(demo, timedelta(hours=1, seconds=1))

    assert 3590 <= max_age(cookie) <= 3600  # the cookie lives no longer than the token
    assert signed_out(demo)


def test_a_session_on_a_token_that_never_expires_still_ends(demo: Demo) -> None:
    cookie = sign_in(demo, demo.tokens[USER])
    assert demo.client.get(f"{API}/jobs").status_code == 200

    move_clock(demo, MAX_SESSION + timedelta(seconds=1))

    assert max_age(cookie) <= MAX_SESSION.total_seconds()
    assert signed_out(demo)


def test_a_session_mints_no_token_beyond_the_token_it_signed_in_with(demo: Demo) -> None:
    _, token = short_token(demo, timedelta(days=2))
    sign_in(demo, token)
    before = len(tokens_of(demo))

    too_long = demo.client.post(
        f"{API}/tokens", json={"name": "ci", "scopes": ["jobs"], "expires_in_days": 30}
    )
    capped = demo.client.post(f"{API}/tokens", json={"name": "ci", "scopes": ["jobs"]})

    assert too_long.status_code == 403
    assert capped.status_code == 201, capped.text
    assert expiry_of(capped.json()) - utc_now() <= timedelta(days=2)
    assert len(tokens_of(demo)) == before + 1


@pytest.mark.parametrize(
    "session",
    [
        {"user": "admin", "csrf": "x"},  # as the portal wrote them before: 14 days, no token
        {"user": "admin", "csrf": "x", "token_id": 1, "ends_at": 4102444800},  # someone else's
    ],
    ids=["untied", "another users token"],
)
def test_a_session_not_tied_to_its_users_token_is_refused(
    demo: Demo, session: dict[str, Any]
) -> None:
    with demo.books() as books:
        others = [t.id for t in ApiTokenRepository(books.session).of_user(USER)]
    if "token_id" in session:
        session = session | {"token_id": others[0]}
    payload = base64.b64encode(json.dumps(session).encode())
    signer = itsdangerous.TimestampSigner(str(demo.settings.session_secret))
    demo.client.cookies.set(COOKIE, signer.sign(payload).decode())

    answer = demo.client.get(f"{API}/users")

    assert answer.status_code == 401
    assert "items" not in answer.json()
    assert signed_out(demo)


# -- the bootstrap admin token ---------------------------------------------------------------


def test_a_fresh_data_dir_on_a_kept_database_mints_no_new_admin_token(
    demo: Demo, tmp_path: Path
) -> None:
    """Every restart of a Kubernetes pod has an empty data dir and the same database: it must
    not mint, and print to the log, another all-powerful token each time."""
    fresh = tmp_path / "fresh-pod"
    fresh.mkdir()
    with demo.books() as books:
        before = ApiTokenRepository(books.session).of_user(ADMIN_USER)
        assert ensure_admin(books, fresh / "admin.token") is None
        assert ApiTokenRepository(books.session).of_user(ADMIN_USER) == before
    assert not (fresh / "admin.token").exists()


def test_a_lost_admin_token_is_replaced_and_the_old_one_stops_working(
    demo: Demo, tmp_path: Path
) -> None:
    with demo.books() as books:
        new = ensure_admin(books, tmp_path / "lost" / "admin.token", reissue=True)
    assert new is not None
    assert (tmp_path / "lost" / "admin.token").read_text().strip() == new
    assert demo.client.get(f"{API}/me", headers=bearer(demo.admin_token)).status_code == 401
    assert demo.client.get(f"{API}/me", headers=bearer(new)).status_code == 200
