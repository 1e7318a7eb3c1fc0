"""A program manager's job in Chromium: open the program, change a project's share, preview the
entitled shares it would make (the fair-share engine's, and nothing saved yet), save it and find
it in the API; a researcher gets no editor and a forged change is refused. Each page is checked
with axe-core and screenshotted (``programs-*.png``)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.cases.programs import entitlements
from tests.portal.pages.browser import LivePortal, check_accessibility, screenshot
from tests.portal.pages.conftest import PageAs

MANAGER = "jaehyun.kim"  # program manager of universities
RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp, a project of universities
PROGRAM = "universities"
PROJECT = "kaist-nlp"
PROJECT_TITLE = "Korean LLM instruction tuning"


def api_accounts(portal: LivePortal) -> dict[str, dict[str, Any]]:
    listed = httpx.get(f"{portal.url}/api/v1/accounts", headers=portal.headers(), timeout=10)
    assert listed.status_code == 200, listed.text
    return {each["name"]: each for each in listed.json()["accounts"]}


def tree_of(found: dict[str, dict[str, Any]]) -> AccountTree:
    return AccountTree.of(
        Account(
            name=each["name"],
            kind=AccountKind(each["kind"]),
            parent=each["parent"],
            share=each["share"],
        )
        for each in found.values()
    )


def entitled_after(page: Page, account: str, part: str) -> float:
    cell = page.locator(f'tr[data-account="{account}"] td[data-entitled="{part}"]')
    value = cell.get_attribute("data-after")
    assert value is not None, f"no previewed {part} share for {account}"
    return float(value)


def test_a_program_manager_previews_and_saves_a_share(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    page = page_as(MANAGER)
    page.goto(f"{live_portal.url}/programs")
    row = page.locator(f'tr[data-program="{PROGRAM}"]')
    expect(row).to_be_visible()
    check_accessibility(page)
    screenshot(page, "programs-list")

    row.get_by_role("link").click()
    page.wait_for_url(f"{live_portal.url}/programs/{PROGRAM}")
    expect(page.locator("svg#burn-down, svg[id^='burn-down']").first).to_be_visible()
    check_accessibility(page)
    screenshot(page, "programs-program")

    before = api_accounts(live_portal)
    share = page.get_by_label(f"Share of {PROJECT_TITLE}")
    share.fill(str(before[PROJECT]["share"] + 2))
    page.get_by_role("button", name="Preview").click()
    page.wait_for_url(f"{live_portal.url}/programs/{PROGRAM}/preview")
    expect(page.locator("#preview-notice")).to_contain_text("nothing is saved yet")

    new_share = before[PROJECT]["share"] + 2
    edited = tree_of(before)
    edited = edited.with_account(replace(edited[PROJECT], share=new_share))
    expected = entitlements(edited)
    for account in (PROJECT, "kaist-protein"):
        among = entitled_after(page, account, "among_siblings")
        overall = entitled_after(page, account, "overall")
        assert among == pytest.approx(expected[account].among_siblings)
        assert overall == pytest.approx(expected[account].overall)
    assert entitled_after(page, PROJECT, "among_siblings") == pytest.approx(3 / 4)
    expect(page.locator(f'tr[data-account="{PROJECT}"]')).to_have_class(re.compile("changed"))
    assert api_accounts(live_portal) == before  # a preview writes nothing
    check_accessibility(page)
    screenshot(page, "programs-preview")

    page.get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(rf".*/programs/{PROGRAM}\?saved=1$"))
    expect(page.get_by_role("status").first).to_contain_text("Saved: 1 accounts changed.")
    after = api_accounts(live_portal)
    assert after[PROJECT]["share"] == new_share
    assert {name: each for name, each in after.items() if name != PROJECT} == {
        name: each for name, each in before.items() if name != PROJECT
    }


def test_the_program_page_reads_on_a_phone(page_as: PageAs, live_portal: LivePortal) -> None:
    page = page_as(MANAGER, "phone")
    page.goto(f"{live_portal.url}/programs/{PROGRAM}")
    expect(page.get_by_role("heading", name="Account tree")).to_be_visible()
    check_accessibility(page)
    screenshot(page, "programs-program-phone")


def test_a_researcher_gets_no_editor_and_a_forged_change_is_refused(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    page = page_as(RESEARCHER)
    response = page.goto(f"{live_portal.url}/programs/{PROGRAM}")
    assert response is not None
    assert response.status == 404
    assert page.locator("#tree-form").count() == 0
    assert page.locator('input[name="share"]').count() == 0

    before = api_accounts(live_portal)
    page.goto(f"{live_portal.url}/")
    csrf = page.locator('input[name="csrf"]').first.get_attribute("value")
    assert csrf
    answer = page.request.post(
        f"{live_portal.url}/programs/{PROGRAM}",
        form={
            "csrf": csrf,
            "account": PROJECT,
            "share": "50",
            "guaranteed": "0",
            "borrowing": "",
            "budget": "",
        },
        max_redirects=0,
    )
    assert answer.status == 403
    assert api_accounts(live_portal) == before
