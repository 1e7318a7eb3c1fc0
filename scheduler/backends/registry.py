"""Which backend runs each cluster: built from the clusters the books declare.

A Ray cluster with an address gets a ``RayBackend`` for that address; a Ray cluster without one
is served by the embedded local Ray cluster (``gpupool serve`` starts it), when there is one,
with the embedded cluster's auth token.
Clusters with no backend available here are left out, so nothing is admitted onto them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from quotas.flavors import Flavor
from quotas.inventory import BackendKind, ClusterSpec
from scheduler.backends.base import Backend
from scheduler.backends.ray import RayBackend
from scheduler.embedded import RayEndpoint


def embedded_inventory(
    clusters: Iterable[ClusterSpec], flavors: Mapping[str, Flavor]
) -> dict[str, int]:
    """Logical GPUs per Ray flavor resource for the clusters the embedded Ray cluster serves."""
    inventory: dict[str, int] = {}
    for cluster in clusters:
        if cluster.backend is BackendKind.RAY and not cluster.address:
            for item in cluster.inventory:
                resource = flavors[item.flavor].ray_resource
                inventory[resource] = inventory.get(resource, 0) + item.gpus
    return inventory


def build_backends(
    clusters: Iterable[ClusterSpec],
    flavors: Mapping[str, Flavor],
    embedded: RayEndpoint | None = None,
    auth_tokens: Mapping[str, str] | None = None,
) -> dict[str, Backend]:
    """A backend per cluster that can be reached from here; ``auth_tokens`` gives the Ray auth
    token of each cluster address that needs one (the embedded cluster's comes with it)."""
    resources = {name: flavor.ray_resource for name, flavor in flavors.items()}
    tokens = {address.rstrip("/"): token for address, token in (auth_tokens or {}).items()}
    shared: dict[str, RayBackend] = {}
    backends: dict[str, Backend] = {}
    for cluster in clusters:
        if cluster.backend is not BackendKind.RAY:
            continue
        endpoint = (
            RayEndpoint(cluster.address, tokens.get(cluster.address.rstrip("/")))
            if cluster.address
            else embedded
        )
        if endpoint is None:
            continue
        if endpoint.address not in shared:
            shared[endpoint.address] = RayBackend(
                endpoint.address, auth_token=endpoint.auth_token, flavor_resources=resources
            )
        backends[cluster.name] = shared[endpoint.address]
    return backends


async def close_backends(backends: Mapping[str, Backend]) -> None:
    for backend in {id(b): b for b in backends.values()}.values():
        if isinstance(backend, RayBackend):
            await backend.close()
