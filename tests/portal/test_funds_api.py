"""The pool's funds through the API: an admin records a funder's contribution and appropriates
the pool's credits to a program; the ledger, the pool's and the program's balances and
``GET /api/v1/funds`` show it. Refusals are problem documents and change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from tests.portal.conftest import Demo

API = "/api/v1"


def period(demo: Demo) -> str:
    answer = demo.client.get(f"{API}/accounts", headers=demo.headers())
    name: str = answer.json()["period"]
    return name


def available(demo: Demo, account: str) -> str:
    answer = demo.client.get(f"{API}/accounts/{account}", headers=demo.headers())
    assert answer.status_code == 200, answer.text
    credits: str = answer.json()["balances"]["available"]
    return credits


def funds(demo: Demo, user: str = "admin") -> dict[str, Any]:
    answer = demo.client.get(f"{API}/funds", headers=demo.headers(user))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def last_entry(demo: Demo) -> int:
    with demo.books() as books:
        return books.ledger.last_id()


def test_a_contribution_grows_the_pool_and_is_in_the_ledger(demo: Demo) -> None:
    name = period(demo)
    pool_before = available(demo, "national")

    answer = demo.client.post(
        f"{API}/funders/gyeonggi/contributions",
        json={"period": name, "credits": "7500.25", "reason": "supplementary budget"},
        headers=demo.headers(),
    )
    ledger = demo.client.get(
        f"{API}/ledger",
        params={"kind": "contribution", "funder": "gyeonggi"},
        headers=demo.headers("auditor.kim"),
    ).json()
    after = funds(demo, "auditor.kim")

    assert answer.status_code == 201, answer.text
    posted = answer.json()
    assert posted["period"] == name
    assert posted["credits"] == "7500.250"
    [entry] = posted["entries"]
    assert entry["kind"] == "contribution"
    assert entry["funder"] == "gyeonggi"
    assert entry["target"] == {"bucket": "available", "account": "national", "job": None}
    assert (entry["actor"], entry["reason"]) == ("admin", "supplementary budget")
    assert ledger["items"][0]["id"] == entry["id"]
    assert ledger["items"][0]["amount"] == "7500.250"
    assert float(available(demo, "national")) == float(pool_before) + 7500.25
    gyeonggi = next(each for each in after["funders"] if each["name"] == "gyeonggi")
    assert gyeonggi == {
        "name": "gyeonggi",
        "contributed": "57500.250",
        "unappropriated": "17500.250",
    }
    assert after["unappropriated"] == "27500.250"


def test_an_appropriation_moves_the_pools_credits_to_the_program(demo: Demo) -> None:
    name = period(demo)
    program_before = available(demo, "startups")
    pool_before = available(demo, "national")

    answer = demo.client.post(
        f"{API}/accounts/startups/appropriations",
        json={"period": name, "credits": "12000", "reason": "second call"},
        headers=demo.headers(),
    )
    named = demo.client.post(
        f"{API}/accounts/universities/appropriations",
        json={"period": name, "credits": "3000", "reason": "msit only", "funder": "msit"},
        headers=demo.headers(),
    )
    after = funds(demo)

    assert answer.status_code == 201, answer.text
    assert named.status_code == 201, named.text
    assert {(e["funder"], e["amount"]) for e in answer.json()["entries"]} == {
        ("gyeonggi", "10000.0"),
        ("msit", "2000.0"),
    }
    assert [(e["funder"], e["amount"]) for e in named.json()["entries"]] == [("msit", "3000.0")]
    assert float(available(demo, "startups")) == float(program_before) + 12_000
    assert available(demo, "national") == pool_before  # the pool's subtree holds the same
    programs = {each["name"]: each for each in after["programs"]}
    assert programs["startups"]["appropriated"] == "102000.0"
    assert programs["startups"]["by_funder"] == {"gyeonggi": "40000.0", "msit": "62000.0"}
    assert programs["universities"]["appropriated"] == "143000.0"
    assert programs["startups"]["balances"]["available"] == available(demo, "startups")
    assert after["unappropriated"] == "5000.0"
    ledger = demo.client.get(
        f"{API}/ledger",
        params={"kind": "appropriation", "account": "startups", "limit": 2},
        headers=demo.headers("minji.park"),
    ).json()
    assert {item["reason"] for item in ledger["items"]} == {"second call"}


@pytest.mark.parametrize(
    ("path", "body", "status", "detail"),
    [
        ("funders/busan/contributions", {}, 404, "unknown funder 'busan'"),
        ("funders/msit/contributions", {"period": "1999-q1"}, 404, "unknown period '1999-q1'"),
        ("funders/msit/contributions", {"credits": "0"}, 422, "must be positive"),
        ("funders/msit/contributions", {"credits": "-5"}, 422, "credits"),
        ("funders/msit/contributions", {"credits": "1e9"}, 422, "credits"),
        ("funders/msit/contributions", {"credits": "1000000000000"}, 422, "credits"),
        ("funders/msit/contributions", {"credits": "0.0001"}, 422, "credits"),
        ("funders/msit/contributions", {"reason": ""}, 422, "reason"),
        ("funders/msit/contributions", {"extra": 1}, 422, "extra"),
        ("accounts/kaist-nlp/appropriations", {}, 422, "kaist-nlp is a project, not a program"),
        ("accounts/kaist/appropriations", {}, 422, "not a program"),
        ("accounts/nowhere/appropriations", {}, 404, "no account nowhere"),
        ("accounts/startups/appropriations", {"credits": "20000.001"}, 409, "needs more than"),
        ("accounts/startups/appropriations", {"funder": "msit", "credits": "10001"}, 409, "msit"),
        ("accounts/startups/appropriations", {"funder": "busan"}, 404, "unknown funder"),
        ("accounts/startups/appropriations", {"credits": "0"}, 422, "must be positive"),
    ],
)
def test_refusals_are_problems_and_change_nothing(
    demo: Demo, path: str, body: dict[str, Any], status: int, detail: str
) -> None:
    base = {"period": period(demo), "credits": "100", "reason": "test"}
    before = last_entry(demo)

    answer = demo.client.post(f"{API}/{path}", json=base | body, headers=demo.headers())

    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert detail in answer.text
    assert last_entry(demo) == before


def test_only_admin_and_auditor_read_the_funds(demo: Demo) -> None:
    assert demo.client.get(f"{API}/funds", headers=demo.headers("minji.park")).status_code == 403
    assert demo.client.get(f"{API}/funds?period=1999", headers=demo.headers()).status_code == 404
    assert funds(demo)["period"] == period(demo)
