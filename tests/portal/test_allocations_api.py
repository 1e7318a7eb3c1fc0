"""The allocation-request API: draft, submit, review, tranches, withdraw; scoping and refusals.

Demo requests (quotas/demo.py), in order: 1 hanbit-robot-policy approved in two tranches,
2 seoulvision-doc-ocr auto-approved, 3 kaist-nlp adjusted, 4 kaist-protein approved,
5 snu-medical-imaging approved, 6 postech-materials auto-approved, 7 snu-medical-imaging waiting.
"""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.portal.conftest import Demo

API = "/api/v1"


def counts(demo: Demo) -> tuple[int, int, int]:
    """Audit entries, ledger entries and allocation requests: what a refusal must not change."""
    with demo.books() as books:
        return (
            books.audit.search(limit=1)[1],
            books.ledger.search(limit=1)[1],
            books.allocations.search(limit=1)[1],
        )


def available(demo: Demo, project: str) -> str:
    response = demo.client.get(f"{API}/accounts/{project}", headers=demo.headers())
    return str(response.json()["balances"]["available"])


def draft(demo: Demo, user: str, project: str, requested: str = "10000", **extra: Any) -> Any:
    body = {"project": project, "requested": requested, "justification": "more GPUs"}
    response = demo.client.post(
        f"{API}/allocation-requests", json=body | extra, headers=demo.headers(user)
    )
    assert response.status_code == 201, response.text
    return response.json()


def act(demo: Demo, user: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return demo.client.post(
        f"{API}/allocation-requests/{path}", json=body, headers=demo.headers(user)
    )


def test_a_request_goes_from_draft_to_award_in_tranches_through_the_ledger(demo: Demo) -> None:
    made = draft(demo, "seoyeon.lee", "kaist-protein", tranche_percents=[50, 50])
    request = made["id"]

    submitted = act(demo, "seoyeon.lee", f"{request}/submit")
    approved = act(
        demo, "jaehyun.kim", f"{request}/review", {"decision": "approve", "reason": "sound plan"}
    )
    after_first = available(demo, "kaist-protein")
    released = act(demo, "jaehyun.kim", f"{request}/tranches/2/release")
    again = act(demo, "jaehyun.kim", f"{request}/tranches/2/release")

    assert made["state"] == "draft"
    assert made["created_by"] == "seoyeon.lee"
    assert made["period"]
    assert made["tranches"] == []
    assert submitted.json()["state"] == "submitted"
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "approved"
    assert approved.json()["awarded"] == "10000.0"
    assert after_first == "13000.0"  # 8000 from the demo plus the first half
    assert released.status_code == 200, released.text
    tranches = released.json()["tranches"]
    assert [(t["seq"], t["amount"]) for t in tranches] == [(1, "5000.0"), (2, "5000.0")]
    assert all(t["released_at"] for t in tranches)
    assert available(demo, "kaist-protein") == "18000.0"
    assert again.status_code == 422
    with demo.books() as books:
        awards = books.ledger.search(kinds=[], account="kaist-protein", limit=10)[0]
        actions = [entry.action for entry in books.audit.search(target=f"allocation/{request}")[0]]
    assert [entry.posting.allocation for entry in awards[:2]] == [request, request]
    assert actions == [
        "allocation.release_tranche",
        "allocation.release_tranche",
        "allocation.approve",
        "allocation.submit",
        "allocation.create",
    ]


def test_review_records_before_and_after_in_the_audit_log(demo: Demo) -> None:
    request = draft(demo, "sungmin.yoon", "snu-medical-imaging", "9000.5")["id"]
    act(demo, "sungmin.yoon", f"{request}/submit")

    adjusted = act(
        demo,
        "jaehyun.kim",
        f"{request}/review",
        {"decision": "adjust", "reason": "trim", "awarded": "6000"},
    )

    assert adjusted.json()["state"] == "adjusted"
    assert adjusted.json()["awarded"] == "6000.0"
    assert adjusted.json()["requested"] == "9000.5"
    with demo.books() as books:
        entry = books.audit.search(action="allocation.adjust")[0][0]
    assert entry.actor == "jaehyun.kim"
    assert entry.before is not None
    assert entry.after is not None
    assert (entry.before["state"], entry.after["state"]) == ("submitted", "adjusted")
    assert (entry.before["awarded"], entry.after["awarded"]) == (None, "6000.0")


def test_a_small_request_is_approved_and_awarded_on_submission(demo: Demo) -> None:
    request = draft(demo, "eunji.han", "postech-materials", "1000")["id"]

    submitted = act(demo, "eunji.han", f"{request}/submit")

    assert submitted.json()["state"] == "approved"
    assert submitted.json()["reviewer"] == "system:auto-approval"
    assert available(demo, "postech-materials") == "5000.0"


def test_a_pi_withdraws_a_draft_and_a_withdrawn_request_stays_withdrawn(demo: Demo) -> None:
    request = draft(demo, "seoyeon.lee", "kaist-nlp")["id"]

    by_researcher = act(demo, "jiwoo.jung", f"{request}/withdraw")
    withdrawn = act(demo, "seoyeon.lee", f"{request}/withdraw")
    again = act(demo, "seoyeon.lee", f"{request}/submit")

    assert by_researcher.status_code == 403
    assert withdrawn.json()["state"] == "withdrawn"
    assert again.status_code == 409


def test_lists_are_scoped_paged_and_filtered(demo: Demo) -> None:
    researcher = demo.client.get(f"{API}/allocation-requests", headers=demo.headers("jiwoo.jung"))
    waiting = demo.client.get(
        f"{API}/allocation-requests",
        params={"state": "submitted"},
        headers=demo.headers("jaehyun.kim"),
    )
    page = demo.client.get(
        f"{API}/allocation-requests", params={"limit": 2, "offset": 1}, headers=demo.headers()
    )
    outside = demo.client.get(
        f"{API}/allocation-requests",
        params={"project": "snu-medical-imaging"},
        headers=demo.headers("jiwoo.jung"),
    )
    by_organization = demo.client.get(
        f"{API}/allocation-requests", params={"project": "kaist"}, headers=demo.headers()
    )

    assert sorted(item["project"] for item in researcher.json()["items"]) == [
        "hanbit-robot-policy",
        "kaist-nlp",
    ]
    assert [item["id"] for item in waiting.json()["items"]] == [7]
    assert [item["id"] for item in page.json()["items"]] == [6, 5]
    assert page.json()["total"] == 7
    assert outside.status_code == 404
    assert sorted(item["project"] for item in by_organization.json()["items"]) == [
        "kaist-nlp",
        "kaist-protein",
    ]


def test_one_request_shows_its_tranches_and_outside_scope_is_404(demo: Demo) -> None:
    mine = demo.client.get(f"{API}/allocation-requests/1", headers=demo.headers("dohyun.choi"))
    other = demo.client.get(f"{API}/allocation-requests/5", headers=demo.headers("dohyun.choi"))
    missing = demo.client.get(f"{API}/allocation-requests/999", headers=demo.headers())
    huge = demo.client.get(f"{API}/allocation-requests/{10**20}", headers=demo.headers())

    tranches = mine.json()["tranches"]
    assert [(t["seq"], t["amount"]) for t in tranches] == [(1, "6000.0"), (2, "6000.0")]
    assert tranches[0]["released_at"] is not None
    assert tranches[1]["released_at"] is None
    assert other.status_code == 404
    assert missing.status_code == 404
    assert huge.status_code == 422


@pytest.mark.parametrize(
    ("user", "project", "status"),
    [
        ("seoyeon.lee", "kaist-nlp", 201),  # pi
        ("admin", "kaist-nlp", 201),
        ("jiwoo.jung", "kaist-nlp", 403),  # researcher
        ("jaehyun.kim", "kaist-nlp", 403),  # program manager reviews, does not ask
        ("auditor.kim", "kaist-nlp", 403),
        ("hyejin.kang", "kaist-nlp", 404),  # another project
        ("admin", "kaist", 422),  # not a project
        ("admin", "nowhere", 404),
    ],
)
def test_who_may_draft_a_request(demo: Demo, user: str, project: str, status: int) -> None:
    before = counts(demo)
    body = {"project": project, "requested": "100", "justification": "x"}

    response = demo.client.post(f"{API}/allocation-requests", json=body, headers=demo.headers(user))

    assert response.status_code == status, response.text
    if status != 201:
        assert counts(demo) == before


@pytest.mark.parametrize(
    ("user", "status"),
    [
        ("jaehyun.kim", 200),  # program manager of universities
        ("minji.park", 404),  # another program's manager cannot see it
        ("sungmin.yoon", 403),  # the pi cannot review their own request
        ("admin", 200),  # an admin may review (e.g. when every manager has a conflict)
        ("auditor.kim", 403),
    ],
)
def test_who_may_review(demo: Demo, user: str, status: int) -> None:
    before = counts(demo)

    response = act(demo, user, "7/review", {"decision": "approve", "reason": "ok"})

    assert response.status_code == status, response.text
    if status != 200:
        assert counts(demo) == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"requested": "-5"}, 422),
        ({"requested": "0"}, 422),
        ({"requested": "lots"}, 422),
        ({"requested": 100}, 422),
        ({"requested": "1" * 30}, 422),
        ({"justification": "   "}, 422),
        ({"tranche_percents": [50, 40]}, 422),
        ({"tranche_percents": [0, 100]}, 422),
        ({"tranche_percents": []}, 422),
        ({"flavors": ["tpu-v9"]}, 422),
        ({"period": "1999-q1"}, 404),
        ({"priority": "high"}, 422),
    ],
)
def test_bad_requests_are_refused_and_nothing_is_written(
    demo: Demo, body: dict[str, Any], status: int
) -> None:
    before = counts(demo)
    base = {"project": "kaist-nlp", "requested": "100", "justification": "x"}

    response = demo.client.post(
        f"{API}/allocation-requests", json=base | body, headers=demo.headers("seoyeon.lee")
    )

    assert response.status_code == status, response.text
    assert counts(demo) == before


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"decision": "adjust", "reason": "r"}, 422),  # adjust names the amount
        ({"decision": "approve", "reason": "r", "awarded": "5"}, 422),  # only adjust does
        ({"decision": "adjust", "reason": "r", "awarded": "0"}, 422),
        ({"decision": "approve", "reason": " "}, 422),
        ({"decision": "maybe", "reason": "r"}, 422),
        ({"decision": "approve"}, 422),
    ],
)
def test_bad_reviews_are_refused_and_nothing_is_written(
    demo: Demo, body: dict[str, Any], status: int
) -> None:
    before = counts(demo)

    response = act(demo, "jaehyun.kim", "7/review", body)

    assert response.status_code == status, response.text
    assert counts(demo) == before


def test_reviewing_twice_or_releasing_what_is_not_there_is_refused(demo: Demo) -> None:
    twice = act(demo, "jaehyun.kim", "5/review", {"decision": "decline", "reason": "no"})
    no_tranche = act(demo, "jaehyun.kim", "5/tranches/2/release")
    not_awarded = act(demo, "jaehyun.kim", "7/tranches/1/release")
    by_pi = act(demo, "dohyun.choi", "1/tranches/2/release")
    by_other_manager = act(demo, "jaehyun.kim", "1/tranches/2/release")

    assert twice.status_code == 409
    assert no_tranche.status_code == 404
    assert not_awarded.status_code == 409
    assert by_pi.status_code == 403
    assert by_other_manager.status_code == 404


def test_the_request_list_downloads_as_csv_scoped_like_its_json(demo: Demo) -> None:
    answer = demo.client.get(
        f"{API}/allocation-requests",
        params={"format": "csv", "limit": 2, "offset": 1},
        headers=demo.headers(),
    )
    mine = demo.client.get(
        f"{API}/allocation-requests", params={"format": "csv"}, headers=demo.headers("jiwoo.jung")
    )

    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [row["id"] for row in rows] == ["6", "5"]
    assert answer.headers["x-total-count"] == "7"
    assert {"justification", "tranche_percents", "reviewer", "created_by"} <= set(rows[0])
    assert sorted(row["project"] for row in csv.DictReader(io.StringIO(mine.text))) == [
        "hanbit-robot-policy",
        "kaist-nlp",
    ]
