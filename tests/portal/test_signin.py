"""Signing in: through the identity provider with a browser, with a bearer JWT from it, and with
a token on the sign-in page where that is allowed.

The provider stand-in listens on loopback; the portal runs under ``TestClient`` at
``http://testserver``. The browser's redirects between the two hosts are followed by hand.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from portal.app import create_app
from portal.identity import JwksVerifier
from quotas.access import Role, Scope
from quotas.clock import utc_now
from quotas.db.access import IdentityLinkRepository
from quotas.db.session import session_factory, transaction
from tests.portal.conftest import Demo, seed_portal
from tests.portal.oidc_provider import (
    CLIENT_ID,
    CLIENT_SECRET,
    OidcProvider,
    new_key,
    s256,
    served_provider,
)

PORTAL = "http://testserver"
SUBJECT = "kaist-0042"
"""jiwoo.jung's subject at the identity provider."""


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class OidcPortal:
    provider: OidcProvider
    client: TestClient
    engine: Engine
    tokens: dict[str, str]
    clock: Clock

    def link(self, subject: str, user: str) -> None:
        with transaction(session_factory(self.engine)) as session:
            IdentityLinkRepository(session).link_subject(self.provider.issuer, subject, user)

    def link_group(self, group: str, role: Role, account: str | None = None) -> None:
        with transaction(session_factory(self.engine)) as session:
            IdentityLinkRepository(session).link_group(self.provider.issuer, group, role, account)

    def bearer(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def submit(self, user: str, project: str) -> str:
        body = {"project": project, "entrypoint": "python train.py", "gpus": 1, "time_limit": "1h"}
        headers = self.bearer(self.tokens[user])
        response = self.client.post("/api/v1/jobs", json=body, headers=headers)
        assert response.status_code == 201, response.text
        job: str = response.json()["job"]["id"]
        return job

    def job_ids(self, headers: dict[str, str] | None = None) -> set[str]:
        response = self.client.get("/api/v1/jobs", headers=headers or {})
        assert response.status_code == 200, response.text
        return {job["id"] for job in response.json()["items"]}

    def start_login(self) -> str:
        """Follow the portal's redirect to the provider; the authorization URL it sent us to."""
        start = self.client.get("/auth/login", follow_redirects=False)
        assert start.status_code == 302, start.text
        location: str = start.headers["location"]
        assert location.startswith(f"{self.provider.issuer}/authorize?")
        return location

    def consent(self, authorize_url: str) -> str:
        """The provider's redirect back to the portal, as a portal-relative URL."""
        back = httpx.get(authorize_url, follow_redirects=False)
        assert back.status_code == 302, back.text
        parts = urlsplit(back.headers["location"])
        assert f"{parts.scheme}://{parts.netloc}" == PORTAL
        return f"{parts.path}?{parts.query}"

    def sign_in(self) -> httpx.Response:
        """The whole browser round trip; the portal's answer to the callback."""
        callback = self.consent(self.start_login())
        answer: httpx.Response = self.client.get(callback, follow_redirects=False)
        return answer


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with served_provider(redirect_uris=[f"{PORTAL}/auth/callback"], subject=SUBJECT) as provider:
        yield provider


def oidc_portal(
    url: str, data_dir: Path, provider: OidcProvider, **settings: Any
) -> Iterator[OidcPortal]:
    base, engine, _, tokens = seed_portal(url, data_dir)
    configured = base.model_copy(
        update={
            "oidc_issuer": provider.issuer,
            "oidc_client_id": CLIENT_ID,
            "oidc_client_secret": CLIENT_SECRET,
            "public_url": PORTAL,
            **settings,
        }
    )
    clock = Clock()
    verifier = JwksVerifier(provider.issuer, CLIENT_ID, clock=clock)
    with TestClient(create_app(configured, engine, verifier)) as client:
        yield OidcPortal(provider, client, engine, tokens, clock)
    engine.dispose()


@pytest.fixture
def portal(fresh_database_url: str, tmp_path: Path, provider: OidcProvider) -> Iterator[OidcPortal]:
    yield from oidc_portal(fresh_database_url, tmp_path, provider)


# the browser flow


def test_signing_in_through_the_provider_opens_a_session_for_the_linked_user(
    portal: OidcPortal,
) -> None:
    portal.link(SUBJECT, "jiwoo.jung")
    mine = portal.submit("jiwoo.jung", "kaist-nlp")
    portal.submit("sungmin.yoon", "snu-medical-imaging")

    signed_in = portal.sign_in()
    page = portal.client.get("/signin")

    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/"
    assert portal.job_ids() == {mine}
    assert "Signed in as <strong>jiwoo.jung</strong>" in page.text


def test_the_authorization_request_carries_pkce_state_and_nonce(portal: OidcPortal) -> None:
    query = parse_qs(urlsplit(portal.start_login()).query)

    assert query["code_challenge_method"] == ["S256"]
    assert len(query["code_challenge"][0]) == 43
    assert query["state"][0]
    assert query["nonce"][0]
    assert query["redirect_uri"] == [f"{PORTAL}/auth/callback"]
    assert "openid" in query["scope"][0].split()


def test_a_code_is_useless_without_the_verifier_that_matches_its_challenge(
    portal: OidcPortal,
) -> None:
    authorize = portal.start_login()
    callback = portal.consent(authorize)
    code = parse_qs(urlsplit(callback).query)["code"][0]
    provider = portal.provider
    made_up = "a-verifier-an-attacker-made-up-that-is-long-enough-0123456789"

    refused = httpx.post(
        f"{provider.issuer}/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": f"{PORTAL}/auth/callback",
            "code_verifier": made_up,
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
    )
    replayed = portal.client.get(callback, follow_redirects=False)

    assert provider.challenges == parse_qs(urlsplit(authorize).query)["code_challenge"]
    assert provider.challenges[0] != s256(made_up)
    assert refused.status_code == 400
    assert refused.json()["error_description"] == "PKCE verification failed"
    assert replayed.status_code == 400  # the code was burnt by the failed attempt
    assert portal.client.get("/api/v1/jobs").status_code == 401


def test_a_callback_with_a_state_the_portal_never_issued_is_refused(portal: OidcPortal) -> None:
    portal.link(SUBJECT, "jiwoo.jung")
    callback = portal.consent(portal.start_login())
    forged = callback.replace("state=", "state=forged")

    answer = portal.client.get(forged, follow_redirects=False)

    assert answer.status_code == 400
    assert "Sign-in did not complete" in answer.text
    assert portal.client.get("/api/v1/jobs").status_code == 401


def test_an_unlinked_identity_is_told_to_ask_an_administrator(portal: OidcPortal) -> None:
    answer = portal.sign_in()

    assert answer.status_code == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert "Ask a gpupool administrator to link it" in answer.text
    assert SUBJECT in answer.text
    assert portal.client.get("/api/v1/jobs").status_code == 401


def test_signing_out_ends_the_session(portal: OidcPortal) -> None:
    portal.link(SUBJECT, "jiwoo.jung")
    portal.sign_in()

    out = portal.client.post("/auth/logout", follow_redirects=False)

    assert out.headers["location"] == "/signin"
    assert portal.client.get("/api/v1/jobs").status_code == 401


def test_a_session_through_the_provider_ends_when_its_id_token_expires(
    portal: OidcPortal,
) -> None:
    portal.link(SUBJECT, "jiwoo.jung")
    signed_in = portal.sign_in()
    cookie = signed_in.headers["set-cookie"]
    assert portal.client.get("/api/v1/jobs").status_code == 200

    later = utc_now() + timedelta(seconds=301)  # the provider's id tokens live 300 s
    portal.client.app.state.portal.clock = lambda: later  # type: ignore[attr-defined]

    assert 290 <= int(cookie.split("Max-Age=")[1].split(";")[0]) <= 300
    assert portal.client.get("/api/v1/jobs").status_code == 401
    assert "Signed in as" not in portal.client.get("/signin").text


def test_a_group_link_holds_in_a_browser_session(portal: OidcPortal) -> None:
    portal.link(SUBJECT, "jiwoo.jung")
    portal.link_group("national-auditors", Role.AUDITOR)
    other = portal.submit("sungmin.yoon", "snu-medical-imaging")
    portal.provider.groups = ["national-auditors"]

    portal.sign_in()

    assert other in portal.job_ids()


# bearer JWTs from the provider


def test_a_bearer_jwt_from_the_provider_works_on_the_api(portal: OidcPortal) -> None:
    portal.link(SUBJECT, "jiwoo.jung")
    mine = portal.submit("jiwoo.jung", "kaist-nlp")

    assert portal.job_ids(portal.bearer(portal.provider.mint())) == {mine}


def test_a_group_link_grants_the_auditor_role(portal: OidcPortal) -> None:
    portal.link(SUBJECT, "jiwoo.jung")
    portal.link_group("national-auditors", Role.AUDITOR)
    mine = portal.submit("jiwoo.jung", "kaist-nlp")
    other = portal.submit("sungmin.yoon", "snu-medical-imaging")

    plain = portal.job_ids(portal.bearer(portal.provider.mint()))
    auditing = portal.job_ids(portal.bearer(portal.provider.mint(groups=["national-auditors"])))

    assert plain == {mine}
    assert auditing == {mine, other}


def now() -> int:
    return int(time.time())


BAD_TOKENS: dict[str, tuple[Callable[[OidcProvider], str], str]] = {
    "expired": (lambda p: p.mint(iat=now() - 7200, exp=now() - 3600), "expired"),
    "wrong audience": (lambda p: p.mint(aud="some-other-service"), "meant for"),
    "wrong issuer": (lambda p: p.mint(iss="https://login.example.org"), "issued by"),
    "bad signature": (lambda p: p.mint(key=new_key(), kid=str(p.signing_key.kid)), "signature"),
    "alg none": (lambda p: p.mint_unsigned(), "'none'"),
    "HS256 keyed with the public key": (lambda p: p.mint_hs256(p.public_pem()), "'HS256'"),
}


@pytest.mark.parametrize("case", BAD_TOKENS)
def test_a_bad_bearer_jwt_is_answered_401_with_the_reason(portal: OidcPortal, case: str) -> None:
    portal.link(SUBJECT, "jiwoo.jung")
    make, reason = BAD_TOKENS[case]

    answer = portal.client.get("/api/v1/jobs", headers=portal.bearer(make(portal.provider)))

    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert reason in answer.json()["detail"]


def test_a_bearer_jwt_for_an_unlinked_subject_is_forbidden(portal: OidcPortal) -> None:
    answer = portal.client.get("/api/v1/jobs", headers=portal.bearer(portal.provider.mint()))

    assert answer.status_code == 403
    assert "ask an administrator" in answer.json()["detail"]


def test_the_provider_rotating_its_keys_needs_no_restart(portal: OidcPortal) -> None:
    portal.link(SUBJECT, "jiwoo.jung")
    provider = portal.provider
    old_kid = str(provider.signing_key.kid)
    old = provider.mint()
    assert portal.job_ids(portal.bearer(old)) == set()

    provider.add_key()
    provider.retire_key(old_kid)
    portal.clock.advance(11)
    new = portal.client.get("/api/v1/jobs", headers=portal.bearer(provider.mint()))
    stale = portal.client.get("/api/v1/jobs", headers=portal.bearer(old))

    assert new.status_code == 200
    assert stale.status_code == 401
    assert provider.jwks_fetches == 2


# token sign-in


def csrf_of(client: TestClient) -> str:
    page = client.get("/signin")
    assert page.status_code == 200
    text: str = page.text
    marker = 'name="csrf" value="'
    start = text.index(marker) + len(marker)
    return text[start : text.index('"', start)]


def test_with_no_provider_the_sign_in_page_takes_a_token(demo: Demo) -> None:
    page = demo.client.get("/signin")

    assert page.headers["content-type"].startswith("text/html")
    assert 'action="/auth/token"' in page.text
    assert "national identity provider" not in page.text
    assert demo.client.get("/auth/login").status_code == 404


def test_a_personal_access_token_signs_the_browser_in(demo: Demo) -> None:
    csrf = csrf_of(demo.client)

    answer = demo.client.post(
        "/auth/token",
        data={"token": demo.tokens["jiwoo.jung"], "csrf": csrf},
        follow_redirects=False,
    )

    assert answer.status_code == 303
    assert demo.client.get("/api/v1/jobs").status_code == 200
    assert "jiwoo.jung" in demo.client.get("/signin").text


def test_the_admin_token_signs_the_browser_in(demo: Demo) -> None:
    csrf = csrf_of(demo.client)

    demo.client.post("/auth/token", data={"token": demo.admin_token, "csrf": csrf})

    assert "Signed in as <strong>admin</strong>" in demo.client.get("/signin").text


def test_a_token_form_without_this_sessions_csrf_value_is_refused(demo: Demo) -> None:
    csrf_of(demo.client)

    answer = demo.client.post(
        "/auth/token", data={"token": demo.tokens["jiwoo.jung"], "csrf": "guessed"}
    )

    assert answer.status_code == 403
    assert demo.client.get("/api/v1/jobs").status_code == 401


def test_an_unknown_token_shows_the_page_again_with_the_reason(demo: Demo) -> None:
    csrf = csrf_of(demo.client)

    answer = demo.client.post("/auth/token", data={"token": "gpp_000000000000_nope", "csrf": csrf})

    assert answer.status_code == 401
    assert "unknown token" in answer.text
    assert demo.client.get("/api/v1/jobs").status_code == 401


def test_a_token_narrowed_to_reading_cannot_open_a_full_session(demo: Demo) -> None:
    csrf = csrf_of(demo.client)
    reader = demo.token("jiwoo.jung", [Scope.READ])

    answer = demo.client.post("/auth/token", data={"token": reader, "csrf": csrf})

    assert answer.status_code == 403
    assert demo.client.get("/api/v1/jobs").status_code == 401


def test_with_a_provider_the_page_offers_it_and_refuses_tokens(portal: OidcPortal) -> None:
    page = portal.client.get("/signin")
    answer = portal.client.post(
        "/auth/token", data={"token": portal.tokens["jiwoo.jung"], "csrf": "x"}
    )

    assert "Sign in with the national identity provider" in page.text
    assert 'action="/auth/token"' not in page.text
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
    assert portal.client.get("/api/v1/jobs").status_code == 401


def test_token_sign_in_can_be_kept_beside_the_provider(
    fresh_database_url: str, tmp_path: Path, provider: OidcProvider
) -> None:
    for portal in oidc_portal(fresh_database_url, tmp_path, provider, token_sign_in=True):
        page = portal.client.get("/signin").text
        csrf = csrf_of(portal.client)
        portal.client.post("/auth/token", data={"token": portal.tokens["jiwoo.jung"], "csrf": csrf})

        assert "Sign in with the national identity provider" in page
        assert 'action="/auth/token"' in page
        assert portal.client.get("/api/v1/jobs").status_code == 200
