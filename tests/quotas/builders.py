"""Fluent builders for quota-engine scenarios, so a test reads like the sentence it checks.

``a_job("j1").project("kaist-nlp").gpus(8, "h100-80g").hours(4).build()`` is a ``JobRequest``;
``a_pool().program("research").organization("kaist").project("kaist-nlp", credits=100)``
``.cluster("national-daejeon", h100=(2, 8)).snapshot()`` is a ``Snapshot`` of a small pool. The
demo flavors are the reference ``h100-80g`` (80 GB, throughput 1.0, rate 1.0), ``a100-80g``
(80 GB, 0.8, rate 0.8) and ``v100-32g`` (32 GB, 0.25, rate 0.25): by default every flavor buys
the same training per credit, and a test that wants one flavor to be a better deal says so with
``.rate("v100-32g", "0.1")``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.admission import (
    Cluster,
    DataClass,
    JobRequest,
    NodeGroup,
    PriorityClass,
    SiteKind,
    Snapshot,
)
from quotas.fairshare import fair_share
from quotas.flavors import Flavor, RateCard
from quotas.quantities import Credits, Rate

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
PERIOD = "2025-q1"

H100 = "h100-80g"
A100 = "a100-80g"
V100 = "v100-32g"

FLAVORS: Mapping[str, Flavor] = {
    H100: Flavor(H100, memory_gb=80, relative_throughput=1.0),
    A100: Flavor(A100, memory_gb=80, relative_throughput=0.8),
    V100: Flavor(V100, memory_gb=32, relative_throughput=0.25),
}
DEFAULT_RATES: Mapping[str, str] = {H100: "1.0", A100: "0.8", V100: "0.25"}
SHORT_NAMES: Mapping[str, str] = {"h100": H100, "a100": A100, "v100": V100}

CreditsLike = int | str | Decimal | Credits


def credits(amount: CreditsLike) -> Credits:
    """``Credits`` from a number of credits (``12.5``-style strings allowed) or ``Credits``."""
    return amount if isinstance(amount, Credits) else Credits.of(amount)


def a_rate_card(rates: Mapping[str, str] | None = None, *, version: int = 1) -> RateCard:
    """The demo rate card, with some rates changed: ``a_rate_card({V100: "0.1"})``."""
    chosen = {**DEFAULT_RATES, **(rates or {})}
    return RateCard(
        version=version,
        effective_from=datetime(2025, 1, 1, tzinfo=UTC),
        rates={name: Rate.of(rate) for name, rate in chosen.items()},
    )


class JobBuilder:
    """A job request: one GPU of any flavor for one hour, for ``kaist-nlp``, unless told."""

    def __init__(self, job_id: str) -> None:
        self._id = job_id
        self._project = "kaist-nlp"
        self._gpus = 1
        self._flavors: tuple[str, ...] = ()
        self._min_memory_gb: int | None = None
        self._seconds = 3600
        self._submitted_at = NOW
        self._priority = PriorityClass.NORMAL
        self._data_class = DataClass.PUBLIC
        self._avoid: frozenset[str] = frozenset()

    def project(self, name: str) -> JobBuilder:
        self._project = name
        return self

    def gpus(self, count: int, *flavors: str) -> JobBuilder:
        """``count`` GPUs, of any of ``flavors`` (or of any flavor when none is named)."""
        self._gpus = count
        if flavors:
            self._flavors = flavors
        return self

    def of(self, *flavors: str) -> JobBuilder:
        """Accepts any of these flavors."""
        self._flavors = flavors
        return self

    def min_memory(self, gb: int) -> JobBuilder:
        """Accepts every flavor (or every named one) with at least ``gb`` GB of memory."""
        self._min_memory_gb = gb
        return self

    def hours(self, hours: float) -> JobBuilder:
        self._seconds = round(hours * 3600)
        return self

    def minutes(self, minutes: int) -> JobBuilder:
        self._seconds = minutes * 60
        return self

    def seconds(self, seconds: int) -> JobBuilder:
        self._seconds = seconds
        return self

    def priority(self, priority: PriorityClass | str) -> JobBuilder:
        self._priority = PriorityClass(priority)
        return self

    def urgent(self) -> JobBuilder:
        return self.priority(PriorityClass.URGENT)

    def opportunistic(self) -> JobBuilder:
        return self.priority(PriorityClass.OPPORTUNISTIC)

    def data(self, data_class: DataClass | str) -> JobBuilder:
        self._data_class = DataClass(data_class)
        return self

    def submitted(self, minutes_ago: int) -> JobBuilder:
        self._submitted_at = NOW - timedelta(minutes=minutes_ago)
        return self

    def avoiding(self, *clusters: str) -> JobBuilder:
        """Burst targets that could not provision it before."""
        self._avoid = frozenset(clusters)
        return self

    def build(self) -> JobRequest:
        return JobRequest(
            id=self._id,
            project=self._project,
            gpus=self._gpus,
            time_limit_seconds=self._seconds,
            submitted_at=self._submitted_at,
            flavors=self._flavors,
            min_memory_gb=self._min_memory_gb,
            priority=self._priority,
            data_class=self._data_class,
            avoid_clusters=self._avoid,
        )


def a_job(job_id: str = "j1") -> JobBuilder:
    return JobBuilder(job_id)


class PoolBuilder:
    """A small pool: an account tree read top-down, clusters, credits, usage and rates.

    ``program``, ``organization`` and ``project`` add an account under the last one of the kind
    above (a project added first gets a ``research`` program and a ``kaist`` organization).
    """

    def __init__(self) -> None:
        self._accounts: dict[str, Account] = {"pool": Account("pool", AccountKind.POOL)}
        self._program = ""
        self._organization = ""
        self._committed: dict[str, Credits] = {}
        self._used: dict[str, Credits] = {}
        self._running: dict[str, int] = {}
        self._usage: dict[str, float] | None = None
        self._clusters: dict[str, Cluster] = {}
        self._releases: dict[tuple[str, str], tuple[tuple[datetime, int], ...]] = {}
        self._rates: dict[str, str] = {}
        self._burst_wait = 0
        self._burst_used: dict[tuple[str, str], Credits] = {}

    # --- the account tree ---------------------------------------------------------------------

    def _add(
        self,
        name: str,
        kind: AccountKind,
        parent: str,
        share: int,
        budget: CreditsLike | None,
        guaranteed: int,
        borrowing: int | None,
        may_burst: bool = False,
    ) -> None:
        self._accounts[name] = Account(
            name,
            kind,
            parent,
            share=share,
            budget=None if budget is None else credits(budget),
            guaranteed_gpus=guaranteed,
            borrowing_limit_gpus=borrowing,
            may_burst=may_burst,
        )

    def pool_budget(self, budget: CreditsLike) -> PoolBuilder:
        self._accounts["pool"] = Account("pool", AccountKind.POOL, budget=credits(budget))
        return self

    def program(
        self,
        name: str,
        *,
        share: int = 1,
        budget: CreditsLike | None = None,
        guaranteed: int = 0,
        borrowing: int | None = None,
    ) -> PoolBuilder:
        self._add(name, AccountKind.PROGRAM, "pool", share, budget, guaranteed, borrowing)
        self._program, self._organization = name, ""
        return self

    def organization(
        self,
        name: str,
        *,
        share: int = 1,
        budget: CreditsLike | None = None,
        guaranteed: int = 0,
        borrowing: int | None = None,
    ) -> PoolBuilder:
        if not self._program:
            self.program("research")
        self._add(
            name, AccountKind.ORGANIZATION, self._program, share, budget, guaranteed, borrowing
        )
        self._organization = name
        return self

    def project(
        self,
        name: str,
        *,
        credits: CreditsLike = 0,
        share: int = 1,
        budget: CreditsLike | None = None,
        guaranteed: int = 0,
        borrowing: int | None = None,
        may_burst: bool = False,
    ) -> PoolBuilder:
        """A project with ``credits`` available to it (awarded, free to hold: available)."""
        if not self._organization:
            self.organization("kaist")
        self._add(
            name,
            AccountKind.PROJECT,
            self._organization,
            share,
            budget,
            guaranteed,
            borrowing,
            may_burst,
        )
        self._committed[name] = _credits(credits)
        return self

    def projects(self, *names: str, credits: CreditsLike = 1000) -> PoolBuilder:
        for name in names:
            self.project(name, credits=credits)
        return self

    # --- the books ----------------------------------------------------------------------------

    def used(self, account: str, amount: CreditsLike) -> PoolBuilder:
        """Credits ``account`` has already spent or holds in flight this period."""
        self._used[account] = _credits(amount)
        return self

    def running(self, account: str, gpus: int) -> PoolBuilder:
        """GPUs already held by admitted or running jobs of ``account``'s whole subtree."""
        self._running[account] = gpus
        return self

    def usage(self, project: str, amount: float) -> PoolBuilder:
        """Decayed usage in credits for fair share; any usage given turns fair share on."""
        self._usage = {**(self._usage or {}), project: amount}
        return self

    def fair_share(self) -> PoolBuilder:
        """Rank projects by fair share even though nobody has used anything yet."""
        self._usage = self._usage or {}
        return self

    def rate(self, flavor: str, credits_per_gpu_hour: str) -> PoolBuilder:
        self._rates[flavor] = credits_per_gpu_hour
        return self

    # --- the pool's capacity ------------------------------------------------------------------

    def cluster(
        self,
        name: str,
        site: SiteKind | str = SiteKind.NATIONAL,
        **flavors: tuple[int, int],
    ) -> PoolBuilder:
        """A cluster with, per flavor (short name), ``(nodes, GPUs per node)``, all free."""
        groups = tuple(
            NodeGroup(SHORT_NAMES[short], gpus_per_node, (gpus_per_node,) * nodes)
            for short, (nodes, gpus_per_node) in flavors.items()
        )
        self._clusters[name] = Cluster(name, SiteKind(site), groups)
        return self

    def busy(self, cluster: str, **busy_per_node: tuple[int, ...]) -> PoolBuilder:
        """GPUs already busy on the first nodes of a flavor: ``busy("c", h100=(4, 8))``."""
        old = self._clusters[cluster]
        groups = []
        for group in old.groups:
            short = next(short for short, name in SHORT_NAMES.items() if name == group.flavor)
            busy = busy_per_node.get(short, ())
            free = tuple(
                group.gpus_per_node - (busy[node] if node < len(busy) else 0)
                for node in range(group.nodes)
            )
            groups.append(NodeGroup(group.flavor, group.gpus_per_node, free))
        self._clusters[cluster] = replace(old, groups=tuple(groups))
        return self

    def dedicated(self, cluster: str, to: str) -> PoolBuilder:
        """Only jobs of ``to``'s subtree (an organization or program) may run on ``cluster``."""
        self._clusters[cluster] = replace(self._clusters[cluster], dedicated_to=to)
        return self

    def released(self, cluster: str, **per_flavor: tuple[tuple[float, int], ...]) -> PoolBuilder:
        """When busy GPUs of ``cluster`` come back at the latest: ``released("c", h100=((2,
        8),))`` says 8 busy h100 GPUs there are released in 2 hours (their job's time limit)."""
        for short, releases in per_flavor.items():
            self._releases[(cluster, SHORT_NAMES[short])] = tuple(
                sorted((NOW + timedelta(hours=hours), gpus) for hours, gpus in releases)
            )
        return self

    def single_node(self, cluster: str) -> PoolBuilder:
        """No job spans several nodes of ``cluster`` (a Ray cluster)."""
        self._clusters[cluster] = replace(self._clusters[cluster], multi_node=False)
        return self

    def priced(self, cluster: str, multiplier_milli: int) -> PoolBuilder:
        """Credits at ``cluster`` cost ``multiplier_milli``/1000 as much (a cloud's price)."""
        self._clusters[cluster] = replace(
            self._clusters[cluster], price_multiplier_milli=multiplier_milli
        )
        return self

    def burst_budget(self, cluster: str, program: str, amount: CreditsLike) -> PoolBuilder:
        """``program`` may hold and spend at most ``amount`` at the burst target ``cluster``."""
        old = self._clusters[cluster]
        budgets = {**old.burst_budgets, program: credits(amount)}
        self._clusters[cluster] = replace(old, burst_budgets=budgets)
        return self

    def burst_used(self, cluster: str, program: str, amount: CreditsLike) -> PoolBuilder:
        """Credits ``program`` already holds and spent at the burst target ``cluster``."""
        self._burst_used[(cluster, program)] = credits(amount)
        return self

    def burst_wait(self, minutes: int) -> PoolBuilder:
        """How long jobs wait for the pooled clusters before they may burst."""
        self._burst_wait = minutes * 60
        return self

    def full(self, cluster: str) -> PoolBuilder:
        """Every GPU of ``cluster`` is busy."""
        old = self._clusters[cluster]
        groups = tuple(
            NodeGroup(group.flavor, group.gpus_per_node, (0,) * group.nodes) for group in old.groups
        )
        self._clusters[cluster] = replace(old, groups=groups)
        return self

    # --- results ------------------------------------------------------------------------------

    def tree(self) -> AccountTree:
        return AccountTree.of(self._accounts.values())

    def snapshot(self) -> Snapshot:
        tree = self.tree()
        return Snapshot(
            now=NOW,
            period=PERIOD,
            tree=tree,
            flavors=FLAVORS,
            rate_card=a_rate_card(self._rates),
            clusters=tuple(self._clusters.values()),
            available=dict(self._committed),
            used=dict(self._used),
            running_gpus=dict(self._running),
            fair_share=None if self._usage is None else fair_share(tree, self._usage),
            releases=dict(self._releases),
            burst_wait_seconds=self._burst_wait,
            burst_used=dict(self._burst_used),
        )


def _credits(amount: CreditsLike) -> Credits:
    return credits(amount)


def a_pool() -> PoolBuilder:
    return PoolBuilder()
