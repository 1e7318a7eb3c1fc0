"""Jobs as the books see them: what was asked for, and one table of allowed state transitions.

::

    queued -> admitted -> starting -> running -> succeeded | failed | cancelled | timed_out
    queued -> rejected                 (can never run as asked; the reason says why)
    starting | running -> preempted -> queued   (history kept in the job's events)

``TRANSITIONS`` is the only place that says which moves are allowed; terminal states are final.
A job's spec is validated before it is queued, so a job that can never be valid is refused at
the door with a reason and nothing is charged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum

from quotas.admission import DataClass, JobRequest, PriorityClass
from quotas.causes import Cause, StopCause
from quotas.errors import InvalidInput, InvalidTransition
from quotas.preemption import RunningJob
from quotas.quantities import format_duration

JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_METADATA_ITEMS = 64
MAX_METADATA_TEXT = 1000
MAX_ENTRYPOINT = 16_384


class JobState(StrEnum):
    QUEUED = "queued"
    ADMITTED = "admitted"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"
    REJECTED = "rejected"
    PREEMPTED = "preempted"

    @property
    def is_terminal(self) -> bool:
        return not TRANSITIONS[self]

    @property
    def holds_capacity(self) -> bool:
        """Admitted, starting or running: the job owns GPUs and a hold."""
        return self in (JobState.ADMITTED, JobState.STARTING, JobState.RUNNING)


TERMINAL: frozenset[JobState] = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.TIMED_OUT,
        JobState.REJECTED,
    }
)
_ENDINGS = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED, JobState.TIMED_OUT})

TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.ADMITTED, JobState.REJECTED, JobState.CANCELLED}),
    JobState.ADMITTED: frozenset(
        {JobState.STARTING, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    JobState.STARTING: _ENDINGS | {JobState.RUNNING, JobState.PREEMPTED},
    JobState.RUNNING: _ENDINGS | {JobState.PREEMPTED},
    JobState.PREEMPTED: frozenset({JobState.QUEUED}),
    **{state: frozenset() for state in TERMINAL},
}


def check_time_limit(seconds: int, cap_seconds: int) -> None:
    """Refuse a time limit over the pool's cap (``max_time_limit_hours``), in one wording."""
    if seconds > cap_seconds:
        raise InvalidInput(
            f"time limit {format_duration(seconds)} is over the cap of "
            f"{format_duration(cap_seconds)}"
        )


def check_transition(current: JobState, to: JobState) -> None:
    if to not in TRANSITIONS[current]:
        raise InvalidTransition(f"a {current} job cannot become {to}")


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a researcher asks to run."""

    project: str
    submitter: str
    name: str
    entrypoint: str
    gpus: int
    time_limit_seconds: int
    flavors: tuple[str, ...] = ()
    min_memory_gb: int | None = None
    runtime_env: Mapping[str, object] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    image: str | None = None
    priority: PriorityClass = PriorityClass.NORMAL
    data_class: DataClass = DataClass.PUBLIC
    preemptible: bool = False

    def __post_init__(self) -> None:
        if not self.entrypoint.strip():
            raise InvalidInput("a job needs an entrypoint: the command to run")
        if len(self.entrypoint) > MAX_ENTRYPOINT:
            raise InvalidInput(f"the entrypoint is longer than {MAX_ENTRYPOINT} characters")
        if not JOB_NAME.match(self.name):
            raise InvalidInput(
                f"{self.name!r} is not a valid job name: 1-128 letters, digits, '.', '_', '-'"
            )
        if self.gpus <= 0:
            raise InvalidInput(f"a job needs at least one GPU, asked for {self.gpus}")
        if self.time_limit_seconds <= 0:
            raise InvalidInput("a job needs a positive time limit")
        if self.min_memory_gb is not None and self.min_memory_gb <= 0:
            raise InvalidInput("a minimum GPU memory must be positive")
        if len(self.metadata) > MAX_METADATA_ITEMS or any(
            len(key) > MAX_METADATA_TEXT or len(value) > MAX_METADATA_TEXT
            for key, value in self.metadata.items()
        ):
            raise InvalidInput(
                f"job metadata holds at most {MAX_METADATA_ITEMS} items of at most "
                f"{MAX_METADATA_TEXT} characters each"
            )

    def request(
        self, job_id: str, submitted_at: datetime, avoid_clusters: Iterable[str] = ()
    ) -> JobRequest:
        """The engine's view of this job, for an admission decision."""
        return JobRequest(
            id=job_id,
            project=self.project,
            gpus=self.gpus,
            time_limit_seconds=self.time_limit_seconds,
            submitted_at=submitted_at,
            flavors=self.flavors,
            min_memory_gb=self.min_memory_gb,
            priority=self.priority,
            data_class=self.data_class,
            avoid_clusters=frozenset(avoid_clusters),
        )


@dataclass(frozen=True, slots=True)
class Placed:
    """Where an admitted job runs and at what price: recorded at admission, never repriced."""

    cluster: str
    flavor: str
    rate_milli: int
    rate_version: int
    period: str
    hold_milli: int


@dataclass(frozen=True, slots=True)
class Job:
    """A job as stored: its spec, where it stands, and what it has been charged."""

    id: str
    spec: JobSpec
    state: JobState
    submitted_at: datetime
    reason: str = ""
    placed: Placed | None = None
    attempt: int = 0
    """How many times it was admitted; each launch has its own backend submission id."""
    admitted_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    charged_milli: int = 0
    """Charged in the current attempt so far."""
    charged_until: datetime | None = None
    cancel_requested: bool = False
    stop_cause: StopCause | None = None
    cause: Cause | None = None
    """Why it waits, was refused, is being stopped or ended, as data; ``reason`` says it."""
    position: int | None = None
    eta: datetime | None = None
    dispatch_failures: int = 0
    next_dispatch_at: datetime | None = None
    avoid_clusters: tuple[str, ...] = ()
    """Burst targets that could not provision capacity for it: not placed there again."""

    def request(self) -> JobRequest:
        """The engine's view of this job, for an admission decision."""
        return self.spec.request(self.id, self.submitted_at, self.avoid_clusters)

    def running(self) -> RunningJob | None:
        """The preemption engine's view of this job while it runs somewhere; None if it does
        not (yet) hold a place and a start."""
        if self.placed is None or self.started_at is None:
            return None
        return RunningJob(
            self.id,
            self.spec.project,
            self.spec.gpus,
            self.placed.cluster,
            self.placed.flavor,
            self.started_at,
            self.spec.priority,
            self.spec.preemptible,
        )

    def because(self, cause: Cause) -> Job:
        """This job with ``cause`` as why it stands where it does, and its sentence as reason."""
        return replace(self, cause=cause, reason=cause.sentence)

    @property
    def submission_id(self) -> str:
        """The id a backend knows this launch by: the job id, then one per later attempt."""
        return self.id if self.attempt <= 1 else f"{self.id}-a{self.attempt}"


@dataclass(frozen=True, slots=True)
class JobEvent:
    at: datetime
    from_state: JobState | None
    to_state: JobState
    reason: str
