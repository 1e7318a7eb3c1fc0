"""Scenarios of the scheduling cycle on the simulated backend, against the demo pool.

The clock is injected; jobs "run" on it. Each scenario checks what a user or an auditor would see:
the job's state and events, its wait reason, position and estimated start, and the ledger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta

import pytest
from sqlalchemy import event

from jobs.cases import request_cancel, submit
from jobs.lifecycle import RunState
from jobs.model import Job, JobSpec, JobState
from jobs.repository import JobRepository
from quotas.admission import DataClass, PriorityClass, SiteKind
from quotas.causes import Ended, NoCapacity
from quotas.causes import Outcome as Ending
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.errors import BooksError, InvalidInput, NoSuchFlavor
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.ledger import EntryKind
from quotas.quantities import Credits
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.base import LaunchSpec
from scheduler.backends.simulated import Outcome, SimulatedBackend
from scheduler.cycle import CycleReport, Scheduler
from scheduler.settings import SchedulerSettings
from tests.scheduler.pools import HOUR, START, Clock, SchedulerPool


@dataclass
class Pool(SchedulerPool):
    daejeon: SimulatedBackend
    gwangju: SimulatedBackend
    outcomes: dict[str, Outcome]

    def submit(
        self,
        name: str,
        project: str = "kaist-nlp",
        gpus: int = 8,
        hours: float = 1,
        outcome: Outcome | None = None,
        **options: object,
    ) -> str:
        self.outcomes[name] = outcome or Outcome(seconds=None)
        with transaction(self.factory) as session:
            job, _quote = submit(
                Books(session, self.clock),
                JobSpec(
                    project=project,
                    submitter="seoyeon.lee",
                    name=name,
                    entrypoint="python train.py",
                    gpus=gpus,
                    time_limit_seconds=int(hours * HOUR),
                    **options,
                ),  # type: ignore[arg-type]
                max_time_limit_seconds=72 * HOUR,
            )
        return job.id

    def events(self, job_id: str) -> list[tuple[str | None, str]]:
        with transaction(self.factory) as session:
            return [(e.from_state, e.to_state) for e in JobRepository(session).events(job_id)]

    def balances(self, account: str):  # type: ignore[no-untyped-def]
        with transaction(self.factory) as session:
            books = Books(session, self.clock)
            return books.balances(account, books.current_period().name)


@pytest.fixture
def pool(fresh_database_url: str) -> Iterator[Pool]:
    engine = make_engine(fresh_database_url)
    factory = session_factory(engine)
    clock = Clock()
    with transaction(factory) as session:
        seed_demo(Books(session, clock), demo_pool(START))
    outcomes: dict[str, Outcome] = {}

    def runtime(spec: LaunchSpec) -> Outcome:
        return outcomes[spec.metadata["gpupool_name"]]

    daejeon = SimulatedBackend(clock, {"h100-80g": (2, 8), "a100-80g": (2, 8)}, runtime)
    gwangju = SimulatedBackend(clock, {"v100-32g": (4, 8)}, runtime)
    settings = SchedulerSettings(charge_interval_seconds=60)
    scheduler = Scheduler(
        factory, {"national-daejeon": daejeon, "national-gwangju": gwangju}, settings, clock
    )
    yield Pool(factory, clock, scheduler, daejeon, gwangju, outcomes)
    engine.dispose()


def test_a_job_runs_to_success_and_is_charged_exactly_what_it_used(pool: Pool) -> None:
    job_id = pool.submit(
        "llm-sft", gpus=8, hours=2, flavors=("h100-80g",), outcome=Outcome(seconds=30 * 60)
    )
    pool.cycle()  # admitted and dispatched
    pool.cycle()  # running
    pool.clock.advance(30 * 60)
    pool.cycle()  # succeeded and settled

    job = pool.job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert pool.events(job_id) == [
        (None, "queued"),
        ("queued", "admitted"),
        ("admitted", "starting"),
        ("starting", "running"),
        ("running", "succeeded"),
    ]
    assert job.placed is not None
    assert job.placed.rate_version == 1
    assert pool.entries(job_id, EntryKind.HOLD) == Credits.of(16).milli  # 8 GPUs x 2h x 1.0
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of(4).milli  # 8 x 0.5h
    assert pool.entries(job_id, EntryKind.RELEASE) == Credits.of(12).milli
    balances = pool.balances("kaist-nlp")
    assert (balances.spent, balances.held, balances.available) == (
        Credits.of(4),
        Credits.zero(),
        Credits.of(24_000 - 4),
    )
    assert pool.daejeon.launches == [job_id]


def test_charges_accrue_while_a_job_runs(pool: Pool) -> None:
    job_id = pool.submit("pretrain", gpus=4, hours=10, flavors=("h100-80g",))
    pool.cycle()
    pool.cycle()
    pool.clock.advance(10 * 60)
    pool.cycle()

    assert pool.job(job_id).state is JobState.RUNNING
    assert pool.balances("kaist-nlp").spent == Credits.of("0.667")  # 4 GPUs x 10 min, rounded up
    assert pool.balances("kaist-nlp").held == Credits.of(40) - Credits.of("0.667")


def test_the_time_limit_stops_a_job_and_charges_it_to_the_limit(pool: Pool) -> None:
    job_id = pool.submit("endless", gpus=2, hours=1, flavors=("a100-80g",))
    pool.cycle()
    pool.cycle()
    pool.clock.advance(HOUR + 5)
    pool.cycle()  # asks the backend to stop it
    pool.cycle()  # sees it stopped: timed out

    job = pool.job(job_id)
    assert job.state is JobState.TIMED_OUT
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of("1.6").milli  # 2 x 1h x 0.8
    assert pool.balances("kaist-nlp").held == Credits.zero()


def test_a_cancelled_job_is_charged_only_for_what_ran(pool: Pool) -> None:
    job_id = pool.submit("sweep", gpus=1, hours=4, flavors=("v100-32g",))
    pool.cycle()
    pool.cycle()
    pool.clock.advance(2 * HOUR)
    with transaction(pool.factory) as session:
        request_cancel(Books(session, pool.clock), job_id, "seoyeon.lee")
    pool.cycle()
    pool.cycle()

    assert pool.job(job_id).state is JobState.CANCELLED
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of("0.5").milli  # 1 x 2h x 0.25


def test_a_queued_job_is_cancelled_at_once_and_never_charged(pool: Pool) -> None:
    job_id = pool.submit("typo", gpus=1)
    with transaction(pool.factory) as session:
        request_cancel(Books(session, pool.clock), job_id, "seoyeon.lee")
    pool.cycle()

    assert pool.job(job_id).state is JobState.CANCELLED
    assert pool.entries(job_id, EntryKind.HOLD) == 0
    assert pool.daejeon.launches == []


def test_a_failing_job_is_charged_and_a_system_fault_is_refunded(pool: Pool) -> None:
    own = pool.submit(
        "bug",
        gpus=1,
        flavors=("h100-80g",),
        outcome=Outcome(seconds=600, state=RunState.FAILED, exit_code=3),
    )
    fault = pool.submit(
        "unlucky",
        gpus=1,
        flavors=("h100-80g",),
        outcome=Outcome(seconds=600, state=RunState.FAILED, system_fault=True),
    )
    pool.cycle()
    pool.cycle()
    pool.clock.advance(600)
    pool.cycle()

    assert pool.job(own).state is JobState.FAILED
    assert "exit code 3" in pool.job(own).reason
    assert pool.job(own).cause == Ended(Ending.FAILED, exit_code=3)
    assert pool.entries(own, EntryKind.CHARGE) == Credits.of("0.167").milli
    assert pool.job(fault).state is JobState.FAILED
    assert "refunded" in pool.job(fault).reason
    fault_cause = pool.job(fault).cause
    assert isinstance(fault_cause, Ended)
    assert fault_cause.outcome is Ending.SYSTEM_FAULT
    assert fault_cause.refunded.milli == pool.entries(fault, EntryKind.REFUND)
    assert pool.entries(fault, EntryKind.REFUND) == pool.entries(fault, EntryKind.CHARGE) > 0


def test_waiting_jobs_get_a_true_reason_a_position_and_an_estimated_start(pool: Pool) -> None:
    first = pool.submit("big-1", gpus=8, hours=2, flavors=("h100-80g",))
    second = pool.submit("big-2", gpus=8, hours=3, flavors=("h100-80g",))
    pool.cycle()
    third = pool.submit("big-3", gpus=8, hours=1, flavors=("h100-80g",))
    pool.clock.advance(1)  # submitted later: behind big-3 in the queue
    fourth = pool.submit("big-4", gpus=8, hours=1, flavors=("h100-80g",))
    pool.cycle()

    assert {pool.job(first).state, pool.job(second).state} == {JobState.RUNNING}
    waiting = pool.job(third)
    assert waiting.state is JobState.QUEUED
    assert "no h100-80g free for 8 GPUs; 0 GPUs ahead of you" in waiting.reason
    assert isinstance(waiting.cause, NoCapacity)
    assert (waiting.cause.flavors, waiting.cause.gpus, waiting.cause.ahead) == (
        ("h100-80g",),
        8,
        0,
    )
    assert waiting.position == 1
    assert waiting.eta == START + timedelta(hours=2)
    assert pool.job(fourth).position == 2
    assert "8 GPUs ahead of you" in pool.job(fourth).reason
    assert pool.job(fourth).eta == START + timedelta(hours=3)
    assert waiting.eta == START + timedelta(hours=2)


def test_a_budget_wait_says_how_much_is_needed_and_left(pool: Pool) -> None:
    ocr = "seoulvision-doc-ocr"  # 1,500 credits awarded
    pool.submit("a", project=ocr, gpus=8, hours=72, flavors=("h100-80g",))  # 576.0
    pool.submit("b", project=ocr, gpus=8, hours=72, flavors=("a100-80g",))  # 460.8
    pool.cycle()
    waiting = pool.submit("c", project=ocr, gpus=8, hours=60, flavors=("h100-80g",))  # 480.0
    pool.cycle()

    job = pool.job(waiting)
    assert job.state is JobState.QUEUED
    assert job.reason == f"budget: needs 480.0 credits, 463.2 available (project {ocr})"
    assert pool.balances(ocr).held == Credits.of("1036.8")


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"project": "nonexistent-lab"}, BooksError),
        ({"project": "kaist"}, InvalidInput),
        ({"flavors": ("x100-80g",)}, NoSuchFlavor),
        ({"hours": 100}, InvalidInput),
        ({"hours": 0}, InvalidInput),
        ({"gpus": 0}, InvalidInput),
    ],
)
def test_bad_input_is_refused_at_the_door_and_nothing_is_charged(
    pool: Pool, spec: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        pool.submit("bad", **spec)  # type: ignore[arg-type]
    with transaction(pool.factory) as session:
        assert JobRepository(session).find() == []


def test_an_empty_entrypoint_is_refused() -> None:
    with pytest.raises(InvalidInput, match="entrypoint"):
        JobSpec("kaist-nlp", "s", "j", "   ", gpus=1, time_limit_seconds=60)


def test_more_gpus_than_a_ray_node_has_is_rejected_with_a_reason(pool: Pool) -> None:
    with pytest.raises(InvalidInput, match="could never run in this pool: 16 GPUs is more"):
        pool.submit("gang", gpus=16, flavors=("h100-80g",))
    # one queued before the pool shrank (the door let it in then) is rejected by the cycle
    spec = JobSpec("kaist-nlp", "seoyeon.lee", "gang", "python train.py", 16, HOUR, ("h100-80g",))
    with transaction(pool.factory) as session:
        JobRepository(session).add(Job("gp-gang", spec, JobState.QUEUED, pool.clock()))
    job_id = "gp-gang"
    pool.cycle()

    job = pool.job(job_id)
    assert job.state is JobState.REJECTED
    assert "more than one node has (8 at most)" in job.reason
    assert pool.entries(job_id, EntryKind.HOLD) == 0


def test_a_job_the_backend_lost_is_refunded_and_requeued(pool: Pool) -> None:
    job_id = pool.submit("orphan", gpus=2, hours=2, flavors=("h100-80g",))
    pool.cycle()
    pool.cycle()
    pool.clock.advance(20 * 60)
    pool.cycle()
    assert pool.balances("kaist-nlp").spent > Credits.zero()
    pool.daejeon.runs.clear()  # the Ray cluster restarted and forgot its jobs

    pool.cycle()

    job = pool.job(job_id)
    assert pool.balances("kaist-nlp").spent == Credits.zero()
    assert ("running", "preempted") in pool.events(job_id)
    assert job.state in (JobState.QUEUED, JobState.ADMITTED, JobState.STARTING)
    pool.cycle()
    assert pool.job(job_id).attempt == 2
    assert pool.daejeon.launches == [job_id, f"{job_id}-a2"]


def test_an_unreachable_backend_is_retried_without_launching_twice(pool: Pool) -> None:
    job_id = pool.submit("patient", gpus=1, flavors=("h100-80g",))
    pool.daejeon.unavailable = True
    pool.cycle()
    assert "dispatch failed" in pool.job(job_id).reason
    assert pool.job(job_id).state is JobState.ADMITTED

    pool.daejeon.unavailable = False
    pool.clock.advance(5)
    pool.cycle()
    pool.cycle()

    assert pool.job(job_id).state is JobState.RUNNING
    assert pool.daejeon.launches == [job_id]


def test_fair_share_gives_contended_gpus_to_the_program_that_used_less(pool: Pool) -> None:
    # startups used a lot recently; universities did not
    for index in range(2):
        pool.submit(
            f"warmup-{index}",
            project="hanbit-robot-policy",
            gpus=8,
            flavors=("h100-80g",),
            outcome=Outcome(seconds=HOUR),
        )
    pool.cycle()
    pool.cycle()
    pool.clock.advance(HOUR)
    pool.cycle()
    startup = pool.submit(
        "startup-next", project="hanbit-robot-policy", gpus=8, flavors=("h100-80g",)
    )
    university = pool.submit(
        "university-next", project="snu-medical-imaging", gpus=8, flavors=("h100-80g",)
    )
    blocker = pool.submit("blocker", project="postech-materials", gpus=8, flavors=("h100-80g",))
    pool.cycle()

    running = {
        j for j in (startup, university, blocker) if pool.job(j).state is not JobState.QUEUED
    }
    assert university in running
    assert startup not in running
    assert "over fair share: program startups" in pool.job(startup).reason


def test_opportunistic_work_is_preempted_for_a_long_waiting_job_and_requeued(pool: Pool) -> None:
    scavengers = [
        pool.submit(
            f"scavenger-{n}",
            project="hanbit-robot-policy",
            gpus=8,
            hours=10,
            flavors=("h100-80g",),
            priority=PriorityClass.OPPORTUNISTIC,
        )
        for n in range(2)
    ]
    pool.cycle()
    pool.cycle()
    waiting = pool.submit("thesis", gpus=8, hours=2, flavors=("h100-80g",))
    pool.cycle()
    assert pool.job(waiting).state is JobState.QUEUED

    pool.clock.advance(31 * 60)  # past the 30 min bound; the scavengers ran past 10 min
    pool.cycle()  # chooses a victim and asks the backend to stop it
    pool.cycle()  # sees it stopped: charged for what ran, requeued
    pool.cycle()  # the waiting job takes the freed GPUs

    victims = [job for job in scavengers if pool.job(job).state is JobState.QUEUED]
    assert len(victims) == 1
    [victim] = victims
    assert ("running", "preempted") in pool.events(victim)
    assert ("preempted", "queued") in pool.events(victim)
    with transaction(pool.factory) as session:
        [preempted] = [
            e for e in JobRepository(session).events(victim) if e.to_state == "preempted"
        ]
    assert preempted.reason.startswith(f"preempted for {waiting} of kaist-nlp, which waited 31 min")
    assert pool.entries(victim, EntryKind.CHARGE) == Credits.of("4.134").milli  # 8 x 31 min
    assert pool.entries(victim, EntryKind.HOLD) == pool.entries(
        victim, EntryKind.CHARGE
    ) + pool.entries(victim, EntryKind.RELEASE)
    assert pool.job(waiting).state in (JobState.STARTING, JobState.RUNNING)


@pytest.fixture
def pool_with_cloud(pool: Pool) -> Pool:
    """The demo pool plus a foreign cloud burst target, while the national h100s are full;
    kaist-nlp may burst."""
    with transaction(pool.factory) as session:
        books = Books(session)
        books.update_account(replace(books.tree()["kaist-nlp"], may_burst=True))
        books.clusters.add(
            ClusterSpec(
                "cloud-tokyo",
                BackendKind.CLOUD,
                SiteKind.FOREIGN_CLOUD,
                (Inventory("h100-80g", 4, 8),),
                price_multiplier_milli=1500,
            )
        )
    cloud = SimulatedBackend(pool.clock, {"h100-80g": (4, 8)}, pool.daejeon.runtime)
    pool.scheduler.backends = {**pool.scheduler.backends, "cloud-tokyo": cloud}
    for n in range(2):
        pool.submit(f"national-{n}", gpus=8, hours=8, flavors=("h100-80g",))
    pool.cycle()
    return pool


def test_restricted_data_never_bursts_to_a_foreign_cloud(pool_with_cloud: Pool) -> None:
    pool = pool_with_cloud
    secret = pool.submit("patients", gpus=8, flavors=("h100-80g",), data_class=DataClass.RESTRICTED)
    public = pool.submit("open-data", gpus=8, flavors=("h100-80g",), data_class=DataClass.PUBLIC)
    pool.cycle()
    assert "it may burst to cloud capacity from" in pool.job(public).reason
    pool.clock.advance(pool.scheduler.settings.burst_wait_seconds)
    pool.cycle()

    assert pool.job(secret).state is JobState.QUEUED
    assert "no h100-80g free" in pool.job(secret).reason
    placed = pool.job(public).placed
    assert placed is not None
    assert placed.cluster == "cloud-tokyo"
    assert placed.rate_milli == 1500  # the burst target's 1.5x price multiplier
    assert pool.entries(public, EntryKind.HOLD) == Credits.of(12).milli  # 8 GPUs x 1h x 1.5


def test_a_cycle_in_which_nothing_changed_writes_nothing(pool: Pool) -> None:
    """Waiting jobs keep their cause, position and estimate; running jobs not yet due for a
    charge are only polled."""
    for n in range(2):
        pool.submit(
            f"run-{n}", project="hanbit-robot-policy", gpus=8, hours=3, flavors=("h100-80g",)
        )
    pool.clock.advance(1)  # submitted later: behind the running ones
    waiting = [
        pool.submit(f"wait-{n}", project="hanbit-robot-policy", gpus=8, flavors=("h100-80g",))
        for n in range(3)
    ]
    pool.cycle()
    pool.cycle()
    pool.clock.advance(HOUR)
    pool.cycle()  # charged for an hour: decayed usage moves from now on
    pool.clock.advance(1)
    pool.cycle()
    # every waiting job has an estimated start (the queue run forward by time limits); each
    # hears of the free a100s it did not ask for
    assert all(pool.job(job).eta is not None for job in waiting)
    assert "16 a100-80g free now at 0.8 credits/GPU-h" in pool.job(waiting[2]).reason
    writes: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE")):
            writes.append(statement.split("(")[0][:60])

    engine = pool.factory.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        pool.clock.advance(1)
        pool.cycle()
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert writes == []


def report(pool: Pool) -> CycleReport:
    return asyncio.run(pool.scheduler.run_once())


def test_the_queue_is_decided_again_only_when_something_it_depends_on_changed(pool: Pool) -> None:
    """A cycle in which nothing changed reuses the last decisions; a submission, an ending, a
    change to the books, or the clock passing ``decide_every_seconds`` decides again, and what
    it decides is what a full decision would."""
    short = [
        pool.submit(
            f"short-{n}",
            project="hanbit-robot-policy",
            gpus=8,
            flavors=("h100-80g",),
            outcome=Outcome(seconds=600),
        )
        for n in range(2)
    ]
    pool.clock.advance(1)
    behind = pool.submit("behind", project="hanbit-robot-policy", gpus=8, flavors=("h100-80g",))
    assert report(pool).decided  # admits the short ones
    assert report(pool).decided  # their admission changed the books; seen running
    pool.clock.advance(1)
    assert not report(pool).decided  # only a start since: nothing to decide again
    position = pool.job(behind).position
    assert (pool.job(behind).state, position) == (JobState.QUEUED, 1)

    pool.clock.advance(1)
    late = pool.submit("late", project="kaist-nlp", gpus=8, flavors=("h100-80g",))
    assert report(pool).decided  # a submission
    assert pool.job(late).position is not None
    pool.clock.advance(1)
    assert not report(pool).decided

    with transaction(pool.factory) as session:
        books = Books(session, pool.clock)
        funder = books.funding.funders()[0].name
        books.contribute(funder, books.current_period().name, Credits.of(1), "admin", "top-up")
    assert report(pool).decided  # the books changed
    pool.clock.advance(1)
    assert not report(pool).decided
    pool.clock.advance(pool.scheduler.settings.decide_every_seconds)
    assert report(pool).decided  # estimated starts are refreshed at least this often
    pool.clock.advance(1)
    assert not report(pool).decided

    pool.clock.advance(600)  # the short ones end: settled in this cycle's reconcile...
    report(pool)
    assert all(pool.job(job).state is JobState.SUCCEEDED for job in short)
    assert report(pool).decided  # ...and their GPUs are decided on in the next
    assert pool.job(behind).state in (JobState.ADMITTED, JobState.STARTING, JobState.RUNNING)


def test_a_job_moved_back_in_the_queue_is_told_why(pool: Pool) -> None:
    for n in range(2):  # hanbit fills the h100s and is charged for it
        pool.submit(
            f"run-{n}", project="hanbit-robot-policy", gpus=8, hours=3, flavors=("h100-80g",)
        )
    pool.clock.advance(1)  # submitted later: behind the running ones
    waiting = pool.submit("wait", project="hanbit-robot-policy", gpus=8, flavors=("h100-80g",))
    pool.cycle()
    pool.clock.advance(HOUR)
    pool.cycle()
    assert pool.job(waiting).position == 1
    assert "moved ahead" not in pool.job(waiting).reason

    # kaist-nlp has used nothing: its job goes first, and the one it passed hears why
    passing = pool.submit("passing", project="kaist-nlp", gpus=8, flavors=("h100-80g",))
    pool.cycle()
    assert (pool.job(passing).position, pool.job(waiting).position) == (1, 2)
    assert "1 job moved ahead of you (a higher priority class" in pool.job(waiting).reason

    pool.clock.advance(1)
    pool.cycle()  # still behind it: still told why
    assert "1 job moved ahead of you" in pool.job(waiting).reason

    with transaction(pool.factory) as session:
        request_cancel(Books(session, pool.clock), passing, "seoyeon.lee")
    pool.cycle()  # back at the front: nothing to explain
    assert pool.job(waiting).position == 1
    assert "moved ahead" not in pool.job(waiting).reason


def test_a_waiting_job_is_told_the_level_where_fair_share_put_it_behind(pool: Pool) -> None:
    """Two universities contend: the organization level decided, so the reason names kaist and
    its numbers there, not the program both are in (which is over its share too)."""
    for index in range(2):
        pool.submit(
            f"warmup-{index}",
            project="kaist-nlp",
            gpus=8,
            flavors=("h100-80g",),
            outcome=Outcome(seconds=HOUR),
        )
    pool.cycle()
    pool.cycle()
    pool.clock.advance(HOUR)
    pool.cycle()
    for index in range(2):  # the h100s are full again
        pool.submit(f"busy-{index}", project="postech-materials", gpus=8, flavors=("h100-80g",))
    pool.cycle()
    pool.clock.advance(1)
    snu = pool.submit("snu-next", project="snu-medical-imaging", gpus=8, flavors=("h100-80g",))
    kaist = pool.submit("kaist-next", project="kaist-nlp", gpus=8, flavors=("h100-80g",))
    pool.cycle()

    assert pool.job(snu).position == 1
    assert pool.job(kaist).position == 2
    assert "over fair share: organization kaist uses" in pool.job(kaist).reason
    assert "program" not in pool.job(kaist).reason
    assert "over fair share" not in pool.job(snu).reason  # nothing ranks ahead of it by share
