"""The simulator and the scheduler agree: one small scenario, run by the production scheduler
(``Scheduler.run_once`` on simulated backends, a database, the books) and by the simulator
(gpupool's policy on the simulated world), admits the same jobs, in the same order, at the same
times, on the same clusters and flavors, and charges each project the same.

The scenario has two tenants of shares 3:1 contending for two flavors of 4-GPU nodes, jobs of
1-8 GPUs (gang jobs across nodes), one that runs only on one flavor, hourly charges that move
fair share between decisions, and a queue long enough for backfill to matter.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from jobs.model import JobState
from jobs.repository import JobRepository
from quotas.accounts import AccountTree
from quotas.db.migrate import upgrade
from quotas.db.session import make_engine, session_factory, transaction
from quotas.ledger import Bucket, EntryKind
from quotas.quantities import Credits
from quotas.service import Books
from scheduler.backends.base import LaunchSpec
from scheduler.backends.simulated import Outcome, SimulatedBackend
from scheduler.cycle import Scheduler
from scheduler.settings import SchedulerSettings
from scheduler.simulator import scenario as scenarios
from scheduler.simulator.policies.gpupool import GpupoolPolicy, job_of
from scheduler.simulator.scenario import EPOCH, Scenario, SimSettings
from scheduler.simulator.trace import TraceJob
from scheduler.simulator.world import SimJob, World
from tests.scheduler.simulator.books import PERIOD, write_scenario

H100, A100 = "h100-80g", "a100-80g"
SPEEDS = {H100: 1.25, A100: 1.0}
ONLY_H100 = {H100: 1.25}
SETTINGS = SimSettings(
    cycle_seconds=60,
    charge_interval_seconds=600,
    decide_every_seconds=300,
    preemptible=False,
)

Row = tuple[int, int, int, str, dict[str, float]]
"""(submit s, work s on the reference flavor, GPUs, tenant, speeds)"""
ROWS: list[Row] = [
    (0, 3000, 4, "alpha", SPEEDS),
    (10, 2400, 4, "alpha", SPEEDS),
    (20, 1800, 4, "beta", SPEEDS),
    (30, 3600, 8, "beta", SPEEDS),
    (95, 900, 1, "alpha", SPEEDS),
    (130, 1200, 2, "beta", ONLY_H100),
    (200, 600, 1, "beta", SPEEDS),
    (260, 5400, 4, "alpha", SPEEDS),
    (400, 300, 1, "alpha", SPEEDS),
    (610, 2000, 2, "beta", SPEEDS),
    (700, 1500, 3, "alpha", ONLY_H100),
    (1900, 700, 1, "beta", SPEEDS),
    (2500, 4000, 8, "alpha", SPEEDS),
    (2600, 800, 2, "beta", SPEEDS),
    (4000, 1000, 1, "alpha", SPEEDS),
]


PREEMPTING_ROWS = [
    (0, 4 * 3600, 4, "alpha", SPEEDS),
    (30, 4 * 3600, 4, "alpha", SPEEDS),
    (3600, 1800, 4, "beta", SPEEDS),
    (3700, 1200, 2, "beta", SPEEDS),
    (9000, 600, 1, "alpha", SPEEDS),
]
"""alpha fills the h100 nodes with long preemptible jobs; beta, under its share, waits past
the preemption bound and takes an alpha job's place; the victim resumes with its work kept."""


def the_scenario(rows: list[Row] = ROWS, preemptible: bool = False) -> Scenario:
    jobs = [
        TraceJob(i, submit, float(work), gpus, tenant, speed=dict(speeds), model="test")
        for i, (submit, work, gpus, tenant, speeds) in enumerate(rows)
    ]
    cluster = "h100-80g:8:4,a100-80g:8:4" if rows is ROWS else "h100-80g:8:4"
    clusters, _, _ = scenarios.parse_clusters(cluster)
    tree, projects = scenarios.default_tree(["alpha", "beta"])
    accounts = dict(tree.accounts)
    accounts["alpha-program"] = replace(accounts["alpha-program"], share=3)
    credits = {project: Credits.of(500) for project in projects.values()}
    names = sorted({item.flavor for each in clusters for item in each.inventory})
    return scenarios.build(
        jobs,
        clusters,
        scenarios.catalogue(names),
        tree=(AccountTree(accounts), projects, credits),
        settings=replace(SETTINGS, preemptible=preemptible),
    )


Admission = tuple[str, int, str, str]
"""(job, second of the admission, cluster, flavor)"""
JOB_ENTRIES = (EntryKind.HOLD, EntryKind.CHARGE, EntryKind.RELEASE, EntryKind.REFUND)


def books_of(amounts, entries: Counter[EntryKind], period: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """What each project spent, and how many entries of each kind a job's life wrote."""
    spent: dict[str, int] = {}
    for (each_period, _, pocket), milli in amounts.items():
        if each_period == period and pocket.bucket is Bucket.SPENT and milli:
            spent[pocket.account] = spent.get(pocket.account, 0) + milli
    return {"spent": spent, "entries": {kind.value: entries[kind] for kind in JOB_ENTRIES}}


def simulated(scenario: Scenario) -> tuple[list[Admission], dict[str, object]]:
    policy = GpupoolPolicy()
    world = World(scenario, policy)
    admitted: list[Admission] = []
    started = policy.started

    def record(run, now):  # type: ignore[no-untyped-def]
        admitted.append((str(run.job.index), now, run.cluster, run.flavor))
        started(run, now)

    policy.started = record  # type: ignore[method-assign]
    world.run()
    assert all(job.finished is not None for job in world.jobs)
    return admitted, books_of(policy.balances.amounts, policy.entries, "simulation")


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    upgrade(engine)
    yield engine
    engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = EPOCH

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now


def scheduled(scenario: Scenario, engine: Engine) -> tuple[list[Admission], dict[str, object]]:
    clock = Clock()
    factory = session_factory(engine)
    with transaction(factory) as session:
        write_scenario(Books(session, clock), scenario)

    def runtime(spec: LaunchSpec) -> Outcome:
        """The work left after the job's earlier (preempted) runs, at this flavor's speed."""
        job = scenario.jobs[int(spec.metadata["gpupool_job"])]
        done = sum(
            ((run.stopped_at or run.started_at) - run.started_at).total_seconds()
            * job.speed[run.spec.flavor]
            for backend in backends.values()
            for run in backend.runs.values()
            if run.spec.metadata["gpupool_job"] == spec.metadata["gpupool_job"]
        )
        return Outcome(job.runtime_on(spec.flavor, job.duration_s - done))

    backends = {
        cluster.name: SimulatedBackend(
            clock,
            {item.flavor: (item.nodes, item.gpus_per_node) for item in cluster.inventory},
            runtime,
        )
        for cluster in scenario.clusters
    }
    settings = SchedulerSettings(
        charge_interval_seconds=scenario.settings.charge_interval_seconds,
        decide_every_seconds=scenario.settings.decide_every_seconds,
        preempt_after_seconds=scenario.settings.preempt_after_seconds,
        min_runtime_seconds=scenario.settings.min_runtime_seconds,
    )
    scheduler = Scheduler(factory, backends, settings, clock)
    admitted: list[Admission] = []
    pending = list(scenario.jobs)
    tick = 0
    while True:
        clock.now = EPOCH + timedelta(seconds=tick)
        with transaction(factory) as session:
            jobs = JobRepository(session)
            while pending and pending[0].submit_s <= tick:
                trace = pending.pop(0)
                job = job_of(_sim_job(scenario, trace), scenario)
                jobs.add(job)
        report = asyncio.run(scheduler.run_once())
        with transaction(factory) as session:
            found = {job.id: job for job in JobRepository(session).find()}
        for job_id in report.admitted:
            placed = found[job_id].placed
            assert placed is not None
            admitted.append((job_id, tick, placed.cluster, placed.flavor))
        if not pending and all(job.state.is_terminal for job in found.values()):
            break
        tick += SETTINGS.cycle_seconds
        assert tick < 24 * 3600, "the scheduler never finished the scenario"
    assert all(job.state is JobState.SUCCEEDED for job in found.values())
    with transaction(factory) as session:
        ledger = Books(session, clock).ledger
        amounts = ledger.balances(PERIOD.name).amounts
        entries: Counter[EntryKind] = Counter()
        after = 0
        while page := ledger.entries(period=PERIOD.name, after_id=after, limit=1000):
            entries.update(entry.posting.kind for entry in page)
            after = page[-1].id
    return admitted, books_of(amounts, entries, PERIOD.name)


def _sim_job(scenario: Scenario, trace: TraceJob) -> SimJob:
    return SimJob(
        trace,
        scenario.projects[trace.tenant],
        scenario.acceptable(trace),
        scenario.time_limit(trace),
        trace.duration_s,
    )


def test_the_simulator_admits_what_the_scheduler_admits_when_and_where_it_does(
    engine: Engine,
) -> None:
    scenario = the_scenario()
    by_simulator, simulator_books = simulated(scenario)
    by_scheduler, scheduler_books = scheduled(scenario, engine)

    assert len(by_scheduler) == len(ROWS)
    assert by_simulator == by_scheduler
    assert simulator_books == scheduler_books
    # the scenario exercises what it claims: contention (jobs wait), both flavors, gangs
    waited = [t for job, t, _, _ in by_scheduler if t > ROWS[int(job)][0] + 60]
    assert len(waited) >= 5
    assert {flavor for _, _, _, flavor in by_scheduler} == {H100, A100}


def test_they_agree_on_preemptions_and_on_what_the_victim_does_after(engine: Engine) -> None:
    scenario = the_scenario(PREEMPTING_ROWS, preemptible=True)
    by_simulator, simulator_books = simulated(scenario)
    by_scheduler, scheduler_books = scheduled(scenario, engine)

    assert by_simulator == by_scheduler
    assert simulator_books == scheduler_books
    # each of beta's jobs preempts one of alpha's, which is then admitted again
    admitted = [job for job, _, _, _ in by_scheduler]
    assert len(admitted) == len(PREEMPTING_ROWS) + 2
    assert admitted.count("0") == admitted.count("1") == 2
