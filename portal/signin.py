"""Browser sign-in: the national identity provider (OpenID Connect), or a token where allowed.

``GET /signin`` shows the ways in. ``GET /auth/login`` sends the browser to the provider with
the authorization-code flow (PKCE S256, a ``state`` and a ``nonce``, kept in the signed session
by authlib's Starlette client); ``GET /auth/callback`` exchanges the code, has the id token
checked (signature against the provider's keys, issuer, audience = our client id, nonce,
expiry), maps its subject and groups onto a gpupool user through the identity links, and
stores that user in the session until the ID token expires. An identity nobody linked gets a
403 page saying whom to ask. ``POST /auth/token`` signs in with a personal access token or the
admin token; it is offered only while ``settings.accepts_token_sign_in`` and guarded by a
per-session CSRF value, and the session is tied to that token: revoked or expired, the browser
is signed out (``portal.sessions``). ``GET /signin?invite=<invitation>`` shows whom an
invitation (``quotas.invitations``) signs in, without using it (link previews must not spend
it); its button posts ``/auth/invite``, CSRF-guarded too, which uses the invitation up for a
token of the invited user with every scope, living as long as a session may, and ties the
session to that token. Invitations sign browsers in only where tokens may.
``POST /auth/logout`` forgets the session.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import UTC, datetime
from html import escape
from typing import Annotated, Any

import httpx
from authlib.integrations.starlette_client import (  # type: ignore[import-untyped]
    OAuth,
    OAuthError,
)
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from joserfc.errors import JoseError
from joserfc.jws import extract_compact
from starlette.concurrency import run_in_threadpool

from portal.deps import Portal, PortalDep, principal_from_claims, session_principal
from portal.identity import ALGORITHMS, HTTP_TIMEOUT, LEEWAY, discovery_url
from portal.problems import Problem
from portal.sessions import CSRF as SESSION_CSRF
from portal.sessions import IDENTITY as SESSION_IDENTITY
from portal.sessions import MAX_SESSION, open_session
from portal.settings import PortalSettings
from quotas.access import ALL_SCOPES, Principal
from quotas.cases.invitations import redeem
from quotas.db.access import ApiToken
from quotas.db.session import transaction
from quotas.errors import BooksError, NotFound
from quotas.invitations import InvalidInvitation, check
from quotas.tokens import InvalidToken, verify

router = APIRouter(include_in_schema=False)

CLIENT_NAME = "national"


def csrf_token(request: Request) -> str:
    """This session's CSRF value, made on first use; forms that POST carry it as ``csrf``."""
    value = request.session.get(SESSION_CSRF)
    if not isinstance(value, str):
        value = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = value
    return value


def check_csrf(request: Request, sent: str) -> None:
    expected = request.session.get(SESSION_CSRF)
    if not isinstance(expected, str) or not hmac.compare_digest(expected, sent):
        raise Problem(403, "the form is stale or was not sent from gpupool; reload the page")


def oidc_client(request: Request, settings: PortalSettings) -> Any:
    """The app's authlib client for the identity provider, registered on first use."""
    client = getattr(request.app.state, "oidc_client", None)
    if client is None:
        assert settings.oidc_issuer is not None
        scopes = settings.oidc_scopes.split()
        if "openid" not in scopes:
            scopes.insert(0, "openid")
        oauth = OAuth()
        client = oauth.register(
            name=CLIENT_NAME,
            client_id=settings.oidc_client_id,
            client_secret=settings.oidc_client_secret,
            server_metadata_url=discovery_url(settings.oidc_issuer),
            client_kwargs={
                "scope": " ".join(scopes),
                "code_challenge_method": "S256",
                "timeout": HTTP_TIMEOUT,
            },
        )
        request.app.state.oidc_client = client
    return client


def redirect_uri(settings: PortalSettings) -> str:
    return f"{settings.base_url}/auth/callback"


@router.get("/signin")
def signin_page(
    request: Request, portal: PortalDep, invite: Annotated[str | None, Query(max_length=200)] = None
) -> HTMLResponse:
    signed_in = session_principal(request, portal)  # signs out a session that no longer holds
    if invite is not None:
        return _invitation(request, portal, invite.strip())
    return _signin(request, portal.settings, user=signed_in.user if signed_in else None)


def _invitation(request: Request, portal: Portal, invite: str) -> HTMLResponse:
    """Whom the invitation signs in, and a button that uses it; nothing is used up here."""
    if not portal.settings.accepts_token_sign_in:
        return _signin(
            request,
            portal.settings,
            error="Invitations do not sign browsers in here: sign in with the identity "
            "provider, or exchange the invitation for a token with `gpupool login --invitation`.",
            status=403,
        )
    try:
        with transaction(portal.sessions) as session:
            user = check(session, invite, portal.clock()).user
    except InvalidInvitation as error:
        return _signin(request, portal.settings, error=f"{error}.", status=400)
    csrf = escape(csrf_token(request))
    body = (
        "<h1>Welcome to gpupool</h1>"
        f"<p>This invitation signs you in as <strong>{escape(user)}</strong>. It works once.</p>"
        '<form method="post" action="/auth/invite">'
        f'<input type="hidden" name="csrf" value="{csrf}">'
        f'<input type="hidden" name="invite" value="{escape(invite)}">'
        f'<button type="submit">Sign in as {escape(user)}</button></form>'
    )
    return _page("Invitation", body)


@router.get("/auth/login")
async def login(request: Request, portal: PortalDep) -> Response:
    settings = portal.settings
    if not settings.oidc_issuer or not settings.oidc_client_id:
        raise Problem(404, "no identity provider is configured; sign in at /signin")
    try:
        response: Response = await oidc_client(request, settings).authorize_redirect(
            request, redirect_uri(settings)
        )
    except (httpx.HTTPError, ValueError) as error:
        return _notice(
            502, "Identity provider unreachable", f"gpupool could not reach it: {error}."
        )
    return response


@router.get("/auth/callback")
async def callback(request: Request, portal: PortalDep) -> Response:
    settings = portal.settings
    if not settings.oidc_issuer or not settings.oidc_client_id:
        raise Problem(404, "no identity provider is configured")
    try:
        token: dict[str, Any] = await oidc_client(request, settings).authorize_access_token(
            request,
            claims_options={
                "iss": {"essential": True, "value": settings.oidc_issuer},
                "aud": {"essential": True, "value": settings.oidc_client_id},
            },
            leeway=int(LEEWAY.total_seconds()),
        )
        claims = _checked_id_token(token)
        expires = _id_token_expiry(claims)
    except OAuthError as error:
        reason = error.description or error.error
        return _notice(400, "Sign-in did not complete", f"{reason}. Please start again.")
    except JoseError as error:
        return _notice(
            400, "Sign-in did not complete", f"The identity token was refused ({error.error})."
        )
    except (httpx.HTTPError, ValueError) as error:
        return _notice(
            502, "Identity provider unreachable", f"gpupool could not reach it: {error}."
        )
    try:
        found = await run_in_threadpool(_principal_for, portal, settings.oidc_issuer, claims)
    except Problem as refused:
        return _notice(
            refused.status,
            "Not linked to a gpupool account",
            f"You signed in as {claims.get('sub')!r}, but that identity is not linked to a "
            "gpupool user. Ask a gpupool administrator to link it, then sign in again.",
        )
    open_session(request.session, found.user, portal.clock(), expires)
    groups = claims.get(settings.oidc_groups_claim)
    request.session[SESSION_IDENTITY] = {
        "issuer": settings.oidc_issuer,
        "subject": str(claims["sub"]),
        "groups": [str(g) for g in groups] if isinstance(groups, list) else [],
    }
    return RedirectResponse("/", status_code=303)


@router.post("/auth/token")
def token_signin(
    request: Request,
    portal: PortalDep,
    token: Annotated[str, Form(max_length=512)],
    csrf: Annotated[str, Form(max_length=128)],
) -> Response:
    if not portal.settings.accepts_token_sign_in:
        raise Problem(403, "token sign-in is turned off; sign in with the identity provider")
    check_csrf(request, csrf)
    now = portal.clock()
    try:
        record, found = _principal_for_token(portal, token.strip(), now)
    except (InvalidToken, NotFound) as error:
        return _signin(request, portal.settings, error=f"{error}.", status=401)
    if found.scopes != ALL_SCOPES:
        return _signin(
            request,
            portal.settings,
            error="Signing in needs a token with every scope (read, jobs, manage).",
            status=403,
        )
    open_session(request.session, found.user, now, record.expires_at, token_id=record.id)
    return RedirectResponse("/", status_code=303)


@router.post("/auth/invite")
def invitation_signin(
    request: Request,
    portal: PortalDep,
    invite: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=128)],
) -> Response:
    if not portal.settings.accepts_token_sign_in:
        raise Problem(403, "invitation sign-in is turned off; sign in with the identity provider")
    check_csrf(request, csrf)
    try:
        with portal.books() as books:
            redeemed = redeem(
                books, invite.strip(), "browser sign-in", sorted(ALL_SCOPES), MAX_SESSION
            )
    except (InvalidInvitation, BooksError) as error:
        return _signin(request, portal.settings, error=f"{error}.", status=400)
    token = redeemed.token
    open_session(request.session, redeemed.user, redeemed.at, token.expires_at, token_id=token.id)
    return RedirectResponse("/", status_code=303)


@router.post("/auth/logout")
def logout(request: Request) -> Response:
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)


def _checked_id_token(token: dict[str, Any]) -> dict[str, Any]:
    """The id token's claims, once authlib validated it; refuse algorithms we never accept."""
    id_token = token.get("id_token")
    userinfo = token.get("userinfo")
    if not isinstance(id_token, str) or not isinstance(userinfo, dict):
        raise OAuthError(description="the identity provider sent no id token")
    alg = extract_compact(id_token.encode("ascii")).headers().get("alg")
    if alg not in ALGORITHMS:
        raise OAuthError(description=f"the id token is signed with {alg!r}")
    return dict(userinfo)


def _principal_for(portal: Portal, issuer: str, claims: dict[str, Any]) -> Principal:
    with transaction(portal.sessions) as session:
        return principal_from_claims(session, issuer, claims, portal.settings.oidc_groups_claim)


def _principal_for_token(portal: Portal, token: str, now: datetime) -> tuple[ApiToken, Principal]:
    with transaction(portal.sessions) as session:
        return verify(session, token, now)


def _id_token_expiry(claims: dict[str, Any]) -> datetime:
    """When the provider's ID token expires: the session through the provider ends then (authlib
    has checked ``exp`` is there and in the future)."""
    exp = claims.get("exp")
    if isinstance(exp, bool) or not isinstance(exp, int | float):
        raise OAuthError(description="the id token carries no expiry")
    return datetime.fromtimestamp(exp, UTC)


# pages

STYLE = """
*{box-sizing:border-box}
body{margin:0;min-height:100vh;display:flex;align-items:center;justify-content:center;
font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f3f5f8;color:#1c2430}
main{width:min(26rem,92vw);background:#fff;border-radius:12px;padding:2rem;
box-shadow:0 1px 3px rgba(0,0,0,.08),0 8px 24px rgba(0,0,0,.06)}
h1{font-size:1.35rem;margin:0 0 .25rem}
p{margin:.5rem 0 1rem;color:#4a5565}
.brand{font-weight:700;letter-spacing:.02em;color:#2456c7}
.button,button{display:block;width:100%;padding:.7rem 1rem;border:0;border-radius:8px;
background:#2456c7;color:#fff;font:inherit;font-weight:600;text-align:center;text-decoration:none;
cursor:pointer}
.button:hover,button:hover{background:#1b45a3}
button.quiet{background:#e8ecf3;color:#1c2430}
label{display:block;font-weight:600;margin:1rem 0 .3rem}
input[type=password]{width:100%;padding:.6rem .7rem;border:1px solid #c5cdd9;border-radius:8px;
font:inherit}
.or{display:flex;align-items:center;gap:.75rem;color:#8a94a3;margin:1.5rem 0 .5rem;font-size:.85rem}
.or::before,.or::after{content:"";flex:1;border-top:1px solid #e1e6ee}
.error{background:#fdecec;color:#9b1c1c;border-radius:8px;padding:.6rem .8rem}
.hint{font-size:.85rem;color:#6b7585}
"""

SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)} · gpupool</title><style>{STYLE}</style></head>"
        f'<body><main><div class="brand">gpupool</div>{body}</main></body></html>'
    )
    return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)


def _notice(status: int, title: str, message: str) -> HTMLResponse:
    body = (
        f"<h1>{escape(title)}</h1><p>{escape(message)}</p>"
        '<a class="button" href="/signin">Back to sign-in</a>'
    )
    return _page(title, body, status)


def _signin(
    request: Request,
    settings: PortalSettings,
    error: str | None = None,
    status: int = 200,
    user: str | None = None,
) -> HTMLResponse:
    csrf = escape(csrf_token(request))
    parts = ["<h1>Sign in</h1>", "<p>The national GPU pool: jobs, quotas and reports.</p>"]
    if user is not None:
        parts.append(
            f"<p>Signed in as <strong>{escape(user)}</strong>.</p>"
            '<form method="post" action="/auth/logout">'
            '<button class="quiet" type="submit">Sign out</button></form>'
            '<div class="or">or sign in again</div>'
        )
    if error:
        parts.append(f'<p class="error" role="alert">{escape(error)}</p>')
    oidc = bool(settings.oidc_issuer and settings.oidc_client_id)
    if oidc:
        parts.append(
            '<a class="button" href="/auth/login">Sign in with the national identity provider</a>'
        )
    if settings.accepts_token_sign_in:
        if oidc:
            parts.append('<div class="or">or</div>')
        parts.append(
            '<form method="post" action="/auth/token">'
            f'<input type="hidden" name="csrf" value="{csrf}">'
            '<label for="token">Personal access token or admin token</label>'
            '<input id="token" name="token" type="password" autocomplete="off" required '
            'placeholder="gpp_…">'
            '<p class="hint">Tokens start with <code>gpp_</code>. '
            "<code>gpupool serve</code> printed the admin token when it first started.</p>"
            '<button type="submit">Sign in with a token</button></form>'
        )
    if not oidc and not settings.accepts_token_sign_in:
        parts.append(
            '<p class="error">No way to sign in is configured. Set GPUPOOL_OIDC_ISSUER and '
            "GPUPOOL_OIDC_CLIENT_ID, or GPUPOOL_TOKEN_SIGN_IN=true.</p>"
        )
    return _page("Sign in", "".join(parts), status)
