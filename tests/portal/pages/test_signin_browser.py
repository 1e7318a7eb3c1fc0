"""Signing in, in a real browser: the sign-in and invitation pages pass axe-core on a phone and a
desktop, an invitation link signs a demo persona in and lands on their home page, a form on
another site cannot sign anyone in, and the pages carry their security headers. Screenshots:
``signin-<viewport>.png``, ``invitation-<viewport>.png`` and ``home-researcher.png``."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Page

from tests.portal.pages.browser import LivePortal, check_accessibility, screenshot
from tests.portal.pages.conftest import PageAs

RESEARCHER = "jiwoo.jung"  # a demo persona: researcher in kaist-nlp and hanbit-robot-policy
ATTACKER = "http://attacker.example"


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_the_signin_page_passes_axe(
    page_as: PageAs, live_portal: LivePortal, viewport: str
) -> None:
    page = page_as(None, viewport)
    response = page.goto(f"{live_portal.url}/signin")
    assert response is not None
    assert response.status == 200
    assert page.locator("h1").first.is_visible()
    check_accessibility(page)
    screenshot(page, f"signin-{viewport}")


@pytest.mark.parametrize("viewport", ["phone", "desktop"])
def test_the_invitation_page_passes_axe_and_spends_nothing(
    page_as: PageAs, live_portal: LivePortal, viewport: str
) -> None:
    page = page_as(None, viewport)
    link = live_portal.invitation(RESEARCHER)
    page.goto(link)
    button = page.get_by_role("button", name=f"Sign in as {RESEARCHER}")
    assert button.is_visible()
    check_accessibility(page)
    screenshot(page, f"invitation-{viewport}")
    page.reload()  # showing it used nothing up: a link preview must not spend it
    assert button.is_visible()


def test_an_invitation_link_signs_its_persona_in_once(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    page = page_as(None)
    link = live_portal.invitation(RESEARCHER)
    page.goto(link)
    page.get_by_role("button", name=f"Sign in as {RESEARCHER}").click()
    page.wait_for_url(f"{live_portal.url}/")

    page.goto(f"{live_portal.url}/signin")
    assert f"Signed in as {RESEARCHER}" in page.inner_text("main")

    other = page_as(None)  # someone else following the same link later
    response = other.goto(link)
    assert response is not None
    assert response.status == 400
    assert other.get_by_role("button", name=f"Sign in as {RESEARCHER}").count() == 0


def test_signing_in_lands_on_a_home_page(page_as: PageAs, live_portal: LivePortal) -> None:
    page = page_as(None)
    page.goto(live_portal.invitation(RESEARCHER))
    with page.expect_response(f"{live_portal.url}/") as landing:
        page.get_by_role("button", name=f"Sign in as {RESEARCHER}").click()
    assert landing.value.status == 200
    assert page.url == f"{live_portal.url}/"
    assert page.locator("h1").first.is_visible()
    check_accessibility(page)
    screenshot(page, "home-researcher")


def attack(page: Page, portal: LivePortal, fields: str) -> int:
    """The status of a POST to the portal's ``/auth/token`` that a page on another site makes
    with the form ``fields``, carrying the admin token the attacker holds."""
    form = (
        f'<!doctype html><html lang="en"><title>prize</title><body>'
        f'<form method="post" action="{portal.url}/auth/token">'
        f'<input name="token" value="{portal.admin_token}">{fields}'
        '<button type="submit">Claim</button></form></body></html>'
    )
    page.route(f"{ATTACKER}/**", lambda route: route.fulfill(body=form, content_type="text/html"))
    page.goto(f"{ATTACKER}/prize")
    with page.expect_response(f"{portal.url}/auth/token") as answer:
        page.get_by_role("button", name="Claim").click()
    return answer.value.status


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        pytest.param("", 422, id="no-csrf"),
        pytest.param('<input name="csrf" value="guessed">', 403, id="guessed-csrf"),
    ],
)
def test_a_form_on_another_site_cannot_sign_the_browser_in(
    page_as: PageAs, live_portal: LivePortal, fields: str, status: int
) -> None:
    page = page_as(None)
    page.goto(f"{live_portal.url}/signin")  # the browser holds a session, and its CSRF value

    assert attack(page, live_portal, fields) == status

    page.goto(f"{live_portal.url}/signin")
    assert "Signed in as" not in page.inner_text("main")


@pytest.mark.parametrize("path", ["/signin", "/signin?invite=gpi_not-an-invitation"])
def test_the_signin_pages_send_the_security_headers(live_portal: LivePortal, path: str) -> None:
    answer = httpx.get(f"{live_portal.url}{path}", timeout=10)
    assert answer.headers["content-type"].startswith("text/html")
    policy = answer.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy
    assert "default-src 'none'" in policy or "default-src 'self'" in policy
    assert "'unsafe-eval'" not in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "no-store" in answer.headers["cache-control"]
    assert answer.headers["referrer-policy"] == "no-referrer"
