"""The catalogue API: flavors, rate cards, clusters with utilisation, periods, funders, quotes."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from jobs.model import JobState, Placed
from jobs.repository import JobRepository
from quotas.outages import NodeOutage
from quotas.quantities import Credits
from tests.portal.conftest import Demo

API = "/api/v1"
RATES = {"h100-80g": "1.0", "a100-80g": "0.8", "v100-32g": "0.25", "rngd-48g": "0.26"}


def audited(demo: Demo, action: str) -> list[Any]:
    with demo.books() as books:
        return books.audit.search(action=action)[0]


def audit_total(demo: Demo) -> int:
    with demo.books() as books:
        return books.audit.search(limit=1)[1]


def test_everyone_reads_flavors_with_the_rates_in_force(demo: Demo) -> None:
    response = demo.client.get(f"{API}/flavors", headers=demo.headers("jiwoo.jung"))

    flavors = {flavor["name"]: flavor for flavor in response.json()}
    assert {name: flavor["rate"] for name, flavor in flavors.items()} == RATES
    assert flavors["a100-80g"]["relative_throughput"] == 0.81
    assert flavors["h100-80g"]["ray_resource"] == "h100-80g"


def test_an_admin_adds_a_flavor_and_prices_it_on_a_new_rate_card(demo: Demo) -> None:
    flavor = {"name": "npu-rbln", "memory_gb": 64, "relative_throughput": 0.6}

    added = demo.client.post(f"{API}/flavors", json=flavor, headers=demo.headers())
    card = demo.client.post(
        f"{API}/rate-cards",
        json={"rates": {**RATES, "npu-rbln": "0.5"}, "note": "domestic NPU joins"},
        headers=demo.headers(),
    )
    current = demo.client.get(f"{API}/rate-cards/current", headers=demo.headers("jiwoo.jung"))
    versions = demo.client.get(f"{API}/rate-cards", headers=demo.headers("jiwoo.jung"))

    assert added.status_code == 201, added.text
    assert added.json()["rate"] is None
    assert card.status_code == 201, card.text
    assert card.json()["version"] == 2
    assert card.json()["created_by"] == "admin"
    assert current.json()["rates"]["npu-rbln"] == "0.5"
    assert current.json()["note"] == "domestic NPU joins"
    assert [each["version"] for each in versions.json()] == [1, 2]
    published = audited(demo, "rate_card.publish")[0]
    assert published.before is not None
    assert published.before["version"] == 1
    assert published.after is not None
    assert published.after["rates"]["npu-rbln"] == "0.5"
    assert audited(demo, "flavor.add")[0].after["name"] == "npu-rbln"


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("minji.park", {"name": "x1", "memory_gb": 8, "relative_throughput": 0.1}, 403),
        ("auditor.kim", {"name": "x1", "memory_gb": 8, "relative_throughput": 0.1}, 403),
        ("admin", {"name": "h100-80g", "memory_gb": 80, "relative_throughput": 1.0}, 409),  # taken
        ("admin", {"name": "x1", "memory_gb": 0, "relative_throughput": 0.1}, 422),
        ("admin", {"name": "x1", "memory_gb": 8, "relative_throughput": 0}, 422),
        ("admin", {"name": "X 1", "memory_gb": 8, "relative_throughput": 0.1}, 422),
        ("admin", {"name": "x1", "memory_gb": 8, "relative_throughput": 0.1, "cost": 1}, 422),
    ],
)
def test_bad_or_unauthorised_flavors_are_refused(
    demo: Demo, user: str, body: dict[str, Any], status: int
) -> None:
    before = audit_total(demo)

    response = demo.client.post(f"{API}/flavors", json=body, headers=demo.headers(user))

    assert response.status_code == status, response.text
    assert audit_total(demo) == before


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("jaehyun.kim", {"rates": RATES}, 403),
        ("admin", {"rates": {"h100-80g": "1.0"}}, 422),  # every flavor is priced
        ("admin", {"rates": {**RATES, "tpu-v9": "2"}}, 422),
        ("admin", {"rates": {**RATES, "h100-80g": "0"}}, 422),
        ("admin", {"rates": {**RATES, "h100-80g": "-1"}}, 422),
        ("admin", {"rates": {**RATES, "h100-80g": 1}}, 422),
        ("admin", {"rates": RATES, "effective_from": "2001-01-01T00:00:00Z"}, 422),
        ("admin", {"rates": RATES, "effective_from": "2099-01-01T00:00:00"}, 422),  # naive
        ("admin", {"rates": RATES, "version": 9}, 422),
    ],
)
def test_bad_or_unauthorised_rate_cards_are_refused(
    demo: Demo, user: str, body: dict[str, Any], status: int
) -> None:
    before = audit_total(demo)

    response = demo.client.post(f"{API}/rate-cards", json=body, headers=demo.headers(user))

    assert response.status_code == status, response.text
    assert audit_total(demo) == before
    versions = demo.client.get(f"{API}/rate-cards", headers=demo.headers()).json()
    assert len(versions) == 1


def test_a_future_rate_card_waits_for_its_time(demo: Demo) -> None:
    later = datetime.now(UTC) + timedelta(days=30)

    published = demo.client.post(
        f"{API}/rate-cards",
        json={"rates": {**RATES, "h100-80g": "1.2"}, "effective_from": later.isoformat()},
        headers=demo.headers(),
    )
    current = demo.client.get(f"{API}/rate-cards/current", headers=demo.headers())

    assert published.status_code == 201, published.text
    assert current.json()["version"] == 1


def test_clusters_show_inventory_allocated_and_idle(demo: Demo) -> None:
    job = demo.client.post(
        f"{API}/jobs",
        json={"project": "kaist-nlp", "entrypoint": "python train.py", "gpus": 4},
        headers=demo.headers("jiwoo.jung"),
    ).json()["job"]["id"]
    with demo.books() as books:
        jobs = JobRepository(books.session)
        placed = Placed("national-daejeon", "h100-80g", 1000, 1, "2026-q1", 4000)
        jobs.save(replace(jobs.get(job), state=JobState.RUNNING, placed=placed))

    response = demo.client.get(f"{API}/clusters", headers=demo.headers("jiwoo.jung"))

    clusters = {cluster["name"]: cluster for cluster in response.json()}
    daejeon = clusters["national-daejeon"]
    groups = {group["flavor"]: group for group in daejeon["node_groups"]}
    assert daejeon["backend"] == "ray"
    assert daejeon["site"] == "national"
    assert daejeon["price_multiplier"] == "1.0"
    assert groups["h100-80g"] == {
        "flavor": "h100-80g",
        "nodes": 2,
        "gpus_per_node": 8,
        "total": 16,
        "allocated": 4,
        "down": 0,
        "idle": 12,
    }
    assert groups["a100-80g"]["allocated"] == 0
    assert clusters["national-gwangju"]["node_groups"][0]["total"] == 32


def test_clusters_show_what_is_down_now_and_download_as_csv(demo: Demo) -> None:
    now = datetime.now(UTC)
    with demo.books() as books:
        books.outages.start(
            [
                NodeOutage("national-daejeon", "h100-80g", 1, 8, now - timedelta(hours=1)),
                NodeOutage(
                    "national-gwangju", "v100-32g", 1, 8, now - timedelta(hours=2), until=now
                ),
            ]
        )

    clusters = demo.client.get(f"{API}/clusters", headers=demo.headers("jiwoo.jung")).json()
    answer = demo.client.get(
        f"{API}/clusters", params={"format": "csv"}, headers=demo.headers("jiwoo.jung")
    )

    daejeon = next(each for each in clusters if each["name"] == "national-daejeon")
    h100 = next(group for group in daejeon["node_groups"] if group["flavor"] == "h100-80g")
    assert (h100["down"], h100["idle"]) == (8, 8)
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert answer.headers["content-type"].startswith("text/csv")
    assert len(rows) == sum(len(each["node_groups"]) for each in clusters)
    by_key = {(row["name"], row["flavor"]): row for row in rows}
    assert by_key[("national-daejeon", "h100-80g")]["down"] == "8"
    assert by_key[("national-daejeon", "h100-80g")]["tenancy"] == "shared"
    assert by_key[("national-gwangju", "v100-32g")]["down"] == "0"  # that outage has ended
    assert by_key[("national-gwangju", "v100-32g")]["address"] == ""  # not an admin's to see


BURST_TARGET = {
    "name": "cloud-seoul",
    "backend": "kubernetes",
    "site": "domestic_cloud",
    "inventory": [{"flavor": "h100-80g", "nodes": 4, "gpus_per_node": 8}],
    "address": "cloud-seoul-admin@cloud-seoul",
    "price_multiplier": "1.5",
    "tenancy": "per_job",
    "provisioning_deadline_seconds": 1200,
    "provisioning_class": "best-effort-atomic-scale-up.autoscaling.x-k8s.io",
    "burst_budgets": {"startups": "2000", "universities": "500.5"},
}


def clusters(demo: Demo, user: str = "admin") -> dict[str, Any]:
    response = demo.client.get(f"{API}/clusters", headers=demo.headers(user))
    assert response.status_code == 200, response.text
    return {cluster["name"]: cluster for cluster in response.json()}


def test_flavors_say_which_only_jobs_naming_them_take(demo: Demo) -> None:
    npu = {"name": "npu-rbln", "memory_gb": 64, "relative_throughput": 0.6, "named_only": True}

    added = demo.client.post(f"{API}/flavors", json=npu, headers=demo.headers())
    flavors = demo.client.get(f"{API}/flavors", headers=demo.headers("jiwoo.jung")).json()

    assert added.status_code == 201, added.text
    assert added.json()["named_only"] is True
    named_only = {flavor["name"]: flavor["named_only"] for flavor in flavors}
    assert named_only == {
        "h100-80g": False,
        "a100-80g": False,
        "v100-32g": False,
        "rngd-48g": True,
        "npu-rbln": True,
    }
    assert audited(demo, "flavor.add")[0].after["named_only"] is True


def test_an_admin_declares_a_burst_target_and_the_books_keep_it(demo: Demo) -> None:
    added = demo.client.post(f"{API}/clusters", json=BURST_TARGET, headers=demo.headers())

    assert added.status_code == 201, added.text
    shown = clusters(demo)["cloud-seoul"]
    assert added.json() == shown
    assert shown == {
        "name": "cloud-seoul",
        "backend": "kubernetes",
        "site": "domestic_cloud",
        "address": "cloud-seoul-admin@cloud-seoul",
        "price_multiplier": "1.5",
        "tenancy": "per_job",
        "dedicated_to": None,
        "provisioning_deadline_seconds": 1200,
        "provisioning_class": "best-effort-atomic-scale-up.autoscaling.x-k8s.io",
        "burst_budgets": {"startups": "2000.0", "universities": "500.5"},
        "node_groups": [
            {
                "flavor": "h100-80g",
                "nodes": 4,
                "gpus_per_node": 8,
                "total": 32,
                "allocated": 0,
                "down": 0,
                "idle": 32,
            }
        ],
    }
    with demo.books() as books:
        [stored] = [each for each in books.clusters.all() if each.name == "cloud-seoul"]
        assert stored.price_multiplier_milli == 1500
        assert stored.burst_budgets == (
            ("startups", Credits.of(2000)),
            ("universities", Credits.of("500.5")),
        )
    entry = audited(demo, "cluster.add")[0]  # newest first; the demo's are the seed's
    assert entry.actor == "admin"
    assert entry.target == "cluster/cloud-seoul"
    assert entry.before is None
    assert entry.after["inventory"] == [{"flavor": "h100-80g", "nodes": 4, "gpus_per_node": 8}]
    assert entry.after["burst_budgets"] == {"startups": "2000.0", "universities": "500.5"}
    assert entry.after["price_multiplier_milli"] == 1500
    assert entry.after["provisioning_deadline_seconds"] == 1200


def test_a_national_cluster_has_no_burst_settings_and_defaults_fill_the_rest(demo: Demo) -> None:
    body = {
        "name": "national-busan",
        "backend": "ray",
        "site": "national",
        "inventory": [{"flavor": "a100-80g", "nodes": 1, "gpus_per_node": 4}],
    }

    added = demo.client.post(f"{API}/clusters", json=body, headers=demo.headers())
    target = demo.client.post(
        f"{API}/clusters",
        json={**body, "name": "cloud-aws", "site": "foreign_cloud", "backend": "kubernetes"},
        headers=demo.headers(),
    )

    assert added.status_code == 201, added.text
    assert added.json()["address"] == ""
    assert added.json()["price_multiplier"] == "1.0"
    assert added.json()["tenancy"] == "shared"
    assert added.json()["provisioning_deadline_seconds"] is None
    assert added.json()["provisioning_class"] is None
    assert added.json()["burst_budgets"] == {}
    assert target.json()["provisioning_deadline_seconds"] == 900
    assert target.json()["provisioning_class"] is None
    pangyo = clusters(demo)["kube-pangyo"]
    assert pangyo["address"] == "gpupool-demo-npu"
    assert pangyo["provisioning_deadline_seconds"] is None


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"name": "national-daejeon"}, 409),  # taken
        ({"inventory": [{"flavor": "tpu-v9", "nodes": 1, "gpus_per_node": 8}]}, 422),
        ({"inventory": []}, 422),
        ({"inventory": [{"flavor": "h100-80g", "nodes": 0, "gpus_per_node": 8}]}, 422),
        (
            {
                "inventory": [
                    {"flavor": "h100-80g", "nodes": 1, "gpus_per_node": 8},
                    {"flavor": "h100-80g", "nodes": 2, "gpus_per_node": 8},
                ]
            },
            422,
        ),
        # burst budgets and a provisioning class on a national cluster
        ({"site": "national", "provisioning_deadline_seconds": None}, 422),
        ({"site": "national", "burst_budgets": {}, "provisioning_class": ""}, 422),  # deadline
        ({"site": "moon"}, 422),
        ({"backend": "slurm"}, 422),
        ({"tenancy": "dedicated"}, 422),  # dedicated to nobody
        ({"tenancy": "dedicated", "dedicated_to": "kaist-nlp"}, 422),  # a project
        ({"tenancy": "dedicated", "dedicated_to": "nowhere"}, 422),
        ({"tenancy": "shared", "dedicated_to": "kaist"}, 422),
        ({"tenancy": "per_job", "backend": "ray"}, 422),
        ({"price_multiplier": "0"}, 422),
        ({"price_multiplier": "-1"}, 422),
        ({"price_multiplier": 1.5}, 422),
        ({"provisioning_deadline_seconds": 0}, 422),
        ({"provisioning_class": "Not A Class"}, 422),
        ({"burst_budgets": {"startups": "-5"}}, 422),
        ({"burst_budgets": {"startups": "lots"}}, 422),
        ({"burst_budgets": {"nowhere": "5"}}, 422),
        ({"address": "has space"}, 422),
        ({"address": "x" * 501}, 422),
        ({"max_size": 64}, 422),
    ],
)
def test_bad_clusters_are_refused_and_nothing_is_written(
    demo: Demo, change: dict[str, Any], status: int
) -> None:
    before = audit_total(demo)
    names = set(clusters(demo))

    response = demo.client.post(
        f"{API}/clusters", json=BURST_TARGET | change, headers=demo.headers()
    )

    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert audit_total(demo) == before
    assert set(clusters(demo)) == names


def test_an_admin_dedicates_a_cluster_to_an_organization(demo: Demo) -> None:
    body = BURST_TARGET | {"tenancy": "dedicated", "dedicated_to": "kaist"}

    added = demo.client.post(f"{API}/clusters", json=body, headers=demo.headers())

    assert added.status_code == 201, added.text
    assert added.json()["dedicated_to"] == "kaist"


def test_an_admin_sets_changes_and_lifts_a_programs_burst_budget(demo: Demo) -> None:
    demo.client.post(f"{API}/clusters", json=BURST_TARGET, headers=demo.headers())
    path = f"{API}/clusters/cloud-seoul/burst-budgets"

    raised = demo.client.put(f"{path}/startups", json={"credits": "2500"}, headers=demo.headers())
    lifted = demo.client.put(f"{path}/universities", json={"credits": None}, headers=demo.headers())
    given = demo.client.put(f"{path}/universities", json={"credits": "0"}, headers=demo.headers())

    assert raised.status_code == 200, raised.text
    assert raised.json()["burst_budgets"] == {"startups": "2500.0", "universities": "500.5"}
    assert lifted.status_code == 200, lifted.text
    assert lifted.json()["burst_budgets"] == {"startups": "2500.0"}
    assert given.json()["burst_budgets"] == {"startups": "2500.0", "universities": "0.0"}
    assert clusters(demo)["cloud-seoul"]["burst_budgets"] == given.json()["burst_budgets"]
    entries = list(reversed(audited(demo, "burst_budget.set")))
    assert [(entry.before, entry.after) for entry in entries] == [
        (
            {"program": "startups", "credits": "2000.0"},
            {"program": "startups", "credits": "2500.0"},
        ),
        (
            {"program": "universities", "credits": "500.5"},
            {"program": "universities", "credits": None},
        ),
        (
            {"program": "universities", "credits": None},
            {"program": "universities", "credits": "0.0"},
        ),
    ]
    assert {entry.target for entry in entries} == {"cluster/cloud-seoul"}


@pytest.mark.parametrize(
    ("cluster", "program", "body", "status"),
    [
        ("nowhere", "startups", {"credits": "5"}, 404),
        ("cloud-seoul", "nowhere", {"credits": "5"}, 404),
        ("national-daejeon", "startups", {"credits": "5"}, 422),  # not a burst target
        ("cloud-seoul", "kaist", {"credits": "5"}, 422),  # an organization
        ("cloud-seoul", "kaist-nlp", {"credits": "5"}, 422),  # a project
        ("cloud-seoul", "national", {"credits": "5"}, 422),  # the pool
        ("cloud-seoul", "startups", {"credits": "-5"}, 422),
        ("cloud-seoul", "startups", {"credits": 5}, 422),
        ("cloud-seoul", "startups", {}, 422),
        ("cloud-seoul", "startups", {"credits": "5", "period": "2026-q1"}, 422),
    ],
)
def test_bad_burst_budgets_are_refused_and_nothing_is_written(
    demo: Demo, cluster: str, program: str, body: dict[str, Any], status: int
) -> None:
    demo.client.post(f"{API}/clusters", json=BURST_TARGET, headers=demo.headers())
    before = audit_total(demo)

    response = demo.client.put(
        f"{API}/clusters/{cluster}/burst-budgets/{program}", json=body, headers=demo.headers()
    )

    assert response.status_code == status, response.text
    assert audit_total(demo) == before
    budgets = clusters(demo)["cloud-seoul"]["burst_budgets"]
    assert budgets == {"startups": "2000.0", "universities": "500.5"}


def test_periods_and_funders_are_listed_and_added_by_an_admin(demo: Demo) -> None:
    periods = demo.client.get(f"{API}/periods", headers=demo.headers("jiwoo.jung")).json()
    ends = datetime.fromisoformat(periods[0]["ends_at"])
    next_period = {
        "name": "next-quarter",
        "starts_at": ends.isoformat(),
        "ends_at": (ends + timedelta(days=90)).isoformat(),
    }

    added = demo.client.post(f"{API}/periods", json=next_period, headers=demo.headers())
    funder = demo.client.post(
        f"{API}/funders",
        json={"name": "busan", "display_name": "Busan City", "kind": "local_government"},
        headers=demo.headers(),
    )
    funders = demo.client.get(f"{API}/funders", headers=demo.headers("jiwoo.jung")).json()

    assert len(periods) == 1
    assert periods[0]["current"] is True
    assert periods[0]["expired_at"] is None
    assert added.status_code == 201, added.text
    assert added.json()["current"] is False
    assert funder.status_code == 201, funder.text
    assert [each["name"] for each in funders] == ["busan", "gyeonggi", "msit"]
    assert audited(demo, "period.add")[0].actor == "admin"
    assert audited(demo, "funder.add")[0].after == {
        "name": "busan",
        "display_name": "Busan City",
        "kind": "local_government",
        "krw_per_credit": 0,
    }


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("minji.park", {}, 403),
        ("admin", {"name": "Bad Name"}, 422),
        ("admin", {"ends_at": "2098-01-01T00:00:00Z"}, 422),  # ends before it starts
        ("admin", {"starts_at": "2099-01-01T00:00:00"}, 422),  # naive
        ("admin", {"starts_at": "2000-01-01T00:00:00Z", "ends_at": "2100-01-01T00:00:00Z"}, 422),
        ("admin", {"name": "x", "weeks": 12}, 422),
    ],
)
def test_bad_periods_are_refused(demo: Demo, user: str, body: dict[str, Any], status: int) -> None:
    base = {"name": "p-2099", "starts_at": "2099-01-01T00:00:00Z", "ends_at": "2099-04-01T00:00Z"}
    before = audit_total(demo)

    response = demo.client.post(f"{API}/periods", json=base | body, headers=demo.headers(user))

    assert response.status_code == status, response.text
    assert audit_total(demo) == before


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("auditor.kim", {}, 403),
        ("admin", {"name": "msit"}, 409),  # taken
        ("admin", {"kind": "bank"}, 422),
        ("admin", {"krw_per_credit": -1}, 422),
        ("admin", {"display_name": ""}, 422),
    ],
)
def test_bad_funders_are_refused(demo: Demo, user: str, body: dict[str, Any], status: int) -> None:
    base = {"name": "busan", "display_name": "Busan City", "kind": "local_government"}
    before = audit_total(demo)

    response = demo.client.post(f"{API}/funders", json=base | body, headers=demo.headers(user))

    assert response.status_code == status, response.text
    assert audit_total(demo) == before


def test_a_quote_prices_each_acceptable_flavor_best_deal_first(demo: Demo) -> None:
    response = demo.client.post(
        f"{API}/quote",
        json={"gpus": 2, "time_limit": "2h", "flavors": ["h100-80g", "a100-80g"]},
        headers=demo.headers("jiwoo.jung"),
    )
    by_memory = demo.client.post(
        f"{API}/quote", json={"gpus": 1, "min_memory_gb": 80}, headers=demo.headers("jiwoo.jung")
    )

    assert response.status_code == 200, response.text
    assert response.json()["rate_card_version"] == 1
    lines = [(line["flavor"], line["rate"], line["credits"]) for line in response.json()["lines"]]
    assert lines == [("a100-80g", "0.8", "3.2"), ("h100-80g", "1.0", "4.0")]  # 0.81 / 0.8 > 1
    assert {line["flavor"] for line in by_memory.json()["lines"]} == {"h100-80g", "a100-80g"}


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"gpus": 0}, 422),
        ({"time_limit": "2 weeks"}, 422),
        ({"time_limit": "9999h"}, 422),
        ({"flavors": ["tpu-v9"]}, 404),
        ({"min_memory_gb": 1000}, 422),
        ({"gpu": 2}, 422),
    ],
)
def test_bad_quotes_are_refused(demo: Demo, body: dict[str, Any], status: int) -> None:
    response = demo.client.post(f"{API}/quote", json=body, headers=demo.headers("jiwoo.jung"))

    assert response.status_code == status, response.text


def test_times_with_any_offset_are_kept_as_the_same_moment_in_utc(demo: Demo) -> None:
    body = {
        "name": "p-2099",
        "starts_at": "2099-01-01T09:00:00+09:00",
        "ends_at": "2099-01-01T08:00:00-01:00",
    }

    added = demo.client.post(f"{API}/periods", json=body, headers=demo.headers())
    listed = demo.client.get(f"{API}/periods", headers=demo.headers()).json()

    assert added.status_code == 201, added.text
    stored = next(period for period in listed if period["name"] == "p-2099")
    assert datetime.fromisoformat(stored["starts_at"]) == datetime(2099, 1, 1, tzinfo=UTC)
    assert datetime.fromisoformat(stored["ends_at"]) == datetime(2099, 1, 1, 9, tzinfo=UTC)
