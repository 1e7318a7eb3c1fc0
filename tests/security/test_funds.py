"""Attacks on the pool's funds: only an admin, with the ``manage`` scope, records a contribution
or appropriates credits, and only to a program, in amounts the books can hold; the page forms
need the session's CSRF value. Each refusal is checked to have left the ledger as it was."""

from __future__ import annotations

from typing import Any

import pytest

from quotas.access import Scope
from tests.portal.conftest import AUDITOR, Demo
from tests.portal.pages.sessions import sign_in

API = "/api/v1"
PROGRAM_MANAGER = "jaehyun.kim"  # universities
OTHER_PROGRAM_MANAGER = "minji.park"  # startups
PI = "seoyeon.lee"
RESEARCHER = "jiwoo.jung"


def period(demo: Demo) -> str:
    name: str = demo.client.get(f"{API}/accounts", headers=demo.headers()).json()["period"]
    return name


def last_entry(demo: Demo) -> int:
    with demo.books() as books:
        return books.ledger.last_id()


def movements(demo: Demo) -> dict[str, dict[str, Any]]:
    """A valid API request for each movement: path -> body."""
    body = {"period": period(demo), "credits": "100", "reason": "test"}
    return {
        f"{API}/funders/msit/contributions": body,
        f"{API}/accounts/universities/appropriations": body,
    }


@pytest.mark.parametrize("user", [PROGRAM_MANAGER, OTHER_PROGRAM_MANAGER, PI, RESEARCHER, AUDITOR])
def test_nobody_but_an_admin_moves_the_pools_funds(demo: Demo, user: str) -> None:
    before = last_entry(demo)

    for path, body in movements(demo).items():
        answer = demo.client.post(path, json=body, headers=demo.headers(user))

        assert answer.status_code == 403, (path, answer.text)
        assert f"{user} may not" in answer.json()["detail"]
    assert last_entry(demo) == before


@pytest.mark.parametrize("scopes", [[Scope.READ], [Scope.JOBS], [Scope.READ, Scope.JOBS]])
def test_an_admins_token_without_manage_moves_nothing(demo: Demo, scopes: list[Scope]) -> None:
    token = demo.token("admin", scopes)
    before = last_entry(demo)

    for path, body in movements(demo).items():
        answer = demo.client.post(path, json=body, headers={"Authorization": f"Bearer {token}"})

        assert answer.status_code == 403, (path, answer.text)
        assert answer.json()["needs"] == ["manage"]
    assert last_entry(demo) == before


@pytest.mark.parametrize("account", ["kaist-nlp", "kaist", "national"])
def test_an_appropriation_goes_to_a_program_only(demo: Demo, account: str) -> None:
    before = last_entry(demo)
    body = {"period": period(demo), "credits": "100", "reason": "misdirected"}

    answer = demo.client.post(
        f"{API}/accounts/{account}/appropriations", json=body, headers=demo.headers()
    )

    assert answer.status_code == 422, answer.text
    assert "not a program" in answer.json()["detail"]
    assert last_entry(demo) == before


@pytest.mark.parametrize(
    "credits",
    [
        "0",
        "0.000",
        "-1",
        "-0.5",
        "0.0001",
        "1e6",
        "NaN",
        "Infinity",
        "1000000000000",
        "99999999999999999999",
        "5,000",
        "",
        100,
        None,
    ],
)
def test_amounts_the_books_cannot_hold_are_refused(demo: Demo, credits: Any) -> None:
    before = last_entry(demo)

    for path, body in movements(demo).items():
        answer = demo.client.post(path, json=body | {"credits": credits}, headers=demo.headers())

        assert answer.status_code == 422, (path, credits, answer.text)
    assert last_entry(demo) == before


def test_a_movement_needs_a_reason_and_names_only_real_things(demo: Demo) -> None:
    before = last_entry(demo)
    name = period(demo)
    hostile = "<script>alert(1)</script>"

    refused = [
        demo.client.post(
            f"{API}/funders/msit/contributions",
            json={"period": name, "credits": "1", "reason": ""},
            headers=demo.headers(),
        ),
        demo.client.post(
            f"{API}/funders/msit/contributions",
            json={"period": name, "credits": "1", "reason": "x\u0000y"},
            headers=demo.headers(),
        ),
        demo.client.post(
            f"{API}/funders/{hostile}/contributions",
            json={"period": name, "credits": "1", "reason": "x"},
            headers=demo.headers(),
        ),
        demo.client.post(
            f"{API}/accounts/startups/appropriations",
            json={"period": name, "credits": "1", "reason": "x", "funder": hostile},
            headers=demo.headers(),
        ),
        demo.client.post(
            f"{API}/accounts/startups/appropriations",
            json={"period": "x\u0000", "credits": "1", "reason": "x"},
            headers=demo.headers(),
        ),
    ]

    assert [answer.status_code for answer in refused] == [422, 422, 404, 404, 422]
    assert last_entry(demo) == before


def page_forms(demo: Demo, csrf: str | None) -> dict[str, dict[str, str]]:
    base = {"period": period(demo), "credits": "100", "reason": "test"}
    every = {
        "/admin/funders/contributions": base | {"funder": "msit"},
        "/admin/funders/appropriations": base | {"program": "universities", "funder": ""},
    }
    if csrf is not None:
        for form in every.values():
            form["csrf"] = csrf
    return every


@pytest.mark.parametrize("csrf", [None, "", "forged-value"])
def test_a_page_form_without_the_sessions_csrf_value_moves_nothing(
    demo: Demo, csrf: str | None
) -> None:
    sign_in(demo.client, demo.admin_token)
    before = last_entry(demo)

    for path, form in page_forms(demo, csrf).items():
        answer = demo.client.post(path, data=form, follow_redirects=False)

        assert answer.status_code in (403, 422), path
    assert last_entry(demo) == before


@pytest.mark.parametrize("user", [AUDITOR, PROGRAM_MANAGER, PI, RESEARCHER])
def test_no_one_but_an_admin_moves_funds_on_the_page(demo: Demo, user: str) -> None:
    csrf = sign_in(demo.client, demo.tokens[user])
    before = last_entry(demo)

    for path, form in page_forms(demo, csrf).items():
        answer = demo.client.post(path, data=form, follow_redirects=False)

        assert answer.status_code == 403, (path, answer.text[-500:])
        assert f"{user} may not" in answer.text
    assert last_entry(demo) == before


def test_the_page_forms_take_no_bearer_token(demo: Demo) -> None:
    before = last_entry(demo)

    for path, form in page_forms(demo, None).items():
        answer = demo.client.post(path, data=form, headers=demo.headers(), follow_redirects=False)

        assert answer.status_code in (303, 403, 422), path
        assert answer.headers.get("location") in (None, "/signin")
    assert last_entry(demo) == before


def test_what_is_typed_into_a_refused_form_is_shown_as_text(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.admin_token)
    hostile = '"><script>alert(1)</script>'

    answer = demo.client.post(
        "/admin/funders/appropriations",
        data={
            "csrf": csrf,
            "program": hostile,
            "period": period(demo),
            "credits": "1",
            "reason": hostile,
            "funder": "",
        },
    )

    assert answer.status_code == 422
    assert "<script>alert" not in answer.text
    assert "&lt;script&gt;" in answer.text
