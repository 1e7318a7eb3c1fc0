"""The ledger and audit-log API: read-only, scoped, paged newest first."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest

from tests.portal.conftest import Demo

API = "/api/v1"


def ledger(demo: Demo, user: str = "admin", **params: Any) -> Any:
    response = demo.client.get(f"{API}/ledger", params=params, headers=demo.headers(user))
    assert response.status_code == 200, response.text
    return response.json()


def accounts_of(page: Any) -> set[str]:
    return {
        pocket["account"]
        for item in page["items"]
        for pocket in (item["source"], item["target"])
        if pocket["account"]
    }


def test_admin_and_auditor_read_every_entry_newest_first(demo: Demo) -> None:
    admin = ledger(demo, limit=500)
    auditor = ledger(demo, "auditor.kim", limit=500)

    ids = [item["id"] for item in admin["items"]]
    assert ids == sorted(ids, reverse=True)
    assert admin["total"] == len(ids) == auditor["total"]
    contribution = admin["items"][-1]
    assert contribution["kind"] == "contribution"
    assert contribution["source"] == {"bucket": "funder", "account": None, "job": None}
    assert contribution["target"]["account"] == "national"
    assert contribution["amount"] == "200000.0"
    assert contribution["funder"] == "msit"


def test_filters_narrow_the_entries(demo: Demo) -> None:
    contributions = ledger(demo, kind="contribution")
    awards_to_hanbit = ledger(demo, kind="award", account="hanbit-robot-policy")
    gyeonggi = ledger(demo, funder="gyeonggi", kind=["contribution", "appropriation"])
    page = ledger(demo, limit=2, offset=1)

    assert [item["funder"] for item in contributions["items"]] == ["gyeonggi", "msit"]
    assert [item["amount"] for item in awards_to_hanbit["items"]] == ["6000.0"]
    assert awards_to_hanbit["items"][0]["allocation"] == 1
    assert {item["funder"] for item in gyeonggi["items"]} == {"gyeonggi"}
    assert gyeonggi["total"] == 3
    assert len(page["items"]) == 2
    assert page["offset"] == 1


def test_a_researcher_sees_only_their_projects_entries(demo: Demo) -> None:
    mine = ledger(demo, "jiwoo.jung", limit=500)
    outside = demo.client.get(
        f"{API}/ledger",
        params={"account": "snu-medical-imaging"},
        headers=demo.headers("jiwoo.jung"),
    )

    assert mine["total"] > 0
    touched = {"hanbit-robot-policy", "kaist-nlp"}
    assert all(
        {item["source"]["account"], item["target"]["account"]} & touched for item in mine["items"]
    )
    assert "snu-medical-imaging" not in accounts_of(mine)
    assert outside.status_code == 404


def test_a_program_manager_sees_their_programs_subtree(demo: Demo) -> None:
    startups = ledger(demo, "minji.park", limit=500)
    other = demo.client.get(
        f"{API}/ledger", params={"account": "kaist"}, headers=demo.headers("minji.park")
    )

    kinds = {item["kind"] for item in startups["items"]}
    assert kinds == {"appropriation", "award"}
    assert accounts_of(startups) <= {
        "national",
        "startups",
        "hanbit-robot-policy",
        "seoulvision-doc-ocr",
    }
    assert other.status_code == 404


@pytest.mark.parametrize(
    ("params", "status"),
    [
        ({"kind": "gift"}, 422),
        ({"period": "1999-q1"}, 404),
        ({"funder": "nobody"}, 404),
        ({"account": "nowhere"}, 404),
        ({"limit": 100_000}, 422),
        ({"offset": -1}, 422),
    ],
)
def test_bad_filters_are_refused(demo: Demo, params: dict[str, Any], status: int) -> None:
    response = demo.client.get(f"{API}/ledger", params=params, headers=demo.headers())

    assert response.status_code == status, response.text


def test_nobody_writes_the_ledger_through_the_api(demo: Demo) -> None:
    before = ledger(demo)["total"]

    posted = demo.client.post(
        f"{API}/ledger",
        json={"kind": "award", "amount": "1000000", "target": "kaist-nlp"},
        headers=demo.headers(),
    )

    assert posted.status_code == 405
    assert ledger(demo)["total"] == before


def test_the_audit_log_is_for_admin_and_auditor(demo: Demo) -> None:
    demo.client.patch(
        f"{API}/accounts/kaist", json={"share": 4}, headers=demo.headers("jaehyun.kim")
    )

    auditor = demo.client.get(
        f"{API}/audit", params={"action": "account.update"}, headers=demo.headers("auditor.kim")
    )
    by_target = demo.client.get(
        f"{API}/audit", params={"target": "account/kaist-nlp"}, headers=demo.headers()
    )
    by_actor = demo.client.get(
        f"{API}/audit", params={"actor": "jaehyun.kim", "limit": 1}, headers=demo.headers()
    )
    manager = demo.client.get(f"{API}/audit", headers=demo.headers("jaehyun.kim"))
    researcher = demo.client.get(f"{API}/audit", headers=demo.headers("jiwoo.jung"))

    [entry] = auditor.json()["items"]
    assert entry["actor"] == "jaehyun.kim"
    assert entry["target"] == "account/kaist"
    assert (entry["before"]["share"], entry["after"]["share"]) == (2, 4)
    assert {item["target"] for item in by_target.json()["items"]} == {"account/kaist-nlp"}
    assert by_actor.json()["items"][0]["action"] == "account.update"
    assert by_actor.json()["total"] >= 1
    assert manager.status_code == 403
    assert researcher.status_code == 403


def csv_rows(demo: Demo, path: str, user: str = "admin", **params: Any) -> list[dict[str, str]]:
    response = demo.client.get(
        f"{API}{path}", params={**params, "format": "csv"}, headers=demo.headers(user)
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_the_ledger_downloads_as_csv_with_the_rows_and_filters_of_its_json(demo: Demo) -> None:
    page = ledger(demo, "jiwoo.jung", limit=500, kind=["award"])
    rows = csv_rows(demo, "/ledger", "jiwoo.jung", limit=500, kind=["award"])
    total = demo.client.get(
        f"{API}/ledger", params={"format": "csv", "limit": 1}, headers=demo.headers()
    )

    assert [int(row["id"]) for row in rows] == [item["id"] for item in page["items"]]
    first, item = rows[0], page["items"][0]
    assert first["kind"] == "award"
    assert first["amount"] == item["amount"]
    assert first["target.account"] == item["target"]["account"]
    assert first["source.bucket"] == item["source"]["bucket"]
    assert set(first) >= {"at", "period", "funder", "actor", "reason", "allocation", "reverses"}
    assert "snu-medical-imaging" not in {row["target.account"] for row in rows}
    assert total.headers["x-total-count"] == str(ledger(demo)["total"])
    assert len(list(csv.reader(io.StringIO(total.text)))) == 2  # the header and one row


def test_the_audit_log_downloads_as_csv_for_admin_and_auditor_only(demo: Demo) -> None:
    demo.client.patch(
        f"{API}/accounts/kaist", json={"share": 4}, headers=demo.headers("jaehyun.kim")
    )

    [row] = csv_rows(demo, "/audit", "auditor.kim", action="account.update")
    refused = demo.client.get(
        f"{API}/audit", params={"format": "csv"}, headers=demo.headers("jiwoo.jung")
    )

    assert (row["actor"], row["action"], row["target"]) == (
        "jaehyun.kim",
        "account.update",
        "account/kaist",
    )
    assert json.loads(row["before"])["share"] == 2
    assert json.loads(row["after"])["share"] == 4
    assert refused.status_code == 403
