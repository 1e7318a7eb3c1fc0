"""The Backend protocol: what the scheduler asks of any place that runs jobs.

Every call is idempotent on the gpupool job id (it is the backend's submission id): submitting a
job twice launches it once, cancelling a finished job is a no-op. Failures are classified:
``TransientBackendError`` (retry with backoff: the cluster is restarting, a timeout) or
``PermanentBackendError`` (the job can never run there: fail it and release its hold).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, runtime_checkable


class BackendError(Exception):
    """Base of the errors a backend raises."""


class TransientBackendError(BackendError):
    """Try again later; nothing is known to be wrong with the job."""


class PermanentBackendError(BackendError):
    """The job cannot run on this backend as asked."""


class RunState(StrEnum):
    """A job's state as the backend sees it."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    NOT_FOUND = "not_found"

    @property
    def is_terminal(self) -> bool:
        return self in (RunState.SUCCEEDED, RunState.FAILED, RunState.STOPPED)


@dataclass(frozen=True, slots=True)
class LaunchSpec:
    """Everything a backend needs to start one admitted job."""

    job_id: str
    project: str
    entrypoint: str
    gpus: int
    flavor: str
    flavor_resource: str
    """The backend's resource name for the flavor (Ray custom resource, Kubernetes resource)."""
    time_limit_seconds: int
    runtime_env: Mapping[str, object] = field(default_factory=dict)
    image: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RunStatus:
    state: RunState
    message: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    system_fault: bool = False
    """True when the backend, not the job, ended it (node lost, cluster restarted)."""


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


@runtime_checkable
class GpuAccounting(Protocol):
    """Optional: GPUs each job really holds, to catch jobs using more than they reserved."""

    async def gpus_in_use(self) -> Mapping[str, float]:
        """GPUs held per job id by the job's driver, tasks and actors."""
