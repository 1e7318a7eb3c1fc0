"""The pure job lifecycle: each step's job, bookings and events, checked by hand, and posted to
the pure ledger without a database (as the simulator keeps its books)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from jobs import lifecycle
from jobs.lifecycle import Booking, RunState, RunStatus
from jobs.model import Job, JobSpec, JobState, Placed
from quotas.causes import Ended, Lost, Outcome, Requeued, StopCause, Stopping
from quotas.errors import InvalidTransition
from quotas.ledger import Actor, Balances, Bucket, EntryKind, Ledger, Pocket
from quotas.quantities import Credits
from tests.quotas.ledger_ops import PERIOD, small_tree

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
RATE = 2_000  # milli-credits per GPU-hour: 2 credits
EVERY = 300.0


def a_running_job(*, gpus: int = 4, hours: int = 10, started: datetime = T0) -> Job:
    spec = JobSpec("kaist-nlp", "minji", "train", "python train.py", gpus, hours * 3600)
    placed = Placed("daejeon", "h100-80g", RATE, 1, PERIOD, hold_milli=gpus * hours * RATE)
    return Job(
        "j1",
        spec,
        JobState.RUNNING,
        submitted_at=T0 - HOUR,
        placed=placed,
        attempt=1,
        admitted_at=T0 - timedelta(minutes=1),
        started_at=started,
    )


def charged(step: lifecycle.Step) -> int:
    return sum(b.credits.milli for b in step.bookings if b.kind is EntryKind.CHARGE)


def kinds(step: lifecycle.Step) -> list[EntryKind]:
    return [booking.kind for booking in step.bookings]


def test_a_starting_job_starts_when_the_backend_says_so_and_is_charged_later() -> None:
    starting = replace(a_running_job(), state=JobState.STARTING, started_at=None)
    step = lifecycle.observe(
        starting, RunStatus(RunState.RUNNING, started_at=T0), T0, charge_every_seconds=EVERY
    )
    assert step.job.state is JobState.RUNNING
    assert step.job.started_at == T0
    assert [(e.from_state, e.to_state) for e in step.events] == [
        (JobState.STARTING, JobState.RUNNING)
    ]
    assert step.bookings == ()  # nothing run yet: 0 seconds owe nothing


def test_a_running_job_is_charged_only_when_due_and_only_the_difference() -> None:
    job = a_running_job()
    early = lifecycle.observe(
        job, RunStatus(RunState.RUNNING), T0 + timedelta(seconds=60), charge_every_seconds=EVERY
    )
    assert early.bookings == ()
    assert early.job.charged_milli == 0
    first = lifecycle.observe(
        job, RunStatus(RunState.RUNNING), T0 + HOUR, charge_every_seconds=EVERY
    )
    assert charged(first) == 4 * RATE  # 4 GPUs for an hour at 2 credits
    second = lifecycle.observe(
        first.job, RunStatus(RunState.RUNNING), T0 + 2 * HOUR, charge_every_seconds=EVERY
    )
    assert charged(second) == 4 * RATE
    assert second.job.charged_milli == 8 * RATE
    assert second.events == ()


def test_settling_charges_the_rest_releases_the_hold_and_ends_the_job() -> None:
    job = a_running_job()
    ended = T0 + 3 * HOUR
    step = lifecycle.observe(
        job,
        RunStatus(RunState.SUCCEEDED, ended_at=ended, exit_code=0),
        ended + timedelta(seconds=5),
        charge_every_seconds=EVERY,
    )
    assert step.ended
    assert step.job.state is JobState.SUCCEEDED
    assert step.job.ended_at == ended
    assert kinds(step) == [EntryKind.CHARGE, EntryKind.RELEASE]
    assert charged(step) == 3 * 4 * RATE
    assert step.job.cause == Ended(Outcome.SUCCEEDED, 0)
    assert step.events[-1].to_state is JobState.SUCCEEDED


def test_a_charge_never_passes_the_time_limit() -> None:
    job = a_running_job(hours=1)
    step = lifecycle.settle(job, RunStatus(RunState.STOPPED, ended_at=T0 + 5 * HOUR), T0 + 5 * HOUR)
    assert charged(step) == 4 * RATE == job.placed.hold_milli  # type: ignore[union-attr]
    assert step.job.state is JobState.TIMED_OUT
    assert isinstance(step.job.cause, Ended)
    assert step.job.cause.outcome is Outcome.TIME_LIMIT


def test_a_system_fault_is_refunded_in_full() -> None:
    job = a_running_job()
    step = lifecycle.settle(
        job,
        RunStatus(RunState.FAILED, "node lost", ended_at=T0 + HOUR, system_fault=True),
        T0 + HOUR,
    )
    assert kinds(step) == [EntryKind.CHARGE, EntryKind.RELEASE, EntryKind.REFUND]
    refund = step.bookings[-1]
    assert refund.credits == Credits(4 * RATE)
    assert isinstance(step.job.cause, Ended)
    assert step.job.cause.outcome is Outcome.SYSTEM_FAULT
    assert step.job.cause.refunded == Credits(4 * RATE)


def test_a_preempted_job_pays_for_what_ran_and_queues_again() -> None:
    asked = Stopping(StopCause.PREEMPT, "preempted for kaist-protein")
    job = replace(a_running_job(), stop_cause=StopCause.PREEMPT, cause=asked)
    step = lifecycle.observe(
        job,
        RunStatus(RunState.STOPPED, ended_at=T0 + 2 * HOUR),
        T0 + 2 * HOUR + timedelta(seconds=3),
        charge_every_seconds=EVERY,
    )
    assert not step.ended
    assert step.job.state is JobState.QUEUED
    assert step.job.placed is None
    assert step.job.charged_milli == 0  # the next attempt starts afresh
    assert step.job.cause == Requeued(asked)
    assert kinds(step) == [EntryKind.CHARGE, EntryKind.RELEASE]
    assert charged(step) == 2 * 4 * RATE
    assert [(e.from_state, e.to_state) for e in step.events] == [
        (JobState.RUNNING, JobState.PREEMPTED),
        (JobState.PREEMPTED, JobState.QUEUED),
    ]


def test_a_lost_job_is_refunded_what_it_was_charged_and_queues_again() -> None:
    job = replace(a_running_job(), charged_milli=3_000)
    step = lifecycle.observe(
        job, RunStatus(RunState.NOT_FOUND), T0 + HOUR, charge_every_seconds=EVERY
    )
    assert step.job.state is JobState.QUEUED
    assert step.job.cause == Requeued(Lost("daejeon"))
    assert kinds(step) == [EntryKind.REFUND, EntryKind.RELEASE]
    assert step.bookings[0].credits == Credits(3_000)


def test_an_unlaunched_job_ends_with_its_whole_hold_released() -> None:
    admitted = replace(a_running_job(), state=JobState.ADMITTED, started_at=None)
    step = lifecycle.end_unlaunched(admitted, Ended(Outcome.CANCELLED, detail="cancelled"), T0)
    assert step.job.state is JobState.CANCELLED
    assert kinds(step) == [EntryKind.RELEASE]


def test_stops_are_asked_for_the_right_cause() -> None:
    job = a_running_job(hours=1)
    running = RunStatus(RunState.RUNNING)
    assert lifecycle.stop_needed(job, running, T0 + timedelta(minutes=30), None) is None
    assert lifecycle.stop_needed(job, running, T0 + HOUR, None) is StopCause.TIME_LIMIT
    assert lifecycle.stop_needed(job, running, T0, gpus_in_use=5.0) is StopCause.OVERUSE
    cancelled = replace(job, cancel_requested=True)
    assert lifecycle.stop_needed(cancelled, running, T0, None) is StopCause.CANCEL
    stopping = lifecycle.asked_to_stop(job, StopCause.OVERUSE, 5.0)
    assert stopping.stop_cause is StopCause.OVERUSE
    assert isinstance(stopping.cause, Stopping)
    assert "5" in stopping.reason


def test_a_step_cannot_make_a_move_the_transition_table_forbids() -> None:
    done = replace(a_running_job(), state=JobState.SUCCEEDED)
    with pytest.raises(InvalidTransition):
        lifecycle.settle(done, RunStatus(RunState.SUCCEEDED, ended_at=T0 + HOUR), T0 + HOUR)


def test_a_booking_is_a_charge_release_or_refund() -> None:
    with pytest.raises(ValueError, match="not award"):
        Booking(EntryKind.AWARD, "kaist-nlp", "j1", PERIOD, "no")


def test_the_books_of_a_run_balance_without_a_database() -> None:
    """Hold at admission, charges while running, settlement with a refund: posted to the pure
    ledger, the project ends with what it had less what ran, nothing held."""
    tree = small_tree()
    balances = Balances()
    ledger = Ledger(tree, balances, PERIOD)
    for postings in (ledger.contribute("msit", Credits.of(1_000), Actor("admin", "funding")),):
        balances.apply(postings)
    balances.apply(ledger.award("national", "kaist-nlp", Credits.of(500), Actor("pm", "award")))
    job = a_running_job(gpus=4, hours=10)
    assert job.placed is not None
    balances.apply(
        ledger.hold("kaist-nlp", "j1", Credits(job.placed.hold_milli), Actor("scheduler", "admit"))
    )
    step = lifecycle.observe(
        job, RunStatus(RunState.RUNNING), T0 + HOUR, charge_every_seconds=EVERY
    )
    for booking in step.bookings:
        balances.apply(lifecycle.post(ledger, booking, "simulator"))
    final = lifecycle.observe(
        step.job,
        RunStatus(RunState.SUCCEEDED, ended_at=T0 + 90 * timedelta(minutes=1)),
        T0 + 2 * HOUR,
        charge_every_seconds=EVERY,
    )
    for booking in final.bookings:
        balances.apply(lifecycle.post(ledger, booking, "simulator"))
    spent = balances.total(PERIOD, Pocket(Bucket.SPENT, "kaist-nlp", "j1"))
    held = balances.total(PERIOD, Pocket(Bucket.HELD, "kaist-nlp", "j1"))
    assert spent == Credits(int(1.5 * 4 * RATE))
    assert held == Credits(0)
    assert balances.total(PERIOD, Pocket(Bucket.AVAILABLE, "kaist-nlp")) == Credits.of(500) - spent


def test_admission_starts_a_new_attempt_with_nothing_of_the_last_one() -> None:
    lost = lifecycle.observe(
        replace(a_running_job(), charged_milli=3_000),
        RunStatus(RunState.NOT_FOUND),
        T0 + HOUR,
        charge_every_seconds=EVERY,
    ).job
    placed = Placed("gwangju", "a100-80g", 1_600, 2, PERIOD, hold_milli=64_000)
    again = lifecycle.admit(lost, placed, T0 + 2 * HOUR)
    assert (again.state, again.attempt, again.placed) == (JobState.ADMITTED, 2, placed)
    assert again.submission_id == "j1-a2"  # the backend sees a launch of its own
    assert (again.charged_milli, again.started_at, again.cause, again.reason) == (0, None, None, "")
