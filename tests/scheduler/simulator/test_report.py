"""What a simulation hands its reader: the files of ``--out``, the terminal's table, the
what-if comparison and the progress bar, from a small run of gpupool's policy."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ElementTree
from dataclasses import replace
from pathlib import Path

import pytest

from quotas.quantities import Credits
from scheduler.simulator import scenario as scenarios
from scheduler.simulator.metrics import Summary, summarise
from scheduler.simulator.policies.gpupool import GpupoolPolicy
from scheduler.simulator.report import Progress, comparison, file_part, table, write_outputs
from scheduler.simulator.scenario import SimSettings
from scheduler.simulator.trace import TraceJob
from scheduler.simulator.world import World

H100 = "h100-80g"
REQUIRED = (
    "avg_jct_s",
    "p50_jct_s",
    "p99_jct_s",
    "makespan_s",
    "utilisation",
    "jain_index",
    "worst_ftf_rho",
    "unfair_fraction",
    "budget_overrun_credits",
    "preemptions",
)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def small_run() -> tuple[Summary, World]:
    """Two tenants' 8-GPU jobs of an hour on 8 GPUs, none preemptible: they run one after the
    other (0-3600, 3660-7260, ...)."""
    jobs = [
        TraceJob(i, 0, 3600.0, 8, tenant, speed={H100: 1.0}, model="test")
        for i, tenant in enumerate(["alpha", "beta", "alpha"])
    ]
    clusters, _, _ = scenarios.parse_clusters("h100-80g:8")
    scenario = scenarios.build(
        jobs, clusters, scenarios.catalogue([H100]), settings=SimSettings(preemptible=False)
    )
    world = World(scenario, GpupoolPolicy())
    world.run()
    return summarise(world, 0.5), world


@pytest.fixture(scope="module")
def run() -> tuple[Summary, World]:
    return small_run()


@pytest.fixture(scope="module")
def written(
    run: tuple[Summary, World], tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("out")
    summary, world = run
    slower = replace(summary, avg_jct_s=2 * (summary.avg_jct_s or 0))
    paths = write_outputs(
        out,
        {"gpupool": (summary, world), "what if": (slower, world)},
        ["durations as measured on v100-32g"],
        {"trace": "hand-made", "seed": 1, "command": "gpupool simulate"},
    )
    return out, paths


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_every_output_is_written(written: tuple[Path, list[Path]]) -> None:
    out, paths = written
    names = {path.name for path in paths}
    per_policy = [
        f"{kind}-{policy}.{ext}"
        for policy in ("gpupool", "what-if")
        for kind, ext in (("tenants", "csv"), ("fairness", "csv"), ("waits", "csv"))
    ]
    plots = [
        f"{stem}.{ext}"
        for stem in (
            "usage-vs-entitlement-gpupool",
            "usage-vs-entitlement-what-if",
            "jct-cdf",
            "utilisation",
        )
        for ext in ("png", "svg")
    ]
    assert names == {"summary.json", *per_policy, *plots}
    assert all(path.parent == out and path.stat().st_size > 0 for path in paths)


def test_summary_json_holds_every_metric_for_each_policy(
    written: tuple[Path, list[Path]], run: tuple[Summary, World]
) -> None:
    out, _ = written
    document = json.loads((out / "summary.json").read_text())

    assert document["assumptions"] == ["durations as measured on v100-32g"]
    assert document["meta"] == {"trace": "hand-made", "seed": 1, "command": "gpupool simulate"}
    assert set(document["policies"]) == {"gpupool", "what if"}
    for metrics in document["policies"].values():
        assert set(REQUIRED) <= set(metrics)
    gpupool = document["policies"]["gpupool"]
    assert gpupool["avg_jct_s"] == pytest.approx((3600 + 7260 + 10920) / 3)
    assert gpupool["makespan_s"] == 10920
    assert gpupool["budget_overrun_credits"] == 0
    assert gpupool["spent_credits"] == 24.0
    assert gpupool["preemptions"] == 0
    assert document["policies"]["what if"]["avg_jct_s"] == pytest.approx(2 * 7260)


def test_the_csvs_hold_tenants_fairness_and_waits(written: tuple[Path, list[Path]]) -> None:
    out, _ = written
    tenants = {row["tenant"]: row for row in read_csv(out / "tenants-gpupool.csv")}
    assert set(tenants) == {"alpha", "beta"}
    assert (tenants["alpha"]["jobs"], tenants["alpha"]["finished"]) == ("2", "2")
    assert float(tenants["alpha"]["gpu_hours"]) == pytest.approx(16)
    assert tenants["alpha"]["credits_spent"] == "16"

    waits = read_csv(out / "waits-gpupool.csv")
    assert list(waits[0]) == [
        "index",
        "tenant",
        "gpus",
        "submit",
        "first_start",
        "finish",
        "wait",
        "jct",
        "rho",
        "preemptions",
    ]
    assert sorted(float(row["jct"]) for row in waits) == [3600, 7260, 10920]
    assert sorted(int(row["wait"]) for row in waits) == [0, 3660, 7320]

    fairness = read_csv(out / "fairness-gpupool.csv")
    assert list(fairness[0]) == ["day", "tenant", "usage", "entitled", "x"]
    assert {row["day"] for row in fairness} == {"0"}
    for row in fairness:
        assert float(row["x"]) == pytest.approx(float(row["usage"]) / float(row["entitled"]))


def test_plots_are_png_and_well_formed_svg(written: tuple[Path, list[Path]]) -> None:
    _, paths = written
    for path in paths:
        if path.suffix == ".png":
            assert path.read_bytes().startswith(PNG_SIGNATURE)
        elif path.suffix == ".svg":
            root = ElementTree.parse(path).getroot()
            assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_svgs_are_the_same_from_run_to_run(
    written: tuple[Path, list[Path]], run: tuple[Summary, World], tmp_path: Path
) -> None:
    out, _ = written
    summary, world = run
    slower = replace(summary, avg_jct_s=2 * (summary.avg_jct_s or 0))
    again = write_outputs(
        tmp_path, {"gpupool": (summary, world), "what if": (slower, world)}, [], {}
    )
    for path in again:
        if path.suffix == ".svg":
            assert path.read_bytes() == (out / path.name).read_bytes()


def test_policy_names_become_safe_file_names(run: tuple[Summary, World], tmp_path: Path) -> None:
    assert file_part("what if") == "what-if"
    assert file_part("gavel/../x") == "gavel-..-x"
    assert file_part("///") == "policy"
    with pytest.raises(ValueError, match="share output files"):
        write_outputs(tmp_path, {"what if": run, "what-if": run}, [], {})
    assert list(tmp_path.iterdir()) == []


def test_the_table_fits_100_columns_and_reads_in_hours(run: tuple[Summary, World]) -> None:
    summary, world = run
    slower = replace(
        summary,
        avg_jct_s=36_000_000.0,
        budget_overrun=Credits.of("12345.6"),
        preemptions=123_456,
    )
    text = table({"gpupool": (summary, world), "a-very-long-policy-name": slower})

    lines = text.splitlines()
    assert all(len(line) <= 100 for line in lines)
    assert lines[0].split()[:3] == ["policy", "avg", "JCT"]
    gpupool = lines[3].split()
    assert gpupool[0] == "gpupool"
    assert gpupool[1] == f"{(3600 + 7260 + 10920) / 3 / 3600:.2f}"  # 2.02 h
    assert gpupool[4] == "3.03"  # makespan 10,920 s
    assert gpupool[9] == "0.00"  # overrun
    assert gpupool[-1] == "6"  # 3 jobs in 0.5 s
    other = lines[4].split()
    assert other[0] == "a-very-long-"
    assert other[1] == "10,000"
    assert other[9] == "12,346"


def test_a_what_if_shows_each_metric_before_and_after(run: tuple[Summary, World]) -> None:
    base, _ = run
    changed = replace(base, avg_jct_s=(base.avg_jct_s or 0) / 2, preemptions=3, jain_index=None)

    lines = {
        line[:24].strip(): line[24:].split() for line in comparison(base, changed).splitlines()
    }

    assert lines["average JCT (h)"] == ["2.02", "1.01", "-1.01", "(-50.0%)"]
    assert lines["preemptions"] == ["0", "3", "+3"]
    assert lines["makespan (h)"] == ["3.03", "3.03", "no", "change"]
    assert lines["Jain's index"][1:] == ["-", "-"]


def test_progress_draws_on_a_forced_stream_at_most_ten_times_a_second() -> None:
    stream = io.StringIO()
    now = [100.0]
    progress = Progress(stream, force=True, clock=lambda: now[0], width=10)

    now[0] = 102.0
    progress(4, 10)
    now[0] = 102.05
    progress(5, 10)  # too soon: not drawn
    now[0] = 105.0
    progress(10, 10)
    progress.close()

    frames = stream.getvalue().split("\r")[1:]
    assert len(frames) == 2
    assert frames[0].split() == ["[####......]", "4/10", "jobs", "40.0%", "0:00:02", "2", "jobs/s"]
    assert frames[1].rstrip("\n").split()[:4] == ["[##########]", "10/10", "jobs", "100.0%"]
    assert frames[1].endswith("0:00:05 2 jobs/s\n")


def test_progress_is_silent_off_a_terminal() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    progress(5, 10)
    progress.close()
    assert stream.getvalue() == ""


def test_a_world_run_drives_the_progress_bar() -> None:
    stream = io.StringIO()
    _, world = small_run()
    rerun = World(world.scenario, GpupoolPolicy())
    rerun.run(Progress(stream, force=True, per_second=1e9))
    assert stream.getvalue().split("\r")[-1].split()[1] == "3/3"
