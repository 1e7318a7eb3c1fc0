"""The job pages over the demo pool, through a test client signed in as a browser is."""

from __future__ import annotations

import re

from tests.portal.conftest import Demo
from tests.portal.pages.sessions import sign_in

RESEARCHER = "jiwoo.jung"
"""A researcher in kaist-nlp and hanbit-robot-policy."""


def submit(demo: Demo, csrf: str, **fields: str) -> str:
    form = {"csrf": csrf, "project": "kaist-nlp", "entrypoint": "python train.py", **fields}
    answer = demo.client.post("/jobs/new", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/jobs/gp-")
    return location.removeprefix("/jobs/")


def test_a_browser_without_a_session_is_sent_to_sign_in(demo: Demo) -> None:
    for path in ("/", "/jobs", "/jobs/new", "/jobs/gp-000000000000"):
        answer = demo.client.get(path, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/signin"


def test_signing_in_lands_on_the_home_page(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[RESEARCHER])
    home = demo.client.get("/")
    assert home.status_code == 200
    assert home.headers["content-type"].startswith("text/html")
    assert "Hello, jiwoo.jung" in home.text
    assert "kaist-nlp" in home.text  # the projects' balances


def test_the_form_submits_a_job_whose_page_shows_it_as_the_api_does(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    job_id = submit(demo, csrf, name="bert-small", gpus="2", time_limit="90m", flavors="a100-80g")
    api = demo.client.get(f"/api/v1/jobs/{job_id}", headers=demo.headers(RESEARCHER)).json()
    assert api["name"] == "bert-small"
    assert api["gpus"] == 2
    assert api["time_limit_seconds"] == 5400
    assert api["flavors"] == ["a100-80g"]
    assert api["submitter"] == RESEARCHER
    page = demo.client.get(f"/jobs/{job_id}")
    assert page.status_code == 200
    assert "bert-small" in page.text
    assert 'data-state="queued"' in page.text
    listed = demo.client.get("/jobs?state=queued")
    assert job_id in listed.text


def test_a_refused_submission_keeps_the_form_and_says_why(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    form = {
        "csrf": csrf,
        "project": "kaist-nlp",
        "entrypoint": "python train.py",
        "time_limit": "forever",
    }
    answer = demo.client.post("/jobs/new", data=form, follow_redirects=False)
    assert answer.status_code == 422
    assert "The job was not submitted" in answer.text
    assert "python train.py" in answer.text  # what was typed is kept
    jobs = demo.client.get("/api/v1/jobs", headers=demo.headers(RESEARCHER)).json()
    assert jobs["total"] == 0


def test_the_quote_part_prices_each_flavor_as_the_api_does(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[RESEARCHER])
    part = demo.client.get("/jobs/new/quote?project=kaist-nlp&gpus=2&time_limit=3h")
    assert part.status_code == 200
    api = demo.client.post(
        "/api/v1/quote", json={"gpus": 2, "time_limit": "3h"}, headers=demo.headers(RESEARCHER)
    ).json()
    shown = dict(re.findall(r'data-flavor="([^"]+)".*?data-credits="([^"]+)"', part.text))
    assert shown == {line["flavor"]: line["credits"] for line in api["lines"]}
    assert "data-available=" in part.text


def test_cancelling_from_the_job_page(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    job_id = submit(demo, csrf)
    answer = demo.client.post(f"/jobs/{job_id}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert answer.status_code == 303
    page = demo.client.get(f"/jobs/{job_id}")
    assert 'data-state="cancelled"' in page.text
    assert "Cancel this job" not in page.text


def test_pages_speak_korean_when_the_browser_prefers_it_and_switch_back(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    korean = demo.client.get("/jobs", headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.8"})
    assert '<html lang="ko">' in korean.text
    assert "작업" in korean.text
    switched = demo.client.post(
        "/language", data={"to": "en", "back": "/jobs", "csrf": csrf}, follow_redirects=False
    )
    assert switched.status_code == 303
    assert switched.headers["location"] == "/jobs"
    english = demo.client.get("/jobs", headers={"Accept-Language": "ko-KR"})
    assert '<html lang="en">' in english.text


def test_numbers_and_credits_are_written_for_the_locale(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[RESEARCHER])
    part = demo.client.get(
        "/jobs/new/quote?project=kaist-nlp&gpus=1000&time_limit=10h",
        headers={"Accept-Language": "ko"},
    )
    assert "10,000 크레딧" in part.text  # h100 at 1 credit/GPU-h
