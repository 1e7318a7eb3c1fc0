"""The simulator's metrics on tiny worlds whose answers are worked out by hand: water-filled
entitlements, Jain's index, completion-time percentiles, finish-time fairness, credits spent
beyond their caps, and the same from a real run of gpupool's policy."""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np
import pytest

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.quantities import Credits
from scheduler.simulator import scenario as scenarios
from scheduler.simulator.metrics import (
    DAY_SECONDS,
    Sampled,
    Summary,
    nearest,
    percentile,
    summarise,
    water_fill,
)
from scheduler.simulator.policies.gpupool import GpupoolPolicy
from scheduler.simulator.scenario import POOL, Scenario, SimSettings
from scheduler.simulator.trace import TraceJob
from scheduler.simulator.world import Moves, Policy, World

H100, V100, A100 = "h100-80g", "v100-32g", "a100-80g"
EVERYWHERE = {H100: 1.0, A100: 1.0, V100: 1.0}


class Idle(Policy):
    """Never decides anything: the tests fill the world's outcome by hand."""

    name = "idle"

    def decide(self, now: int) -> Moves:
        return Moves()


def job(
    index: int,
    tenant: str,
    gpus: int = 1,
    submit: int = 0,
    work: float = 3600.0,
    speed: dict[str, float] = EVERYWHERE,
) -> TraceJob:
    return TraceJob(index, submit, work, gpus, tenant, speed=speed, model="test")


def tree_of(
    *accounts: Account, tenants: dict[str, str], credits: dict[str, str] | None = None
) -> tuple[AccountTree, dict[str, str], dict[str, Credits]]:
    tree = AccountTree.of([Account(POOL, AccountKind.POOL), *accounts])
    awarded = {name: Credits.of(amount) for name, amount in (credits or {}).items()}
    return tree, tenants, awarded


def programs(shares: dict[str, int]) -> tuple[AccountTree, dict[str, str], dict[str, Credits]]:
    """Each tenant a program of the given share, holding one organization and one project."""
    accounts: list[Account] = []
    for tenant, share in shares.items():
        accounts.append(Account(f"{tenant}-program", AccountKind.PROGRAM, POOL, share=share))
        accounts.append(Account(f"{tenant}-org", AccountKind.ORGANIZATION, f"{tenant}-program"))
        accounts.append(Account(tenant, AccountKind.PROJECT, f"{tenant}-org"))
    return tree_of(*accounts, tenants={tenant: tenant for tenant in shares})


def scenario_of(
    jobs: Sequence[TraceJob],
    cluster: str,
    tree: tuple[AccountTree, dict[str, str], dict[str, Credits]] | None = None,
    settings: SimSettings | None = None,
) -> Scenario:
    clusters, _, _ = scenarios.parse_clusters(cluster)
    names = sorted({item.flavor for each in clusters for item in each.inventory})
    return scenarios.build(jobs, clusters, scenarios.catalogue(names), tree=tree, settings=settings)


def sampled(
    world: World,
    times: Sequence[int],
    running: Sequence[Sequence[int]],
    demand: Sequence[Sequence[int]],
) -> World:
    """The world's samples: per time, running and demanded GPUs per tenant (world order)."""
    world.samples = list(times)
    world.running_samples = array("i", [gpus for row in running for gpus in row])
    world.demand_samples = array("i", [gpus for row in demand for gpus in row])
    busy = [sum(row) for row in running]
    world.busy_samples = array(
        "i", [value for total in busy for value in [total] + [0] * (len(world.flavor_names) - 1)]
    )
    return world


def ran(world: World, index: int, flavor: str, start: int, end: float) -> None:
    """Job ``index`` ran once, on ``flavor``, from ``start`` to ``end``, and finished."""
    each = world.jobs[index]
    each.runs.append(("national", flavor, start, end))
    each.first_start = start if each.first_start is None else each.first_start
    each.finished = end


# -- water-filling -------------------------------------------------------------------------------


def shares(capacity: float, demand: Sequence[float], weights: Sequence[float]) -> list[float]:
    filled = water_fill(
        np.array([capacity]), np.array([demand], dtype=np.float64), np.array(weights, dtype=float)
    )
    return [float(value) for value in filled[0]]


def test_equal_demand_is_shared_by_weight() -> None:
    assert shares(40, [100, 100], [3, 1]) == pytest.approx([30, 10])


def test_a_tenant_asking_less_than_its_share_is_entitled_to_what_it_asks_and_the_rest_goes_on() -> (
    None
):
    assert shares(40, [5, 100], [1, 1]) == pytest.approx([5, 35])
    assert shares(40, [5, 100, 100], [1, 1, 2]) == pytest.approx([5, 35 / 3, 70 / 3])


def test_a_pool_with_room_for_everyone_entitles_each_to_its_demand() -> None:
    assert shares(40, [5, 12, 0], [1, 3, 2]) == pytest.approx([5, 12, 0])


def test_a_share_of_zero_gets_only_what_the_others_leave() -> None:
    assert shares(15, [10, 10], [1, 0]) == pytest.approx([10, 5])
    assert shares(8, [10, 10], [1, 0]) == pytest.approx([8, 0])


def test_entitlement_is_water_filled_level_by_level_down_the_tree() -> None:
    """Program big (share 3) has one project; program small (share 1) has two, one asking for a
    single GPU. Of 16 GPUs big is entitled to 12, small to 4: its modest project to its 1 GPU,
    the other to the 3 left."""
    tree = tree_of(
        Account("big", AccountKind.PROGRAM, POOL, share=3),
        Account("big-org", AccountKind.ORGANIZATION, "big"),
        Account("big-lab", AccountKind.PROJECT, "big-org"),
        Account("small", AccountKind.PROGRAM, POOL, share=1),
        Account("small-org", AccountKind.ORGANIZATION, "small"),
        Account("modest", AccountKind.PROJECT, "small-org", share=5),
        Account("greedy", AccountKind.PROJECT, "small-org", share=1),
        tenants={"b": "big-lab", "m": "modest", "g": "greedy"},
    )
    jobs = [job(0, "b"), job(1, "m"), job(2, "g")]
    world = World(scenario_of(jobs, "h100-80g:16", tree), Idle())
    sampled(world, [0], running=[[12, 1, 3]], demand=[[16, 1, 16]])

    summary = summarise(world, 1.0)

    entitled = {row.tenant: row.entitled for row in summary.fairness}
    assert entitled == pytest.approx({"b": 12, "m": 1, "g": 3})
    assert summary.jain_index == pytest.approx(1.0)


# -- Jain's index ----------------------------------------------------------------------------------


def two_tenants_3_to_1(running: Sequence[Sequence[int]], times: Sequence[int]) -> World:
    jobs = [job(0, "alpha", gpus=16), job(1, "beta", gpus=16)]
    world = World(scenario_of(jobs, "h100-80g:16", programs({"alpha": 3, "beta": 1})), Idle())
    return sampled(world, times, running=running, demand=[[16, 16]] * len(times))


def test_usage_matching_a_3_to_1_entitlement_is_perfectly_fair() -> None:
    summary = summarise(two_tenants_3_to_1([[12, 4]], [0]), 1.0)

    assert summary.jain_index == 1.0
    rows = {row.tenant: (row.usage, row.entitled, row.x) for row in summary.fairness}
    assert rows == {"alpha": (12, 12, 1.0), "beta": (4, 4, 1.0)}


def test_an_even_split_against_a_3_to_1_entitlement_scores_0_8() -> None:
    """x = 8/12 and 8/4: J = (2/3 + 2)^2 / (2 (4/9 + 4)) = (64/9) / (80/9) = 0.8."""
    summary = summarise(two_tenants_3_to_1([[8, 8]], [0]), 1.0)

    assert summary.jain_index == pytest.approx(0.8)
    assert {row.tenant: row.x for row in summary.fairness} == pytest.approx(
        {"alpha": 2 / 3, "beta": 2.0}
    )


def test_jain_is_taken_per_day_then_averaged() -> None:
    """Day 0 is fair (J = 1), day 1 splits evenly (J = 0.8): the index is 0.9. Within day 1 the
    means are taken first: alpha runs 12 then 4 (mean 8), beta 4 then 12 (mean 8)."""
    half = DAY_SECONDS // 2
    world = two_tenants_3_to_1(
        [[12, 4], [12, 4], [12, 4], [4, 12]], [0, half, DAY_SECONDS, DAY_SECONDS + half]
    )

    summary = summarise(world, 1.0)

    assert summary.jain_index == pytest.approx(0.9)
    day_1 = {row.tenant: (row.usage, row.x) for row in summary.fairness if row.day == 1}
    assert day_1["alpha"] == pytest.approx((8, 2 / 3))
    assert day_1["beta"] == pytest.approx((8, 2.0))
    alpha = next(row for row in summary.tenants if row.tenant == "alpha")
    assert alpha.x_mean == pytest.approx((1 + 2 / 3) / 2)
    assert alpha.usage_share == pytest.approx((12 + 12 + 12 + 4) / 4 / 16)
    assert alpha.entitled_share == pytest.approx(12 / 16)


def test_a_tenant_with_no_demand_is_left_out_of_the_index() -> None:
    """Beta asks for nothing: alpha is entitled to the whole pool it asks for."""
    jobs = [job(0, "alpha"), job(1, "beta")]
    world = World(scenario_of(jobs, "h100-80g:16", programs({"alpha": 3, "beta": 1})), Idle())
    sampled(world, [0], running=[[8, 0]], demand=[[16, 0]])

    summary = summarise(world, 1.0)

    assert summary.jain_index == 1.0
    assert [(row.tenant, row.entitled, row.x) for row in summary.fairness] == [("alpha", 16, 0.5)]


# -- times ----------------------------------------------------------------------------------------


def test_completion_times_waits_makespan_and_utilisation() -> None:
    """Four one-GPU jobs, submitted at 0, 0, 100 and 100 on a pool of 4 GPUs, wait 10, 20, 0
    and 0 s and complete in 100, 200, 300 and 400 s. p50 = 250, p99 = 300 + 0.97 * 100 = 397
    (linear between the closest ranks). The last finishes at 500: the makespan. They used
    90 + 180 + 300 + 400 = 970 GPU-seconds of 4 x 500."""
    jobs = [job(0, "a"), job(1, "a"), job(2, "b", submit=100), job(3, "b", submit=100)]
    world = World(scenario_of(jobs, "h100-80g:4"), Idle())
    ran(world, 0, H100, 10, 100)
    ran(world, 1, H100, 20, 200)
    ran(world, 2, H100, 100, 400)
    ran(world, 3, H100, 100, 500)

    summary = summarise(world, 2.0)

    assert (summary.jobs, summary.finished) == (4, 4)
    assert summary.avg_jct_s == 250
    assert summary.p50_jct_s == 250
    assert summary.p99_jct_s == pytest.approx(397)
    assert summary.avg_wait_s == 7.5
    assert summary.makespan_s == 500
    assert summary.utilisation == pytest.approx(970 / 2000)
    assert summary.utilisation_by_flavor == {H100: pytest.approx(970 / 2000)}
    assert summary.jobs_per_second == 2.0
    a = next(row for row in summary.tenants if row.tenant == "a")
    assert (a.jobs, a.finished, a.avg_wait_s, a.p50_wait_s, a.avg_jct_s) == (2, 2, 15, 15, 150)
    assert a.gpu_hours == pytest.approx(270 / 3600)
    waits = {row.index: (row.wait_s, row.jct_s) for row in summary.job_rows}
    assert waits == {0: (10, 100), 1: (20, 200), 2: (0, 300), 3: (0, 400)}


def test_utilisation_per_flavor_counts_each_flavors_own_gpus() -> None:
    """8 H100 and 8 V100 GPUs for 1000 s; 4 H100 GPUs busy throughout, no V100."""
    world = World(scenario_of([job(0, "a", gpus=4, work=1000)], "h100-80g:8,v100-32g:8"), Idle())
    ran(world, 0, H100, 0, 1000)

    summary = summarise(world, 1.0)

    assert summary.utilisation == pytest.approx(4000 / 16000)
    assert summary.utilisation_by_flavor == {H100: 0.5, V100: 0.0}


def test_nothing_finished_leaves_the_times_undefined() -> None:
    world = World(scenario_of([job(0, "a")], "h100-80g:8"), Idle())
    world.stranded = list(world.jobs)

    summary = summarise(world, 0.0)

    assert summary.stranded == 1
    assert summary.avg_jct_s is summary.makespan_s is summary.utilisation is None
    assert summary.jain_index is summary.worst_ftf_rho is summary.jobs_per_second is None


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([100, 200, 300, 400], 50) == 250
    assert percentile([100, 200, 300, 400], 99) == pytest.approx(397)
    assert percentile([7], 99) == 7
    assert percentile([], 50) is None


# -- finish-time fairness ------------------------------------------------------------------------


def test_finish_time_fairness_against_an_isolated_1_over_n_share() -> None:
    """16 GPUs, two tenants with demand. Both jobs run twice as fast on H100 as on V100: 3600
    s of work takes 1800 s there. An 8-GPU job fits half the pool: T = 1800, done in 3600:
    rho = 2. A 16-GPU job needs twice half the pool: T = 3600, done in 3600: rho = 1."""
    fast = {H100: 2.0, V100: 1.0}
    jobs = [job(0, "a", gpus=8, speed=fast), job(1, "b", gpus=16, speed=fast)]
    world = World(scenario_of(jobs, "h100-80g:8,v100-32g:8"), Idle())
    sampled(world, [0, 600], running=[[0, 0], [0, 0]], demand=[[8, 16], [8, 16]])
    ran(world, 0, V100, 0, 3600)
    ran(world, 1, H100, 1800, 3600)

    summary = summarise(world, 1.0)

    assert {row.index: row.rho for row in summary.job_rows} == pytest.approx({0: 2.0, 1: 1.0})
    assert summary.worst_ftf_rho == pytest.approx(2.0)
    assert summary.median_ftf_rho == pytest.approx(1.5)
    assert summary.unfair_fraction == 0.5


def test_a_job_submitted_before_its_tenant_shows_demand_counts_its_tenant_in_n() -> None:
    """At the sample nearest its submission only b has demand; a's own job makes n = 2, so a
    16-GPU job on a 16-GPU pool is stretched 2x: 3600 s of work, done in 7200: rho = 1."""
    jobs = [job(0, "a", gpus=16), job(1, "b")]
    world = World(scenario_of(jobs, "h100-80g:16"), Idle())
    sampled(world, [0], running=[[0, 1]], demand=[[0, 1]])
    ran(world, 0, H100, 0, 7200)

    summary = summarise(world, 1.0)

    assert summary.job_rows[0].rho == pytest.approx(1.0)
    assert summary.unfair_fraction == 0.0


def test_nearest_sample_takes_the_earlier_on_a_tie() -> None:
    times = np.array([0, 600, 1200])
    found = nearest(times, np.array([-5.0, 299.0, 300.0, 301.0, 1199.0, 5000.0]))
    assert found.tolist() == [0, 0, 0, 1, 2, 2]


# -- credits -------------------------------------------------------------------------------------


def test_budget_overrun_sums_every_cap_passed_to_the_milli_credit() -> None:
    """Project p1 (1 credit awarded) ran 2 H100 GPUs (1 credit/GPU-hour) for 3600.7 s: 3600
    whole seconds, 2 credits, 1 beyond its award. Project p2 (10 credits) ran one A100 GPU (0.8
    credits/GPU-hour) for 1000.9 s: 1000 s, 0.2222... rounded up to 0.223. Their organization's
    budget is 2 credits and they spent 2.223 together: 0.223 over. In all 1.223 credits."""
    tree = tree_of(
        Account("prog", AccountKind.PROGRAM, POOL),
        Account("org", AccountKind.ORGANIZATION, "prog", budget=Credits.of("2")),
        Account("p1", AccountKind.PROJECT, "org"),
        Account("p2", AccountKind.PROJECT, "org"),
        tenants={"a": "p1", "b": "p2"},
        credits={"p1": "1", "p2": "10"},
    )
    jobs = [job(0, "a", gpus=2), job(1, "b")]
    world = World(scenario_of(jobs, "h100-80g:8,a100-80g:8", tree), Idle())
    ran(world, 0, H100, 0, 3600.7)
    ran(world, 1, A100, 0, 1000.9)

    summary = summarise(world, 1.0)

    assert summary.spent == Credits(2223)
    assert summary.budget_overrun == Credits(1223)
    assert summary.as_dict()["budget_overrun_credits"] == 1.223
    assert summary.as_dict()["budget_overrun_milli"] == 1223
    spent = {row.tenant: (row.credits_spent, row.credits_cap) for row in summary.tenants}
    assert spent == {
        "a": (Credits(2000), Credits.of("1")),
        "b": (Credits(223), Credits.of("10")),
    }


def test_a_preempted_job_pays_for_each_of_its_runs() -> None:
    """Two runs of 2 GPUs on H100, 1800 s each: 2 credits; no cap passed."""
    world = World(scenario_of([job(0, "a", gpus=2)], "h100-80g:8"), Idle())
    world.jobs[0].runs.append(("national", H100, 0, 1800))
    world.jobs[0].first_start = 0
    world.jobs[0].preemptions = 1
    ran(world, 0, H100, 2400, 4200)

    summary = summarise(world, 1.0)

    assert summary.spent == Credits.of("2")
    assert summary.budget_overrun == Credits(0)
    assert summary.preemptions == 1
    assert summary.job_rows[0].wait_s == 0


# -- a real run ------------------------------------------------------------------------------------


def run(scenario: Scenario) -> tuple[Summary, World]:
    world = World(scenario, GpupoolPolicy())
    world.run()
    return summarise(world, 1.0), world


def test_two_whole_pool_jobs_run_one_after_the_other() -> None:
    """Two 8-GPU jobs of an hour on 8 GPUs, both at 0, neither preemptible: one runs 0-3600;
    the other starts on the tick after the GPUs are seen free (3660) and ends at 7260."""
    jobs = [job(0, "a", gpus=8, speed={H100: 1.0}), job(1, "b", gpus=8, speed={H100: 1.0})]

    summary, world = run(scenario_of(jobs, "h100-80g:8", settings=SimSettings(preemptible=False)))

    assert sorted(row.jct_s for row in summary.job_rows if row.jct_s is not None) == [3600, 7260]
    assert summary.avg_jct_s == pytest.approx(5430)
    assert summary.makespan_s == 7260
    assert summary.utilisation == pytest.approx(7200 / 7260)
    assert summary.spent == Credits.of("16")
    assert summary.budget_overrun == Credits(0)
    assert summary.decisions == world.decisions > 0


def test_gpupool_shares_a_saturated_pool_3_to_1_as_entitled() -> None:
    """Two tenants of shares 3:1 keep twice the pool busy with 10-minute one-GPU jobs for half a
    day: while both have a backlog, alpha is entitled to 6 of the 8 GPUs and beta to 2, and
    gpupool gives them about that."""
    jobs: list[TraceJob] = []
    for minute in range(0, 12 * 60, 10):
        for tenant in ("alpha", "beta"):
            jobs.extend(job(len(jobs), tenant, submit=minute * 60, work=600) for _ in range(8))

    summary, world = run(scenario_of(jobs, "h100-80g:8", programs({"alpha": 3, "beta": 1})))

    assert summary.finished == len(jobs)
    assert summary.budget_overrun == Credits(0)
    samples = Sampled.of(world)
    backlog = (samples.times >= 3600) & (samples.times < 11 * 3600)
    entitled = samples.entitlement(world)[backlog]
    assert entitled.tolist() == [[6.0, 2.0]] * int(backlog.sum())
    alpha, beta = samples.running[backlog].sum(axis=0)
    assert alpha / beta == pytest.approx(3, rel=0.1)
    assert summary.jain_index is not None
    assert summary.jain_index > 0.99
