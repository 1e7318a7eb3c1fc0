"""Attacks on the people and tokens pages: inviting and granting without the right, reading or
revoking another user's tokens, a program manager reaching past their program, an invitation
link or token secret shown twice, scopes escalated through a forged form, forged CSRF, and
script in what a person names. Each test fails if its hole reopens."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest

from quotas.access import Scope
from quotas.clock import utc_now
from quotas.db.session import session_factory, transaction
from quotas.tokens import issue
from tests.portal.conftest import AUDITOR, Demo
from tests.portal.pages.sessions import sign_in

RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp and hanbit-robot-policy
PI = "seoyeon.lee"  # pi of kaist-nlp and kaist-protein
MANAGER = "jaehyun.kim"  # program manager of universities (kaist-*, snu-*, postech-*)
OTHER_PROGRAMS_PROJECT = "hanbit-robot-policy"  # in startups
LINK = re.compile(r'id="invite-link"[^>]*value="([^"]+)"')
SECRET = re.compile(r'id="new-token"[^>]*value="([^"]+)"')

PEOPLE_FORMS = (
    ("/admin/people/invitations", {"user": "eve.new"}),
    ("/admin/people/roles", {"user": RESEARCHER, "role": "admin"}),
    ("/admin/people/roles/revoke", {"user": AUDITOR, "role": "auditor"}),
    ("/admin/people/managers", {"user": RESEARCHER, "program": "universities"}),
    ("/admin/people/managers/revoke", {"user": MANAGER, "program": "universities"}),
    ("/admin/people/members", {"user": RESEARCHER, "project": "kaist-protein", "role": "pi"}),
    ("/admin/people/members/remove", {"user": RESEARCHER, "project": "kaist-nlp"}),
)


def state(demo: Demo) -> dict[str, object]:
    """Everything the people forms could change, as the API shows it to the admin."""
    headers = demo.headers("admin")
    get = demo.client.get
    return {
        "users": get("/api/v1/users?limit=200", headers=headers).json()["items"],
        "invitations": [i["user"] for i in get("/api/v1/invitations", headers=headers).json()],
        "managers": {
            program: get(f"/api/v1/accounts/{program}/managers", headers=headers).json()
            for program in ("startups", "universities")
        },
        "members": {
            project: get(f"/api/v1/accounts/{project}/members", headers=headers).json()
            for project in ("kaist-nlp", "kaist-protein", OTHER_PROGRAMS_PROJECT)
        },
    }


def token_names(demo: Demo, user: str) -> list[str]:
    listed = demo.client.get("/api/v1/tokens", headers=demo.headers(user)).json()
    return sorted(each["name"] for each in listed)


@pytest.mark.parametrize("user", [RESEARCHER, PI, MANAGER, AUDITOR])
def test_no_one_but_an_admin_invites_or_grants_pool_roles(demo: Demo, user: str) -> None:
    csrf = sign_in(demo.client, demo.tokens[user])
    before = state(demo)
    for path, fields in PEOPLE_FORMS:
        if path.startswith("/admin/people/members") and user in (PI, MANAGER):
            continue  # theirs to do in their projects: tested below
        answer = demo.client.post(path, data={"csrf": csrf, **fields}, follow_redirects=False)
        assert answer.status_code in (403, 404), (path, answer.status_code)
        assert 'id="invite-link"' not in answer.text
    assert state(demo) == before


def test_the_people_page_is_not_a_researchers(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[RESEARCHER])
    page = demo.client.get("/admin/people")
    assert page.status_code == 403
    assert "seoyeon.lee" not in page.text
    assert 'href="/admin/people"' not in demo.client.get("/tokens").text  # not in the nav


def test_a_refusal_says_who_may_act(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    appoint = demo.client.post(
        "/admin/people/managers", data={"csrf": csrf, "user": RESEARCHER, "program": "universities"}
    )
    assert appoint.status_code == 403
    assert "admins appoint program managers (admin)" in appoint.text
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    member = demo.client.post(
        "/admin/people/members",
        data={"csrf": csrf, "user": RESEARCHER, "project": "kaist-nlp", "role": "pi"},
    )
    assert member.status_code == 403
    assert "its pi (seoyeon.lee)" in member.text
    assert "the managers of its program or an admin may" in member.text
    assert "jaehyun.kim" not in member.text  # a program's managers are named to its readers


def test_a_program_manager_appoints_only_within_their_program(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    inside = demo.client.post(
        "/admin/people/members",
        data={"csrf": csrf, "user": RESEARCHER, "project": "kaist-protein", "role": "pi"},
        follow_redirects=False,
    )
    assert inside.status_code == 303
    assert inside.headers["location"] == "/projects/kaist-protein"
    members = demo.client.get(
        "/api/v1/accounts/kaist-protein/members", headers=demo.headers("admin")
    ).json()
    assert {"user": RESEARCHER, "role": "pi"} in members

    before = state(demo)
    outside = demo.client.post(
        "/admin/people/members",
        data={"csrf": csrf, "user": RESEARCHER, "project": OTHER_PROGRAMS_PROJECT, "role": "pi"},
    )
    assert outside.status_code in (403, 404)
    removed = demo.client.post(
        "/admin/people/members/remove",
        data={"csrf": csrf, "user": "dohyun.choi", "project": OTHER_PROGRAMS_PROJECT},
    )
    assert removed.status_code in (403, 404)
    invited = demo.client.post(
        "/admin/people/invitations",
        data={"csrf": csrf, "user": "eve.new", "project": OTHER_PROGRAMS_PROJECT},
    )
    assert invited.status_code in (403, 404)
    assert 'id="invite-link"' not in invited.text
    assert state(demo) == before


def test_a_pi_invites_a_new_person_into_their_own_project_only(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[PI])
    invited = demo.client.post(
        "/admin/people/invitations",
        data={"csrf": csrf, "user": "new.student", "project": "kaist-nlp"},
    )
    assert invited.status_code == 201
    assert LINK.search(invited.text)
    before = state(demo)
    existing = demo.client.post(
        "/admin/people/invitations",
        data={"csrf": csrf, "user": RESEARCHER, "project": "kaist-nlp"},
    )
    assert existing.status_code == 403  # signing in as someone who already has an account
    assert not LINK.search(existing.text)
    assert state(demo) == before


def test_the_invitation_link_is_shown_once(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    answer = demo.client.post("/admin/people/invitations", data={"csrf": csrf, "user": "mina.seo"})
    assert answer.status_code == 201
    assert answer.headers["cache-control"] == "no-store"
    found = LINK.search(answer.text)
    assert found
    invitation = unescape(found.group(1)).split("invite=")[1]
    assert all(invitation not in value for value in demo.client.cookies.values())
    for path in ("/admin/people", "/admin/people?done=role_granted", "/tokens", "/"):
        page = demo.client.get(path)
        assert page.status_code == 200
        assert invitation not in page.text
        assert 'id="invite-link"' not in page.text


def test_others_tokens_are_neither_shown_nor_revoked(demo: Demo) -> None:
    victim = demo.token(PI, [Scope.READ])
    victim_names = token_names(demo, PI)
    listed = demo.client.get("/api/v1/tokens", headers=demo.headers(PI)).json()
    victim_id = listed[-1]["id"]
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    page = demo.client.get("/tokens")
    assert page.status_code == 200
    assert f"/tokens/{victim_id}/revoke" not in page.text
    revoke = demo.client.post(f"/tokens/{victim_id}/revoke", data={"csrf": csrf})
    assert revoke.status_code == 404
    assert token_names(demo, PI) == victim_names
    me = demo.client.get("/api/v1/me", headers={"Authorization": f"Bearer {victim}"})
    assert me.status_code == 200


def test_a_token_has_exactly_the_scopes_ticked(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    before = token_names(demo, RESEARCHER)
    for forged in (["admin"], ["read", "admin"], ["read", "*"], ["READ"], ["read "]):
        answer = demo.client.post(
            "/tokens", data={"csrf": csrf, "name": "forged", "scopes": forged}
        )
        assert answer.status_code == 422, forged
        assert not SECRET.search(answer.text)
    assert token_names(demo, RESEARCHER) == before

    made = demo.client.post(
        "/tokens",
        data={"csrf": csrf, "name": "ro", "scopes": ["read", "read"], "role": "admin"},
    )
    assert made.status_code == 201
    found = SECRET.search(made.text)
    assert found
    secret = unescape(found.group(1))
    bearer = {"Authorization": f"Bearer {secret}"}
    assert demo.client.get("/api/v1/me", headers=bearer).json()["scopes"] == ["read"]
    submit = demo.client.post(
        "/api/v1/jobs", headers=bearer, json={"project": "kaist-nlp", "entrypoint": "x"}
    )
    assert submit.status_code == 403
    assert demo.client.get("/tokens").text.count(secret) == 0


def test_a_token_made_on_the_page_never_outlives_the_sign_in(demo: Demo) -> None:
    """A session signed in with a token that expires makes tokens that expire no later."""
    now = utc_now()
    with transaction(session_factory(demo.engine)) as session:
        short = issue(session, RESEARCHER, "short", list(Scope), now, now + timedelta(days=2))
    csrf = sign_in(demo.client, short.token)
    before = token_names(demo, RESEARCHER)
    answer = demo.client.post(
        "/tokens", data={"csrf": csrf, "name": "long", "scopes": "read", "days": "30"}
    )
    assert answer.status_code == 422
    assert "cannot outlive" in answer.text
    assert token_names(demo, RESEARCHER) == before


@pytest.mark.parametrize("csrf", [None, "", "forged-value"])
def test_forms_without_the_sessions_csrf_value_change_nothing(demo: Demo, csrf: str | None) -> None:
    real = sign_in(demo.client, demo.admin_token)
    listed = demo.client.get("/api/v1/tokens", headers=demo.headers("admin")).json()
    token_id = listed[0]["id"]
    invited = demo.client.post("/admin/people/invitations", data={"csrf": real, "user": "x.y"})
    assert invited.status_code == 201
    invitation_id = demo.client.get("/api/v1/invitations", headers=demo.headers()).json()[0]["id"]
    before = (state(demo), token_names(demo, "admin"))
    forms = [
        *PEOPLE_FORMS,
        (f"/admin/people/invitations/{invitation_id}/revoke", {}),
        ("/tokens", {"name": "forged", "scopes": "read"}),
        (f"/tokens/{token_id}/revoke", {}),
    ]
    for path, fields in forms:
        data = dict(fields)
        if csrf is not None:
            data["csrf"] = csrf
        answer = demo.client.post(path, data=data, follow_redirects=False)
        assert answer.status_code in (403, 422), path
        assert not LINK.search(answer.text)
        assert not SECRET.search(answer.text)
    assert (state(demo), token_names(demo, "admin")) == before


def test_what_a_person_names_is_shown_as_text_never_run(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    refused = demo.client.post("/admin/people/invitations", data={"csrf": csrf, "user": hostile})
    assert refused.status_code == 422
    assert "<script>alert" not in refused.text
    invited = demo.client.post(
        "/admin/people/invitations",
        data={"csrf": csrf, "user": "mina.seo", "display_name": hostile},
    )
    assert invited.status_code == 201
    made = demo.client.post("/tokens", data={"csrf": csrf, "name": hostile, "scopes": "read"})
    assert made.status_code == 201
    for page in (
        invited,
        made,
        demo.client.get("/admin/people"),
        demo.client.get("/tokens"),
    ):
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
    assert "&lt;script&gt;" in demo.client.get("/tokens").text
