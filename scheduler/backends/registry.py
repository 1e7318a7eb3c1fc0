"""Which backend runs each cluster: built from the clusters the books declare, by backend kind.

``BUILDERS`` maps each kind of backend to what builds the backends of its clusters; a kind
without a builder here (Kubernetes, cloud, until they have one) gets none, and clusters with no
backend are left out, so nothing is admitted onto them.

Ray: a cluster with an address gets a ``RayBackend`` for that address (one per address, shared by
the clusters on it); a cluster without one is served by the embedded local Ray cluster
(``gpupool serve`` starts it), when there is one, with the embedded cluster's auth token.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from quotas.flavors import Flavor
from quotas.inventory import BackendKind, ClusterSpec
from scheduler.backends.base import Backend
from scheduler.backends.ray import RayBackend
from scheduler.embedded import RayEndpoint


@dataclass(frozen=True)
class Reachable:
    """What this process can reach clusters with: the embedded Ray cluster, if it runs, and
    the secrets of configured ones."""

    embedded: RayEndpoint | None = None
    ray_tokens: Mapping[str, str] = field(default_factory=dict)
    """Ray's auth token per cluster address, for clusters run with ``RAY_AUTH_MODE=token``."""


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


BUILDERS: Mapping[BackendKind, Builder] = {BackendKind.RAY: _ray}


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
