"""A mistyped name is answered with the names the caller may use, and never with others'.

Issue 11: when a flavor or project is mistyped, the refusal lists the valid names (with the
closest one). Flavors are the pool's catalogue, open to everyone signed in. Project names are
not: a researcher must not learn another tenant's projects from a typo, not even as "did you
mean". The refusal of a hidden project reads as that of one that does not exist, so it tells
nothing of whether the name is taken.

jiwoo.jung is a researcher in kaist-nlp and hanbit-robot-policy; snu-medical-imaging and
postech-materials are other tenants' projects.
"""

from __future__ import annotations

import pytest

from tests.portal.conftest import Demo

RESEARCHER = "jiwoo.jung"
OTHERS = ("snu-medical-imaging", "postech-materials", "kaist-protein", "seoulvision-doc-ocr")


def refused(demo: Demo, method: str, path: str, **kwargs: object) -> str:
    answer = demo.client.request(
        method, f"/api/v1{path}", headers=demo.headers(RESEARCHER), **kwargs
    )
    assert answer.status_code == 404, answer.text
    detail: str = answer.json()["detail"]
    return detail


@pytest.mark.parametrize(
    "typed", ["snu-medical-imagin", "snu-medical-imaging", "postech", "kaist-protien", "nowhere"]
)
def test_a_mistyped_project_names_only_the_callers_projects(demo: Demo, typed: str) -> None:
    submit = refused(
        demo,
        "POST",
        "/jobs",
        json={"project": typed, "entrypoint": "python train.py", "gpus": 1},
    )
    listing = refused(demo, "GET", "/jobs", params={"project": typed})
    requests = refused(demo, "GET", "/allocation-requests", params={"project": typed})

    assert submit.endswith("; projects you may submit to: hanbit-robot-policy, kaist-nlp")
    assert listing.endswith("; your projects: hanbit-robot-policy, kaist-nlp")
    assert requests.endswith("; your projects: hanbit-robot-policy, kaist-nlp")
    for detail in (submit, listing, requests):
        assert detail.startswith(f"no project {typed}")
        assert not any(other in detail.removeprefix(f"no project {typed}") for other in OTHERS)


def test_a_hidden_project_is_refused_as_one_that_does_not_exist(demo: Demo) -> None:
    hidden = refused(demo, "GET", "/jobs", params={"project": "snu-medical-imaging"})
    missing = refused(demo, "GET", "/jobs", params={"project": "snu-medical-imagery"})

    assert hidden.replace("snu-medical-imaging", "X") == missing.replace("snu-medical-imagery", "X")


def test_a_near_miss_of_ones_own_project_is_suggested(demo: Demo) -> None:
    detail = refused(
        demo,
        "POST",
        "/jobs",
        json={"project": "kaist-nl", "entrypoint": "python train.py", "gpus": 1},
    )

    assert detail.startswith("no project kaist-nl (did you mean kaist-nlp?)")


def test_a_mistyped_flavor_lists_the_pools_flavors(demo: Demo) -> None:
    answer = demo.client.post(
        "/api/v1/quote",
        json={"gpus": 1, "time_limit": "1h", "flavors": ["h100"]},
        headers=demo.headers(RESEARCHER),
    )

    assert answer.status_code == 404, answer.text
    assert answer.json()["detail"] == (
        "unknown flavor 'h100' (did you mean h100-80g?); "
        "flavors: a100-80g, h100-80g, rngd-48g, v100-32g"
    )
