"""A simulated backend: jobs "run" against an injected clock, for tests and the trace simulator.

Each launched job runs for the duration its ``runtime`` function gives (default: the
``simulated_seconds`` entry of its metadata, else until cancelled) and ends with the outcome it
gives (succeeded, failed, or a system fault). Nothing runs for real; the clock decides.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from jobs.lifecycle import RunState, RunStatus
from quotas.clock import Clock
from scheduler.backends.base import (
    FlavorCapacity,
    LaunchSpec,
    PermanentBackendError,
    TransientBackendError,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    seconds: float | None
    """How long the job runs; ``None`` runs until it is cancelled."""
    state: RunState = RunState.SUCCEEDED
    system_fault: bool = False
    exit_code: int = 0


def outcome_from_metadata(spec: LaunchSpec) -> Outcome:
    seconds = spec.metadata.get("simulated_seconds")
    failed = spec.metadata.get("simulated_outcome") == "failed"
    fault = spec.metadata.get("simulated_outcome") == "fault"
    return Outcome(
        float(seconds) if seconds is not None else None,
        RunState.FAILED if failed or fault else RunState.SUCCEEDED,
        system_fault=fault,
        exit_code=1 if failed else 0,
    )


@dataclass
class _Run:
    spec: LaunchSpec
    started_at: datetime
    outcome: Outcome
    stopped_at: datetime | None = None


class SimulatedBackend:
    """A backend whose jobs run on a clock; capacity is a fixed inventory per flavor."""

    def __init__(
        self,
        clock: Clock,
        inventory: Mapping[str, tuple[int, int]],
        runtime: Callable[[LaunchSpec], Outcome] = outcome_from_metadata,
        *,
        provisioning_seconds: float = 0.0,
    ) -> None:
        """``inventory`` maps a flavor to (nodes, GPUs per node). A burst target's capacity
        is bought on demand: each job waits ``provisioning_seconds`` for it before it starts,
        or for ever, refused, while ``out_of_stock``."""
        self.clock = clock
        self.inventory = dict(inventory)
        self.runtime = runtime
        self.runs: dict[str, _Run] = {}
        self.launches: list[str] = []
        """Every submission id that really started, in order (a duplicate would show twice)."""
        self.unavailable = False
        self.provisioning_seconds = provisioning_seconds
        self.out_of_stock = False

    def _check(self) -> None:
        if self.unavailable:
            raise TransientBackendError("simulated backend is unavailable")

    async def submit(self, spec: LaunchSpec) -> None:
        self._check()
        if spec.job_id in self.runs:
            return
        nodes, per_node = self.inventory.get(spec.flavor, (0, 0))
        if spec.gpus > nodes * per_node:
            raise PermanentBackendError(f"{spec.gpus} GPUs of {spec.flavor} do not exist here")
        starts = self.clock() + timedelta(seconds=self.provisioning_seconds)
        self.runs[spec.job_id] = _Run(spec, starts, self.runtime(spec))
        self.launches.append(spec.job_id)

    def _ends_at(self, run: _Run) -> datetime | None:
        if run.stopped_at is not None:
            return run.stopped_at
        if run.outcome.seconds is None:
            return None
        return run.started_at + timedelta(seconds=run.outcome.seconds)

    async def status(self, job_id: str) -> RunStatus:
        self._check()
        run = self.runs.get(job_id)
        if run is None:
            return RunStatus(RunState.NOT_FOUND)
        if run.stopped_at is not None and run.stopped_at < run.started_at:
            return RunStatus(RunState.STOPPED, "stopped before it started", None, run.stopped_at)
        if run.stopped_at is None and run.started_at > self.clock():
            if self.out_of_stock:
                return RunStatus(RunState.STOPPED, "out of stock", capacity_refused=True)
            return RunStatus(RunState.PENDING, "waiting for cloud capacity")
        ends_at = self._ends_at(run)
        if ends_at is None or ends_at > self.clock():
            return RunStatus(RunState.RUNNING, started_at=run.started_at)
        if run.stopped_at is not None:
            return RunStatus(RunState.STOPPED, "stopped", run.started_at, ends_at)
        return RunStatus(
            run.outcome.state,
            "simulated system fault" if run.outcome.system_fault else "",
            run.started_at,
            ends_at,
            run.outcome.exit_code,
            run.outcome.system_fault,
        )

    async def cancel(self, job_id: str) -> None:
        self._check()
        run = self.runs.get(job_id)
        if run is None:
            return
        ends_at = self._ends_at(run)
        if ends_at is None or ends_at > self.clock():
            run.stopped_at = self.clock()

    async def logs(self, job_id: str) -> str:
        self._check()
        run = self.runs.get(job_id)
        return f"simulated run of {run.spec.entrypoint}\n" if run else ""

    def running_gpus(self, flavor: str) -> int:
        now = self.clock()
        return sum(
            run.spec.gpus
            for run in self.runs.values()
            if run.spec.flavor == flavor and ((end := self._ends_at(run)) is None or end > now)
        )

    async def capacity(self) -> Mapping[str, FlavorCapacity]:
        self._check()
        capacity: dict[str, FlavorCapacity] = {}
        for flavor, (nodes, per_node) in self.inventory.items():
            busy = self.running_gpus(flavor)
            free: list[int] = []
            for _ in range(nodes):
                take = min(per_node, busy)
                busy -= take
                free.append(per_node - take)
            capacity[flavor] = FlavorCapacity(flavor, per_node, tuple(free))
        return capacity

    async def statuses(self) -> Mapping[str, RunStatus]:
        self._check()
        return {job_id: await self.status(job_id) for job_id in self.runs}

    async def close(self) -> None:
        """Nothing to let go of: the simulated cluster lives in this process."""
