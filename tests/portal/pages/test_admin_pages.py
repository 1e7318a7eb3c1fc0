"""The admin's catalogue pages over the demo pool, through a test client signed in as a browser
is: what each page shows is what the API gives, and each form changes the books as the API's
route does."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from quotas.outages import NodeOutage
from tests.portal.conftest import AUDITOR, Demo
from tests.portal.pages.sessions import sign_in

PAGES = ("/admin", "/admin/funders", "/admin/periods", "/admin/flavors", "/admin/clusters")


def as_admin(demo: Demo) -> str:
    return sign_in(demo.client, demo.admin_token)


def api(demo: Demo, path: str) -> Any:
    answer = demo.client.get(f"/api/v1{path}", headers=demo.headers())
    assert answer.status_code == 200, answer.text
    return answer.json()


def post(demo: Demo, path: str, **form: str | list[str]) -> str:
    answer = demo.client.post(path, data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text[-2000:]
    return str(answer.headers["location"])


def cells(html: str, row: str, attribute: str = "data-part") -> dict[str, str]:
    """The ``data-part``-named cells' numbers of the table row whose opening tag has ``row``."""
    start = html.index(row)
    end = html.index("</tr>", start)
    found = re.findall(
        rf'{attribute}="([^"]+)"[^>]*>(?:<span class="value">)?([\d,]+)', html[start:end]
    )
    return {name: value.replace(",", "") for name, value in found}


def test_the_overview_counts_what_the_api_lists(demo: Demo) -> None:
    as_admin(demo)
    page = demo.client.get("/admin")
    assert page.status_code == 200
    counts = dict(re.findall(r'data-count="([a-z_]+)">([\d,]+)', page.text))
    clusters = api(demo, "/clusters")
    assert isinstance(clusters, list)
    assert counts["clusters"] == str(len(clusters))
    assert counts["flavors"] == str(len(api(demo, "/flavors")))
    assert counts["funders"] == str(len(api(demo, "/funders")))
    assert counts["periods"] == str(len(api(demo, "/periods")))
    assert counts["rate_cards"] == str(len(api(demo, "/rate-cards")))
    total = sum(group["total"] for each in clusters for group in each["node_groups"])
    assert counts["gpus"] == f"{total:,}".replace(",", "")
    for href in ("/admin/funders", "/admin/periods", "/admin/flavors", "/admin/clusters"):
        assert f'href="{href}"' in page.text


def test_funders_show_their_contributions_per_period_and_a_new_one_is_added(demo: Demo) -> None:
    csrf = as_admin(demo)
    period = api(demo, "/periods")[0]["name"]
    page = demo.client.get("/admin/funders")
    assert "Ministry of Science and ICT" in page.text
    msit = page.text.index('data-funder="msit"')
    assert f'data-period="{period}" data-value="200000.0"' in page.text[msit:]
    assert "200,000 credits" in page.text

    post(
        demo,
        "/admin/funders",
        csrf=csrf,
        name="busan",
        display_name="Busan Metropolitan City",
        kind="local_government",
        krw_per_credit="3200",
    )
    funders = {each["name"]: each for each in api(demo, "/funders")}
    assert funders["busan"] == {
        "name": "busan",
        "display_name": "Busan Metropolitan City",
        "kind": "local_government",
        "krw_per_credit": 3200,
    }
    assert "Busan Metropolitan City" in demo.client.get("/admin/funders").text

    download = demo.client.get("/admin/funders?format=csv")
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert {"funder": "msit", "period": period, "contributed": "200000.0"}.items() <= rows[
        [row["funder"] for row in rows].index("msit")
    ].items()


def test_a_refused_funder_keeps_the_form_and_says_why(demo: Demo) -> None:
    csrf = as_admin(demo)
    answer = demo.client.post(
        "/admin/funders",
        data={"csrf": csrf, "name": "msit", "display_name": "Again", "kind": "ministry"},
    )
    assert answer.status_code == 422
    assert "The funder was not added" in answer.text
    assert "already exists" in answer.text
    bad = demo.client.post(
        "/admin/funders",
        data={"csrf": csrf, "name": "Bad Name", "display_name": "Typed", "kind": "ministry"},
    )
    assert bad.status_code == 422
    assert "name: String should match pattern" in bad.text
    assert 'value="Typed"' in bad.text  # what was typed is kept
    assert len(api(demo, "/funders")) == 2


def test_a_period_is_added_in_the_pools_time_zone(demo: Demo) -> None:
    csrf = as_admin(demo)
    periods = api(demo, "/periods")
    last_end = datetime.fromisoformat(periods[-1]["ends_at"])
    zone = ZoneInfo(demo.settings.timezone)
    start = (last_end + timedelta(days=1)).astimezone(zone).replace(second=0, microsecond=0)
    post(
        demo,
        "/admin/periods",
        csrf=csrf,
        name="next-quarter",
        starts_at=start.strftime("%Y-%m-%dT%H:%M"),
        ends_at=(start + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M"),
    )
    added = api(demo, "/periods")[-1]
    assert added["name"] == "next-quarter"
    # typed as the wall-clock time of the pool's zone, the zone every page shows times in
    assert datetime.fromisoformat(added["starts_at"]) == start
    page = demo.client.get("/admin/periods")
    assert 'data-period="next-quarter"' in page.text

    overlapping = demo.client.post(
        "/admin/periods",
        data={
            "csrf": csrf,
            "name": "overlap",
            "starts_at": start.strftime("%Y-%m-%dT%H:%M"),
            "ends_at": (start + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert overlapping.status_code == 422
    assert "overlaps period next-quarter" in overlapping.text
    backwards = demo.client.post(
        "/admin/periods",
        data={"csrf": csrf, "name": "x", "starts_at": "2031-01-02T00:00", "ends_at": "nonsense"},
    )
    assert backwards.status_code == 422
    assert "ends_at: &#39;nonsense&#39; is not a date and time" in backwards.text


def test_a_flavor_is_added_and_a_rate_card_pricing_it_comes_into_force(demo: Demo) -> None:
    csrf = as_admin(demo)
    post(
        demo,
        "/admin/flavors",
        csrf=csrf,
        name="h200-141g",
        memory_gb="141",
        relative_throughput="1.6",
        throughput_source="MLPerf Training v4.0, GPT-3 175B",
    )
    flavors = {each["name"]: each for each in api(demo, "/flavors")}
    assert flavors["h200-141g"]["memory_gb"] == 141
    assert flavors["h200-141g"]["relative_throughput"] == 1.6
    assert flavors["h200-141g"]["kubernetes_resource"] == "nvidia.com/gpu"
    assert flavors["h200-141g"]["rate"] is None

    page = demo.client.get("/admin/flavors")
    assert "not priced yet" in page.text
    current = api(demo, "/rate-cards/current")
    rates = dict(current["rates"])
    # the form comes filled in with the latest card's rates, and the new flavor's left empty
    for flavor, rate in rates.items():
        assert re.search(
            rf'name="rate"[^>]*value="{re.escape(rate)}" data-flavor="{flavor}"', page.text
        )
    assert re.search(r'name="rate"[^>]*value="" data-flavor="h200-141g"', page.text)

    unpriced = demo.client.post(
        "/admin/rate-cards",
        data={"csrf": csrf, "flavor": [*rates, "h200-141g"], "rate": [*rates.values(), ""]},
    )
    assert unpriced.status_code == 422
    assert "missing h200-141g" in unpriced.text

    names = [*rates, "h200-141g"]
    post(
        demo,
        "/admin/rate-cards",
        csrf=csrf,
        flavor=names,
        rate=[*rates.values(), "3.25"],
        note="H200 joins",
    )
    card = api(demo, "/rate-cards/current")
    assert card["version"] == current["version"] + 1
    assert card["rates"]["h200-141g"] == "3.25"
    assert card["note"] == "H200 joins"
    assert card["created_by"] == "admin"
    page = demo.client.get("/admin/flavors")
    newest = page.text.index(f'data-version="{card["version"]}"')
    assert 'class="in-force"' in page.text[newest : newest + 80]
    assert 'data-flavor="h200-141g" data-value="3.25"' in page.text
    download = demo.client.get("/admin/flavors?format=csv").text
    versions = list(csv.DictReader(io.StringIO(download)))
    assert {"version": str(card["version"]), "flavor": "h200-141g", "rate": "3.25"} in [
        {key: row[key] for key in ("version", "flavor", "rate")} for row in versions
    ]


def test_a_rate_card_can_be_scheduled_but_not_backdated(demo: Demo) -> None:
    csrf = as_admin(demo)
    rates = dict(api(demo, "/rate-cards/current")["rates"])
    before = len(api(demo, "/rate-cards"))
    backdated = demo.client.post(
        "/admin/rate-cards",
        data={
            "csrf": csrf,
            "flavor": list(rates),
            "rate": list(rates.values()),
            "effective_from": "2001-01-01T00:00",
        },
    )
    assert backdated.status_code == 422
    assert "cannot be backdated" in backdated.text
    later = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
    post(
        demo,
        "/admin/rate-cards",
        csrf=csrf,
        flavor=list(rates),
        rate=["9" for _ in rates],
        effective_from=later,
    )
    cards = api(demo, "/rate-cards")
    assert len(cards) == before + 1
    assert api(demo, "/rate-cards/current")["rates"] == rates
    assert "Scheduled" in demo.client.get("/admin/flavors").text


def test_the_clusters_page_shows_allocated_idle_and_down_as_the_api_does(demo: Demo) -> None:
    as_admin(demo)
    with demo.books() as books:
        books.outages.start([NodeOutage("national-daejeon", "h100-80g", 1, 8, datetime.now(UTC))])
    page = demo.client.get("/admin/clusters")
    assert page.status_code == 200
    clusters = api(demo, "/clusters")
    assert isinstance(clusters, list)
    for cluster in clusters:
        for group in cluster["node_groups"]:
            row = f'data-cluster="{cluster["name"]}" data-flavor="{group["flavor"]}"'
            shown = cells(page.text, row)
            assert shown == {
                part: str(group[part]) for part in ("total", "allocated", "idle", "down")
            }, (row, shown, group)
            for part in ("allocated", "idle", "down"):
                label = f"{cluster['name']} · {group['flavor']}"
                assert re.search(
                    rf'data-label="{re.escape(label)}" data-part="{part.capitalize()}" '
                    rf'data-value="{group[part]}"',
                    page.text,
                )
    daejeon = page.text.index('data-cluster="national-daejeon" data-flavor="h100-80g"')
    row = page.text[daejeon : page.text.index("</tr>", daejeon)]
    assert "capacity-down" in row  # a class and words, not colour alone
    assert "⚠ down" in row
    assert "capacity-idle" in row
    assert ">idle<" in row
    assert "A fresh cluster per job" in page.text  # kube-pangyo's tenancy
    assert 'class="chart-segment chart-down"' in page.text


def test_a_burst_target_is_declared_and_its_budgets_set_and_lifted(demo: Demo) -> None:
    csrf = as_admin(demo)
    flavors = sorted(each["name"] for each in api(demo, "/flavors"))
    nodes = ["2" if flavor == "h100-80g" else "" for flavor in flavors]
    gpus = ["8" if flavor == "h100-80g" else "" for flavor in flavors]
    post(
        demo,
        "/admin/clusters",
        csrf=csrf,
        name="kt-cloud",
        backend="kubernetes",
        site="domestic_cloud",
        address="kt-cloud-context",
        price_multiplier="1.5",
        tenancy="shared",
        provisioning_deadline_seconds="600",
        inventory_flavor=flavors,
        inventory_nodes=nodes,
        inventory_gpus_per_node=gpus,
        budget_program=["startups", "universities"],
        budget_credits=["1000", ""],
    )
    declared = {each["name"]: each for each in api(demo, "/clusters")}["kt-cloud"]
    assert declared["backend"] == "kubernetes"
    assert declared["site"] == "domestic_cloud"
    assert declared["address"] == "kt-cloud-context"
    assert declared["price_multiplier"] == "1.5"
    assert declared["provisioning_deadline_seconds"] == 600
    assert declared["burst_budgets"] == {"startups": "1000.0"}
    assert [(g["flavor"], g["nodes"], g["gpus_per_node"]) for g in declared["node_groups"]] == [
        ("h100-80g", 2, 8)
    ]

    post(
        demo,
        "/admin/clusters/kt-cloud/burst-budgets",
        csrf=csrf,
        program="universities",
        credits="2500.5",
    )
    post(demo, "/admin/clusters/kt-cloud/burst-budgets", csrf=csrf, program="startups", credits="")
    declared = {each["name"]: each for each in api(demo, "/clusters")}["kt-cloud"]
    assert declared["burst_budgets"] == {"universities": "2500.5"}
    page = demo.client.get("/admin/clusters")
    assert 'data-program="universities"' in page.text
    assert "2,500.5 credits" in page.text

    refused = demo.client.post(
        "/admin/clusters/kt-cloud/burst-budgets",
        data={"csrf": csrf, "program": "kaist", "credits": "5"},
    )
    assert refused.status_code == 422
    assert "The burst budget was not set" in refused.text


def test_a_cluster_the_api_would_refuse_is_refused_with_the_form_kept(demo: Demo) -> None:
    csrf = as_admin(demo)
    flavors = sorted(each["name"] for each in api(demo, "/flavors"))
    form = {
        "csrf": csrf,
        "name": "lonely",
        "backend": "ray",
        "site": "national",
        "inventory_flavor": flavors,
        "inventory_nodes": ["" for _ in flavors],
        "inventory_gpus_per_node": ["" for _ in flavors],
    }
    empty = demo.client.post("/admin/clusters", data=form)
    assert empty.status_code == 422
    assert "inventory: List should have at least 1 item" in empty.text
    assert 'value="lonely"' in empty.text
    national_deadline = demo.client.post(
        "/admin/clusters",
        data={
            **form,
            "inventory_nodes": ["1" for _ in flavors],
            "inventory_gpus_per_node": ["8" for _ in flavors],
            "provisioning_deadline_seconds": "60",
        },
    )
    assert national_deadline.status_code == 422
    assert "only a burst target" in national_deadline.text
    per_job_ray = demo.client.post(
        "/admin/clusters",
        data={
            **form,
            "inventory_nodes": ["1" for _ in flavors],
            "inventory_gpus_per_node": ["8" for _ in flavors],
            "tenancy": "per_job",
        },
    )
    assert per_job_ray.status_code == 422
    assert "per_job tenancy needs a Kubernetes backend" in per_job_ray.text
    assert "lonely" not in {each["name"] for each in api(demo, "/clusters")}


def test_the_auditor_reads_every_page_but_is_shown_no_form(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[AUDITOR])
    for path in PAGES:
        page = demo.client.get(path)
        assert page.status_code == 200, path
        assert 'method="post" action="/admin' not in page.text, path
        assert "only an admin changes it" in page.text
    clusters = demo.client.get("/admin/clusters").text
    assert "Shown to admins only" in clusters  # where a cluster is reached is an admin's


@pytest.mark.parametrize("user", ["jaehyun.kim", "jiwoo.jung"])
def test_anyone_else_is_refused_every_page(demo: Demo, user: str) -> None:
    sign_in(demo.client, demo.tokens[user])
    for path in PAGES:
        page = demo.client.get(path)
        assert page.status_code == 403, path
        assert "Ministry" not in page.text
    assert demo.client.get("/admin/funders?format=csv").status_code == 403


def test_the_pages_speak_korean(demo: Demo) -> None:
    as_admin(demo)
    demo.client.cookies.set("gpupool_lang", "ko")
    for path in PAGES:
        assert demo.client.get(path).status_code == 200, path
    page = demo.client.get("/admin/clusters")
    assert '<html lang="ko">' in page.text
    assert "클러스터" in page.text
    assert "유휴" in page.text
    assert "중앙부처" in demo.client.get("/admin/funders").text
