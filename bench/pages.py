"""Benchmark: how long each page takes the server, over the demo pool with 10,000 jobs.

The pool is the demo pool (``gpupool serve --demo``), and its history is made the way it would
happen: ``--jobs`` jobs arrive through the front door (``jobs.cases.submit``) across the demo's
projects and members over ``--hours`` simulated hours before now, and the real scheduler
(``scheduler.cycle.Scheduler``) admits, dispatches and charges them on simulated backends of
the demo's clusters every ``--cycle-minutes``, so the pages find running, waiting and ended
jobs, ledger entries, holds and refunds. Then each page is fetched ``--repeat`` times by each
persona who may see it (a researcher, a PI, a program manager, the auditor, the admin) through
the app in-process (Starlette's TestClient: no network, so the time is the server's: reading
the books, rendering, and the session check), after one unrecorded warm-up fetch.

Run from the repository root::

    python -m bench.pages [--jobs 10000] [--hours 36] [--repeat 5] [--database-url URL]

It prints ``BENCH page_ms path=<route> as=<persona> p50=<ms> max=<ms>`` per page and persona,
and ``BENCH page_ms_worst=<ms>`` with the page it was; the goal is under 300 ms for every page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import re
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from bench.cycle import FixedClock
from jobs.cases import submit
from jobs.lifecycle import RunState
from jobs.model import JobSpec, JobState
from jobs.repository import JobRepository
from portal import pages
from portal.app import create_app
from portal.scopes import operations
from portal.settings import PortalSettings
from quotas.access import Role, Scope
from quotas.admission import PriorityClass
from quotas.db.migrate import upgrade
from quotas.db.repositories import PeopleRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.errors import BooksError
from quotas.seed import seed_demo
from quotas.service import Books
from quotas.tokens import issue
from scheduler.backends.base import Backend, LaunchSpec
from scheduler.backends.simulated import Outcome, SimulatedBackend
from scheduler.cycle import Scheduler
from scheduler.settings import SchedulerSettings

MEMBERS = {
    "kaist-nlp": ("jiwoo.jung", "seoyeon.lee"),
    "kaist-protein": ("sungmin.yoon", "seoyeon.lee"),
    "hanbit-robot-policy": ("jiwoo.jung", "dohyun.choi"),
    "snu-medical-imaging": ("sungmin.yoon",),
    "seoulvision-doc-ocr": ("hyejin.kang",),
    "postech-materials": ("eunji.han",),
}
"""Who submits to which demo project (``quotas.demo``)."""

PERSONAS = {
    "researcher": "jiwoo.jung",
    "pi": "seoyeon.lee",
    "program_manager": "jaehyun.kim",
    "auditor": "yuna.shin",
    "admin": "admin",
}
PRIORITIES = (PriorityClass.NORMAL,) * 4 + (PriorityClass.OPPORTUNISTIC,)
GOAL_MS = 300.0
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@contextmanager
def database(url: str | None) -> Iterator[tuple[str, Path]]:
    directory = Path(tempfile.mkdtemp(prefix="gpupool-bench-pages-"))
    try:
        yield url or f"sqlite:///{directory / 'books.db'}", directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def make_history(engine: Engine, jobs: int, hours: float, cycle_minutes: float, seed: int) -> str:
    """The demo pool with ``jobs`` jobs submitted and scheduled over ``hours`` before now;
    returns a line counting the jobs per state."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    start = now - timedelta(hours=hours)
    clock = FixedClock(start)
    factory = session_factory(engine)
    with transaction(factory) as session:
        books = Books(session, clock)
        seed_demo(books, demo_pool(start))
        clusters = books.clusters.all()
        flavors = sorted(books.flavors.all())
    runs: dict[str, Outcome] = {}
    """How each job's run goes on the simulated backends, by job id."""

    def runtime(spec: LaunchSpec) -> Outcome:
        return runs[spec.metadata["gpupool_job"]]

    backends: dict[str, Backend] = {
        cluster.name: SimulatedBackend(
            clock,
            {each.flavor: (each.nodes, each.gpus_per_node) for each in cluster.inventory},
            runtime,
        )
        for cluster in clusters
    }
    scheduler = Scheduler(factory, backends, SchedulerSettings(), clock)
    cycles = max(1, int(hours * 60 / cycle_minutes))
    per_cycle, extra = divmod(jobs, cycles)
    projects = sorted(MEMBERS)
    general = [name for name in flavors if not name.startswith("rngd")]
    for cycle in range(cycles):
        with transaction(factory) as session:
            books = Books(session, clock)
            for _ in range(per_cycle + (1 if cycle < extra else 0)):
                project = rng.choice(projects)
                minutes = rng.choice((20, 30, 60, 120, 240))
                spec = JobSpec(
                    project=project,
                    submitter=rng.choice(MEMBERS[project]),
                    name=f"train-{rng.randrange(10_000)}",
                    entrypoint="python train.py",
                    gpus=rng.choice((1, 1, 1, 2, 2, 4, 8)),
                    time_limit_seconds=int(minutes * 60 * 1.5),
                    flavors=tuple(rng.sample(general, rng.randint(0, 2))),
                    priority=rng.choice(PRIORITIES),
                )
                failed = rng.random() < 0.05
                with contextlib.suppress(BooksError):  # refused at the door: writes nothing
                    job, _ = submit(books, spec, 14 * 24 * 3600)
                    runs[job.id] = Outcome(
                        minutes * 60 * rng.uniform(0.3, 1.2),
                        RunState.FAILED if failed else RunState.SUCCEEDED,
                        exit_code=1 if failed else 0,
                    )
        asyncio.run(scheduler.run_once())
        clock.advance(cycle_minutes * 60)
    with transaction(factory) as session:
        found = JobRepository(session).find()
    states: dict[str, int] = {}
    for job in found:
        states[job.state.value] = states.get(job.state.value, 0) + 1
    return ", ".join(f"{state} {count}" for state, count in sorted(states.items()))


def page_routes(app: FastAPI) -> list[str]:
    """Every page's GET route (not its live parts or downloads)."""
    endpoints = {
        route.endpoint
        for module in pages.PAGE_MODULES
        for route in module.router.routes
        if isinstance(route, APIRoute)
    }
    return sorted(
        path
        for (method, path), endpoint in operations(app)
        if method == "GET"
        and endpoint in endpoints
        and not path.endswith(("/live", "/quote", ".csv"))
    )


def fill(path: str, engine: Engine) -> str | None:
    """``path`` with its parameters set to things the demo has (``None``: nothing fits)."""
    with transaction(session_factory(engine)) as session:
        books = Books(session)
        jobs = JobRepository(session)
        running = jobs.search(projects=["kaist-nlp"], states=[JobState.RUNNING], limit=1)[0]
        requests = books.allocations.search(projects=None, limit=1)[0]
    values = {
        "job_id": running[0].id if running else None,
        "name": None,
        "project": "kaist-nlp",
        "program": "universities",
        "request_id": str(requests[0].id) if requests else None,
        "id": str(requests[0].id) if requests else None,
    }
    if path.startswith("/projects/"):
        values["name"] = "kaist-nlp"
    elif path.startswith("/programs/"):
        values["name"] = "universities"
    elif path.startswith("/admin/clusters/"):
        values["name"] = "national-daejeon"
    filled = path
    for name in re.findall(r"{(\w+)}", path):
        value = values.get(name)
        if value is None:
            return None
        filled = filled.replace(f"{{{name}}}", value)
    return filled


def signed_in(app: FastAPI, token: str) -> TestClient:
    client = TestClient(app)
    form = client.get("/signin").text
    found = CSRF.search(form)
    assert found is not None
    answer = client.post(
        "/auth/token", data={"token": token, "csrf": found.group(1)}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    return client


def tokens(engine: Engine, data_dir: Path) -> dict[str, str]:
    found = {}
    with transaction(session_factory(engine)) as session:
        books = Books(session)
        people = PeopleRepository(session)
        if not people.has_user("yuna.shin"):
            people.add_user("yuna.shin", "Yuna Shin")
            books.grant_role("yuna.shin", Role.AUDITOR, actor="bench")
        if not people.has_user("admin"):
            people.add_user("admin", "Administrator")
            books.grant_role("admin", Role.ADMIN, actor="bench")
        for persona, user in PERSONAS.items():
            found[persona] = issue(session, user, "bench", list(Scope), datetime.now(UTC)).token
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=36.0)
    parser.add_argument("--cycle-minutes", type=float, default=10.0)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--database-url", default=None, help="default: a new SQLite file")
    args = parser.parse_args(argv)
    with database(args.database_url) as (url, directory):
        engine = make_engine(url)
        upgrade(engine)
        began = time.perf_counter()
        states = make_history(engine, args.jobs, args.hours, args.cycle_minutes, args.seed)
        print(
            f"history: {args.jobs} jobs over {args.hours:g} h ({states}) in "
            f"{time.perf_counter() - began:.0f} s on {engine.dialect.name}"
        )
        settings = PortalSettings(data_dir=directory, database_url=url, session_secret="bench")
        app = create_app(settings, engine)
        worst = (0.0, "")
        for persona, token in tokens(engine, directory).items():
            client = signed_in(app, token)
            for route in page_routes(app):
                path = fill(route, engine)
                if path is None:
                    continue
                first = client.get(path)
                if first.status_code in (403, 404):
                    continue  # not this persona's page
                assert first.status_code == 200, (path, persona, first.status_code)
                times = []
                for _ in range(args.repeat):
                    start = time.perf_counter()
                    answer = client.get(path)
                    times.append((time.perf_counter() - start) * 1000)
                    assert answer.status_code == 200
                p50, top = statistics.median(times), max(times)
                print(f"BENCH page_ms path={route} as={persona} p50={p50:.0f} max={top:.0f}")
                if p50 > worst[0]:
                    worst = (p50, f"{route} as {persona}")
        print(f"BENCH page_ms_worst={worst[0]:.0f} ms ({worst[1]}; goal {GOAL_MS:.0f} ms)")
        engine.dispose()


if __name__ == "__main__":
    main()
