"""Benchmark: one whole scheduling cycle (``Scheduler.run_once``) over a large queue, in a database.

``bench.admission`` times the pure decision core; this times what production runs every cycle,
database included: read the pool, rank and decide the whole queue, hold credits for each
admission, write every waiting job's reason, position and estimated start, dispatch the admitted
jobs and poll them (steps 1-7 of ``scheduler.cycle``). The pool is ``bench.admission``'s seeded
national pool at a smaller default scale (100 organizations, 500 projects), written into a fresh
database through the repositories and the ledger's own posting rules: each project is awarded
``--credits-multiplier`` (10) times its unspent credits there plus what it spent, and has spent
that part (hold + charge entries at past times, so fair share sees decayed usage). Twenty
clusters hold 10,000 GPUs on 8-GPU nodes, every GPU free at the start, each cluster backed by a
``SimulatedBackend`` on an injected clock (jobs run until cancelled). ``--jobs`` jobs are queued.

Three cycles are timed, each one default cycle pause (2 s) after the last: the first admits
until nothing more fits (capacity, credits, budgets, borrowing limits, data-class sites) and
leaves the rest waiting with reasons, positions and ETAs, then dispatches and polls what it
admitted; the second sees the admitted jobs run, and rewrites the waiting jobs whose place
changed (the jobs ahead of them were admitted); the third is the steady state: nothing the
queue's decisions depend on changed since the second (no submission, ending, ledger entry or
catalogue change; jobs seen running change no decision), so the last decisions stand without
reading the queue, every running job is polled, and nothing needs writing.
Building the pool is not timed. The runs use a fresh SQLite file, and also a fresh schema in
PostgreSQL when ``GPUPOOL_BENCH_DATABASE_URL`` is set (dropped afterwards; its
metrics are named ``scheduler_pg_...``).

Run from the repository root::

    python -m bench.cycle [--jobs 10000] [--projects 500] [--organizations 100]
                          [--gpus 10000] [--credits-multiplier 10] [--seed 2025] [--profile]

It prints ``BENCH <metric>=<value> <unit>`` lines (first-cycle time, admissions and decisions
per second of it, the time of each step, the steady-state cycle time, and the GPUs the first
cycle leaves idle while a job that could use them waits), the counts, and the most common wait
reasons. ``--profile`` then runs the cycles again on a fresh database (PostgreSQL when one is
named, else SQLite) under ``cProfile`` and prints the top functions of each.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import random
import re
import resource
import shutil
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Coroutine, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Engine, text

from bench.admission import FLAVORS, NOW, RATES, Pool, Scale, build_pool
from jobs.model import Job, JobSpec, JobState
from jobs.repository import JobRepository
from quotas.accounts import AccountTree
from quotas.admission import Admit, JobRequest, Snapshot, decide
from quotas.db.migrate import upgrade
from quotas.db.repositories import AccountRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import quarter_of
from quotas.errors import BudgetExhausted
from quotas.funding import Funder, FunderKind
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.ledger import Actor, Ledger, Posting
from quotas.quantities import Credits, Rate
from quotas.service import Books
from scheduler.backends.base import Backend
from scheduler.backends.simulated import SimulatedBackend
from scheduler.cycle import CycleReport, Scheduler
from scheduler.settings import SchedulerSettings
from scheduler.snapshot import read_pool

POSTGRES_ENV = "GPUPOOL_BENCH_DATABASE_URL"
FUNDER = "bench-treasury"
ACTOR = "bench"
STEPS = ("admit", "dispatch", "reconcile")
NAMES_AND_NUMBERS = re.compile(r"[\w.:-]*\d[\w.:-]*")


class FixedClock:
    """The scheduler's clock: stands still unless advanced."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Options:
    seed: int
    credits_multiplier: int
    steady_after: float


@dataclass
class CycleRun:
    seconds: float
    report: CycleReport
    steps: dict[str, float] = field(default_factory=dict)

    def describe(self) -> str:
        report = self.report
        steps = ", ".join(f"{step} {self.steps.get(step, 0.0):.2f} s" for step in STEPS)
        queue = f"{report.waiting} waiting" if report.decided else "queue unchanged, not re-decided"
        return (
            f"{self.seconds:.2f} s; {len(report.admitted)} admitted, {queue}, "
            f"{len(report.rejected)} rejected, {len(report.dispatched)} dispatched, "
            f"{len(report.finished)} finished; steps: {steps}"
        )


# -- databases ----------------------------------------------------------------------------------


@contextmanager
def sqlite_database(directory: Path) -> Iterator[str]:
    yield f"sqlite:///{directory / f'cycle-{uuid.uuid4().hex[:8]}.db'}"


@contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A new schema in the database at ``base_url``, dropped afterwards (as the tests do it)."""
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = make_engine(base_url)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    separator = "&" if "?" in base_url else "?"
    try:
        yield f"{base_url}{separator}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


# -- writing the pool ---------------------------------------------------------------------------


def _top_down(tree: AccountTree) -> list[str]:
    """Account names, parents before children."""
    order, pending = [], [tree.root.name]
    while pending:
        name = pending.pop(0)
        order.append(name)
        pending.extend(child.name for child in tree.children(name))
    return order


def write_pool(
    engine: Engine, pool: Pool, seed: int, credits_multiplier: int = 1
) -> dict[str, int]:
    """Write the pool's books, clusters and queue into the (migrated, empty) database.

    Each project is awarded ``credits_multiplier`` times its unspent credits in the pool, plus
    what it has spent.
    """
    rng = random.Random(seed)
    snapshot = pool.snapshot
    period = quarter_of(NOW)
    counts: Counter[str] = Counter()
    factory = session_factory(engine)
    with transaction(factory) as session:
        books = Books(session, lambda: NOW)
        for flavor in FLAVORS.values():
            books.add_flavor(flavor, "bench")
        books.publish_rate_card(
            {name: Rate.of(rate) for name, rate in RATES.items()}, period.starts_at, ACTOR
        )
        books.add_period(period)
        books.funding.add_funder(Funder(FUNDER, "Bench treasury", FunderKind.MINISTRY))
        # The tree, parents first, straight through the repository (Books.add_account
        # re-validates the whole tree on every call: quadratic for a large pool).
        accounts = AccountRepository(session)
        for name in _top_down(snapshot.tree):
            account = snapshot.tree[name]
            accounts.save(account)
            if account.budget is not None:
                accounts.set_budget(name, period.name, account.budget)
        counts["accounts"] = len(snapshot.tree.accounts)

        # Credits: one contribution, one appropriation per program, an award per project.
        tree = books.tree(period.name)
        awarded = {
            project.name: snapshot.available[project.name].milli * credits_multiplier
            + snapshot.used[project.name].milli
            for project in tree.projects()
        }
        per_program: Counter[str] = Counter()
        for project, milli in awarded.items():
            per_program[tree.path(project)[1].name] += milli
        books.contribute(
            FUNDER, period.name, Credits(sum(awarded.values())), ACTOR, "bench contribution"
        )
        for program, milli in sorted(per_program.items()):
            books.appropriate(program, period.name, Credits(milli), ACTOR, "bench appropriation")
        # Hundreds of awards and past charges: computed by the ledger's own posting rules
        # against a running balance, appended in bulk (each Books call re-reads tree and
        # balances).
        balances = books.ledger.balances(period.name)
        ledger = Ledger(tree, balances, period.name)
        postings: list[Posting] = []
        for project, milli in awarded.items():
            if milli:
                made = ledger.award(
                    tree.path(project)[1].name, project, Credits(milli), Actor(ACTOR, "award")
                )
                balances.apply(made)
                postings.extend(made)
        books.ledger.append(postings, period.starts_at)
        counts["ledger entries"] += len(postings)
        for project in sorted(awarded):
            spent = snapshot.used[project]
            if not spent:
                continue
            job = f"history-{project}"
            try:
                held = ledger.hold(project, job, spent, Actor(ACTOR, "past work"))
            except BudgetExhausted:
                counts["histories over budget (skipped)"] += 1
                continue
            balances.apply(held)
            charged = ledger.charge(project, job, spent, Actor(ACTOR, "past work"))
            balances.apply(charged)
            at = NOW - timedelta(hours=rng.uniform(1, 24 * 50))
            books.ledger.append([*held, *charged], at)
            counts["ledger entries"] += len(held) + len(charged)

        for cluster in snapshot.clusters:
            books.clusters.add(
                ClusterSpec(
                    cluster.name,
                    BackendKind.KUBERNETES,  # multi-node: gang jobs can be placed
                    cluster.site,
                    tuple(
                        Inventory(group.flavor, group.nodes, group.gpus_per_node)
                        for group in cluster.groups
                        if group.nodes
                    ),
                )
            )

    with transaction(factory) as session:
        jobs = JobRepository(session)
        for request in pool.jobs:
            spec = JobSpec(
                project=request.project,
                submitter=ACTOR,
                name=request.id,
                entrypoint="python train.py",
                gpus=request.gpus,
                time_limit_seconds=request.time_limit_seconds,
                flavors=request.flavors,
                min_memory_gb=request.min_memory_gb,
                priority=request.priority,
                data_class=request.data_class,
            )
            jobs.add(Job(request.id, spec, JobState.QUEUED, request.submitted_at))
    counts["queued jobs"] = len(pool.jobs)
    return dict(counts)


def simulated_backends(pool: Pool, clock: FixedClock) -> dict[str, Backend]:
    return {
        cluster.name: SimulatedBackend(
            clock,
            {group.flavor: (group.nodes, group.gpus_per_node) for group in cluster.groups},
        )
        for cluster in pool.snapshot.clusters
    }


# -- the timed cycles ---------------------------------------------------------------------------


def timed_steps(scheduler: Scheduler, steps: dict[str, float]) -> None:
    """Time each step of ``run_once`` (wrapped as instance attributes; the class is untouched)."""
    admit = scheduler.admit

    def timed_admit(report: CycleReport) -> None:
        start = time.perf_counter()
        try:
            admit(report)
        finally:
            steps["admit"] = time.perf_counter() - start

    def timed_async(
        name: str, step: Callable[[CycleReport], Coroutine[Any, Any, None]]
    ) -> Callable[[CycleReport], Coroutine[Any, Any, None]]:
        async def run(report: CycleReport) -> None:
            start = time.perf_counter()
            try:
                await step(report)
            finally:
                steps[name] = time.perf_counter() - start

        return run

    scheduler.admit = timed_admit  # type: ignore[method-assign]
    scheduler.dispatch = timed_async("dispatch", scheduler.dispatch)  # type: ignore[method-assign,assignment]
    scheduler.reconcile = timed_async("reconcile", scheduler.reconcile)  # type: ignore[method-assign,assignment]


def run_cycle(scheduler: Scheduler, steps: dict[str, float]) -> CycleRun:
    steps.clear()
    start = time.perf_counter()
    report = asyncio.run(scheduler.run_once())
    return CycleRun(time.perf_counter() - start, report, dict(steps))


def job_states(engine: Engine) -> tuple[Counter[str], Counter[str]]:
    """Jobs per state, and waiting jobs per reason (names and numbers masked)."""
    with transaction(session_factory(engine)) as session:
        jobs = JobRepository(session).find()
    reasons = Counter(
        NAMES_AND_NUMBERS.sub("#", job.reason) for job in jobs if job.state is JobState.QUEUED
    )
    return Counter(job.state.value for job in jobs), reasons


def idle_gpus(snapshot: Snapshot, waiting: Iterable[JobRequest]) -> int:
    """Free GPUs on which some waiting job would fit now, reservations aside.

    A waiting job counts where ``decide`` alone would admit it on the snapshot as it stands (so
    on a flavor it accepts, on a cluster open to it, within its credits, budgets and borrowing
    limit); a free GPU counts if such a job fits on its node, or, for a job of whole nodes, if
    the node is one of enough whole free nodes. The floor is 0.
    """
    sizes: defaultdict[tuple[str, str], set[int]] = defaultdict(set)
    for request in waiting:
        decision = decide(snapshot, request)
        if isinstance(decision, Admit):
            for placement in decision.placements:
                sizes[(placement.cluster, placement.flavor)].add(request.gpus)
    idle = 0
    for cluster in snapshot.clusters:
        for group in cluster.groups:
            fitting = sizes.get((cluster.name, group.flavor))
            if not fitting:
                continue
            per_node = group.gpus_per_node
            smallest = min(fitting)
            gang = min((gpus for gpus in fitting if gpus > per_node), default=None)
            whole = group.free.count(per_node)
            gang_fits = gang is not None and whole * per_node >= gang
            idle += sum(
                free for free in group.free if smallest <= free or (gang_fits and free == per_node)
            )
    return idle


def idle_after(engine: Engine, clock: FixedClock, clusters: Iterable[str]) -> int:
    """``idle_gpus`` on the pool as a cycle left it (read afresh, not timed)."""
    half_life = SchedulerSettings().fair_share_half_life_hours * 3600
    with transaction(session_factory(engine)) as session:
        view = read_pool(Books(session, clock), clock(), half_life, clusters)
    waiting = [job.request() for job in view.queued]
    return idle_gpus(view.snapshot, waiting)


def bench_database(label: str, url: str, pool: Pool, options: Options) -> None:
    engine = make_engine(url)
    try:
        upgrade(engine)
        built = time.perf_counter()
        counts = write_pool(engine, pool, options.seed, options.credits_multiplier)
        build_s = time.perf_counter() - built
        print(
            f"[{label}] pool written in {build_s:.1f} s (not timed): "
            + ", ".join(f"{count} {what}" for what, count in counts.items())
        )
        clock = FixedClock(NOW)
        steps: dict[str, float] = {}
        scheduler = Scheduler(
            session_factory(engine), simulated_backends(pool, clock), SchedulerSettings(), clock
        )
        timed_steps(scheduler, steps)
        first = run_cycle(scheduler, steps)
        idle = idle_after(engine, clock, scheduler.backends)
        clock.advance(options.steady_after)
        settling = run_cycle(scheduler, steps)
        clock.advance(options.steady_after)
        second = run_cycle(scheduler, steps)
        states, reasons = job_states(engine)
    finally:
        engine.dispose()

    report = first.report
    decided = len(report.admitted) + report.waiting + len(report.rejected)
    admitted = set(report.admitted)
    admitted_gpus = sum(job.gpus for job in pool.jobs if job.id in admitted)
    print(
        f"[{label}] first cycle: {first.describe()} ({admitted_gpus} GPUs admitted, {idle} GPUs "
        "left idle that a waiting job could use)"
    )
    print(f"[{label}] second cycle ({options.steady_after:g} s later): {settling.describe()}")
    print(f"[{label}] steady cycle ({options.steady_after:g} s later): {second.describe()}")
    print(f"[{label}] jobs by state after the cycles: {dict(sorted(states.items()))}")
    for reason, count in reasons.most_common(6):
        print(f"[{label}]   waiting: {count:>6} x {reason[:150]}")
    name = "scheduler" if label == "sqlite" else f"scheduler_{label}"
    print(f"BENCH {name}_cycle_s={first.seconds:.3f} s")
    print(f"BENCH {name}_admissions_per_s={len(report.admitted) / first.seconds:.0f} 1/s")
    print(f"BENCH {name}_decisions_per_s={decided / first.seconds:.0f} 1/s")
    for step in STEPS:
        print(f"BENCH {name}_{step}_step_s={first.steps.get(step, 0.0):.3f} s")
    print(f"BENCH {name}_second_cycle_s={settling.seconds:.3f} s")
    print(f"BENCH {name}_steady_cycle_s={second.seconds:.3f} s")
    print(f"BENCH {name}_idle_gpus_first_cycle={idle} GPUs")


def profile_cycles(directory: Path, pool: Pool, options: Options, top: int) -> None:
    """The cycles again on a fresh database (PostgreSQL when one is named, else SQLite), each
    under cProfile; prints the top."""
    profiles: list[tuple[str, cProfile.Profile]] = []
    postgres = os.environ.get(POSTGRES_ENV)
    database = "postgresql" if postgres else "sqlite"
    fresh = postgres_database(postgres) if postgres else sqlite_database(directory)
    with fresh as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            write_pool(engine, pool, options.seed, options.credits_multiplier)
            clock = FixedClock(NOW)
            scheduler = Scheduler(
                session_factory(engine), simulated_backends(pool, clock), SchedulerSettings(), clock
            )
            for label in ("first cycle", "second cycle", "steady cycle"):
                profiler = cProfile.Profile()
                profiler.enable()
                asyncio.run(scheduler.run_once())
                profiler.disable()
                profiles.append((label, profiler))
                clock.advance(options.steady_after)
        finally:
            engine.dispose()
    for label, profiler in profiles:
        stats = pstats.Stats(profiler)
        stats.strip_dirs()
        print(f"\n[profile] {label}, {database}: top {top} by cumulative time")
        stats.sort_stats("cumulative").print_stats(top)
        print(f"[profile] {label}, {database}: top {top} by own time")
        stats.sort_stats("tottime").print_stats(top)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cycle", description=__doc__)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=500)
    parser.add_argument("--organizations", type=int, default=100)
    parser.add_argument("--gpus", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument(
        "--steady-after",
        type=float,
        default=SchedulerSettings.model_fields["cycle_seconds"].default,
        help="seconds on the clock between the first and the second cycle",
    )
    parser.add_argument(
        "--credits-multiplier",
        type=int,
        default=10,
        help="award each project this many times its unspent credits in bench.admission's pool",
    )
    parser.add_argument("--profile", action="store_true", help="also profile both cycles")
    parser.add_argument("--profile-top", type=int, default=30)
    args = parser.parse_args(argv)
    scale = Scale(
        organizations=args.organizations, projects=args.projects, jobs=args.jobs, gpus=args.gpus
    )
    options = Options(args.seed, args.credits_multiplier, args.steady_after)
    pool = build_pool(scale, args.seed)
    gpus = sum(group.total_gpus for c in pool.snapshot.clusters for group in c.groups)
    print(
        f"pool: {scale.organizations} organizations, {scale.projects} projects, "
        f"{len(pool.snapshot.clusters)} clusters, {gpus} GPUs (all free), "
        f"{len(pool.jobs)} queued jobs"
    )
    directory = Path(tempfile.mkdtemp(prefix="gpupool-bench-cycle-"))
    try:
        with sqlite_database(directory) as url:
            bench_database("sqlite", url, pool, options)
        postgres = os.environ.get(POSTGRES_ENV)
        if postgres:
            with postgres_database(postgres) as url:
                bench_database("pg", url, pool, options)
        else:
            print(f"(set {POSTGRES_ENV} to also run on PostgreSQL)")
        # the whole bench process: the scheduler's cycles plus the pool and queue it generated
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"BENCH scheduler_peak_rss_mb={peak:.0f} MB")
        if args.profile:
            profile_cycles(directory, pool, options, args.profile_top)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
