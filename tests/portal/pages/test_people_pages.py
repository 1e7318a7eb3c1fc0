"""The people and tokens pages over the demo pool, through a test client signed in as a browser
is: users with every role they hold, inviting with a link shown once, granting and revoking
roles through the API's use cases, and one's own tokens."""

from __future__ import annotations

import re
from html import unescape

from tests.portal.conftest import AUDITOR, Demo
from tests.portal.pages.sessions import sign_in

RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp and hanbit-robot-policy
MANAGER = "jaehyun.kim"  # program manager of universities
LINK = re.compile(r'id="invite-link"[^>]*value="([^"]+)"')
SECRET = re.compile(r'id="new-token"[^>]*value="([^"]+)"')


def api(demo: Demo, path: str, user: str = "admin") -> object:
    answer = demo.client.get(f"/api/v1{path}", headers=demo.headers(user))
    assert answer.status_code == 200, answer.text
    return answer.json()


def invite(demo: Demo, csrf: str, user: str, **fields: str) -> str:
    """Invite ``user`` on the page; answers the sign-in link it shows."""
    answer = demo.client.post(
        "/admin/people/invitations", data={"csrf": csrf, "user": user, **fields}
    )
    assert answer.status_code == 201, answer.text
    found = LINK.search(answer.text)
    assert found, "the answer shows no sign-in link"
    return unescape(found.group(1))


def roles(demo: Demo, user: str) -> list[str]:
    listed = api(demo, "/users?limit=200")
    assert isinstance(listed, dict)
    return next(each["roles"] for each in listed["items"] if each["name"] == user)


def test_the_people_page_shows_every_role_each_user_holds(demo: Demo) -> None:
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get("/admin/people")
    assert page.status_code == 200
    row = page.text.split('id="user-seoyeon.lee"')[1].split("</tr>")[0]
    assert "kaist-nlp: PI" in row
    assert "kaist-protein: PI" in row
    manager = page.text.split(f'id="user-{MANAGER}"')[1].split("</tr>")[0]
    assert "universities" in manager
    auditor = page.text.split(f'id="user-{AUDITOR}"')[1].split("</tr>")[0]
    assert "Auditor" in auditor
    assert 'href="/admin/people"' in page.text  # in the navigation
    assert 'href="/tokens"' in page.text


def test_the_page_speaks_korean(demo: Demo) -> None:
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get("/admin/people", headers={"Accept-Language": "ko-KR"})
    assert "사용자와 역할" in page.text
    assert "kaist-nlp: 책임자(PI)" in page.text


def test_inviting_makes_the_user_and_shows_the_link_once(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    link = invite(demo, csrf, "mina.seo", display_name="Mina Seo", project="kaist-nlp")
    assert link.startswith(f"{demo.settings.base_url}/signin?invite=gpi_")
    members = api(demo, "/accounts/kaist-nlp/members")
    assert {"user": "mina.seo", "role": "researcher"} in members  # type: ignore[operator]
    pending = api(demo, "/invitations")
    assert isinstance(pending, list)
    assert [each["user"] for each in pending] == ["mina.seo"]

    again = demo.client.get("/admin/people")
    assert again.status_code == 200
    invitation = link.split("invite=")[1]
    assert invitation not in again.text
    assert "mina.seo" in again.text  # listed, pending, without its link

    signed = demo.client.get(f"/signin?invite={invitation}")
    assert signed.status_code == 200
    assert "Sign in as mina.seo" in signed.text


def test_an_invitation_is_revoked_on_the_page(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    invite(demo, csrf, "mina.seo")
    pending = api(demo, "/invitations")
    assert isinstance(pending, list)
    invitation_id = pending[0]["id"]
    answer = demo.client.post(
        f"/admin/people/invitations/{invitation_id}/revoke",
        data={"csrf": csrf},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/people?done=invitation_revoked"
    assert api(demo, "/invitations") == []
    assert "The invitation was revoked." in demo.client.get(answer.headers["location"]).text


def test_roles_are_granted_and_revoked_through_the_api_use_cases(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    post = demo.client.post
    granted = post(
        "/admin/people/roles",
        data={"csrf": csrf, "user": RESEARCHER, "role": "auditor"},
        follow_redirects=False,
    )
    assert granted.status_code == 303
    assert roles(demo, RESEARCHER) == ["auditor"]
    post("/admin/people/roles/revoke", data={"csrf": csrf, "user": RESEARCHER, "role": "auditor"})
    assert roles(demo, RESEARCHER) == []

    post("/admin/people/managers", data={"csrf": csrf, "user": RESEARCHER, "program": "startups"})
    assert RESEARCHER in [m["user"] for m in api(demo, "/accounts/startups/managers")]  # type: ignore[index]
    post(
        "/admin/people/managers/revoke",
        data={"csrf": csrf, "user": RESEARCHER, "program": "startups"},
    )
    assert RESEARCHER not in [m["user"] for m in api(demo, "/accounts/startups/managers")]  # type: ignore[index]

    post(
        "/admin/people/members",
        data={"csrf": csrf, "user": RESEARCHER, "project": "kaist-nlp", "role": "pi"},
    )
    assert {"user": RESEARCHER, "role": "pi"} in api(demo, "/accounts/kaist-nlp/members")  # type: ignore[operator]
    post(
        "/admin/people/members/remove",
        data={"csrf": csrf, "user": RESEARCHER, "project": "kaist-nlp"},
    )
    members = api(demo, "/accounts/kaist-nlp/members")
    assert RESEARCHER not in [m["user"] for m in members]  # type: ignore[union-attr,index]


def test_a_refusal_says_why_and_who_may(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    last_admin = demo.client.post(
        "/admin/people/roles/revoke", data={"csrf": csrf, "user": "admin", "role": "admin"}
    )
    assert last_admin.status_code == 422
    assert "the last admin" in last_admin.text
    assert roles(demo, "admin") == ["admin"]
    unknown = demo.client.post(
        "/admin/people/roles", data={"csrf": csrf, "user": "nobody.here", "role": "auditor"}
    )
    assert unknown.status_code == 404
    assert "nobody.here" in unknown.text


def test_an_auditor_reads_the_page_without_any_form_to_change_it(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[AUDITOR])
    page = demo.client.get("/admin/people")
    assert page.status_code == 200
    assert "seoyeon.lee" in page.text
    assert 'action="/admin/people/roles"' not in page.text
    assert 'action="/admin/people/invitations"' not in page.text
    assert "Only admins invite people" in page.text
    refused = demo.client.post(
        "/admin/people/roles", data={"csrf": csrf, "user": AUDITOR, "role": "admin"}
    )
    assert refused.status_code == 403
    assert "admin" in refused.text
    assert roles(demo, AUDITOR) == ["auditor"]


def test_the_tokens_page_makes_a_token_shown_once_and_revokes_it(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    page = demo.client.get("/tokens")
    assert page.status_code == 200
    made = demo.client.post(
        "/tokens", data={"csrf": csrf, "name": "laptop", "scopes": ["read", "jobs"]}
    )
    assert made.status_code == 201, made.text
    found = SECRET.search(made.text)
    assert found
    secret = unescape(found.group(1))
    assert secret.startswith("gpp_")
    me = demo.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).json()
    assert me["user"] == RESEARCHER
    assert me["scopes"] == ["jobs", "read"]

    again = demo.client.get("/tokens")
    assert secret not in again.text
    assert "laptop" in again.text
    listed = demo.client.get("/api/v1/tokens", headers=demo.headers(RESEARCHER)).json()
    token_id = next(each["id"] for each in listed if each["name"] == "laptop")
    revoked = demo.client.post(
        f"/tokens/{token_id}/revoke", data={"csrf": csrf}, follow_redirects=False
    )
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/tokens?done=token_revoked"
    refused = demo.client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401


def test_a_token_form_without_a_name_or_scope_is_sent_back(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    before = demo.client.get("/api/v1/tokens", headers=demo.headers(RESEARCHER)).json()
    no_scope = demo.client.post("/tokens", data={"csrf": csrf, "name": "ci"})
    assert no_scope.status_code == 422
    assert "Tick at least one scope." in no_scope.text
    no_name = demo.client.post("/tokens", data={"csrf": csrf, "name": " ", "scopes": "read"})
    assert no_name.status_code == 422
    odd_days = demo.client.post(
        "/tokens", data={"csrf": csrf, "name": "ci", "scopes": "read", "days": "4000"}
    )
    assert odd_days.status_code == 422
    after = demo.client.get("/api/v1/tokens", headers=demo.headers(RESEARCHER)).json()
    assert after == before
