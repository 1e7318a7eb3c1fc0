"""The CLI's job commands through the REST API: submit with its quote, the queue, one job,
logs, cancel, and what a user may not see."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from jobs.model import JobState
from jobs.repository import JobRepository
from quotas.causes import OverWholeBudget
from quotas.clock import utc_now
from quotas.db.session import session_factory, transaction
from quotas.quantities import Credits
from scheduler.backends.simulated import SimulatedBackend
from scheduler.cycle import CycleReport, Scheduler
from scheduler.settings import SchedulerSettings
from tests.portal.conftest import Demo
from tests.portal.test_cli import Cli


@pytest.fixture
def gpupool(demo: Demo, tmp_path: Path) -> Cli:
    return Cli(demo, tmp_path / "home")


def submit(gpupool: Cli, *args: str, user: str = "jiwoo.jung") -> str:
    output = gpupool.ok("submit", "--project", "kaist-nlp", *args, "python train.py", user=user)
    return output.split()[1]


def scheduler_cycle(demo: Demo) -> None:
    """One admission step on the demo's national h100 cluster: two 8-GPU nodes."""
    backends = {"national-daejeon": SimulatedBackend(utc_now, {"h100-80g": (2, 8)})}
    Scheduler(session_factory(demo.engine), backends, SchedulerSettings()).admit(CycleReport())


def test_submit_shows_the_job_id_and_the_quote(gpupool: Cli) -> None:
    output = gpupool.ok(
        "submit",
        "--project",
        "kaist-nlp",
        "--gpus",
        "8",
        "--flavor",
        "h100-80g",
        "--flavor",
        "a100-80g",
        "--time-limit",
        "4h",
        "--name",
        "sft",
        "python train.py",
        user="jiwoo.jung",
    )

    lines = output.splitlines()
    assert lines[0].startswith("submitted gp-")
    assert lines[0].endswith("(sft) to kaist-nlp: 8 GPUs for 4h; queued")
    assert [line.split()[:3] for line in lines[3:]] == [
        ["a100-80g", "0.8", "25.6"],
        ["h100-80g", "1.0", "32.0"],
    ]


def table_rows(output: str) -> dict[str, str]:
    """A table's rows by their first cell, each with the wrapped rest of its last cell."""
    rows: dict[str, str] = {}
    key = ""
    for line in output.splitlines()[1:]:
        if line.startswith(" ") and key:
            rows[key] += " " + line.strip()
        elif line.strip():
            key = line.split()[0]
            rows[key] = line
    return rows


def test_jobs_and_job_show_where_a_job_runs_and_why_another_waits(gpupool: Cli) -> None:
    h100_for_4h = ("--gpus", "8", "--flavor", "h100-80g", "--time-limit", "4h")
    first = submit(gpupool, *h100_for_4h)
    submit(gpupool, *h100_for_4h)
    job_id = submit(gpupool, *h100_for_4h)
    scheduler_cycle(gpupool.demo)
    detail = gpupool.json("job", job_id, user="jiwoo.jung")

    listed = gpupool.ok("jobs", user="jiwoo.jung")
    shown = gpupool.ok("job", job_id, user="jiwoo.jung")
    placed = gpupool.ok("job", first, user="jiwoo.jung")

    assert detail["state"] == "queued"
    assert detail["reason"]
    rows = table_rows(listed)
    assert max(len(line) for line in listed.splitlines()) <= 100
    assert rows[first].split()[4:] == [
        "admitted",
        *rows[first].split()[5:7],
        "national-daejeon",
        "h100-80g",
    ]
    assert f"#{detail['position']} {detail['reason']}" in rows[job_id]
    assert f"reason: {detail['reason']}" in shown
    assert f"position: {detail['position']}; estimated start: " in shown
    assert "placed: national-daejeon h100-80g at 1.0 credits/GPU-h (rate card v1)" in placed
    assert "asked: 8 GPUs, time limit 4h, flavors h100-80g; by jiwoo.jung" in shown
    assert "charged: 0.0 credits" in shown
    assert "- -> queued  submitted" in shown


def test_jobs_lists_finished_jobs_only_with_all(gpupool: Cli) -> None:
    waiting = submit(gpupool)
    cancelled = submit(gpupool)
    gpupool.ok("cancel", cancelled, user="jiwoo.jung")

    default = gpupool.ok("jobs", user="jiwoo.jung")
    everything = gpupool.ok("jobs", "--all", user="jiwoo.jung")
    only = gpupool.ok("jobs", "--state", "cancelled", user="jiwoo.jung")

    assert waiting in default
    assert cancelled not in default
    assert waiting in everything
    assert cancelled in everything
    assert cancelled in only
    assert waiting not in only


def test_json_prints_the_apis_answer(gpupool: Cli) -> None:
    job_id = submit(gpupool)

    page = gpupool.json("jobs", "--project", "kaist-nlp", user="jiwoo.jung")
    one = gpupool.json("job", job_id, user="jiwoo.jung")

    assert [job["id"] for job in page["items"]] == [job_id]
    assert page["total"] == 1
    assert one["id"] == job_id
    assert one["events"][0]["to_state"] == "queued"


def test_cancel_of_a_queued_job_takes_effect_at_once(gpupool: Cli) -> None:
    job_id = submit(gpupool)

    cancelled = gpupool.ok("cancel", job_id, user="jiwoo.jung")

    assert f"{job_id} is cancelled" in cancelled
    assert "queued -> cancelled  cancelled by jiwoo.jung" in gpupool.ok("job", job_id)


def test_logs_of_a_job_that_has_not_run_say_so(gpupool: Cli) -> None:
    job_id = submit(gpupool)
    waiting = gpupool("logs", job_id, user="jiwoo.jung")
    gpupool.ok("cancel", job_id, user="jiwoo.jung")

    followed = gpupool("logs", "-f", job_id, user="jiwoo.jung")

    assert waiting.exit_code == 0, waiting.output
    assert f"{job_id} has not run (queued)" in waiting.output
    assert followed.exit_code == 0, followed.output
    assert f"{job_id} has not run (cancelled" in followed.output


def test_another_projects_job_is_not_found(gpupool: Cli) -> None:
    other = submit(gpupool, user="seoyeon.lee")
    gpupool.ok("submit", "--project", "kaist-protein", "echo", user="seoyeon.lee")

    shown = gpupool("job", other, user="sungmin.yoon")
    cancelled = gpupool("cancel", other, user="sungmin.yoon")

    assert shown.exit_code == 1
    assert f"no job {other}" in shown.output
    assert cancelled.exit_code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("submit", "--project", "kaist-nlp", "  "), "entrypoint"),
        (("submit", "--project", "kaist", "echo"), "no project kaist"),
        (("submit", "--project", "kaist-nlp", "--time-limit", "100h", "echo"), "over the cap"),
        (("submit", "--project", "kaist-nlp", "--gpus", "24", "echo"), "could never run"),
        (("submit", "--project", "snu-medical-imaging", "echo"), "no project"),
    ],
)
def test_bad_submissions_are_refused_with_a_reason(
    gpupool: Cli, args: tuple[str, ...], message: str
) -> None:
    result = gpupool(*args, user="jiwoo.jung")

    assert result.exit_code == 1, result.output
    assert message in result.output


def test_quote_prices_each_flavor_best_deal_first(gpupool: Cli) -> None:
    output = gpupool.ok("quote", "--gpus", "8", "--time-limit", "4h", user="jiwoo.jung")

    lines = output.splitlines()
    assert lines[0].startswith("rate card v1: 8 GPUs for 4h")
    assert [line.split()[:3] for line in lines[2:]] == [
        ["a100-80g", "0.8", "25.6"],
        ["h100-80g", "1.0", "32.0"],
        ["v100-32g", "0.25", "8.0"],
    ]


def test_a_rejected_job_stays_in_the_default_list_with_its_reason(gpupool: Cli, demo: Demo) -> None:
    job_id = submit(gpupool)
    with transaction(session_factory(demo.engine)) as session:
        jobs = JobRepository(session)
        cause = OverWholeBudget(Credits.of(900), Credits.of(800), "project", "kaist-nlp")
        jobs.save(replace(jobs.get(job_id).because(cause), state=JobState.REJECTED))

    default = gpupool.ok("jobs", user="jiwoo.jung")

    assert "over the whole budget of project kaist-nlp" in table_rows(default)[job_id]


def test_a_mistyped_flavor_or_project_is_answered_with_the_names_to_use(gpupool: Cli) -> None:
    flavor = gpupool("quote", "--gpus", "1", "--time-limit", "1h", "--flavor", "h100")
    project = gpupool("submit", "--project", "kaist-nl", "echo", user="jiwoo.jung")
    listed = gpupool("jobs", "--project", "hanbit", user="jiwoo.jung")

    assert flavor.exit_code == 1
    assert "unknown flavor 'h100' (did you mean h100-80g?); flavors: a100-80g, h100-80g," in (
        flavor.output
    )
    assert project.exit_code == 1
    assert "no project kaist-nl (did you mean kaist-nlp?); projects you may submit to: " in (
        project.output
    )
    assert "no project hanbit (did you mean hanbit-robot-policy?)" in listed.output
