"""Attacks on the admin's catalogue pages: a forged form, an auditor, a program manager or a
PI posting, bearer tokens instead of a session, and script or formulas in what an admin names.
Each test fails if its hole reopens, and each refusal is checked to have changed nothing."""

from __future__ import annotations

from typing import Any

import pytest

from quotas.quantities import Credits
from tests.portal.conftest import AUDITOR, Demo
from tests.portal.pages.sessions import sign_in

PROGRAM_MANAGER = "jaehyun.kim"  # universities
PAGES = ("/admin", "/admin/funders", "/admin/periods", "/admin/flavors", "/admin/clusters")


def catalogue(demo: Demo) -> dict[str, Any]:
    """Everything the admin pages can change, as the API lists it."""

    def get(path: str) -> Any:
        answer = demo.client.get(f"/api/v1{path}", headers=demo.headers())
        assert answer.status_code == 200, answer.text
        return answer.json()

    return {path: get(path) for path in ("/funders", "/periods", "/flavors", "/rate-cards")} | {
        "/clusters": [
            {key: value for key, value in each.items() if key != "node_groups"}
            for each in get("/clusters")
        ]
    }


def forms(demo: Demo, csrf: str | None) -> dict[str, dict[str, Any]]:
    """One valid form for every admin POST, each carrying ``csrf`` (left out when ``None``)."""
    flavors = sorted(each["name"] for each in catalogue(demo)["/flavors"])
    rates = dict.fromkeys(flavors, "1.0")
    every: dict[str, dict[str, Any]] = {
        "/admin/funders": {"name": "evil", "display_name": "Evil", "kind": "ministry"},
        "/admin/periods": {
            "name": "evil",
            "starts_at": "2040-01-01T00:00",
            "ends_at": "2040-04-01T00:00",
        },
        "/admin/flavors": {"name": "evil-gpu", "memory_gb": "1", "relative_throughput": "9"},
        "/admin/rate-cards": {"flavor": list(rates), "rate": list(rates.values())},
        "/admin/clusters": {
            "name": "evil",
            "backend": "kubernetes",
            "site": "foreign_cloud",
            "inventory_flavor": flavors,
            "inventory_nodes": ["1" for _ in flavors],
            "inventory_gpus_per_node": ["8" for _ in flavors],
        },
        "/admin/clusters/kube-pangyo/burst-budgets": {"program": "universities", "credits": "1"},
    }
    if csrf is not None:
        for form in every.values():
            form["csrf"] = csrf
    return every


@pytest.mark.parametrize("csrf", [None, "", "forged-value"])
def test_a_form_posted_without_the_sessions_csrf_value_changes_nothing(
    demo: Demo, csrf: str | None
) -> None:
    sign_in(demo.client, demo.admin_token)
    before = catalogue(demo)
    for path, form in forms(demo, csrf).items():
        answer = demo.client.post(path, data=form, follow_redirects=False)
        assert answer.status_code in (403, 422), path
    assert catalogue(demo) == before


@pytest.mark.parametrize("user", [AUDITOR, PROGRAM_MANAGER, "seoyeon.lee"])
def test_no_one_but_an_admin_changes_the_catalogue(demo: Demo, user: str) -> None:
    csrf = sign_in(demo.client, demo.tokens[user])
    before = catalogue(demo)
    for path, form in forms(demo, csrf).items():
        answer = demo.client.post(path, data=form, follow_redirects=False)
        assert answer.status_code == 403, (path, answer.text[-500:])
        assert f"{user} may not" in answer.text
    assert catalogue(demo) == before


def test_the_pages_take_no_bearer_token(demo: Demo) -> None:
    """A page's credential is the session cookie, guarded by CSRF; a token is for the API."""
    for path in PAGES:
        answer = demo.client.get(path, headers=demo.headers(), follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/signin"
    before = catalogue(demo)
    for path, form in forms(demo, None).items():
        answer = demo.client.post(path, data=form, headers=demo.headers(), follow_redirects=False)
        assert answer.status_code in (303, 403, 422), path
        assert answer.headers.get("location") in (None, "/signin")
    assert catalogue(demo) == before


def test_what_an_admin_names_is_shown_as_text_never_run(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    added = demo.client.post(
        "/admin/funders",
        data={"csrf": csrf, "name": "hostile", "display_name": hostile, "kind": "ministry"},
        follow_redirects=False,
    )
    assert added.status_code == 303
    refused = demo.client.post(
        "/admin/flavors",
        data={"csrf": csrf, "name": hostile, "memory_gb": "1", "relative_throughput": "1"},
    )
    assert refused.status_code == 422  # a flavor's name is a plain word; the refusal quotes it
    flavors = sorted(each["name"] for each in catalogue(demo)["/flavors"])
    cluster = demo.client.post(
        "/admin/clusters",
        data={
            "csrf": csrf,
            "name": "hostile",
            "backend": "ray",
            "site": "national",
            "address": '"><script>alert(1)</script>',
            "inventory_flavor": flavors,
            "inventory_nodes": ["1"] + ["" for _ in flavors[1:]],
            "inventory_gpus_per_node": ["8"] + ["" for _ in flavors[1:]],
        },
        follow_redirects=False,
    )
    assert cluster.status_code == 303, cluster.text[-1000:]
    for page in (
        refused.text,
        demo.client.get("/admin/funders").text,
        demo.client.get("/admin/clusters").text,
    ):
        assert "<script>alert" not in page
        assert "<img src=x" not in page
    assert "&lt;script&gt;" in demo.client.get("/admin/funders").text


def test_a_funders_name_cannot_become_a_spreadsheet_formula(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    formula = '=HYPERLINK("https://evil.example","click")'
    demo.client.post(
        "/admin/funders",
        data={"csrf": csrf, "name": "formula", "display_name": formula, "kind": "ministry"},
    )
    with demo.books() as books:
        books.contribute("formula", books.current_period().name, Credits.of("5"), "test", "seed")
    download = demo.client.get("/admin/funders?format=csv").text
    assert f"'{formula}" in download.replace('""', '"')
    assert ",=HYPERLINK" not in download
