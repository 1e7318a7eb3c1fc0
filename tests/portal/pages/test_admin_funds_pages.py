"""Recording a contribution and appropriating the pool's credits on /admin/funders: each form
moves credits as the API's route does, the tables then show the new amounts as the API gives
them, and a refusal shows the form again with what was typed and why (422)."""

from __future__ import annotations

import re
from typing import Any

from tests.portal.conftest import AUDITOR, Demo
from tests.portal.pages.sessions import sign_in


def as_admin(demo: Demo) -> str:
    return sign_in(demo.client, demo.admin_token)


def api(demo: Demo, path: str) -> Any:
    answer = demo.client.get(f"/api/v1{path}", headers=demo.headers())
    assert answer.status_code == 200, answer.text
    return answer.json()


def period(demo: Demo) -> str:
    name: str = api(demo, "/accounts")["period"]
    return name


def last_entry(demo: Demo) -> int:
    with demo.books() as books:
        return books.ledger.last_id()


def program_row(html: str, program: str) -> str:
    start = html.index(f'<tr data-program="{program}">')
    return html[start : html.index("</tr>", start)]


def test_the_page_shows_each_programs_appropriations_as_the_api_does(demo: Demo) -> None:
    as_admin(demo)
    page = demo.client.get("/admin/funders").text
    funds = api(demo, "/funds")

    assert f"Appropriations in {funds['period']}" in page
    for program in funds["programs"]:
        row = program_row(page, program["name"])
        assert f'data-value="{program["appropriated"]}"' in row
        assert f'data-available="{program["balances"]["available"]}"' in row
    assert 'data-funder="msit" data-value="10000.0"' in page
    assert "Record a contribution" in page
    assert "Appropriate to a program" in page
    programs = re.search(r'<select id="appropriation-program"(.*?)</select>', page, re.S)
    assert programs is not None
    assert re.findall(r'value="([^"]+)"', programs.group(1)) == ["startups", "universities"]
    selected = re.search(r'id="contribution-period".*?value="([^"]+)" selected', page, re.S)
    assert selected is not None
    assert selected.group(1) == funds["period"]


def test_an_admin_records_a_contribution_and_the_table_shows_it(demo: Demo) -> None:
    csrf = as_admin(demo)
    name = period(demo)

    answer = demo.client.post(
        "/admin/funders/contributions",
        data={
            "csrf": csrf,
            "funder": "msit",
            "period": name,
            "credits": "25000",
            "reason": "supplementary budget",
        },
        follow_redirects=False,
    )
    page = demo.client.get("/admin/funders").text

    assert answer.status_code == 303, answer.text[-2000:]
    assert answer.headers["location"] == "/admin/funders#contributions"
    msit = page.index('<tr data-funder="msit">')
    assert f'data-period="{name}" data-value="225000.0"' in page[msit:]
    assert "225,000 credits" in page
    assert 'data-funder="msit" data-value="35000.0"' in page
    ledger = demo.client.get(
        "/api/v1/ledger", params={"kind": "contribution", "limit": 1}, headers=demo.headers()
    ).json()
    assert ledger["items"][0]["reason"] == "supplementary budget"
    assert ledger["items"][0]["amount"] == "25000.0"


def test_an_admin_appropriates_to_a_program_and_its_row_grows(demo: Demo) -> None:
    csrf = as_admin(demo)
    before = {each["name"]: each for each in api(demo, "/funds")["programs"]}

    answer = demo.client.post(
        "/admin/funders/appropriations",
        data={
            "csrf": csrf,
            "program": "startups",
            "period": period(demo),
            "credits": "4000.5",
            "reason": "second call",
            "funder": "gyeonggi",
        },
        follow_redirects=False,
    )
    drawn = demo.client.post(
        "/admin/funders/appropriations",
        data={
            "csrf": csrf,
            "program": "universities",
            "period": period(demo),
            "credits": "1000",
            "reason": "any funder",
            "funder": "",
        },
        follow_redirects=False,
    )
    page = demo.client.get("/admin/funders").text
    after = {each["name"]: each for each in api(demo, "/funds")["programs"]}

    assert answer.status_code == 303, answer.text[-2000:]
    assert drawn.status_code == 303, drawn.text[-2000:]
    assert after["startups"]["appropriated"] == "94000.5"
    assert after["startups"]["by_funder"]["gyeonggi"] == "34000.5"
    assert after["universities"]["by_funder"]["gyeonggi"] == "11000.0"  # gyeonggi first, by name
    assert float(after["startups"]["balances"]["available"]) == (
        float(before["startups"]["balances"]["available"]) + 4000.5
    )
    assert 'data-value="94000.5"' in program_row(page, "startups")
    assert "gyeonggi: 34,000.5 credits" in program_row(page, "startups")


def test_a_refused_contribution_keeps_the_form_and_says_why(demo: Demo) -> None:
    csrf = as_admin(demo)
    before = last_entry(demo)

    closed = demo.client.post(
        "/admin/funders/contributions",
        data={
            "csrf": csrf,
            "funder": "msit",
            "period": "1999-q1",
            "credits": "10",
            "reason": "typed reason",
        },
    )
    zero = demo.client.post(
        "/admin/funders/contributions",
        data={
            "csrf": csrf,
            "funder": "msit",
            "period": period(demo),
            "credits": "0",
            "reason": "x",
        },
    )
    words = demo.client.post(
        "/admin/funders/contributions",
        data={"csrf": csrf, "funder": "msit", "period": period(demo), "credits": "lots"},
    )

    assert closed.status_code == 422
    assert "The contribution was not recorded" in closed.text
    assert "unknown period &#39;1999-q1&#39;" in closed.text
    assert 'value="typed reason"' in closed.text
    assert zero.status_code == 422
    assert "a contribution must be positive" in zero.text
    assert words.status_code == 422
    assert "credits: String should match pattern" in words.text
    assert "reason: Field required" in words.text
    assert last_entry(demo) == before


def test_a_refused_appropriation_keeps_the_form_and_says_why(demo: Demo) -> None:
    csrf = as_admin(demo)
    before = last_entry(demo)
    base = {"csrf": csrf, "period": period(demo), "reason": "typed"}

    too_much = demo.client.post(
        "/admin/funders/appropriations",
        data={**base, "program": "startups", "credits": "20000.5", "funder": ""},
    )
    project = demo.client.post(
        "/admin/funders/appropriations",
        data={**base, "program": "kaist-nlp", "credits": "10", "funder": ""},
    )

    assert too_much.status_code == 422
    assert "The credits were not appropriated" in too_much.text
    assert "needs more than the 20000.0" in too_much.text
    assert 'value="20000.5"' in too_much.text
    assert project.status_code == 422
    assert "kaist-nlp is a project, not a program" in project.text
    assert last_entry(demo) == before


def test_the_auditor_reads_the_appropriations_and_sees_no_form(demo: Demo) -> None:
    sign_in(demo.client, demo.tokens[AUDITOR])

    page = demo.client.get("/admin/funders").text

    assert "Appropriations in" in page
    assert 'action="/admin/funders/contributions"' not in page
    assert 'action="/admin/funders/appropriations"' not in page


def test_the_forms_in_korean(demo: Demo) -> None:
    as_admin(demo)
    demo.client.cookies.set("gpupool_lang", "ko")

    page = demo.client.get("/admin/funders").text

    assert '<html lang="ko">' in page
    assert "출연금 기록" in page
    assert "프로그램에 배분" in page
    assert f"{period(demo)} 배분" in page
