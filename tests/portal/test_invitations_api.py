"""Inviting people and appointing roles through the API, and signing in with an invitation:
its link shows whom it signs in without using it up, and its button signs the browser in once."""

from __future__ import annotations

from typing import Any

from portal.signin import SECURITY_HEADERS
from quotas.allocations import AllocationRequest
from quotas.quantities import Credits
from tests.portal.conftest import Demo

API = "/api/v1"


def invite(demo: Demo, body: dict[str, Any], user: str = "admin") -> dict[str, Any]:
    answer = demo.client.post(f"{API}/invitations", json=body, headers=demo.headers(user))
    assert answer.status_code == 201, answer.text
    found: dict[str, Any] = answer.json()
    return found


def form_values(page: str) -> dict[str, str]:
    values = {}
    for name in ("csrf", "invite"):
        marker = f'name="{name}" value="'
        start = page.index(marker) + len(marker)
        values[name] = page[start : page.index('"', start)]
    return values


def test_an_invitation_link_signs_a_browser_in_once(demo: Demo) -> None:
    issued = invite(demo, {"user": "nari.oh", "display_name": "Oh Na-ri"})
    assert issued["link"] == f"http://127.0.0.1:8000/signin?invite={issued['invitation']}"

    shown = demo.client.get("/signin", params={"invite": issued["invitation"]})
    shown_again = demo.client.get("/signin", params={"invite": issued["invitation"]})
    assert "signs you in as <strong>nari.oh</strong>" in shown_again.text  # not used by showing
    for header, value in SECURITY_HEADERS.items():
        assert shown.headers[header] == value
    signed_in = demo.client.post(
        "/auth/invite", data=form_values(shown_again.text), follow_redirects=False
    )

    assert signed_in.status_code == 303
    assert demo.client.get(f"{API}/me").json()["user"] == "nari.oh"
    demo.client.post("/auth/logout", data={})
    refused = demo.client.get("/signin", params={"invite": issued["invitation"]})
    assert refused.status_code == 400
    assert "this invitation was already used; ask for a new one." in refused.text
    assert demo.client.get(f"{API}/me").status_code == 401


def test_an_invitation_form_without_this_sessions_csrf_value_is_refused(demo: Demo) -> None:
    issued = invite(demo, {"user": "nari.oh"})
    demo.client.get("/signin", params={"invite": issued["invitation"]})

    answer = demo.client.post(
        "/auth/invite", data={"invite": issued["invitation"], "csrf": "guessed"}
    )

    assert answer.status_code == 403
    assert demo.client.get("/signin", params={"invite": issued["invitation"]}).status_code == 200


def test_an_invitation_is_exchanged_for_a_token_through_the_api(demo: Demo) -> None:
    issued = invite(demo, {"user": "kaist.newcomer", "project": "kaist-nlp"}, "seoyeon.lee")
    assert (issued["created_user"], issued["role"]) == (True, "researcher")

    answer = demo.client.post(
        f"{API}/invitations/redeem",
        json={"invitation": issued["invitation"], "scopes": ["read", "jobs"]},
    )
    again = demo.client.post(
        f"{API}/invitations/redeem", json={"invitation": issued["invitation"], "scopes": ["read"]}
    )

    assert answer.status_code == 201, answer.text
    token = answer.json()
    assert (token["user"], token["scopes"]) == ("kaist.newcomer", ["jobs", "read"])
    me = demo.client.get(f"{API}/me", headers={"Authorization": f"Bearer {token['token']}"})
    assert me.json()["projects"] == {"kaist-nlp": "researcher"}
    assert again.status_code == 400
    assert again.json()["detail"] == "this invitation was already used; ask for a new one"


def test_pending_invitations_are_listed_and_revoked(demo: Demo) -> None:
    issued = invite(demo, {"user": "nari.oh", "expires_in_days": 2})

    listed = demo.client.get(f"{API}/invitations", headers=demo.headers("auditor.kim")).json()
    by_other = demo.client.delete(
        f"{API}/invitations/{issued['id']}", headers=demo.headers("jaehyun.kim")
    )
    revoked = demo.client.delete(f"{API}/invitations/{issued['id']}", headers=demo.headers())

    assert [(each["user"], each["invited_by"]) for each in listed] == [("nari.oh", "admin")]
    assert "invitation" not in listed[0]  # the secret is shown once, never listed
    assert by_other.status_code == 404
    assert revoked.status_code == 204
    assert demo.client.get(f"{API}/invitations", headers=demo.headers()).json() == []


def test_roles_are_granted_and_revoked_in_projects_and_programs(demo: Demo) -> None:
    admin, pm = demo.headers(), demo.headers("jaehyun.kim")
    made_pi = demo.client.put(
        f"{API}/accounts/kaist-nlp/members/jiwoo.jung", json={"role": "pi"}, headers=pm
    )
    appointed = demo.client.put(f"{API}/accounts/universities/managers/eunji.han", headers=admin)
    by_pm = demo.client.put(f"{API}/accounts/universities/managers/jiwoo.jung", headers=pm)
    managers = demo.client.get(f"{API}/accounts/universities/managers", headers=pm).json()
    removed = demo.client.delete(f"{API}/accounts/universities/managers/eunji.han", headers=admin)

    assert made_pi.json() == {"user": "jiwoo.jung", "role": "pi"}
    assert appointed.json() == {"program": "universities", "user": "eunji.han"}
    assert by_pm.status_code == 403
    assert by_pm.json()["detail"] == (
        "jaehyun.kim may not appoint managers of universities: admins appoint program managers "
        "(admin)"
    )
    assert [each["user"] for each in managers] == ["eunji.han", "jaehyun.kim"]
    assert removed.status_code == 204


def test_a_refused_review_says_who_reviews(demo: Demo) -> None:
    with demo.books() as books:
        ask = AllocationRequest("kaist-nlp", books.current_period().name, Credits.of(9_000), "x")
        request_id = books.request_allocation(ask, "seoyeon.lee")
        books.submit_request(request_id, "seoyeon.lee")

    answer = demo.client.post(
        f"{API}/allocation-requests/{request_id}/review",
        json={"decision": "approve", "reason": "fine"},
        headers=demo.headers("auditor.kim"),
    )

    assert answer.status_code == 403
    assert answer.json()["detail"] == (
        "auditor.kim does not manage program universities: reviews in universities are done "
        "by its program managers: jaehyun.kim (or an admin)"
    )
