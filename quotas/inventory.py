"""Clusters and what they hold: nodes of each flavor, the site kind, the backend behind them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from quotas.accounts import check_name
from quotas.admission import Cluster, NodeGroup, SiteKind
from quotas.errors import InvalidInput


class BackendKind(StrEnum):
    RAY = "ray"
    KUBERNETES = "kubernetes"
    CLOUD = "cloud"


@dataclass(frozen=True, slots=True)
class Inventory:
    flavor: str
    nodes: int
    gpus_per_node: int

    def __post_init__(self) -> None:
        if self.nodes <= 0 or self.gpus_per_node <= 0:
            raise InvalidInput(f"{self.flavor}: nodes and GPUs per node must be positive")

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """A cluster as configured: its backend, site kind and inventory per flavor."""

    name: str
    backend: BackendKind
    site: SiteKind
    inventory: tuple[Inventory, ...]
    address: str = ""
    price_multiplier_milli: int = 1000
    """Cloud targets cost more: 1500 means credits there cost 1.5x."""

    def __post_init__(self) -> None:
        check_name(self.name)
        flavors = [item.flavor for item in self.inventory]
        if len(set(flavors)) != len(flavors):
            raise InvalidInput(f"cluster {self.name} lists a flavor twice")
        if self.price_multiplier_milli <= 0:
            raise InvalidInput(f"cluster {self.name}: price multiplier must be positive")

    def idle(self) -> Cluster:
        """The cluster with every GPU free (for quotes, tests and the first cycle)."""
        return Cluster(
            self.name,
            self.site,
            tuple(
                NodeGroup(item.flavor, item.gpus_per_node, (item.gpus_per_node,) * item.nodes)
                for item in self.inventory
            ),
            multi_node=self.multi_node,
            price_multiplier_milli=self.price_multiplier_milli,
        )

    @property
    def multi_node(self) -> bool:
        """Ray clusters run single-node jobs only (for now); Kubernetes and cloud run gangs."""
        return self.backend is not BackendKind.RAY
