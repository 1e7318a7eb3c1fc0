"""A scheduler process for the crash tests: runs cycles against real Ray, and may SIGKILL itself.

    python tests/scheduler/crash_scheduler.py DATABASE_URL RAY_ADDRESS
        [--crash-step STEP --crash-at N] [--deadline SECONDS] [--pause SECONDS]

It builds the scheduler as ``gpupool serve`` does (the books' Ray clusters, those without an
address served by ``RAY_ADDRESS``) and takes the scheduler lock first, as the loop does. With
``--crash-step`` it kills itself with SIGKILL (no cleanup, no commit, no ``finally``) at the
``N``-th time the cycle reaches that step; it exits 3 if the step never came before the deadline.
The steps are the scheduler's own ``on_step`` boundaries, plus one the script adds around the
backend: ``cancelled``, right after ``backend.cancel`` returned (Ray was asked to stop a job) and
before the scheduler records why it stopped it.
Without it, it runs cycles until every job is terminal (exit 0) or the deadline passes (exit 4).
It exits 5 if it cannot take the scheduler lock (the killed scheduler's lock was not released).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jobs.lifecycle import RunStatus
from jobs.model import JobState
from jobs.repository import JobRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.service import Books
from scheduler.backends.base import Backend, FlavorCapacity, GpuAccounting, LaunchSpec
from scheduler.backends.registry import Reachable, build_backends, close_backends
from scheduler.cycle import Scheduler
from scheduler.embedded import RayEndpoint
from scheduler.lock import SchedulerLock
from scheduler.settings import SchedulerSettings

SCHEDULER_STEPS = ("admitted", "dispatching", "dispatched", "polled", "settling")
BACKEND_STEPS = ("cancelled",)
STEPS = SCHEDULER_STEPS + BACKEND_STEPS
NEVER_CRASHED, NOT_DONE, NO_LOCK = 3, 4, 5
LIVE = [state for state in JobState if not state.is_terminal]


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("database_url")
    parser.add_argument("ray_address")
    parser.add_argument("--ray-token-file", help="where the Ray cluster's auth token is")
    parser.add_argument("--crash-step", choices=STEPS)
    parser.add_argument("--crash-at", type=int, default=1, help="which occurrence of the step")
    parser.add_argument("--deadline", type=float, default=60.0, help="seconds")
    parser.add_argument("--pause", type=float, default=0.2, help="seconds between cycles")
    return parser.parse_args()


class Crasher:
    """``on_step``: SIGKILL this process at the ``at``-th occurrence of ``step``."""

    def __init__(self, step: str | None, at: int) -> None:
        self.step = step
        self.at = at
        self.seen = 0

    def __call__(self, step: str) -> None:
        if step != self.step:
            return
        self.seen += 1
        if self.seen == self.at:
            print(f"crash_scheduler: SIGKILL at {step} #{self.seen}", file=sys.stderr, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)


class CrashingBackend:
    """A backend that reports ``cancelled`` to the crasher once a ``cancel`` call returned."""

    def __init__(self, inner: Backend, on_step: Callable[[str], None]) -> None:
        self.inner = inner
        self.on_step = on_step

    async def submit(self, spec: LaunchSpec) -> None:
        await self.inner.submit(spec)

    async def status(self, job_id: str) -> RunStatus:
        return await self.inner.status(job_id)

    async def cancel(self, job_id: str) -> None:
        await self.inner.cancel(job_id)
        self.on_step("cancelled")

    async def logs(self, job_id: str) -> str:
        return await self.inner.logs(job_id)

    async def capacity(self) -> Mapping[str, FlavorCapacity]:
        return await self.inner.capacity()

    async def gpus_in_use(self) -> Mapping[str, float]:
        assert isinstance(self.inner, GpuAccounting)
        return await self.inner.gpus_in_use()


async def main(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.deadline
    engine = make_engine(args.database_url)
    lock = SchedulerLock(engine)
    while not lock.try_acquire():
        if time.monotonic() > deadline:
            print("crash_scheduler: the scheduler lock was never free", file=sys.stderr)
            return NO_LOCK
        await asyncio.sleep(0.1)
    factory = session_factory(engine)
    with transaction(factory) as session:
        books = Books(session)
        clusters = books.clusters.all()
        flavors = books.flavors.all()
    token = Path(args.ray_token_file).read_text() if args.ray_token_file else None  # noqa: ASYNC240
    backends = build_backends(clusters, flavors, Reachable(RayEndpoint(args.ray_address, token)))
    crasher = Crasher(args.crash_step, args.crash_at)
    wrapped = {id(inner): CrashingBackend(inner, crasher) for inner in backends.values()}
    # one launch at a time, so "the N-th launch" names one moment (the crash windows)
    settings = SchedulerSettings(
        charge_interval_seconds=1, cycle_seconds=args.pause, dispatch_concurrency=1
    )
    scheduler = Scheduler(
        factory,
        {cluster: wrapped[id(inner)] for cluster, inner in backends.items()},
        settings,
        on_step=crasher,
    )
    try:
        while True:
            await scheduler.run_once()
            if args.crash_step is None:
                with transaction(factory) as session:
                    if not JobRepository(session).find(LIVE):
                        return 0
            if time.monotonic() > deadline:
                if args.crash_step is not None:
                    print(f"crash_scheduler: never reached {args.crash_step}", file=sys.stderr)
                    return NEVER_CRASHED
                return NOT_DONE
            await asyncio.sleep(settings.cycle_seconds)
    finally:
        await close_backends(backends)
        lock.release()
        engine.dispose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    sys.exit(asyncio.run(main(arguments())))
