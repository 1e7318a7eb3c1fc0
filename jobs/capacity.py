"""The capacity left free by the jobs gpupool holds on it: pure, shared by the scheduler's
snapshot, the refusal at submission and the simulator.

Holding jobs are packed onto nodes the way admission places them (best fit for jobs of at most
a node, whole nodes for larger ones), largest first.
"""

from __future__ import annotations

from collections.abc import Iterable

from jobs.model import Job
from quotas.admission import Cluster
from quotas.inventory import ClusterSpec


def free_capacity(clusters: Iterable[ClusterSpec], holding: Iterable[Job]) -> list[Cluster]:
    """Each cluster's nodes with the GPUs that gpupool's holding jobs leave free."""
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
