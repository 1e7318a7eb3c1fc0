"""Every entry of every person's navigation leads to a page they may use: no link answers a
refusal, and the page it leads to is marked current."""

from __future__ import annotations

import re

import pytest

from tests.portal.conftest import AUDITOR, DEMO_USERS, Demo
from tests.portal.pages.sessions import sign_in

NAV = re.compile(r'<nav aria-label="Main">(.*?)</nav>', re.S)
LINK = re.compile(r'<a href="([^"]+)"')


@pytest.mark.parametrize("user", ["admin", AUDITOR, *DEMO_USERS])
def test_every_navigation_entry_answers(demo: Demo, user: str) -> None:
    token = demo.admin_token if user == "admin" else demo.tokens[user]
    sign_in(demo.client, token)
    home = demo.client.get("/")
    assert home.status_code == 200
    found = NAV.search(home.text)
    assert found, "the home page has no main navigation"
    links = LINK.findall(found.group(1))
    assert "/" in links
    assert "/jobs" in links
    for link in links:
        page = demo.client.get(link)
        assert page.status_code == 200, (user, link, page.text[-500:])
        current = NAV.search(page.text)
        assert current
        assert f'<a href="{link}" aria-current="page">' in current.group(1), (user, link)
