"""Step 2 of the cycle: read the books and the jobs into one immutable admission snapshot.

Free capacity is the declared inventory minus the GPUs of every job gpupool has admitted,
started or running there, packed onto nodes the way admission places them (best fit for jobs of
at most a node, whole nodes for larger ones). gpupool's own records are the truth: a backend that
restarts and forgets its jobs does not make their GPUs look free. Nodes the backends reported
down (the open node outages ``scheduler.outages`` keeps) have nothing free: no job is placed on
them until they are back.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobs.capacity import free_capacity
from jobs.model import Job, JobState
from jobs.repository import JobRepository
from quotas.accounts import AccountTree
from quotas.admission import Cluster, Snapshot
from quotas.fairshare import FairShare, fair_share
from quotas.flavors import Flavor
from quotas.inventory import ClusterSpec
from quotas.ledger import Balances, Bucket
from quotas.quantities import Credits
from quotas.reports import usage_by_project, usage_since
from quotas.service import Books

HOLDING = (JobState.ADMITTED, JobState.STARTING, JobState.RUNNING)


@dataclass(frozen=True)
class PoolView:
    """What one cycle reads, in one transaction."""

    snapshot: Snapshot
    queued: list[Job]
    holding: list[Job]
    clusters: dict[str, ClusterSpec]
    flavors: dict[str, Flavor]
    fair_share: FairShare


def read_pool(
    books: Books,
    now: datetime,
    half_life_seconds: float,
    runnable_clusters: Iterable[str] | None = None,
    burst_wait_seconds: int = 0,
) -> PoolView:
    """The view one cycle decides on. A cluster not among ``runnable_clusters`` (those with a
    backend here) keeps its shape with nothing free: jobs only it could run wait for it rather
    than being refused, and nothing is placed on it. Jobs wait ``burst_wait_seconds`` for the
    pooled clusters before they may burst."""
    period = books.current_period(now).name
    tree = books.tree(period)
    jobs = JobRepository(books.session)
    queued = jobs.find([JobState.QUEUED])
    holding = jobs.find(HOLDING)
    specs = {cluster.name: cluster for cluster in books.clusters.all()}
    capacity = free_capacity(specs.values(), holding, books.outages.open())
    if runnable_clusters is not None:
        reachable = set(runnable_clusters)
        capacity = [
            cluster if cluster.name in reachable else _unreachable(specs[cluster.name])
            for cluster in capacity
        ]
    balances = books.ledger.balances(period)
    available, used = _credits(tree, balances, period)
    shares = fair_share(tree, _usage(books, now, half_life_seconds))
    snapshot = Snapshot(
        now=now,
        period=period,
        tree=tree,
        flavors=books.flavors.all(),
        rate_card=books.rate_card(now),
        clusters=tuple(capacity),
        available=available,
        used=used,
        running_gpus=_running_gpus(tree, holding),
        fair_share=shares,
        releases=releases(holding, now),
        burst_wait_seconds=burst_wait_seconds,
        burst_used=_burst_used(books, tree, period, specs.values()),
    )
    return PoolView(snapshot, queued, holding, specs, dict(snapshot.flavors), shares)


def _unreachable(spec: ClusterSpec) -> Cluster:
    """The cluster with nothing free: no backend here can run its jobs."""
    return spec.with_free({item.flavor: (0,) * item.nodes for item in spec.inventory})


def _credits(
    tree: AccountTree, balances: Balances, period: str
) -> tuple[dict[str, Credits], dict[str, Credits]]:
    """Committed credits per project; settled + in flight per account's whole subtree."""
    available: dict[str, int] = defaultdict(int)
    own_use: dict[str, int] = defaultdict(int)
    for (each_period, _funder, pocket), amount in balances.amounts.items():
        if each_period != period or pocket.account is None:
            continue
        if pocket.bucket is Bucket.AVAILABLE:
            available[pocket.account] += amount
        elif pocket.bucket in (Bucket.HELD, Bucket.SPENT):
            own_use[pocket.account] += amount
    used: dict[str, int] = defaultdict(int)
    for account, amount in own_use.items():
        for step in tree.path(account):
            used[step.name] += amount
    return (
        {name: Credits(amount) for name, amount in available.items()},
        {name: Credits(amount) for name, amount in used.items()},
    )


def _usage(books: Books, now: datetime, half_life_seconds: float) -> dict[str, float]:
    since = usage_since(now, half_life_seconds)
    return usage_by_project(books.ledger.usage_charges(since), now, half_life_seconds)


def _burst_used(
    books: Books, tree: AccountTree, period: str, clusters: Iterable[ClusterSpec]
) -> dict[tuple[str, str], Credits]:
    """Per (burst target, program) with a burst budget there: credits held and spent there in
    ``period`` (read only where there are burst budgets: most pools have none)."""
    budgeted = {cluster.name for cluster in clusters if cluster.burst_budgets}
    used: dict[tuple[str, str], int] = defaultdict(int)
    for (cluster, project), milli in (
        JobRepository(books.session).used_at(budgeted, period, HOLDING).items()
    ):
        path = tree.path(project)
        if len(path) > 1:
            used[(cluster, path[1].name)] += milli
    return {key: Credits(milli) for key, milli in used.items()}


def releases(
    holding: Iterable[Job], now: datetime
) -> dict[tuple[str, str], tuple[tuple[datetime, int], ...]]:
    """Per (cluster, flavor): the latest each holding job gives its GPUs back (start + time
    limit), so backfill can reserve for a blocked job on the cluster where it starts first."""
    found: dict[tuple[str, str], list[tuple[datetime, int]]] = defaultdict(list)
    for job in holding:
        if job.placed is None:
            continue
        start = job.started_at or job.admitted_at or now
        ends = max(now, start + timedelta(seconds=job.spec.time_limit_seconds))
        found[(job.placed.cluster, job.placed.flavor)].append((ends, job.spec.gpus))
    return {key: tuple(sorted(items)) for key, items in found.items()}


def _running_gpus(tree: AccountTree, holding: Iterable[Job]) -> dict[str, int]:
    running: dict[str, int] = defaultdict(int)
    for job in holding:
        for step in tree.path(job.spec.project):
            running[step.name] += job.spec.gpus
    return dict(running)
