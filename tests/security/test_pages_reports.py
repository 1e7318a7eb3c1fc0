"""Attacks on the report pages, the ledger and the audit log: another program's accounts, spend
by funder and the audit log out of reach, a researcher kept off the reports, windows that would
overflow, and script in what the books hold. Each test fails if its hole reopens."""

from __future__ import annotations

import pytest

from quotas.clock import utc_now
from quotas.quantities import Credits
from tests.portal.conftest import Demo
from tests.portal.pages.sessions import sign_in

MANAGER = "jaehyun.kim"  # program manager of universities
OTHER_PROGRAM = "startups"
RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp and hanbit-robot-policy
HOSTILE = '<script>alert("x")</script>'

REPORTS = (
    "/reports",
    "/reports/fairshare",
    "/reports/utilisation",
    "/reports/spend",
    "/reports/wait-times",
)


@pytest.mark.parametrize("path", [*REPORTS, "/audit"])
def test_a_researcher_is_refused_the_reports_and_the_audit_log(demo: Demo, path: str) -> None:
    sign_in(demo.client, demo.tokens[RESEARCHER])
    page = demo.client.get(path)
    assert page.status_code == 403
    assert "<table" not in page.text
    assert "<svg" not in page.text


def test_a_program_manager_cannot_reach_another_programs_accounts(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[MANAGER])
    chart = demo.client.get(f"/reports/fairshare?node={OTHER_PROGRAM}")
    assert chart.status_code == 404
    assert 'data-account="startups"' not in chart.text
    table = demo.client.get("/reports/fairshare")
    assert 'data-account="startups"' not in table.text
    assert 'data-account="national"' not in table.text  # the pool's row is the admins'
    assert demo.client.get("/reports/spend?by=funder").status_code == 403
    assert "startups" not in demo.client.get("/reports/spend?by=program").text
    assert "startups" not in demo.client.get("/reports/spend?format=csv").text
    assert demo.client.get(f"/ledger?account={OTHER_PROGRAM}").status_code == 404
    assert demo.client.get("/audit").status_code == 403


def test_pages_take_no_bearer_token(demo: Demo) -> None:
    for path in (*REPORTS, "/ledger", "/audit"):
        answer = demo.client.get(path, headers=demo.headers("admin"), follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/signin"


@pytest.mark.parametrize("path", [*REPORTS, "/ledger", "/audit"])
def test_report_pages_change_nothing_and_take_no_posts(demo: Demo, path: str) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    assert demo.client.post(path, data={"csrf": csrf}).status_code == 405


@pytest.mark.parametrize(
    "window",
    ["since=99999999999999d", "since=0001-01-01T00:00:00%2B14:00", "until=1d&since=2d10s"],
)
def test_windows_that_cannot_be_kept_are_refused_not_crashed(demo: Demo, window: str) -> None:
    sign_in(demo.client, demo.admin_token)
    for path in ("/reports/utilisation", "/reports/wait-times", "/ledger"):
        answer = demo.client.get(f"{path}?{window}")
        assert answer.status_code in (200, 422), (path, window, answer.text[:300])


def test_script_in_the_books_and_in_filters_is_shown_as_text(demo: Demo) -> None:
    with demo.books() as books:
        period = books.current_period().name
        books.adjust("kaist-nlp", period, Credits.of(-1), "admin", HOSTILE)
        books.audit.record(utc_now(), HOSTILE, "budget.set", HOSTILE, None, {"why": HOSTILE})
    sign_in(demo.client, demo.admin_token)
    for path in (
        "/ledger",
        f"/audit?actor={HOSTILE}",
        f"/audit?action={HOSTILE}",
        f"/ledger?period={HOSTILE}",
        f"/reports/spend?period={HOSTILE}",
        f"/reports/utilisation?since={HOSTILE}",
    ):
        page = demo.client.get(path)
        assert HOSTILE not in page.text, path
    assert "&lt;script&gt;" in demo.client.get("/ledger").text
    assert "&lt;script&gt;" in demo.client.get("/audit").text
