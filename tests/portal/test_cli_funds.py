"""``gpupool funds``: an admin records contributions and appropriations through the REST API;
anyone else is refused and the ledger is unchanged."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.portal.conftest import Demo
from tests.portal.test_cli import Cli


@pytest.fixture
def gpupool(demo: Demo, tmp_path: Path) -> Cli:
    return Cli(demo, tmp_path / "home")


def last_entry(demo: Demo) -> int:
    with demo.books() as books:
        return books.ledger.last_id()


def test_an_admin_records_a_contribution_and_appropriates_it(gpupool: Cli, demo: Demo) -> None:
    period = gpupool.json("quota")["period"]
    before = {each["name"]: each for each in gpupool.json("funds")["programs"]}

    contributed = gpupool.ok(
        "funds", "contribute", "msit", "30000", "--reason", "supplementary budget"
    )
    appropriated = gpupool.ok(
        "funds",
        "appropriate",
        "universities",
        "35000.5",
        "--period",
        period,
        "--reason",
        "autumn call",
    )
    named = gpupool.json(
        "funds", "appropriate", "startups", "1000", "--funder", "msit", "--reason", "top-up"
    )
    shown = gpupool.ok("funds")
    after = gpupool.json("funds")

    assert contributed.splitlines()[0] == (
        f"msit: contributed 30000.0 credits to the pool in {period}"
    )
    assert contributed.splitlines()[1].startswith("msit 30000.0; ledger entry ")
    assert appropriated.splitlines()[0] == (
        f"universities: appropriated 35000.5 credits in {period}"
    )
    assert appropriated.splitlines()[1].startswith("gyeonggi 10000.0, msit 25000.5; ledger ")
    assert [(e["funder"], e["amount"]) for e in named["entries"]] == [("msit", "1000.0")]
    assert shown.splitlines()[0] == (
        f"period {period}    the pool holds 13999.5 credits for appropriation"
    )
    programs = {each["name"]: each for each in after["programs"]}
    assert programs["universities"]["appropriated"] == "175000.5"
    assert float(programs["universities"]["balances"]["available"]) == (
        float(before["universities"]["balances"]["available"]) + 35000.5
    )
    ledger = gpupool.json("ledger", "--kind", "contribution", "--funder", "msit", "--limit", "1")
    assert ledger["items"][0]["reason"] == "supplementary budget"
    assert ledger["items"][0]["actor"] == "admin"


def test_the_funds_table_as_csv(gpupool: Cli) -> None:
    rows = list(csv.DictReader(io.StringIO(gpupool.ok("funds", "--csv"))))

    assert {(row["kind"], row["name"]) for row in rows} == {
        ("funder", "gyeonggi"),
        ("funder", "msit"),
        ("program", "startups"),
        ("program", "universities"),
    }
    msit = next(row for row in rows if row["name"] == "msit")
    assert (msit["contributed"], msit["unappropriated"]) == ("200000.0", "10000.0")


@pytest.mark.parametrize("user", ["jaehyun.kim", "seoyeon.lee", "jiwoo.jung", "auditor.kim"])
def test_nobody_but_an_admin_moves_funds(gpupool: Cli, demo: Demo, user: str) -> None:
    before = last_entry(demo)

    contribute = gpupool("funds", "contribute", "msit", "10", "--reason", "x", user=user)
    appropriate = gpupool("funds", "appropriate", "universities", "10", "--reason", "x", user=user)

    assert contribute.exit_code == 3, contribute.output
    assert f"error: {user} may not record contributions" in contribute.output
    assert appropriate.exit_code == 3, appropriate.output
    assert f"error: {user} may not appropriate credits to programs" in appropriate.output
    assert last_entry(demo) == before


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("contribute", "busan", "10"), 1, "unknown funder 'busan'"),
        (("contribute", "msit", "0"), 1, "a contribution must be positive"),
        (("contribute", "msit", "ten"), 2, "'ten' is not an amount of credits"),
        (("contribute", "msit", "10", "--period", "1999-q1"), 1, "unknown period '1999-q1'"),
        (("appropriate", "kaist-nlp", "10"), 1, "kaist-nlp is a project, not a program"),
        (("appropriate", "startups", "20000.5"), 1, "needs more than the 20000.0"),
        (("appropriate", "startups", "10", "--funder", "busan"), 1, "unknown funder 'busan'"),
    ],
)
def test_refusals_exit_non_zero_and_change_nothing(
    gpupool: Cli, demo: Demo, args: tuple[str, ...], code: int, message: str
) -> None:
    before = last_entry(demo)

    result = gpupool("funds", *args, "--reason", "test")

    assert result.exit_code == code, result.output
    assert message in result.output
    assert last_entry(demo) == before


def test_a_reason_is_required(gpupool: Cli) -> None:
    result = gpupool("funds", "contribute", "msit", "10")

    assert result.exit_code == 2
    assert "--reason" in result.output
