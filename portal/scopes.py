"""Which token scope each operation needs: one table, enforced for every route with a credential.

A token carries one or more scopes (``quotas.access.Scope``); an operation lists the scopes any
one of which lets a token call it. Roles still decide who may do what; a scope only narrows it.

- ``read`` sees the books: accounts, members, priority grants and package storage, allocation
  requests, the catalogue, reports, the ledger, the audit log, users and identity links, and
  the state of jobs;
- ``jobs`` works jobs: submits them (and uploads their working_dir), follows their state and
  logs, cancels, stops and deletes them; job logs need ``jobs`` (they are the job's output, not
  the books);
- ``manage`` changes the books: accounts, budgets, members, program managers, priority grants,
  allocation requests, the catalogue (clusters and their burst budgets included), the pool's
  funds (contributions and appropriations), tokens, invitations, users, roles and identity
  links.

``GET /api/v1/me`` answers to any scope (every client asks who it is), ``GET /api/v1/tokens`` and
``GET /api/v1/invitations`` to ``read`` or ``manage`` (you list them to revoke one), and a quote
to ``read`` or ``jobs``. Health, metrics, ``/api/version``, the documentation, the sign-in pages
and redeeming an invitation (the invitation is the credential) take no credential (``PUBLIC``).

``portal.deps.authenticate`` checks the table for every request that carries a credential,
including the log WebSocket; a route missing from the table is refused, and
``tests/security/test_scopes.py`` fails first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts
from starlette.requests import HTTPConnection

from portal.problems import Problem
from quotas.access import Principal, Scope

Operation = tuple[str, str]
"""``(method, path)`` as the OpenAPI document names it; ``WEBSOCKET`` for a WebSocket route."""

PUBLIC: frozenset[Scope] = frozenset()
"""No credential needed, so no scope either."""
READ = frozenset({Scope.READ})
JOBS = frozenset({Scope.JOBS})
MANAGE = frozenset({Scope.MANAGE})
READ_OR_JOBS = READ | JOBS
READ_OR_MANAGE = READ | MANAGE
ANY = frozenset(Scope)

WEBSOCKET = "WEBSOCKET"

OPERATION_SCOPES: dict[Operation, frozenset[Scope]] = {
    # health and metrics
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    # jobs
    ("POST", "/api/v1/jobs"): JOBS,
    ("GET", "/api/v1/jobs"): READ_OR_JOBS,
    ("GET", "/api/v1/jobs/{job_id}"): READ_OR_JOBS,
    ("POST", "/api/v1/jobs/{job_id}/cancel"): JOBS,
    ("GET", "/api/v1/jobs/{job_id}/logs"): JOBS,
    ("GET", "/api/v1/jobs/{job_id}/logs/stream"): JOBS,
    # accounts, budgets, members and priority grants
    ("GET", "/api/v1/accounts"): READ,
    ("POST", "/api/v1/accounts"): MANAGE,
    ("GET", "/api/v1/accounts/{name}"): READ,
    ("PATCH", "/api/v1/accounts/{name}"): MANAGE,
    ("PUT", "/api/v1/accounts/{name}/budget"): MANAGE,
    ("GET", "/api/v1/accounts/{project}/members"): READ,
    ("POST", "/api/v1/accounts/{project}/members"): MANAGE,
    ("DELETE", "/api/v1/accounts/{project}/members/{user}"): MANAGE,
    ("GET", "/api/v1/accounts/{project}/priority-grants"): READ,
    ("PUT", "/api/v1/accounts/{project}/priority-grants/{priority}"): MANAGE,
    ("DELETE", "/api/v1/accounts/{project}/priority-grants/{priority}"): MANAGE,
    ("GET", "/api/v1/accounts/{project}/packages"): READ,
    ("PUT", "/api/v1/accounts/{project}/members/{user}"): MANAGE,
    ("GET", "/api/v1/accounts/{program}/managers"): READ,
    ("PUT", "/api/v1/accounts/{program}/managers/{user}"): MANAGE,
    ("DELETE", "/api/v1/accounts/{program}/managers/{user}"): MANAGE,
    # allocation requests
    ("GET", "/api/v1/allocation-requests"): READ,
    ("POST", "/api/v1/allocation-requests"): MANAGE,
    ("GET", "/api/v1/allocation-requests/{request_id}"): READ,
    ("POST", "/api/v1/allocation-requests/{request_id}/submit"): MANAGE,
    ("POST", "/api/v1/allocation-requests/{request_id}/review"): MANAGE,
    ("POST", "/api/v1/allocation-requests/{request_id}/withdraw"): MANAGE,
    ("POST", "/api/v1/allocation-requests/{request_id}/tranches/{seq}/release"): MANAGE,
    # the catalogue
    ("GET", "/api/v1/flavors"): READ,
    ("POST", "/api/v1/flavors"): MANAGE,
    ("GET", "/api/v1/rate-cards"): READ,
    ("POST", "/api/v1/rate-cards"): MANAGE,
    ("GET", "/api/v1/rate-cards/current"): READ,
    ("GET", "/api/v1/clusters"): READ,
    ("POST", "/api/v1/clusters"): MANAGE,
    ("PUT", "/api/v1/clusters/{name}/burst-budgets/{program}"): MANAGE,
    ("GET", "/api/v1/periods"): READ,
    ("POST", "/api/v1/periods"): MANAGE,
    ("GET", "/api/v1/funders"): READ,
    ("POST", "/api/v1/funders"): MANAGE,
    ("POST", "/api/v1/funders/{name}/contributions"): MANAGE,
    ("POST", "/api/v1/accounts/{program}/appropriations"): MANAGE,
    ("GET", "/api/v1/funds"): READ,
    ("POST", "/api/v1/quote"): READ_OR_JOBS,
    # reports, the ledger and the audit log
    ("GET", "/api/v1/reports/fairshare"): READ,
    ("GET", "/api/v1/reports/utilisation"): READ,
    ("GET", "/api/v1/reports/spend"): READ,
    ("GET", "/api/v1/reports/wait-times"): READ,
    ("GET", "/api/v1/ledger"): READ,
    ("GET", "/api/v1/audit"): READ,
    # who am I, tokens, users, roles and identity links
    ("GET", "/api/v1/me"): ANY,
    ("GET", "/api/v1/tokens"): READ_OR_MANAGE,
    ("POST", "/api/v1/tokens"): MANAGE,
    ("DELETE", "/api/v1/tokens/{token_id}"): MANAGE,
    ("GET", "/api/v1/users"): READ,
    ("POST", "/api/v1/users"): MANAGE,
    ("POST", "/api/v1/users/{name}/roles"): MANAGE,
    ("DELETE", "/api/v1/users/{name}/roles/{role}"): MANAGE,
    ("GET", "/api/v1/identity-links"): READ,
    ("POST", "/api/v1/identity-links"): MANAGE,
    ("DELETE", "/api/v1/identity-links/{link_id}"): MANAGE,
    ("GET", "/api/v1/invitations"): READ_OR_MANAGE,
    ("POST", "/api/v1/invitations"): MANAGE,
    ("DELETE", "/api/v1/invitations/{invitation_id}"): MANAGE,
    ("POST", "/api/v1/invitations/redeem"): PUBLIC,
    # the Ray Jobs-compatible API
    ("GET", "/api/version"): PUBLIC,
    ("GET", "/api/jobs/"): READ_OR_JOBS,
    ("POST", "/api/jobs/"): JOBS,
    ("GET", "/api/jobs/{job_id}"): READ_OR_JOBS,
    ("POST", "/api/jobs/{job_id}/stop"): JOBS,
    ("DELETE", "/api/jobs/{job_id}"): JOBS,
    ("GET", "/api/jobs/{job_id}/logs"): JOBS,
    (WEBSOCKET, "/api/jobs/{job_id}/logs/tail"): JOBS,
    ("GET", "/api/packages/{protocol}/{name}"): JOBS,
    ("PUT", "/api/packages/{protocol}/{name}"): JOBS,
    # the API's documentation pages and browser sign-in (not in the OpenAPI document)
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/init.js"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,
    ("GET", "/signin"): PUBLIC,
    ("GET", "/auth/login"): PUBLIC,
    ("GET", "/auth/callback"): PUBLIC,
    ("POST", "/auth/token"): PUBLIC,
    ("POST", "/auth/invite"): PUBLIC,
    ("POST", "/auth/logout"): PUBLIC,
    # the pages' assets and language switch; each page module names its own pages' scopes
    # (``SCOPES``), added here by ``portal.pages.install``
    ("GET", "/assets/{name}"): PUBLIC,
    ("POST", "/language"): PUBLIC,
}


def operations(app: FastAPI) -> Iterator[tuple[Operation, Callable[..., Any]]]:
    """Every operation the app's routes serve, with its endpoint (FastAPI's ``/openapi.json``
    is a plain route that takes no credential, so it is not one)."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = context.path_format
        if path is None:
            continue
        if isinstance(route, APIRoute):
            for method in sorted(route.methods or ()):
                yield (method, path), route.endpoint
        elif isinstance(route, APIWebSocketRoute):
            yield (WEBSOCKET, path), route.endpoint


def operation_of(connection: HTTPConnection) -> Operation | None:
    """The operation this request is routed to, by its endpoint."""
    app = connection.scope.get("app")
    endpoint = connection.scope.get("endpoint")
    if not isinstance(app, FastAPI) or endpoint is None:
        return None
    index: dict[tuple[Callable[..., Any], str], Operation | None] | None = getattr(
        app.state, "operation_index", None
    )
    if index is None:
        index = _index(app)
        app.state.operation_index = index
    method = WEBSOCKET if connection.scope["type"] == "websocket" else connection.scope["method"]
    return index.get((endpoint, "GET" if method == "HEAD" else method))


def _index(app: FastAPI) -> dict[tuple[Callable[..., Any], str], Operation | None]:
    """Endpoint and method -> operation; one endpoint serving two paths is left ambiguous
    (``None``), so its requests are refused rather than held to the wrong entry."""
    index: dict[tuple[Callable[..., Any], str], Operation | None] = {}
    for (method, path), handler in operations(app):
        key = (handler, method)
        index[key] = (method, path) if index.get(key, (method, path)) == (method, path) else None
    return index


def require_operation_scope(connection: HTTPConnection, principal: Principal) -> None:
    """Answer 403 unless the credential carries a scope this operation needs; an operation
    missing from ``OPERATION_SCOPES`` is refused."""
    operation = operation_of(connection)
    needed = OPERATION_SCOPES.get(operation) if operation is not None else None
    if needed is None:
        raise Problem(403, "gpupool names no scope for this operation, so no token may call it")
    if needed and not principal.allows_any(needed):
        wanted = " or ".join(f"'{scope}'" for scope in sorted(needed))
        raise Problem(
            403,
            f"this token lacks the {wanted} scope this operation needs",
            needs=sorted(needed),
            scopes=sorted(principal.scopes),
        )
