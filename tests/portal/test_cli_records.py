"""``gpupool ledger``, ``audit``, ``clusters`` and ``tokens``: the records the pages show,
on the command line, as a table fitted to a terminal, the API's JSON or the API's CSV."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from quotas.outages import NodeOutage
from tests.portal.conftest import Demo
from tests.portal.test_cli import URL, Cli


@pytest.fixture
def gpupool(demo: Demo, tmp_path: Path) -> Cli:
    return Cli(demo, tmp_path / "home")


def rows_of(output: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(output)))


def fits(output: str) -> bool:
    return max(len(line) for line in output.splitlines()) <= 100


def test_the_ledger_reads_as_a_table_json_or_the_apis_csv(gpupool: Cli) -> None:
    table = gpupool.ok("ledger", "--kind", "award", "--account", "hanbit-robot-policy")
    as_json = gpupool.json("ledger", "--kind", "contribution")
    as_csv = gpupool.ok("ledger", "--funder", "gyeonggi", "--limit", "2", "--csv")
    direct = gpupool.demo.client.get(
        "/api/v1/ledger",
        params={"funder": "gyeonggi", "limit": 2, "format": "csv"},
        headers=gpupool.demo.headers(),
    )

    header, *row = table.splitlines()
    assert header.split() == ["id", "at", "kind", "amount", "from", "->", "to", "funder", "reason"]
    assert " ".join(" ".join(row).split()).endswith(
        "award 6000.0 startups -> hanbit-robot-policy gyeonggi allocation request 1, tranche 1 of 2"
    )  # the reason, the last column, wraps onto a second line
    assert [item["funder"] for item in as_json["items"]] == ["gyeonggi", "msit"]
    assert rows_of(as_csv) == rows_of(direct.text)
    assert len(rows_of(as_csv)) == 2
    assert fits(gpupool.ok("ledger", "--limit", "500"))


def test_the_ledger_is_scoped_and_pages_say_how_to_see_more(gpupool: Cli) -> None:
    mine = rows_of(gpupool.ok("ledger", "--csv", "--limit", "500", user="jiwoo.jung"))
    first_page = gpupool.ok("ledger", "--limit", "3")
    outside = gpupool("ledger", "--account", "snu-medical-imaging", user="jiwoo.jung")

    accounts = {row["source.account"] for row in mine} | {row["target.account"] for row in mine}
    assert "snu-medical-imaging" not in accounts
    assert first_page.splitlines()[-1].startswith("(3 of ")
    assert first_page.splitlines()[-1].endswith("; --offset 3 for more)")
    assert outside.exit_code == 1
    assert "no account snu-medical-imaging" in outside.output


def test_the_audit_log_shows_who_changed_what_for_admin_and_auditor(gpupool: Cli) -> None:
    gpupool.ok("quota", "set-share", "kaist", "4", user="jaehyun.kim")

    table = gpupool.ok("audit", "--action", "account.update", user="auditor.kim")
    as_csv = rows_of(gpupool.ok("audit", "--actor", "jaehyun.kim", "--csv"))
    refused = gpupool("audit", user="jiwoo.jung")

    [row] = table.splitlines()[1:]
    assert "jaehyun.kim  account.update  account/kaist  share 2 -> 4" in row
    assert as_csv[0]["action"] == "account.update"
    assert refused.exit_code == 3


def test_clusters_show_capacity_free_and_down(gpupool: Cli) -> None:
    with gpupool.demo.books() as books:
        books.outages.start(
            [
                NodeOutage(
                    "national-daejeon", "h100-80g", 1, 8, datetime.now(UTC) - timedelta(hours=1)
                )
            ]
        )

    table = gpupool.ok("clusters", user="jiwoo.jung")
    as_csv = rows_of(gpupool.ok("clusters", "--csv"))

    lines = table.splitlines()
    assert lines[0].split() == [
        "cluster", "site", "backend", "tenancy", "flavor", "nodes", "total", "allocated", "down",
        "free",
    ]  # fmt: skip
    daejeon_h100 = next(line.split() for line in lines if "h100-80g" in line)
    assert " ".join(daejeon_h100) == "national-daejeon national ray shared h100-80g 2x8 16 0 8 8"
    assert lines[-1] == "72 of 80 GPUs free now; 8 down"
    assert {(row["name"], row["flavor"], row["down"]) for row in as_csv} >= {
        ("national-daejeon", "h100-80g", "8"),
        ("national-gwangju", "v100-32g", "0"),
    }
    assert fits(table)


def test_tokens_are_listed_created_and_revoked(gpupool: Cli) -> None:
    made = gpupool.json(
        "tokens", "create", "lab server", "--scope", "read", "--expires", "30d", user="jiwoo.jung"
    )
    listed = gpupool.ok("tokens", "list", user="jiwoo.jung")
    signed_in = gpupool("whoami", user=None, GPUPOOL_URL=URL, GPUPOOL_TOKEN=made["token"])
    revoked = gpupool.ok("tokens", "revoke", str(made["id"]), user="jiwoo.jung")
    refused = gpupool("whoami", user=None, GPUPOOL_URL=URL, GPUPOOL_TOKEN=made["token"])

    assert made["scopes"] == ["read"]
    assert made["expires_at"] is not None
    assert "lab server" in listed
    assert made["token"] not in listed
    assert signed_in.exit_code == 0, signed_in.output
    assert "user: jiwoo.jung" in signed_in.output
    assert revoked == f"token {made['id']} revoked\n"
    assert refused.exit_code == 3
    assert "lab server" not in gpupool.ok("tokens", "list", user="jiwoo.jung")


def test_a_new_token_is_shown_once_with_its_scopes(gpupool: Cli) -> None:
    printed = gpupool.ok("tokens", "create", "notebook", user="jiwoo.jung")

    first, second = printed.splitlines()
    assert first.startswith("token ")
    assert "(notebook): jobs, manage, read; expires never" in first
    assert second.startswith("secret (shown once): gpp_")


def test_each_list_prints_the_apis_csv(gpupool: Cli) -> None:
    jobs = gpupool.ok("jobs", "--csv", user="jiwoo.jung")
    requests = rows_of(gpupool.ok("request", "list", "--csv"))
    both = gpupool("ledger", "--csv", "--json")

    assert jobs.splitlines()[0].startswith("id,name,project,submitter,")
    assert {row["project"] for row in requests} >= {"kaist-nlp", "hanbit-robot-policy"}
    assert both.exit_code == 2
