"""Allocation governance attacks: self-review of allocation requests and tier splitting.

Issue 8, items 5 and 6. A program manager adds themselves to a project of their program, asks
for credits and approves their own request; nobody may review (or release tranches of) a
request they made or whose project they belong to: the review goes to another manager of the
program or to an admin, and the audit log says why. And auto-approval is per project and period,
cumulative: three requests each at the tier are one automatic award, not three.

Every attack runs through the public REST API of the seeded demo pool (``tests/portal``):
jaehyun.kim manages ``universities`` (kaist-nlp, kaist-protein, ...), whose auto-approval tier
is 5,000 credits; seoyeon.lee is pi of kaist-nlp and kaist-protein.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx

from quotas.access import Role, Scope
from quotas.ledger import EntryKind
from tests.portal.conftest import Demo

API = "/api/v1"
MANAGER = "jaehyun.kim"
PROJECT = "kaist-nlp"
TIER = 5_000


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fresh_headers(demo: Demo, user: str) -> dict[str, str]:
    """A new token, so the portal reads the user's roles afresh (as after signing in again)."""
    return bearer(demo.token(user, list(Scope)))


def join_own_project(demo: Demo) -> dict[str, str]:
    """The manager adds themselves to a project of their program as its pi; their headers."""
    joined = demo.client.post(
        f"{API}/accounts/{PROJECT}/members",
        json={"user": MANAGER, "role": "pi"},
        headers=demo.headers(MANAGER),
    )
    if joined.status_code != 201:
        # The members API no longer lets a manager add themselves: a membership the manager got
        # some other way must still bar them from reviewing, so record it directly.
        assert joined.status_code == 403, joined.text
        with demo.books() as books:
            books.add_member(MANAGER, PROJECT, Role.PI, actor="test")
    return fresh_headers(demo, MANAGER)


def ask(demo: Demo, headers: dict[str, str], requested: str, **extra: Any) -> int:
    """Draft and submit a request for kaist-nlp; its id."""
    body = {"project": PROJECT, "requested": requested, "justification": "my own project"}
    drafted = demo.client.post(f"{API}/allocation-requests", json=body | extra, headers=headers)
    assert drafted.status_code == 201, drafted.text
    request_id = int(drafted.json()["id"])
    submitted = demo.client.post(f"{API}/allocation-requests/{request_id}/submit", headers=headers)
    assert submitted.status_code == 200, submitted.text
    return request_id


def review(
    demo: Demo, headers: dict[str, str], request_id: int, decision: str = "approve", **extra: Any
) -> httpx.Response:
    body = {"decision": decision, "reason": "looks right to me"} | extra
    path = f"{API}/allocation-requests/{request_id}/review"
    response: httpx.Response = demo.client.post(path, json=body, headers=headers)
    return response


def available(demo: Demo, project: str = PROJECT) -> str:
    response = demo.client.get(f"{API}/accounts/{project}", headers=demo.headers())
    return str(response.json()["balances"]["available"])


def awards_for(demo: Demo, request_id: int, project: str = PROJECT) -> list[str]:
    """Amounts of the award ledger entries made for one allocation request."""
    with demo.books() as books:
        entries = books.ledger.search(account=project, kinds=[EntryKind.AWARD], limit=1000)[0]
    return [str(e.posting.amount) for e in entries if e.posting.allocation == request_id]


def audit_after(demo: Demo, request_id: int, action: str) -> dict[str, Any]:
    with demo.books() as books:
        found = books.audit.search(action=action, target=f"allocation/{request_id}")[0]
    assert len(found) == 1, found
    assert found[0].after is not None
    return dict(found[0].after)


def add_second_manager(demo: Demo, user: str = "soojin.oh") -> dict[str, str]:
    with demo.books() as books:
        books.people.add_user(user, "Oh Soo-jin")
        books.add_program_manager(user, "universities", actor="test")
    return fresh_headers(demo, user)


def assert_conflict_refused(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["detail"].startswith("conflict of interest:")


def test_a_manager_who_joined_a_project_cannot_approve_their_own_request(demo: Demo) -> None:
    headers = join_own_project(demo)
    request_id = ask(demo, headers, "30000")
    before = available(demo)

    approved = review(demo, headers, request_id)
    adjusted = review(demo, headers, request_id, "adjust", awarded="29000")
    with_old_token = review(demo, demo.headers(MANAGER), request_id)

    for refused in (approved, adjusted, with_old_token):
        assert_conflict_refused(refused)
    assert f"{MANAGER} made this request" in approved.json()["detail"]
    assert available(demo) == before
    assert awards_for(demo, request_id) == []
    state = demo.client.get(f"{API}/allocation-requests/{request_id}", headers=demo.headers())
    assert (state.json()["state"], state.json()["awarded"]) == ("submitted", None)
    with demo.books() as books:
        actions = [
            entry.action for entry in books.audit.search(target=f"allocation/{request_id}")[0]
        ]
    assert actions == ["allocation.submit", "allocation.create"]  # no review was recorded


def test_a_member_manager_cannot_review_a_request_of_their_project_made_by_its_pi(
    demo: Demo,
) -> None:
    headers = join_own_project(demo)
    request_id = ask(demo, demo.headers("seoyeon.lee"), "30000")
    before = available(demo)

    approved = review(demo, headers, request_id)

    assert_conflict_refused(approved)
    assert f"{MANAGER} is a member of {PROJECT}" in approved.json()["detail"]
    assert available(demo) == before
    assert awards_for(demo, request_id) == []


def test_the_review_goes_to_another_manager_of_the_program(demo: Demo) -> None:
    headers = join_own_project(demo)
    request_id = ask(demo, headers, "30000")
    waiting = audit_after(demo, request_id, "allocation.submit")
    other = add_second_manager(demo)

    approved = review(demo, other, request_id)

    assert "over the program's auto-approval tier" in waiting["why"]
    assert "the review goes to an admin" in waiting["why"]  # the only manager is conflicted
    assert approved.status_code == 200, approved.text
    assert (approved.json()["state"], approved.json()["reviewer"]) == ("approved", "soojin.oh")
    assert awards_for(demo, request_id) == ["30000.0"]
    authority = audit_after(demo, request_id, "allocation.approve")["authority"]
    assert authority == {"role": "program manager", "why": "soojin.oh manages program universities"}


def test_an_admin_reviews_when_every_manager_of_the_program_has_a_conflict(demo: Demo) -> None:
    headers = join_own_project(demo)
    request_id = ask(demo, headers, "12000")
    before = available(demo)

    approved = review(demo, demo.headers(), request_id)

    assert approved.status_code == 200, approved.text
    assert (approved.json()["state"], approved.json()["reviewer"]) == ("approved", "admin")
    assert awards_for(demo, request_id) == ["12000.0"]
    assert available(demo) != before
    authority = audit_after(demo, request_id, "allocation.approve")["authority"]
    assert authority == {
        "role": "admin",
        "why": (
            "conflict of interest: the program's manager (jaehyun.kim) made the request or "
            f"belongs to {PROJECT}"
        ),
    }


def test_a_member_manager_cannot_release_later_tranches_of_their_projects_award(
    demo: Demo,
) -> None:
    headers = join_own_project(demo)
    request_id = ask(demo, headers, "20000", tranche_percents=[50, 50])
    assert review(demo, demo.headers(), request_id).status_code == 200
    before = available(demo)

    released = demo.client.post(
        f"{API}/allocation-requests/{request_id}/tranches/2/release", headers=headers
    )

    assert_conflict_refused(released)
    assert available(demo) == before
    assert awards_for(demo, request_id) == ["10000.0"]
    by_admin = demo.client.post(
        f"{API}/allocation-requests/{request_id}/tranches/2/release", headers=demo.headers()
    )
    assert by_admin.status_code == 200, by_admin.text
    assert sorted(awards_for(demo, request_id)) == ["10000.0", "10000.0"]


def test_an_admin_cannot_review_a_request_they_made(demo: Demo) -> None:
    body = {"project": PROJECT, "requested": "30000", "justification": "on behalf of the lab"}
    drafted = demo.client.post(f"{API}/allocation-requests", json=body, headers=demo.headers())
    request_id = drafted.json()["id"]
    demo.client.post(f"{API}/allocation-requests/{request_id}/submit", headers=demo.headers())

    approved = review(demo, demo.headers(), request_id)

    assert_conflict_refused(approved)
    assert awards_for(demo, request_id) == []
    assert review(demo, demo.headers(MANAGER), request_id).status_code == 200


def test_three_requests_at_the_tier_are_one_automatic_award(demo: Demo) -> None:
    project = "kaist-protein"  # nothing auto-approved there yet in this period
    pi = demo.headers("seoyeon.lee")
    before = available(demo, project)
    ids = []
    for _ in range(3):
        body = {"project": project, "requested": str(TIER), "justification": "split it up"}
        drafted = demo.client.post(f"{API}/allocation-requests", json=body, headers=pi)
        ids.append(drafted.json()["id"])
        demo.client.post(f"{API}/allocation-requests/{ids[-1]}/submit", headers=pi)

    states = [
        demo.client.get(f"{API}/allocation-requests/{i}", headers=pi).json()["state"] for i in ids
    ]
    awarded = [award for i in ids for award in awards_for(demo, i, project)]

    assert states == ["approved", "submitted", "submitted"]
    assert awarded == [f"{TIER}.0"]
    assert Decimal(available(demo, project)) - Decimal(before) == TIER
    first = audit_after(demo, ids[0], "allocation.submit")
    second = audit_after(demo, ids[1], "allocation.submit")
    assert first["auto_approval"] == {
        "tier": "5000.0",
        "auto_approved_before": "0.0",
        "cumulative": "5000.0",
        "approved": True,
    }
    assert first["why"].startswith("auto-approved within the program's auto-approval tier")
    assert second["auto_approval"]["cumulative"] == "10000.0"
    assert second["why"].startswith(f"waiting for review: {project}'s auto-approved credits in ")
    assert "would be 10000.0 (5000.0 before this request)" in second["why"]
    assert (
        "the review goes to a manager of universities (jaehyun.kim) or an admin" in (second["why"])
    )


def test_a_project_near_its_tier_gets_only_what_still_fits(demo: Demo) -> None:
    """The demo auto-approved 4,000 of 5,000 to postech-materials: 1,000 fits, 1,000.001 not."""
    pi = demo.headers("eunji.han")

    def submit(requested: str) -> str:
        body = {"project": "postech-materials", "requested": requested, "justification": "more"}
        drafted = demo.client.post(f"{API}/allocation-requests", json=body, headers=pi)
        request_id = drafted.json()["id"]
        answer = demo.client.post(f"{API}/allocation-requests/{request_id}/submit", headers=pi)
        return str(answer.json()["state"])

    assert submit("1000.001") == "submitted"
    assert submit("1000") == "approved"
    assert submit("0.001") == "submitted"
    assert available(demo, "postech-materials") == "5000.0"
