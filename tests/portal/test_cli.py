"""The gpupool CLI: set up and seed the books, show them, price a job; clear errors, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from portal.cli import app


@pytest.fixture
def gpupool(fresh_database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"GPUPOOL_DATABASE_URL": fresh_database_url, "GPUPOOL_DATA_DIR": str(tmp_path)}

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env)

    return invoke


def test_init_demo_seeds_once_and_reports_what_it_did(gpupool) -> None:  # type: ignore[no-untyped-def]
    first = gpupool("init", "--demo")
    second = gpupool("init", "--demo")

    assert first.exit_code == 0, first.output
    assert "contribution: msit 200,000 credits" in first.output
    assert "kaist-nlp asks 30,000 credits -> adjusted" in first.output
    assert "cluster national-daejeon (ray, national): 2x8 h100-80g, 2x8 a100-80g" in first.output
    assert second.exit_code == 0
    assert "already seeded" in second.output


def test_quota_shows_the_tree_with_exact_balances(gpupool) -> None:  # type: ignore[no-untyped-def]
    gpupool("init", "--demo")

    shown = gpupool("quota")

    assert shown.exit_code == 0, shown.output
    rows = {line.split()[0]: line.split()[1:] for line in shown.output.splitlines()[2:]}
    assert rows["national"][-1] == "250000.0"
    assert rows["kaist"][1:] == ["40000.0", "0.0", "0.0", "32000.0"]
    assert rows["kaist-nlp"][-1] == "24000.0"


def test_quote_prices_each_flavor_best_deal_first(gpupool) -> None:  # type: ignore[no-untyped-def]
    gpupool("init", "--demo")

    shown = gpupool("quote", "--gpus", "8", "--time-limit", "4h")

    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert [line.split()[:3] for line in lines[2:]] == [
        ["a100-80g", "0.8", "25.6"],
        ["h100-80g", "1.0", "32.0"],
        ["v100-32g", "0.25", "8.0"],
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("quote", "--gpus", "0", "--time-limit", "4h"), 1, "at least one GPU"),
        (("quote", "--gpus", "1", "--time-limit", "4h", "--flavor", "x100"), 1, "unknown flavor"),
        (("quote", "--gpus", "1", "--time-limit", "four hours"), 2, "cannot read duration"),
        (("quota", "--period", "1999-q1"), 1, "unknown period"),
    ],
)
def test_errors_are_one_clear_line_with_a_scriptable_exit_code(  # type: ignore[no-untyped-def]
    gpupool, args: tuple[str, ...], code: int, message: str
) -> None:
    gpupool("init", "--demo")

    result = gpupool(*args)

    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_fairshare_explains_the_order(gpupool) -> None:  # type: ignore[no-untyped-def]
    gpupool("init", "--demo")

    shown = gpupool("fairshare")

    assert shown.exit_code == 0, shown.output
    assert "universities" in shown.output
    assert shown.output.splitlines()[-1].startswith("order: kaist-nlp, kaist-protein")


def test_submit_shows_the_quote_and_the_job_waits_in_the_queue(gpupool) -> None:  # type: ignore[no-untyped-def]
    gpupool("init", "--demo")

    submitted = gpupool(
        "submit",
        "--project",
        "kaist-nlp",
        "--gpus",
        "8",
        "--flavor",
        "h100-80g",
        "--time-limit",
        "4h",
        "--name",
        "sft",
        "--submitter",
        "seoyeon.lee",
        "python train.py",
    )
    job_id = submitted.output.split()[1]
    listed = gpupool("jobs", "--project", "kaist-nlp")
    shown = gpupool("job", job_id)

    assert submitted.exit_code == 0, submitted.output
    assert "quote: h100-80g 32.0 credits" in submitted.output
    assert job_id in listed.output
    assert "queued" in listed.output
    assert "asked: 8 GPUs, time limit 4h, flavors h100-80g" in shown.output
    assert "- -> queued  submitted" in shown.output


def test_cancel_of_a_queued_job_takes_effect_at_once(gpupool) -> None:  # type: ignore[no-untyped-def]
    gpupool("init", "--demo")
    submitted = gpupool("submit", "--project", "kaist-nlp", "echo hi")
    job_id = submitted.output.split()[1]

    cancelled = gpupool("cancel", job_id, "--as", "seoyeon.lee")

    assert cancelled.exit_code == 0, cancelled.output
    assert f"{job_id} is cancelled" in cancelled.output
    assert "queued -> cancelled  cancelled by seoyeon.lee" in gpupool("job", job_id).output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("submit", "--project", "kaist-nlp", "  "), "needs an entrypoint"),
        (("submit", "--project", "kaist", "echo"), "not a project"),
        (("submit", "--project", "kaist-nlp", "--time-limit", "100h", "echo"), "over the cap"),
        (("job", "gp-000000000000"), "no job gp-000000000000"),
    ],
)
def test_bad_submissions_are_refused_with_a_reason(  # type: ignore[no-untyped-def]
    gpupool, args: tuple[str, ...], message: str
) -> None:
    gpupool("init", "--demo")

    result = gpupool(*args)

    assert result.exit_code == 1
    assert message in result.output
