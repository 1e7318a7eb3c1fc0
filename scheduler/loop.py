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
import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from jobs.repository import JobRepository, News
from quotas.clock import Clock, utc_now
from quotas.db.session import session_factory, transaction
from quotas.flavors import Flavor
from quotas.inventory import ClusterSpec
from scheduler.backends.base import Backend
from scheduler.backends.registry import Reachable, build_backends, close_backends
from scheduler.cycle import CycleReport, Scheduler
from scheduler.embedded import RayEndpoint
from scheduler.lock import SchedulerLock
from scheduler.package_cleanup import PackageCleanup
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)


async def run_scheduler(
    engine: Engine,
    backends: Mapping[str, Backend],
    settings: SchedulerSettings,
    *,
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
            await _pause(stop, settings, factory, started, clock, scheduler)
    finally:
        lock.release()


async def _pause(
    stop: asyncio.Event,
    settings: SchedulerSettings,
    factory: sessionmaker[Session],
    since: datetime,
    clock: Clock,
    scheduler: Scheduler,
) -> None:
    """Wait for the next cycle: ``cycle_seconds``, or less when there is work. A job that was
    just launched is polled every ``wake_seconds`` meanwhile (the reconcile step only), so it is
    seen running at once without a whole cycle each time."""
    waited = 0.0
    watch = timedelta(seconds=settings.starting_watch_seconds)
    while waited < settings.cycle_seconds:
        step = min(settings.wake_seconds, settings.cycle_seconds - waited)
        if await _wait(stop, step):
            return
        waited += step
        with transaction(factory) as session:
            news = JobRepository(session).news_since(since, clock(), watch)
        if news is News.WORK:
            return
        if news is News.STARTING:
            try:
                await scheduler.reconcile(CycleReport())
            except Exception:
                log.exception("polling the jobs that start failed; the next cycle retries")


class SchedulerThread:
    """``run_scheduler`` on a thread of its own, with its own event loop.

    A cycle's database work blocks; on the web server's event loop it would stall every log
    stream and WebSocket for as long as a cycle takes. The thread owns the backends it is given
    from ``start`` on, and closes them when it stops.
    """

    def __init__(
        self,
        engine: Engine,
        backends: Mapping[str, Backend],
        settings: SchedulerSettings,
        clock: Clock = utc_now,
    ) -> None:
        self._run = partial(run_scheduler, engine, backends, settings, clock=clock)
        self._backends = backends
        self._thread = threading.Thread(target=self._main, name="gpupool-scheduler", daemon=True)
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    @classmethod
    def for_clusters(
        cls,
        engine: Engine,
        clusters: Iterable[ClusterSpec],
        flavors: Mapping[str, Flavor],
        embedded: RayEndpoint | None,
        settings: SchedulerSettings,
    ) -> SchedulerThread:
        """A scheduler for the clusters the books declare that this process can reach."""
        reachable = Reachable(embedded, settings.ray_tokens())
        return cls(engine, build_backends(clusters, flavors, reachable), settings)

    @property
    def clusters(self) -> int:
        """How many clusters it schedules onto."""
        return len(self._backends)

    def start(self) -> None:
        self._thread.start()
        self._started.wait()

    def _main(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        try:
            await self._run(stop=self._stop)
        except Exception:
            log.exception("the scheduler stopped")
        finally:
            await close_backends(self._backends)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        """Ask the loop to stop after the step it is in; ``join`` waits for it."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)

    async def join(self) -> None:
        """Wait, without blocking the caller's event loop, until the thread has ended."""
        await asyncio.to_thread(self._thread.join)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to ``seconds``; True if asked to stop meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True
