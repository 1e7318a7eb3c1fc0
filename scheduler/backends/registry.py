"""Which backend runs each cluster: built from the clusters the books declare, by backend kind.

``BUILDERS`` maps each kind of backend to what builds the backends of its clusters; a kind
without a builder here (cloud, until it has one) gets none, and clusters with no backend are
left out, so nothing is admitted onto them.

Ray: a cluster with an address gets a ``RayBackend`` for that address (one per address, shared by
the clusters on it); a cluster without one is served by the embedded local Ray cluster
(``gpupool serve`` starts it), when there is one, with the embedded cluster's auth token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kubernetes.config.config_exception import ConfigException

from quotas.flavors import Flavor
from quotas.inventory import BackendKind, ClusterSpec
from scheduler.backends.base import Backend
from scheduler.backends.kubernetes import KubernetesBackend, Placement
from scheduler.backends.ray import RayBackend
from scheduler.embedded import RayEndpoint


@dataclass(frozen=True)
class Reachable:
    """What this process can reach clusters with: the embedded Ray cluster, if it runs, and
    the secrets of configured ones."""

    embedded: RayEndpoint | None = None
    ray_tokens: Mapping[str, str] = field(default_factory=dict)
    """Ray's auth token per cluster address, for clusters run with ``RAY_AUTH_MODE=token``."""


log = logging.getLogger(__name__)

Builder = Callable[[Sequence[ClusterSpec], Mapping[str, Flavor], Reachable], dict[str, Backend]]


def _ray(
    clusters: Sequence[ClusterSpec], flavors: Mapping[str, Flavor], reachable: Reachable
) -> dict[str, Backend]:
    resources = {name: flavor.ray_resource for name, flavor in flavors.items()}
    tokens = {address.rstrip("/"): token for address, token in reachable.ray_tokens.items()}
    shared: dict[str, RayBackend] = {}
    backends: dict[str, Backend] = {}
    for cluster in clusters:
        endpoint = (
            RayEndpoint(cluster.address, tokens.get(cluster.address.rstrip("/")))
            if cluster.address
            else reachable.embedded
        )
        if endpoint is None:
            continue
        if endpoint.address not in shared:
            shared[endpoint.address] = RayBackend(
                endpoint.address, auth_token=endpoint.auth_token, flavor_resources=resources
            )
        backends[cluster.name] = shared[endpoint.address]
    return backends


def _kubernetes(
    clusters: Sequence[ClusterSpec], flavors: Mapping[str, Flavor], _reachable: Reachable
) -> dict[str, Backend]:
    """A ``KubernetesBackend`` per cluster, for the kubeconfig context its address names
    (``in-cluster``: the cluster gpupool runs in; empty: the kubeconfig's current context); a
    burst target with a provisioning class asks its cluster autoscaler for nodes before each
    launch. A cluster whose context cannot be loaded gets none, and says why in the log."""
    backends: dict[str, Backend] = {}
    for cluster in clusters:
        placements = {
            item.flavor: Placement.of(
                item.flavor,
                flavors[item.flavor].kubernetes_resource,
                flavors[item.flavor].ray_resource,
            )
            for item in cluster.inventory
            if item.flavor in flavors
        }
        try:
            backends[cluster.name] = KubernetesBackend.from_kubeconfig(
                cluster.address,
                placements,
                provisioning_class=cluster.provisioning_class or None,
            )
        except (ConfigException, OSError) as error:
            log.warning("cluster %s: no Kubernetes backend: %s", cluster.name, error)
    return backends


BUILDERS: Mapping[BackendKind, Builder] = {
    BackendKind.RAY: _ray,
    BackendKind.KUBERNETES: _kubernetes,
}


def build_backends(
    clusters: Iterable[ClusterSpec],
    flavors: Mapping[str, Flavor],
    reachable: Reachable = Reachable(),
) -> dict[str, Backend]:
    """A backend per cluster that can be reached from here."""
    clusters = list(clusters)
    backends: dict[str, Backend] = {}
    for kind, build in BUILDERS.items():
        backends.update(build([c for c in clusters if c.backend is kind], flavors, reachable))
    return backends


async def close_backends(backends: Mapping[str, Backend]) -> None:
    """Close each backend once (clusters may share one)."""
    for backend in {id(b): b for b in backends.values()}.values():
        await backend.close()
