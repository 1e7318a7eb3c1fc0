"""Attacks on the program pages: a researcher, another program's manager and a forged form each
try to read or change a program's tree, and nothing changes; a change smuggled into one's own
program's form for an account of another program is not found; what tenants name is escaped.
Each test fails if its hole reopens."""

from __future__ import annotations

from typing import Any

import pytest

from tests.portal.conftest import Demo
from tests.portal.pages.sessions import sign_in

PROGRAM = "universities"
MANAGER = "jaehyun.kim"  # manages universities
OTHER_MANAGER = "minji.park"  # manages startups
RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp (universities) and hanbit-robot-policy


def tree_state(demo: Demo) -> tuple[list[dict[str, Any]], int]:
    """Every account as the API gives it, and how long the audit log is."""
    listed = demo.client.get("/api/v1/accounts", headers=demo.headers()).json()["accounts"]
    audit = demo.client.get("/api/v1/audit", headers=demo.headers()).json()["total"]
    return listed, int(audit)


def change(csrf: str | None, account: str = "kaist-nlp", share: str = "9") -> dict[str, Any]:
    form: dict[str, Any] = {
        "account": [account],
        "share": [share],
        "guaranteed": ["0"],
        "borrowing": [""],
        "budget": [""],
    }
    if csrf is not None:
        form["csrf"] = csrf
    return form


def an_account(csrf: str, parent: str = "kaist", name: str = "sneaky") -> dict[str, str]:
    return {"csrf": csrf, "parent": parent, "new_name": name}


def test_a_researcher_sees_no_program_and_is_refused_every_change(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[RESEARCHER])
    before = tree_state(demo)
    page = demo.client.get(f"/programs/{PROGRAM}")
    assert page.status_code == 404
    assert 'name="share"' not in page.text
    assert demo.client.get(f"/programs/{PROGRAM}?format=csv").status_code == 404
    assert "data-program" not in demo.client.get("/programs").text
    # kaist-nlp is her own project: the refusal is the role's, and says who may
    for path in (f"/programs/{PROGRAM}", f"/programs/{PROGRAM}/preview"):
        answer = demo.client.post(path, data=change(csrf), follow_redirects=False)
        assert answer.status_code == 403, path
        assert "program managers or an admin may" in answer.text
    added = demo.client.post(f"/programs/{PROGRAM}/accounts", data=an_account(csrf))
    assert added.status_code == 403
    # the same refusal for a program that does not exist: nothing is learnt of which do
    ghost = demo.client.post("/programs/no-such-program", data=change(csrf))
    assert ghost.status_code == 403
    assert tree_state(demo) == before


def test_another_programs_manager_cannot_reach_this_program(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[OTHER_MANAGER])
    before = tree_state(demo)
    listing = demo.client.get("/programs")
    assert 'data-program="startups"' in listing.text
    assert 'data-program="universities"' not in listing.text
    page = demo.client.get(f"/programs/{PROGRAM}")
    assert page.status_code == 404
    assert "kaist" not in page.text
    assert demo.client.get(f"/programs/{PROGRAM}?format=csv").status_code == 404
    for path in (f"/programs/{PROGRAM}", f"/programs/{PROGRAM}/preview"):
        assert demo.client.post(path, data=change(csrf)).status_code == 404
    assert (
        demo.client.post(f"/programs/{PROGRAM}/accounts", data=an_account(csrf)).status_code == 404
    )
    # smuggled into her own program's form: an account of another program is not found
    for path in ("/programs/startups", "/programs/startups/preview"):
        answer = demo.client.post(path, data=change(csrf, "kaist-nlp"))
        assert answer.status_code == 404
    smuggled = demo.client.post("/programs/startups/accounts", data=an_account(csrf, "kaist"))
    assert smuggled.status_code == 404
    assert tree_state(demo) == before


def test_a_manager_cannot_reach_past_their_program_through_their_own_form(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    before = tree_state(demo)
    for account in ("hanbit-robot-policy", "startups", "national"):
        answer = demo.client.post(f"/programs/{PROGRAM}", data=change(csrf, account))
        assert answer.status_code in (403, 404), account
    # the pool is readable to nobody but admin and auditor; a program page for it is not found
    assert demo.client.get("/programs/national").status_code == 404
    answer = demo.client.post(
        f"/programs/{PROGRAM}/accounts", data=an_account(csrf, "hanbit-robotics")
    )
    assert answer.status_code == 404
    assert tree_state(demo) == before


@pytest.mark.parametrize("csrf", [None, "", "forged-value"])
def test_a_form_without_the_sessions_csrf_value_changes_nothing(
    demo: Demo, csrf: str | None
) -> None:
    sign_in(demo.client, demo.tokens[MANAGER])
    before = tree_state(demo)
    for path in (f"/programs/{PROGRAM}", f"/programs/{PROGRAM}/preview"):
        answer = demo.client.post(path, data=change(csrf), follow_redirects=False)
        assert answer.status_code in (403, 422), path
    form: dict[str, str] = {"parent": "kaist", "new_name": "forged"}
    if csrf is not None:
        form["csrf"] = csrf
    added = demo.client.post(f"/programs/{PROGRAM}/accounts", data=form, follow_redirects=False)
    assert added.status_code in (403, 422)
    assert tree_state(demo) == before


def test_what_tenants_name_is_escaped(demo: Demo) -> None:
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    patched = demo.client.patch(
        "/api/v1/accounts/kaist", json={"display_name": hostile}, headers=demo.headers()
    )
    assert patched.status_code == 200
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    for path in (f"/programs/{PROGRAM}", "/programs"):
        page = demo.client.get(path)
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
    assert "&lt;script&gt;alert" in demo.client.get(f"/programs/{PROGRAM}").text
    refused = demo.client.post(
        f"/programs/{PROGRAM}/accounts",
        data={**an_account(csrf, name=hostile[:60]), "display_name": hostile},
    )
    assert refused.status_code == 422
    assert "<script>alert" not in refused.text
    assert "<img src=x" not in refused.text
    # a hostile account name in the editor's form comes back escaped
    answer = demo.client.post(f"/programs/{PROGRAM}/preview", data=change(csrf, hostile[:60]))
    assert answer.status_code == 404
    assert "<script>alert" not in answer.text
