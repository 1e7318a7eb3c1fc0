"""The browser-test harness itself: the live portal really runs demo jobs on the session's Ray
cluster, ``page_as`` signs people in, axe-core fails a page under a strict Content-Security-Policy,
and without chromium the tests skip, or fail in CI."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from jobs.model import JobState
from tests.portal.pages import browser as harness
from tests.portal.pages.browser import LivePortal, check_accessibility, require_chromium
from tests.portal.pages.conftest import PageAs
from tests.waiting import eventually

RESEARCHER = "jiwoo.jung"


def test_a_job_submitted_in_the_demo_pool_runs_on_ray_and_logs(live_portal: LivePortal) -> None:
    headers = live_portal.headers(RESEARCHER)
    submitted = httpx.post(
        f"{live_portal.url}/api/v1/jobs",
        headers=headers,
        json={
            "project": "kaist-nlp",
            "name": "harness",
            "entrypoint": f"{sys.executable} -c \"print('hello from the live portal')\"",
            "gpus": 1,
            "flavors": ["h100-80g"],
            "time_limit": "5m",
        },
        timeout=10,
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job"]["id"]

    eventually(
        f"job {job_id} to end", lambda: live_portal.job(job_id).state.is_terminal, timeout=60
    )
    job = live_portal.job(job_id)
    assert job.state is JobState.SUCCEEDED, job
    assert job.placed is not None
    assert job.placed.cluster == harness.RAY_CLUSTER
    logs = httpx.get(f"{live_portal.url}/api/v1/jobs/{job_id}/logs", headers=headers, timeout=10)
    assert "hello from the live portal" in logs.text


@pytest.mark.parametrize("user", ["admin", "jaehyun.kim", "yuna.shin"])
def test_page_as_signs_in_through_the_signin_form(
    page_as: PageAs, live_portal: LivePortal, user: str
) -> None:
    page = page_as(user, "phone")
    page.goto(f"{live_portal.url}/signin")
    assert f"Signed in as {user}" in page.inner_text("main")


def test_axe_fails_a_page_with_serious_violations_despite_a_strict_csp(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    page = page_as(None)
    broken = '<!doctype html><html><title>broken</title><body><img src="/x.png"><button></button>'
    page.route(
        f"{live_portal.url}/broken",
        lambda route: route.fulfill(
            body=broken,
            content_type="text/html",
            headers={"Content-Security-Policy": "default-src 'none'; script-src 'self'"},
        ),
    )
    page.goto(f"{live_portal.url}/broken")

    with pytest.raises(pytest.fail.Exception) as failed:
        check_accessibility(page)

    message = str(failed.value)
    for rule in ("image-alt (critical)", "button-name (critical)", "html-has-lang (serious)"):
        assert rule in message


def test_without_chromium_the_browser_tests_skip_but_fail_in_ci(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(harness, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no /nonexistent/chromium"):
        require_chromium()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        require_chromium()
