"""Signing a test client in to the pages the way a browser does: the sign-in form, with its
CSRF value, and a personal access token."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page carries no CSRF value"
    return found.group(1)


def sign_in(client: TestClient, token: str) -> str:
    """Sign ``client`` in with ``token`` (every scope); returns the session's CSRF value."""
    client.cookies.clear()
    page = client.get("/signin")
    answer = client.post(
        "/auth/token",
        data={"token": token, "csrf": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    return csrf_of(client.get("/").text)
