"""The scheduler loop: one scheduler at a time, and new work is picked up without waiting out
the pause between cycles."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from jobs.cases import submit
from jobs.lifecycle import RunStatus
from jobs.model import Job, JobSpec, JobState, Placed
from jobs.repository import JobRepository, News
from quotas.causes import StopCause
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.simulated import SimulatedBackend
from scheduler.lock import SchedulerLock
from scheduler.loop import SchedulerThread, run_scheduler
from scheduler.settings import SchedulerSettings
from tests.conftest import new_database


def test_each_schema_has_its_own_scheduler_lock(backend: str, tmp_path: Path) -> None:
    """Two pools in two schemas of one PostgreSQL database (or two SQLite files) each run
    their scheduler: one pool's lock does not stop the other's."""
    with new_database(backend, tmp_path) as one, new_database(backend, tmp_path) as two:
        engines = [make_engine(one), make_engine(two)]
        locks = [SchedulerLock(engine) for engine in engines]
        try:
            assert locks[0].try_acquire()
            assert locks[1].try_acquire()
            assert not SchedulerLock(engines[0]).try_acquire()
        finally:
            for lock in locks:
                lock.release()
            for engine in engines:
                engine.dispose()


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
            run_scheduler(engine, {"national-daejeon": backend}, settings, stop=stop)
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


def _job(state: JobState, name: str, **fields: Any) -> Job:
    spec = JobSpec("kaist-nlp", "seoyeon.lee", name, "python train.py", 1, 600)
    return replace(Job(name, spec, state, AT - timedelta(hours=1)), **fields)


AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PLACED = Placed("national-daejeon", "h100-80g", 1000, 1, "2026", 170)


def test_work_that_is_only_waiting_is_no_news(session: Session) -> None:
    """A job waiting out a dispatch retry, starting for long, or already being stopped does not
    wake the loop every ``wake_seconds``; new work and due work does, and a job launched a
    moment ago is polled (not a whole cycle) until it runs."""
    seed_demo(Books(session), demo_pool(AT))
    jobs = JobRepository(session)
    since, now = AT, AT + timedelta(seconds=1)
    watch = timedelta(seconds=30)

    def news(job: Job) -> News:
        jobs.add(job)
        found = jobs.news_since(since, now, watch)
        jobs.save(replace(job, state=JobState.CANCELLED, cancel_requested=False))
        return found

    later = now + timedelta(seconds=30)
    earlier = since - timedelta(minutes=5)
    quiet = [
        _job(JobState.QUEUED, "old"),
        _job(
            JobState.ADMITTED, "retry", placed=PLACED, admitted_at=earlier, next_dispatch_at=later
        ),
        _job(JobState.STARTING, "installing", placed=PLACED, admitted_at=earlier),
        _job(
            JobState.RUNNING,
            "stopping",
            placed=PLACED,
            admitted_at=earlier,
            cancel_requested=True,
            stop_cause=StopCause.CANCEL,
        ),
    ]
    work = [
        replace(_job(JobState.QUEUED, "new"), submitted_at=since + timedelta(milliseconds=5)),
        _job(JobState.ADMITTED, "due", placed=PLACED, admitted_at=earlier, next_dispatch_at=now),
        _job(JobState.RUNNING, "cancel", placed=PLACED, admitted_at=earlier, cancel_requested=True),
    ]
    starting = _job(JobState.STARTING, "just-launched", placed=PLACED, admitted_at=since)

    assert [job.id for job in quiet if news(job) is not News.NONE] == []
    assert [job.id for job in work if news(job) is News.WORK] == [job.id for job in work]
    assert news(starting) is News.STARTING


class BlockingBackend(SimulatedBackend):
    """A backend whose status call blocks its thread, as slow database work in a cycle does."""

    polls = 0

    async def status(self, job_id: str) -> RunStatus:
        time.sleep(0.3)  # noqa: ASYNC251 - blocking on purpose: what the test is about
        self.polls += 1
        return await super().status(job_id)


def test_a_slow_cycle_never_blocks_the_web_servers_event_loop(fresh_database_url: str) -> None:
    engine = make_engine(fresh_database_url)
    factory = session_factory(engine)
    with transaction(factory) as session:
        seed_demo(Books(session), demo_pool(datetime.now(UTC)))
        submit(
            Books(session),
            JobSpec("kaist-nlp", "seoyeon.lee", "slow", "python train.py", 1, 600, ("h100-80g",)),
            max_time_limit_seconds=3600,
        )
    backend = BlockingBackend(lambda: datetime.now(UTC), {"h100-80g": (2, 8)})
    thread = SchedulerThread(
        engine, {"national-daejeon": backend}, SchedulerSettings(cycle_seconds=0.05)
    )

    async def longest_stall_while_scheduling() -> tuple[float, int]:
        thread.start()
        longest = 0.0
        last = started = time.monotonic()
        while last < started + 1.5:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            longest, last = max(longest, now - last), now
        polls = backend.polls
        thread.stop()
        await thread.join()
        return longest, polls

    longest, polls = asyncio.run(longest_stall_while_scheduling())
    assert polls >= 2  # the scheduler ran: it launched the job and polled it, blocking
    # each poll blocks its thread for 0.3 s; on this loop, no 10 ms sleep may take that long
    assert longest < 0.25
    assert not thread.running
    engine.dispose()
