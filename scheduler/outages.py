"""Capacity that is down: every ``health_check_seconds``, each national cluster's backend is
asked which of its nodes are up, and the nodes the books declare but the backend does not
report up (cordoned, NotReady, dead) are recorded as node outages (``quotas.outages``).

One step of the loop, I/O around two pure functions: ``nodes_down`` compares what a backend
reports with a cluster's declared inventory, ``outage_changes`` turns that into outages to end
and to start. A change in how many nodes of a flavor are down ends the open outage and starts
another, so each record's GPUs x duration is exactly the GPU-time lost. The cycle places no job
on the nodes of an open outage (``jobs.capacity``); the utilisation report counts them as down.

A backend that does not answer (``BackendError``, or no answer within
``health_check_timeout_seconds``) is no evidence that anything is down: its cluster's outages
are left as they are, and the failure is logged. Burst targets (cloud sites) are not asked:
their inventory is the most they scale to, not nodes that should be up. Outages of a cluster
and flavor the books no longer declare are ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from quotas.admission import SiteKind
from quotas.clock import Clock, utc_now
from quotas.db.session import transaction
from quotas.inventory import ClusterSpec
from quotas.outages import NodeOutage
from quotas.service import Books
from scheduler.backends.base import Backend, BackendError, FlavorCapacity
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

Capacities = Mapping[str, FlavorCapacity]


@dataclass(frozen=True, slots=True)
class Down:
    """Nodes of one flavor not up, and the GPUs the books declare on them."""

    nodes: int
    gpus: int


@dataclass(frozen=True, slots=True)
class OutageChanges:
    ended: tuple[NodeOutage, ...] = ()
    started: tuple[NodeOutage, ...] = ()


def nodes_down(cluster: ClusterSpec, reported: Capacities) -> dict[str, Down]:
    """Per flavor of the cluster's inventory, the nodes its backend does not report up.

    Nodes up are counted in the declared node size: the GPUs of the nodes reported up over the
    declared GPUs per node, rounded down. So a backend that serves several declared nodes as one
    (the embedded Ray cluster is a single node with the whole inventory) is not taken to be
    down, and a shortfall of part of a node counts as the whole node down. A flavor the backend
    does not report at all has no node up; one it reports more nodes of than declared is not
    down."""
    found: dict[str, Down] = {}
    for item in cluster.inventory:
        capacity = reported.get(item.flavor)
        up_gpus = len(capacity.free) * capacity.gpus_per_node if capacity is not None else 0
        down = item.nodes - min(item.nodes, up_gpus // item.gpus_per_node)
        if down:
            found[item.flavor] = Down(down, down * item.gpus_per_node)
    return found


def outage_changes(
    open_outages: Iterable[NodeOutage],
    seen: Mapping[str, Mapping[str, Down]],
    declared: Iterable[tuple[str, str]],
    now: datetime,
) -> OutageChanges:
    """What to record, given the open outages, what is down on each cluster whose backend
    answered (``seen``: cluster -> flavor -> ``Down``) and the (cluster, flavor) pairs the books
    declare.

    An open outage ends when its flavor is back, when a different number of nodes is down (a
    new outage starts with the new number), or when the books no longer declare it; an outage
    starts where nodes are down and none is open. Clusters that did not answer keep theirs."""
    declared = set(declared)
    kept: set[tuple[str, str]] = set()
    ended: list[NodeOutage] = []
    for outage in open_outages:
        if outage.key not in declared or outage.key in kept:
            ended.append(outage)
            continue
        if outage.cluster in seen:
            down = seen[outage.cluster].get(outage.flavor)
            if down != Down(outage.nodes, outage.gpus):
                ended.append(outage)
                continue
        kept.add(outage.key)
    started = [
        NodeOutage(cluster, flavor, down.nodes, down.gpus, since=now)
        for cluster, flavors in sorted(seen.items())
        for flavor, down in sorted(flavors.items())
        if (cluster, flavor) in declared and (cluster, flavor) not in kept
    ]
    return OutageChanges(tuple(ended), tuple(started))


@dataclass
class OutageWatch:
    """The step: asks the backends, every ``health_check_seconds`` of the clock, and records
    what changed in one transaction (none is open while a backend is asked)."""

    factory: sessionmaker[Session]
    settings: SchedulerSettings
    clock: Clock = utc_now
    _due: datetime | None = field(default=None, init=False)

    async def check(self, backends: Mapping[str, Backend]) -> OutageChanges:
        """Ask the ``backends`` (per cluster name) and record, if a check is due; what was
        ended and started."""
        now = self.clock()
        if self._due is not None and now < self._due:
            return OutageChanges()
        self._due = now + timedelta(seconds=self.settings.health_check_seconds)
        with transaction(self.factory) as session:
            clusters = Books(session, self.clock).clusters.all()
        watched = [
            cluster
            for cluster in clusters
            if cluster.name in backends and cluster.site is SiteKind.NATIONAL
        ]
        sharing: dict[int, list[str]] = {}
        for cluster in watched:
            sharing.setdefault(id(backends[cluster.name]), []).append(cluster.name)
        answers = await self._ask(
            {key: (backends[names[0]], names) for key, names in sharing.items()}
        )
        seen = {
            cluster.name: nodes_down(cluster, answer)
            for cluster in watched
            if (answer := answers[id(backends[cluster.name])]) is not None
        }
        declared = [
            (cluster.name, item.flavor) for cluster in clusters for item in cluster.inventory
        ]
        at = self.clock()
        with transaction(self.factory) as session:
            outages = Books(session, self.clock).outages
            changes = outage_changes(outages.open(), seen, declared, at)
            outages.end([outage.id for outage in changes.ended], at)
            started = outages.start(changes.started)
        for outage in changes.ended:
            log.info(
                "%s: the outage of %s nodes of %s since %s ended",
                outage.cluster,
                outage.nodes,
                outage.flavor,
                outage.since.isoformat(),
            )
        for outage in started:
            log.warning(
                "%s: %s nodes of %s (%s GPUs) are down: nothing is placed on them",
                outage.cluster,
                outage.nodes,
                outage.flavor,
                outage.gpus,
            )
        return OutageChanges(changes.ended, tuple(started))

    async def _ask(
        self, backends: Mapping[int, tuple[Backend, list[str]]]
    ) -> dict[int, Capacities | None]:
        """Each backend's capacity (by identity: clusters may share one), all at once; None
        for one that did not answer in time or failed."""

        async def ask(backend: Backend, clusters: list[str]) -> Capacities | None:
            try:
                return await asyncio.wait_for(
                    backend.capacity(), self.settings.health_check_timeout_seconds
                )
            except (BackendError, TimeoutError) as error:
                log.warning(
                    "cannot read which nodes of %s are up (%s); their outages are left as they are",
                    ", ".join(clusters),
                    "no answer in time" if isinstance(error, TimeoutError) else error,
                )
                return None

        answers = await asyncio.gather(*(ask(*each) for each in backends.values()))
        return dict(zip(backends, answers, strict=True))
