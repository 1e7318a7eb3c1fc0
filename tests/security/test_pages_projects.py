"""Attacks on the project and allocation request pages: another organization's project or
request, forged forms, a role or a token without the right, and script in what a tenant writes.
Each test fails if its hole reopens."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.portal.conftest import Demo
from tests.portal.pages.sessions import sign_in

PI = "seoyeon.lee"  # pi of kaist-nlp and kaist-protein (universities)
RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp
OUTSIDER = "hyejin.kang"  # pi of seoulvision-doc-ocr (startups) only
OTHER_MANAGER = "minji.park"  # program manager of startups
MANAGER = "jaehyun.kim"  # program manager of universities


def members_of(demo: Demo, project: str) -> dict[str, str]:
    answer = demo.client.get(f"/api/v1/accounts/{project}/members", headers=demo.headers())
    return {member["user"]: member["role"] for member in answer.json()}


def request_state(demo: Demo, request_id: int) -> dict[str, Any]:
    answer = demo.client.get(f"/api/v1/allocation-requests/{request_id}", headers=demo.headers())
    result: dict[str, Any] = answer.json()
    return result


def request_total(demo: Demo) -> int:
    listed = demo.client.get("/api/v1/allocation-requests", headers=demo.headers()).json()
    return int(listed["total"])


def a_request(demo: Demo, submit: bool = True, **fields: str) -> int:
    csrf = sign_in(demo.client, demo.tokens[PI])
    form = {
        "csrf": csrf,
        "project": "kaist-nlp",
        "requested": "6000",
        "justification": "secret-plan for the 13B model",
        "tranches": "50,50",
        **fields,
    }
    answer = demo.client.post("/requests/new", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    request_id = int(answer.headers["location"].removeprefix("/requests/"))
    if submit:
        demo.client.post(f"/requests/{request_id}/submit", data={"csrf": csrf})
    return request_id


def test_another_organizations_project_does_not_exist_for_you(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[OUTSIDER])
    before = members_of(demo, "kaist-nlp")
    for path in ("/projects/kaist-nlp", "/projects/kaist-nlp?period=x"):
        page = demo.client.get(path)
        assert page.status_code == 404
        assert "Korean LLM instruction tuning" not in page.text
    assert "kaist-nlp" not in demo.client.get("/projects").text
    for path, form in (
        ("/projects/kaist-nlp/members", {"user": OUTSIDER, "role": "pi"}),
        ("/projects/kaist-nlp/members/jiwoo.jung/role", {"role": "pi"}),
        ("/projects/kaist-nlp/members/jiwoo.jung/remove", {}),
    ):
        answer = demo.client.post(path, data={"csrf": csrf, **form})
        assert answer.status_code == 404
    assert members_of(demo, "kaist-nlp") == before


def test_another_organizations_request_does_not_exist_for_you(demo: Demo) -> None:
    request_id = a_request(demo)
    for outsider in (OUTSIDER, OTHER_MANAGER):
        csrf = sign_in(demo.client, demo.tokens[outsider])
        page = demo.client.get(f"/requests/{request_id}")
        assert page.status_code == 404
        assert "secret-plan" not in page.text
        assert f'data-request="{request_id}"' not in demo.client.get("/requests").text
        assert f'data-request="{request_id}"' not in demo.client.get("/requests?review=true").text
        assert demo.client.get("/requests?project=kaist-nlp").status_code == 404
        for action, form in (
            ("review", {"decision": "approve", "reason": "mine now"}),
            ("withdraw", {}),
            ("submit", {}),
            ("tranches/1/release", {}),
        ):
            answer = demo.client.post(
                f"/requests/{request_id}/{action}", data={"csrf": csrf, **form}
            )
            assert answer.status_code == 404
            assert "secret-plan" not in answer.text
    assert request_state(demo, request_id)["state"] == "submitted"


def test_an_outsider_cannot_request_credits_for_another_project(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[OUTSIDER])
    before = request_total(demo)
    answer = demo.client.post(
        "/requests/new",
        data={"csrf": csrf, "project": "kaist-nlp", "requested": "1", "justification": "x"},
    )
    assert answer.status_code == 404
    assert "no project kaist-nlp" in answer.text
    assert request_total(demo) == before


@pytest.mark.parametrize("csrf", [None, "", "forged-value"])
def test_forms_posted_without_the_sessions_csrf_value_change_nothing(
    demo: Demo, csrf: str | None
) -> None:
    request_id = a_request(demo)
    draft_id = a_request(demo, submit=False)
    sign_in(demo.client, demo.tokens[MANAGER])
    token = {"csrf": csrf} if csrf is not None else {}
    members = members_of(demo, "kaist-nlp")
    before = request_total(demo)
    posts: list[tuple[str, dict[str, str]]] = [
        ("/projects/kaist-nlp/members", {"user": "eunji.han", "role": "pi"}),
        ("/projects/kaist-nlp/members/jiwoo.jung/role", {"role": "pi"}),
        ("/projects/kaist-nlp/members/jiwoo.jung/remove", {}),
        (f"/requests/{request_id}/review", {"decision": "approve", "reason": "forged"}),
        (f"/requests/{draft_id}/submit", {}),
        (f"/requests/{request_id}/withdraw", {}),
        (
            "/requests/new",
            {"project": "kaist-nlp", "requested": "1", "justification": "forged"},
        ),
    ]
    for path, form in posts:
        answer = demo.client.post(path, data={**token, **form}, follow_redirects=False)
        assert answer.status_code in (403, 422), path
    assert members_of(demo, "kaist-nlp") == members
    assert request_state(demo, request_id)["state"] == "submitted"
    assert request_state(demo, draft_id)["state"] == "draft"
    assert request_total(demo) == before


def test_a_researcher_may_not_change_members_or_act_on_the_pis_requests(demo: Demo) -> None:
    request_id = a_request(demo)
    draft_id = a_request(demo, submit=False)
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    members = members_of(demo, "kaist-nlp")
    before = request_total(demo)
    for path, form in (
        ("/projects/kaist-nlp/members", {"user": RESEARCHER, "role": "pi"}),
        (f"/projects/kaist-nlp/members/{RESEARCHER}/role", {"role": "pi"}),
        (f"/projects/kaist-nlp/members/{PI}/remove", {}),
        (f"/requests/{draft_id}/submit", {}),
        (f"/requests/{request_id}/withdraw", {}),
        (f"/requests/{request_id}/review", {"decision": "approve", "reason": "me"}),
        ("/requests/new", {"project": "kaist-nlp", "requested": "1", "justification": "me"}),
    ):
        answer = demo.client.post(path, data={"csrf": csrf, **form}, follow_redirects=False)
        assert answer.status_code == 403, path
    assert members_of(demo, "kaist-nlp") == members
    assert request_state(demo, request_id)["state"] == "submitted"
    assert request_state(demo, draft_id)["state"] == "draft"
    assert request_total(demo) == before


def test_a_pi_may_not_review_their_own_request(demo: Demo) -> None:
    request_id = a_request(demo)
    csrf = sign_in(demo.client, demo.tokens[PI])
    answer = demo.client.post(
        f"/requests/{request_id}/review",
        data={"csrf": csrf, "decision": "approve", "reason": "looks great"},
    )
    assert answer.status_code == 403
    assert "conflict of interest" in answer.text
    assert request_state(demo, request_id)["state"] == "submitted"


def test_what_a_tenant_writes_is_shown_as_text_never_run(demo: Demo) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    request_id = a_request(demo, justification=hostile)
    created = demo.client.post(
        "/api/v1/accounts",
        json={"name": "evil-proj", "kind": "project", "parent": "kaist", "display_name": hostile},
        headers=demo.headers(),
    )
    assert created.status_code == 201, created.text
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    refused = demo.client.post(
        "/projects/kaist-nlp/members", data={"csrf": csrf, "user": hostile, "role": "researcher"}
    )
    assert refused.status_code in (404, 422)
    for answer in (
        refused,
        demo.client.get(f"/requests/{request_id}"),
        demo.client.get("/projects"),
        demo.client.get("/projects/evil-proj"),
    ):
        assert "<script>alert" not in answer.text
        assert "<img src=x" not in answer.text
    page = demo.client.get(f"/requests/{request_id}").text
    assert "&lt;script&gt;" in page
    assert re.search(r"&lt;img src=x onerror=alert\(1\)&gt;", page)
