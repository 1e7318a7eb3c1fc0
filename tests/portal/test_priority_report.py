"""Who used urgent work: the fair-share report's ``urgent_*`` columns, JSON and CSV, over real
state (jobs submitted through the API, run by the scheduler on simulated backends against an
injected clock, charged through the books).

The scene, on the demo pool (snu-medical-imaging holds the demo's urgent grant; times from T0,
ten days into the demo's period):
- T0: sungmin.yoon submits ``scan`` (snu-medical-imaging, urgent, 8 x a100-80g, runs 1 h) and
  ``probe`` (snu-medical-imaging, urgent, 2 x h100-80g, keeps running), and jiwoo.jung ``llm``
  (kaist-nlp, normal, 8 x h100-80g, runs 30 min);
- T0+5m: a cycle admits and starts all three; T0+35m and T0+65m: cycles charge and settle.

At T0+65m: scan ran 1 h on 8 GPUs (8 GPU-h, 8 x 1 h x 0.8 = 6.4 credits); probe has run 1 h on
2 GPUs (2 GPU-h, charged 2 x 1 h x 1.0 = 2.0 so far); llm is normal and counts nowhere.
"""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import timedelta
from typing import Any, cast

import pytest
from fastapi import FastAPI

from scheduler.backends.base import LaunchSpec
from scheduler.backends.simulated import Outcome, SimulatedBackend
from scheduler.cycle import Scheduler
from scheduler.settings import SchedulerSettings
from tests.portal.conftest import Demo
from tests.portal.test_reports_api import Clock

MINUTE = 60
HOUR = 3600
REPORT = "/api/v1/reports/fairshare"
URGENT_COLUMNS = ("urgent_jobs", "urgent_gpu_hours", "urgent_used")


def submit(demo: Demo, user: str, body: dict[str, Any]) -> None:
    answer = demo.client.post(
        "/api/v1/jobs",
        json={"entrypoint": "python train.py", "time_limit": "2h", **body},
        headers=demo.headers(user),
    )
    assert answer.status_code == 201, answer.text


@pytest.fixture
def scene(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Demo:
    with demo.books() as books:
        period = books.current_period()
    clock = Clock(period.starts_at + timedelta(days=10, hours=9))
    portal = cast(FastAPI, demo.client.app).state.portal
    monkeypatch.setattr(portal, "clock", clock)
    outcomes = {
        "scan": Outcome(seconds=HOUR),
        "probe": Outcome(None),
        "llm": Outcome(seconds=30 * MINUTE),
    }

    def runtime(spec: LaunchSpec) -> Outcome:
        return outcomes[spec.metadata["gpupool_name"]]

    scheduler = Scheduler(
        portal.sessions,
        {
            "national-daejeon": SimulatedBackend(
                clock, {"h100-80g": (2, 8), "a100-80g": (2, 8)}, runtime
            ),
            "national-gwangju": SimulatedBackend(clock, {"v100-32g": (4, 8)}, runtime),
        },
        SchedulerSettings(charge_interval_seconds=MINUTE),
        clock,
    )
    snu = {"project": "snu-medical-imaging", "priority": "urgent"}
    submit(demo, "sungmin.yoon", {**snu, "name": "scan", "gpus": 8, "flavors": ["a100-80g"]})
    submit(demo, "sungmin.yoon", {**snu, "name": "probe", "gpus": 2, "flavors": ["h100-80g"]})
    submit(
        demo,
        "jiwoo.jung",
        {"project": "kaist-nlp", "name": "llm", "gpus": 8, "flavors": ["h100-80g"]},
    )
    for minutes in (5, 5, 35, 65):
        clock.at(minutes * MINUTE)
        asyncio.run(scheduler.run_once())
    return demo


def rows(demo: Demo, user: str = "admin") -> dict[str, dict[str, Any]]:
    answer = demo.client.get(REPORT, headers=demo.headers(user))
    assert answer.status_code == 200, answer.text
    return {row["name"]: row for row in answer.json()["rows"]}


def urgent(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[column] for column in URGENT_COLUMNS)


def test_fair_share_says_who_used_urgent_work_per_account(scene: Demo) -> None:
    report = rows(scene)

    assert urgent(report["snu-medical-imaging"]) == (2, 10.0, "8.4")
    for account in ("snu", "universities", "national"):
        assert urgent(report[account]) == (2, 10.0, "8.4")
    assert urgent(report["kaist-nlp"]) == (0, 0.0, "0.0")  # its llm ran, as normal work
    assert report["kaist-nlp"]["spent"] == "4.0"
    assert all(urgent(report[name]) == (0, 0.0, "0.0") for name in ("startups", "kaist"))


def test_the_csv_carries_the_same_urgent_columns(scene: Demo) -> None:
    answer = scene.client.get(REPORT, params={"format": "csv"}, headers=scene.headers())
    assert answer.status_code == 200, answer.text
    table = list(csv.DictReader(io.StringIO(answer.text)))

    assert list(table[0])[-3:] == list(URGENT_COLUMNS)
    by_name = {row["name"]: row for row in table}
    assert urgent(by_name["snu-medical-imaging"]) == ("2", "10.0", "8.4")
    assert urgent(by_name["kaist-nlp"]) == ("0", "0.0", "0.0")


def test_urgent_use_is_scoped_like_the_rest_of_the_report(scene: Demo) -> None:
    assert "snu-medical-imaging" not in rows(scene, "jiwoo.jung")
    assert urgent(rows(scene, "sungmin.yoon")["snu-medical-imaging"]) == (2, 10.0, "8.4")
    assert urgent(rows(scene, "minji.park")["startups"]) == (0, 0.0, "0.0")
