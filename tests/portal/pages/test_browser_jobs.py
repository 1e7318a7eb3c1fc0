"""A researcher's day in Chromium: submit a job from the form, watch it run and its output
appear without reloading, cancel another, read the pages in Korean, and fail to reach another
organization's job. Each page is checked with axe-core and screenshotted."""

from __future__ import annotations

import re
import sys

import httpx
from playwright.sync_api import expect

from tests.portal.pages.browser import LivePortal, check_accessibility, screenshot
from tests.portal.pages.conftest import PageAs

RESEARCHER = "jiwoo.jung"  # kaist-nlp, hanbit-robot-policy
OUTSIDER = "hyejin.kang"  # seoulvision-doc-ocr only
LIVE_TIMEOUT_MS = 60_000


def test_a_job_submitted_from_the_form_runs_and_its_output_appears(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    page = page_as(RESEARCHER)
    page.goto(f"{live_portal.url}/")
    check_accessibility(page)
    screenshot(page, "home-researcher")

    page.get_by_role("link", name="Submit a job").first.click()
    page.wait_for_url(f"{live_portal.url}/jobs/new")
    page.get_by_label("Project").select_option("kaist-nlp")
    page.get_by_label("Job name").fill("browser-run")
    command = f"{sys.executable} -c \"import time; print('epoch 1 loss 0.42'); time.sleep(2)\""
    page.get_by_label("Command to run").fill(command)
    page.get_by_label("GPUs").fill("2")
    page.get_by_label("Time limit").fill("10m")
    page.get_by_label("h100-80g").check()
    # the quote follows the form without a reload: 2 GPUs x 10 minutes of h100 at 1 credit/GPU-h
    expect(page.locator('#quote tr[data-flavor="h100-80g"] [data-credits]')).to_have_attribute(
        "data-credits", "0.334"
    )
    check_accessibility(page)
    screenshot(page, "submit")
    page.get_by_role("button", name="Submit", exact=True).click()
    page.wait_for_url(re.compile(r".*/jobs/gp-[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]

    # state and output update in place
    expect(page.locator("#live [data-state]")).to_have_attribute(
        "data-state", "succeeded", timeout=LIVE_TIMEOUT_MS
    )
    expect(page.locator("#log")).to_contain_text("epoch 1 loss 0.42", timeout=LIVE_TIMEOUT_MS)
    job = live_portal.job(job_id)
    assert job.spec.gpus == 2
    assert job.spec.flavors == ("h100-80g",)
    charged = page.locator("[data-charged]").get_attribute("data-charged")
    api = httpx.get(
        f"{live_portal.url}/api/v1/jobs/{job_id}", headers=live_portal.headers(RESEARCHER)
    ).json()
    assert charged == api["charged"]
    check_accessibility(page)
    screenshot(page, "job-succeeded")


def test_cancelling_a_waiting_job_and_the_list_on_a_phone(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    page = page_as(RESEARCHER, "phone")
    page.goto(f"{live_portal.url}/jobs/new")
    page.get_by_label("Job name").fill("never-fits")
    page.get_by_label("Command to run").fill("sleep 600")
    page.get_by_label("rngd-48g").check()  # the demo's NPU cluster is not reachable here: it waits
    page.get_by_role("button", name="Submit", exact=True).click()
    page.wait_for_url(re.compile(r".*/jobs/gp-[0-9a-f]+$"))
    job_id = page.url.rsplit("/", 1)[1]
    page.get_by_role("button", name="Cancel this job").click()
    expect(page.locator("#live [data-state]")).to_have_attribute(
        "data-state", re.compile("cancelled|rejected"), timeout=LIVE_TIMEOUT_MS
    )
    assert live_portal.job(job_id).state.is_terminal
    page.goto(f"{live_portal.url}/jobs")
    expect(page.get_by_role("link", name="never-fits")).to_be_visible()
    check_accessibility(page)
    screenshot(page, "jobs-phone")


def test_the_pages_in_korean(page_as: PageAs, live_portal: LivePortal) -> None:
    page = page_as(RESEARCHER, locale="ko-KR")
    page.goto(f"{live_portal.url}/jobs/new")
    expect(page.get_by_role("heading", level=1)).to_have_text("작업 제출")
    assert page.locator("html").get_attribute("lang") == "ko"
    check_accessibility(page)
    screenshot(page, "submit-ko")
    page.get_by_role("button", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Submit a job")


def test_another_organizations_job_page_is_not_found(
    page_as: PageAs, live_portal: LivePortal
) -> None:
    submitted = httpx.post(
        f"{live_portal.url}/api/v1/jobs",
        headers=live_portal.headers(RESEARCHER),
        json={
            "project": "kaist-nlp",
            "name": "private-run",
            "entrypoint": "true",
            "flavors": ["rngd-48g"],
        },
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["job"]["id"]
    page = page_as(OUTSIDER)
    answer = page.goto(f"{live_portal.url}/jobs/{job_id}")
    assert answer is not None
    assert answer.status == 404
    assert "private-run" not in page.content()
    check_accessibility(page)
    screenshot(page, "job-not-found")
