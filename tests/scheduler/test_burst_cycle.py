"""Cloud burst through the scheduling cycle: the demo pool, its national h100s full, and two
burst targets whose capacity is bought on demand (simulated backends that take a while to
provision it, or cannot). A job of a project that may burst goes to a target only after the
burst wait; a target that has not provisioned it by its deadline is let go, and the job tries
the next target, or waits in the queue saying so; it is charged at the target's multiplier,
and the spend report tells national from cloud credits."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from jobs.cases import request_cancel, submit
from jobs.model import JobSpec, JobState
from quotas.causes import NoCapacity, Requeued, Unprovisioned
from quotas.db.reports import ReportRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.ledger import EntryKind
from quotas.quantities import Credits
from quotas.reports import SpendBy, spend
from quotas.service import Books
from scheduler.backends.simulated import Outcome, SimulatedBackend
from scheduler.cycle import Scheduler
from scheduler.settings import SchedulerSettings
from tests.scheduler.pools import HOUR, Clock, SchedulerPool, seed_with_burst_targets

WAIT = 600
DEADLINE = 900


@dataclass
class BurstPool(SchedulerPool):
    seoul: SimulatedBackend
    tokyo: SimulatedBackend

    def submit(self, name: str, project: str = "kaist-nlp", gpus: int = 8) -> str:
        with transaction(self.factory) as session:
            job, _ = submit(
                Books(session, self.clock),
                JobSpec(
                    project=project,
                    submitter="seoyeon.lee" if project == "kaist-nlp" else "sungmin.yoon",
                    name=name,
                    entrypoint="python train.py",
                    gpus=gpus,
                    time_limit_seconds=2 * HOUR,
                    flavors=("h100-80g",),
                ),
                max_time_limit_seconds=72 * HOUR,
            )
        return job.id


def runs_an_hour(_spec: object) -> Outcome:
    return Outcome(seconds=HOUR)


@pytest.fixture
def pool(fresh_database_url: str) -> Iterator[BurstPool]:
    engine = make_engine(fresh_database_url)
    factory = session_factory(engine)
    clock = Clock()
    with transaction(factory) as session:
        books = Books(session, clock)
        seed_with_burst_targets(books, DEADLINE)
    national = SimulatedBackend(clock, {"h100-80g": (2, 8), "a100-80g": (2, 8)}, runs_an_hour)
    seoul = SimulatedBackend(clock, {"h100-80g": (2, 8)}, runs_an_hour, provisioning_seconds=300)
    tokyo = SimulatedBackend(clock, {"h100-80g": (2, 8)}, runs_an_hour, provisioning_seconds=300)
    settings = SchedulerSettings(charge_interval_seconds=60, burst_wait_seconds=WAIT)
    backends = {"national-daejeon": national, "cloud-seoul": seoul, "cloud-tokyo": tokyo}
    scheduler = Scheduler(factory, backends, settings, clock)
    pool = BurstPool(factory, clock, scheduler, seoul, tokyo)
    for n in range(2):  # the national h100s are taken for the next hour
        pool.submit(f"national-{n}", project="snu-medical-imaging")
    pool.cycle()
    yield pool
    engine.dispose()


def test_a_job_bursts_after_the_wait_and_is_charged_at_the_target_s_multiplier(
    pool: BurstPool,
) -> None:
    job_id = pool.submit("llm-sft")
    pool.cycle()
    assert pool.job(job_id).state is JobState.QUEUED
    assert "it may burst to cloud capacity from" in pool.job(job_id).reason

    pool.clock.advance(WAIT)
    pool.cycle()  # admitted to the domestic cloud, which starts provisioning
    job = pool.job(job_id)
    assert job.state is JobState.STARTING
    assert job.placed is not None
    assert (job.placed.cluster, job.placed.rate_milli) == ("cloud-seoul", 1200)

    pool.clock.advance(300)
    pool.cycle()  # provisioned: running
    assert pool.job(job_id).state is JobState.RUNNING
    pool.clock.advance(HOUR)
    pool.cycle()

    assert pool.job(job_id).state is JobState.SUCCEEDED
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of("9.6").milli  # 8 x 1h x 1.2
    with transaction(pool.factory) as session:
        books = Books(session, pool.clock)
        period = books.current_period(pool.clock()).name
        items = ReportRepository(session).spend(period)
        rows = spend(books.tree(period), items, SpendBy.SITE, {})
    by_site = {row.key: row.credits for row in rows}
    assert by_site["domestic_cloud"] == Credits.of("9.6")
    assert by_site["national"] > Credits.zero()


def test_a_project_that_may_not_burst_waits_for_the_national_pool(pool: BurstPool) -> None:
    job_id = pool.submit("no-cloud", project="snu-medical-imaging")
    pool.clock.advance(WAIT)
    pool.cycle()

    job = pool.job(job_id)
    assert job.state is JobState.QUEUED
    assert "burst" not in job.reason
    assert not pool.seoul.launches
    assert not pool.tokyo.launches


def test_a_target_that_misses_its_deadline_is_let_go_and_the_next_is_tried(
    pool: BurstPool,
) -> None:
    pool.seoul.provisioning_seconds = 2 * HOUR  # slower than its 15-minute deadline
    job_id = pool.submit("llm-sft")
    pool.clock.advance(WAIT)
    pool.cycle()
    assert pool.job(job_id).placed.cluster == "cloud-seoul"  # type: ignore[union-attr]

    pool.clock.advance(DEADLINE)
    pool.cycle()  # past the deadline: cancelled there, the hold released, queued again
    job = pool.job(job_id)
    assert job.state is JobState.QUEUED
    assert job.cause == Requeued(Unprovisioned("cloud-seoul", "not provisioned within 15m"))
    assert pool.seoul.runs[job_id].stopped_at is not None
    assert pool.entries(job_id, EntryKind.CHARGE) == 0
    assert pool.entries(job_id, EntryKind.RELEASE) == pool.entries(job_id, EntryKind.HOLD)

    pool.cycle()  # the next target
    job = pool.job(job_id)
    assert job.placed is not None
    assert job.placed.cluster == "cloud-tokyo"
    assert job.avoid_clusters == ("cloud-seoul",)


def test_a_refusal_sends_the_job_back_to_the_queue_saying_so_when_no_target_is_left(
    pool: BurstPool,
) -> None:
    pool.seoul.out_of_stock = True
    pool.tokyo.out_of_stock = True
    job_id = pool.submit("llm-sft")
    pool.clock.advance(WAIT)
    pool.cycle()  # to seoul, which refuses at once: requeued
    requeued = pool.job(job_id)
    assert requeued.state is JobState.QUEUED
    assert isinstance(requeued.cause, Requeued)
    assert requeued.cause.why == Unprovisioned("cloud-seoul", "out of stock")
    pool.cycle()  # to tokyo, which refuses too
    pool.cycle()  # decided again: nowhere left but the national pool

    job = pool.job(job_id)
    assert job.state is JobState.QUEUED
    assert isinstance(job.cause, NoCapacity)
    assert job.cause.unprovisioned == ("cloud-seoul", "cloud-tokyo")
    assert "could not be provisioned for it at cloud-seoul, cloud-tokyo" in job.reason
    assert pool.entries(job_id, EntryKind.CHARGE) == 0
    assert pool.entries(job_id, EntryKind.HOLD) == pool.entries(job_id, EntryKind.RELEASE)

    pool.clock.advance(HOUR)  # the national jobs end: it runs at home
    pool.cycle()
    pool.cycle()
    placed = pool.job(job_id).placed
    assert placed is not None
    assert placed.cluster == "national-daejeon"


def test_a_job_cancelled_while_its_capacity_is_provisioned_is_charged_nothing(
    pool: BurstPool,
) -> None:
    job_id = pool.submit("llm-sft")
    pool.clock.advance(WAIT)
    pool.cycle()
    with transaction(pool.factory) as session:
        request_cancel(Books(session, pool.clock), job_id, "seoyeon.lee")
    pool.cycle()
    pool.cycle()

    assert pool.job(job_id).state is JobState.CANCELLED
    assert pool.entries(job_id, EntryKind.CHARGE) == 0
