"""Crash and recovery: the scheduler is SIGKILLed mid-cycle, restarted, and nothing is lost.

Each case runs the real scheduler in a subprocess (``crash_scheduler.py``) against the session's
real Ray cluster and a fresh database, with three jobs: one that succeeds, one that exits with
code 2 and one that outlives its time limit. The first process kills itself with SIGKILL at the
N-th time the cycle reaches one step ("admitted": holds committed, nothing dispatched;
"dispatching": before Ray is asked for the N-th launch; "dispatched": Ray has N jobs, the books
do not know yet (they mark the launched jobs starting once the step has launched them all);
"polled": Ray's answer read, not applied; "settling": inside the settlement transaction;
"cancelled": Ray was just asked to stop a job, the reason is not recorded yet). What the crash
left is checked first, so each case is known to hit its window. A second process then runs until
every job is terminal, and:

* every job ended in the right state, through one admission (no requeue, no second attempt);
* every job ran exactly once on Ray: each entrypoint appends the submission id of its run (from
  the metadata Ray hands it) to a file, and Ray knows each job under its id, in the same state;
* the ledger sums exactly: per job, hold = charge + release, nothing left held, no refund, and the
  charges are exactly what the run cost from Ray's own start and end times, capped at the time
  limit (never charged twice, never for the time the scheduler was dead); for the whole period,
  the balances the database sums equal the balances derived entry by entry, and each funder's
  contribution equals what sits in every other pocket.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
import subprocess
import sys
import textwrap
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jobs.cases import request_cancel, submit
from jobs.lifecycle import RunState, RunStatus, owed_milli
from jobs.model import Job, JobSpec, JobState
from jobs.repository import JobRepository
from quotas.admission import SiteKind
from quotas.causes import StopCause
from quotas.clock import utc_now
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.ledger import Balances, Bucket, EntryKind, Pocket, Posting
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.ray import RayBackend
from scheduler.embedded import EmbeddedRayCluster, RayEndpoint
from tests.conftest import INVENTORY
from tests.waiting import eventually

SCRIPT = Path(__file__).with_name("crash_scheduler.py")
PROJECT = "kaist-nlp"
# Ray counts a job's time from when it accepted it; its supervisor took 2-3 s (over 4 s on a cold
# cluster) on a 2-core machine to start the entrypoint, which must record its run before the
# time limit stops it.
TIME_LIMIT = 10  # seconds; a loaded 2-core machine can take several to start a job


@dataclass(frozen=True)
class Case:
    """One job of the scenario and how it must end."""

    kind: str
    flavor: str
    gpus: int
    time_limit_seconds: int
    code: str
    """What the entrypoint does once it has recorded its run."""
    state: JobState
    ray_state: RunState


# Runs are charged by the whole second: each job runs past one, so each owes a charge (one that
# ended within a second of starting, as a bare exit can on an idle machine, would owe nothing).
OK = Case(
    "ok", "h100-80g", 1, 600, "time.sleep(1.5); sys.exit(0)", JobState.SUCCEEDED, RunState.SUCCEEDED
)
FAILS = Case(
    "fails", "a100-80g", 2, 600, "time.sleep(1.5); sys.exit(2)", JobState.FAILED, RunState.FAILED
)
OVERRUNS = Case(
    "overruns", "h100-80g", 1, TIME_LIMIT, "time.sleep(120)", JobState.TIMED_OUT, RunState.STOPPED
)
SLEEPS = Case("sleeps", "h100-80g", 1, 600, "time.sleep(120)", JobState.CANCELLED, RunState.STOPPED)

CRASH_POINTS = [
    pytest.param("admitted", 1, id="admitted-1"),
    pytest.param("dispatching", 1, id="dispatching-1"),
    pytest.param("dispatched", 1, id="dispatched-1"),
    pytest.param("dispatched", 2, id="dispatched-2"),
    pytest.param("polled", 2, id="polled-2"),
    pytest.param("settling", 1, id="settling-1"),
    pytest.param("settling", 2, id="settling-2"),
    pytest.param("cancelled", 1, id="cancelled-1"),
]


# -- the scenario -----------------------------------------------------------------------------


@dataclass
class Pool:
    url: str
    factory: sessionmaker[Session]
    endpoint: RayEndpoint
    token_file: Path
    ran: Path
    jobs: dict[str, Case]

    def scheduler(self, *options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                str(SCRIPT),
                self.url,
                self.endpoint.address,
                f"--ray-token-file={self.token_file}",
                *options,
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def crash(self, step: str, occurrence: int) -> None:
        crashed = self.scheduler(
            f"--crash-step={step}", f"--crash-at={occurrence}", "--deadline=30"
        )
        if crashed.returncode != -signal.SIGKILL:
            pytest.fail(f"the scheduler exited {crashed.returncode}:\n{crashed.stderr}")
        if f"SIGKILL at {step} #{occurrence}" not in crashed.stderr:
            pytest.fail(f"the scheduler died elsewhere:\n{crashed.stderr}")
        try:
            check_crash_window(self, step, occurrence)
        except AssertionError as error:
            pytest.fail(f"the crash at {step} #{occurrence} missed its window: {error}")

    def recover(self) -> None:
        recovered = self.scheduler("--deadline=60")
        if recovered.returncode != 0:
            pytest.fail(f"recovery exited {recovered.returncode}:\n{recovered.stderr}")

    def read(self) -> dict[str, Job]:
        with transaction(self.factory) as session:
            repository = JobRepository(session)
            return {job_id: repository.get(job_id) for job_id in self.jobs}

    def ray(self, submission_ids: list[str] | None = None) -> dict[str, RunStatus]:
        return ray_statuses(
            self.endpoint, list(self.jobs) if submission_ids is None else submission_ids
        )

    def runs(self) -> Counter[str]:
        return Counter(self.ran.read_text().split() if self.ran.exists() else [])


@pytest.fixture
def pool(
    fresh_database_url: str, ray_cluster: EmbeddedRayCluster, tmp_path: Path, job_dir: Path
) -> Iterator[Callable[..., Pool]]:
    engine = make_engine(fresh_database_url)
    factory = session_factory(engine)
    # the demo's books, with the one Ray cluster the session's Ray cluster really is: the
    # scheduler counts declared GPUs its backend does not report as down (scheduler.outages)
    national = ClusterSpec(
        "national-daejeon",
        BackendKind.RAY,
        SiteKind.NATIONAL,
        tuple(Inventory(flavor, 1, gpus) for flavor, gpus in INVENTORY.items()),
    )
    with transaction(factory) as session:
        seed_demo(Books(session, utc_now), replace(demo_pool(utc_now()), clusters=(national,)))

    made: list[Pool] = []

    def make(*cases: Case) -> Pool:
        ran = job_dir / "ran.txt"
        tag = uuid.uuid4().hex[:8]
        jobs: dict[str, Case] = {}
        with transaction(factory) as session:
            for case in cases:
                job, _quote = submit(
                    Books(session, utc_now),
                    JobSpec(
                        project=PROJECT,
                        submitter="seoyeon.lee",
                        name=f"recovery-{case.kind}-{tag}",
                        entrypoint=entrypoint(ran, case.code),
                        gpus=case.gpus,
                        time_limit_seconds=case.time_limit_seconds,
                        flavors=(case.flavor,),
                    ),
                    max_time_limit_seconds=3600,
                )
                jobs[job.id] = case
        engine.dispose()  # nothing of ours stays open while a scheduler runs
        token_file = tmp_path / "ray.token"
        token_file.write_text(ray_cluster.auth_token)
        made.append(Pool(fresh_database_url, factory, ray_cluster.endpoint, token_file, ran, jobs))
        return made[-1]

    yield make
    engine.dispose()
    # Whatever a failed case left running must not hold the shared cluster's GPUs.
    asyncio.run(stop_on_ray(ray_cluster.endpoint, [job for each in made for job in each.jobs]))


def entrypoint(ran: Path, code: str) -> str:
    """Append the submission id of this run (from its metadata) to ``ran``, then run ``code``."""
    program = textwrap.dedent(
        f"""
        import json, os, sys, time
        metadata = json.loads(os.environ["RAY_JOB_CONFIG_JSON_ENV_VAR"])["metadata"]
        with open({str(ran)!r}, "a") as ran:
            ran.write(metadata["gpupool_job"] + "\\n")
        {code}
        """
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(program)}"


def ray_statuses(ray_endpoint: RayEndpoint, submission_ids: list[str]) -> dict[str, RunStatus]:
    async def read() -> dict[str, RunStatus]:
        async with RayBackend(ray_endpoint.address, auth_token=ray_endpoint.auth_token) as ray:
            return {each: await ray.status(each) for each in submission_ids}

    return asyncio.run(read())


async def stop_on_ray(ray_endpoint: RayEndpoint, submission_ids: list[str]) -> None:
    async with RayBackend(ray_endpoint.address, auth_token=ray_endpoint.auth_token) as ray:
        for each in submission_ids:
            await ray.cancel(each)


# -- what a crash leaves ----------------------------------------------------------------------


def check_crash_window(pool: Pool, step: str, occurrence: int) -> None:
    """The crash hit the window its step names (so the case tests what it says)."""
    jobs = pool.read()
    known = {
        job_id for job_id, status in pool.ray().items() if status.state is not RunState.NOT_FOUND
    }
    states = Counter(job.state for job in jobs.values())
    assert all(job.attempt == 1 for job in jobs.values())
    assert all(job.placed is not None for job in jobs.values())  # every hold was committed
    assert not (set(pool.runs()) - known)
    # The dispatch step launches every admitted job, then marks the launched ones starting.
    if step in ("admitted", "dispatching"):
        assert len(known) == occurrence - 1
        assert states[JobState.ADMITTED] == len(jobs)
    elif step == "dispatched":
        assert len(known) == occurrence  # Ray has jobs the books still call admitted
        assert states[JobState.ADMITTED] == len(jobs)
    elif step == "polled":
        assert known == set(jobs)
        assert not any(job.state.is_terminal for job in jobs.values())
    elif step == "settling":
        assert known == set(jobs)
        assert sum(job.state.is_terminal for job in jobs.values()) == occurrence - 1
    elif step == "cancelled":
        [overrun] = [job for job in jobs.values() if job.spec.time_limit_seconds == TIME_LIMIT]
        assert overrun.state in (JobState.STARTING, JobState.RUNNING)
        assert overrun.stop_cause is StopCause.TIME_LIMIT  # recorded before Ray was told
        # The scheduler stays down until Ray has stopped it.
        eventually(
            "Ray to stop the job", lambda: pool.ray([overrun.id])[overrun.id].state.is_terminal
        )


# -- what recovery must reach -----------------------------------------------------------------


def check_recovered(
    pool: Pool, expected_events: Callable[[Case], list[tuple[JobState | None, JobState]]]
) -> None:
    with transaction(pool.factory) as session:
        books = Books(session, utc_now)
        repository = JobRepository(session)
        final = {job_id: repository.get(job_id) for job_id in pool.jobs}
        events = {
            job_id: [(e.from_state, e.to_state) for e in repository.events(job_id)]
            for job_id in pool.jobs
        }
        entries = {job_id: books.ledger.entries(job=job_id, limit=10_000) for job_id in pool.jobs}
        period = books.current_period().name
        stored = books.ledger.balances(period)
        postings = all_postings(books, period)
        funders = [funder.name for funder in books.funding.funders()]

    # Every job reached the right terminal state, through a single admission.
    for job_id, case in pool.jobs.items():
        job = final[job_id]
        assert (case.kind, job.state) == (case.kind, case.state), job.reason
        assert job.attempt == 1, case.kind
        assert events[job_id] == expected_events(case), case.kind
        if case.state is JobState.FAILED:
            assert "exit code 2" in job.reason

    # Each ran exactly once on Ray, under its own id, and Ray agrees on how and when it ran.
    assert pool.runs() == dict.fromkeys(pool.jobs, 1)
    statuses = pool.ray([*pool.jobs, *(f"{job_id}-a2" for job_id in pool.jobs)])
    for job_id, case in pool.jobs.items():
        status = statuses[job_id]
        assert (case.kind, status.state) == (case.kind, case.ray_state), status
        assert not status.system_fault, (case.kind, status)
        assert statuses[f"{job_id}-a2"].state is RunState.NOT_FOUND
        assert final[job_id].started_at == status.started_at, case.kind
        assert final[job_id].ended_at == status.ended_at, case.kind

    # Per job: hold = charge + release, nothing left held, charged exactly what it ran, once.
    for job_id, case in pool.jobs.items():
        job = final[job_id]
        assert job.placed is not None
        assert job.ended_at is not None
        sums: dict[EntryKind, int] = defaultdict(int)
        for entry in entries[job_id]:
            sums[entry.posting.kind] += entry.posting.amount.milli
        assert set(sums) <= {EntryKind.HOLD, EntryKind.CHARGE, EntryKind.RELEASE}, case.kind
        assert sums[EntryKind.HOLD] == job.placed.hold_milli, case.kind
        assert sums[EntryKind.HOLD] == sums[EntryKind.CHARGE] + sums[EntryKind.RELEASE], case.kind
        assert sums[EntryKind.REFUND] == 0, case.kind
        charged = (sums[EntryKind.CHARGE], job.charged_milli, owed_milli(job, job.ended_at))
        assert charged == (charged[2],) * 3, case.kind
        assert charged[0] > 0, case.kind
        if case.state is JobState.TIMED_OUT:
            assert sums[EntryKind.CHARGE] == job.placed.hold_milli  # the whole limit, no more
        for funder in funders:
            assert stored.get(period, funder, Pocket(Bucket.HELD, PROJECT, job_id)) == 0

    # The whole period: stored sums equal the entries replayed; every funder's credits accounted.
    derived = Balances.of(postings)
    assert nonzero(stored) == nonzero(derived)
    for funder in funders:
        pockets = sum(
            amount
            for (each_period, each_funder, pocket), amount in derived.amounts.items()
            if each_period == period
            and each_funder == funder
            and pocket.bucket is not Bucket.FUNDER
        )
        assert derived.contributed(period, funder).milli == pockets, funder


def ran_through(case: Case) -> list[tuple[JobState | None, JobState]]:
    return [
        (None, JobState.QUEUED),
        (JobState.QUEUED, JobState.ADMITTED),
        (JobState.ADMITTED, JobState.STARTING),
        (JobState.STARTING, JobState.RUNNING),
        (JobState.RUNNING, case.state),
    ]


def all_postings(books: Books, period: str) -> list[Posting]:
    postings: list[Posting] = []
    after = 0
    while page := books.ledger.entries(period=period, after_id=after, limit=1000):
        postings += [entry.posting for entry in page]
        after = page[-1].id
    return postings


def nonzero(balances: Balances) -> dict[tuple[str, str, Pocket], int]:
    return {key: amount for key, amount in balances.amounts.items() if amount}


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize(("step", "occurrence"), CRASH_POINTS)
def test_a_scheduler_killed_mid_cycle_recovers_every_job_exactly_once(
    step: str, occurrence: int, pool: Callable[..., Pool]
) -> None:
    scenario = pool(OK, FAILS, OVERRUNS)
    scenario.crash(step, occurrence)
    scenario.recover()
    check_recovered(scenario, ran_through)


def test_a_job_cancelled_while_the_scheduler_was_down_after_launching_it_is_charged(
    pool: Callable[..., Pool],
) -> None:
    scenario = pool(SLEEPS)
    [job_id] = scenario.jobs
    scenario.crash("dispatched", 1)
    eventually("the job to run on Ray", lambda: scenario.runs()[job_id] == 1)
    with transaction(scenario.factory) as session:
        request_cancel(Books(session, utc_now), job_id, "seoyeon.lee")
    scenario.recover()
    check_recovered(scenario, ran_through)
