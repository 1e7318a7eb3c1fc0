"""People and tokens, in a real browser: an admin invites a new person, who signs in with the
link the page shows once, and grants her the auditor role; a researcher makes a read-only token,
uses it against the API and revokes it. Each page passes axe-core. Screenshots:
``people-admin``, ``people-invited``, ``tokens-made``, ``tokens`` and ``tokens-phone``."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page

from tests.portal.pages.browser import LivePortal, check_accessibility, screenshot
from tests.portal.pages.conftest import PageAs

NEWCOMER = "mina.seo"
RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp and hanbit-robot-policy


def api(portal: LivePortal, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{portal.url}/api/v1", headers={"Authorization": f"Bearer {token}"}
    )


def roles_of(portal: LivePortal, user: str) -> list[str]:
    with api(portal, portal.admin_token) as client:
        listed = client.get("/users", params={"limit": 200})
    assert listed.status_code == 200, listed.text
    return next(each["roles"] for each in listed.json()["items"] if each["name"] == user)


def open_people(page: Page, portal: LivePortal) -> None:
    page.goto(f"{portal.url}/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="People").click()
    page.wait_for_url(f"{portal.url}/admin/people")


def test_an_admin_invites_a_new_person_who_signs_in_and_is_made_an_auditor(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    admin = page_as("admin")
    open_people(admin, live_portal)
    assert admin.get_by_role("heading", name="People and roles").is_visible()
    check_accessibility(admin)
    screenshot(admin, "people-admin")

    admin.get_by_label("User name").fill(NEWCOMER)
    admin.get_by_label("Display name (optional)").fill("Mina Seo")
    admin.get_by_role("button", name="Invite", exact=True).click()
    shown = admin.get_by_role("textbox", name="Sign-in link")
    link = shown.input_value()
    assert link.startswith(f"{live_portal.url}/signin?invite=gpi_")
    assert shown.get_attribute("readonly") is not None
    check_accessibility(admin)
    screenshot(admin, "people-invited")

    admin.goto(f"{live_portal.url}/admin/people")  # loading the page again
    assert admin.get_by_role("textbox", name="Sign-in link").count() == 0
    assert link.split("invite=")[1] not in admin.content()

    newcomer = page_as(None)  # a fresh browser context: her own browser
    newcomer.goto(link)
    newcomer.get_by_role("button", name=f"Sign in as {NEWCOMER}").click()
    newcomer.wait_for_url(f"{live_portal.url}/")
    assert newcomer.get_by_role("heading", name=f"Hello, {NEWCOMER}").is_visible()

    assert roles_of(live_portal, NEWCOMER) == []
    admin.locator("#pool-user").fill(NEWCOMER)
    admin.locator("#pool-role").select_option("auditor")
    admin.get_by_role("button", name="Grant", exact=True).click()
    admin.wait_for_url(f"{live_portal.url}/admin/people?done=role_granted")
    assert admin.get_by_role("status").filter(has_text="The role was granted.").is_visible()
    row = admin.locator(f'tr[id="user-{NEWCOMER}"]')
    assert "Auditor" in row.inner_text()
    assert roles_of(live_portal, NEWCOMER) == ["auditor"]


def test_a_researcher_makes_a_read_only_token_uses_it_and_revokes_it(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    page = page_as(RESEARCHER)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tokens").click()
    page.wait_for_url(f"{live_portal.url}/tokens")
    check_accessibility(page)

    page.get_by_label("Name", exact=True).fill("notebook")
    for scope in ("read", "jobs", "manage"):
        box = page.locator(f'input[name="scopes"][value="{scope}"]')
        box.set_checked(scope == "read")
    page.get_by_role("button", name="Make the token").click()
    secret = page.get_by_label("Token", exact=True).input_value()
    assert secret.startswith("gpp_")
    assert page.get_by_text("Copy this token now.").is_visible()
    check_accessibility(page)
    screenshot(page, "tokens-made")

    with api(live_portal, secret) as client:
        me = client.get("/me")
        assert me.status_code == 200
        assert me.json()["user"] == RESEARCHER
        assert me.json()["scopes"] == ["read"]
        submitted = client.post("/jobs", json={"project": "kaist-nlp", "entrypoint": "echo hi"})
        assert submitted.status_code == 403
        assert "jobs" in submitted.text

        page.goto(f"{live_portal.url}/tokens")
        assert secret not in page.content()
        row = page.get_by_role("row").filter(has_text="notebook")
        assert "read" in row.inner_text()
        row.get_by_role("button", name="Revoke the token notebook").click()
        page.wait_for_url(f"{live_portal.url}/tokens?done=token_revoked")
        assert page.get_by_role("row").filter(has_text="notebook").count() == 0
        check_accessibility(page)
        screenshot(page, "tokens")
        assert client.get("/me").status_code == 401

    phone = page_as(RESEARCHER, "phone", locale="ko-KR")
    phone.goto(f"{live_portal.url}/tokens")
    assert phone.get_by_role("heading", name="내 액세스 토큰").is_visible()
    check_accessibility(phone)
    screenshot(phone, "tokens-phone")
