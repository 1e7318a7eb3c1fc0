"""Bearer JWTs from the identity provider: what is accepted, what is refused and why, and how
the provider's keys are fetched, cached and refetched when it rotates them."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

import pytest

from portal.deps import InvalidBearer
from portal.identity import JwksVerifier, ProviderUnreachable
from quotas.clock import utc_now
from tests.portal.oidc_provider import CLIENT_ID, OidcProvider, new_key, served_provider


class Clock:
    def __init__(self) -> None:
        self.now = utc_now()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture
def provider() -> Iterator[OidcProvider]:
    with served_provider() as provider:
        yield provider


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def verifier(provider: OidcProvider, clock: Clock) -> JwksVerifier:
    return JwksVerifier(provider.issuer, CLIENT_ID, cache_seconds=300, clock=clock)


def test_a_token_from_the_provider_yields_its_claims(
    provider: OidcProvider, verifier: JwksVerifier
) -> None:
    provider.subject = "kaist-0042"
    provider.groups = ["kaist", "national-auditors"]

    claims = verifier.verify(provider.mint())

    assert claims["sub"] == "kaist-0042"
    assert claims["groups"] == ["kaist", "national-auditors"]


def now() -> int:
    return int(time.time())


REFUSALS: dict[str, tuple[Callable[[OidcProvider], str], str]] = {
    "expired": (lambda p: p.mint(iat=now() - 7200, exp=now() - 3600), "expired"),
    "another audience": (lambda p: p.mint(aud="some-other-service"), "meant for"),
    "another issuer": (lambda p: p.mint(iss="https://login.example.org"), "issued by"),
    "not yet valid": (lambda p: p.mint(nbf=now() + 3600), "not valid yet"),
    "issued in the future": (lambda p: p.mint(iat=now() + 3600), "not valid yet"),
    "no expiry": (lambda p: p.mint(exp=None), "'exp'"),
    "no subject": (lambda p: p.mint(sub=None), "'sub'"),
    "forged signature": (lambda p: p.mint(key=new_key(), kid=str(p.signing_key.kid)), "signature"),
    "unpublished key": (lambda p: p.mint(key=new_key()), "does not publish"),
    "alg none": (lambda p: p.mint_unsigned(), "'none' is not accepted"),
    "HS256 with the public key": (lambda p: p.mint_hs256(p.public_pem()), "'HS256'"),
    "not a JWT": (lambda p: "gibberish", "not a signed JWT"),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_bad_token_is_refused_with_the_reason(
    provider: OidcProvider, verifier: JwksVerifier, case: str
) -> None:
    make, reason = REFUSALS[case]

    with pytest.raises(InvalidBearer, match=reason):
        verifier.verify(make(provider))


def test_small_clock_skew_is_tolerated(provider: OidcProvider, verifier: JwksVerifier) -> None:
    assert verifier.verify(provider.mint(iat=now() + 20, nbf=now() + 20))["sub"]
    assert verifier.verify(provider.mint(exp=now() - 20))["sub"]


def test_an_audience_list_naming_the_portal_is_accepted(
    provider: OidcProvider, verifier: JwksVerifier
) -> None:
    assert verifier.verify(provider.mint(aud=["account", CLIENT_ID]))["sub"]


def test_keys_are_cached_then_fetched_again_when_stale(
    provider: OidcProvider, verifier: JwksVerifier, clock: Clock
) -> None:
    verifier.verify(provider.mint())
    verifier.verify(provider.mint())
    clock.advance(299)
    verifier.verify(provider.mint())
    assert provider.jwks_fetches == 1

    clock.advance(2)
    verifier.verify(provider.mint())
    assert provider.jwks_fetches == 2


def test_a_rotated_key_is_picked_up_without_waiting_for_the_cache(
    provider: OidcProvider, verifier: JwksVerifier, clock: Clock
) -> None:
    old = str(provider.signing_key.kid)
    before = provider.mint()
    verifier.verify(before)

    provider.add_key()
    provider.retire_key(old)
    clock.advance(11)

    assert verifier.verify(provider.mint())["sub"] == provider.subject
    assert provider.jwks_fetches == 2
    with pytest.raises(InvalidBearer, match="does not publish"):
        verifier.verify(before)


def test_unknown_key_ids_refetch_at_most_every_ten_seconds(
    provider: OidcProvider, verifier: JwksVerifier, clock: Clock
) -> None:
    verifier.verify(provider.mint())
    provider.add_key()

    for _ in range(5):
        with pytest.raises(InvalidBearer, match="does not publish"):
            verifier.verify(provider.mint())
        clock.advance(1)
    assert provider.jwks_fetches == 1

    clock.advance(5)
    assert verifier.verify(provider.mint())["sub"]
    assert provider.jwks_fetches == 2


def test_old_keys_serve_while_the_provider_cannot_answer(
    provider: OidcProvider, verifier: JwksVerifier, clock: Clock
) -> None:
    verifier.verify(provider.mint())
    provider.jwks_down = True
    clock.advance(301)

    assert verifier.verify(provider.mint())["sub"]
    assert verifier.verify(provider.mint())["sub"]
    assert provider.jwks_fetches == 2  # one failed refresh, then a pause before the next

    provider.jwks_down = False
    clock.advance(11)
    assert verifier.verify(provider.mint())["sub"]
    assert provider.jwks_fetches == 3


def test_an_unreachable_provider_answers_503_not_401(clock: Clock) -> None:
    with served_provider() as gone:
        issuer, token = gone.issuer, gone.mint()
    verifier = JwksVerifier(issuer, CLIENT_ID, clock=clock)

    with pytest.raises(ProviderUnreachable) as raised:
        verifier.verify(token)

    assert raised.value.status == 503


def test_a_discovery_document_for_another_issuer_is_refused(
    provider: OidcProvider, clock: Clock
) -> None:
    verifier = JwksVerifier(provider.issuer + "/", CLIENT_ID, clock=clock)

    with pytest.raises(ProviderUnreachable, match="names issuer"):
        verifier.verify(provider.mint(iss=provider.issuer + "/"))
