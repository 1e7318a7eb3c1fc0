"""Attacks on what decides where work runs and what it may cost: burst permission, clusters and
their burst budgets.

A project that may burst runs on cloud capacity at its cluster's price multiplier, so turning
burst on spends the program's money: only an admin or the program's manager may, never the
project's own pi or researchers. Declaring a cluster or changing a burst budget is an admin's
alone; where a cluster is reached (its address: a kubeconfig context or a Ray address) is shown
to admins only. Each refusal writes nothing: the audit log and the books stay as they were.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from quotas.access import Scope
from quotas.inventory import ClusterSpec
from tests.portal.conftest import Demo

API = "/api/v1"
NON_ADMINS = (
    "auditor.kim",  # reads everything, changes nothing
    "jaehyun.kim",  # manages universities
    "minji.park",  # manages startups
    "seoyeon.lee",  # pi of kaist-nlp
    "jiwoo.jung",  # researcher in kaist-nlp
    "eunji.han",  # pi of postech-materials
)
ADDRESS = "cloud-seoul-admin@cloud-seoul"
TARGET = {
    "name": "cloud-seoul",
    "backend": "kubernetes",
    "site": "domestic_cloud",
    "inventory": [{"flavor": "h100-80g", "nodes": 4, "gpus_per_node": 8}],
    "address": ADDRESS,
    "price_multiplier": "1.5",
    "tenancy": "per_job",
    "burst_budgets": {"startups": "2000", "universities": "500"},
}


def audit_total(demo: Demo) -> int:
    with demo.books() as books:
        return books.audit.search(limit=1)[1]


def stored_clusters(demo: Demo) -> list[ClusterSpec]:
    with demo.books() as books:
        return books.clusters.all()


def may_burst(demo: Demo, project: str) -> bool:
    with demo.books() as books:
        return books.accounts.tree()[project].may_burst


def declare_target(demo: Demo) -> None:
    added = demo.client.post(f"{API}/clusters", json=TARGET, headers=demo.headers())
    assert added.status_code == 201, added.text


# -- burst permission --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("user", "status"),
    [
        ("seoyeon.lee", 403),  # the project's pi reads it but does not set its quota
        ("jiwoo.jung", 403),  # a researcher in it
        ("minji.park", 404),  # another program's manager: not even readable
        ("eunji.han", 404),  # another project's pi
        ("auditor.kim", 403),
    ],
)
@pytest.mark.parametrize(
    "body", [{"may_burst": True}, {"may_burst": True, "display_name": "just a rename"}]
)
def test_nobody_in_a_project_turns_burst_on_for_it(
    demo: Demo, user: str, status: int, body: dict[str, Any]
) -> None:
    before = audit_total(demo)

    response = demo.client.patch(f"{API}/accounts/kaist-nlp", json=body, headers=demo.headers(user))

    assert response.status_code == status, response.text
    assert "may_burst" not in response.text
    assert audit_total(demo) == before
    assert may_burst(demo, "kaist-nlp") is False


@pytest.mark.parametrize(
    ("user", "parent", "status"),
    [
        ("seoyeon.lee", "kaist", 404),  # the pi may not even read the organization
        ("jiwoo.jung", "kaist", 404),
        ("seoyeon.lee", "kaist-nlp", 403),  # their own project: readable, but nobody's to add to
        ("jiwoo.jung", "kaist-nlp", 403),
        ("minji.park", "kaist", 404),
    ],
)
def test_nobody_in_a_project_adds_a_project_that_may_burst(
    demo: Demo, user: str, parent: str, status: int
) -> None:
    before = audit_total(demo)
    body = {"name": "kaist-nlp-burst", "kind": "project", "parent": parent, "may_burst": True}

    response = demo.client.post(f"{API}/accounts", json=body, headers=demo.headers(user))

    assert response.status_code == status, response.text
    assert audit_total(demo) == before
    with demo.books() as books:
        assert "kaist-nlp-burst" not in books.accounts.tree()


def test_a_program_manager_token_without_manage_cannot_turn_burst_on(demo: Demo) -> None:
    token = demo.token("jaehyun.kim", [Scope.READ, Scope.JOBS])
    before = audit_total(demo)

    response = demo.client.patch(
        f"{API}/accounts/kaist-nlp",
        json={"may_burst": True},
        headers={"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 403
    assert audit_total(demo) == before
    assert may_burst(demo, "kaist-nlp") is False


# -- clusters and burst budgets -----------------------------------------------------------------


@pytest.mark.parametrize("user", NON_ADMINS)
def test_only_an_admin_declares_a_cluster(demo: Demo, user: str) -> None:
    before = (audit_total(demo), stored_clusters(demo))

    response = demo.client.post(f"{API}/clusters", json=TARGET, headers=demo.headers(user))

    assert response.status_code == 403, response.text
    assert (audit_total(demo), stored_clusters(demo)) == before


def test_an_admin_token_without_manage_declares_no_cluster(demo: Demo) -> None:
    token = demo.token("admin", [Scope.READ, Scope.JOBS])
    before = (audit_total(demo), stored_clusters(demo))

    response = demo.client.post(
        f"{API}/clusters", json=TARGET, headers={"Authorization": f"Bearer {token}"}
    )

    assert response.status_code == 403
    assert (audit_total(demo), stored_clusters(demo)) == before


@pytest.mark.parametrize("user", NON_ADMINS)
@pytest.mark.parametrize("credits", ["1000000", None])
def test_only_an_admin_changes_a_burst_budget(demo: Demo, user: str, credits: str | None) -> None:
    declare_target(demo)
    before = (audit_total(demo), stored_clusters(demo))

    raised = [
        demo.client.put(
            f"{API}/clusters/cloud-seoul/burst-budgets/{program}",
            json={"credits": credits},
            headers=demo.headers(user),
        )
        for program in ("startups", "universities")  # each manager's own program too
    ]

    assert [answer.status_code for answer in raised] == [403, 403]
    assert (audit_total(demo), stored_clusters(demo)) == before


@pytest.mark.parametrize(
    "name",
    [
        "Cloud-seoul",
        "cloud_seoul",
        "cloud seoul",
        "cloud/seoul",
        "../cloud",
        "cloud.seoul",
        "-cloud",
        "cloud-",
        "clöud",
        "cloud\nseoul",
        "cloud\u0000",
        "c" * 65,
        "",
    ],
)
def test_a_cluster_name_with_odd_characters_is_refused(demo: Demo, name: str) -> None:
    before = (audit_total(demo), stored_clusters(demo))

    response = demo.client.post(
        f"{API}/clusters", json=TARGET | {"name": name}, headers=demo.headers()
    )

    assert response.status_code == 422, response.text
    assert (audit_total(demo), stored_clusters(demo)) == before


@pytest.mark.parametrize(
    ("program", "status"),
    [
        ("kaist", 422),  # an organization
        ("kaist-nlp", 422),  # a project
        ("national", 422),  # the pool
        ("Startups", 404),  # names with odd characters name nothing (in a path) or are refused
        ("start ups", 404),
        ("../startups", 404),
        ("startups/x", 404),
        ("stärtups", 404),
        ("startups\u0000", 422),
    ],
)
def test_a_burst_budget_is_a_programs_named_plainly(demo: Demo, program: str, status: int) -> None:
    declare_target(demo)
    before = (audit_total(demo), stored_clusters(demo))

    declared = demo.client.post(
        f"{API}/clusters",
        json=TARGET | {"name": "cloud-busan", "burst_budgets": {program: "5"}},
        headers=demo.headers(),
    )
    changed = demo.client.put(
        f"{API}/clusters/cloud-seoul/burst-budgets/{quote(program, safe='')}",
        json={"credits": "5"},
        headers=demo.headers(),
    )

    assert declared.status_code == 422, declared.text
    assert changed.status_code == status, changed.text
    if status == 422 and "\u0000" not in program:
        assert "is a program's" in declared.json()["detail"]
        assert "is a program's" in changed.json()["detail"]
    assert (audit_total(demo), stored_clusters(demo)) == before


# -- what a cluster shows ----------------------------------------------------------------------


@pytest.mark.parametrize("user", NON_ADMINS)
def test_where_a_cluster_is_reached_is_shown_to_admins_only(demo: Demo, user: str) -> None:
    declare_target(demo)

    seen = demo.client.get(f"{API}/clusters", headers=demo.headers(user))
    admin = demo.client.get(f"{API}/clusters", headers=demo.headers())

    assert seen.status_code == 200
    assert {cluster["address"] for cluster in seen.json()} == {None}
    assert ADDRESS not in seen.text
    assert "gpupool-demo-npu" not in seen.text  # the demo's Kubernetes context
    addresses = {cluster["name"]: cluster["address"] for cluster in admin.json()}
    assert addresses["cloud-seoul"] == ADDRESS
    assert addresses["kube-pangyo"] == "gpupool-demo-npu"


@pytest.mark.parametrize(
    ("user", "programs"),
    [
        ("auditor.kim", {"startups", "universities"}),
        ("jaehyun.kim", {"universities"}),
        ("minji.park", {"startups"}),
        ("seoyeon.lee", {"universities"}),
        ("jiwoo.jung", {"startups", "universities"}),  # in a project of each
        ("hyejin.kang", {"startups"}),
    ],
)
def test_a_burst_budget_is_shown_to_those_who_see_its_program(
    demo: Demo, user: str, programs: set[str]
) -> None:
    declare_target(demo)

    seen = demo.client.get(f"{API}/clusters", headers=demo.headers(user)).json()

    target = next(cluster for cluster in seen if cluster["name"] == "cloud-seoul")
    assert set(target["burst_budgets"]) == programs
