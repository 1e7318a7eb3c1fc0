"""The jobs API: submit with a quote, list with scope and pages, one job, cancel."""

from __future__ import annotations

import csv
import io
from typing import Any

from tests.portal.conftest import Demo


def submit(demo: Demo, user: str, project: str = "kaist-nlp", **extra: object) -> Any:
    body = {"project": project, "entrypoint": "python train.py", "gpus": 2, "time_limit": "2h"}
    response = demo.client.post("/api/v1/jobs", json=body | extra, headers=demo.headers(user))
    assert response.status_code == 201, response.text
    return response.json()


def test_submit_answers_with_the_job_and_its_quote(demo: Demo) -> None:
    answer = submit(demo, "jiwoo.jung", flavors=["h100-80g", "a100-80g"])

    assert answer["job"]["state"] == "queued"
    assert answer["job"]["submitter"] == "jiwoo.jung"
    quote = {line["flavor"]: line["credits"] for line in answer["quote"]}
    assert quote == {"h100-80g": "4.0", "a100-80g": "3.2"}


def test_a_researcher_sees_only_their_projects_jobs(demo: Demo) -> None:
    mine = submit(demo, "jiwoo.jung")["job"]["id"]
    other = submit(demo, "sungmin.yoon", project="snu-medical-imaging")["job"]["id"]

    listed = demo.client.get("/api/v1/jobs", headers=demo.headers("jiwoo.jung")).json()
    hidden = demo.client.get(f"/api/v1/jobs/{other}", headers=demo.headers("jiwoo.jung"))

    assert [job["id"] for job in listed["items"]] == [mine]
    assert hidden.status_code == 404
    assert hidden.headers["content-type"] == "application/problem+json"


def test_cancel_of_a_queued_job_is_immediate_and_recorded(demo: Demo) -> None:
    job = submit(demo, "jiwoo.jung")["job"]["id"]

    cancelled = demo.client.post(f"/api/v1/jobs/{job}/cancel", headers=demo.headers("jiwoo.jung"))
    detail = demo.client.get(f"/api/v1/jobs/{job}", headers=demo.headers("jiwoo.jung")).json()

    assert cancelled.json()["state"] == "cancelled"
    assert [event["to_state"] for event in detail["events"]] == ["queued", "cancelled"]
    assert detail["charged"] == "0.0"


def test_unknown_fields_and_missing_auth_are_refused(demo: Demo) -> None:
    unknown = demo.client.post(
        "/api/v1/jobs",
        json={"project": "kaist-nlp", "entrypoint": "x", "gpu": 2},
        headers=demo.headers("jiwoo.jung"),
    )
    anonymous = demo.client.get("/api/v1/jobs")

    assert unknown.status_code == 422
    assert "gpu" in unknown.json()["detail"]
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")


def test_a_job_that_could_never_run_is_refused_at_submission(demo: Demo) -> None:
    """No node in the demo pool has more than 8 GPUs and no cluster runs jobs across nodes: a
    24-GPU job is refused with the reason, not accepted and rejected a second later."""
    headers = demo.headers("jiwoo.jung")
    before = demo.client.get("/api/v1/jobs", headers=headers).json()["total"]
    body = {"project": "kaist-nlp", "entrypoint": "python train.py", "gpus": 24, "time_limit": "1h"}

    refused = demo.client.post("/api/v1/jobs", json=body, headers=headers)
    too_rare = demo.client.post(
        "/api/v1/jobs", json=body | {"gpus": 1, "min_memory_gb": 200}, headers=headers
    )

    assert refused.status_code == 422
    assert refused.json()["detail"] == (
        "this job could never run in this pool: 24 GPUs is more than one node has (8 at most), "
        "and no cluster here runs jobs across nodes"
    )
    assert too_rare.status_code == 422
    assert "no flavor with at least 200 GB" in too_rare.json()["detail"]
    assert demo.client.get("/api/v1/jobs", headers=headers).json()["total"] == before


def test_the_job_list_downloads_as_csv_with_its_json_rows(demo: Demo) -> None:
    first = submit(demo, "jiwoo.jung", flavors=["h100-80g", "a100-80g"], metadata={"run": "7"})
    submit(demo, "sungmin.yoon", project="snu-medical-imaging")

    answer = demo.client.get(
        "/api/v1/jobs", params={"format": "csv"}, headers=demo.headers("jiwoo.jung")
    )
    rows = list(csv.DictReader(io.StringIO(answer.text)))

    assert answer.headers["content-type"].startswith("text/csv")
    assert answer.headers["x-total-count"] == "1"
    [row] = rows
    assert row["id"] == first["job"]["id"]
    assert row["project"] == "kaist-nlp"
    assert row["flavors"] == "h100-80g; a100-80g"
    assert row["metadata"] == '{"run": "7"}'
    assert row["state"] == "queued"
