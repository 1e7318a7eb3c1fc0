"""``gpupool simulate``: a trace under every policy, a what-if, and the pool's own history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bench.pages import make_history
from portal.cli import app
from quotas.db.migrate import upgrade
from quotas.db.session import make_engine

POLICIES = ["gpupool", "fifo", "slurm", "kueue", "gavel"]
REQUIRED = [
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
]
TIMING = ("wall_seconds", "jobs_per_second")


def write_trace(path: Path) -> Path:
    """Two tenants keep an 8-GPU pool busy for a few hours; one job names a flavor."""
    rows = ["submit_time,duration,gpus,tenant,flavors,priority"]
    for i in range(120):
        tenant = ("alpha", "beta")[i % 2]
        flavors = "h100-80g" if i == 7 else ""
        rows.append(f"{i * 90},{1200 + (i % 7) * 300},{1 + i % 4},{tenant},{flavors},normal")
    path.write_text("\n".join(rows) + "\n")
    return path


def simulate(*args: str) -> str:
    result = CliRunner().invoke(app, ["simulate", "--no-progress", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def summary(out: Path) -> dict[str, dict[str, object]]:
    data = json.loads((out / "summary.json").read_text())
    policies: dict[str, dict[str, object]] = data["policies"]
    return policies


def test_a_trace_under_every_policy_prints_the_comparison_and_writes_the_outputs(
    tmp_path: Path,
) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    out = tmp_path / "out"
    printed = simulate(
        "--trace", str(trace), "--cluster", "h100-80g:4,a100-80g:4", "--out", str(out)
    )

    table = printed.splitlines()
    assert table[0].startswith("policy")
    assert [line.split()[0] for line in table[3:8]] == POLICIES
    found = summary(out)
    assert list(found) == POLICIES
    for name in POLICIES:
        assert all(found[name][key] is not None for key in REQUIRED), name
        assert found[name]["finished"] == 120
        assert found[name]["budget_overrun_credits"] == 0
        for kind in ("tenants", "fairness", "waits"):
            assert (out / f"{kind}-{name}.csv").stat().st_size > 0
        for suffix in ("png", "svg"):
            assert (out / f"usage-vs-entitlement-{name}.{suffix}").exists()
    for plot in ("jct-cdf", "utilisation"):
        assert (out / f"{plot}.png").read_bytes().startswith(b"\x89PNG")
    assert "durations are taken as measured on v100-32g" in printed
    assert "a100-80g as measured p100" in printed


def test_the_same_seed_gives_the_same_run(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    runs = []
    for n in (1, 2):
        out = tmp_path / f"out-{n}"
        simulate("--trace", str(trace), "--cluster", "h100-80g:4,a100-80g:4", "--out", str(out))
        runs.append(
            {
                name: {k: v for k, v in values.items() if k not in TIMING}
                for name, values in summary(out).items()
            }
        )
    assert runs[0] == runs[1]


def test_a_what_if_compares_the_changed_run_with_the_unchanged_one(tmp_path: Path) -> None:
    trace = write_trace(tmp_path / "trace.csv")
    change = tmp_path / "more-for-beta.toml"
    change.write_text('[shares]\nbeta-program = 4\n\n[rates]\n"h100-80g" = "2.0"\n')
    out = tmp_path / "out"

    printed = simulate(
        "--trace",
        str(trace),
        "--cluster",
        "h100-80g:4,a100-80g:4",
        "--what-if",
        str(change),
        "--out",
        str(out),
    )

    assert "what if: share of beta-program: 1 -> 4; rate of h100-80g: 1.0 -> 2.0" in printed
    assert "before" in printed
    assert "after" in printed
    # each tenant's share of the GPUs and wait, before and after: beta's share grows
    lines = printed.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("tenant "))
    rows = {line.split()[0]: line.split() for line in lines[header + 2 : header + 4]}
    assert set(rows) == {"alpha", "beta"}
    before, after = float(rows["beta"][1]), float(rows["beta"][3])
    assert after > before
    assert list(summary(out)) == ["gpupool", "gpupool-what-if"]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ((), "name one source of jobs"),
        (("--synthetic", "10", "--policy", "lottery"), "no policy lottery"),
        (("--synthetic", "10", "--cluster", "h100-80g:7:2"), "do not make whole nodes"),
        (("--synthetic", "10", "--cluster", "tpu-v5:8"), "no flavor 'tpu-v5'"),
    ],
)
def test_a_mistake_is_said_in_one_line(args: tuple[str, ...], error: str) -> None:
    result = CliRunner().invoke(app, ["simulate", "--no-progress", *args])
    assert result.exit_code != 0
    assert error in result.output


def test_the_pools_own_last_days_are_replayed_against_todays_tree(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    url = f"sqlite:///{data_dir / 'gpupool.db'}"
    engine = make_engine(url)
    upgrade(engine)
    counted = make_history(engine, jobs=40, hours=3, cycle_minutes=10, seed=3)
    engine.dispose()
    out = tmp_path / "out"

    printed = simulate(
        "--from-db",
        "--days",
        "1",
        "--data-dir",
        str(data_dir),
        "--policy",
        "gpupool",
        "--policy",
        "fifo",
        "--out",
        str(out),
    )

    assert "the pool's own jobs submitted from" in printed
    found = summary(out)
    assert list(found) == ["gpupool", "fifo"]
    replayed = found["gpupool"]["jobs"]
    assert isinstance(replayed, int)
    assert 0 < replayed <= 40, counted
    assert found["gpupool"]["budget_overrun_credits"] == 0
