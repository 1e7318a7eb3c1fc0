"""The package cleanup step: the scheduler loop removes uploaded packages no job needs, in pages,
and keeps every one a waiting job names."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from jobs.cases import submit
from jobs.model import JobSpec
from quotas.db.access import AuditRepository, PackageRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.packages import content_addressed_uri
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler import package_cleanup
from scheduler.backends.simulated import SimulatedBackend
from scheduler.loop import run_scheduler
from scheduler.package_cleanup import REMOVE_ACTION, remove_unneeded_packages
from scheduler.settings import SchedulerSettings

NOW = datetime.now(UTC)
RESEARCHER = "jiwoo.jung"  # kaist-nlp


@pytest.fixture
def engine(fresh_database_url: str) -> Iterator[Engine]:
    engine = make_engine(fresh_database_url)
    with transaction(session_factory(engine)) as session:
        seed_demo(Books(session), demo_pool(NOW))
    yield engine
    engine.dispose()


def keep(engine: Engine, days_ago: float) -> tuple[str, str]:
    """An upload by the researcher, charged to kaist-nlp ``days_ago``; its uri and sha256."""
    uri = f"gcs://_ray_pkg_{uuid.uuid4().hex[:16]}.zip"
    content = uuid.uuid4().bytes
    with transaction(session_factory(engine)) as session:
        at = NOW - timedelta(days=days_ago)
        PackageRepository(session).add(RESEARCHER, uri, content, at, "kaist-nlp")
    return uri, hashlib.sha256(content).hexdigest()


def queue_job_naming(engine: Engine, digest: str) -> None:
    spec = JobSpec(
        "kaist-nlp",
        RESEARCHER,
        "uses-a-package",
        "python main.py",
        gpus=1,
        time_limit_seconds=600,
        runtime_env={"working_dir": content_addressed_uri(digest)},
    )
    with transaction(session_factory(engine)) as session:
        submit(Books(session, clock=lambda: NOW), spec, max_time_limit_seconds=3600)


def kept(engine: Engine, uri: str) -> bool:
    with transaction(session_factory(engine)) as session:
        return PackageRepository(session).exists(RESEARCHER, uri)


def test_cleanup_pages_through_every_package_and_keeps_those_waiting_jobs_name(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(package_cleanup, "PAGE", 2)
    named = [keep(engine, days_ago=30 - n) for n in range(2)]  # the two oldest: a page of their own
    for _, digest in named:
        queue_job_naming(engine, digest)
    unused = [keep(engine, days_ago=20 - n)[0] for n in range(3)]

    removed = remove_unneeded_packages(
        session_factory(engine), SchedulerSettings().package_retention, clock=lambda: NOW
    )

    assert sorted(package.uri for package in removed) == sorted(unused)
    assert all(kept(engine, uri) for uri, _ in named)
    assert not any(kept(engine, uri) for uri in unused)
    with transaction(session_factory(engine)) as session:
        entries = AuditRepository(session).entries(action=REMOVE_ACTION)
    assert sorted(entry.target for entry in entries) == sorted(
        f"package/{RESEARCHER}/{uri}" for uri in unused
    )
    assert all(entry.before and entry.before["project"] == "kaist-nlp" for entry in entries)


def test_the_scheduler_loop_removes_unneeded_packages_as_it_runs(engine: Engine) -> None:
    old, _ = keep(engine, days_ago=2)
    new, _ = keep(engine, days_ago=0)
    backend = SimulatedBackend(lambda: datetime.now(UTC), {"h100-80g": (2, 8)})
    settings = SchedulerSettings(cycle_seconds=0.05, package_cleanup_seconds=3600)

    async def scenario() -> None:
        stop = asyncio.Event()
        loop = asyncio.create_task(
            run_scheduler(engine, {"national-daejeon": backend}, settings, stop=stop)
        )
        for _ in range(200):
            if not kept(engine, old):
                break
            await asyncio.sleep(0.05)
        stop.set()
        await loop

    asyncio.run(scenario())

    assert not kept(engine, old)  # past the grace period, and no job names it
    assert kept(engine, new)  # just uploaded: its job may be on its way
