"""Why a job waits, was refused, is being stopped, or ended: typed causes, each with a sentence.

Code decides on a cause's type and fields; ``sentence`` is for people and is never parsed. Each
cause is a small frozen value with a ``kind`` (stored with the job as JSON by ``to_json``, read
back by ``from_json``), so the scheduler, the Ray Jobs API and the pages read the same facts:

* waits (``WaitCause``): no acceptable capacity free, capacity reserved for an earlier job,
  not enough credits, a borrowing limit, the books moved since the snapshot, requeued;
  ``DispatchRetry``: admitted, its backend unreachable for now;
* refusals (``RejectCause``): the job can never run as asked here;
* ``Stopping``: gpupool asked the backend to stop the job, and why;
* ``Ended``: how a run ended (exit code, system fault, refund).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from quotas.quantities import Credits, Rate, format_duration


class StopCause(StrEnum):
    """Why gpupool asked a backend to stop a job; decides the state it ends in."""

    CANCEL = "cancel"
    TIME_LIMIT = "time_limit"
    OVERUSE = "overuse"
    PREEMPT = "preempt"


def _gpus(count: int) -> str:
    return f"{count} GPU" if count == 1 else f"{count} GPUs"


# -- waits --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OverShare:
    """An account on the job's path that uses more than its fair share at its level."""

    level: str
    """The account's kind: program, organization or project."""
    account: str
    usage_percent: int
    """Its normalized (decayed) usage among its siblings, in whole percent."""
    share_percent: int
    """Its normalized entitled share among its siblings, in whole percent."""

    @property
    def sentence(self) -> str:
        return (
            f"over fair share: {self.level} {self.account} uses {self.usage_percent}% vs "
            f"entitled {self.share_percent}%"
        )


@dataclass(frozen=True, slots=True)
class FreeInstead:
    """A flavor the job did not ask for that has room for it now, within its credits."""

    flavor: str
    free: int
    """GPUs of it free now where the job may run."""
    rate_milli: int
    """Its price, milli-credits per GPU-hour."""

    @property
    def sentence(self) -> str:
        return (
            f"{self.free} {self.flavor} free now at {Rate(self.rate_milli)} credits/GPU-h: add "
            "it to the job's flavors to start now"
        )


@dataclass(frozen=True, slots=True)
class NoCapacity:
    """No acceptable flavor has the GPUs free now; others ahead in the queue want them too."""

    kind: ClassVar[str] = "no_capacity"
    flavors: tuple[str, ...]
    gpus: int
    ahead: int
    """GPUs of those flavors wanted by jobs ahead of this one in the queue."""
    over_share: OverShare | None = None
    instead: FreeInstead | None = None
    passed_by: int = 0
    """Jobs that moved ahead of this one since its place in the queue was last better."""
    burst_from: datetime | None = None
    """When it may burst to a cloud target that has room, if the pooled clusters have not
    started it by then."""
    burst_budget_spent: tuple[str, ...] = ()
    """Burst targets with room where its program's burst budget has too little left."""
    unprovisioned: tuple[str, ...] = ()
    """Burst targets that could not provision capacity for it before."""

    @property
    def sentence(self) -> str:
        wanted = f"no {' or '.join(self.flavors)} free for {_gpus(self.gpus)}"
        text = f"{wanted}; {_gpus(self.ahead)} ahead of you"
        if self.unprovisioned:
            text = (
                f"{text}; cloud capacity could not be provisioned for it at "
                f"{', '.join(self.unprovisioned)}, which it will not try again"
            )
        if self.burst_budget_spent:
            text = (
                f"{text}; its program's burst budget at {', '.join(self.burst_budget_spent)} "
                "has too little left"
            )
        if self.burst_from:
            text = (
                f"{text}; it may burst to cloud capacity from {self.burst_from:%Y-%m-%d %H:%M} "
                "UTC if the pooled clusters have not started it by then"
            )
        if self.over_share:
            text = f"{self.over_share.sentence}; {text}"
        if self.passed_by:
            jobs = "1 job" if self.passed_by == 1 else f"{self.passed_by} jobs"
            text = (
                f"{text}; {jobs} moved ahead of you (a higher priority class, or a project "
                "further below its fair share, goes first)"
            )
        return f"{text}; {self.instead.sentence}" if self.instead else text


@dataclass(frozen=True, slots=True)
class Reserved:
    """Free GPUs the job fits are held back for an earlier job blocked on capacity (backfill)."""

    kind: ClassVar[str] = "reserved"
    flavor: str
    cluster: str
    start: datetime
    """When the reservation's job is expected to start there."""

    @property
    def sentence(self) -> str:
        return (
            f"{self.flavor} on {self.cluster} is reserved for a larger job waiting since "
            f"earlier, from {self.start:%Y-%m-%d %H:%M} UTC; this job would still run then"
        )


@dataclass(frozen=True, slots=True)
class OverBudget:
    """The cheapest acceptable placement costs more than an account on the path has left."""

    kind: ClassVar[str] = "over_budget"
    needs: Credits
    left: Credits
    level: str
    account: str

    @property
    def sentence(self) -> str:
        where = f"{self.level} {self.account}"
        return f"budget: needs {self.needs} credits, {self.left} available ({where})"


@dataclass(frozen=True, slots=True)
class BorrowingLimit:
    """An account on the path would use more GPUs than it is guaranteed plus may borrow."""

    kind: ClassVar[str] = "borrowing_limit"
    level: str
    account: str
    running: int
    guaranteed: int
    borrowable: int

    @property
    def sentence(self) -> str:
        return (
            f"borrowing limit: {self.level} {self.account} uses {self.running} GPUs of "
            f"{self.guaranteed} guaranteed + {self.borrowable} borrowable"
        )


@dataclass(frozen=True, slots=True)
class BooksMoved:
    """The books changed between the cycle's snapshot and the hold: decided again next cycle."""

    kind: ClassVar[str] = "books_moved"
    detail: str

    @property
    def sentence(self) -> str:
        return self.detail


@dataclass(frozen=True, slots=True)
class Requeued:
    """Stopped and queued again: by preemption, or because its cluster lost it."""

    kind: ClassVar[str] = "requeued"
    why: Stopping | Lost | Unprovisioned

    @property
    def sentence(self) -> str:
        if isinstance(self.why, (Lost, Unprovisioned)):
            return f"{self.why.sentence}; requeued"
        return f"requeued after being {self.why.detail}"


@dataclass(frozen=True, slots=True)
class DispatchRetry:
    """Admitted, but its backend could not be reached: launched again after a delay."""

    kind: ClassVar[str] = "dispatch_retry"
    error: str
    delay_seconds: float

    @property
    def sentence(self) -> str:
        return f"dispatch failed ({self.error}); retrying in {self.delay_seconds:g}s"


WaitCause = NoCapacity | Reserved | OverBudget | BorrowingLimit | BooksMoved | Requeued


# -- refusals -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoFlavor:
    """No flavor in the pool is acceptable to the job."""

    kind: ClassVar[str] = "no_flavor"
    min_memory_gb: int | None

    @property
    def sentence(self) -> str:
        memory = f" with at least {self.min_memory_gb} GB" if self.min_memory_gb else ""
        return f"no flavor{memory} in the pool"


@dataclass(frozen=True, slots=True)
class NoOpenCluster:
    """The acceptable flavors are only on clusters dedicated to others."""

    kind: ClassVar[str] = "no_open_cluster"
    project: str
    flavors: tuple[str, ...]

    @property
    def sentence(self) -> str:
        return f"no cluster open to {self.project} has {', '.join(self.flavors)}"


@dataclass(frozen=True, slots=True)
class NoSite:
    """No site the job's data class allows has an acceptable flavor."""

    kind: ClassVar[str] = "no_site"
    data_class: str
    flavors: tuple[str, ...]

    @property
    def sentence(self) -> str:
        return f"no {self.data_class} site has {', '.join(self.flavors)}"


@dataclass(frozen=True, slots=True)
class TooLarge:
    """More GPUs than any one place the job could run has."""

    kind: ClassVar[str] = "too_large"
    gpus: int
    largest: int
    multi_node: bool
    """Whether any cluster with an acceptable flavor runs jobs across nodes."""

    @property
    def sentence(self) -> str:
        if not self.multi_node:
            return (
                f"{self.gpus} GPUs is more than one node has ({self.largest} at most), and no "
                "cluster here runs jobs across nodes"
            )
        return f"{self.gpus} GPUs is more than any cluster has ({self.largest} at most)"


@dataclass(frozen=True, slots=True)
class OverWholeBudget:
    """Even the cheapest placement costs more than an account's whole budget."""

    kind: ClassVar[str] = "over_whole_budget"
    needs: Credits
    budget: Credits
    level: str
    account: str

    @property
    def sentence(self) -> str:
        return (
            f"over the whole budget of {self.level} {self.account}: needs {self.needs} credits, "
            f"the budget is {self.budget}"
        )


@dataclass(frozen=True, slots=True)
class Invalid:
    """The request itself is not a job the books can take (no GPUs, not a project...)."""

    kind: ClassVar[str] = "invalid"
    detail: str

    @property
    def sentence(self) -> str:
        return self.detail


RejectCause = NoFlavor | NoOpenCluster | NoSite | TooLarge | OverWholeBudget | Invalid


# -- stops and endings --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stopping:
    """gpupool asked the job's backend to stop it; ``detail`` says why, for people."""

    kind: ClassVar[str] = "stopping"
    stop: StopCause
    detail: str

    @property
    def sentence(self) -> str:
        return f"stopping: {self.detail}"

    @classmethod
    def time_limit(cls, seconds: int) -> Stopping:
        return cls(StopCause.TIME_LIMIT, f"reached its time limit of {format_duration(seconds)}")

    @classmethod
    def overuse(cls, used: float, reserved: int) -> Stopping:
        return cls(
            StopCause.OVERUSE, f"its tasks and actors held {used:g} GPUs, {reserved} reserved"
        )

    @classmethod
    def requested(cls, stop: StopCause) -> Stopping:
        return cls(stop, f"{stop.value} requested")


@dataclass(frozen=True, slots=True)
class Lost:
    """The job's cluster no longer knows the launch (restarted?)."""

    kind: ClassVar[str] = "lost"
    cluster: str

    @property
    def sentence(self) -> str:
        return f"lost by {self.cluster} (cluster restarted?)"


@dataclass(frozen=True, slots=True)
class Unprovisioned:
    """A burst target could not get the capacity the job was placed on: its provisioning
    failed, or ran past the target's deadline. Nothing ran; the job goes back to the queue and
    is not placed there again."""

    kind: ClassVar[str] = "unprovisioned"
    cluster: str
    detail: str

    @property
    def sentence(self) -> str:
        return f"{self.cluster} could not provision cloud capacity for it ({self.detail})"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SYSTEM_FAULT = "system_fault"
    """The platform, not the job, ended it: what it was charged is refunded."""
    TIME_LIMIT = "time_limit"
    CANCELLED = "cancelled"
    STOPPED = "stopped"
    """Stopped on the backend, not by gpupool."""
    OVERUSE = "overuse"
    NEVER_STARTED = "never_started"
    """Admitted but never launched: the backend refused it or could not be reached."""


@dataclass(frozen=True, slots=True)
class Ended:
    """How a job's run ended."""

    kind: ClassVar[str] = "ended"
    outcome: Outcome
    exit_code: int | None = None
    detail: str = ""
    """The backend's message, or what gpupool knows of why."""
    refunded: Credits = field(default_factory=Credits.zero)

    @property
    def sentence(self) -> str:
        match self.outcome:
            case Outcome.SUCCEEDED:
                text = "succeeded"
            case Outcome.CANCELLED | Outcome.TIME_LIMIT | Outcome.OVERUSE | Outcome.NEVER_STARTED:
                text = self.detail or self.outcome.value
            case Outcome.STOPPED:
                text = f"stopped on the backend: {self.detail}".rstrip(": ")
            case Outcome.FAILED | Outcome.SYSTEM_FAULT:
                prefix = "system fault" if self.outcome is Outcome.SYSTEM_FAULT else "failed"
                code = f" (exit code {self.exit_code})" if self.exit_code is not None else ""
                text = f"{prefix}{code}: {self.detail}" if self.detail else f"{prefix}{code}"
        if self.refunded:
            text += f"; {self.refunded} credits refunded"
        return text


Cause = WaitCause | DispatchRetry | RejectCause | Stopping | Lost | Unprovisioned | Ended

_KINDS: Mapping[str, type[Cause]] = {
    kind.kind: kind
    for kind in (
        NoCapacity,
        Reserved,
        OverBudget,
        BorrowingLimit,
        BooksMoved,
        Requeued,
        DispatchRetry,
        NoFlavor,
        NoOpenCluster,
        NoSite,
        TooLarge,
        OverWholeBudget,
        Invalid,
        Stopping,
        Lost,
        Unprovisioned,
        Ended,
    )
}


_FIELDS: Mapping[type[Cause], tuple[tuple[str, str], ...]] = {
    kind: tuple((item.name, str(item.type)) for item in fields(kind)) for kind in _KINDS.values()
}
"""Each kind's fields as (name, annotation), read once: a cycle decodes thousands of causes."""


def to_json(cause: Cause) -> dict[str, object]:
    """The cause as plain JSON: its kind and its fields."""
    encoded: dict[str, object] = {"kind": cause.kind}
    for name, _ in _FIELDS[type(cause)]:
        encoded[name] = _encode(getattr(cause, name))
    return encoded


def from_json(data: Mapping[str, object]) -> Cause:
    """The cause ``to_json`` wrote."""
    kind = _KINDS[str(data["kind"])]
    values: dict[str, Any] = {
        name: _decode(annotation, data[name])
        for name, annotation in _FIELDS[kind]
        if name in data  # a field added since the cause was stored takes its default
    }
    return kind(**values)


def _encode(value: object) -> object:
    if isinstance(value, Credits):
        return value.milli
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, FreeInstead):
        return {"flavor": value.flavor, "free": value.free, "rate_milli": value.rate_milli}
    if isinstance(value, OverShare):
        return {
            "level": value.level,
            "account": value.account,
            "usage_percent": value.usage_percent,
            "share_percent": value.share_percent,
        }
    if isinstance(value, (Stopping, Lost, Unprovisioned)):
        return to_json(value)
    return value


def _decode(annotation: str, value: object) -> object:
    """A field's value from JSON, by the field's (string) annotation."""
    if value is None:
        return None
    match annotation:
        case "Credits":
            assert isinstance(value, int)
            return Credits(value)
        case "datetime" | "datetime | None":
            assert isinstance(value, str)
            return datetime.fromisoformat(value)
        case "tuple[str, ...]":
            assert isinstance(value, list)
            return tuple(str(item) for item in value)
        case "OverShare | None":
            assert isinstance(value, dict)
            return OverShare(**value)
        case "FreeInstead | None":
            assert isinstance(value, dict)
            return FreeInstead(**value)
        case "Stopping | Lost | Unprovisioned":
            assert isinstance(value, dict)
            return from_json(value)
        case "StopCause":
            return StopCause(str(value))
        case "Outcome":
            return Outcome(str(value))
    return value
