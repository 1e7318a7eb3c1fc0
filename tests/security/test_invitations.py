"""Invitations as a hostile person would try them: spent, stale, guessed, issued by someone
who may not, issued to sign in as somebody powerful, or exchanged for more than they give.

Issue 11 ("People"): an invitation is a one-time sign-in for a named person. Each attack runs
through the public API and the sign-in page of the seeded demo pool (``tests/portal``).
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from portal.app import create_app
from quotas.clock import utc_now
from quotas.db.access import InvitationRepository
from quotas.invitations import issue
from tests.portal.conftest import Demo

API = "/api/v1"


def invite(demo: Demo, user: str = "nari.oh", by: str = "admin", **body: Any) -> dict[str, Any]:
    answer = demo.client.post(
        f"{API}/invitations", json={"user": user, **body}, headers=demo.headers(by)
    )
    assert answer.status_code == 201, answer.text
    issued: dict[str, Any] = answer.json()
    return issued


def redeem(demo: Demo, invitation: str, scopes: list[str] | None = None) -> Any:
    return demo.client.post(
        f"{API}/invitations/redeem",
        json={"invitation": invitation, "scopes": scopes or ["read", "jobs", "manage"]},
    )


def sign_in(demo: Demo, invitation: str) -> int:
    """Open the link and press its button, as a browser would; the status of the last step."""
    page = demo.client.get("/signin", params={"invite": invitation})
    if page.status_code != 200:
        return page.status_code
    marker = 'name="csrf" value="'
    start = page.text.index(marker) + len(marker)
    csrf = page.text[start : page.text.index('"', start)]
    answer = demo.client.post(
        "/auth/invite", data={"invite": invitation, "csrf": csrf}, follow_redirects=False
    )
    return answer.status_code


def test_an_invitation_signs_in_once_whichever_way_it_is_used(demo: Demo) -> None:
    first = invite(demo)["invitation"]
    second = invite(demo, "mina.cho")["invitation"]

    assert sign_in(demo, first) == 303
    assert redeem(demo, first).status_code == 400  # the browser used it up
    assert redeem(demo, second).status_code == 201
    demo.client.post("/auth/logout", data={})
    assert sign_in(demo, second) == 400  # the API used it up
    assert demo.client.get(f"{API}/me").status_code == 401


def test_an_expired_or_revoked_invitation_signs_nobody_in(demo: Demo) -> None:
    with demo.books() as books:
        stale = issue(books.session, "jiwoo.jung", "admin", utc_now() - timedelta(days=8))
    revoked = invite(demo)
    demo.client.delete(f"{API}/invitations/{revoked['id']}", headers=demo.headers())

    expired_answer = redeem(demo, stale.invitation)
    revoked_answer = redeem(demo, revoked["invitation"])

    assert expired_answer.json()["detail"] == "this invitation has expired; ask for a new one"
    assert revoked_answer.json()["detail"] == "this invitation was revoked; ask for a new one"
    assert sign_in(demo, stale.invitation) == 400
    assert sign_in(demo, revoked["invitation"]) == 400
    assert demo.client.get(f"{API}/me").status_code == 401


@pytest.mark.parametrize("guess", ["right lookup", "random", "not an invitation"])
def test_a_guessed_invitation_says_nothing_about_anyone(demo: Demo, guess: str) -> None:
    real = invite(demo, "nari.oh")["invitation"]
    lookup = real[len("gpi_") : len("gpi_") + 12]
    tried = {
        "right lookup": f"gpi_{lookup}_{secrets.token_urlsafe(32)}",
        "random": f"gpi_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}",
        "not an invitation": demo.tokens["jiwoo.jung"],  # a token is no invitation
    }[guess]

    answer = redeem(demo, tried)
    page = demo.client.get("/signin", params={"invite": tried})

    assert answer.status_code == page.status_code == 400
    assert "nari.oh" not in answer.text
    assert "nari.oh" not in page.text
    assert "jiwoo.jung" not in answer.text
    assert "jiwoo.jung" not in page.text
    assert redeem(demo, real).status_code == 201  # the real one is still good


def test_only_admins_invite_outside_a_project_and_grant_pool_roles(demo: Demo) -> None:
    for user in ("jiwoo.jung", "seoyeon.lee", "jaehyun.kim", "auditor.kim"):
        answer = demo.client.post(
            f"{API}/invitations", json={"user": "sneaky.one"}, headers=demo.headers(user)
        )
        assert answer.status_code == 403, user
        granted = demo.client.post(
            f"{API}/users/{user}/roles", json={"role": "admin"}, headers=demo.headers(user)
        )
        assert granted.status_code == 403, user
    researcher = demo.client.post(
        f"{API}/invitations",
        json={"user": "sneaky.two", "project": "kaist-nlp"},
        headers=demo.headers("jiwoo.jung"),
    )
    elsewhere = demo.client.post(
        f"{API}/invitations",
        json={"user": "sneaky.three", "project": "hanbit-robot-policy"},
        headers=demo.headers("jaehyun.kim"),
    )
    assert researcher.status_code == 403
    assert elsewhere.status_code == 404  # not the program manager's program: not even seen
    with demo.books() as books:
        assert not books.people.has_user("sneaky.one")
        assert not books.people.has_user("sneaky.two")
        assert InvitationRepository(books.session).pending(utc_now()) == []


@pytest.mark.parametrize("target", ["admin", "auditor.kim", "minji.park", "jiwoo.jung"])
def test_a_program_manager_cannot_invite_themselves_in_as_someone_else(
    demo: Demo, target: str
) -> None:
    answer = demo.client.post(
        f"{API}/invitations",
        json={"user": target, "project": "kaist-nlp", "role": "pi"},
        headers=demo.headers("jaehyun.kim"),
    )

    assert answer.status_code == 403
    assert "only an admin invites someone who has one" in answer.json()["detail"]
    assert "invitation" not in answer.json()
    with demo.books() as books:
        assert InvitationRepository(books.session).pending(utc_now()) == []
        members = {member.user: member.role for member in books.people.members_of("kaist-nlp")}
    assert members.get(target) in (None, "researcher")  # nobody was made pi on the way


def test_an_exchanged_token_is_the_invited_persons_and_no_more(demo: Demo) -> None:
    issued = invite(demo, "kaist.new", by="seoyeon.lee", project="kaist-nlp")

    escalate = redeem(demo, issued["invitation"], ["read", "admin"])
    too_long = demo.client.post(
        f"{API}/invitations/redeem",
        json={"invitation": issued["invitation"], "scopes": ["read"], "expires_in_days": 3650},
    )
    token = redeem(demo, issued["invitation"], ["read", "manage"]).json()["token"]
    me = demo.client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"}).json()
    grant = demo.client.post(
        f"{API}/users/kaist.new/roles",
        json={"role": "admin"},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert escalate.status_code == too_long.status_code == 422  # and nothing used up
    assert me == {
        "user": "kaist.new",
        "roles": ["researcher"],
        "projects": {"kaist-nlp": "researcher"},
        "programs": [],
        "scopes": ["manage", "read"],
    }
    assert grant.status_code == 403


def test_where_tokens_may_not_sign_browsers_in_invitations_may_not_either(demo: Demo) -> None:
    issued = invite(demo)["invitation"]
    settings = demo.settings.model_copy(update={"token_sign_in": False})
    with TestClient(create_app(settings, demo.engine)) as browser:
        page = browser.get("/signin", params={"invite": issued})
        posted = browser.post("/auth/invite", data={"invite": issued, "csrf": "x"})

        assert page.status_code == posted.status_code == 403
        assert browser.get(f"{API}/me").status_code == 401
    assert redeem(demo, issued).status_code == 201  # still unused: the API may exchange it
