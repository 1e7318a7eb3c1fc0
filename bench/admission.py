"""Benchmark: one admission cycle over a national-scale queue, on one core.

Builds a deterministic (seeded) national pool: 1,000 organizations under three programs, 5,000
projects with available credits and decayed usage, 20 clusters at national, domestic-cloud and
foreign-cloud sites holding 10,000 GPUs of three flavors on 8-GPU nodes (some already busy;
every project may burst to the cloud ones, with no wait), and
a queue of 100,000 jobs (mixed priority classes and data classes, mostly 1-8 GPUs, some gang jobs
of 16-64, acceptable flavors given by name or by minimum memory). It then times what one
scheduling cycle does with them: the fair-share ranking plus ``decide_queue`` over the whole
queue. Building the pool is not timed. Each measurement is the best of ``--runs`` runs.

Run from the repository root::

    python -m bench.admission [--jobs 100000] [--projects 5000] [--runs 3] [--seed 2025]

It prints ``BENCH <metric>=<value> <unit>`` lines (decisions per second, the cycle time, the
fair-share time) and the counts of admits, waits and rejects.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.admission import (
    Admit,
    Cluster,
    DataClass,
    Decision,
    JobRequest,
    NodeGroup,
    PriorityClass,
    Reject,
    SiteKind,
    Snapshot,
    Wait,
    decide_queue,
)
from quotas.fairshare import fair_share
from quotas.flavors import Flavor, RateCard
from quotas.quantities import Credits, Rate

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
FLAVORS: Mapping[str, Flavor] = {
    "h100-80g": Flavor("h100-80g", 80, 1.0),
    "a100-80g": Flavor("a100-80g", 80, 0.8),
    "v100-32g": Flavor("v100-32g", 32, 0.25),
}
RATES = {"h100-80g": "1.0", "a100-80g": "0.8", "v100-32g": "0.25"}
PROGRAMS = ("startup-growth", "university-research", "public-research")
GPUS_PER_NODE = 8


@dataclass(frozen=True)
class Scale:
    organizations: int = 1_000
    projects: int = 5_000
    jobs: int = 100_000
    clusters: int = 20
    gpus: int = 10_000


@dataclass(frozen=True)
class Pool:
    snapshot: Snapshot
    """The snapshot, without a fair-share ranking (computing it is part of the timed cycle)."""
    usage: Mapping[str, float]
    jobs: Sequence[JobRequest]


def build_pool(scale: Scale, seed: int) -> Pool:
    """A national pool, its books and its queue, the same for the same ``seed``."""
    rng = random.Random(seed)
    tree, available, used, running = _accounts(rng, scale)
    projects = [account.name for account in tree.projects()]
    usage = {
        project: round(rng.paretovariate(1.5) * 20, 3) if rng.random() < 0.7 else 0.0
        for project in projects
    }
    snapshot = Snapshot(
        now=NOW,
        period="2025-q1",
        tree=tree,
        flavors=FLAVORS,
        rate_card=RateCard(
            1,
            datetime(2025, 1, 1, tzinfo=UTC),
            {name: Rate.of(rate) for name, rate in RATES.items()},
        ),
        clusters=_clusters(rng, scale),
        available=available,
        used=used,
        running_gpus=running,
    )
    return Pool(snapshot, usage, _jobs(rng, scale, projects))


def _accounts(
    rng: random.Random, scale: Scale
) -> tuple[AccountTree, dict[str, Credits], dict[str, Credits], dict[str, int]]:
    accounts = [Account("pool", AccountKind.POOL)]
    available: dict[str, Credits] = {}
    used: dict[str, Credits] = {}
    running: dict[str, int] = {}
    for program in PROGRAMS:
        accounts.append(Account(program, AccountKind.PROGRAM, "pool", share=rng.randint(2, 5)))
    organizations = []
    for index in range(scale.organizations):
        name = f"org-{index:04}"
        budget = None
        if rng.random() < 0.3:
            budget = Credits.of(rng.randint(5_000, 50_000))
            used[name] = Credits.of(rng.randint(0, 6_000))
        borrowing = rng.randint(0, 64) if rng.random() < 0.2 else None
        accounts.append(
            Account(
                name,
                AccountKind.ORGANIZATION,
                rng.choice(PROGRAMS),
                share=rng.randint(1, 10),
                budget=budget,
                guaranteed_gpus=rng.choice((0, 8, 16)),
                borrowing_limit_gpus=borrowing,
            )
        )
        if borrowing is not None:
            running[name] = rng.randint(0, 32)
        organizations.append(name)
    for index in range(scale.projects):
        name = f"proj-{index:05}"
        # Every organization gets at least one project; the rest are spread at random.
        parent = organizations[index] if index < len(organizations) else rng.choice(organizations)
        awarded = rng.choice((50, 200, 500, 1_000, 2_000, 5_000, 20_000))
        spent = rng.randint(0, awarded)
        accounts.append(Account(name, AccountKind.PROJECT, parent, share=awarded, may_burst=True))
        available[name] = Credits.of(awarded - spent)
        used[name] = Credits.of(spent)
    return AccountTree.of(accounts), available, used, running


def _clusters(rng: random.Random, scale: Scale) -> tuple[Cluster, ...]:
    nodes_total = scale.gpus // GPUS_PER_NODE
    sites = [SiteKind.NATIONAL] * 14 + [SiteKind.DOMESTIC_CLOUD] * 4 + [SiteKind.FOREIGN_CLOUD] * 2
    flavor_mix = (("h100-80g", 0.4), ("a100-80g", 0.35), ("v100-32g", 0.25))
    # Deal each flavor's nodes over the clusters that carry it (one or two flavors per cluster).
    carriers: dict[str, list[int]] = {name: [] for name, _ in flavor_mix}
    for index in range(scale.clusters):
        first = flavor_mix[index % 3][0]
        carriers[first].append(index)
        if rng.random() < 0.4:
            carriers[flavor_mix[(index + 1) % 3][0]].append(index)
    groups: dict[int, list[NodeGroup]] = {index: [] for index in range(scale.clusters)}
    for flavor, fraction in flavor_mix:
        nodes = round(nodes_total * fraction)
        owners = carriers[flavor]
        counts = [nodes // len(owners)] * len(owners)
        for extra in range(nodes - sum(counts)):
            counts[extra] += 1
        for owner, count in zip(owners, counts, strict=True):
            free = tuple(_free_gpus(rng) for _ in range(count))
            groups[owner].append(NodeGroup(flavor, GPUS_PER_NODE, free))
    return tuple(
        Cluster(f"cluster-{index:02}", sites[index % len(sites)], tuple(groups[index]))
        for index in range(scale.clusters)
    )


def _free_gpus(rng: random.Random) -> int:
    """Free GPUs of one node: most fully free, some fully busy, some partly used."""
    draw = rng.random()
    if draw < 0.55:
        return GPUS_PER_NODE
    if draw < 0.8:
        return 0
    return rng.randint(1, GPUS_PER_NODE - 1)


def _jobs(rng: random.Random, scale: Scale, projects: Sequence[str]) -> list[JobRequest]:
    # A few projects submit most of the work: weight projects by a Pareto draw.
    weights = [rng.paretovariate(1.2) for _ in projects]
    chosen = rng.choices(projects, weights=weights, k=scale.jobs)
    priorities = (PriorityClass.URGENT, PriorityClass.NORMAL, PriorityClass.OPPORTUNISTIC)
    data_classes = (DataClass.PUBLIC, DataClass.SENSITIVE, DataClass.RESTRICTED)
    flavor_lists = (
        ("h100-80g",),
        ("a100-80g",),
        ("v100-32g",),
        ("h100-80g", "a100-80g"),
        ("a100-80g", "v100-32g"),
        ("h100-80g", "a100-80g", "v100-32g"),
    )
    jobs = []
    for index, project in enumerate(chosen):
        draw = rng.random()
        if draw < 0.03:
            gpus = rng.choice((16, 24, 32, 48, 64))
        else:
            gpus = rng.choices((1, 2, 4, 8, 3, 6), weights=(40, 22, 18, 12, 4, 4))[0]
        by_name = rng.random() < 0.5
        jobs.append(
            JobRequest(
                id=f"job-{index:06}",
                project=project,
                gpus=gpus,
                time_limit_seconds=rng.choice((1, 2, 4, 8, 12, 24, 48)) * 3600
                - rng.choice((0, 600, 1800)),
                submitted_at=NOW - timedelta(seconds=rng.randint(0, 3 * 86_400)),
                flavors=rng.choice(flavor_lists) if by_name else (),
                min_memory_gb=None if by_name else rng.choice((None, 32, 40, 80)),
                priority=rng.choices(priorities, weights=(5, 75, 20))[0],
                data_class=rng.choices(data_classes, weights=(80, 15, 5))[0],
            )
        )
    return jobs


def run_cycle(pool: Pool) -> tuple[float, float, list[Decision]]:
    """One timed cycle: (fair-share seconds, whole-cycle seconds, decisions)."""
    start = time.perf_counter()
    ranking = fair_share(pool.snapshot.tree, pool.usage)
    ranked = time.perf_counter()
    decisions = decide_queue(replace(pool.snapshot, fair_share=ranking), pool.jobs)
    end = time.perf_counter()
    return ranked - start, end - start, decisions


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.admission", description=__doc__)
    parser.add_argument("--jobs", type=int, default=Scale.jobs)
    parser.add_argument("--projects", type=int, default=Scale.projects)
    parser.add_argument("--organizations", type=int, default=Scale.organizations)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args(argv)
    scale = Scale(organizations=args.organizations, projects=args.projects, jobs=args.jobs)

    built = time.perf_counter()
    pool = build_pool(scale, args.seed)
    build_s = time.perf_counter() - built
    gpus = sum(
        len(group.free) * group.gpus_per_node for c in pool.snapshot.clusters for group in c.groups
    )
    free = sum(sum(group.free) for c in pool.snapshot.clusters for group in c.groups)
    print(
        f"pool: {len(PROGRAMS)} programs, {scale.organizations} organizations, "
        f"{scale.projects} projects, {len(pool.snapshot.clusters)} clusters, {gpus} GPUs "
        f"({free} free), {len(pool.jobs)} queued jobs; built in {build_s:.2f} s (not timed)"
    )

    best_fair_share = best_cycle = float("inf")
    decisions: list[Decision] = []
    for _ in range(args.runs):
        fair_share_s, cycle_s, decisions = run_cycle(pool)
        best_fair_share = min(best_fair_share, fair_share_s)
        best_cycle = min(best_cycle, cycle_s)

    kinds = Counter(type(decision) for decision in decisions)
    gpus_of = {job.id: job.gpus for job in pool.jobs}
    admitted_gpus = sum(gpus_of[d.job] for d in decisions if isinstance(d, Admit))
    print(
        f"decisions: {kinds[Admit]} admits ({admitted_gpus} GPUs), {kinds[Wait]} waits, "
        f"{kinds[Reject]} rejects"
    )
    print(f"BENCH admission_decisions_per_s={len(pool.jobs) / best_cycle:.0f} 1/s")
    print(f"BENCH admission_cycle_s={best_cycle:.3f} s")
    print(f"BENCH fair_share_s={best_fair_share:.3f} s")


if __name__ == "__main__":
    main()
