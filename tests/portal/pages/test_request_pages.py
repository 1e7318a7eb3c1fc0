"""The allocation request pages over the demo pool, through a test client signed in as a
browser is: a pi drafts and submits, a program manager reviews from the queue, tranches."""

from __future__ import annotations

import re
from typing import Any

from tests.portal.conftest import Demo
from tests.portal.pages.sessions import sign_in

PI = "seoyeon.lee"  # pi of kaist-nlp and kaist-protein (program universities)
MANAGER = "jaehyun.kim"  # program manager of universities
OTHER_MANAGER = "minji.park"  # program manager of startups
RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp


def draft(demo: Demo, csrf: str, **fields: str) -> int:
    form = {
        "csrf": csrf,
        "project": "kaist-nlp",
        "requested": "6000",
        "justification": "Evaluation runs for the 13B model",
        "tranches": "50,50",
        **fields,
    }
    answer = demo.client.post("/requests/new", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert re.fullmatch(r"/requests/\d+", location)
    return int(location.removeprefix("/requests/"))


def api(demo: Demo, request_id: int, user: str = "admin") -> dict[str, Any]:
    answer = demo.client.get(
        f"/api/v1/allocation-requests/{request_id}", headers=demo.headers(user)
    )
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def post(demo: Demo, path: str, **form: str) -> Any:
    return demo.client.post(path, data=form, follow_redirects=False)


def submitted_request(demo: Demo) -> int:
    csrf = sign_in(demo.client, demo.tokens[PI])
    request_id = draft(demo, csrf)
    assert post(demo, f"/requests/{request_id}/submit", csrf=csrf).status_code == 303
    return request_id


def test_a_pi_drafts_a_request_and_submits_it(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[PI])
    form = demo.client.get("/requests/new?project=kaist-protein")
    assert form.status_code == 200
    assert '<option value="kaist-protein" selected>' in form.text
    request_id = draft(demo, csrf, flavors="h100-80g")
    saved = api(demo, request_id)
    assert saved["state"] == "draft"
    assert saved["requested"] == "6000.0"
    assert saved["tranche_percents"] == [50, 50]
    assert saved["flavors"] == ["h100-80g"]
    assert saved["created_by"] == PI
    page = demo.client.get(f"/requests/{request_id}").text
    assert 'data-state="draft"' in page
    assert "Submit for review" in page
    assert "Evaluation runs for the 13B model" in page
    assert post(demo, f"/requests/{request_id}/submit", csrf=csrf).status_code == 303
    assert api(demo, request_id)["state"] == "submitted"
    page = demo.client.get(f"/requests/{request_id}").text
    assert 'data-state="submitted"' in page
    assert "Submit for review" not in page
    # the pi may not review their own request; the page says who reviews
    assert f'action="/requests/{request_id}/review"' not in page
    assert "jaehyun.kim" in page


def test_a_refused_draft_keeps_the_form_and_says_why(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[PI])
    before = demo.client.get("/api/v1/allocation-requests", headers=demo.headers()).json()["total"]
    for fields in ({"tranches": "60,60"}, {"requested": "lots"}, {"tranches": "half"}):
        answer = demo.client.post(
            "/requests/new",
            data={
                "csrf": csrf,
                "project": "kaist-nlp",
                "requested": "6000",
                "justification": "Keep this text",
                **fields,
            },
        )
        assert answer.status_code == 422
        assert "The request was not saved." in answer.text
        assert "Keep this text" in answer.text
    after = demo.client.get("/api/v1/allocation-requests", headers=demo.headers()).json()["total"]
    assert after == before


def test_the_pi_withdraws_a_submitted_request(demo: Demo) -> None:
    request_id = submitted_request(demo)
    csrf = sign_in(demo.client, demo.tokens[PI])
    assert post(demo, f"/requests/{request_id}/withdraw", csrf=csrf).status_code == 303
    assert api(demo, request_id)["state"] == "withdrawn"


def test_the_program_manager_reviews_from_the_queue_and_releases_a_tranche(demo: Demo) -> None:
    request_id = submitted_request(demo)
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    queue = demo.client.get("/requests?review=true").text
    queued = set(map(int, re.findall(r'<tr data-request="(\d+)"', queue)))
    assert request_id in queued
    listed = demo.client.get(
        "/api/v1/allocation-requests?state=submitted", headers=demo.headers(MANAGER)
    ).json()["items"]
    assert queued == {item["id"] for item in listed}  # the demo's universities ones too
    page = demo.client.get(f"/requests/{request_id}").text
    assert f'action="/requests/{request_id}/review"' in page
    approved = post(
        demo, f"/requests/{request_id}/review", csrf=csrf, decision="approve", reason="Sound plan"
    )
    assert approved.status_code == 303
    reviewed = api(demo, request_id)
    assert reviewed["state"] == "approved"
    assert reviewed["reviewer"] == MANAGER
    assert reviewed["awarded"] == "6000.0"
    assert [t["released_at"] is not None for t in reviewed["tranches"]] == [True, False]
    page = demo.client.get(f"/requests/{request_id}").text
    assert "Sound plan" in page
    assert f'action="/requests/{request_id}/tranches/2/release"' in page
    released = post(demo, f"/requests/{request_id}/tranches/2/release", csrf=csrf)
    assert released.status_code == 303
    assert all(t["released_at"] is not None for t in api(demo, request_id)["tranches"])
    assert request_id not in set(
        map(
            int,
            re.findall(r'<tr data-request="(\d+)"', demo.client.get("/requests?review=true").text),
        )
    )


def test_an_adjustment_awards_the_credits_named(demo: Demo) -> None:
    request_id = submitted_request(demo)
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    missing = post(
        demo, f"/requests/{request_id}/review", csrf=csrf, decision="adjust", reason="Less"
    )
    assert missing.status_code == 422
    assert "names the credits awarded" in missing.text
    assert api(demo, request_id)["state"] == "submitted"
    adjusted = post(
        demo,
        f"/requests/{request_id}/review",
        csrf=csrf,
        decision="adjust",
        reason="Start smaller",
        awarded="4000",
    )
    assert adjusted.status_code == 303
    reviewed = api(demo, request_id)
    assert (reviewed["state"], reviewed["awarded"]) == ("adjusted", "4000.0")


def test_a_decline_needs_a_reason(demo: Demo) -> None:
    request_id = submitted_request(demo)
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    empty = post(demo, f"/requests/{request_id}/review", csrf=csrf, decision="decline", reason=" ")
    assert empty.status_code == 422
    declined = post(
        demo, f"/requests/{request_id}/review", csrf=csrf, decision="decline", reason="Not now"
    )
    assert declined.status_code == 303
    assert api(demo, request_id)["state"] == "declined"


def test_the_list_filters_by_state_and_offers_csv(demo: Demo) -> None:
    sign_in(demo.client, demo.admin_token)
    page = demo.client.get("/requests?state=submitted").text
    shown = set(map(int, re.findall(r'<tr data-request="(\d+)"', page)))
    listed = demo.client.get(
        "/api/v1/allocation-requests?state=submitted", headers=demo.headers()
    ).json()["items"]
    assert shown == {item["id"] for item in listed}
    assert "/api/v1/allocation-requests?state=submitted&amp;limit=500&amp;format=csv" in page
    csv = demo.client.get("/api/v1/allocation-requests?state=submitted&limit=500&format=csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")


def test_someone_who_may_not_review_is_told_who_may(demo: Demo) -> None:
    request_id = submitted_request(demo)
    sign_in(demo.client, demo.tokens[RESEARCHER])
    page = demo.client.get(f"/requests/{request_id}").text
    assert f'action="/requests/{request_id}/review"' not in page
    assert "/withdraw" not in page
    assert "You cannot review this request." in page
    assert "or an admin" in page


def test_the_request_pages_are_in_korean(demo: Demo) -> None:
    request_id = submitted_request(demo)
    sign_in(demo.client, demo.tokens[MANAGER])
    demo.client.cookies.set("gpupool_lang", "ko")
    page = demo.client.get(f"/requests/{request_id}").text
    assert "검토 대기" in page
    assert "승인" in page
    assert "Waiting for review" not in page
