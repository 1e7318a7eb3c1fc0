"""A job's life after admission, as pure functions: what each step makes of the job and what it
books.

Every function takes a job and what happened (the backend's status, the clock) and returns a
``Step``: the job as it is now, the ``Booking``\\ s to post (charge, release, refund, each for
the job's own hold in the period it was admitted in) and the events of its history. Nothing
here reads or writes a database: the scheduler posts the bookings through ``Books`` and saves
the job in one transaction; the simulator posts them to an in-memory ``Ledger``. Both run the
same rules:

- a running job owes GPU-time at the rate recorded at its admission, never past its time limit,
  rounded up to the milli-credit, so a charge never exceeds the hold;
- at its end it is charged the rest, the unused hold is released and, when the backend (not the
  job) ended it, everything charged is refunded;
- a preempted job is charged for what ran and queued again; a job the backend lost is refunded
  and queued again.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from jobs.model import Job, JobEvent, JobState, Placed, check_transition
from quotas.causes import Ended, Lost, Outcome, Requeued, StopCause, Stopping, Unprovisioned
from quotas.ledger import Actor, EntryKind, Ledger, Posting
from quotas.quantities import NO_CREDITS, Credits, Rate, format_duration


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
class RunStatus:
    """What a backend says of one launch."""

    state: RunState
    message: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    system_fault: bool = False
    """True when the backend, not the job, ended it (node lost, cluster restarted)."""
    time_limit_reached: bool = False
    """True when the backend itself ended the run at the time limit it was given (Kubernetes'
    ``activeDeadlineSeconds``), before gpupool's own stop: the job timed out."""
    capacity_refused: bool = False
    """True when the job never ran because the cluster could not get capacity for it: a cloud
    burst target's provisioning failed (out of stock, quota). The job goes back to the queue,
    not to a final state, and is not placed on that cluster again."""


BOOKED_KINDS = (EntryKind.CHARGE, EntryKind.RELEASE, EntryKind.REFUND)


@dataclass(frozen=True, slots=True)
class Booking:
    """One entry a step asks the books for, against the job's hold in its period.

    ``credits`` is what a charge or refund moves; a release frees whatever of the hold is left
    (``credits`` zero).
    """

    kind: EntryKind
    project: str
    job: str
    period: str
    reason: str
    credits: Credits = NO_CREDITS

    def __post_init__(self) -> None:
        if self.kind not in BOOKED_KINDS:
            raise ValueError(f"a job's step books charges, releases and refunds, not {self.kind}")


@dataclass(frozen=True, slots=True)
class Step:
    """The job after a step, what to book, and the events of its history (in order)."""

    job: Job
    bookings: tuple[Booking, ...] = ()
    events: tuple[JobEvent, ...] = ()

    @property
    def ended(self) -> bool:
        return self.job.state.is_terminal

    def then(self, later: Step) -> Step:
        """This step followed by ``later`` (which started from this step's job)."""
        return Step(later.job, self.bookings + later.bookings, self.events + later.events)


def post(ledger: Ledger, booking: Booking, actor: str) -> list[Posting]:
    """The ledger's entries for one booking (apply them to its balances to make it happen):
    the books of a run without a database, as the simulator keeps them. The scheduler posts
    bookings through ``Books``, which locks, checks and stores the same entries."""
    who = Actor(actor, booking.reason)
    if booking.kind is EntryKind.CHARGE:
        return ledger.charge(booking.project, booking.job, booking.credits, who)
    if booking.kind is EntryKind.RELEASE:
        return ledger.release(booking.project, booking.job, who)
    return ledger.refund(booking.project, booking.job, booking.credits, who)


def event(before: Job, after: Job, reason: str, at: datetime) -> JobEvent:
    """The event of a move the transition table allows (``InvalidTransition`` otherwise)."""
    check_transition(before.state, after.state)
    return JobEvent(at, before.state, after.state, reason)


# -- what a run costs ---------------------------------------------------------------------


def run_seconds(job: Job, until: datetime) -> int:
    """Whole seconds the job has run by ``until``, capped at its time limit."""
    if job.started_at is None:
        return 0
    seconds = int((until - job.started_at).total_seconds())
    return max(0, min(seconds, job.spec.time_limit_seconds))


def owed_milli(job: Job, until: datetime) -> int:
    """Milli-credits the run has cost by ``until`` (rounded up, so it never exceeds the hold)."""
    if job.placed is None:
        return 0
    return Rate(job.placed.rate_milli).cost(job.spec.gpus, run_seconds(job, until)).milli


def charge_due(job: Job, now: datetime, every_seconds: float) -> bool:
    """Whether a running job is due for its next charge (none yet, or ``every_seconds`` since)."""
    last = job.charged_until or job.started_at
    return last is None or now - last >= timedelta(seconds=every_seconds)


def charge(job: Job, until: datetime, reason: str) -> Step:
    """Charge what the run owes by ``until`` beyond what it was charged already."""
    placed = _placed(job)
    owed = owed_milli(job, until)
    delta = owed - job.charged_milli
    bookings: tuple[Booking, ...] = ()
    if delta > 0:
        bookings = (
            Booking(
                EntryKind.CHARGE, job.spec.project, job.id, placed.period, reason, Credits(delta)
            ),
        )
    charged = replace(job, charged_milli=max(owed, job.charged_milli), charged_until=until)
    return Step(charged, bookings)


# -- the steps ----------------------------------------------------------------------------


def admit(job: Job, placed: Placed, now: datetime) -> Job:
    """Queued -> admitted at ``placed`` (its hold made by the caller): a new attempt, with
    nothing of an earlier one left on it."""
    return replace(
        job,
        state=JobState.ADMITTED,
        placed=placed,
        attempt=job.attempt + 1,
        admitted_at=now,
        started_at=None,
        ended_at=None,
        charged_milli=0,
        charged_until=None,
        position=None,
        eta=None,
        stop_cause=None,
        reason="",
        cause=None,
        dispatch_failures=0,
        next_dispatch_at=None,
    )


def start(job: Job, started_at: datetime, now: datetime) -> Step:
    """Starting -> running, from when the backend says the run began."""
    running = replace(job, state=JobState.RUNNING, started_at=started_at, charged_until=None)
    return Step(running, events=(event(job, running, "running", now),))


def settle(job: Job, status: RunStatus, now: datetime) -> Step:
    """The run ended (``status`` is terminal): charge the rest, release the unused hold,
    refund a system fault, and move the job to its final state with its ``Ended`` cause."""
    placed = _placed(job)
    ended_at = status.ended_at or now
    charged = charge(replace(job, ended_at=ended_at), ended_at, "final usage")
    job = charged.job
    bookings = [
        *charged.bookings,
        Booking(
            EntryKind.RELEASE, job.spec.project, job.id, placed.period, "job ended: unused hold"
        ),
    ]
    state, ending = outcome(job, status)
    if status.system_fault and job.charged_milli:
        why = f"system fault: {status.message or 'the backend ended the job'}"
        refund = Credits(job.charged_milli)
        bookings.append(
            Booking(EntryKind.REFUND, job.spec.project, job.id, placed.period, why, refund)
        )
        ending = replace(ending, refunded=refund)
    final = replace(job.because(ending), state=state, ended_at=ended_at)
    return Step(final, tuple(bookings), (event(job, final, ending.sentence, now),))


def requeue(
    job: Job,
    why: Stopping | Lost | Unprovisioned,
    now: datetime,
    ended_at: datetime | None = None,
) -> Step:
    """Running (or starting) -> preempted -> queued, keeping the history; the next attempt gets
    a new submission id.

    A stopped run (``Stopping``: preempted) is charged for what it ran until ``ended_at``; a run
    the backend lost (``Lost``) is refunded everything it was charged; a burst target that could
    not provision capacity (``Unprovisioned``) ran nothing, and is not tried again for this job.
    Either way the rest of the hold is released.
    """
    placed = _placed(job)
    project, period = job.spec.project, placed.period
    booked: tuple[Booking, ...]
    avoid = job.avoid_clusters
    if isinstance(why, Unprovisioned):
        booked = ()  # nothing ran there
        released = f"{why.cluster} could not provision capacity: hold released"
        avoid = (*avoid, why.cluster)
    elif isinstance(why, Lost):
        booked = ()
        if job.charged_milli:
            booked = (
                Booking(
                    EntryKind.REFUND,
                    project,
                    job.id,
                    period,
                    "the backend lost the job",
                    Credits(job.charged_milli),
                ),
            )
        released = "the backend lost the job"
    else:
        until = ended_at or now
        charged = charge(replace(job, ended_at=until), until, "usage until preempted")
        job, booked = charged.job, charged.bookings
        released = "preempted: unused hold"
    bookings = (*booked, Booking(EntryKind.RELEASE, project, job.id, period, released))
    requeued = Requeued(why)
    said = why.detail if isinstance(why, Stopping) else requeued.sentence
    preempted = replace(job, state=JobState.PREEMPTED, reason=said, cause=why)
    queued = replace(
        preempted.because(requeued),
        state=JobState.QUEUED,
        placed=None,
        started_at=None,
        ended_at=None,
        charged_milli=0,
        charged_until=None,
        stop_cause=None,
        avoid_clusters=avoid,
    )
    events = (event(job, preempted, said, now), event(preempted, queued, "requeued", now))
    return Step(queued, bookings, events)


def end_unlaunched(job: Job, ended: Ended, now: datetime) -> Step:
    """An admitted job that never ran ends (cancelled, or the backend was never reachable):
    the whole hold is released and nothing charged."""
    placed = _placed(job)
    state = JobState.CANCELLED if ended.outcome is Outcome.CANCELLED else JobState.FAILED
    final = replace(job.because(ended), state=state, ended_at=now)
    release = Booking(EntryKind.RELEASE, job.spec.project, job.id, placed.period, ended.sentence)
    return Step(final, (release,), (event(job, final, ended.sentence, now),))


def observe(job: Job, status: RunStatus, now: datetime, *, charge_every_seconds: float) -> Step:
    """What the backend's ``status`` of a starting or running job makes of it: a start, a
    charge while it runs (when due), a settlement at its end, a requeue when it was preempted
    or lost. The job unchanged (and nothing booked) when there is nothing to do."""
    if status.state is RunState.NOT_FOUND:
        return requeue(job, Lost(_placed(job).cluster), now)
    if status.capacity_refused:
        refused = Unprovisioned(_placed(job).cluster, status.message or "capacity refused")
        return requeue(job, refused, now)
    if status.state is RunState.PENDING:
        return Step(job)
    step = Step(job)
    if job.state is JobState.STARTING:
        step = start(job, status.started_at or now, now)
    job = step.job
    if not status.state.is_terminal:
        if charge_due(job, now, charge_every_seconds):
            return step.then(charge(job, now, "usage while running"))
        return step
    if job.stop_cause is StopCause.PREEMPT and not status.system_fault:
        asked = job.cause if isinstance(job.cause, Stopping) else None
        why = asked or Stopping.requested(StopCause.PREEMPT)
        return step.then(requeue(job, why, now, status.ended_at))
    return step.then(settle(job, status, now))


def unprovisioned(
    job: Job, status: RunStatus, deadline_seconds: int | None, now: datetime
) -> RunStatus | None:
    """A starting job still waiting for its burst target to provision capacity, past the
    target's ``deadline_seconds`` since it was admitted there: the status that takes it off the
    target and back to the queue (``observe``). None while it may still wait, or elsewhere."""
    if (
        deadline_seconds is None
        or job.state is not JobState.STARTING
        or status.state is not RunState.PENDING
        or job.admitted_at is None
        or now < job.admitted_at + timedelta(seconds=deadline_seconds)
    ):
        return None
    waited = format_duration(deadline_seconds)
    return RunStatus(RunState.STOPPED, f"not provisioned within {waited}", capacity_refused=True)


# -- stopping -----------------------------------------------------------------------------


def stop_needed(
    job: Job, status: RunStatus, now: datetime, gpus_in_use: float | None
) -> StopCause | None:
    """Why a starting or running job must be stopped now, if it must: asked before (ask
    again until it ends), cancelled, past its time limit, or using more GPUs than it holds."""
    if job.stop_cause is not None:
        return job.stop_cause
    if job.cancel_requested:
        return StopCause.CANCEL
    started = job.started_at or status.started_at
    if (
        status.state is RunState.RUNNING
        and started is not None
        and now >= started + timedelta(seconds=job.spec.time_limit_seconds)
    ):
        return StopCause.TIME_LIMIT
    if gpus_in_use is not None and gpus_in_use > job.spec.gpus + 1e-9:
        return StopCause.OVERUSE
    return None


def asked_to_stop(job: Job, cause: StopCause, gpus_in_use: float | None = None) -> Job:
    """The job marked as being stopped for ``cause``, with the sentence that says why."""
    if cause is StopCause.TIME_LIMIT:
        stopping = Stopping.time_limit(job.spec.time_limit_seconds)
    elif cause is StopCause.OVERUSE:
        stopping = Stopping.overuse(gpus_in_use or 0, job.spec.gpus)
    else:
        stopping = Stopping.requested(cause)
    return replace(job.because(stopping), stop_cause=cause)


def outcome(job: Job, status: RunStatus) -> tuple[JobState, Ended]:
    """The final state and cause of a run that ended as ``status`` says."""
    if status.state is RunState.SUCCEEDED:
        return JobState.SUCCEEDED, Ended(Outcome.SUCCEEDED, status.exit_code)
    if status.state is RunState.STOPPED or job.stop_cause is not None or status.time_limit_reached:
        ran_to_limit = (
            job.started_at is not None
            and job.ended_at is not None
            and job.ended_at - job.started_at >= timedelta(seconds=job.spec.time_limit_seconds)
        )
        if (
            job.stop_cause is StopCause.TIME_LIMIT
            or status.time_limit_reached
            or (job.stop_cause is None and ran_to_limit)
        ):
            limit = format_duration(job.spec.time_limit_seconds)
            return JobState.TIMED_OUT, Ended(
                Outcome.TIME_LIMIT, detail=f"reached its time limit of {limit}"
            )
        if job.stop_cause is StopCause.OVERUSE:
            why = job.cause.detail if isinstance(job.cause, Stopping) else "used more GPUs"
            return JobState.FAILED, Ended(Outcome.OVERUSE, detail=f"stopped: {why}")
        if job.stop_cause is StopCause.CANCEL or job.cancel_requested:
            return JobState.CANCELLED, Ended(Outcome.CANCELLED, detail="cancelled")
        return JobState.CANCELLED, Ended(Outcome.STOPPED, detail=status.message)
    ended = Outcome.SYSTEM_FAULT if status.system_fault else Outcome.FAILED
    return JobState.FAILED, Ended(ended, status.exit_code, status.message)


def _placed(job: Job) -> Placed:
    if job.placed is None:
        raise ValueError(f"job {job.id} holds no placement")
    return job.placed
