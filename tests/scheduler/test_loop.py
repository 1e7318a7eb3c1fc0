"""The scheduler loop: one scheduler at a time, and new work is picked up without waiting out
the pause between cycles."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from quotas.db.repositories import JobRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.jobs import JobSpec, JobState
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.simulated import SimulatedBackend
from scheduler.lock import SchedulerLock
from scheduler.loop import run_scheduler
from scheduler.queue import submit
from scheduler.settings import SchedulerSettings


def test_only_one_scheduler_holds_the_lock_at_a_time(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url)
    first, second = SchedulerLock(engine), SchedulerLock(engine)

    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()
    engine.dispose()


def test_a_submitted_job_wakes_a_pausing_scheduler(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url)
    factory = session_factory(engine)
    with transaction(factory) as session:
        seed_demo(Books(session), demo_pool(datetime.now(UTC)))
    backend = SimulatedBackend(lambda: datetime.now(UTC), {"h100-80g": (2, 8)})
    settings = SchedulerSettings(cycle_seconds=60, wake_seconds=0.05)

    async def scenario() -> float:
        stop = asyncio.Event()
        loop = asyncio.create_task(
            run_scheduler(engine, {"national-daejeon": backend}, settings, stop)
        )
        await asyncio.sleep(0.5)  # the first cycle ran; the loop now pauses for 60 s
        with transaction(factory) as session:
            job, _ = submit(
                Books(session),
                JobSpec(
                    "kaist-nlp",
                    "seoyeon.lee",
                    "wake-up",
                    "python train.py",
                    gpus=1,
                    time_limit_seconds=600,
                    flavors=("h100-80g",),
                ),
                max_time_limit_seconds=3600,
            )
        submitted = time.monotonic()
        while True:
            with transaction(factory) as session:
                if JobRepository(session).get(job.id).state is JobState.RUNNING:
                    break
            assert time.monotonic() - submitted < 20, "the scheduler did not wake up"
            await asyncio.sleep(0.02)
        stop.set()
        await loop
        return time.monotonic() - submitted

    waited = asyncio.run(scenario())
    assert waited < settings.cycle_seconds / 2
    engine.dispose()
