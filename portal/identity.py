"""Bearer JWTs from the national identity provider, checked against its published keys.

``JwksVerifier`` finds the provider's keys through OpenID discovery
(``{issuer}/.well-known/openid-configuration`` -> ``jwks_uri``), keeps them for
``jwks_cache_seconds`` and fetches them again at once when a token names a key it does not
know (the provider rotated its keys), at most every ``REFETCH_AFTER`` so a stream of made-up key
ids cannot turn the portal into a load generator against the provider. A token must be signed
with RS256 or ES256 (never ``none`` nor a shared-secret HS* algorithm), be issued by the
configured issuer to the configured audience, and be inside its ``exp``/``nbf``/``iat`` window
give or take ``LEEWAY``. Anything else raises ``InvalidBearer`` with the reason; a provider that
cannot be reached answers 503, since the token may well be good.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import (
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from portal.deps import InvalidBearer
from portal.problems import Problem
from portal.settings import PortalSettings
from quotas.clock import Clock, utc_now

log = logging.getLogger(__name__)

ALGORITHMS = ("RS256", "ES256")
"""Asymmetric signatures only: ``none`` and the HS* family are refused."""
LEEWAY = timedelta(seconds=60)
"""Clock skew tolerated between the provider and the portal."""
REFETCH_AFTER = timedelta(seconds=10)
"""The shortest pause between two key fetches prompted by an unknown key id."""
HTTP_TIMEOUT = 10.0


class ProviderUnreachable(Problem):
    """The identity provider's discovery document or keys could not be fetched."""

    def __init__(self, detail: str) -> None:
        super().__init__(503, detail, {"Retry-After": "30"})


def discovery_url(issuer: str) -> str:
    return f"{issuer.rstrip('/')}/.well-known/openid-configuration"


def fetch_discovery(issuer: str) -> dict[str, Any]:
    """The provider's OpenID configuration; its ``issuer`` must be the one configured."""
    document = _get_json(discovery_url(issuer))
    if document.get("issuer") != issuer:
        raise ProviderUnreachable(
            f"the discovery document at {discovery_url(issuer)} names issuer "
            f"{document.get('issuer')!r}, not {issuer!r}"
        )
    return document


def _get_json(url: str) -> dict[str, Any]:
    try:
        response = httpx.get(url, timeout=HTTP_TIMEOUT, follow_redirects=False)
        response.raise_for_status()
        body = response.json()
    except (httpx.HTTPError, ValueError) as error:
        raise ProviderUnreachable(
            f"cannot read {url} from the identity provider: {error}"
        ) from error
    if not isinstance(body, dict):
        raise ProviderUnreachable(f"{url} did not answer with a JSON object")
    return body


@dataclass
class _Keys:
    key_set: KeySet
    stale_at: float
    """When the cache runs out and the next request fetches the keys again."""
    refetch_at: float
    """The earliest moment a token with an unknown key id may prompt a fetch."""


class JwksVerifier:
    """Implements ``portal.deps.BearerVerifier`` against an OpenID provider's JWKS.

    Safe to share between request threads: fetches happen under a lock and the cached key set
    is replaced whole, never changed in place.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        cache_seconds: float = 300.0,
        clock: Clock = utc_now,
        refetch_after: timedelta = REFETCH_AFTER,
    ) -> None:
        self.issuer = issuer
        self.audience = audience
        self.cache_seconds = cache_seconds
        self.clock = clock
        self.refetch_after = refetch_after
        self._jwks_uri: str | None = None
        self._keys: _Keys | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: PortalSettings) -> JwksVerifier:
        if not settings.oidc_issuer:
            raise ValueError("GPUPOOL_OIDC_ISSUER is not set")
        audience = settings.oidc_audience or settings.oidc_client_id
        if not audience:
            raise ValueError("set GPUPOOL_OIDC_AUDIENCE or GPUPOOL_OIDC_CLIENT_ID")
        return cls(settings.oidc_issuer, audience, settings.jwks_cache_seconds)

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims once its signature, issuer, audience and times check out."""
        alg, kid = _header(token)
        keys = self._current_keys()
        try:
            decoded = self._decode(token, keys.key_set)
        except InvalidKeyIdError:
            keys = self._keys_after_unknown_kid(keys)
            try:
                decoded = self._decode(token, keys.key_set)
            except InvalidKeyIdError as error:
                raise InvalidBearer(_unknown_key(kid)) from error
        claims = dict(decoded.claims)
        self._check_claims(claims)
        log.debug("accepted %s token for %s", alg, claims.get("sub"))
        return claims

    @staticmethod
    def _decode(token: str, key_set: KeySet) -> jwt.Token:
        try:
            return jwt.decode(token, key_set, algorithms=list(ALGORITHMS))
        except InvalidKeyIdError:
            raise
        except JoseError as error:
            raise InvalidBearer(f"bad signature ({error.error})") from error
        except ValueError as error:
            raise InvalidBearer(f"unreadable token ({error})") from error

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = self.clock().timestamp()
        registry = jwt.JWTClaimsRegistry(
            now=int(now),
            leeway=int(LEEWAY.total_seconds()),
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError as error:
            raise InvalidBearer("the token has expired") from error
        except MissingClaimError as error:
            raise InvalidBearer(f"the token lacks the {error.claim!r} claim") from error
        except ClaimError as error:
            raise InvalidBearer(self._claim_reason(error, claims)) from error

    def _claim_reason(self, error: ClaimError, claims: dict[str, Any]) -> str:
        if error.claim == "iss":
            return f"the token was issued by {claims.get('iss')!r}, not {self.issuer!r}"
        if error.claim == "aud":
            return f"the token is meant for {claims.get('aud')!r}, not {self.audience!r}"
        if error.claim in ("nbf", "iat"):
            return f"the token is not valid yet ({error.claim} is in the future)"
        return f"invalid {error.claim!r} claim ({error.description})"

    def _current_keys(self) -> _Keys:
        now = self.clock().timestamp()
        keys = self._keys
        if keys is not None and now < keys.stale_at:
            return keys
        with self._lock:
            keys = self._keys
            if keys is not None and now < keys.stale_at:
                return keys
            try:
                return self._fetch_keys(now)
            except ProviderUnreachable as error:
                if keys is None:
                    raise
                log.warning("keeping the identity provider's old keys for now: %s", error.detail)
                retry = now + self.refetch_after.total_seconds()
                self._keys = _Keys(keys.key_set, stale_at=retry, refetch_at=retry)
                return self._keys

    def _keys_after_unknown_kid(self, seen: _Keys) -> _Keys:
        now = self.clock().timestamp()
        with self._lock:
            keys = self._keys
            if keys is not None and keys is not seen:
                return keys  # another thread fetched them meanwhile
            if keys is not None and now < keys.refetch_at:
                return keys
            return self._fetch_keys(now)

    def _fetch_keys(self, now: float) -> _Keys:
        """Fetch the key set; call with the lock held."""
        if self._jwks_uri is None:
            jwks_uri = fetch_discovery(self.issuer).get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri:
                raise ProviderUnreachable("the provider's discovery document has no jwks_uri")
            self._jwks_uri = jwks_uri
        published = _get_json(self._jwks_uri).get("keys")
        if not isinstance(published, list):
            raise ProviderUnreachable(f"{self._jwks_uri} holds no list of keys")
        try:
            key_set = KeySet.import_key_set({"keys": published})
        except (JoseError, KeyError, TypeError, ValueError) as error:
            raise ProviderUnreachable(f"the provider's key set is unreadable: {error}") from error
        self._keys = _Keys(
            key_set,
            stale_at=now + self.cache_seconds,
            refetch_at=now + self.refetch_after.total_seconds(),
        )
        log.info("fetched %d signing keys from %s", len(key_set.keys), self._jwks_uri)
        return self._keys


def _unknown_key(kid: str | None) -> str:
    if kid is None:
        return "the token names no key (kid) and the provider publishes several"
    return f"signed with key {kid!r}, which the provider does not publish"


def _header(token: str) -> tuple[str, str | None]:
    """The token's algorithm and key id, refusing an algorithm outside ``ALGORITHMS``."""
    try:
        header = extract_compact(token.encode("ascii")).headers()
    except (JoseError, ValueError, UnicodeError) as error:
        raise InvalidBearer("not a signed JWT") from error
    alg = header.get("alg")
    if alg not in ALGORITHMS:
        raise InvalidBearer(
            f"algorithm {alg!r} is not accepted; use one of {', '.join(ALGORITHMS)}"
        )
    kid = header.get("kid")
    return str(alg), kid if isinstance(kid, str) else None
