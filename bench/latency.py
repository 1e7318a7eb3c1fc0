"""Benchmark: submit-to-running latency on an idle pool, gpupool against Ray on its own.

One run starts gpupool's embedded Ray cluster (a local head with 16 ``h100-80g``, 16
``a100-80g`` and 32 ``v100-32g`` logical GPUs, the demo pool's inventory) and a fresh SQLite
database seeded with the demo pool on the real clock, then measures, alternating, ``--runs``
times each (after ``--warmup`` unrecorded rounds of each):

* direct: ``RayBackend.submit`` of a 1-GPU ``h100-80g`` job running
  ``python -c "import time; time.sleep(2)"``, then ``status`` every ``--poll`` seconds until Ray
  says ``RUNNING``; latency = first ``RUNNING`` seen - start of the submit call;
* gpupool: the same job through the front door (``jobs.cases.submit``, committed), with the
  real scheduler loop (``scheduler.loop.run_scheduler``, in its own thread, mapped to the
  embedded cluster by ``build_backends``) pausing ``--cycle-seconds`` between cycles (default
  0.05 s, a tight loop: the scheduler's own overhead); the job's row is read every ``--poll``
  seconds until it is ``RUNNING``; latency = first ``RUNNING`` seen - start of the submit.

Each job is cancelled as soon as it was seen running, and the next round starts once it has
ended, so every round finds the pool idle. The scheduler runs only during the gpupool rounds, so
the direct rounds share the machine with nothing of gpupool's; a gpupool round submits at a
random point of the scheduler's cycle, as a user would. In production the scheduler pauses
``SchedulerSettings.cycle_seconds`` (2 s) between cycles: a job then waits on average half a
pause for the cycle that admits and dispatches it, and since Ray takes a second or more to
start a job, the cycle that dispatched it still finds it pending and only the next one, a whole
pause later, records it running; expect about 1.5 x ``cycle_seconds`` more than measured with
the tight loop (``--cycle-seconds 2`` measures it). The Ray cluster is stopped at the end,
whatever happens, and the run checks that none of its processes is left.

Run from the repository root::

    python -m bench.latency [--runs 20] [--warmup 2] [--cycle-seconds 0.05] [--poll 0.01]

It prints ``BENCH <metric>=<value> <unit>`` lines: p50 and p90 of both latencies, and
``gpupool_overhead_p50_s``, the difference of the two p50s (target: at most 0.5 s), plus the
median time of each stage of the gpupool path, from the job's own events.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import random
import secrets
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from jobs.cases import request_cancel, submit
from jobs.lifecycle import RunState
from jobs.model import JobSpec, JobState
from jobs.repository import JobRepository
from quotas.clock import utc_now
from quotas.db.migrate import upgrade
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.flavors import Flavor
from quotas.inventory import ClusterSpec
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.base import LaunchSpec
from scheduler.backends.ray import RayBackend
from scheduler.backends.registry import Reachable, build_backends, close_backends
from scheduler.embedded import EmbeddedRayCluster, RayEndpoint
from scheduler.loop import run_scheduler
from scheduler.settings import SchedulerSettings

INVENTORY = {"h100-80g": 16, "a100-80g": 16, "v100-32g": 32}
ENTRYPOINT = 'python -c "import time; time.sleep(2)"'
FLAVOR = "h100-80g"
PROJECT = "kaist-nlp"
SUBMITTER = "seoyeon.lee"
TIME_LIMIT_SECONDS = 600
ROUND_TIMEOUT_SECONDS = 120.0
TARGET_OVERHEAD_SECONDS = 0.5


class BenchError(RuntimeError):
    """A round did not reach the state it waited for."""


def _alive(pid: int) -> bool:
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def percentile(values: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


# -- direct to Ray ------------------------------------------------------------------------------


async def direct_round(backend: RayBackend, poll: float) -> float:
    """Submit straight to Ray; seconds until Ray says RUNNING. The job is stopped afterwards."""
    job_id = f"bench-direct-{secrets.token_hex(6)}"
    spec = LaunchSpec(
        job_id=job_id,
        project="bench",
        entrypoint=ENTRYPOINT,
        gpus=1,
        flavor=FLAVOR,
        time_limit_seconds=TIME_LIMIT_SECONDS,
    )
    start = time.perf_counter()
    await backend.submit(spec)
    while True:
        status = await backend.status(job_id)
        if status.state is RunState.RUNNING or status.state is RunState.SUCCEEDED:
            latency = time.perf_counter() - start
            break
        if status.state.is_terminal or status.state is RunState.NOT_FOUND:
            raise BenchError(f"direct job {job_id} ended as {status.state}: {status.message}")
        if time.perf_counter() - start > ROUND_TIMEOUT_SECONDS:
            raise BenchError(f"direct job {job_id} never ran")
        await asyncio.sleep(poll)
    await backend.cancel(job_id)
    deadline = time.perf_counter() + ROUND_TIMEOUT_SECONDS
    while not (await backend.status(job_id)).state.is_terminal:
        if time.perf_counter() > deadline:
            raise BenchError(f"direct job {job_id} did not stop")
        await asyncio.sleep(poll)
    return latency


# -- through gpupool ----------------------------------------------------------------------------


class SchedulerThread:
    """``run_scheduler`` in a thread of its own, with its own event loop, until stopped."""

    def __init__(
        self,
        url: str,
        clusters: list[ClusterSpec],
        flavors: dict[str, Flavor],
        ray: RayEndpoint,
        settings: SchedulerSettings,
    ) -> None:
        self.url = url
        self.clusters = clusters
        self.flavors = flavors
        self.ray = ray
        self.settings = settings
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._ready.clear()
        self._error = None
        self._thread = threading.Thread(target=self._run, name="gpupool-scheduler", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout=30):
            raise BenchError("the scheduler thread did not start")

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as error:  # handed to the main thread by stop()
            self._error = error
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        engine = make_engine(self.url)
        backends = build_backends(self.clusters, self.flavors, Reachable(self.ray))
        self._ready.set()
        try:
            await run_scheduler(engine, backends, self.settings, stop=self._stop)
        finally:
            await close_backends(backends)
            engine.dispose()

    def stop(self) -> None:
        if self._thread is None:
            return
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)
        if self._thread.is_alive():
            raise BenchError("the scheduler thread did not stop")
        self._thread = None
        if self._error is not None:
            raise BenchError(f"the scheduler thread failed: {self._error!r}") from self._error


@dataclass(frozen=True)
class GpupoolRound:
    latency: float
    stages: dict[str, float]
    """Seconds from each of the job's recorded state changes to the next."""


def wait_for_job(
    reader: sessionmaker[Session], job_id: str, states: set[JobState], poll: float
) -> JobState:
    deadline = time.perf_counter() + ROUND_TIMEOUT_SECONDS
    while True:
        with reader() as session:
            state = JobRepository(session).get(job_id).state
        if state in states:
            return state
        if state.is_terminal:
            raise BenchError(f"gpupool job {job_id} ended as {state}")
        if time.perf_counter() > deadline:
            raise BenchError(f"gpupool job {job_id} is still {state}")
        time.sleep(poll)


def gpupool_round(
    factory: sessionmaker[Session],
    reader: sessionmaker[Session],
    settings: SchedulerSettings,
    poll: float,
) -> GpupoolRound:
    """Submit through gpupool; seconds until its database says RUNNING. Cancelled afterwards."""
    spec = JobSpec(
        project=PROJECT,
        submitter=SUBMITTER,
        name=f"bench-{secrets.token_hex(4)}",
        entrypoint=ENTRYPOINT,
        gpus=1,
        time_limit_seconds=TIME_LIMIT_SECONDS,
        flavors=(FLAVOR,),
    )
    start = time.perf_counter()
    with transaction(factory) as session:
        job, _quote = submit(Books(session), spec, int(settings.max_time_limit_hours * 3600))
    # A job that has already ended went through RUNNING in the same transaction.
    wait_for_job(reader, job.id, {JobState.RUNNING, JobState.SUCCEEDED}, poll)
    latency = time.perf_counter() - start
    with transaction(factory) as session:
        request_cancel(Books(session), job.id, SUBMITTER)
    wait_for_job(reader, job.id, {JobState.CANCELLED, JobState.SUCCEEDED}, poll)
    with reader() as session:
        events = JobRepository(session).events(job.id)
    stages: dict[str, float] = {}
    for before, after in pairwise(events):
        stages[f"{after.from_state}_to_{after.to_state}"] = (after.at - before.at).total_seconds()
        if after.to_state is not JobState.STARTING and after.from_state is JobState.STARTING:
            break  # what follows comes after the latency measured
    return GpupoolRound(latency, stages)


# -- the run ------------------------------------------------------------------------------------


def prepare_database(directory: Path) -> tuple[str, Engine]:
    url = f"sqlite:///{directory / 'gpupool.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with transaction(session_factory(engine)) as session:
        seed_demo(Books(session), demo_pool(utc_now()))
    return url, engine


def report(name: str, values: Sequence[float]) -> None:
    print(f"BENCH {name}_p50_s={statistics.median(values):.3f} s")
    print(f"BENCH {name}_p90_s={percentile(values, 0.9):.3f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__)
    parser.add_argument("--runs", type=int, default=20, help="recorded rounds of each")
    parser.add_argument("--warmup", type=int, default=2, help="unrecorded rounds of each first")
    parser.add_argument(
        "--cycle-seconds", type=float, default=0.05, help="the scheduler's pause between cycles"
    )
    parser.add_argument("--poll", type=float, default=0.01, help="seconds between status reads")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    settings = SchedulerSettings(cycle_seconds=args.cycle_seconds)

    ray_dir = Path(tempfile.mkdtemp(prefix="gpb"))  # short: Ray's socket paths are limited
    db_dir = Path(tempfile.mkdtemp(prefix="gpupool-bench-latency-"))
    cluster = EmbeddedRayCluster(INVENTORY, ray_dir)
    ray_pids: dict[int, str] = {}
    scheduler: SchedulerThread | None = None
    engine: Engine | None = None
    reader_engine: Engine | None = None
    try:
        started = time.perf_counter()
        cluster.start()
        ray_pids = cluster.pids()
        print(
            f"Ray cluster at {cluster.address} ({cluster.num_gpus} logical GPUs: "
            + ", ".join(f"{count} {name}" for name, count in INVENTORY.items())
            + f") started in {time.perf_counter() - started:.1f} s"
        )
        url, engine = prepare_database(db_dir)
        factory = session_factory(engine)
        # Rows are polled on a plain connection: a read needs no write lock, so polling never
        # holds up the scheduler's writes (make_engine's transactions begin IMMEDIATE).
        reader_engine = create_engine(url)
        reader = sessionmaker(bind=reader_engine)
        with transaction(factory) as session:
            books = Books(session)
            clusters, flavors = books.clusters.all(), books.flavors.all()
        scheduler = SchedulerThread(url, clusters, flavors, cluster.endpoint, settings)
        resources = {name: flavor.ray_resource for name, flavor in flavors.items()}
        print(
            f"scheduler: run_scheduler with cycle_seconds={settings.cycle_seconds:g} "
            f"(production default {SchedulerSettings.model_fields['cycle_seconds'].default:g}); "
            f"polling every {args.poll:g} s; {args.warmup} warm-up + {args.runs} rounds of each"
        )

        direct: list[float] = []
        through: list[GpupoolRound] = []
        with asyncio.Runner() as runner:
            backend = RayBackend(
                cluster.address, auth_token=cluster.auth_token, flavor_resources=resources
            )
            try:
                for round_number in range(args.warmup + args.runs):
                    seconds = runner.run(direct_round(backend, args.poll))
                    scheduler.start()
                    try:
                        # Past the first (idle) cycle, then submit at a random point of the
                        # cycle, as a user would: never in step with the scheduler's pauses.
                        time.sleep(0.2 + random.uniform(0, settings.cycle_seconds))
                        result = gpupool_round(factory, reader, settings, args.poll)
                    finally:
                        scheduler.stop()
                    recorded = round_number >= args.warmup
                    if recorded:
                        direct.append(seconds)
                        through.append(result)
                    print(
                        f"round {round_number + 1 - args.warmup if recorded else 'warm-up'}: "
                        f"direct {seconds:.3f} s, gpupool {result.latency:.3f} s"
                    )
            finally:
                runner.run(backend.close())
    finally:
        if scheduler is not None:
            scheduler.stop()
        if reader_engine is not None:
            reader_engine.dispose()
        if engine is not None:
            engine.dispose()
        ray_pids.update(cluster.pids())
        cluster.stop()
        shutil.rmtree(ray_dir, ignore_errors=True)
        shutil.rmtree(db_dir, ignore_errors=True)
        left = sorted(pid for pid in ray_pids if _alive(pid))
        print(
            f"Ray cluster stopped: {len(ray_pids)} processes seen, "
            + (f"STILL ALIVE: {left}" if left else "none left")
        )

    gpupool = [result.latency for result in through]
    stages: dict[str, list[float]] = {}
    for result in through:
        for name, seconds in result.stages.items():
            stages.setdefault(name, []).append(seconds)
    print(
        "gpupool stages (median, from the job's events): "
        + ", ".join(f"{name} {statistics.median(values):.3f} s" for name, values in stages.items())
    )
    report("ray_direct_submit_to_running", direct)
    report("gpupool_submit_to_running", gpupool)
    overhead = statistics.median(gpupool) - statistics.median(direct)
    print(f"BENCH gpupool_overhead_p50_s={overhead:.3f} s")
    verdict = "within" if overhead <= TARGET_OVERHEAD_SECONDS else "OVER"
    print(f"overhead {verdict} the {TARGET_OVERHEAD_SECONDS:g} s target")


if __name__ == "__main__":
    main()
