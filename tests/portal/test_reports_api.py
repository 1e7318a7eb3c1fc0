"""The reports API over real state: jobs submitted through the API, run by the scheduler on
simulated backends against an injected clock, charged and refunded through the books.

The scene, on the demo pool (times from T0, ten days into the demo's period):
- T0: jiwoo.jung submits ``llm`` (kaist-nlp, 8 x h100-80g, runs 30 min);
- T0+60s: sungmin.yoon submits ``xray`` (snu-medical-imaging, 8 x a100-80g, runs 1 h) and
  ``fold`` (kaist-protein, 2 x h100-80g, dies of a system fault after 10 min: refunded);
  dohyun.choi submits ``grasp`` (hanbit-robot-policy, 4 x v100-32g, keeps running);
- T0+5m: a cycle admits and starts all four; T0+35m and T0+65m: cycles charge and settle;
- T0+65m (now): jiwoo.jung submits ``big`` (kaist-nlp, 8 x h100-80g), left queued.

Charged: llm 8 x 0.5 h x 1.0 = 4.0 (funder gyeonggi), xray 8 x 1 h x 0.8 = 6.4 (msit), fold
0.334 then refunded, grasp 4 x 1 h x 0.25 = 1.0 (gyeonggi); both funders price a credit at 3,500.
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import pytest
from fastapi import FastAPI

from jobs.lifecycle import RunState
from quotas.fairshare import fair_share
from scheduler.backends.base import LaunchSpec
from scheduler.backends.simulated import Outcome, SimulatedBackend
from scheduler.cycle import Scheduler
from scheduler.settings import SchedulerSettings
from tests.portal.conftest import Demo

MINUTE = 60
HOUR = 3600
DAY = 24 * HOUR
WEEK_SECONDS = 7 * DAY


class Clock:
    def __init__(self, start: datetime) -> None:
        self.start = start
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        """Move to ``seconds`` after the start (never backwards)."""
        self.now = max(self.now, self.start + timedelta(seconds=seconds))


@dataclass
class Scene:
    demo: Demo
    clock: Clock
    t0: datetime
    period: str
    scheduler: Scheduler
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)

    def submit(
        self, user: str, project: str, name: str, gpus: int, flavor: str, outcome: Outcome
    ) -> None:
        self.outcomes[name] = outcome
        body = {
            "project": project,
            "entrypoint": "python train.py",
            "name": name,
            "gpus": gpus,
            "time_limit": "2h",
            "flavors": [flavor],
        }
        answer = self.demo.client.post("/api/v1/jobs", json=body, headers=self.demo.headers(user))
        assert answer.status_code == 201, answer.text
        self.ids[name] = answer.json()["job"]["id"]

    def cycle(self) -> None:
        asyncio.run(self.scheduler.run_once())

    def get(self, path: str, user: str = "admin", **params: str) -> Any:
        answer = self.demo.client.get(path, params=params, headers=self.demo.headers(user))
        assert answer.status_code == 200, answer.text
        return answer.json()

    def csv_rows(self, path: str, user: str = "admin", **params: str) -> list[dict[str, str]]:
        answer = self.demo.client.get(
            path, params={**params, "format": "csv"}, headers=self.demo.headers(user)
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        return list(csv.DictReader(io.StringIO(answer.text)))

    def iso(self, seconds: float) -> str:
        return (self.t0 + timedelta(seconds=seconds)).isoformat()


@pytest.fixture
def scene(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> Scene:
    with demo.books() as books:
        period = books.current_period()
        for each in books.clusters.all():  # declared before the period: their GPUs all count
            books.audit.record(
                period.starts_at, "test", "cluster.add", f"cluster/{each.name}", None, None
            )
    t0 = period.starts_at + timedelta(days=10, hours=9)
    clock = Clock(t0)
    portal = cast(FastAPI, demo.client.app).state.portal
    monkeypatch.setattr(portal, "clock", clock)
    outcomes: dict[str, Outcome] = {}

    def runtime(spec: LaunchSpec) -> Outcome:
        return outcomes[spec.metadata["gpupool_name"]]

    daejeon = SimulatedBackend(clock, {"h100-80g": (2, 8), "a100-80g": (2, 8)}, runtime)
    gwangju = SimulatedBackend(clock, {"v100-32g": (4, 8)}, runtime)
    scheduler = Scheduler(
        portal.sessions,
        {"national-daejeon": daejeon, "national-gwangju": gwangju},
        SchedulerSettings(charge_interval_seconds=MINUTE),
        clock,
    )
    scene = Scene(demo, clock, t0, period.name, scheduler, outcomes)
    scene.submit("jiwoo.jung", "kaist-nlp", "llm", 8, "h100-80g", Outcome(seconds=30 * MINUTE))
    clock.at(MINUTE)
    scene.submit(
        "sungmin.yoon", "snu-medical-imaging", "xray", 8, "a100-80g", Outcome(seconds=HOUR)
    )
    scene.submit(
        "sungmin.yoon",
        "kaist-protein",
        "fold",
        2,
        "h100-80g",
        Outcome(seconds=10 * MINUTE, state=RunState.FAILED, system_fault=True),
    )
    scene.submit("dohyun.choi", "hanbit-robot-policy", "grasp", 4, "v100-32g", Outcome(None))
    clock.at(5 * MINUTE)
    scene.cycle()
    scene.cycle()
    clock.at(35 * MINUTE)
    scene.cycle()
    clock.at(65 * MINUTE)
    scene.cycle()
    scene.submit("jiwoo.jung", "kaist-nlp", "big", 8, "h100-80g", Outcome(None))
    states = {name: scene.get(f"/api/v1/jobs/{job}")["state"] for name, job in scene.ids.items()}
    assert states == {
        "llm": "succeeded",
        "xray": "succeeded",
        "fold": "failed",
        "grasp": "running",
        "big": "queued",
    }
    return scene


def as_text(row: dict[str, Any]) -> dict[str, str]:
    return {key: "" if value is None else str(value) for key, value in row.items()}


# -- utilisation -----------------------------------------------------------------------------


def test_utilisation_counts_inventory_and_job_runs_in_the_window(scene: Scene) -> None:
    window = {"since": scene.iso(0), "until": scene.iso(65 * MINUTE)}

    report = scene.get("/api/v1/reports/utilisation", **window)

    table = [
        (
            row["cluster"],
            row["flavor"],
            row["site"],
            row["total_gpu_hours"],
            row["allocated_gpu_hours"],
            row["down_gpu_hours"],
            row["idle_gpu_hours"],
            row["utilisation_percent"],
        )
        for row in report["rows"]
    ]
    # 16 GPUs x 65 min = 17.333 GPU-h; llm 8 x 30 min + fold 2 x 10 min = 4.333 GPU-h
    assert table == [
        ("kube-pangyo", "rngd-48g", "national", 17.333, 0.0, 0.0, 17.333, 0.0),
        ("national-daejeon", "a100-80g", "national", 17.333, 8.0, 0.0, 9.333, 46.15),
        ("national-daejeon", "h100-80g", "national", 17.333, 4.333, 0.0, 13.0, 25.0),
        ("national-gwangju", "v100-32g", "national", 34.667, 4.0, 0.0, 30.667, 11.54),
    ]
    assert report["since"].startswith(scene.iso(0)[:19])
    assert scene.csv_rows("/api/v1/reports/utilisation", **window) == [
        as_text(row) for row in report["rows"]
    ]


def test_utilisation_clips_runs_to_a_narrower_window_and_defaults_to_the_last_week(
    scene: Scene,
) -> None:
    narrow = scene.get(
        "/api/v1/reports/utilisation", since=scene.iso(20 * MINUTE), until=scene.iso(40 * MINUTE)
    )
    default = scene.get("/api/v1/reports/utilisation")

    h100 = next(row for row in narrow["rows"] if row["flavor"] == "h100-80g")
    # llm ran 5-35 min: 15 of the window's 20 minutes on 8 GPUs; fold had ended at 15 min
    assert (h100["total_gpu_hours"], h100["allocated_gpu_hours"]) == (5.333, 2.0)
    assert h100["utilisation_percent"] == 37.5
    week_h100 = next(row for row in default["rows"] if row["flavor"] == "h100-80g")
    assert week_h100["total_gpu_hours"] == 16 * 7 * 24
    assert week_h100["allocated_gpu_hours"] == 4.333
    assert default["until"].startswith(scene.iso(65 * MINUTE)[:19])


def test_a_window_in_another_time_zone_means_the_same_instants(scene: Scene) -> None:
    seoul = timezone(timedelta(hours=9))
    since, until = (
        (scene.t0 + timedelta(seconds=seconds)).astimezone(seoul).isoformat()
        for seconds in (20 * MINUTE, 40 * MINUTE)
    )
    narrow = scene.get("/api/v1/reports/utilisation", since=since, until=until)

    h100 = next(row for row in narrow["rows"] if row["flavor"] == "h100-80g")
    assert h100["allocated_gpu_hours"] == 2.0


def test_a_window_may_start_a_duration_before_it_ends(scene: Scene) -> None:
    until = scene.iso(40 * MINUTE)
    relative = scene.get("/api/v1/reports/utilisation", since="20m", until=until)
    explicit = scene.get("/api/v1/reports/utilisation", since=scene.iso(20 * MINUTE), until=until)
    last_day = scene.get("/api/v1/reports/utilisation", since="24h")
    waits = scene.get("/api/v1/reports/wait-times", since="1h30m")

    assert relative == explicit
    assert last_day["since"].startswith(scene.iso(65 * MINUTE - 24 * HOUR)[:19])
    assert waits["since"].startswith(scene.iso(65 * MINUTE - 90 * MINUTE)[:19])


@pytest.mark.parametrize("since", ["0h", "yesterday", "7x", "24"])
def test_a_start_that_is_neither_a_time_nor_a_duration_is_refused(scene: Scene, since: str) -> None:
    for path in ("/api/v1/reports/utilisation", "/api/v1/reports/wait-times"):
        answer = scene.demo.client.get(path, params={"since": since}, headers=scene.demo.headers())
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    "window",
    [
        {"since": "+1h", "until": "0s"},
        {"until": "0001-01-02T00:00:00"},
        {"since": "0001-01-01T00:00:00+09:00"},
    ],
)
def test_a_window_that_ends_before_it_starts_is_refused(
    scene: Scene, window: dict[str, str]
) -> None:
    offsets = {"+1h": scene.iso(HOUR), "0s": scene.iso(0)}
    params = {key: offsets.get(value, value) for key, value in window.items()}
    for path in ("/api/v1/reports/utilisation", "/api/v1/reports/wait-times"):
        answer = scene.demo.client.get(path, params=params, headers=scene.demo.headers())
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"


# -- spend -----------------------------------------------------------------------------------


def spend(scene: Scene, by: str, user: str = "admin") -> list[tuple[str | None, str, int, int]]:
    report = scene.get("/api/v1/reports/spend", user, by=by)
    assert report["period"] == scene.period
    assert scene.csv_rows("/api/v1/reports/spend", user, by=by) == [
        as_text(row) for row in report["rows"]
    ]
    return [(row["name"], row["credits"], row["krw"], row["jobs"]) for row in report["rows"]]


def test_spend_groups_charges_net_of_refunds(scene: Scene) -> None:
    assert spend(scene, "program") == [
        ("startups", "1.0", 3_500, 1),
        ("universities", "10.4", 36_400, 3),
    ]
    assert spend(scene, "funder", "auditor.kim") == [
        ("gyeonggi", "5.0", 17_500, 2),
        ("msit", "6.4", 22_400, 2),
    ]
    assert spend(scene, "organization") == [
        ("hanbit-robotics", "1.0", 3_500, 1),
        ("kaist", "4.0", 14_000, 2),
        ("snu", "6.4", 22_400, 1),
    ]
    assert spend(scene, "project") == [
        ("hanbit-robot-policy", "1.0", 3_500, 1),
        ("kaist-nlp", "4.0", 14_000, 1),
        ("kaist-protein", "0.0", 0, 1),
        ("snu-medical-imaging", "6.4", 22_400, 1),
    ]
    assert spend(scene, "flavor") == [
        ("a100-80g", "6.4", 22_400, 1),
        ("h100-80g", "4.0", 14_000, 2),
        ("v100-32g", "1.0", 3_500, 1),
    ]
    assert spend(scene, "site") == [("national", "11.4", 39_900, 4)]


def test_spend_is_scoped_to_the_callers_programs_and_projects(scene: Scene) -> None:
    assert spend(scene, "project", "jiwoo.jung") == [
        ("hanbit-robot-policy", "1.0", 3_500, 1),
        ("kaist-nlp", "4.0", 14_000, 1),
    ]
    assert spend(scene, "program", "minji.park") == [("startups", "1.0", 3_500, 1)]
    assert spend(scene, "program", "jaehyun.kim") == [("universities", "10.4", 36_400, 3)]
    assert spend(scene, "project", "eunji.han") == []


@pytest.mark.parametrize("user", ["minji.park", "jiwoo.jung", "seoyeon.lee"])
def test_spend_by_funder_is_for_admin_and_auditor_only(scene: Scene, user: str) -> None:
    answer = scene.demo.client.get(
        "/api/v1/reports/spend", params={"by": "funder"}, headers=scene.demo.headers(user)
    )
    assert answer.status_code == 403
    assert "funder" in answer.json()["detail"]


def test_an_unknown_period_or_grouping_is_refused(scene: Scene) -> None:
    headers = scene.demo.headers()
    unknown = scene.demo.client.get(
        "/api/v1/reports/spend", params={"period": "1999-q1"}, headers=headers
    )
    grouping = scene.demo.client.get(
        "/api/v1/reports/spend", params={"by": "colour"}, headers=headers
    )
    assert unknown.status_code == 404
    assert grouping.status_code == 422


# -- wait times ------------------------------------------------------------------------------


def test_wait_times_per_program_in_seconds(scene: Scene) -> None:
    report = scene.get("/api/v1/reports/wait-times")

    table = [
        (row["program"], row["jobs"], row["p50_seconds"], row["p90_seconds"], row["p99_seconds"])
        for row in report["rows"]
    ]
    # llm waited 300 s; xray, fold and grasp 240 s; big is still queued
    assert table == [("startups", 1, 240.0, 240.0, 240.0), ("universities", 3, 240.0, 300.0, 300.0)]
    assert scene.csv_rows("/api/v1/reports/wait-times") == [as_text(row) for row in report["rows"]]


def test_wait_times_are_scoped_and_windowed(scene: Scene) -> None:
    mine = scene.get("/api/v1/reports/wait-times", "jiwoo.jung")["rows"]
    before = scene.get(
        "/api/v1/reports/wait-times", since=scene.iso(-HOUR), until=scene.iso(MINUTE)
    )["rows"]

    assert [(row["program"], row["jobs"], row["p50_seconds"]) for row in mine] == [
        ("startups", 1, 240.0),
        ("universities", 1, 300.0),
    ]
    assert before == []


# -- fair share ------------------------------------------------------------------------------


def decayed(milli: int, age_seconds: float, half_life_seconds: float) -> float:
    return milli / 1000 * 0.5 ** (age_seconds / half_life_seconds)


def test_fair_share_explains_usage_gpus_credits_and_burn(scene: Scene) -> None:
    report = scene.get("/api/v1/reports/fairshare")
    rows = {row["name"]: row for row in report["rows"]}
    half_life = report["half_life_hours"] * HOUR

    assert report["period"] == scene.period
    assert report["rows"][0]["name"] == "national"
    assert len(rows) == 14
    # llm was charged 4.0 at 35 min, 30 minutes before now; xray 3.2 then, 3.2 now
    usage = {
        "kaist-nlp": decayed(4_000, 30 * MINUTE, half_life),
        "snu-medical-imaging": decayed(3_200, 30 * MINUTE, half_life) + 3.2,
        "hanbit-robot-policy": decayed(500, 30 * MINUTE, half_life) + 0.5,
    }
    for name, expected in usage.items():
        assert rows[name]["usage"] == pytest.approx(expected, rel=1e-9)
    assert rows["kaist-protein"]["usage"] == 0.0
    assert rows["kaist-protein"]["level_fs"] is None  # a share, no usage: infinite
    with scene.demo.books() as books:
        engine = fair_share(books.tree(), usage)
    for name, row in rows.items():
        node = engine.explain(name)
        assert row["norm_share"] == pytest.approx(node.norm_share)
        assert row["norm_usage"] == pytest.approx(node.norm_usage)
        if row["level_fs"] is not None:
            assert row["level_fs"] == pytest.approx(node.level_fs)

    nlp = rows["kaist-nlp"]
    assert (nlp["kind"], nlp["parent"], nlp["share"]) == ("project", "kaist", 1)
    assert (nlp["running_gpus"], nlp["pending_gpus"]) == (0, 8)
    assert (nlp["awarded"], nlp["spent"], nlp["held"], nlp["available"]) == (
        "24000.0",
        "4.0",
        "0.0",
        "23996.0",
    )
    assert nlp["burn_per_day"] == "0.571"  # 4 credits over 7 days
    exhausted = scene.clock() + timedelta(seconds=23_996 * WEEK_SECONDS / 4)
    assert nlp["exhausted_on"] == exhausted.date().isoformat()
    assert nlp["outlasts_period"] is True  # 115 years: long after the period ends

    grasp = rows["hanbit-robot-policy"]
    assert (grasp["running_gpus"], grasp["spent"]) == (4, "1.0")
    assert Decimal(grasp["held"]) > 0
    assert Decimal(grasp["held"]) + Decimal(grasp["available"]) == Decimal("5999.0")
    assert rows["kaist-protein"]["spent"] == "0.0"
    assert rows["kaist-protein"]["exhausted_on"] is None
    assert rows["kaist-protein"]["outlasts_period"] is False  # no burn: nothing to outlast
    pool = rows["national"]
    assert (pool["running_gpus"], pool["pending_gpus"]) == (4, 8)
    assert (pool["awarded"], pool["spent"]) == ("250000.0", "11.4")
    assert Decimal(pool["held"]) + Decimal(pool["available"]) == Decimal("249988.6")
    # one name and one number for what an account can still spend: the report's is quota's
    accounts = scene.get("/api/v1/accounts")["accounts"]
    for account in accounts:
        row = rows[account["name"]]
        assert (row["spent"], row["held"], row["available"]) == (
            account["balances"]["spent"],
            account["balances"]["held"],
            account["balances"]["available"],
        ), account["name"]
    assert pool["burn_per_day"] == "1.629"  # 11.4 / 7
    assert scene.csv_rows("/api/v1/reports/fairshare") == [as_text(row) for row in report["rows"]]


def test_fair_share_rows_are_only_the_accounts_the_caller_may_read(scene: Scene) -> None:
    def names(user: str) -> set[str]:
        return {row["name"] for row in scene.get("/api/v1/reports/fairshare", user)["rows"]}

    assert names("jiwoo.jung") == {"kaist-nlp", "hanbit-robot-policy"}
    assert names("minji.park") == {
        "startups",
        "hanbit-robotics",
        "seoul-vision",
        "hanbit-robot-policy",
        "seoulvision-doc-ocr",
    }
    assert len(names("auditor.kim")) == 14
    assert names("jiwoo.jung") <= names("admin")


def test_burn_counts_only_the_last_week(scene: Scene) -> None:
    def rows() -> dict[str, Any]:
        return {row["name"]: row for row in scene.get("/api/v1/reports/fairshare")["rows"]}

    scene.clock.at(35 * MINUTE + WEEK_SECONDS - 1)  # llm's 4.0, charged at 35 min, still in
    assert rows()["kaist-nlp"]["burn_per_day"] == "0.571"
    scene.clock.at(35 * MINUTE + WEEK_SECONDS)  # now a week old: out
    later = rows()

    nlp = later["kaist-nlp"]
    assert (nlp["spent"], nlp["burn_per_day"], nlp["exhausted_on"]) == ("4.0", "0.0", None)
    assert later["national"]["burn_per_day"] == "0.529"  # xray's and grasp's last 3.7 credits
