"""What ``gpupool simulate`` does: build a scenario from a trace (or from the pool's own
database), run it under each policy, and summarise, compare and write what happened."""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

from jobs.model import Job, JobState
from jobs.repository import JobRepository
from quotas.errors import InvalidInput
from quotas.inventory import ClusterSpec
from quotas.quantities import Credits
from quotas.service import Books
from scheduler.simulator import scenario as scenarios
from scheduler.simulator.metrics import Summary, summarise
from scheduler.simulator.policies import POLICIES
from scheduler.simulator.scenario import Scenario, SimSettings
from scheduler.simulator.throughput import (
    MEASURED_AS,
    REFERENCE_FLAVOR,
    Heterogeneity,
    Throughputs,
)
from scheduler.simulator.trace import (
    PHILLY_SOURCE,
    Submission,
    TraceJob,
    read_csv,
    read_philly,
    synthetic_national,
)
from scheduler.simulator.world import World

DEFAULT_CLUSTER = "v100-32g:128,a100-80g:128,h100-80g:128"
Progress = Callable[[str], Callable[[int, int], None] | None]
"""Given a policy's name, what to tell of its progress (or nothing)."""
Results = dict[str, tuple[Summary, World]]


@dataclass(frozen=True)
class TraceRequest:
    """Where the jobs come from: a trace file, or a synthetic national trace."""

    path: Path | None = None
    synthetic_jobs: int | None = None
    organizations: int = 1_000
    synthetic_gpus: int = 10_000
    limit: int | None = None

    def describe(self) -> str:
        if self.synthetic_jobs is not None:
            return (
                f"synthetic national trace: {self.synthetic_jobs:,} jobs of "
                f"{self.organizations:,} organizations"
            )
        return str(self.path) + (f" (first {self.limit:,} jobs)" if self.limit else "")


def read_trace(request: TraceRequest, seed: int) -> tuple[list[Submission], list[str]]:
    """The trace's submissions, and what to say of where they come from."""
    if request.synthetic_jobs is not None:
        made = synthetic_national(
            request.synthetic_jobs, request.organizations, request.synthetic_gpus, seed
        )
        return made, [
            f"a synthetic national trace (seed {seed}): {request.organizations:,} organizations "
            "of Zipf-skewed activity, Philly-shaped jobs (mostly one GPU, gangs up to 64), "
            "log-normal durations, arriving at the rate that would keep the pool 90% busy if "
            "every job ran at the reference flavor's speed (faster flavors leave it less busy)"
        ]
    if request.path is None:
        raise InvalidInput("name a trace (--trace FILE), --synthetic JOBS, or --from-db")
    with request.path.open(newline="") as file:
        header = next(csv.reader(file), [])
    if {"timestamp", "num_gpus", "cluster"} <= set(header):
        return read_philly(request.path, request.limit), [
            f"trace: {PHILLY_SOURCE}; its virtual clusters are the tenants"
        ]
    return read_csv(request.path, request.limit), [f"trace: {request.path}"]


def build_scenario(
    trace: TraceRequest,
    cluster: str = DEFAULT_CLUSTER,
    tree_file: Path | None = None,
    seed: int = 1,
    reference: str = REFERENCE_FLAVOR,
    settings: SimSettings | None = None,
    throughputs: Path | None = None,
) -> Scenario:
    submissions, notes = read_trace(trace, seed)
    if not submissions:
        raise InvalidInput(f"{trace.describe()} holds no jobs")
    clusters, extra, rates = scenarios.parse_clusters(cluster)
    names = sorted({item.flavor for each in clusters for item in each.inventory})
    flavors = scenarios.catalogue(names, extra)
    measured = {**flavors, **scenarios.catalogue([reference], extra)}  # it may be absent here
    heterogeneity = Heterogeneity(
        Throughputs.read(throughputs) if throughputs else Throughputs.read(),
        measured,
        MEASURED_AS,
        reference,
    )
    jobs = heterogeneity.jobs(submissions, seed)
    tenants = list(dict.fromkeys(job.tenant for job in jobs))
    tree = scenarios.tree_file(tree_file, tenants) if tree_file else None
    return scenarios.build(
        jobs,
        clusters,
        flavors,
        rates,
        tree,
        settings,
        [*notes, *heterogeneity.assumptions()],
    )


def from_db(books: Books, days: float, now: datetime, settings: SimSettings) -> Scenario:
    """The pool's own last ``days`` of jobs, replayed against today's tree, credits, clusters
    and rate card: what a program manager asks "what if" of.

    A job that ran keeps the work it did: its runtime on the flavor it ran on, at that flavor's
    catalogue throughput (the engine's own measure; the model is not known). A job still running
    is taken to end now; one that never ran is taken to need its whole time limit; jobs refused
    or cancelled before they started are left out."""
    since = now - timedelta(days=days)
    flavors = books.flavors.all()
    clusters = tuple(books.clusters.all())
    if not clusters:
        raise InvalidInput("the pool has no clusters to replay its jobs on")
    reference = max(flavors.values(), key=lambda flavor: flavor.relative_throughput)
    jobs: list[Job] = [
        job
        for job in JobRepository(books.session).find()
        if job.submitted_at >= since and _replayable(job)
    ]
    if not jobs:
        raise InvalidInput(f"no jobs were submitted in the last {days:g} days")
    jobs.sort(key=lambda job: (job.submitted_at, job.id))
    start = jobs[0].submitted_at
    speeds = {
        name: flavor.relative_throughput / reference.relative_throughput
        for name, flavor in flavors.items()
        if flavor.relative_throughput > 0
    }
    trace: list[TraceJob] = []
    for index, job in enumerate(jobs):
        trace.append(
            TraceJob(
                index=index,
                submit_s=int((job.submitted_at - start).total_seconds()),
                duration_s=_work(job, now, speeds),
                gpus=job.spec.gpus,
                tenant=job.spec.project,
                flavors=job.spec.flavors,
                priority=job.spec.priority,
                model="as it ran",
                speed=speeds,
            )
        )
    period = books.current_period(now).name
    tree = books.tree(period)
    balances = books.ledger.balances(period)
    projects = {account.name for account in tree.projects()}
    credits: dict[str, int] = {}
    for (each_period, _, pocket), milli in balances.amounts.items():
        if each_period == period and pocket.account in projects:
            credits[pocket.account] = credits.get(pocket.account, 0) + milli
    cluster_notes = ", ".join(_describe(cluster) for cluster in clusters)
    return Scenario(
        jobs=tuple(trace),
        clusters=clusters,
        flavors=flavors,
        rate_card=books.rate_card(now),
        tree=tree,
        projects={job.tenant: job.tenant for job in trace},
        credits={name: Credits(credits.get(name, 0)) for name in sorted(projects)},
        settings=settings,
        assumptions=(
            f"the pool's own jobs submitted from {since:%Y-%m-%d %H:%M} to {now:%Y-%m-%d %H:%M} "
            f"UTC ({len(trace):,} jobs), replayed against the tree, budgets, credits of period "
            f"{period}, rate card v{books.rate_card(now).version} and clusters of today "
            f"({cluster_notes})",
            "each job's work is what it ran, at its flavor's catalogue throughput; a job "
            "still running ends now; one that never ran needs its whole time limit",
            *settings.assumptions(),
        ),
    )


def _replayable(job: Job) -> bool:
    if job.state is JobState.REJECTED:
        return False
    return not (job.state is JobState.CANCELLED and job.started_at is None)


def _work(job: Job, now: datetime, speeds: Mapping[str, float]) -> float:
    if job.started_at is None or job.placed is None:
        return float(job.spec.time_limit_seconds) * max(speeds.values(), default=1.0)
    ended = job.ended_at or now
    ran = max(1.0, (ended - job.started_at).total_seconds())
    return ran * speeds.get(job.placed.flavor, 1.0)


def _describe(cluster: ClusterSpec) -> str:
    return f"{cluster.name}: " + " + ".join(
        f"{item.gpus} {item.flavor}" for item in cluster.inventory
    )


def simulate(
    scenario: Scenario, policy: str, progress: Callable[[int, int], None] | None = None
) -> tuple[Summary, World]:
    """Run the scenario under one policy and summarise it."""
    try:
        chosen = POLICIES[policy]
    except KeyError:
        raise InvalidInput(f"no policy {policy!r}: choose among {', '.join(POLICIES)}") from None
    world = World(scenario, chosen())
    started = time.perf_counter()
    world.run(progress)
    wall = time.perf_counter() - started
    close = getattr(progress, "close", None)
    if close is not None:
        close()
    return summarise(world, wall), world


def simulate_all(
    scenario: Scenario, policies: Sequence[str], progress: Progress = lambda name: None
) -> Results:
    return {name: simulate(scenario, name, progress(name)) for name in policies}


def what_if(
    scenario: Scenario, changes: Path, progress: Progress = lambda name: None
) -> tuple[Results, list[str]]:
    """gpupool's policy on the scenario as it is and as the file changes it."""
    changed, said = scenarios.changed(scenario, changes)
    results = {
        "gpupool": simulate(scenario, "gpupool", progress("gpupool (as it is)")),
        "gpupool-what-if": simulate(changed, "gpupool", progress("gpupool (what if)")),
    }
    return results, said


def settings_with(**values: object) -> SimSettings:
    given = {name: value for name, value in values.items() if value is not None}
    return replace(SimSettings(), **given)  # type: ignore[arg-type]
