"""Attacks on the portal's edges: the log WebSocket, the API docs, Ray submission ids, NUL text.

Issue 8, item 11.

* The log WebSocket (``/api/jobs/{id}/logs/tail``) let any page a signed-in browser opened read
  job logs with the browser's session; now an upgrade from another origin is refused (a client
  without ``Origin``, such as Ray's, and the portal's own pages are let in).
* ``/docs`` loaded Swagger UI's scripts from a CDN and started it with an inline script; now every
  byte comes from the portal (the ``fastapi-offline`` package) under a policy allowing only it.
* A reused Ray ``submission_id`` answered 409 even when the caller could not see the job, which
  told them it existed; now ids are namespaced per submitter and such a submit answers as for a
  fresh id.
* ``/api/jobs/`` took NUL characters in its paths (a 500 on PostgreSQL); now 422 as ``/api/v1``.

Each runs through the public API of the seeded demo pool (``tests/portal``): jiwoo.jung is a
researcher in kaist-nlp (and hanbit-robot-policy), seoyeon.lee kaist-nlp's pi, eunji.han in
postech-materials only.
"""

from __future__ import annotations

import re

import pytest
from starlette.websockets import WebSocketDisconnect

from jobs.repository import JobRepository
from portal.rayjobs import allowed_origin, own_job_id
from tests.portal.conftest import Demo

RESEARCHER = "jiwoo.jung"  # kaist-nlp and hanbit-robot-policy
PI = "seoyeon.lee"  # kaist-nlp's pi
OUTSIDER = "eunji.han"  # postech-materials only


def ray_submit(demo: Demo, user: str, project: str, **fields: object) -> dict[str, object]:
    body = {"entrypoint": "python train.py", "metadata": {"project": project}, **fields}
    answer = demo.client.post("/api/jobs/", json=body, headers=demo.headers(user))
    assert answer.status_code == 200, answer.text
    result: dict[str, object] = answer.json()
    return result


def count_jobs(demo: Demo) -> int:
    with demo.books() as books:
        return len(JobRepository(books.session).find())


# -- the log WebSocket checks Origin -------------------------------------------------------------


def a_finished_job(demo: Demo) -> str:
    """A job of the researcher's, cancelled while queued: its log tail ends at once."""
    job_id = str(ray_submit(demo, RESEARCHER, "kaist-nlp")["job_id"])
    stopped = demo.client.post(f"/api/jobs/{job_id}/stop", headers=demo.headers(RESEARCHER))
    assert stopped.json() == {"stopped": True}
    return job_id


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://127.0.0.1:8001", "https://127.0.0.1:8000", "null"],
)
def test_a_page_of_another_origin_cannot_tail_logs(demo: Demo, origin: str) -> None:
    job_id = a_finished_job(demo)
    headers = {**demo.headers(RESEARCHER), "Origin": origin}

    with (
        pytest.raises(WebSocketDisconnect) as refused,
        demo.client.websocket_connect(f"/api/jobs/{job_id}/logs/tail", headers=headers),
    ):
        pass  # never accepted

    assert refused.value.code == 1008
    assert "another origin" in refused.value.reason


@pytest.mark.parametrize("origin", [None, "own"])
def test_a_client_without_origin_and_the_portals_own_pages_tail_logs(
    demo: Demo, origin: str | None
) -> None:
    job_id = a_finished_job(demo)
    headers = demo.headers(RESEARCHER)
    if origin == "own":
        headers["Origin"] = demo.settings.base_url

    with demo.client.websocket_connect(f"/api/jobs/{job_id}/logs/tail", headers=headers) as ws:
        closed = ws.receive()  # the job has ended and has no output: closed at once

    assert closed["type"] == "websocket.close"


def test_origins_compare_scheme_host_and_port() -> None:
    base = "http://portal.example:8000"
    assert allowed_origin(None, base)
    assert allowed_origin("http://PORTAL.example:8000", base)
    assert allowed_origin("https://portal.example", "https://portal.example:443/")
    assert not allowed_origin("http://portal.example", base)
    assert not allowed_origin("http://portal.example:8000.evil.example", base)
    assert not allowed_origin("http://portal.example:notaport", base)
    assert not allowed_origin("file://", base)


# -- /docs serves its own Swagger UI under a policy that allows only the portal ------------------


def test_the_docs_load_nothing_from_another_host(demo: Demo) -> None:
    page = demo.client.get("/docs")

    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy
    assert "connect-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert "http" not in policy  # no other host, no CDN
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text  # no inline script
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text
    for source in sources:
        assert source.startswith("/docs/"), source
        asset = demo.client.get(source)
        assert asset.status_code == 200, source
        assert asset.headers["x-content-type-options"] == "nosniff"
    init = demo.client.get("/docs/init.js").text
    assert '"/openapi.json"' in init
    assert "validatorUrl: null" in init  # Swagger UI's validator badge is another host


def test_fastapis_cdn_pages_and_other_files_are_not_served(demo: Demo) -> None:
    assert demo.client.get("/redoc").status_code == 404
    assert demo.client.get("/docs/assets/index.html").status_code == 404
    assert demo.client.get("/docs/assets/..%2F..%2F__init__.py").status_code == 404
    assert (
        demo.client.get("/docs/assets/swagger-ui-bundle.js")
        .headers["content-type"]
        .startswith("text/javascript")
    )


# -- a reused submission_id tells nothing of a job the caller cannot see --------------------------


def test_a_submission_id_another_user_took_answers_as_a_fresh_one(demo: Demo) -> None:
    mine = ray_submit(demo, RESEARCHER, "kaist-nlp", submission_id="train-1")
    theirs = ray_submit(demo, OUTSIDER, "postech-materials", submission_id="train-1")
    fresh = ray_submit(demo, OUTSIDER, "postech-materials", submission_id="never-used")

    # the same answer as for an id nobody used
    assert mine == {"job_id": "train-1", "submission_id": "train-1"}
    assert theirs == {"job_id": "train-1", "submission_id": "train-1"}
    assert fresh == {"job_id": "never-used", "submission_id": "never-used"}
    # ...and each user's name means their own job
    for user, project in ((RESEARCHER, "kaist-nlp"), (OUTSIDER, "postech-materials")):
        job = demo.client.get("/api/jobs/train-1", headers=demo.headers(user)).json()
        assert job["submission_id"] == "train-1"
        listed = demo.client.get("/api/jobs/", headers=demo.headers(user)).json()
        assert "train-1" in [each["submission_id"] for each in listed]
        with demo.books() as books:
            stored = JobRepository(books.session).get(own_job_id(user, "train-1"))
        assert (stored.spec.submitter, stored.spec.project) == (user, project)


def test_naming_another_users_job_by_its_full_id_answers_as_a_fresh_one(demo: Demo) -> None:
    ray_submit(demo, RESEARCHER, "kaist-nlp", submission_id="train-2")
    full_id = own_job_id(RESEARCHER, "train-2")

    hidden = demo.client.get(f"/api/jobs/{full_id}", headers=demo.headers(OUTSIDER))
    taken = ray_submit(demo, OUTSIDER, "postech-materials", submission_id=full_id)

    assert hidden.status_code == 404
    assert taken == {"job_id": full_id, "submission_id": full_id}
    with demo.books() as books:
        (victims,) = [job for job in JobRepository(books.session).find() if job.id == full_id]
    assert victims.spec.submitter == RESEARCHER  # untouched


def test_a_submission_id_you_can_see_is_refused_so_a_retry_never_runs_twice(demo: Demo) -> None:
    ray_submit(demo, RESEARCHER, "kaist-nlp", submission_id="train-3")
    full_id = own_job_id(RESEARCHER, "train-3")
    before = count_jobs(demo)

    again = demo.client.post(
        "/api/jobs/",
        json={"entrypoint": "x", "submission_id": "train-3", "metadata": {"project": "kaist-nlp"}},
        headers=demo.headers(RESEARCHER),
    )
    # the pi sees the job by its full id: that name is taken for them too
    pis = demo.client.post(
        "/api/jobs/",
        json={"entrypoint": "x", "submission_id": full_id, "metadata": {"project": "kaist-nlp"}},
        headers=demo.headers(PI),
    )
    shown_to_pi = demo.client.get(f"/api/jobs/{full_id}", headers=demo.headers(PI)).json()

    assert again.status_code == 409
    assert pis.status_code == 409
    assert shown_to_pi["submission_id"] == full_id
    assert count_jobs(demo) == before


def test_a_submission_id_that_does_not_fit_an_id_is_refused(demo: Demo) -> None:
    before = count_jobs(demo)
    for bad in ("a" * 49, "-leading-dash", "has space", "slash/ed"):
        answer = demo.client.post(
            "/api/jobs/",
            json={"entrypoint": "x", "submission_id": bad, "metadata": {"project": "kaist-nlp"}},
            headers=demo.headers(RESEARCHER),
        )
        assert answer.status_code == 400, bad
        assert "submission_id must be 1-48" in answer.json()["detail"]
    assert count_jobs(demo) == before


# -- NUL characters are refused, as on /api/v1 ----------------------------------------------------


def test_nul_in_the_ray_api_is_refused_and_nothing_written(demo: Demo) -> None:
    headers = demo.headers(RESEARCHER)
    job_id = str(ray_submit(demo, RESEARCHER, "kaist-nlp")["job_id"])
    before = count_jobs(demo)
    project = {"project": "kaist-nlp"}

    for body in (
        {"entrypoint": "x", "submission_id": "a\x00b", "metadata": project},
        {"entrypoint": "x\x00y", "metadata": project},
        {"entrypoint": "x", "metadata": {**project, "name": "a\x00b"}},
        {"entrypoint": "x", "metadata": project, "runtime_env": {"env_vars": {"A": "\x00"}}},
    ):
        assert demo.client.post("/api/jobs/", json=body, headers=headers).status_code == 422
    for method, path in (
        ("GET", "/api/jobs/a%00b"),
        ("POST", "/api/jobs/a%00b/stop"),
        ("DELETE", "/api/jobs/a%00b"),
        ("GET", "/api/jobs/a%00b/logs"),
        ("GET", "/api/packages/gcs/a%00b.zip"),
        ("PUT", "/api/packages/gcs/a%00b.zip"),
    ):
        answer = demo.client.request(method, path, headers=headers)
        assert answer.status_code == 422, (method, path, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    tail = "/api/jobs/a%00b/logs/tail"
    with (  # the upgrade is refused the same way
        pytest.raises(WebSocketDisconnect),
        demo.client.websocket_connect(tail, headers=headers),
    ):
        pass

    assert count_jobs(demo) == before
    still = demo.client.get(f"/api/jobs/{job_id}", headers=headers)
    assert still.status_code == 200
