"""The accounts API: the tree with exact balances, quota changes, budgets, members, scoping."""

from __future__ import annotations

from typing import Any

import pytest

from quotas.access import Scope
from tests.portal.conftest import Demo

API = "/api/v1"


def audit(demo: Demo, action: str | None = None) -> list[Any]:
    with demo.books() as books:
        return books.audit.search(action=action, limit=500)[0]


def get(demo: Demo, path: str, user: str = "admin", **params: Any) -> Any:
    response = demo.client.get(API + path, headers=demo.headers(user), params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_researcher_lists_only_their_projects_with_balances_from_the_ledger(demo: Demo) -> None:
    mine = get(demo, "/accounts", "jiwoo.jung")
    everything = get(demo, "/accounts")

    names = [account["name"] for account in mine["accounts"]]
    nlp = next(each for each in mine["accounts"] if each["name"] == "kaist-nlp")
    pool = everything["accounts"][0]
    assert names == ["hanbit-robot-policy", "kaist-nlp"]
    assert nlp["balances"] == {"spent": "0.0", "held": "0.0", "available": "24000.0"}
    assert nlp["parent"] == "kaist"
    assert nlp["kind"] == "project"
    assert nlp["budget"] is None
    assert pool["name"] == "national"
    assert pool["balances"]["available"] == "250000.0"
    assert len(everything["accounts"]) == 14
    assert mine["period"] == everything["period"]


def test_one_account_with_its_budget_and_reads_outside_scope_are_404(demo: Demo) -> None:
    kaist = get(demo, "/accounts/kaist", "jaehyun.kim")
    hidden = demo.client.get(f"{API}/accounts/kaist", headers=demo.headers("minji.park"))
    unknown = demo.client.get(f"{API}/accounts/nowhere", headers=demo.headers())
    no_period = demo.client.get(
        f"{API}/accounts/kaist", params={"period": "1999-q1"}, headers=demo.headers()
    )

    assert kaist["budget"] == "40000.0"
    assert kaist["balances"]["available"] == "32000.0"
    assert hidden.status_code == 404
    assert unknown.status_code == 404
    assert no_period.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"


def test_a_program_manager_changes_an_account_in_their_program_and_it_is_audited(
    demo: Demo,
) -> None:
    response = demo.client.patch(
        f"{API}/accounts/kaist",
        json={"share": 5, "borrowing_limit_gpus": 8},
        headers=demo.headers("jaehyun.kim"),
    )
    lifted = demo.client.patch(
        f"{API}/accounts/kaist",
        json={"borrowing_limit_gpus": None},
        headers=demo.headers("jaehyun.kim"),
    )

    assert response.status_code == 200, response.text
    assert response.json()["share"] == 5
    assert response.json()["borrowing_limit_gpus"] == 8
    assert response.json()["balances"]["available"] == "32000.0"
    assert lifted.json()["borrowing_limit_gpus"] is None
    first, second = reversed(audit(demo, "account.update"))
    assert first.actor == "jaehyun.kim"
    assert first.target == "account/kaist"
    assert (first.before["share"], first.after["share"]) == (2, 5)
    assert (second.before["borrowing_limit_gpus"], second.after["borrowing_limit_gpus"]) == (
        8,
        None,
    )


@pytest.mark.parametrize(
    ("user", "account", "status"),
    [
        ("minji.park", "kaist", 404),  # another program's account: not even readable
        ("seoyeon.lee", "kaist-nlp", 403),  # a pi reads the project but sets no quota
        ("jiwoo.jung", "kaist-nlp", 403),
        ("jaehyun.kim", "universities", 403),  # a program manager does not set their program's
        ("auditor.kim", "kaist", 403),  # reads everything, changes nothing
        ("admin", "universities", 200),
    ],
)
def test_who_may_change_an_account(demo: Demo, user: str, account: str, status: int) -> None:
    response = demo.client.patch(
        f"{API}/accounts/{account}", json={"share": 7}, headers=demo.headers(user)
    )

    assert response.status_code == status, response.text
    assert len(audit(demo, "account.update")) == (1 if status == 200 else 0)


def test_a_token_without_the_manage_scope_changes_nothing(demo: Demo) -> None:
    token = demo.token("jaehyun.kim", [Scope.READ, Scope.JOBS])

    response = demo.client.patch(
        f"{API}/accounts/kaist", json={"share": 7}, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 403
    assert "manage" in response.json()["detail"]
    assert audit(demo, "account.update") == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"shares": 3},
        {"share": -1},
        {"share": None},
        {"guaranteed_gpus": "many"},
        {"borrowing_limit_gpus": -2},
        {"share": 10**12},
        {"display_name": "x" * 201},
        {"may_burst": None},
        {"may_burst": "sometimes"},
    ],
)
def test_bad_changes_are_refused_and_nothing_is_written(demo: Demo, body: dict[str, Any]) -> None:
    before = len(audit(demo))

    response = demo.client.patch(
        f"{API}/accounts/kaist", json=body, headers=demo.headers("jaehyun.kim")
    )

    assert response.status_code == 422, response.text
    assert len(audit(demo)) == before
    assert get(demo, "/accounts/kaist")["share"] == 2


def test_a_program_manager_lets_a_project_burst_and_the_change_is_audited(demo: Demo) -> None:
    before = get(demo, "/accounts/kaist-nlp", "jiwoo.jung")

    allowed = demo.client.patch(
        f"{API}/accounts/kaist-nlp", json={"may_burst": True}, headers=demo.headers("jaehyun.kim")
    )
    added = demo.client.post(
        f"{API}/accounts",
        json={"name": "kaist-burst", "kind": "project", "parent": "kaist", "may_burst": True},
        headers=demo.headers("jaehyun.kim"),
    )

    assert before["may_burst"] is False
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["may_burst"] is True
    assert get(demo, "/accounts/kaist-nlp", "jiwoo.jung")["may_burst"] is True
    assert added.status_code == 201, added.text
    assert added.json()["may_burst"] is True
    [change] = audit(demo, "account.update")
    assert change.actor == "jaehyun.kim"
    assert (change.before["may_burst"], change.after["may_burst"]) == (False, True)
    assert audit(demo, "account.add")[0].after["may_burst"] is True


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/accounts/kaist", {"may_burst": True}),
        ("PATCH", "/accounts/universities", {"may_burst": True}),
        (
            "POST",
            "/accounts",
            {"name": "kaist-2", "kind": "organization", "parent": "universities"},
        ),
    ],
)
def test_only_a_project_may_burst(demo: Demo, method: str, path: str, body: dict[str, Any]) -> None:
    before = len(audit(demo))

    response = demo.client.request(
        method, API + path, json={"may_burst": True, **body}, headers=demo.headers()
    )

    assert response.status_code == 422, response.text
    assert "only a project's jobs burst" in response.json()["detail"]
    assert len(audit(demo)) == before


def test_budgets_are_set_and_lifted_per_period_with_audit(demo: Demo) -> None:
    period = get(demo, "/accounts")["period"]

    set_ = demo.client.put(
        f"{API}/accounts/kaist-nlp/budget",
        json={"period": period, "budget": "1000.5"},
        headers=demo.headers("jaehyun.kim"),
    )
    lifted = demo.client.put(
        f"{API}/accounts/kaist-nlp/budget",
        json={"period": period, "budget": None},
        headers=demo.headers("jaehyun.kim"),
    )

    assert set_.status_code == 200, set_.text
    assert set_.json()["budget"] == "1000.5"
    assert lifted.json()["budget"] is None
    first, second = reversed(audit(demo, "budget.set")[:2])
    assert first.before == {"period": period, "budget": None}
    assert first.after == {"period": period, "budget": "1000.5"}
    assert second.after == {"period": period, "budget": None}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"budget": "-1"}, 422),
        ({"budget": "lots"}, 422),
        ({"budget": "1.0001"}, 422),
        ({"budget": 1000}, 422),
        ({"budget": "1" * 20}, 422),
        ({"budget": "10", "extra": 1}, 422),
        ({"budget": "10", "period": "1999-q1"}, 404),
    ],
)
def test_bad_budgets_are_refused_and_nothing_is_written(
    demo: Demo, body: dict[str, Any], status: int
) -> None:
    period = get(demo, "/accounts")["period"]
    before = len(audit(demo))

    response = demo.client.put(
        f"{API}/accounts/kaist/budget",
        json={"period": period, **body},
        headers=demo.headers("jaehyun.kim"),
    )

    assert response.status_code == status, response.text
    assert len(audit(demo)) == before
    assert get(demo, "/accounts/kaist")["budget"] == "40000.0"


def test_a_program_manager_adds_organizations_and_projects_inside_their_program(
    demo: Demo,
) -> None:
    manager = demo.headers("jaehyun.kim")

    organization = demo.client.post(
        f"{API}/accounts",
        json={"name": "yonsei", "kind": "organization", "parent": "universities", "share": 2},
        headers=manager,
    )
    project = demo.client.post(
        f"{API}/accounts",
        json={
            "name": "yonsei-speech",
            "kind": "project",
            "parent": "yonsei",
            "display_name": "Speech recognition",
            "guaranteed_gpus": 4,
        },
        headers=manager,
    )

    assert organization.status_code == 201, organization.text
    assert project.status_code == 201, project.text
    assert project.json()["balances"] == {"spent": "0.0", "held": "0.0", "available": "0.0"}
    assert get(demo, "/accounts/yonsei-speech", "jaehyun.kim")["guaranteed_gpus"] == 4
    added = audit(demo, "account.add")
    assert [entry.target for entry in added[:2]] == ["account/yonsei-speech", "account/yonsei"]
    assert added[0].before is None
    assert added[0].after["parent"] == "yonsei"
    assert added[0].actor == "jaehyun.kim"


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("minji.park", {"kind": "organization", "parent": "universities"}, 404),
        ("jaehyun.kim", {"kind": "program", "parent": "national"}, 404),
        ("jaehyun.kim", {"kind": "program", "parent": "universities"}, 403),
        ("seoyeon.lee", {"kind": "project", "parent": "kaist"}, 404),
        ("auditor.kim", {"kind": "organization", "parent": "universities"}, 403),
        ("admin", {"kind": "program", "parent": "national"}, 201),
        ("admin", {"kind": "project", "parent": "universities"}, 422),  # wrong level
        ("admin", {"kind": "organization", "parent": "nowhere"}, 404),
        ("admin", {"kind": "pool"}, 422),  # there is one pool
        ("admin", {"kind": "organization", "parent": "startups", "name": "Bad Name"}, 422),
        ("admin", {"kind": "organization", "parent": "startups", "name": "kaist"}, 409),  # taken
        ("admin", {"kind": "organization", "parent": "startups", "share": -1}, 422),
        ("admin", {"kind": "region", "parent": "startups"}, 422),
    ],
)
def test_who_may_add_what_where(demo: Demo, user: str, body: dict[str, Any], status: int) -> None:
    before = len(audit(demo))

    response = demo.client.post(
        f"{API}/accounts", json={"name": "new-one", **body}, headers=demo.headers(user)
    )

    assert response.status_code == status, response.text
    assert len(audit(demo)) == before + (1 if status == 201 else 0)


def test_a_pi_manages_their_projects_members_with_audit(demo: Demo) -> None:
    pi = demo.headers("seoyeon.lee")

    added = demo.client.post(
        f"{API}/accounts/kaist-nlp/members",
        json={"user": "eunji.han", "role": "researcher"},
        headers=pi,
    )
    listed = get(demo, "/accounts/kaist-nlp/members", "jiwoo.jung")
    removed = demo.client.delete(f"{API}/accounts/kaist-nlp/members/eunji.han", headers=pi)
    after = get(demo, "/accounts/kaist-nlp/members", "seoyeon.lee")

    assert added.status_code == 201, added.text
    assert {"user": "eunji.han", "role": "researcher"} in listed
    assert removed.status_code == 204
    assert [member["user"] for member in after] == ["jiwoo.jung", "seoyeon.lee"]
    removal, addition = audit(demo, "membership.remove")[0], audit(demo, "membership.add")[0]
    assert addition.after == {"user": "eunji.han", "role": "researcher"}
    assert addition.actor == "seoyeon.lee"
    assert addition.target == "account/kaist-nlp"
    assert removal.before == {"user": "eunji.han", "role": "researcher"}


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("jiwoo.jung", {"user": "eunji.han", "role": "researcher"}, 403),
        ("hyejin.kang", {"user": "eunji.han", "role": "researcher"}, 404),
        ("auditor.kim", {"user": "eunji.han", "role": "researcher"}, 403),
        ("jaehyun.kim", {"user": "eunji.han", "role": "pi"}, 201),
        ("admin", {"user": "eunji.han", "role": "researcher"}, 201),
        ("seoyeon.lee", {"user": "jiwoo.jung", "role": "pi"}, 409),  # already a member
        ("seoyeon.lee", {"user": "nobody", "role": "researcher"}, 404),
        ("seoyeon.lee", {"user": "eunji.han", "role": "admin"}, 422),
        ("seoyeon.lee", {"user": "eunji.han", "role": "researcher", "x": 1}, 422),
    ],
)
def test_who_may_add_members(demo: Demo, user: str, body: dict[str, Any], status: int) -> None:
    before = len(audit(demo))

    response = demo.client.post(
        f"{API}/accounts/kaist-nlp/members", json=body, headers=demo.headers(user)
    )

    assert response.status_code == status, response.text
    assert len(audit(demo)) == before + (1 if status == 201 else 0)


def test_members_only_of_projects_and_removals_are_checked(demo: Demo) -> None:
    of_organization = demo.client.get(f"{API}/accounts/kaist/members", headers=demo.headers())
    by_researcher = demo.client.delete(
        f"{API}/accounts/kaist-nlp/members/seoyeon.lee", headers=demo.headers("jiwoo.jung")
    )
    not_member = demo.client.delete(
        f"{API}/accounts/kaist-nlp/members/eunji.han", headers=demo.headers("seoyeon.lee")
    )

    assert of_organization.status_code == 422
    assert by_researcher.status_code == 403
    assert not_member.status_code == 404
    assert audit(demo, "membership.remove") == []


def test_text_a_database_cannot_store_is_refused(demo: Demo) -> None:
    before = len(audit(demo))
    headers = {**demo.headers(), "content-type": "application/json"}

    nul = demo.client.patch(
        f"{API}/accounts/kaist", content=b'{"display_name": "a\\u0000b"}', headers=headers
    )
    surrogate = demo.client.patch(
        f"{API}/accounts/kaist", content=b'{"display_name": "\\ud800"}', headers=headers
    )
    in_query = demo.client.get(f"{API}/accounts", params={"period": "q\x00"}, headers=headers)
    in_path = demo.client.get(f"{API}/accounts/a%00b", headers=headers)

    assert [nul.status_code, surrogate.status_code] == [422, 422]
    assert [in_query.status_code, in_path.status_code] == [422, 422]
    assert len(audit(demo)) == before
