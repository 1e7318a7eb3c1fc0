"""Clusters and what they hold: nodes of each flavor, the site kind, the backend behind them,
and whose jobs may share them (tenancy)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from quotas.accounts import check_name
from quotas.admission import Cluster, NodeGroup, SiteKind
from quotas.errors import InvalidInput
from quotas.quantities import Credits


class BackendKind(StrEnum):
    RAY = "ray"
    KUBERNETES = "kubernetes"
    CLOUD = "cloud"


class Tenancy(StrEnum):
    """Whose jobs may run side by side on a cluster.

    Ray has no access control between the jobs of one cluster: any job can list the others,
    read their ``env_vars`` and logs, and use the cluster's control plane. So isolation comes
    from where jobs run.
    """

    SHARED = "shared"
    """Jobs of any tenant run here together: an admin's explicit choice for mutually trusting
    tenants, shown on every placement here."""
    DEDICATED = "dedicated"
    """Only jobs of one organization or program (``dedicated_to``, and the accounts under it)."""
    PER_JOB = "per_job"
    """A fresh cluster per job (KubeRay's RayJob), torn down when it ends."""


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
    tenancy: Tenancy = Tenancy.SHARED
    dedicated_to: str = ""
    """The organization or program a ``dedicated`` cluster belongs to; empty otherwise."""
    provisioning_deadline_seconds: int = 900
    """A burst target's: how long its capacity may take to be provisioned for a job before the
    job is taken off it and placed elsewhere (or queued again)."""
    provisioning_class: str = ""
    """A burst target's: the ProvisioningRequest class its cluster autoscaler serves (e.g.
    ``best-effort-atomic-scale-up.autoscaling.x-k8s.io``), asked before a job is placed there;
    empty where the cluster does not support ProvisioningRequests (its autoscaler then reacts
    to the job's pending pods)."""
    burst_budgets: tuple[tuple[str, Credits], ...] = ()
    """A burst target's: ``(program, credits)``, the most each program named may hold and
    spend here in a period. Its inventory is the most it scales to."""

    def __post_init__(self) -> None:
        check_name(self.name)
        if (self.tenancy is Tenancy.DEDICATED) != bool(self.dedicated_to):
            raise InvalidInput(
                f"cluster {self.name}: a dedicated cluster names the organization or program it "
                "is dedicated to, and only a dedicated one does"
            )
        if self.tenancy is Tenancy.PER_JOB and self.backend is BackendKind.RAY:
            raise InvalidInput(
                f"cluster {self.name}: a Ray cluster cannot start a cluster per job; per_job "
                "tenancy needs a Kubernetes backend (KubeRay's RayJob)"
            )
        flavors = [item.flavor for item in self.inventory]
        if len(set(flavors)) != len(flavors):
            raise InvalidInput(f"cluster {self.name} lists a flavor twice")
        if self.price_multiplier_milli <= 0:
            raise InvalidInput(f"cluster {self.name}: price multiplier must be positive")
        if self.provisioning_deadline_seconds <= 0:
            raise InvalidInput(f"cluster {self.name}: provisioning deadline must be positive")
        if self.site is SiteKind.NATIONAL and (self.burst_budgets or self.provisioning_class):
            raise InvalidInput(
                f"cluster {self.name}: only a cloud burst target (a domestic or foreign cloud "
                "site) has burst budgets or a provisioning class"
            )
        programs = [program for program, _ in self.burst_budgets]
        if len(set(programs)) != len(programs):
            raise InvalidInput(f"cluster {self.name} gives a program two burst budgets")
        if any(budget.milli < 0 for _, budget in self.burst_budgets):
            raise InvalidInput(f"cluster {self.name}: a burst budget cannot be negative")

    def idle(self) -> Cluster:
        """The cluster with every GPU free (for quotes, tests and the first cycle)."""
        return self.with_free(
            {item.flavor: (item.gpus_per_node,) * item.nodes for item in self.inventory}
        )

    def with_free(self, free: Mapping[str, tuple[int, ...]]) -> Cluster:
        """The cluster as admission sees it, with ``free`` GPUs on each node of each flavor."""
        return Cluster(
            self.name,
            self.site,
            tuple(
                NodeGroup(item.flavor, item.gpus_per_node, free[item.flavor])
                for item in self.inventory
            ),
            multi_node=self.multi_node,
            price_multiplier_milli=self.price_multiplier_milli,
            dedicated_to=self.dedicated_to or None,
            burst_budgets=dict(self.burst_budgets),
        )

    @property
    def multi_node(self) -> bool:
        """Ray clusters run single-node jobs only (for now); Kubernetes and cloud run gangs."""
        return self.backend is not BackendKind.RAY
