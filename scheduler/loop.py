"""The scheduler as a long-running loop: one writer at a time, a cycle every few seconds.

On start it takes the scheduler lock (a second replica waits for it), then runs cycles until
asked to stop. Between cycles it pauses ``cycle_seconds``, but looks every ``wake_seconds`` for
news (a job submitted, a job starting on its backend, a cancel asked for) and then cycles at
once, so a job on an idle pool starts within a fraction of a second. There is no separate
recovery pass: every cycle re-reads every non-terminal job and asks its backend, so after a
crash admitted jobs are dispatched (idempotently), running ones re-adopted and finished ones
settled exactly once. Every ``package_cleanup_seconds`` it also removes uploaded packages no
job needs any more (``scheduler.package_cleanup``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from quotas.clock import Clock, utc_now
from quotas.db.repositories import JobRepository
from quotas.db.session import session_factory, transaction
from scheduler.backends.base import Backend
from scheduler.cycle import Scheduler
from scheduler.lock import SchedulerLock
from scheduler.package_cleanup import PackageCleanup
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)


async def run_scheduler(
    engine: Engine,
    backends: Mapping[str, Backend],
    settings: SchedulerSettings,
    stop: asyncio.Event,
    clock: Clock = utc_now,
) -> None:
    lock = SchedulerLock(engine)
    while not lock.try_acquire():
        log.info("another scheduler holds the lock; waiting")
        if await _wait(stop, settings.cycle_seconds):
            return
    factory = session_factory(engine)
    scheduler = Scheduler(factory, backends, settings, clock)
    cleanup = PackageCleanup(factory, settings, clock)
    try:
        while not stop.is_set():
            started = clock()
            try:
                report = await scheduler.run_once()
            except Exception:
                log.exception("scheduling cycle failed; retrying next cycle")
            else:
                for name in ("admitted", "rejected", "dispatched", "finished"):
                    for job_id in getattr(report, name):
                        log.info("%s %s", name, job_id)
            if cleanup.due():
                await asyncio.to_thread(cleanup.run)
            await _pause(stop, settings, factory, started)
    finally:
        lock.release()


async def _pause(
    stop: asyncio.Event,
    settings: SchedulerSettings,
    factory: sessionmaker[Session],
    since: datetime,
) -> None:
    """Wait for the next cycle: ``cycle_seconds``, or less when there is news."""
    waited = 0.0
    while waited < settings.cycle_seconds:
        step = min(settings.wake_seconds, settings.cycle_seconds - waited)
        if await _wait(stop, step):
            return
        waited += step
        with transaction(factory) as session:
            if JobRepository(session).news_since(since):
                return


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if asked to stop meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
