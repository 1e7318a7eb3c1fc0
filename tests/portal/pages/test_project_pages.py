"""The project pages over the demo pool, through a test client signed in as a browser is."""

from __future__ import annotations

import re

from quotas.quantities import Credits
from tests.portal.conftest import Demo
from tests.portal.pages.sessions import sign_in

PI = "seoyeon.lee"  # pi of kaist-nlp and kaist-protein
RESEARCHER = "jiwoo.jung"  # researcher in kaist-nlp and hanbit-robot-policy
MANAGER = "jaehyun.kim"  # program manager of universities
UNIVERSITIES = {"kaist-nlp", "kaist-protein", "snu-medical-imaging", "postech-materials"}
STARTUPS = {"hanbit-robot-policy", "seoulvision-doc-ocr"}


def listed(html: str) -> set[str]:
    return set(re.findall(r'<tr data-project="([^"]+)"', html))


def spend(demo: Demo, project: str, job: str, held: str, charged: str, refunded: str) -> str:
    """Credits a job of ``project`` holds, is charged and gets back; the period's name."""
    with demo.books() as books:
        period = books.current_period().name
        books.hold(project, job, Credits.of(held), "test", "hold", period)
        books.charge(project, job, Credits.of(charged), "test", "charge", period)
        if refunded != "0":
            books.refund(project, job, Credits.of(refunded), "test", "refund", period)
    return period


def members_of(demo: Demo, project: str) -> dict[str, str]:
    answer = demo.client.get(f"/api/v1/accounts/{project}/members", headers=demo.headers())
    return {member["user"]: member["role"] for member in answer.json()}


def test_each_viewer_lists_the_projects_they_may_see(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[PI])
    assert listed(demo.client.get("/projects").text) == {"kaist-nlp", "kaist-protein"}
    sign_in(demo.client, demo.tokens[RESEARCHER])
    assert listed(demo.client.get("/projects").text) == {"kaist-nlp", "hanbit-robot-policy"}
    sign_in(demo.client, demo.tokens[MANAGER])
    assert listed(demo.client.get("/projects").text) == UNIVERSITIES
    sign_in(demo.client, demo.tokens["auditor.kim"])
    assert listed(demo.client.get("/projects").text) == UNIVERSITIES | STARTUPS


def test_the_list_shows_the_balances_the_api_gives_and_downloads_as_csv(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[PI])
    page = demo.client.get("/projects").text
    api = demo.client.get("/api/v1/accounts", headers=demo.headers(PI)).json()
    shown = dict(re.findall(r'<tr data-project="([^"]+)">.*?data-available="([^"]+)"', page, re.S))
    expected = {
        each["name"]: each["balances"]["available"]
        for each in api["accounts"]
        if each["name"] in shown
    }
    assert shown == expected
    assert api["period"] in page
    csv = demo.client.get(f"/projects?period={api['period']}&format=csv")
    assert csv.status_code == 200
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.strip().splitlines()
    assert lines[0].startswith("project,display_name,parent,period,budget,available")
    assert {line.split(",")[0] for line in lines[1:]} == {"kaist-nlp", "kaist-protein"}


def test_a_projects_page_shows_its_balances_and_spending_as_the_api_and_ledger_do(
    demo: Demo,
) -> None:
    period = spend(demo, "kaist-nlp", "gp-000000000001", "100", "40", "5")
    spend(demo, "kaist-nlp", "gp-000000000002", "10", "2.5", "0")
    sign_in(demo.client, demo.tokens[PI])
    page = demo.client.get("/projects/kaist-nlp")
    assert page.status_code == 200
    api = demo.client.get("/api/v1/accounts/kaist-nlp", headers=demo.headers(PI)).json()
    balances = api["balances"]
    assert balances["spent"] == "37.5"
    for pocket in ("available", "held", "spent"):
        assert f'data-{pocket}="{balances[pocket]}"' in page.text
    chart = page.text[page.text.index('id="project-usage') :]
    values = re.findall(r'data-value="([^"]+)"', chart)
    assert values, "the chart has no points"
    assert float(values[-1]) == 37.5  # spent so far, at the end of today
    assert f"Credits spent in {period}" in page.text
    assert 'href="/jobs?project=kaist-nlp"' in page.text


def test_a_budget_is_drawn_as_a_dashed_line(demo: Demo) -> None:
    with demo.books() as books:
        period = books.current_period().name
        books.set_budget("kaist-protein", period, Credits.of("5000"), actor="test")
    sign_in(demo.client, demo.tokens[PI])
    page = demo.client.get("/projects/kaist-protein").text
    assert "chart-projection" in page
    assert 'data-value="5000"' in page


def test_a_pi_adds_changes_and_removes_a_member(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[PI])
    added = demo.client.post(
        "/projects/kaist-nlp/members",
        data={"csrf": csrf, "user": "eunji.han", "role": "researcher"},
        follow_redirects=False,
    )
    assert added.status_code == 303
    assert members_of(demo, "kaist-nlp")["eunji.han"] == "researcher"
    changed = demo.client.post(
        "/projects/kaist-nlp/members/eunji.han/role",
        data={"csrf": csrf, "role": "pi"},
        follow_redirects=False,
    )
    assert changed.status_code == 303
    assert members_of(demo, "kaist-nlp")["eunji.han"] == "pi"
    page = demo.client.get("/projects/kaist-nlp").text
    assert '<tr data-member="eunji.han">' in page
    removed = demo.client.post(
        "/projects/kaist-nlp/members/eunji.han/remove", data={"csrf": csrf}, follow_redirects=False
    )
    assert removed.status_code == 303
    assert "eunji.han" not in members_of(demo, "kaist-nlp")


def test_the_programs_manager_manages_members_too(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[MANAGER])
    page = demo.client.get("/projects/postech-materials").text
    assert 'action="/projects/postech-materials/members"' in page
    added = demo.client.post(
        "/projects/postech-materials/members",
        data={"csrf": csrf, "user": "jiwoo.jung", "role": "researcher"},
        follow_redirects=False,
    )
    assert added.status_code == 303
    assert members_of(demo, "postech-materials")["jiwoo.jung"] == "researcher"


def test_a_researcher_is_told_who_manages_the_members(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[RESEARCHER])
    page = demo.client.get("/projects/kaist-nlp").text
    assert 'action="/projects/kaist-nlp/members"' not in page
    assert "/remove" not in page
    assert "its pi (seoyeon.lee)" in page
    assert "the managers of universities (jaehyun.kim)" not in page  # may not read the program
    assert "or an admin may" in page


def test_a_refused_change_says_why_and_changes_nothing(demo: Demo) -> None:
    csrf = sign_in(demo.client, demo.tokens[PI])
    answer = demo.client.post(
        "/projects/kaist-nlp/members",
        data={"csrf": csrf, "user": "nobody.here", "role": "researcher"},
    )
    assert answer.status_code in (404, 422)
    assert "Nothing was changed." in answer.text
    assert "nobody.here" not in members_of(demo, "kaist-nlp")


def test_the_project_page_is_in_korean_with_the_switch(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[PI])
    demo.client.cookies.set("gpupool_lang", "ko")
    page = demo.client.get("/projects/kaist-nlp").text
    assert "구성원" in page
    assert "크레딧" in page
    assert "Members" not in page
