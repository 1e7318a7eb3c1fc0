"""Browser sessions: what a signed-in session holds, how long it lives, and its cookie.

A session is tied to the credential it was opened with and never outlives it:
- signed in with a token (``/signin``), it records the token's id; every request through the
  session re-checks that token (``portal.deps``), so revoking it or its expiry signs the browser
  out at once, and the session ends when the token expires;
- signed in through the identity provider, it ends when the provider's ID token expires: gpupool
  does not refresh it, so past then it cannot know that the identity still holds (an account
  disabled at the provider signs out within one ID-token lifetime); signing in again is one
  redirect while the provider's own session lasts.
Either way a session ends after ``MAX_SESSION`` at the latest, and the cookie's ``Max-Age`` is cut
to the session's remaining life, so the browser drops it when the server would refuse it.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from quotas.clock import Clock, utc_now

COOKIE = "gpupool_session"
MAX_SESSION = timedelta(days=14)
"""The longest a session lives, even on a token that never expires."""

USER = "user"
CSRF = "csrf"
IDENTITY = "identity"
"""Issuer, subject and groups of an identity-provider sign-in, for reads that apply group links."""
SIGNED_IN_WITH = "token_id"
"""The id of the token a session was signed in with."""
ENDS = "ends_at"
"""When the session ends, in seconds since the epoch."""


def open_session(
    session: MutableMapping[str, Any],
    user: str,
    now: datetime,
    ends_at: datetime | None,
    token_id: int | None = None,
) -> None:
    """A fresh session for ``user``, ending at ``ends_at`` (or after ``MAX_SESSION``, whichever
    comes first): nothing from before sign-in carries over."""
    last = now + MAX_SESSION if ends_at is None else min(ends_at, now + MAX_SESSION)
    session.clear()
    session[USER] = user
    session[CSRF] = secrets.token_urlsafe(32)
    session[ENDS] = last.timestamp()
    if token_id is not None:
        session[SIGNED_IN_WITH] = token_id


def ends_at(session: MutableMapping[str, Any]) -> datetime | None:
    """When this session ends; ``None`` for a session that records no end (none is valid)."""
    value = session.get(ENDS)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return datetime.fromtimestamp(value, UTC)


def token_of(session: MutableMapping[str, Any]) -> int | None:
    """The id of the token this session was signed in with, if it was."""
    value = session.get(SIGNED_IN_WITH)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


_MAX_AGE = re.compile(rb"Max-Age=\d+", re.IGNORECASE)


class SessionLifetime:
    """Cut the session cookie's ``Max-Age`` to the session's remaining life.

    Starlette's ``SessionMiddleware`` gives every cookie the same ``Max-Age``; this wraps it and
    rewrites the ``Set-Cookie`` it sends for a session that ends sooner.
    """

    def __init__(self, app: ASGIApp, cookie: str = COOKIE, clock: Clock = utc_now) -> None:
        self.app = app
        self.prefix = f"{cookie}=".encode()
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def capped(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = scope.get("session")
                end = ends_at(session) if isinstance(session, MutableMapping) else None
                if end is not None:
                    left = max(0, int((end - self.clock()).total_seconds()))
                    message["headers"] = [
                        (name, self._capped(name, value, left))
                        for name, value in message["headers"]
                    ]
            await send(message)

        await self.app(scope, receive, capped)

    def _capped(self, name: bytes, value: bytes, left: int) -> bytes:
        if name.lower() != b"set-cookie" or not value.startswith(self.prefix):
            return value
        return _MAX_AGE.sub(f"Max-Age={left}".encode(), value)


def install(app: FastAPI, secret_key: str, https_only: bool, clock: Clock = utc_now) -> None:
    """Signed session cookies that never outlive their session; ``clock`` is the portal's."""
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key,
        session_cookie=COOKIE,
        max_age=int(MAX_SESSION.total_seconds()),
        same_site="lax",
        https_only=https_only,
    )
    app.add_middleware(SessionLifetime, cookie=COOKIE, clock=clock)
