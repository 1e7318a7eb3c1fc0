"""gpupool's policy in the simulator, on small traces with answers worked out by hand."""

from __future__ import annotations

from dataclasses import replace

from quotas.accounts import AccountTree
from quotas.quantities import Credits
from scheduler.simulator import scenario as scenarios
from scheduler.simulator.policies.gpupool import GpupoolPolicy
from scheduler.simulator.scenario import Scenario, SimSettings
from scheduler.simulator.trace import TraceJob
from scheduler.simulator.world import World

H100, A100 = "h100-80g", "a100-80g"
BOTH = {H100: 1.0, A100: 1.0}


def job(
    index: int, submit: int, work: float, gpus: int, tenant: str, speed: dict[str, float] = BOTH
) -> TraceJob:
    return TraceJob(index, submit, work, gpus, tenant, speed=speed, model="test")


def scenario(
    jobs: list[TraceJob],
    cluster: str,
    shares: dict[str, int] | None = None,
    credits: dict[str, float] | None = None,
    **settings: object,
) -> Scenario:
    tenants = list(dict.fromkeys(each.tenant for each in jobs))
    tree, projects = scenarios.default_tree(tenants)
    accounts = dict(tree.accounts)
    for tenant, share in (shares or {}).items():
        program = f"{tenant}-program"
        accounts[program] = replace(accounts[program], share=share)
    awarded = {
        project: Credits.of(str((credits or {}).get(project, 10**9)))
        for project in projects.values()
    }
    clusters, _, _ = scenarios.parse_clusters(cluster)
    names = sorted({item.flavor for each in clusters for item in each.inventory})
    return scenarios.build(
        jobs,
        clusters,
        scenarios.catalogue(names),
        tree=(AccountTree(accounts), projects, awarded),
        settings=SimSettings(**settings),  # type: ignore[arg-type]
    )


def run(scenario: Scenario) -> World:
    world = World(scenario, GpupoolPolicy())
    world.run()
    return world


def gpu_seconds(world: World, tenant: str, since: float, until: float) -> float:
    """GPU-seconds ``tenant``'s runs used within [since, until)."""
    used = 0.0
    for each in world.jobs:
        if each.trace.tenant != tenant:
            continue
        for _, _, start, end in each.runs:
            used += max(0.0, min(end, until) - max(start, since)) * each.gpus
    return used


def test_two_tenants_of_shares_3_to_1_share_a_saturated_pool_3_to_1() -> None:
    """Both tenants keep twice the pool busy with 10-minute, one-GPU jobs for a day; fair share
    (decayed usage against shares) gives alpha three GPUs for each of beta's."""
    jobs: list[TraceJob] = []
    for minute in range(0, 24 * 60, 10):
        for tenant in ("alpha", "beta"):
            for _ in range(8):
                jobs.append(job(len(jobs), minute * 60, 600, 1, tenant))
    world = run(scenario(jobs, "h100-80g:8", shares={"alpha": 3, "beta": 1}))

    alpha = gpu_seconds(world, "alpha", 3600, 20 * 3600)
    beta = gpu_seconds(world, "beta", 3600, 20 * 3600)
    assert 2.8 <= alpha / beta <= 3.2
    # the pool stayed full: 8 GPUs for the whole window, less a cycle's gap per handover
    assert alpha + beta >= 0.9 * 8 * 19 * 3600


def test_equal_shares_share_equally() -> None:
    jobs = [job(i, (i // 16) * 600, 600, 1, ("alpha", "beta")[i % 2]) for i in range(16 * 6 * 24)]
    world = run(scenario(jobs, "h100-80g:8"))

    alpha = gpu_seconds(world, "alpha", 3600, 20 * 3600)
    beta = gpu_seconds(world, "beta", 3600, 20 * 3600)
    assert 0.9 <= alpha / beta <= 1.1


def test_a_job_that_runs_on_one_flavor_only_waits_for_it_while_the_other_is_free() -> None:
    """``h100-only`` (a model Gavel measured only there) arrives while the h100 GPUs are busy
    and a100 GPUs are free: it waits for the h100, and the a100 goes to a job that can use it."""
    jobs = [
        job(0, 0, 3600, 4, "alpha", {H100: 2.0}),
        job(1, 60, 1800, 4, "beta", {H100: 2.0}),
        job(2, 120, 1200, 4, "beta"),
    ]
    world = run(scenario(jobs, "h100-80g:4,a100-80g:4"))

    first, only, other = world.jobs
    assert [flavor for _, flavor, _, _ in first.runs] == [H100]
    assert [flavor for _, flavor, _, _ in only.runs] == [H100]
    # it starts on the first tick after alpha's job ended (1800 s: 3600 s of work at 2x) and
    # was settled; then it runs its 1800 s of work at 2x
    assert only.first_start == 1860
    assert only.finished == 1860 + 900
    assert [flavor for _, flavor, _, _ in other.runs] == [A100]
    assert other.first_start == 120


def test_a_project_whose_credits_run_out_waits_and_never_overspends() -> None:
    """beta is awarded 3 credits: at 1.0 credit per h100-hour with time limits of 1.5x the
    runtime (an hour's job holds 1.5 credits), two one-hour jobs fit; the third waits for
    credits that never come, and beta never spends more than it was awarded."""
    jobs = [job(i, i * 60, 3600, 1, "beta", {H100: 1.0}) for i in range(3)]
    jobs.append(job(3, 0, 3600, 1, "alpha", {H100: 1.0}))
    world = run(scenario(jobs, "h100-80g:8", credits={"beta": 3}))

    done = [each.index for each in world.jobs if each.finished is not None]
    assert done == [0, 1, 3]
    assert [each.index for each in world.stranded] == [2]
    spent = sum(
        (
            world.scenario.rate_card.rate(flavor).cost(each.gpus, int(end - start))
            for each in world.jobs
            if each.project == "beta"
            for _, flavor, start, end in each.runs
        ),
        Credits.zero(),
    )
    assert spent <= Credits.of(3)
    assert spent == Credits.of(2)


def test_a_borrower_is_preempted_for_an_under_served_tenant_and_resumes_where_it_stopped() -> None:
    """alpha fills the pool with long preemptible jobs while beta has nothing to run; beta's
    job then waits for the preemption bound (30 min), alpha's newest job is stopped for it
    (it ran far longer than the 10-minute minimum), beta runs, and alpha's job comes back with
    the work it had done kept."""
    jobs = [job(i, 0, 4 * 3600, 4, "alpha", {H100: 1.0}) for i in range(2)]
    jobs.append(job(2, 3600, 1800, 4, "beta", {H100: 1.0}))
    world = run(scenario(jobs, "h100-80g:8:4"))

    first, second, beta = world.jobs
    preempted = [each for each in (first, second) if each.preemptions]
    assert len(preempted) == 1
    [victim] = preempted
    [(_, _, start, stopped), (_, _, resumed, finished)] = victim.runs
    assert start == 0
    # beta arrives at 3600 and may preempt once it has waited 1800 s: decided at 5400
    assert stopped == 5400
    assert beta.first_start is not None
    assert beta.finished is not None
    assert beta.first_start > stopped
    assert resumed >= beta.finished
    assert finished - resumed == 4 * 3600 - stopped  # only the work left
    assert victim.finished == finished
