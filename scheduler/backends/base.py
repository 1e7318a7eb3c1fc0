"""The Backend protocol: what the scheduler asks of any place that runs jobs.

Every call is idempotent on the gpupool job id (it is the backend's submission id): submitting a
job twice launches it once, cancelling a finished job is a no-op. Failures are classified:
``TransientBackendError`` (retry with backoff: the cluster is restarting, a timeout) or
``PermanentBackendError`` (the job can never run there: fail it and release its hold).

A job's runtime_env may name packages a Ray client uploaded to gpupool (``gcs://`` URIs in
``working_dir`` or ``py_modules``, ``quotas.packages``); a backend that can take them implements
``PackageStore``, and dispatch forwards each package to it before ``submit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from jobs.lifecycle import RunStatus


class BackendError(Exception):
    """Base of the errors a backend raises."""


class TransientBackendError(BackendError):
    """Try again later; nothing is known to be wrong with the job."""


class PermanentBackendError(BackendError):
    """The job cannot run on this backend as asked."""


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything a backend needs to start one admitted job."""

    job_id: str
    project: str
    entrypoint: str
    gpus: int
    flavor: str
    """The flavor's name; each backend maps it to its own resource names."""
    time_limit_seconds: int
    runtime_env: Mapping[str, object] = field(default_factory=dict)
    image: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    organization: str = ""
    """The organization and program the project belongs to (a backend may label or isolate
    jobs by them: Kubernetes runs each organization in a namespace of its own)."""
    program: str = ""
    priority: str = "normal"
    """The job's priority class (``quotas.admission.PriorityClass``)."""
    nodes: int = 1
    """Nodes the job spans: more than one for a gang larger than a node, which was admitted
    whole nodes at once, all or nothing, on one cluster. Its GPUs are split evenly over them."""

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.nodes > max(1, self.gpus):
            raise ValueError(f"a job of {self.gpus} GPUs cannot span {self.nodes} nodes")

    @property
    def gpus_per_node(self) -> int:
        """What each node's share asks for: the job's GPUs over its nodes, rounded up (a gang
        holds its nodes whole, so the remainder fits)."""
        return -(-self.gpus // self.nodes)


@dataclass(frozen=True, slots=True)
class FlavorCapacity:
    """Free accelerators of one flavor on one backend, node by node."""

    flavor: str
    gpus_per_node: int
    free: tuple[int, ...]


@runtime_checkable
class Backend(Protocol):
    """A place that runs jobs. All calls are idempotent on ``job_id``."""

    async def submit(self, spec: LaunchSpec) -> None:
        """Launch the job unless a job with this id already exists there."""

    async def status(self, job_id: str) -> RunStatus:
        """Where the job stands; ``NOT_FOUND`` if the backend never saw it (or forgot it)."""

    async def cancel(self, job_id: str) -> None:
        """Stop the job if it runs; a no-op if it ended or never existed."""

    async def logs(self, job_id: str) -> str:
        """The job's output so far."""

    async def capacity(self) -> Mapping[str, FlavorCapacity]:
        """Free capacity per flavor, read from the backend itself."""

    async def close(self) -> None:
        """Let go of connections; the backend is not called again."""


@runtime_checkable
class GpuAccounting(Protocol):
    """Optional: GPUs each job really holds, to catch jobs using more than they reserved."""

    async def gpus_in_use(self) -> Mapping[str, float]:
        """GPUs held per job id by the job's driver, tasks and actors."""


@runtime_checkable
class JobListing(Protocol):
    """Optional: every job on the cluster, gpupool's or not, so jobs that bypassed the books
    (submitted straight to the cluster) can be found and stopped."""

    async def active_jobs(self) -> list[str]:
        """The ids of the jobs that have not ended on the cluster."""


@runtime_checkable
class StatusListing(Protocol):
    """Optional: where every job the cluster knows stands, in one call, so a cycle polls a
    cluster once rather than once per job."""

    async def statuses(self) -> Mapping[str, RunStatus]:
        """Each job's status by id; a job missing from it is ``NOT_FOUND`` there."""


@runtime_checkable
class PackageStore(Protocol):
    """Optional: a backend that keeps uploaded runtime_env packages by URI (Ray's GCS)."""

    async def has_package(self, uri: str) -> bool:
        """Whether the backend holds the package now."""

    async def upload_package(self, uri: str, content: bytes) -> None:
        """Store the package's bytes under ``uri``; storing the same package again is harmless."""
