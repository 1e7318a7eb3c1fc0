"""Projects and allocation requests, in a real browser: the pi seoyeon.lee drafts and submits a
request, the program manager jaehyun.kim approves it from the review queue, and the project's
page shows the balance the API gives. Each page passes axe-core. Screenshots:
``requests-new``, ``requests-request``, ``requests-review``, ``requests-list``,
``projects-list`` (desktop and phone) and ``projects-project`` among the test artifacts."""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
from playwright.sync_api import Page, expect

from tests.portal.pages.browser import LivePortal, check_accessibility, screenshot
from tests.portal.pages.conftest import PageAs

PI = "seoyeon.lee"  # pi of kaist-nlp and kaist-protein (program universities)
MANAGER = "jaehyun.kim"  # program manager of universities
PROJECT = "kaist-nlp"


def account(live_portal: LivePortal, user: str) -> dict[str, str]:
    answer = httpx.get(
        f"{live_portal.url}/api/v1/accounts/{PROJECT}", headers=live_portal.headers(user)
    )
    answer.raise_for_status()
    balances: dict[str, str] = answer.json()["balances"]
    return balances


def shown_balances(page: Page) -> dict[str, str]:
    box = page.locator("#project-balances")
    return {
        pocket: box.get_attribute(f"data-{pocket}") or ""
        for pocket in ("available", "held", "spent")
    }


def test_a_pi_requests_credits_and_the_program_manager_approves_them(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    before = Decimal(account(live_portal, PI)["available"])

    pi = page_as(PI)
    pi.goto(f"{live_portal.url}/requests/new?project={PROJECT}")
    expect(pi.get_by_role("heading", name="Request credits")).to_be_visible()
    check_accessibility(pi)
    screenshot(pi, "requests-new")
    pi.get_by_label("Project").select_option(PROJECT)
    pi.get_by_label("Credits", exact=True).fill("6000")
    pi.get_by_label("Justification").fill("Evaluation of the 13B model on 12 Korean benchmarks")
    pi.get_by_label("Tranches (percent)").fill("50,50")
    pi.get_by_role("button", name="Save as draft").click()
    pi.wait_for_url(re.compile(r".*/requests/\d+$"))
    request_path = pi.url.removeprefix(live_portal.url)
    expect(pi.locator("h1 [data-state]")).to_have_attribute("data-state", "draft")
    pi.get_by_role("button", name="Submit for review").click()
    expect(pi.locator("h1 [data-state]")).to_have_attribute("data-state", "submitted")
    expect(pi.get_by_text("reviews in universities are done by", exact=False)).to_have_count(0)
    expect(pi.locator("main")).to_contain_text(MANAGER)  # who reviews it instead
    check_accessibility(pi)

    manager = page_as(MANAGER)
    manager.goto(f"{live_portal.url}/requests")
    manager.get_by_role("link", name="To review").click()
    expect(manager.get_by_role("heading", name="Requests to review")).to_be_visible()
    check_accessibility(manager)
    screenshot(manager, "requests-review")
    request_id = request_path.removeprefix("/requests/")
    manager.get_by_role("link", name=f"#{request_id}", exact=True).click()
    manager.wait_for_url(f"{live_portal.url}{request_path}")
    manager.get_by_label("Reason").fill("A sound plan; half now, half after the first results")
    manager.get_by_role("button", name="Approve").click()
    expect(manager.locator("h1 [data-state]")).to_have_attribute("data-state", "approved")
    expect(manager.get_by_role("button", name="Release")).to_have_count(1)  # the second tranche
    check_accessibility(manager)
    screenshot(manager, "requests-request")

    pi.goto(f"{live_portal.url}/projects/{PROJECT}")
    api = account(live_portal, PI)
    assert shown_balances(pi) == {pocket: api[pocket] for pocket in ("available", "held", "spent")}
    assert Decimal(api["available"]) - before == Decimal(3000)  # the first tranche, 50%
    expect(pi.locator("svg.chart")).to_have_count(1)
    expect(pi.locator("#members")).to_contain_text("jiwoo.jung")
    check_accessibility(pi)
    screenshot(pi, "projects-project")


def test_the_project_and_request_lists_pass_axe(page_as: PageAs, live_portal: LivePortal) -> None:
    for viewport in ("desktop", "phone"):
        page = page_as(PI, viewport)
        page.goto(f"{live_portal.url}/projects")
        expect(page.locator(f'tr[data-project="{PROJECT}"]')).to_have_count(1)
        check_accessibility(page)
        screenshot(page, f"projects-list-{viewport}")
    page = page_as(PI)
    page.goto(f"{live_portal.url}/requests")
    expect(page.get_by_role("heading", name="Allocation requests")).to_be_visible()
    check_accessibility(page)
    screenshot(page, "requests-list")
