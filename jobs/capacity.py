"""The capacity left free by the jobs gpupool holds on it: pure, shared by the scheduler's
snapshot, the refusal at submission and the simulator.

Holding jobs are packed onto nodes the way admission places them (best fit for jobs of at most
a node, whole nodes for larger ones), largest first. Nodes that are down (an open
``quotas.outages.NodeOutage``) then have nothing free.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    free: dict[tuple[str, str], list[int]] = {}
    per_node: dict[tuple[str, str], int] = {}
    for spec in clusters:
        for item in spec.inventory:
            free[(spec.name, item.flavor)] = [item.gpus_per_node] * item.nodes
            per_node[(spec.name, item.flavor)] = item.gpus_per_node
    for job in sorted(holding, key=lambda job: -job.spec.gpus):
        if job.placed is None:
            continue
        key = (job.placed.cluster, job.placed.flavor)
        if key not in free:
            continue
        _take(free[key], per_node[key], job.spec.gpus)
    for outage in outages:
        if outage.open and outage.key in free:
            _down(free[outage.key], outage.nodes)
    return [
        spec.with_free(
            {item.flavor: tuple(free[(spec.name, item.flavor)]) for item in spec.inventory}
        )
        for spec in clusters
    ]


def _take(nodes: list[int], gpus_per_node: int, gpus: int) -> None:
    if gpus <= gpus_per_node:
        fitting = [index for index, free in enumerate(nodes) if free >= gpus]
        if fitting:
            best = min(fitting, key=lambda index: nodes[index])
            nodes[best] -= gpus
            return
    remaining = gpus
    for index in sorted(range(len(nodes)), key=lambda index: -nodes[index]):
        take = min(nodes[index], remaining)
        nodes[index] -= take
        remaining -= take
        if not remaining:
            return


def _down(nodes: list[int], down: int) -> None:
    """Nothing free on ``down`` of the nodes: those with the most GPUs free.

    A backend says how many nodes are down, not which of the nodes gpupool packed its jobs onto
    (that packing is gpupool's own guess), so the nodes with the most free are taken to be the
    down ones: the cycle then never sees more free capacity than is up. The nodes stay in the
    list, with nothing free, so the pool's shape (what a job could ever run on) is unchanged: a
    job that fits only on a down node waits for it rather than being refused."""
    for index in sorted(range(len(nodes)), key=lambda index: -nodes[index])[:down]:
        nodes[index] = 0
