"""The baseline policies (FIFO, Slurm, Kueue, Gavel) on small traces with answers worked out
by hand, and each over the start of the Philly trace."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from quotas.accounts import AccountTree
from scheduler.simulator import scenario as scenarios
from scheduler.simulator.policies import POLICIES
from scheduler.simulator.policies.fifo import FifoPolicy
from scheduler.simulator.policies.gavel import GavelPolicy
from scheduler.simulator.policies.kueue import KueuePolicy, nominal_quotas
from scheduler.simulator.policies.slurm import DecayedUsage, SlurmPolicy, project_shares
from scheduler.simulator.scenario import Scenario
from scheduler.simulator.throughput import (
    MEASURED_AS,
    REFERENCE_FLAVOR,
    Heterogeneity,
    Throughputs,
)
from scheduler.simulator.trace import TraceJob, read_philly
from scheduler.simulator.world import Policy, SimJob, World

TRACES = Path(__file__).resolve().parents[4] / "shared" / "traces"
H100, V100 = "h100-80g", "v100-32g"


def job(
    index: int,
    submit: int,
    work: float,
    gpus: int,
    tenant: str,
    speed: dict[str, float] | None = None,
) -> TraceJob:
    return TraceJob(index, submit, work, gpus, tenant, speed=speed or {H100: 1.0}, model="test")


def scenario(jobs: list[TraceJob], cluster: str, shares: dict[str, int] | None = None) -> Scenario:
    tenants = list(dict.fromkeys(each.tenant for each in jobs))
    tree, projects = scenarios.default_tree(tenants)
    accounts = dict(tree.accounts)
    for tenant, share in (shares or {}).items():
        program = f"{tenant}-program"
        accounts[program] = replace(accounts[program], share=share)
    clusters, _, _ = scenarios.parse_clusters(cluster)
    names = sorted({item.flavor for each in clusters for item in each.inventory})
    return scenarios.build(
        jobs, clusters, scenarios.catalogue(names), tree=(AccountTree(accounts), projects, {})
    )


def run(scenario: Scenario, policy: Policy) -> World:
    world = World(scenario, policy)
    world.run()
    return world


def flavors(job: SimJob) -> list[str]:
    return [flavor for _, flavor, _, _ in job.runs]


def busy(job: SimJob, until: float) -> float:
    """Seconds ``job`` ran before ``until``."""
    return sum(max(0.0, min(end, until) - start) for _, _, start, end in job.runs)


# -- shares ----------------------------------------------------------------------------------


def test_normalised_shares_multiply_down_the_tree_and_quotas_add_up_to_each_flavor() -> None:
    tree = scenario(
        [job(0, 0, 60, 1, "a"), job(1, 0, 60, 1, "b"), job(2, 0, 60, 1, "c")],
        "h100-80g:8",
        shares={"a": 2},
    ).tree
    shares = project_shares(tree)
    assert shares == pytest.approx({"a": 0.5, "b": 0.25, "c": 0.25})
    # 10 GPUs at 5 : 2.5 : 2.5, largest remainder (ties by name) gives b the odd one
    assert nominal_quotas(shares, {H100: 10}) == {"a": {H100: 5}, "b": {H100: 3}, "c": {H100: 2}}


def test_decayed_usage_halves_every_half_life_and_counts_running_jobs() -> None:
    usage = DecayedUsage(3600)
    usage.start("a", 2, 0)
    usage.end("a", 2, 0, 3600)  # 7,200 GPU-seconds, decaying while used
    usage.start("b", 1, 3600)
    used = usage.at(7200)
    # a: 2 GPUs over [0, 3600] seen at 7200: 2 * h/ln2 * (2^-1 - 2^-2)
    assert used["a"] == pytest.approx(2 * 3600 / 0.6931471805599453 * 0.25)
    # b has run an hour and is running still: h/ln2 * (1 - 2^-1)
    assert used["b"] == pytest.approx(3600 / 0.6931471805599453 * 0.5)
    assert usage.at(7200 + 3600)["a"] == pytest.approx(used["a"] / 2)


# -- FIFO ------------------------------------------------------------------------------------


def test_fifo_blocks_behind_the_oldest_job_even_when_a_later_one_fits() -> None:
    """One node of 8: a 4-GPU job runs, the 8-GPU job behind it waits for the node, and the
    one-GPU job behind that waits too, though 4 GPUs stay free for an hour."""
    jobs = [job(0, 0, 3600, 4, "a"), job(1, 0, 3600, 8, "a"), job(2, 0, 60, 1, "b")]
    first, big, small = run(scenario(jobs, "h100-80g:8"), FifoPolicy()).jobs

    assert first.first_start == 0
    # the first ends at 3600, is settled on that tick, and the node is free on the next
    assert big.first_start == 3660
    assert small.first_start == 3660 + 3600 + 60
    assert all(each.preemptions == 0 for each in (first, big, small))


def test_fifo_takes_the_first_flavor_by_name_whatever_the_job_runs_fastest_on() -> None:
    jobs = [job(0, 0, 3600, 8, "a", {H100: 0.5, V100: 2.0})]
    [only] = run(scenario(jobs, "h100-80g:8,v100-32g:8"), FifoPolicy()).jobs
    assert flavors(only) == [H100]
    assert only.finished == 7200


# -- Slurm -----------------------------------------------------------------------------------


def test_slurm_starts_the_tenant_with_less_decayed_usage_first() -> None:
    """heavy used the whole node for two hours; when it frees, light's job (submitted later)
    goes before heavy's: F = 2^(-U/S) is 2^(-1/0.5) = 0.25 for heavy and 1 for light, and
    a minute of age weighs under 0.1 of the 1,000 age points."""
    jobs = [
        job(0, 0, 7200, 8, "heavy"),
        job(1, 60, 600, 8, "heavy"),
        job(2, 120, 600, 8, "light"),
    ]
    world = run(scenario(jobs, "h100-80g:8"), SlurmPolicy())
    _, heavy, light = world.jobs

    assert light.first_start == 7260
    assert heavy.first_start == 7260 + 600 + 60
    # FIFO would have served them in submission order
    _, heavy, light = run(scenario(jobs, "h100-80g:8"), FifoPolicy()).jobs
    assert heavy.first_start == 7260


def test_slurm_backfills_a_short_job_without_delaying_the_blocked_one() -> None:
    """Two nodes of 8. ``first`` holds one node (time limit 1.5 x 3600 = 5400 s); ``big``
    needs both and is reserved the start 5400. ``short`` (limit 2700 s) fits before that and
    runs at once on the free node; ``long`` (limit 10,800 s) would still hold it at 5400, so
    it waits, and ``big`` starts as soon as ``first`` ends."""
    jobs = [
        job(0, 0, 3600, 8, "t"),
        job(1, 0, 3600, 16, "t"),
        job(2, 0, 1800, 8, "t"),
        job(3, 0, 7200, 8, "t"),
    ]
    first, big, short, long = run(scenario(jobs, "h100-80g:16"), SlurmPolicy()).jobs

    assert first.first_start == 0
    assert short.first_start == 0
    assert short.finished == 1800
    assert big.first_start == 3660  # not delayed: the tick after first ended and was settled
    assert long.first_start == 3660 + 3600 + 60


# -- Kueue -----------------------------------------------------------------------------------


def test_kueue_tenant_below_its_nominal_quota_reclaims_from_the_borrower() -> None:
    """Nominal quota 4 GPUs each of one node of 8. a fills all 8 with long jobs (4 borrowed);
    b's two jobs arrive, fit within b's quota, and each preempts one of a's borrowed jobs, the
    most recently admitted first (ties: the newest job). A preempted run's GPUs free a tick
    after it stops, and its quota is given back then, so b starts the tick after that."""
    jobs = [job(i, 0, 36_000, 1, "a") for i in range(8)]
    jobs += [job(8, 600, 1200, 1, "b"), job(9, 600, 1200, 1, "b")]
    world = run(scenario(jobs, "h100-80g:8"), KueuePolicy())
    a_jobs, (b1, b2) = world.jobs[:8], world.jobs[8:]

    assert [each.index for each in a_jobs if each.preemptions] == [6, 7]
    assert [each.runs[0][3] for each in a_jobs if each.preemptions] == [720, 600]
    assert b1.first_start == 720
    assert b2.first_start == 840
    assert b1.preemptions == b2.preemptions == 0
    assert all(each.finished is not None for each in world.jobs)


def test_kueue_preempts_from_the_queue_with_the_highest_dominant_resource_share() -> None:
    """Three tenants of nominal quota 4 on 12 GPUs. a borrows 3, b (admitted later) borrows 1;
    c's job reclaims from a, whose DRS is higher, though b's jobs are the most recent."""
    jobs = [job(i, 0, 36_000, 1, "a") for i in range(7)]
    jobs += [job(7 + i, 60, 36_000, 1, "b") for i in range(5)]
    jobs.append(job(12, 600, 600, 1, "c"))
    world = run(scenario(jobs, "h100-80g:12:4"), KueuePolicy())

    assert [each.index for each in world.jobs if each.preemptions] == [6]
    assert world.jobs[12].first_start == 720


# -- Gavel -----------------------------------------------------------------------------------


def test_gavel_gives_a_job_the_flavor_it_is_much_faster_on() -> None:
    """``fast`` runs 10x on the h100 GPUs, ``indifferent`` the same on both: max-min fairness
    (normalised throughputs 1.8 and 1) puts fast on the h100 and indifferent on the v100, for
    good. FIFO, heterogeneity-agnostic, gives the h100 to the older one."""
    jobs = [
        job(0, 0, 3600, 8, "a", {H100: 1.0, V100: 1.0}),
        job(1, 0, 36_000, 8, "b", {H100: 10.0, V100: 1.0}),
    ]
    indifferent, fast = run(scenario(jobs, "h100-80g:8,v100-32g:8"), GavelPolicy()).jobs
    assert flavors(fast) == [H100]
    assert fast.finished == 3600
    assert flavors(indifferent) == [V100]

    indifferent, fast = run(scenario(jobs, "h100-80g:8,v100-32g:8"), FifoPolicy()).jobs
    assert flavors(fast) == [V100]


def test_gavel_time_shares_two_equal_jobs_over_rounds() -> None:
    """Two 8-GPU jobs on one node are each allocated half the time. Rounds are 360 s; a job
    keeps the node while it has received less than its half, so they swap every other round,
    and each swap leaves the node idle two ticks (the run stops, its GPUs free a tick later):
    each runs 600 s of every 1,440. Both end within a round of each other, where FIFO would
    end one ten hours before the other."""
    jobs = [job(0, 0, 36_000, 8, "a"), job(1, 0, 36_000, 8, "b")]
    first, second = run(scenario(jobs, "h100-80g:8"), GavelPolicy()).jobs

    assert first.runs[:2] == [("national", H100, 0, 360), ("national", H100, 1200, 1800)]
    assert second.runs[:2] == [("national", H100, 480, 1080), ("national", H100, 1920, 2520)]
    for window in (7200.0, 36_000.0):
        assert busy(first, window) / window == pytest.approx(600 / 1440, abs=0.02)
        assert busy(second, window) / window == pytest.approx(600 / 1440, abs=0.02)
    assert first.preemptions >= 20
    assert second.preemptions >= 20
    assert first.finished is not None
    assert second.finished is not None
    assert abs(first.finished - second.finished) <= 360


# -- every baseline over the Philly trace ----------------------------------------------------


def philly(jobs: int) -> Scenario:
    submissions = read_philly(TRACES / "philly" / "philly.csv", jobs)
    clusters, _, _ = scenarios.parse_clusters("v100-32g:128,a100-80g:128,h100-80g:128")
    names = sorted({item.flavor for each in clusters for item in each.inventory})
    catalogue = scenarios.catalogue(names)
    throughputs = Throughputs.read(TRACES / "gavel" / "simulation_throughputs.json")
    heterogeneity = Heterogeneity(throughputs, catalogue, MEASURED_AS, REFERENCE_FLAVOR)
    return scenarios.build(heterogeneity.jobs(submissions, 1), clusters, catalogue)


@pytest.mark.parametrize("name", ["fifo", "slurm", "kueue", "gavel"])
def test_every_baseline_finishes_the_first_300_philly_jobs_without_overbooking(name: str) -> None:
    scenario = philly(300)
    world = run(scenario, POLICIES[name]())

    assert all(each.finished is not None for each in world.jobs)
    assert not world.stranded
    capacity = {
        (cluster.name, item.flavor): item.gpus
        for cluster in scenario.clusters
        for item in cluster.inventory
    }
    changes: dict[tuple[str, str], list[tuple[float, int]]] = {key: [] for key in capacity}
    for each in world.jobs:
        for cluster, flavor, start, end in each.runs:
            assert flavor in each.flavors
            assert flavor in each.trace.speed
            changes[(cluster, flavor)] += [(start, each.gpus), (end, -each.gpus)]
    for key, steps in changes.items():
        held = 0
        for _, gpus in sorted(steps, key=lambda step: (step[0], step[1])):
            held += gpus
            assert held <= capacity[key]


def test_the_policies_are_registered_by_name() -> None:
    assert set(POLICIES) == {"gpupool", "fifo", "slurm", "kueue", "gavel"}
    assert all(policy.name == name for name, policy in POLICIES.items())
