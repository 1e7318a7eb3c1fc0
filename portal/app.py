"""The portal's FastAPI application, built by a factory from settings.

The portal writes desired state (jobs, cancel requests, quota changes) and never calls a
backend to act; the scheduler does. ``create_app`` wires the routes, the problem-details
errors, body limits and browser sessions; ``gpupool serve`` runs it beside the scheduler.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from portal import health, problems, sessions
from portal.api import (
    accounts,
    allocations,
    catalog,
    invitations,
    jobs,
    ledger,
    packages,
    priorities,
    reports,
    tokens,
)
from portal.deps import BearerVerifier, Portal
from portal.problems import problem
from portal.settings import PortalSettings
from quotas.db.session import make_engine, session_factory
from quotas.settings import write_private

API_DESCRIPTION = """\
One national GPU pool, one ledger, fair share. Every request carries
`Authorization: Bearer <token>`: a personal access token (`gpp_...`), the admin token, or a
JWT from the national identity provider. Errors are RFC 9457 problem details. Lists page with
`limit` and `offset`.
"""


class BodyLimit:
    """Refuse request bodies over a limit with 413 before a route reads them."""

    def __init__(self, app: ASGIApp, limit: int, package_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.package_limit = package_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        limit = self.package_limit if path.startswith("/api/packages/") else self.limit
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            response = problem(413, f"request body over {limit} bytes")
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        try:
            await self.app(scope, counted, send)
        except BodyTooLarge:
            response = problem(413, f"request body over {limit} bytes")
            await response(scope, receive, send)


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body over {limit} bytes")


def session_secret(settings: PortalSettings) -> str:
    """The key that signs browser sessions: from settings, else kept in the data directory."""
    if settings.session_secret:
        return settings.session_secret
    key_file = Path(settings.data_dir) / "session.key"
    if key_file.exists():
        return key_file.read_text().strip()
    key = secrets.token_urlsafe(32)
    write_private(key_file, key)
    return key


def create_app(
    settings: PortalSettings | None = None,
    engine: Engine | None = None,
    verifier: BearerVerifier | None = None,
    scheduler_ready: Callable[[], bool] | None = None,
) -> FastAPI:
    settings = settings or PortalSettings()
    engine = engine or make_engine(settings.database)
    if verifier is None and settings.oidc_issuer:
        from portal.identity import JwksVerifier

        verifier = JwksVerifier.from_settings(settings)
    app = FastAPI(
        title="gpupool",
        version="1",
        description=API_DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,  # FastAPI's pages load from a CDN: portal.docs serves its own
        redoc_url=None,
    )
    app.state.portal = Portal(
        settings=settings,
        engine=engine,
        sessions=session_factory(engine),
        verifier=verifier,
        scheduler_ready=scheduler_ready or (lambda: True),
    )
    problems.install(app)
    app.include_router(health.router)
    routers = (
        jobs,
        accounts,
        packages,
        priorities,
        allocations,
        catalog,
        reports,
        ledger,
        tokens,
        invitations,
    )
    for module in routers:
        app.include_router(module.router, prefix="/api/v1")
    from portal import docs, pages, rayjobs, signin

    app.include_router(rayjobs.router)
    app.include_router(signin.router)
    app.include_router(docs.router)
    pages.install(app)
    sessions.install(
        app,
        secret_key=session_secret(settings),
        https_only=settings.base_url.startswith("https://"),
        clock=lambda: app.state.portal.clock(),
    )
    app.add_middleware(
        BodyLimit, limit=settings.max_body_bytes, package_limit=settings.max_package_bytes
    )
    return app
