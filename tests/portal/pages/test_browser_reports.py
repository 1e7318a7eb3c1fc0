"""The reports, the ledger and the audit log in a real browser, after a real job ran on the
session's Ray cluster (so spend, utilisation and waits are not zero): as the admin, each report's
table cells and chart marks hold the numbers ``GET /api/v1/reports/...`` gives; the auditor
reads the ledger and the audit log; a program manager sees only their program; a researcher is
refused; in Korean the headings change and the numbers do not. Every page passes axe-core.
Screenshots: ``reports-<page>.png`` (``reports-fairshare-phone-ko.png`` on a phone)."""

from __future__ import annotations

import sys
from decimal import Decimal
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from jobs.model import JobState
from tests.portal.pages.browser import LivePortal, check_accessibility, screenshot
from tests.portal.pages.conftest import PageAs
from tests.waiting import eventually

RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp (universities) and hanbit-robot-policy
MANAGER = "jaehyun.kim"  # program manager of universities
AUDITOR = "yuna.shin"

ROWS = """(rows) => rows.map((row) => [
  row.dataset.account ?? row.dataset.cluster + "/" + row.dataset.flavor,
  Object.fromEntries([...row.querySelectorAll("[data-field]")]
    .map((cell) => [cell.dataset.field, cell.dataset.value])),
])"""
MARKS = """(marks) => marks.map((mark) => [mark.dataset.label ?? "", mark.dataset.value])"""


@pytest.fixture(scope="module")
def ran(live_portal: LivePortal) -> str:
    """A short job of jiwoo.jung's on kaist-nlp, run to its end on Ray and charged."""
    answer = httpx.post(
        f"{live_portal.url}/api/v1/jobs",
        headers=live_portal.headers(RESEARCHER),
        json={
            "project": "kaist-nlp",
            "name": "report-me",
            "entrypoint": f"{sys.executable} -c \"import time; time.sleep(3); print('done')\"",
            "gpus": 2,
            "flavors": ["h100-80g"],
            "time_limit": "5m",
        },
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    job_id: str = answer.json()["job"]["id"]
    eventually(f"{job_id} to end", lambda: live_portal.job(job_id).state.is_terminal, 90)
    assert live_portal.job(job_id).state is JobState.SUCCEEDED

    def charged() -> bool:
        spend = api(live_portal, "/reports/spend?by=project")
        return any(row["name"] == "kaist-nlp" for row in spend["rows"])

    eventually("the job's charges", charged, 30)
    return job_id


def api(portal: LivePortal, path: str, user: str = "admin") -> Any:
    answer = httpx.get(f"{portal.url}/api/v1{path}", headers=portal.headers(user), timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def table(page: Page, selector: str) -> dict[str, dict[str, str]]:
    return dict(page.eval_on_selector_all(f"{selector} tbody tr", ROWS))


def marks(page: Page, selector: str) -> list[tuple[str, str]]:
    return [tuple(each) for each in page.eval_on_selector_all(selector, MARKS)]


def window(page: Page) -> dict[str, str]:
    shown = page.locator("p.window")
    return {
        "since": shown.get_attribute("data-since") or "",
        "until": shown.get_attribute("data-until") or "",
    }


def test_the_admin_reads_each_report_as_the_api_gives_it(
    page_as: PageAs, live_portal: LivePortal, ran: str
) -> None:
    page = page_as("admin")
    url = live_portal.url

    page.goto(f"{url}/reports")
    check_accessibility(page)
    screenshot(page, "reports-index")

    page.get_by_role("link", name="Fair share").first.click()
    report = api(live_portal, "/reports/fairshare")
    shown = table(page, "#fairshare-table")
    assert list(shown) == [row["name"] for row in report["rows"]]
    for row in report["rows"]:
        assert float(shown[row["name"]]["norm_share"]) == row["norm_share"]
        assert float(shown[row["name"]]["usage"]) == pytest.approx(row["usage"], rel=1e-3)
    assert float(shown["kaist-nlp"]["usage"]) > 0
    entitled = marks(page, "#fs-universities .chart-entitled .chart-point")
    assert {float(value) for _, value in entitled} == {
        next(r["norm_share"] for r in report["rows"] if r["name"] == "universities")
    }
    check_accessibility(page)
    screenshot(page, "reports-fairshare")

    page.goto(f"{url}/reports/utilisation")
    utilisation = api(live_portal, "/reports/utilisation?" + str(httpx.QueryParams(window(page))))
    shown = table(page, "#utilisation-table")
    for row in utilisation["rows"]:
        cells = shown[f"{row['cluster']}/{row['flavor']}"]
        for field in ("total_gpu_hours", "allocated_gpu_hours", "idle_gpu_hours"):
            assert float(cells[field]) == row[field]
        bars = marks(page, f"#util-{row['cluster']}-{row['flavor']} .chart-allocated[data-value]")
        daily = sum(float(value) for _, value in bars)
        assert daily == pytest.approx(row["allocated_gpu_hours"], abs=0.01)
    assert any(row["allocated_gpu_hours"] > 0 for row in utilisation["rows"])
    check_accessibility(page)
    screenshot(page, "reports-utilisation")

    page.goto(f"{url}/reports/spend?by=project")
    spend = api(live_portal, "/reports/spend?by=project")
    bars = marks(page, "#spend-chart .chart-bar")
    assert [Decimal(value) for _, value in bars] == [Decimal(r["credits"]) for r in spend["rows"]]
    assert dict(bars)["kaist-nlp"] != "0"
    funders = api(live_portal, "/reports/spend?by=funder")["rows"]
    tree = page.eval_on_selector_all(
        "#spend-tree tr[data-kind=funder]",
        "(rows) => rows.map((r) => [r.dataset.name,"
        " r.querySelector('[data-field=credits]').dataset.value])",
    )
    assert {name: Decimal(v) for name, v in tree} == {
        row["name"]: Decimal(row["credits"]) for row in funders
    }
    check_accessibility(page)
    screenshot(page, "reports-spend")

    page.goto(f"{url}/reports/wait-times")
    waits = api(live_portal, "/reports/wait-times?" + str(httpx.QueryParams(window(page))))
    assert waits["rows"]
    shown = dict(
        page.eval_on_selector_all(
            "#wait-table tbody tr",
            "(rows) => rows.map((r) => [r.dataset.program, Object.fromEntries("
            "[...r.querySelectorAll('[data-field]')].map((c) => [c.dataset.field,"
            " c.dataset.value]))])",
        )
    )
    bars = marks(page, "#wait-chart .chart-bar")
    for row in waits["rows"]:
        assert float(shown[row["program"]]["p90_seconds"]) == row["p90_seconds"]
    assert [float(value) for _, value in bars] == [
        row[f"p{p}_seconds"] for row in waits["rows"] for p in (50, 90, 99)
    ]
    check_accessibility(page)
    screenshot(page, "reports-wait-times")


def test_in_korean_on_a_phone_the_headings_change_and_the_numbers_do_not(
    page_as: PageAs, live_portal: LivePortal, ran: str
) -> None:
    page = page_as("admin", "phone")
    page.goto(f"{live_portal.url}/reports/fairshare")
    english = table(page, "#fairshare-credits")
    page.get_by_role("button", name="한국어").click()
    page.wait_for_load_state()
    assert page.locator("h1").inner_text() == "공정 배분"
    assert page.locator("#fs-credits-heading").inner_text() == "기간 크레딧"
    assert table(page, "#fairshare-credits") == english
    check_accessibility(page)
    screenshot(page, "reports-fairshare-phone-ko")


def test_the_auditor_reads_the_ledger_and_the_audit_log(
    page_as: PageAs, live_portal: LivePortal, ran: str
) -> None:
    page = page_as(AUDITOR)
    page.goto(f"{live_portal.url}/ledger?kind=charge")
    total = api(live_portal, "/ledger?kind=charge&limit=1", AUDITOR)["total"]
    assert total > 0
    assert page.locator("#ledger-table").get_attribute("data-total") == str(total)
    assert ran in page.inner_text("#ledger-table")
    check_accessibility(page)
    screenshot(page, "reports-ledger")

    page.goto(f"{live_portal.url}/audit")
    total = api(live_portal, "/audit?limit=1", AUDITOR)["total"]
    assert page.locator("#audit-table").get_attribute("data-total") == str(total)
    page.get_by_label("Action").fill("role.grant")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit?*action=role.grant*")
    actions = page.locator("#audit-table tbody tr td:nth-child(4)").all_inner_texts()
    assert actions
    assert set(actions) == {"role.grant"}
    check_accessibility(page)
    screenshot(page, "reports-audit")


def test_a_program_manager_sees_only_their_program_and_a_researcher_none(
    page_as: PageAs, live_portal: LivePortal, ran: str
) -> None:
    page = page_as(MANAGER)
    page.goto(f"{live_portal.url}/reports/spend")
    names = page.eval_on_selector_all(
        "#spend-tree tbody tr", "(rs) => rs.map((r) => r.dataset.name)"
    )
    assert names[0] == "universities"
    assert "startups" not in names
    page.goto(f"{live_portal.url}/reports/fairshare")
    accounts = list(table(page, "#fairshare-table"))
    assert accounts == [
        row["name"] for row in api(live_portal, "/reports/fairshare", MANAGER)["rows"]
    ]
    assert "startups" not in accounts
    check_accessibility(page)

    researcher = page_as(RESEARCHER)
    for path in ("/reports", "/reports/fairshare", "/reports/spend", "/audit"):
        response = researcher.goto(f"{live_portal.url}{path}")
        assert response is not None
        assert response.status == 403
    check_accessibility(researcher)
