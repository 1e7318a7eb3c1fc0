"""The scheduler end to end on a real local Ray cluster: jobs run, time out, overuse and get
preempted, and the ledger charges exactly what ran.

The pool is the demo pool plus one cluster, ``ray-test``, whose inventory matches the session's
Ray cluster (4 h100-80g and 4 a100-80g logical GPUs); only it has a backend here.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import TypeVar

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jobs.cases import submit
from jobs.lifecycle import owed_milli
from jobs.model import Job, JobSpec, JobState
from jobs.repository import JobRepository
from quotas.admission import PriorityClass, SiteKind
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.ledger import EntryKind
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.ray import RayBackend
from scheduler.cycle import Scheduler
from scheduler.embedded import EmbeddedRayCluster
from scheduler.settings import SchedulerSettings

PYTHON = sys.executable
T = TypeVar("T")


@dataclass
class RayPool:
    factory: sessionmaker[Session]
    scheduler: Scheduler
    backend: RayBackend
    loop: asyncio.AbstractEventLoop
    """One loop for the whole test: the backend's HTTP client belongs to it."""

    def run(self, call: Coroutine[object, object, T]) -> T:
        return self.loop.run_until_complete(call)

    def submit(
        self,
        name: str,
        entrypoint: str,
        project: str = "kaist-nlp",
        gpus: int = 1,
        seconds: int = 600,
        **options: object,
    ) -> str:
        with transaction(self.factory) as session:
            job, _ = submit(
                Books(session),
                JobSpec(
                    project=project,
                    submitter="seoyeon.lee",
                    name=name,
                    entrypoint=entrypoint,
                    gpus=gpus,
                    time_limit_seconds=seconds,
                    flavors=("h100-80g",),
                    **options,
                ),  # type: ignore[arg-type]
                max_time_limit_seconds=3600,
            )
        return job.id

    def job(self, job_id: str) -> Job:
        with transaction(self.factory) as session:
            return JobRepository(session).get(job_id)

    def run_until(self, done: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "timed out waiting for the scheduler"
            self.run(self.scheduler.run_once())
            time.sleep(0.3)

    def ledger(self, job_id: str, kind: EntryKind) -> int:
        with transaction(self.factory) as session:
            entries = Books(session).ledger.entries(job=job_id, kinds=[kind], limit=1000)
            return sum(entry.posting.amount.milli for entry in entries)


@pytest.fixture
def ray_pool(fresh_database_url: str, ray_cluster: EmbeddedRayCluster) -> Iterator[RayPool]:
    engine = make_engine(fresh_database_url)
    factory = session_factory(engine)
    with transaction(factory) as session:
        books = Books(session)
        seed_demo(books, demo_pool(books.clock()))
        books.clusters.add(
            ClusterSpec(
                "ray-test",
                BackendKind.RAY,
                SiteKind.NATIONAL,
                (Inventory("h100-80g", 1, 4), Inventory("a100-80g", 1, 4)),
                ray_cluster.address,
            )
        )
    loop = asyncio.new_event_loop()
    backend = RayBackend(ray_cluster.address, auth_token=ray_cluster.auth_token)
    settings = SchedulerSettings(
        charge_interval_seconds=1, preempt_after_seconds=1, min_runtime_seconds=0
    )
    scheduler = Scheduler(factory, {"ray-test": backend}, settings)
    pool = RayPool(factory, scheduler, backend, loop)
    yield pool
    pool.run(backend.close())
    loop.close()
    engine.dispose()


def sleep(seconds: float) -> str:
    return f"{PYTHON} -c 'import time; time.sleep({seconds})'"


def test_a_job_runs_on_ray_and_is_charged_for_its_run(ray_pool: RayPool) -> None:
    job_id = ray_pool.submit(
        "hello",
        f'{PYTHON} -c \'import os; print("visible", os.environ["CUDA_VISIBLE_DEVICES"])\'',
        gpus=2,
    )
    ray_pool.run_until(lambda: ray_pool.job(job_id).state.is_terminal)

    job = ray_pool.job(job_id)
    assert job.state is JobState.SUCCEEDED
    logs = ray_pool.run(ray_pool.backend.logs(job.submission_id))
    assert "visible" in logs
    assert len(logs.split("visible ")[1].split()[0].split(",")) == 2
    assert ray_pool.ledger(job_id, EntryKind.CHARGE) == owed_milli(job, job.ended_at)  # type: ignore[arg-type]
    assert ray_pool.ledger(job_id, EntryKind.HOLD) == ray_pool.ledger(
        job_id, EntryKind.CHARGE
    ) + ray_pool.ledger(job_id, EntryKind.RELEASE)


def test_a_job_past_its_time_limit_is_stopped_and_charged_to_the_limit(ray_pool: RayPool) -> None:
    job_id = ray_pool.submit("endless", sleep(120), gpus=2, seconds=3)
    ray_pool.run_until(lambda: ray_pool.job(job_id).state.is_terminal)

    job = ray_pool.job(job_id)
    assert job.state is JobState.TIMED_OUT
    assert ray_pool.ledger(job_id, EntryKind.CHARGE) == 2  # 2 GPUs x 3 s x 1.0, rounded up


def test_a_job_holding_more_gpus_than_it_reserved_is_stopped(ray_pool: RayPool) -> None:
    greedy = (
        f"{PYTHON} -c 'import ray, time; ray.init(); "
        'A = ray.remote(num_gpus=1)(type("A", (), {"ping": lambda self: 1})); '
        "a = A.remote(); ray.get(a.ping.remote()); time.sleep(120)'"
    )
    job_id = ray_pool.submit("greedy", greedy, gpus=1)
    ray_pool.run_until(lambda: ray_pool.job(job_id).state.is_terminal, timeout=90)

    job = ray_pool.job(job_id)
    assert job.state is JobState.FAILED
    assert "held 2 GPUs, 1 reserved" in job.reason


def test_opportunistic_work_on_ray_is_preempted_and_requeued(ray_pool: RayPool) -> None:
    scavenger = ray_pool.submit(
        "scavenger",
        sleep(120),
        project="hanbit-robot-policy",
        gpus=4,
        priority=PriorityClass.OPPORTUNISTIC,
    )
    ray_pool.run_until(lambda: ray_pool.job(scavenger).state is JobState.RUNNING)
    thesis = ray_pool.submit("thesis", sleep(1), gpus=4)
    ray_pool.run_until(lambda: ray_pool.job(thesis).state.is_terminal, timeout=90)

    assert ray_pool.job(thesis).state is JobState.SUCCEEDED
    requeued = ray_pool.job(scavenger)
    assert requeued.attempt >= 1
    with transaction(ray_pool.factory) as session:
        moves = [(e.from_state, e.to_state) for e in JobRepository(session).events(scavenger)]
    assert ("running", "preempted") in moves
    assert ("preempted", "queued") in moves
    first = ray_pool.run(ray_pool.backend.status(scavenger))
    assert first.state.is_terminal  # the first launch was stopped on Ray
