"""Admission decisions: admit, wait or reject, as pure functions over an immutable snapshot.

Given a snapshot of the books and the pool (account tree, rate card, budgets, free capacity per
cluster and flavor, GPUs in use per account) and a job request, ``decide`` returns:

* ``Admit``: the credits to hold (GPUs x time limit x the flavor's exchange rate) and candidate
  placements, best first. A placement is admissible only if its hold fits the project's
  available credits and every budget cap above it, so a hold never makes any balance negative.
* ``Wait``: the job could run later; ``cause`` says why (``quotas.causes``), and its sentence
  says so in words a person can act on.
* ``Reject``: the job can never run as asked (unknown flavor, more GPUs than any cluster has,
  a hold larger than the project's whole budget, a zero or negative size or time limit, ...).

``decide_queue`` orders a whole queue (priority class, then hierarchical fair share, then age)
and decides every job in one pass, each admission consuming capacity and credits from a working
copy of the snapshot so the decisions of one cycle never overspend or overbook.

Placement: among flavors and clusters free now, prefer the national pool (then domestic, then
foreign cloud, where credits cost the cluster's price multiplier), then the flavor that gives
the most training per credit (relative throughput / exchange rate), then the cluster where the
job fits most tightly (best fit keeps large contiguous blocks free), then the name. A job with
at most one node's worth of GPUs takes one node; a larger (gang) job takes whole free nodes.
Backfill: a job blocked for want of capacity reserves one (cluster, flavor), the one open to it
where it can start earliest (from running jobs' time limits there, counting free GPUs split
across nodes for what they are worth to it); later jobs may use that cluster's flavor only if
they end before then or fit in what is spare then, so large jobs are never starved by small
ones, and every other cluster stays free to use.
Data class restricts sites: restricted -> national only; sensitive -> national or domestic
cloud; public -> any site.

Cloud burst: a cluster at a cloud site is a burst target, whose nodes are bought on demand at
its price multiplier. A job goes there only when all hold: its project may burst, its data class
permits the site, it has waited ``Snapshot.burst_wait_seconds`` without the pooled (national)
clusters starting it, the target has not already failed to provision it (``avoid_clusters``),
and the hold fits what is left of its program's burst budget at that target, if it has one.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from fractions import Fraction

from quotas.accounts import Account, AccountKind, AccountTree, with_article
from quotas.causes import (
    BorrowingLimit,
    FreeInstead,
    Invalid,
    NoCapacity,
    NoFlavor,
    NoOpenCluster,
    NoSite,
    OverBudget,
    OverWholeBudget,
    RejectCause,
    Reserved,
    TooLarge,
    WaitCause,
)
from quotas.errors import BooksError
from quotas.fairshare import FairShare
from quotas.flavors import Flavor, RateCard, acceptable_flavors
from quotas.quantities import Credits, Rate
from quotas.quote import training_per_credit


class PriorityClass(StrEnum):
    URGENT = "urgent"
    NORMAL = "normal"
    OPPORTUNISTIC = "opportunistic"

    @property
    def order(self) -> int:
        """Urgent first, opportunistic last."""
        return _PRIORITY_ORDER[self]


_PRIORITY_ORDER = {priority: index for index, priority in enumerate(PriorityClass)}


class DataClass(StrEnum):
    PUBLIC = "public"
    SENSITIVE = "sensitive"
    RESTRICTED = "restricted"


class SiteKind(StrEnum):
    NATIONAL = "national"
    DOMESTIC_CLOUD = "domestic_cloud"
    FOREIGN_CLOUD = "foreign_cloud"


SITE_ORDER: Mapping[SiteKind, int] = {
    SiteKind.NATIONAL: 0,
    SiteKind.DOMESTIC_CLOUD: 1,
    SiteKind.FOREIGN_CLOUD: 2,
}
"""Placement prefers the national pool, then domestic cloud, then foreign cloud."""

ALLOWED_SITES: Mapping[DataClass, frozenset[SiteKind]] = {
    DataClass.PUBLIC: frozenset(SiteKind),
    DataClass.SENSITIVE: frozenset({SiteKind.NATIONAL, SiteKind.DOMESTIC_CLOUD}),
    DataClass.RESTRICTED: frozenset({SiteKind.NATIONAL}),
}


@dataclass(frozen=True, slots=True)
class NodeGroup:
    """The nodes of one flavor in one cluster and how many GPUs each has free now."""

    flavor: str
    gpus_per_node: int
    free: tuple[int, ...]
    """Free GPUs on each node (its length is the node count)."""

    @property
    def nodes(self) -> int:
        return len(self.free)

    @property
    def total_gpus(self) -> int:
        return self.gpus_per_node * len(self.free)


@dataclass(frozen=True, slots=True)
class Cluster:
    name: str
    site: SiteKind
    groups: tuple[NodeGroup, ...]
    multi_node: bool = True
    """Whether one job may span several nodes here (gang jobs); Ray clusters: not yet."""
    price_multiplier_milli: int = 1000
    """Credits here cost this much more (1500: 1.5x), e.g. at a cloud burst target."""
    dedicated_to: str | None = None
    """Only jobs of this account's subtree (an organization or a program) run here."""
    burst_budgets: Mapping[str, Credits] = field(default_factory=dict)
    """A burst target's: the most credits each program named may hold and spend here in a
    period; a program not named has no cap but its own budgets."""

    @property
    def burst_target(self) -> bool:
        """Capacity bought on demand in a cloud, not the national pool's own."""
        return self.site is not SiteKind.NATIONAL

    def group(self, flavor: str) -> NodeGroup | None:
        return next((group for group in self.groups if group.flavor == flavor), None)


@dataclass(frozen=True, slots=True)
class JobRequest:
    """What the engine needs to know of a job to decide on it."""

    id: str
    project: str
    gpus: int
    time_limit_seconds: int
    submitted_at: datetime
    flavors: tuple[str, ...] = ()
    """Acceptable flavors by name; empty means any flavor with at least ``min_memory_gb``."""
    min_memory_gb: int | None = None
    priority: PriorityClass = PriorityClass.NORMAL
    data_class: DataClass = DataClass.PUBLIC
    avoid_clusters: frozenset[str] = frozenset()
    """Burst targets that could not provision capacity for this job: not tried again."""


@dataclass(frozen=True)
class Snapshot:
    """Everything a decision reads, frozen at one moment."""

    now: datetime
    period: str
    tree: AccountTree
    flavors: Mapping[str, Flavor]
    rate_card: RateCard
    clusters: tuple[Cluster, ...]
    available: Mapping[str, Credits]
    """Per project: credits awarded and neither held nor spent (free to hold)."""
    used: Mapping[str, Credits]
    """Per account with a budget or per project: spent + held in this period."""
    running_gpus: Mapping[str, int] = field(default_factory=dict)
    """Per account (its whole subtree): GPUs held by admitted or running jobs."""
    fair_share: FairShare | None = None
    releases: Mapping[tuple[str, str], tuple[tuple[datetime, int], ...]] = field(
        default_factory=dict
    )
    """Per (cluster, flavor): when GPUs in use there are released at the latest (start + time
    limit), and how many. Backfill reserves capacity for a blocked job from these."""
    burst_wait_seconds: int = 0
    """How long a job waits for the pooled clusters before it may burst to a cloud target."""
    burst_used: Mapping[tuple[str, str], Credits] = field(default_factory=dict)
    """Per (burst target, program) with a burst budget there: credits held and spent there in
    this period."""


@dataclass(frozen=True, slots=True)
class Placement:
    cluster: str
    flavor: str
    rate: Rate
    rate_version: int
    hold: Credits


@dataclass(frozen=True, slots=True)
class Admit:
    job: str
    placements: tuple[Placement, ...]
    """Candidates, best first; the scheduler dispatches to the first."""

    @property
    def placement(self) -> Placement:
        return self.placements[0]

    @property
    def hold(self) -> Credits:
        return self.placements[0].hold


@dataclass(frozen=True, slots=True)
class Wait:
    job: str
    cause: WaitCause

    @property
    def reason(self) -> str:
        return self.cause.sentence


@dataclass(frozen=True, slots=True)
class Reject:
    job: str
    cause: RejectCause

    @property
    def reason(self) -> str:
        return self.cause.sentence


Decision = Admit | Wait | Reject


@dataclass(frozen=True, slots=True)
class Reservation:
    """Backfill: a job blocked on capacity is promised one cluster's flavor from ``start``.

    Later jobs in the cycle may run there only if they end by ``start`` or fit in ``spare``.
    """

    job: str
    cluster: str
    flavor: str
    start: datetime
    spare: int
    """GPUs there still free at ``start`` once the job has its share and the backfilled jobs
    that run past ``start`` have theirs."""


@dataclass(frozen=True, slots=True)
class QueuePlan:
    """A cycle's decisions, in queue order, and the reservations they were made under."""

    decisions: list[Decision]
    reservations: tuple[Reservation, ...]


def decide(snapshot: Snapshot, job: JobRequest) -> Decision:
    """The decision for one job against the snapshot as it stands."""
    return _Cycle(snapshot).decide(job)


def decider(snapshot: Snapshot) -> Callable[[JobRequest], Decision]:
    """``decide``, for many jobs one by one against the same snapshot (none of them consuming
    it): what the decisions work out of the pool's shape is worked out once."""
    return _Cycle(snapshot).decide


def refusal(snapshot: Snapshot, job: JobRequest) -> RejectCause | None:
    """Why ``job`` could never run in this pool, whatever frees up, or None.

    Only what the pool's shape decides: the acceptable flavors, and whether a cluster at a site
    the data class allows, open to the project, is large enough; the snapshot's free capacity
    is read as whole clusters. A submission that fails this is refused at the door.
    """
    cycle = _Cycle(snapshot)
    return cycle._runnable(job, cycle._flavors(job))[1]


def order_queue(snapshot: Snapshot, jobs: Iterable[JobRequest]) -> list[JobRequest]:
    """Jobs in the order they are considered: priority class, fair share, then age."""
    fair_share = snapshot.fair_share
    rank: dict[str, int] = (
        {project: index for index, project in enumerate(fair_share.ranking)} if fair_share else {}
    )
    unranked = len(rank)
    return sorted(
        jobs,
        key=lambda job: (
            job.priority.order,
            rank.get(job.project, unranked),
            job.submitted_at,
            job.id,
        ),
    )


def decide_queue(snapshot: Snapshot, jobs: Iterable[JobRequest]) -> list[Decision]:
    """Decide a whole queue in one cycle, in order; admissions consume the working copy."""
    return plan_queue(snapshot, jobs).decisions


def plan_queue(snapshot: Snapshot, jobs: Iterable[JobRequest]) -> QueuePlan:
    """``decide_queue``, with the backfill reservations left standing at the end of the cycle."""
    cycle = _Cycle(snapshot)
    decisions = [cycle.decide(job, commit=True) for job in order_queue(snapshot, jobs)]
    return QueuePlan(decisions, cycle.reservations())


@dataclass(frozen=True, slots=True)
class PartialPlan:
    """``plan_while_free``'s outcome: the decisions made while any GPU was free, in queue
    order, and the jobs after them, which were not decided."""

    decisions: list[Decision]
    undecided: Iterator[JobRequest]
    """The rest of the queue, in order: no GPU was free for any of them."""
    waits_for_capacity: Callable[[JobRequest], bool]
    """Whether an undecided job waits for capacity (not held back by a borrowing limit)."""


def plan_while_free(snapshot: Snapshot, ordered: Iterable[JobRequest]) -> PartialPlan:
    """``plan_queue`` for a queue already in ``order_queue``'s order, deciding only while some
    GPU is free anywhere in the pool.

    Once nothing is free, no later job can be admitted, placed, reserved for, or held back by
    a reservation or a budget: each waits for capacity or for a borrowing limit, or is refused
    for a reason that depends on nothing a cycle changes (``refusal``, or a hold larger than
    its accounts' whole budgets). So the admissions are exactly ``plan_queue``'s, at a cost that
    grows with the jobs admitted rather than the queue: what the trace simulator needs, with a
    queue of thousands decided every simulated minute. The scheduler decides every job, to give
    each its reason, position and estimated start.
    """
    cycle = _Cycle(snapshot)
    jobs = iter(ordered)
    decisions: list[Decision] = []
    largest = cycle.largest
    for job in jobs:
        if not any(largest.values()):
            return PartialPlan(decisions, itertools.chain((job,), jobs), cycle.waits_for_capacity)
        decisions.append(cycle.decide(job, commit=True))
    return PartialPlan(decisions, iter(()), cycle.waits_for_capacity)


class _Capacity:
    """Free GPUs of one flavor in one cluster, as a histogram of nodes by free GPUs, with
    when GPUs in use there are released and the backfill reservation on it, if any."""

    __slots__ = (
        "burst_budgets",
        "burst_target",
        "cluster",
        "dedicated_to",
        "flavor",
        "gpus_per_node",
        "histogram",
        "multi_node",
        "multiplier",
        "nodes",
        "releases",
        "reservation",
        "site",
    )

    def __init__(
        self, cluster: Cluster, group: NodeGroup, releases: Iterable[tuple[datetime, int]]
    ) -> None:
        self.cluster = cluster.name
        self.site = cluster.site
        self.multi_node = cluster.multi_node
        self.multiplier = cluster.price_multiplier_milli
        self.dedicated_to = cluster.dedicated_to
        self.burst_target = cluster.burst_target
        self.burst_budgets = cluster.burst_budgets
        self.flavor = group.flavor
        self.gpus_per_node = group.gpus_per_node
        self.nodes = group.nodes
        self.histogram = [0] * (group.gpus_per_node + 1)
        for free in group.free:
            self.histogram[max(0, min(free, group.gpus_per_node))] += 1
        self.releases = sorted(releases)
        self.reservation: _Reservation | None = None

    def fit(self, gpus: int) -> int | None:
        """Free GPUs of the node the job would take (best fit), or None if it does not fit."""
        if gpus <= self.gpus_per_node:
            for free in range(gpus, self.gpus_per_node + 1):
                if self.histogram[free]:
                    return free
            return None
        if not self.multi_node:
            return None
        whole_nodes = -(-gpus // self.gpus_per_node)
        return self.gpus_per_node if self.histogram[self.gpus_per_node] >= whole_nodes else None

    def take(self, gpus: int, free: int) -> None:
        if gpus <= self.gpus_per_node:
            self.histogram[free] -= 1
            self.histogram[free - gpus] += 1
        else:
            self.histogram[self.gpus_per_node] -= -(-gpus // self.gpus_per_node)
            self.histogram[0] += -(-gpus // self.gpus_per_node)

    def free_gpus(self) -> int:
        return sum(free * count for free, count in enumerate(self.histogram))

    def largest_fit(self) -> int:
        """The most GPUs one job could take here now."""
        whole = self.histogram[self.gpus_per_node]
        if whole > 1 and self.multi_node:
            return whole * self.gpus_per_node
        return max((free for free, count in enumerate(self.histogram) if count), default=0)

    def taken(self, gpus: int) -> int:
        """The GPUs a job of ``gpus`` occupies here: its own, or its whole nodes if larger."""
        if gpus <= self.gpus_per_node:
            return gpus
        return -(-gpus // self.gpus_per_node) * self.gpus_per_node

    def shortfall(self, gpus: int) -> int | None:
        """The fewest GPUs in use here that must be released before a job of ``gpus`` fits, or
        None if it never can.

        A lower bound: the released GPUs are taken to be on the nodes the job needs (the node
        with the most free GPUs, or the least busy nodes for a job of whole nodes).
        """
        per_node = self.gpus_per_node
        if gpus <= per_node:
            most = max((free for free, count in enumerate(self.histogram) if count), default=0)
            return max(0, gpus - most)
        if not self.multi_node or self.nodes * per_node < gpus:
            return None
        missing_nodes = -(-gpus // per_node) - self.histogram[per_node]
        shortfall = 0
        for free in range(per_node - 1, -1, -1):
            if missing_nodes <= 0:
                break
            nodes = min(self.histogram[free], missing_nodes)
            shortfall += nodes * (per_node - free)
            missing_nodes -= nodes
        return shortfall

    def earliest(self, gpus: int) -> tuple[datetime, int] | None:
        """When a job of ``gpus`` that does not fit now could start here at the earliest, and
        the GPUs spare then once it has its share; None if it fits now, or never could from
        the releases known.

        Free GPUs split across nodes count for what they are worth to this job: a job of whole
        nodes waits for the least busy nodes to empty even when enough GPUs are free in total.
        """
        shortfall = self.shortfall(gpus)
        if not shortfall:
            return None
        released = 0
        releases = self.releases
        for index, (at, count) in enumerate(releases):
            released += count
            more_at_once = index + 1 < len(releases) and releases[index + 1][0] == at
            if released >= shortfall and not more_at_once:
                return at, self.free_gpus() + released - self.taken(gpus)
        return None


class _Cycle:
    """A working copy of the snapshot that admissions consume, with the checks in order."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot
        self.tree = snapshot.tree
        self.available = dict(snapshot.available)
        self.used = dict(snapshot.used)
        self.running = dict(snapshot.running_gpus)
        self.capacity: dict[str, list[_Capacity]] = {}
        for cluster in snapshot.clusters:
            for group in cluster.groups:
                releases = snapshot.releases.get((cluster.name, group.flavor), ())
                self.capacity.setdefault(group.flavor, []).append(
                    _Capacity(cluster, group, releases)
                )
        self.largest = {flavor: self._largest(flavor) for flavor in self.capacity}
        self.ahead: dict[str, int] = {}
        self.reserved: list[_Capacity] = []
        """The capacities with a reservation, in the order they were made."""
        self.paths: dict[str, list[str]] = {}
        self.flavor_choices: dict[tuple[tuple[str, ...], int | None], list[Flavor]] = {}
        self.cheapest: dict[tuple[object, ...], Credits] = {}
        """The cheapest hold of a job's shape (the flavors it may run on, GPUs, time limit)."""
        self.capped: dict[str, list[tuple[str, Credits | None, str]]] = {}
        self.limited: dict[str, list[Account]] = {}
        self.moves = 0
        """Admissions and reservations so far: what a free-flavor hint depends on."""
        self.hints: dict[tuple[object, ...], FreeInstead | None] = {}
        # Sizes of clusters never change within a cycle, so what a kind of job could ever run
        # on is worked out once per (flavors, min memory, data class, GPUs).
        self.runnable: dict[
            tuple[tuple[str, ...], int | None, DataClass, int, frozenset[str], bool],
            tuple[list[Flavor], RejectCause | None],
        ] = {}
        self.burst_used = dict(snapshot.burst_used)
        self.burst_wait = timedelta(seconds=snapshot.burst_wait_seconds)
        # Dedicated clusters take only their owner's jobs; most pools have few or none.
        self.owners = frozenset(
            cap.dedicated_to for caps in self.capacity.values() for cap in caps if cap.dedicated_to
        )
        self.owners_of: dict[str, frozenset[str]] = {}

    def _largest(self, flavor: str) -> int:
        return max((cap.largest_fit() for cap in self.capacity.get(flavor, [])), default=0)

    def reservations(self) -> tuple[Reservation, ...]:
        return tuple(
            Reservation(r.job, cap.cluster, cap.flavor, r.start, r.spare)
            for cap in self.reserved
            if (r := cap.reservation) is not None
        )

    def _path(self, project: str) -> list[str]:
        path = self.paths.get(project)
        if path is None:
            path = [account.name for account in self.tree.path(project)]
            self.paths[project] = path
        return path

    def _capped(self, project: str) -> list[tuple[str, Credits | None, str]]:
        """The accounts on the project's path whose credits can cap a job (those with a
        budget, and the project itself), as (name, budget, kind), root first."""
        capped = self.capped.get(project)
        if capped is None:
            nodes = (self.tree[name] for name in self._path(project))
            capped = self.capped[project] = [
                (node.name, node.budget, node.kind.value)
                for node in nodes
                if node.budget is not None or node.name == project
            ]
        return capped

    def _limited(self, project: str) -> list[Account]:
        """The accounts on the project's path with a borrowing limit, root first."""
        limited = self.limited.get(project)
        if limited is None:
            nodes = (self.tree[name] for name in self._path(project))
            limited = self.limited[project] = [
                node for node in nodes if node.borrowing_limit_gpus is not None
            ]
        return limited

    def _owners(self, project: str) -> frozenset[str]:
        """The owners of dedicated clusters among the project's accounts (usually none)."""
        owners = self.owners_of.get(project)
        if owners is None:
            owners = self.owners_of[project] = self.owners.intersection(self._path(project))
        return owners

    def _open(self, cap: _Capacity, job: JobRequest, allowed: frozenset[SiteKind]) -> bool:
        """Whether the job may ever run on this capacity: its site suits the job's data class,
        it is not dedicated to someone else, and it is no burst target unless the project may
        burst."""
        return (
            cap.site in allowed
            and (cap.dedicated_to is None or cap.dedicated_to in self._owners(job.project))
            and (not cap.burst_target or self.tree[job.project].may_burst)
        )

    def _flavors(self, job: JobRequest) -> list[Flavor]:
        return self._choice(job.flavors, job.min_memory_gb)

    def _choice(self, names: tuple[str, ...], min_memory_gb: int | None) -> list[Flavor]:
        """The flavors ``names`` accepts (any, when empty) with the memory asked for, the most
        training per credit first."""
        key = (names, min_memory_gb)
        chosen = self.flavor_choices.get(key)
        if chosen is None:
            chosen = acceptable_flavors(self.snapshot.flavors, names, min_memory_gb)
            chosen.sort(
                key=lambda f: (
                    -training_per_credit(f.relative_throughput, self._rate(f.name)),
                    f.name,
                )
            )
            self.flavor_choices[key] = chosen
        return chosen

    def _rate(self, flavor: str) -> Rate:
        return self.snapshot.rate_card.rate(flavor)

    def waits_for_capacity(self, job: JobRequest) -> bool:
        """Whether a job that fits nowhere now waits for capacity, rather than for a borrowing
        limit on its path (whose wait ``_decide`` gives first)."""
        return self._borrowing_wait(job, self._path(job.project)) is None

    def decide(self, job: JobRequest, commit: bool = False) -> Decision:
        try:
            return self._decide(job, commit)
        except BooksError as error:
            return Reject(job.id, Invalid(str(error)))

    def _runnable(
        self, job: JobRequest, flavors: Sequence[Flavor]
    ) -> tuple[list[Flavor], RejectCause | None]:
        """The acceptable flavors the job could ever run on here, or why there are none.

        A flavor counts only if a cluster at a site the data class allows has at least as many
        GPUs of it as the job asks for; budgets and waits are judged on these flavors alone.
        """
        if not flavors:
            return [], NoFlavor(job.min_memory_gb)
        allowed = ALLOWED_SITES[job.data_class]
        sizes = {
            flavor.name: max(
                (
                    cap.nodes * cap.gpus_per_node if cap.multi_node else cap.gpus_per_node
                    for cap in self.capacity.get(flavor.name, [])
                    if self._open(cap, job, allowed)
                ),
                default=0,
            )
            for flavor in flavors
        }
        largest = max(sizes.values())
        if not largest:
            names = tuple(flavor.name for flavor in flavors)
            if any(cap.site in allowed for f in flavors for cap in self.capacity.get(f.name, [])):
                return [], NoOpenCluster(job.project, names)
            return [], NoSite(job.data_class.value, names)
        if job.gpus > largest:
            multi_node = any(
                cap.multi_node for flavor in flavors for cap in self.capacity.get(flavor.name, [])
            )
            return [], TooLarge(job.gpus, largest, multi_node)
        return [flavor for flavor in flavors if sizes[flavor.name] >= job.gpus], None

    def _decide(self, job: JobRequest, commit: bool) -> Decision:
        if job.gpus <= 0:
            return Reject(job.id, Invalid(f"a job needs at least one GPU, asked for {job.gpus}"))
        if job.time_limit_seconds <= 0:
            return Reject(job.id, Invalid("a job needs a positive time limit"))
        account = self.tree[job.project]
        if account.kind is not AccountKind.PROJECT:
            return Reject(
                job.id, Invalid(f"{job.project} is {with_article(account.kind)}, not a project")
            )
        key = (
            job.flavors,
            job.min_memory_gb,
            job.data_class,
            job.gpus,
            self._owners(job.project),
            account.may_burst,
        )
        runnable = self.runnable.get(key)
        if runnable is None:
            runnable = self.runnable[key] = self._runnable(job, self._flavors(job))
        flavors, refusal = runnable
        if isinstance(refusal, NoOpenCluster) and refusal.project != job.project:
            refusal = replace(refusal, project=job.project)  # the kind is shared, not the name
        if refusal is not None:
            return Reject(job.id, refusal)
        path = self._path(job.project)
        price_key = (key, job.time_limit_seconds)  # the flavors it may run on, for how long
        cheapest = self.cheapest.get(price_key)
        if cheapest is None:
            cheapest = self.cheapest[price_key] = min(
                self._rate(f.name).cost(job.gpus, job.time_limit_seconds) for f in flavors
            )
        for name, budget, kind in self._capped(job.project):
            whole = budget
            if name == job.project:
                project_total = self.available.get(name, Credits.zero()) + self.used.get(
                    name, Credits.zero()
                )
                whole = project_total if whole is None else min(whole, project_total)
            if whole is not None and cheapest > whole:
                return Reject(job.id, OverWholeBudget(cheapest, whole, kind, name))
        wait = self._borrowing_wait(job, path)
        if wait:
            return Wait(job.id, wait)
        placements, budget_wait, reserved_wait, burst = self._placements(job, flavors, path)
        if not placements:
            if budget_wait:
                return Wait(job.id, budget_wait)
            capacity_wait = self._capacity_wait(job, flavors, path, commit, burst)
            if commit and not reserved_wait:
                self._reserve(job, flavors)
            return Wait(job.id, reserved_wait or capacity_wait)
        if commit:
            self._commit(job, placements[0], path)
        return Admit(job.id, tuple(placements))

    def _borrowing_wait(self, job: JobRequest, path: list[str]) -> BorrowingLimit | None:
        for node in self._limited(path[-1]):
            name = node.name
            assert node.borrowing_limit_gpus is not None
            limit = node.guaranteed_gpus + node.borrowing_limit_gpus
            running = self.running.get(name, 0)
            if running + job.gpus > limit:
                return BorrowingLimit(
                    node.kind.value,
                    name,
                    running,
                    node.guaranteed_gpus,
                    node.borrowing_limit_gpus,
                )
        return None

    def _headroom(self, path: list[str]) -> tuple[Credits, str]:
        """The most credits a new hold may take, and the account that limits it."""
        project = path[-1]
        left = self.available.get(project, Credits.zero())
        limiter = project
        for name, budget, _ in self._capped(project):
            if budget is None:
                continue
            room = budget - self.used.get(name, Credits.zero())
            if room < left:
                left, limiter = room, name
        return left, limiter

    def _placements(
        self, job: JobRequest, flavors: Sequence[Flavor], path: list[str]
    ) -> tuple[list[Placement], OverBudget | None, Reserved | None, _BurstWait | None]:
        allowed = ALLOWED_SITES[job.data_class]
        burst: _BurstWait | None = None  # made for the few jobs a burst target has room for
        headroom: tuple[Credits, str] | None = None  # read once a placement fits
        placements: list[Placement] = []
        budget_wait: OverBudget | None = None
        reserved_wait: Reserved | None = None
        version = self.snapshot.rate_card.version
        candidates: list[tuple[int, int, int, str, Placement]] = []
        cheapest_over: Credits | None = None
        for index, flavor in enumerate(flavors):
            if job.gpus > self.largest.get(flavor.name, 0):
                continue
            fits = [
                (free, cap)
                for cap in self.capacity.get(flavor.name, [])
                if self._open(cap, job, allowed) and (free := cap.fit(job.gpus)) is not None
            ]
            if not fits:
                continue
            rate = self._rate(flavor.name)
            for free, cap in fits:
                if cap.burst_target:
                    burst = burst or _BurstWait()
                    if not self._may_burst_now(job, cap, burst):
                        continue
                reservation = cap.reservation
                if reservation is not None and not reservation.allows(
                    self.snapshot.now, job.time_limit_seconds, cap.taken(job.gpus)
                ):
                    reserved_wait = reserved_wait or Reserved(
                        flavor.name, cap.cluster, reservation.start
                    )
                    continue
                priced = rate if cap.multiplier == 1000 else _multiplied(rate, cap.multiplier)
                hold = priced.cost(job.gpus, job.time_limit_seconds)
                if headroom is None:
                    headroom = self._headroom(path)
                if hold > headroom[0]:
                    cheapest_over = hold if cheapest_over is None else min(cheapest_over, hold)
                    continue
                if cap.burst_target and not self._burst_budget_holds(path, cap, hold):
                    assert burst is not None
                    burst.budget_spent.append(cap.cluster)
                    continue
                placement = Placement(cap.cluster, flavor.name, priced, version, hold)
                candidates.append((SITE_ORDER[cap.site], index, free, cap.cluster, placement))
        if not candidates and cheapest_over is not None and headroom is not None:
            left, limiter = headroom
            budget_wait = OverBudget(
                cheapest_over,
                max(left, Credits.zero()),
                self.tree[limiter].kind.value,
                limiter,
            )
        candidates.sort(key=lambda item: item[:4])
        placements = [item[4] for item in candidates]
        return placements, budget_wait, reserved_wait, burst

    def _may_burst_now(self, job: JobRequest, cap: _Capacity, burst: _BurstWait) -> bool:
        """Whether the job may take this burst target's capacity now (the project may burst
        and its data class permits the site: ``_open``): it has not failed to provision the
        job before, and the job has waited long enough for the pooled clusters."""
        if cap.cluster in job.avoid_clusters:
            return False
        from_ = job.submitted_at + self.burst_wait
        if self.snapshot.now < from_:
            burst.starts = from_ if burst.starts is None else min(burst.starts, from_)
            return False
        return True

    def _burst_budget_holds(self, path: list[str], cap: _Capacity, hold: Credits) -> bool:
        """Whether ``hold`` fits what is left of the program's burst budget at ``cap``."""
        if len(path) < 2 or (budget := cap.burst_budgets.get(path[1])) is None:
            return True
        used = self.burst_used.get((cap.cluster, path[1]), Credits.zero())
        return used + hold <= budget

    def _capacity_wait(
        self,
        job: JobRequest,
        flavors: Sequence[Flavor],
        path: list[str],
        commit: bool,
        burst: _BurstWait | None,
    ) -> NoCapacity:
        ahead = min(self.ahead.get(flavor.name, 0) for flavor in flavors)
        if commit:
            for flavor in flavors:
                self.ahead[flavor.name] = self.ahead.get(flavor.name, 0) + job.gpus
        instead = self._free_instead(job, flavors, path) if job.flavors else None
        names = tuple(flavor.name for flavor in flavors)
        if burst is None and not job.avoid_clusters:
            return NoCapacity(names, job.gpus, ahead, None, instead)
        return NoCapacity(
            names,
            job.gpus,
            ahead,
            None,
            instead,
            burst_from=burst.starts if burst else None,
            burst_budget_spent=tuple(dict.fromkeys(burst.budget_spent)) if burst else (),
            unprovisioned=tuple(sorted(job.avoid_clusters)),
        )

    def _free_instead(
        self, job: JobRequest, asked: Sequence[Flavor], path: list[str]
    ) -> FreeInstead | None:
        """A flavor the job did not name that it could start on now: free where it may run,
        not held back for a reservation, with the memory it needs, within its credits; the
        one that gives the most training per credit."""
        if all(
            job.gpus > self.largest.get(flavor.name, 0)
            for flavor in self._choice((), job.min_memory_gb)
            if flavor not in asked
        ):
            return None  # the usual case in a full pool: nothing else has room
        left, _ = self._headroom(path)
        key = (
            self.moves,
            job.flavors,
            job.min_memory_gb,
            job.gpus,
            job.time_limit_seconds,
            job.data_class,
            self._owners(job.project),
            self.tree[job.project].may_burst,
            left,
        )
        if key not in self.hints:
            self.hints[key] = self._find_free_instead(job, asked, left)
        return self.hints[key]

    def _find_free_instead(
        self, job: JobRequest, asked: Sequence[Flavor], left: Credits
    ) -> FreeInstead | None:
        allowed = ALLOWED_SITES[job.data_class]
        named = {flavor.name for flavor in asked}
        best: tuple[Fraction, str, FreeInstead] | None = None
        for flavor in self._choice((), job.min_memory_gb):
            if flavor.name in named or flavor.name not in self.snapshot.rate_card.rates:
                continue
            if job.gpus > self.largest.get(flavor.name, 0):
                continue  # no cluster has room for it in this flavor
            rate = self._rate(flavor.name)
            if rate.cost(job.gpus, job.time_limit_seconds) > left:
                continue
            free = 0
            for cap in self.capacity.get(flavor.name, []):
                if cap.burst_target or not self._open(cap, job, allowed):
                    continue  # (bursting needs no hint: it happens by itself when it may)
                if cap.fit(job.gpus) is None:
                    continue
                reservation = cap.reservation
                if reservation is None or reservation.allows(
                    self.snapshot.now, job.time_limit_seconds, cap.taken(job.gpus)
                ):
                    free += cap.free_gpus()
            if not free:
                continue
            value = training_per_credit(flavor.relative_throughput, rate)
            found = FreeInstead(flavor.name, free, rate.milli_per_gpu_hour)
            if best is None or (-value, flavor.name) < (best[0], best[1]):
                best = (-value, flavor.name, found)
        return best[2] if best else None

    def _reserve(self, job: JobRequest, flavors: Sequence[Flavor]) -> None:
        """Backfill: hold back the one cluster's flavor where this blocked job starts soonest.

        Among the clusters open to the job (data class, dedication) that have an acceptable
        flavor not reserved yet, the earliest time the job could start there (from the GPUs
        free now and those released by running jobs' time limits there) becomes its reserved
        start; ties go to the placement order (site, flavor, cluster name). Later jobs in the
        order may use that cluster's flavor only if they end before then, or fit in the GPUs
        left over at that time, so smaller jobs fill the gap without ever delaying the large
        one; every other cluster stays theirs. One reservation per cluster's flavor and cycle,
        for the first job blocked on it (EASY backfill).
        """
        allowed = ALLOWED_SITES[job.data_class]
        best: tuple[datetime, int, int, str] | None = None
        chosen: tuple[_Capacity, int] | None = None
        for index, flavor in enumerate(flavors):
            for cap in self.capacity.get(flavor.name, []):
                if cap.reservation is not None or not self._open(cap, job, allowed):
                    continue
                earliest = cap.earliest(job.gpus)
                if earliest is None:
                    continue
                key = (earliest[0], SITE_ORDER[cap.site], index, cap.cluster)
                if best is None or key < best:
                    best, chosen = key, (cap, earliest[1])
        if best is not None and chosen is not None:
            cap, spare = chosen
            cap.reservation = _Reservation(job.id, best[0], spare)
            self.reserved.append(cap)
            self.moves += 1

    def _commit(self, job: JobRequest, placement: Placement, path: list[str]) -> None:
        self.moves += 1
        ends = self.snapshot.now + timedelta(seconds=job.time_limit_seconds)
        self.available[job.project] = self.available.get(job.project, Credits.zero()) - (
            placement.hold
        )
        for name in path:
            self.running[name] = self.running.get(name, 0) + job.gpus
            if name == job.project or self.tree[name].budget is not None:
                self.used[name] = self.used.get(name, Credits.zero()) + placement.hold
        for cap in self.capacity[placement.flavor]:
            if cap.cluster == placement.cluster:
                if cap.burst_target and len(path) > 1:
                    key = (cap.cluster, path[1])
                    self.burst_used[key] = self.burst_used.get(key, Credits.zero()) + (
                        placement.hold
                    )
                free = cap.fit(job.gpus)
                assert free is not None
                cap.take(job.gpus, free)
                taken = cap.taken(job.gpus)
                bisect.insort(cap.releases, (ends, taken))
                reservation = cap.reservation
                if reservation is not None and ends > reservation.start:
                    reservation.spare -= taken
                break
        self.largest[placement.flavor] = self._largest(placement.flavor)


class _BurstWait:
    """What kept a job off the burst targets that had room for it."""

    __slots__ = ("budget_spent", "starts")

    def __init__(self) -> None:
        self.starts: datetime | None = None
        """The soonest it may burst, once it has waited for the pooled clusters."""
        self.budget_spent: list[str] = []
        """Targets where its program's burst budget has too little left."""


@dataclass(slots=True)
class _Reservation:
    job: str
    start: datetime
    spare: int
    """GPUs of the cluster's flavor still free at ``start`` once the blocked job has its
    share (and the jobs admitted after it that run past ``start`` have theirs)."""

    def allows(self, now: datetime, seconds: int, taken: int) -> bool:
        """Whether a job of ``seconds`` that occupies ``taken`` GPUs would not delay it."""
        return now + timedelta(seconds=seconds) <= self.start or taken <= self.spare


def _multiplied(rate: Rate, multiplier_milli: int) -> Rate:
    """A rate at a site that costs ``multiplier_milli``/1000 as much, rounded up."""
    return Rate(-(-rate.milli_per_gpu_hour * multiplier_milli // 1000))
