"""Priority attacks: anyone submitting ``urgent`` work, which jumps the queue and is never
preempted; a pi granting their own project the right to.

Issue 8, item 7. A class above ``normal`` needs the project's priority grant, made by a program
manager of the project's program or an admin (``quotas.priorities``); the queue itself checks it,
so both the REST API and the Ray-compatible API refuse an ungranted ``urgent`` submission with a
403 problem and write nothing.

Over the seeded demo pool (``tests/portal``): jiwoo.jung is a researcher in kaist-nlp and
hanbit-robot-policy; seoyeon.lee is pi of kaist-nlp; jaehyun.kim manages ``universities``
(kaist-nlp's program), minji.park ``startups``; snu-medical-imaging holds the demo's urgent grant.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from jobs.repository import JobRepository
from quotas.access import Scope
from quotas.db.access import AuditRepository
from tests.portal.conftest import Demo

API = "/api/v1"
PROJECT = "kaist-nlp"
RESEARCHER = "jiwoo.jung"
PI = "seoyeon.lee"
MANAGER = "jaehyun.kim"
GRANTS = f"{API}/accounts/{PROJECT}/priority-grants"
PROBLEM = "application/problem+json"


def submit_rest(
    demo: Demo, project: str = PROJECT, user: str = RESEARCHER, priority: str = "urgent"
) -> httpx.Response:
    body = {"project": project, "entrypoint": "python train.py", "priority": priority}
    return demo.client.post(f"{API}/jobs", json=body, headers=demo.headers(user))


def submit_ray(
    demo: Demo, submission_id: str, project: str = PROJECT, user: str = RESEARCHER
) -> httpx.Response:
    body = {
        "entrypoint": "python train.py",
        "submission_id": submission_id,
        "metadata": {"project": project, "priority": "urgent"},
    }
    return demo.client.post("/api/jobs/", json=body, headers=demo.headers(user))


def grant(demo: Demo, user: str = MANAGER, **body: Any) -> httpx.Response:
    return demo.client.put(f"{GRANTS}/urgent", json=body, headers=demo.headers(user))


def revoke(demo: Demo, user: str = MANAGER) -> httpx.Response:
    return demo.client.delete(f"{GRANTS}/urgent", headers=demo.headers(user))


def jobs_of(demo: Demo, project: str = PROJECT) -> list[tuple[str, str]]:
    """``(id, priority)`` of every job stored for ``project``."""
    with demo.books() as books:
        found, _ = JobRepository(books.session).search(projects=[project], limit=500)
    return sorted((job.id, job.spec.priority.value) for job in found)


def audit_actions(demo: Demo) -> list[tuple[str, str, str]]:
    with demo.books() as books:
        entries = AuditRepository(books.session).entries(target=f"account/{PROJECT}")
    return [(e.actor, e.action, e.target) for e in entries if e.action.startswith("priority.")]


def assert_refused_ungranted(answer: httpx.Response) -> None:
    assert answer.status_code == 403, answer.text
    assert answer.headers["content-type"] == PROBLEM
    problem = answer.json()
    assert problem["status"] == 403
    assert problem["title"] == "Forbidden"
    assert "urgent work in kaist-nlp needs a priority grant" in problem["detail"]
    assert "ask a program manager of universities" in problem["detail"]


def test_urgent_without_a_grant_is_refused_by_both_apis_and_nothing_is_written(
    demo: Demo,
) -> None:
    before = jobs_of(demo)

    assert_refused_ungranted(submit_rest(demo))
    assert_refused_ungranted(submit_ray(demo, "sneaky-urgent"))

    assert jobs_of(demo) == before
    assert demo.client.get("/api/jobs/sneaky-urgent", headers=demo.headers()).status_code == 404
    # normal and opportunistic work still goes in as before
    for priority in ("normal", "opportunistic"):
        assert submit_rest(demo, priority=priority).status_code == 201


def test_a_pi_cannot_grant_their_own_project_urgent_work(demo: Demo) -> None:
    for user in (PI, RESEARCHER):
        answer = grant(demo, user)
        assert answer.status_code == 403, answer.text
        assert answer.headers["content-type"] == PROBLEM
        assert answer.json()["detail"] == (
            f"{user} may not grant urgent work in kaist-nlp: only a program manager of "
            "universities or an admin may"
        )
    other_manager = grant(demo, "minji.park")  # startups' manager: kaist-nlp is not theirs
    assert other_manager.status_code == 404, other_manager.text

    assert demo.client.get(GRANTS, headers=demo.headers(PI)).json() == []
    assert audit_actions(demo) == []
    assert_refused_ungranted(submit_rest(demo, user=PI))


def test_a_manager_token_without_the_manage_scope_cannot_grant(demo: Demo) -> None:
    token = demo.token(MANAGER, [Scope.READ, Scope.JOBS])
    answer = demo.client.put(
        f"{GRANTS}/urgent", json={}, headers={"Authorization": f"Bearer {token}"}
    )

    assert answer.status_code == 403, answer.text
    assert "this token lacks the 'manage' scope" in answer.json()["detail"]
    assert answer.json()["needs"] == ["manage"]  # which scope a new token must carry
    assert audit_actions(demo) == []


def test_the_programs_manager_grants_then_urgent_is_accepted_until_revoked(demo: Demo) -> None:
    granted = grant(demo)
    assert granted.status_code == 200, granted.text
    assert granted.json() | {"granted_at": None} == {
        "project": PROJECT,
        "priority": "urgent",
        "granted_by": MANAGER,
        "granted_at": None,
        "expires_at": None,
        "in_force": True,
    }
    listed = demo.client.get(GRANTS, headers=demo.headers(RESEARCHER))
    assert [each["priority"] for each in listed.json()] == ["urgent"]

    by_rest = submit_rest(demo)
    assert by_rest.status_code == 201, by_rest.text
    assert by_rest.json()["job"]["priority"] == "urgent"
    by_ray = submit_ray(demo, "granted-urgent")
    assert by_ray.status_code == 200, by_ray.text
    queued = jobs_of(demo)
    assert [priority for _, priority in queued] == ["urgent", "urgent"]
    assert by_rest.json()["job"]["id"] in {job for job, _ in queued}

    # the grant is kaist-nlp's alone: the researcher's other project stays normal
    other = submit_rest(demo, project="hanbit-robot-policy")
    assert other.status_code == 403, other.text
    assert "hanbit-robot-policy holds none" in other.json()["detail"]

    assert revoke(demo, PI).status_code == 403
    assert revoke(demo).status_code == 204
    assert_refused_ungranted(submit_rest(demo))
    assert_refused_ungranted(submit_ray(demo, "after-revoke"))
    assert jobs_of(demo) == queued  # nothing new; the jobs accepted before keep their class
    assert demo.client.get(GRANTS, headers=demo.headers(MANAGER)).json() == []
    again = revoke(demo)
    assert again.status_code == 404
    assert again.json()["detail"] == "kaist-nlp holds no grant of urgent work"

    assert audit_actions(demo) == [
        (MANAGER, "priority.revoke", f"account/{PROJECT}"),
        (MANAGER, "priority.grant", f"account/{PROJECT}"),
    ]


def test_a_grant_lapses_at_its_expiry(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    portal = cast(FastAPI, demo.client.app).state.portal
    now = portal.clock()
    expires = now + timedelta(hours=2)
    granted = grant(demo, expires_at=expires.isoformat())
    assert granted.status_code == 200, granted.text
    assert submit_rest(demo).status_code == 201

    monkeypatch.setattr(portal, "clock", lambda: expires)
    refused = submit_rest(demo)
    assert refused.status_code == 403, refused.text
    assert "kaist-nlp's grant of urgent work lapsed at" in refused.json()["detail"]
    listed = demo.client.get(GRANTS, headers=demo.headers(RESEARCHER)).json()
    assert [each["in_force"] for each in listed] == [False]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"expires_at": "2000-01-01T00:00:00Z"}, "a grant must expire after it is made"),
        ({"expires_at": "2030-01-01T00:00:00"}, "timezone"),
        ({"expires_at": "9999-12-31T23:00:00-05:00"}, "is outside the calendar in UTC"),
        ({"until": "forever"}, "body.until: Extra inputs are not permitted"),
    ],
)
def test_a_malformed_grant_is_refused_and_not_recorded(
    demo: Demo, body: dict[str, str], detail: str
) -> None:
    answer = grant(demo, **body)

    assert answer.status_code == 422, answer.text
    assert detail in answer.text
    assert demo.client.get(GRANTS, headers=demo.headers()).json() == []
    assert audit_actions(demo) == []


def test_normal_work_is_not_a_grantable_class(demo: Demo) -> None:
    answer = demo.client.put(f"{GRANTS}/normal", json={}, headers=demo.headers(MANAGER))

    assert answer.status_code == 422, answer.text
    assert "normal work needs no grant" in answer.json()["detail"]


def test_the_demo_project_with_a_grant_submits_urgent_work(demo: Demo) -> None:
    answer = submit_rest(demo, project="snu-medical-imaging", user="sungmin.yoon")

    assert answer.status_code == 201, answer.text
    assert answer.json()["job"]["priority"] == "urgent"
