"""Scenarios from files: clusters, an account tree with budgets and credits, and traces."""

from __future__ import annotations

from pathlib import Path

import pytest

from quotas.errors import BooksError
from quotas.quantities import Credits
from scheduler.simulator.metrics import summarise
from scheduler.simulator.policies import POLICIES
from scheduler.simulator.run import TraceRequest, build_scenario
from scheduler.simulator.world import World

CLUSTERS = """
[[clusters]]
name = "daejeon"
inventory = [{flavor = "h100-80g", nodes = 2, gpus_per_node = 4}]

[[clusters]]
name = "gwangju"
inventory = [{flavor = "a100-80g", nodes = 1, gpus_per_node = 8}]
"""

TREE = """{
  "accounts": [
    {"name": "universities", "kind": "program", "share": 3},
    {"name": "kaist", "kind": "organization", "parent": "universities", "budget": 2},
    {"name": "kaist-nlp", "kind": "project", "parent": "kaist"},
    {"name": "startups", "kind": "program"},
    {"name": "hanbit", "kind": "organization", "parent": "startups"},
    {"name": "hanbit-robots", "kind": "project", "parent": "hanbit"}
  ],
  "tenants": {"alpha": "kaist-nlp", "beta": "hanbit-robots"},
  "credits": {"kaist-nlp": 100}
}"""


def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    clusters = tmp_path / "clusters.toml"
    clusters.write_text(CLUSTERS)
    tree = tmp_path / "tree.json"
    tree.write_text(TREE)
    trace = tmp_path / "trace.csv"
    rows = ["submit_time,duration,gpus,tenant"]
    rows += [f"{i * 60},3600,2,{('alpha', 'beta')[i % 2]}" for i in range(12)]
    trace.write_text("\n".join(rows) + "\n")
    return clusters, tree, trace


def test_clusters_and_a_tree_from_files(tmp_path: Path) -> None:
    clusters, tree, trace = files(tmp_path)
    scenario = build_scenario(TraceRequest(trace), str(clusters), tree)

    assert [c.name for c in scenario.clusters] == ["daejeon", "gwangju"]
    assert scenario.capacity == {"h100-80g": 8, "a100-80g": 8}
    assert scenario.projects == {"alpha": "kaist-nlp", "beta": "hanbit-robots"}
    assert scenario.tree["kaist"].budget == Credits.of(2)
    assert scenario.tree["universities"].share == 3
    assert scenario.credits["kaist-nlp"] == Credits.of(100)
    assert scenario.credits["hanbit-robots"] > Credits.of(10**9)  # none given: unlimited


def test_gpupool_keeps_to_an_organizations_budget_and_the_baselines_do_not(
    tmp_path: Path,
) -> None:
    """kaist's budget of 2 credits covers a few of alpha's six jobs (each runs its hour of
    v100 work in 15-30 minutes on 2 faster GPUs, and holds for 1.5x its slowest runtime)."""
    clusters, tree, trace = files(tmp_path)
    scenario = build_scenario(TraceRequest(trace), str(clusters), tree)
    overrun = {}
    for name in ("gpupool", "fifo", "slurm"):
        world = World(scenario, POLICIES[name]())
        world.run()
        summary = summarise(world, 1.0)
        overrun[name] = summary.budget_overrun_credits
        if name == "gpupool":
            assert world.stranded
            assert {job.trace.tenant for job in world.stranded} == {"alpha"}
    assert overrun["gpupool"] == 0
    assert overrun["fifo"] > 0
    assert overrun["slurm"] > 0


@pytest.mark.parametrize(
    ("tree", "error"),
    [
        ('{"accounts": [{"name": "x", "kind": "project"}]}', "must sit under"),
        ('{"accounts": [], "tenants": {"alpha": "nowhere"}}', "no project for the tenants"),
        ('{"accounts": [{"name": "p", "kind": "program"}], "credits": {"q": 1}}', "no project"),
    ],
)
def test_a_tree_file_that_does_not_hold_together_is_refused(
    tmp_path: Path, tree: str, error: str
) -> None:
    clusters, _, trace = files(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text(tree)
    with pytest.raises(BooksError, match=error):
        build_scenario(TraceRequest(trace), str(clusters), bad)
