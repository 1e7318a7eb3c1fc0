"""The capacity left free by the jobs gpupool holds on it: pure, shared by the scheduler's
snapshot, the refusal at submission and the simulator.

Holding jobs are packed onto nodes the way admission places them (best fit for jobs of at most
a node, whole nodes for larger ones), largest first. Nodes that are down (an open
``quotas.outages.NodeOutage``) then have nothing free.

Only how many nodes have how many GPUs free matters to admission (``quotas.admission`` reads a
group's nodes as a histogram), not which node is which: packing works on that histogram, and a
group's nodes are listed most free first.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from jobs.model import Job
from quotas.admission import Cluster
from quotas.inventory import ClusterSpec
from quotas.outages import NodeOutage


def free_capacity(
    clusters: Iterable[ClusterSpec], holding: Iterable[Job], outages: Iterable[NodeOutage] = ()
) -> list[Cluster]:
    """Each cluster's nodes with the GPUs that gpupool's holding jobs leave free, and none on
    the nodes the open ``outages`` say are down (see ``_down``)."""
    clusters = list(clusters)
    sizes: dict[tuple[str, str], list[int]] = defaultdict(list)
    for job in holding:
        if job.placed is not None:
            sizes[(job.placed.cluster, job.placed.flavor)].append(job.spec.gpus)
    down: dict[tuple[str, str], int] = defaultdict(int)
    for outage in outages:
        if outage.open:
            down[outage.key] += outage.nodes
    return [
        spec.with_free(
            {
                item.flavor: listed(
                    pack(
                        item.nodes,
                        item.gpus_per_node,
                        sizes.get((spec.name, item.flavor), ()),
                        down.get((spec.name, item.flavor), 0),
                    )
                )
                for item in spec.inventory
            }
        )
        for spec in clusters
    ]


def pack(nodes: int, gpus_per_node: int, sizes: Iterable[int], down: int = 0) -> list[int]:
    """How many of ``nodes`` have 0, 1, ... ``gpus_per_node`` GPUs free (by index) once jobs
    of ``sizes`` GPUs are packed on them, largest first, and ``down`` nodes have nothing free."""
    return pack_counts(nodes, gpus_per_node, Counter(sizes), down)


def pack_counts(
    nodes: int, gpus_per_node: int, counts: Mapping[int, int], down: int = 0
) -> list[int]:
    """``pack`` for ``counts[size]`` jobs of each size.

    Jobs of one size up to a node are placed together: best fit sends each to the fullest node
    it fits, and a node it lands on stays the fullest it fits until it has too little left, so
    each node of ``f`` free GPUs, fullest first, takes ``f // size`` of them in turn."""
    histogram = [0] * (gpus_per_node + 1)
    histogram[gpus_per_node] = nodes
    for gpus in sorted(counts, reverse=True):
        count = counts[gpus]
        if gpus > gpus_per_node:
            for _ in range(count):
                take(histogram, gpus_per_node, gpus)
            continue
        for free in range(gpus, gpus_per_node + 1):
            if not count:
                break
            there = histogram[free]
            if not there:
                continue
            each = free // gpus
            filled = min(there, count // each)
            histogram[free] -= filled
            histogram[free % gpus] += filled
            count -= filled * each
            if count and filled < there:  # one node takes what is left of them
                histogram[free] -= 1
                histogram[free - count * gpus] += 1
                count = 0
        for _ in range(count):  # more than fits: spread over what is left (overbooked)
            take(histogram, gpus_per_node, gpus)
    _down(histogram, down)
    return histogram


def listed(histogram: list[int]) -> tuple[int, ...]:
    """Free GPUs per node, most free first, from ``pack``'s histogram."""
    return tuple(free for free in range(len(histogram) - 1, -1, -1) for _ in range(histogram[free]))


def take(histogram: list[int], gpus_per_node: int, gpus: int) -> None:
    """A job of at most a node takes the node it fits most tightly; a larger one (or one that
    fits no node: more than the group has free) takes the nodes with the most free first."""
    if gpus <= gpus_per_node:
        for free in range(gpus, gpus_per_node + 1):
            if histogram[free]:
                histogram[free] -= 1
                histogram[free - gpus] += 1
                return
    remaining = gpus
    for free in range(gpus_per_node, 0, -1):
        while histogram[free] and remaining:
            take = min(free, remaining)
            histogram[free] -= 1
            histogram[free - take] += 1
            remaining -= take
        if not remaining:
            return


def _down(histogram: list[int], down: int) -> None:
    """Nothing free on ``down`` of the nodes: those with the most GPUs free.

    A backend says how many nodes are down, not which of the nodes gpupool packed its jobs onto
    (that packing is gpupool's own guess), so the nodes with the most free are taken to be the
    down ones: the cycle then never sees more free capacity than is up. The nodes stay in the
    group, with nothing free, so the pool's shape (what a job could ever run on) is unchanged: a
    job that fits only on a down node waits for it rather than being refused."""
    for free in range(len(histogram) - 1, 0, -1):
        if down <= 0:
            return
        moved = min(histogram[free], down)
        histogram[free] -= moved
        histogram[0] += moved
        down -= moved
