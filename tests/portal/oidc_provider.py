"""A small OpenID provider, served over real HTTP on loopback, that the sign-in tests talk to.

It speaks enough of OpenID Connect for the portal's code paths to run for real: discovery, a
JWKS with RSA keys that can be rotated (``add_key``, ``retire_key``), ``/authorize`` that
consents at once as ``subject`` and redirects back with a code (recording the PKCE challenge),
``/token`` for the authorization-code grant (checks the client, the redirect URI and the PKCE
verifier against the S256 challenge; codes are single use) issuing a signed id token and a JWT
access token, and ``/userinfo``. ``mint`` and friends sign whatever tokens a test needs:
expired, for another audience or issuer, with an unpublished key, unsigned, HMAC-signed.

    with served_provider() as provider:
        provider.subject = "kaist-0042"
        token = provider.mint(expires_in=-60)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus, urlencode

import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

CLIENT_ID = "gpupool-portal"
CLIENT_SECRET = "portal-secret-for-tests"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a code verifier (RFC 7636 §4.2)."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_key() -> RSAKey:
    return RSAKey.generate_key(
        2048, parameters={"kid": secrets.token_hex(4), "use": "sig", "alg": "RS256"}
    )


@dataclass
class Grant:
    """What ``/authorize`` handed out a code for."""

    client_id: str
    redirect_uri: str
    subject: str
    groups: list[str]
    scope: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None


@dataclass
class OidcProvider:
    """The provider's state; the HTTP app reads it on every request, so tests may change it."""

    client_id: str = CLIENT_ID
    client_secret: str = CLIENT_SECRET
    redirect_uris: list[str] = field(default_factory=list)
    subject: str = "user-0001"
    groups: list[str] = field(default_factory=list)
    audience: str | None = None
    """The ``aud`` of access tokens; the client id when unset."""
    require_pkce: bool = True
    keys: list[RSAKey] = field(default_factory=lambda: [new_key()])
    issuer: str = ""
    codes: dict[str, Grant] = field(default_factory=dict)
    challenges: list[str] = field(default_factory=list)
    """Every PKCE challenge ``/authorize`` received, in order."""
    jwks_fetches: int = 0
    jwks_down: bool = False
    """Answer 503 on the JWKS endpoint, as a provider in trouble would."""

    # keys

    @property
    def signing_key(self) -> RSAKey:
        """The newest published key signs."""
        return self.keys[-1]

    def add_key(self) -> str:
        """Publish a new key, which signs from now on; returns its kid."""
        key = new_key()
        self.keys.append(key)
        return str(key.kid)

    def retire_key(self, kid: str) -> None:
        self.keys = [key for key in self.keys if key.kid != kid]

    def jwks(self) -> dict[str, Any]:
        return dict(KeySet(list(self.keys)).as_dict(private=False))

    # tokens

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.audience or self.client_id,
            "sub": self.subject,
            "iat": now,
            "exp": now + 300,
            "groups": list(self.groups),
        }
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def mint(self, key: RSAKey | None = None, kid: str | None = None, **overrides: Any) -> str:
        """A token signed RS256 by ``key`` (default the signing key), with these claims changed.

        ``kid`` names a key in the header other than the signer's (for a forged signature);
        a claim given as ``None`` is left out.
        """
        signer = key or self.signing_key
        header = {"alg": "RS256", "typ": "JWT", "kid": kid or str(signer.kid)}
        return jwt.encode(header, self.claims(**overrides), signer)

    def mint_unsigned(self, **overrides: Any) -> str:
        """A token with ``alg: none`` and an empty signature."""
        header = {"alg": "none", "typ": "JWT"}
        return f"{_segment(header)}.{_segment(self.claims(**overrides))}."

    def mint_hs256(self, secret: bytes, **overrides: Any) -> str:
        """A token MACed with ``secret`` under HS256, naming the signing key's kid."""
        header = {"alg": "HS256", "typ": "JWT", "kid": str(self.signing_key.kid)}
        signing_input = f"{_segment(header)}.{_segment(self.claims(**overrides))}"
        mac = hmac.new(secret, signing_input.encode("ascii"), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    def public_pem(self) -> bytes:
        """The signing key's public half as PEM (what a key-confusion attack MACs with)."""
        return self.signing_key.as_bytes(private=False)

    # the HTTP app

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/authorize", self._authorize),
                Route("/token", self._token, methods=["POST"]),
                Route("/userinfo", self._userinfo),
            ]
        )

    async def _discovery(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                ],
                "scopes_supported": ["openid", "profile", "email"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        self.jwks_fetches += 1
        if self.jwks_down:
            return JSONResponse({"error": "temporarily_unavailable"}, 503)
        return JSONResponse(self.jwks())

    async def _authorize(self, request: Request) -> Response:
        query = request.query_params
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or redirect_uri not in self.redirect_uris:
            return JSONResponse({"error": "invalid_client or unregistered redirect_uri"}, 400)
        state = query.get("state")
        challenge = query.get("code_challenge")
        method = query.get("code_challenge_method")
        if query.get("response_type") != "code":
            return _back(redirect_uri, state, error="unsupported_response_type")
        if self.require_pkce and (not challenge or method != "S256"):
            return _back(redirect_uri, state, error="invalid_request")
        if challenge:
            self.challenges.append(challenge)
        code = secrets.token_urlsafe(16)
        self.codes[code] = Grant(
            client_id=self.client_id,
            redirect_uri=redirect_uri,
            subject=self.subject,
            groups=list(self.groups),
            scope=query.get("scope", ""),
            nonce=query.get("nonce"),
            code_challenge=challenge,
            code_challenge_method=method,
        )
        return _back(redirect_uri, state, code=code)

    async def _token(self, request: Request) -> Response:
        form = await request.form()
        fields = {name: str(value) for name, value in form.items()}
        client_id, client_secret = _client_credentials(request, fields)
        if client_id != self.client_id or not hmac.compare_digest(
            client_secret or "", self.client_secret
        ):
            return JSONResponse({"error": "invalid_client"}, 401)
        if fields.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        grant = self.codes.pop(fields.get("code", ""), None)  # a code is good once
        if grant is None or grant.client_id != client_id:
            return _refused("unknown or used code")
        if fields.get("redirect_uri") != grant.redirect_uri:
            return _refused("redirect_uri differs from the one authorized")
        if grant.code_challenge is not None:
            verifier = fields.get("code_verifier", "")
            if not verifier or not hmac.compare_digest(s256(verifier), grant.code_challenge):
                return _refused("PKCE verification failed")
        now = int(time.time())
        common: dict[str, Any] = {
            "sub": grant.subject,
            "groups": grant.groups,
            "iat": now,
            "exp": now + 300,
        }
        access_token = self.mint(**common, scope=grant.scope)
        id_token = self.mint(**common, aud=self.client_id, nonce=grant.nonce, azp=self.client_id)
        return JSONResponse(
            {
                "access_token": access_token,
                "id_token": id_token,
                "token_type": "Bearer",
                "expires_in": 300,
                "scope": grant.scope,
            },
            headers={"Cache-Control": "no-store"},
        )

    async def _userinfo(self, request: Request) -> Response:
        scheme, _, credential = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return JSONResponse({"error": "invalid_token"}, 401)
        try:
            token = jwt.decode(credential, KeySet(list(self.keys)), algorithms=["RS256"])
        except (JoseError, ValueError):
            return JSONResponse({"error": "invalid_token"}, 401)
        return JSONResponse({"sub": token.claims["sub"], "groups": token.claims.get("groups")})


def _segment(part: dict[str, Any]) -> str:
    return b64url(json.dumps(part, separators=(",", ":")).encode())


def _back(redirect_uri: str, state: str | None, **params: str) -> Response:
    if state is not None:
        params["state"] = state
    return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", status_code=302)


def _refused(description: str) -> Response:
    return JSONResponse({"error": "invalid_grant", "error_description": description}, 400)


def _client_credentials(request: Request, fields: dict[str, str]) -> tuple[str | None, str | None]:
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        decoded = base64.b64decode(encoded).decode()
        client_id, _, secret = decoded.partition(":")
        return unquote_plus(client_id), unquote_plus(secret)
    return fields.get("client_id"), fields.get("client_secret")


@contextmanager
def served_provider(**options: Any) -> Iterator[OidcProvider]:
    """An ``OidcProvider`` listening on a free loopback port for the length of the block."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    provider = OidcProvider(issuer=f"http://127.0.0.1:{port}", **options)
    config = uvicorn.Config(provider.app(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the OpenID provider stand-in did not start")
        time.sleep(0.01)
    try:
        yield provider
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        listener.close()
