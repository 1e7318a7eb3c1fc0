"""The CLI's quota, allocation-request and report commands through the REST API."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from portal.api import reports
from quotas.quantities import Credits
from tests.portal.conftest import Demo
from tests.portal.test_cli import Cli

needs_reports = pytest.mark.skipif(
    "/reports/fairshare" not in {getattr(route, "path", "") for route in reports.router.routes},
    reason="the reports API is not there yet",
)


@pytest.fixture
def gpupool(demo: Demo, tmp_path: Path) -> Cli:
    return Cli(demo, tmp_path / "home")


def rows(output: str) -> dict[str, list[str]]:
    """A table's rows by their first cell, below the period line and the header."""
    return {line.split()[0]: line.split()[1:] for line in output.splitlines()[2:]}


def test_quota_shows_the_tree_with_exact_balances(gpupool: Cli) -> None:
    output = gpupool.ok("quota")

    assert output.splitlines()[0].startswith("period ")
    tree = rows(output)
    assert tree["national"][-1] == "250000.0"
    assert tree["kaist"] == ["organization", "2", "40000.0", "0.0", "0.0", "32000.0"]
    assert tree["kaist-nlp"][-1] == "24000.0"
    indent = {line.split()[0]: len(line) - len(line.lstrip()) for line in output.splitlines()}
    assert indent["national"] < indent["universities"] < indent["kaist"] < indent["kaist-nlp"]


def test_a_researcher_sees_only_their_projects_in_the_tree(gpupool: Cli) -> None:
    tree = rows(gpupool.ok("quota", user="jiwoo.jung"))

    assert set(tree) == {"kaist-nlp", "hanbit-robot-policy"}


def test_a_program_manager_sets_a_share_and_a_budget(gpupool: Cli) -> None:
    shared = gpupool.ok("quota", "set-share", "kaist-nlp", "3", user="jaehyun.kim")
    budgeted = gpupool.ok("quota", "set-budget", "kaist-nlp", "20000", user="jaehyun.kim")
    after = gpupool.json("quota", user="jaehyun.kim")

    assert shared.strip() == "kaist-nlp: share 3"
    assert budgeted.startswith("kaist-nlp: budget 20000 credits in ")
    account = next(each for each in after["accounts"] if each["name"] == "kaist-nlp")
    assert account["share"] == 3
    assert account["budget"] == "20000.0"


def test_a_researcher_may_not_set_a_share(gpupool: Cli) -> None:
    result = gpupool("quota", "set-share", "kaist-nlp", "3", user="jiwoo.jung")

    assert result.exit_code == 3
    assert "error: jiwoo.jung may not change account kaist-nlp" in result.output
    assert gpupool.json("quota")["accounts"][0]["share"] == 1


def test_an_allocation_request_is_drafted_submitted_adjusted_and_released(gpupool: Cli) -> None:
    created = gpupool.json(
        "request",
        "create",
        "--project",
        "kaist-nlp",
        "--requested",
        "8000",
        "--justification",
        "Pretraining a Korean LLM",
        "--flavor",
        "h100-80g",
        "--tranche",
        "50",
        "--tranche",
        "50",
        user="seoyeon.lee",
    )
    number = str(created["id"])

    submitted = gpupool.ok("request", "submit", number, user="seoyeon.lee")
    refused = gpupool("request", "review", number, "approve", "--reason", "ok", user="seoyeon.lee")
    reviewed = gpupool.ok(
        "request",
        "review",
        number,
        "adjust",
        "--awarded",
        "6000",
        "--reason",
        "the program is oversubscribed",
        user="jaehyun.kim",
    )
    released = gpupool.ok("request", "release", number, "2", user="jaehyun.kim")
    listed = gpupool.ok("request", "list", "--project", "kaist-nlp", user="seoyeon.lee")
    shown = gpupool.ok("request", "show", number, user="seoyeon.lee")

    assert created["state"] == "draft"
    assert submitted.startswith(f"allocation request {number}: kaist-nlp asks 8000")
    assert "submitted" in submitted
    assert refused.exit_code == 3
    assert "adjusted, awarded 6000" in reviewed
    assert "reviewed by jaehyun.kim: the program is oversubscribed" in reviewed
    assert "tranche 2 released" in released
    row = next(line.split() for line in listed.splitlines() if line.split()[0] == number)
    assert row[1:] == [
        "kaist-nlp",
        created["period"],
        "adjusted",
        "8000.0",
        "6000.0",
        "jaehyun.kim",
    ]
    assert "justification: Pretraining a Korean LLM" in shown
    tranches = [line.split()[:2] for line in shown.splitlines()[-2:]]
    assert tranches == [["1", "3000.0"], ["2", "3000.0"]]
    assert "no" not in shown.splitlines()[-1]


def test_a_draft_can_be_withdrawn_and_then_not_submitted(gpupool: Cli) -> None:
    created = gpupool.json(
        "request",
        "create",
        "--project",
        "kaist-nlp",
        "--requested",
        "100",
        "--justification",
        "a try",
        user="seoyeon.lee",
    )
    number = str(created["id"])

    withdrawn = gpupool.ok("request", "withdraw", number, user="seoyeon.lee")
    again = gpupool("request", "submit", number, user="seoyeon.lee")

    assert "withdrawn" in withdrawn
    assert again.exit_code == 1
    assert "Traceback" not in again.output


@needs_reports
def test_report_csv_prints_the_apis_csv(gpupool: Cli) -> None:
    output = gpupool.ok("report", "fairshare", "--csv")

    table = list(csv.reader(io.StringIO(output)))
    assert len(table) > 2
    assert len({len(row) for row in table}) == 1
    assert any("kaist-nlp" in row for row in table)


@needs_reports
@pytest.mark.parametrize("report", ["fairshare", "utilisation", "spend", "wait-times"])
def test_each_report_reads_as_a_table_or_json(gpupool: Cli, report: str) -> None:
    shown = gpupool("report", report)
    as_json = gpupool("report", report, "--json")

    assert shown.exit_code == 0, shown.output
    assert as_json.exit_code == 0, as_json.output
    assert as_json.output.lstrip()[:1] in "{["


@needs_reports
def test_the_fairshare_report_is_drawn_as_the_account_tree(gpupool: Cli) -> None:
    def without_time(output: str) -> list[str]:
        return [line for line in output.splitlines() if not line.startswith("at: ")]

    shown = gpupool.ok("report", "fairshare")

    lines = shown.splitlines()
    header = next(line.split() for line in lines if line.startswith("name"))
    assert header[:3] == ["name", "kind", "share"]
    indent = {line.split()[0]: len(line) - len(line.lstrip()) for line in lines if line}
    assert indent["national"] < indent["universities"] < indent["kaist"] < indent["kaist-nlp"]
    assert max(len(line) for line in lines) <= 100  # drawn in parts, each led by the name
    assert sum(line.startswith("name ") for line in lines) > 1
    assert without_time(gpupool.ok("fairshare")) == without_time(shown)


@needs_reports
def test_a_report_refuses_an_unknown_grouping(gpupool: Cli) -> None:
    result = gpupool("report", "spend", "--by", "colour")

    assert result.exit_code == 1
    assert "by" in result.output


@needs_reports
def test_credits_that_outlast_the_period_are_not_exhausted_within_it(
    gpupool: Cli, demo: Demo
) -> None:
    with demo.books() as books:
        period = books.current_period()
        books.hold("kaist-nlp", "gp-burn-1", Credits.of(7), "test", "a job", period.name)
        books.charge("kaist-nlp", "gp-burn-1", Credits.of(7), "test", "ran", period.name)

    shown = gpupool.ok("report", "fairshare")
    as_json = gpupool.json("report", "fairshare")

    nlp = next(row for row in as_json["rows"] if row["name"] == "kaist-nlp")
    assert nlp["outlasts_period"] is True  # 1 credit a day, 23,993 left
    lines = [line for line in shown.splitlines() if line.strip().startswith("kaist-nlp ")]
    assert any("not within the period" in line for line in lines)
    assert nlp["exhausted_on"] not in shown


@needs_reports
def test_a_report_window_may_be_a_duration_before_now(gpupool: Cli) -> None:
    last_day = gpupool.json("report", "utilisation", "--since", "24h")
    waits = gpupool.json("report", "wait-times", "--since", "7d")
    refused = gpupool("report", "utilisation", "--since", "yesterday")

    since, until = (datetime.fromisoformat(last_day[key]) for key in ("since", "until"))
    assert until - since == timedelta(hours=24)
    week = datetime.fromisoformat(waits["until"]) - datetime.fromisoformat(waits["since"])
    assert week == timedelta(days=7)
    assert refused.exit_code == 1
    assert "neither a time (ISO 8601) nor a duration such as 24h or 7d" in refused.output
