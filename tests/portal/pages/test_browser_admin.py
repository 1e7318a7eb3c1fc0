"""The admin's catalogue, in a real browser: the admin adds a period and a flavor and publishes
a rate card pricing it, which the API then has in force; the clusters page shows the allocated,
idle and down GPUs the API counts while a job runs on the session's Ray cluster; the auditor
reads every page, is shown no form, and a POST of hers changes nothing. Each page passes
axe-core. Screenshots: ``admin-overview``, ``admin-periods``, ``admin-flavors``,
``admin-funders``, ``admin-clusters``, ``admin-clusters-phone`` and ``admin-clusters-auditor``."""

from __future__ import annotations

import re
import sys
from typing import Any

import httpx
from playwright.sync_api import Page

from jobs.model import JobState
from tests.portal.pages.browser import RAY_CLUSTER, LivePortal, check_accessibility, screenshot
from tests.portal.pages.conftest import PageAs
from tests.waiting import eventually

AUDITOR = "yuna.shin"  # the demo pool's auditor
RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp
NEW_FLAVOR = "h200-141g"
SECTIONS = "Administration sections"


def api(portal: LivePortal, path: str, user: str = "admin") -> Any:
    answer = httpx.get(f"{portal.url}/api/v1{path}", headers=portal.headers(user), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def open_section(page: Page, portal: LivePortal, name: str, path: str) -> None:
    page.get_by_role("navigation", name=SECTIONS).get_by_role("link", name=name).click()
    page.wait_for_url(f"{portal.url}{path}")


def number(text: str) -> int:
    found = re.search(r"\d[\d,]*", text)
    assert found, text
    return int(found.group().replace(",", ""))


def test_an_admin_adds_a_period_and_a_flavor_and_publishes_a_rate_card_pricing_it(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    page = page_as("admin")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    page.wait_for_url(f"{live_portal.url}/admin")
    assert page.get_by_role("heading", name="Pool administration").is_visible()
    check_accessibility(page)
    screenshot(page, "admin-overview")

    open_section(page, live_portal, "Allocation periods", "/admin/periods")
    page.get_by_label("Name").fill("2031-q1")
    page.get_by_label("Starts").fill("2031-01-01T00:00")
    page.get_by_label("Ends").fill("2031-04-01T00:00")
    page.get_by_role("button", name="Add the period").click()
    page.wait_for_url(f"{live_portal.url}/admin/periods")
    assert page.locator('tr[data-period="2031-q1"]').is_visible()
    assert "2031-q1" in [each["name"] for each in api(live_portal, "/periods")]
    check_accessibility(page)
    screenshot(page, "admin-periods")

    open_section(page, live_portal, "Flavors and rate cards", "/admin/flavors")
    form = page.locator('form[action="/admin/flavors"]')
    form.get_by_label("Name", exact=True).fill(NEW_FLAVOR)
    form.get_by_label("Memory (GB)").fill("141")
    form.get_by_label("Relative throughput").fill("1.6")
    form.get_by_label("Where the throughput was measured").fill("MLPerf Training v4.0")
    form.get_by_role("button", name="Add the flavor").click()
    page.wait_for_url(f"{live_portal.url}/admin/flavors")
    flavor_row = page.locator(f'tr[data-flavor="{NEW_FLAVOR}"]')
    assert "not priced yet" in flavor_row.inner_text()

    before = api(live_portal, "/rate-cards/current")
    card_form = page.locator('form[action="/admin/rate-cards"]')
    for flavor, rate in before["rates"].items():  # filled in with the latest card's rates
        assert card_form.get_by_label(flavor, exact=True).input_value() == rate
    card_form.get_by_label(NEW_FLAVOR, exact=True).fill("3.25")
    card_form.get_by_label("Note").fill("H200 joins the pool")
    card_form.get_by_role("button", name="Publish").click()
    page.wait_for_url(f"{live_portal.url}/admin/flavors#rate-cards")

    current = api(live_portal, "/rate-cards/current")
    assert current["version"] == before["version"] + 1
    assert current["rates"] == {**before["rates"], NEW_FLAVOR: "3.25"}
    assert current["note"] == "H200 joins the pool"
    newest = page.locator(f'tr[data-version="{current["version"]}"]')
    assert "In force" in newest.inner_text()
    assert newest.locator(f'td[data-flavor="{NEW_FLAVOR}"]').inner_text() == "3.25"
    assert "3.25" in flavor_row.inner_text()
    check_accessibility(page)
    screenshot(page, "admin-flavors")

    open_section(page, live_portal, "Funders and contributions", "/admin/funders")
    assert page.locator('tr[data-funder="msit"]').is_visible()
    check_accessibility(page)
    screenshot(page, "admin-funders")


def test_the_clusters_page_shows_the_gpus_the_api_counts_while_a_job_runs(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    submitted = httpx.post(
        f"{live_portal.url}/api/v1/jobs",
        headers=live_portal.headers(RESEARCHER),
        json={
            "project": "kaist-nlp",
            "name": "holds-a-gpu",
            "entrypoint": f'{sys.executable} -c "import time; time.sleep(120)"',
            "gpus": 1,
            "flavors": ["h100-80g"],
            "time_limit": "5m",
        },
        timeout=10,
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job"]["id"]
    try:
        eventually(
            f"job {job_id} to run",
            lambda: live_portal.job(job_id).state is JobState.RUNNING,
            timeout=60,
        )
        page = page_as("admin")
        page.goto(f"{live_portal.url}/admin/clusters")
        clusters = api(live_portal, "/clusters")
        shown_total = 0
        for cluster in clusters:
            for group in cluster["node_groups"]:
                row = page.locator(
                    f'tr[data-cluster="{cluster["name"]}"][data-flavor="{group["flavor"]}"]'
                )
                for part in ("total", "allocated", "idle", "down"):
                    cell = row.locator(f'td[data-part="{part}"]')
                    assert number(cell.inner_text()) == group[part], (cluster["name"], part)
                label = f"{cluster['name']} · {group['flavor']}"
                bar = page.locator(f'rect[data-label="{label}"][data-part="Allocated"]')
                assert bar.get_attribute("data-value") == str(group["allocated"])
                shown_total += group["allocated"]
        assert shown_total >= 1  # the job's GPU, on the Ray cluster
        ray = next(each for each in clusters if each["name"] == RAY_CLUSTER)
        assert sum(group["allocated"] for group in ray["node_groups"]) >= 1
        idle = page.locator('td[data-part="idle"].capacity-idle').first
        assert "idle" in idle.inner_text()  # a word beside the colour
        check_accessibility(page)
        screenshot(page, "admin-clusters")

        phone = page_as("admin", "phone")
        phone.goto(f"{live_portal.url}/admin/clusters")
        check_accessibility(phone)
        screenshot(phone, "admin-clusters-phone")
    finally:
        httpx.post(
            f"{live_portal.url}/api/v1/jobs/{job_id}/cancel",
            headers=live_portal.headers(RESEARCHER),
            timeout=10,
        )


def test_the_auditor_reads_every_page_sees_no_form_and_cannot_post(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    page = page_as(AUDITOR)
    for path in ("/admin", "/admin/funders", "/admin/periods", "/admin/flavors"):
        response = page.goto(f"{live_portal.url}{path}")
        assert response is not None
        assert response.status == 200, path
        assert page.locator('form[method="post"][action^="/admin"]').count() == 0, path
        assert "only an admin changes it" in page.inner_text("main")
    page.goto(f"{live_portal.url}/admin/clusters")
    assert page.locator('form[method="post"][action^="/admin"]').count() == 0
    assert "Shown to admins only" in page.inner_text("main")
    check_accessibility(page)
    screenshot(page, "admin-clusters-auditor")

    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    assert csrf  # the language switch's: a real value of her session
    funders = api(live_portal, "/funders")
    refused = page.request.post(
        f"{live_portal.url}/admin/funders",
        form={"csrf": csrf, "name": "sneaky", "display_name": "Sneaky", "kind": "ministry"},
        max_redirects=0,
    )
    assert refused.status == 403
    assert f"{AUDITOR} may not add funders" in refused.text()
    assert api(live_portal, "/funders") == funders
