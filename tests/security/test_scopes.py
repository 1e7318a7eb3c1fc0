"""Every operation against every single-scope token: a token does only what its scopes say.

Issue 8, item 9. Reads ignored the ``read`` scope: a ``jobs``-only token read the ledger. Now
``portal/scopes.py`` names the scopes each operation needs and ``portal.deps`` holds every
credential to them, on ``/api/v1``, the Ray-compatible API and its log WebSocket alike.

The matrix reuses the role matrix's requests (``tests/portal/test_roles.py``): each operation is
called as the first role that may call it (so a refusal can only come from the scope), once with
a token of each single scope. A scope the table names gets what a full token gets; any other
scope gets 403 and no 2xx, and nothing is written. A test fails when an operation of the app has
no entry in the table.
"""

from __future__ import annotations

from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from portal.scopes import OPERATION_SCOPES, WEBSOCKET, operations
from quotas.access import Scope
from tests.portal.conftest import Demo, Template
from tests.portal.test_roles import MATRIX, ORDER, USERS, Request, call, setup

API = "/api/v1"

REQUESTS: dict[tuple[str, str], tuple[Request, dict[str, int]]] = {
    **MATRIX,
    # the role matrix's token asks for ``read``; a ``manage``-only token may only hand on
    # ``manage`` (a token carries no scope its maker lacks)
    ("POST", f"{API}/tokens"): (
        call("POST", f"{API}/tokens", json={"name": "ci", "scopes": ["manage"]}),
        MATRIX[("POST", f"{API}/tokens")][1],
    ),
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def caller(expected: dict[str, int]) -> str:
    """The first role the role matrix lets through (2xx); the admin when none is."""
    return next((role for role in ORDER if 200 <= expected[role] < 300), "admin")


def audit_total(demo: Demo) -> int:
    with demo.books() as books:
        return books.audit.search(limit=1)[1]


@pytest.mark.parametrize("operation", list(MATRIX), ids=lambda op: f"{op[0]} {op[1]}")
def test_scope_matrix(
    operation: tuple[str, str], demo_template: Template, request: pytest.FixtureRequest
) -> None:
    if demo_template.backend != "sqlite":
        pytest.skip("which scope an operation needs does not depend on the database")
    demo: Demo = request.getfixturevalue("demo")
    make, expected = REQUESTS[operation]
    needed = OPERATION_SCOPES[operation]
    role = caller(expected)
    user = USERS[role] or "admin"
    ids = setup(demo)
    tokens = {scope: demo.token(user, [scope]) for scope in Scope}

    seen: dict[Scope, int] = {}
    refused_bodies: list[dict[str, Any]] = []
    for scope in sorted(Scope, key=lambda s: s in needed):  # refused scopes first
        before = audit_total(demo)
        method, path, options = make(ids, role)
        headers = {**bearer(tokens[scope]), **options.pop("headers", {})}
        answer = demo.client.request(method, path, headers=headers, **options)
        seen[scope] = answer.status_code
        if needed and scope not in needed:
            assert audit_total(demo) == before, f"{scope} token wrote to the books"
            refused_bodies.append(answer.json())

    wanted = {scope: expected[role] if not needed or scope in needed else 403 for scope in Scope}
    assert seen == wanted
    for body in refused_bodies:
        assert body["needs"] == sorted(needed)
        assert set(body) <= {"type", "title", "status", "detail", "needs", "scopes"}


def test_every_operation_names_the_scopes_it_needs(demo: Demo) -> None:
    document = demo.client.get("/openapi.json").json()
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    served = {operation for operation, _ in operations(demo.client.app)}  # type: ignore[arg-type]

    assert documented <= served
    assert set(OPERATION_SCOPES) == served
    assert set(MATRIX) == documented  # each documented operation runs in the matrix above


def test_a_jobs_only_token_cannot_read_the_ledger(demo: Demo) -> None:
    jobs_only = bearer(demo.token("jiwoo.jung", [Scope.JOBS]))
    reader = bearer(demo.token("jiwoo.jung", [Scope.READ]))

    ledger = demo.client.get(f"{API}/ledger", params={"account": "kaist-nlp"}, headers=jobs_only)
    accounts = demo.client.get(f"{API}/accounts/kaist-nlp", headers=jobs_only)
    allowed = demo.client.get(f"{API}/ledger", params={"account": "kaist-nlp"}, headers=reader)

    assert ledger.status_code == 403
    assert ledger.headers["content-type"] == "application/problem+json"
    assert ledger.json()["needs"] == ["read"]
    assert "items" not in ledger.json()
    assert "kaist-nlp" not in ledger.text
    assert accounts.status_code == 403
    assert "budget" not in accounts.text
    assert allowed.status_code == 200
    assert allowed.json()["items"]


def test_a_jobs_only_token_submits_and_follows_its_job(demo: Demo) -> None:
    jobs_only = bearer(demo.token("jiwoo.jung", [Scope.JOBS]))
    reader = bearer(demo.token("jiwoo.jung", [Scope.READ]))
    body = {"project": "kaist-nlp", "entrypoint": "python train.py"}

    submitted = demo.client.post(f"{API}/jobs", json=body, headers=jobs_only)
    job = submitted.json()["job"]["id"]
    followed = demo.client.get(f"{API}/jobs/{job}", headers=jobs_only)
    read = demo.client.get(f"{API}/jobs/{job}", headers=reader)
    reader_cancels = demo.client.post(f"{API}/jobs/{job}/cancel", headers=reader)

    assert submitted.status_code == 201, submitted.text
    assert followed.status_code == 200
    assert read.status_code == 200
    assert reader_cancels.status_code == 403
    assert demo.client.get(f"{API}/jobs/{job}", headers=reader).json()["state"] == "queued"


def test_the_log_websocket_needs_the_jobs_scope(demo: Demo) -> None:
    submitted = demo.client.post(
        f"{API}/jobs",
        json={"project": "kaist-nlp", "entrypoint": "python train.py"},
        headers=demo.headers("jiwoo.jung"),
    )
    job = submitted.json()["job"]["id"]
    cancelled = demo.client.post(f"{API}/jobs/{job}/cancel", headers=demo.headers("jiwoo.jung"))
    assert cancelled.json()["state"] == "cancelled"  # ended: the tail closes once it is sent
    tail = f"/api/jobs/{job}/logs/tail"
    assert OPERATION_SCOPES[(WEBSOCKET, "/api/jobs/{job_id}/logs/tail")] == {Scope.JOBS}

    with (
        pytest.raises(WebSocketDisconnect) as refused,
        demo.client.websocket_connect(
            tail, headers=bearer(demo.token("jiwoo.jung", [Scope.READ]))
        ) as socket,
    ):
        socket.receive_text()
    with demo.client.websocket_connect(
        tail, headers=bearer(demo.token("jiwoo.jung", [Scope.JOBS]))
    ) as socket:
        closed = socket.receive()

    assert refused.value.code == 1008
    assert "'jobs' scope" in refused.value.reason
    assert closed["type"] == "websocket.close"
    assert closed["code"] == 1000  # accepted, told the (empty) output, closed normally
