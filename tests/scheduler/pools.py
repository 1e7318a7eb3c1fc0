"""What the scheduling-cycle scenarios share: a clock the test moves, and a pool of books with
a scheduler whose jobs, ledger entries and cycles a test reads and runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from jobs.model import Job
from jobs.repository import JobRepository
from quotas.admission import SiteKind
from quotas.db.session import transaction
from quotas.demo import demo_pool
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.ledger import EntryKind
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.cycle import Scheduler

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = 3600


def seed_with_burst_targets(
    books: Books, deadline_seconds: int, provisioning_class: str = ""
) -> None:
    """The demo pool, kaist-nlp allowed to burst, and two Kubernetes burst targets of 2 nodes of
    8 h100s: ``cloud-seoul`` (domestic cloud, 1.2x) and ``cloud-tokyo`` (foreign cloud, 1.5x)."""
    seed_demo(books, demo_pool(START))
    books.update_account(replace(books.tree()["kaist-nlp"], may_burst=True))
    for name, site, multiplier in (
        ("cloud-seoul", SiteKind.DOMESTIC_CLOUD, 1200),
        ("cloud-tokyo", SiteKind.FOREIGN_CLOUD, 1500),
    ):
        books.clusters.add(
            ClusterSpec(
                name,
                BackendKind.KUBERNETES,
                site,
                (Inventory("h100-80g", 2, 8),),
                price_multiplier_milli=multiplier,
                provisioning_deadline_seconds=deadline_seconds,
                provisioning_class=provisioning_class,
            )
        )


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class SchedulerPool:
    factory: sessionmaker[Session]
    clock: Clock
    scheduler: Scheduler

    def cycle(self) -> None:
        asyncio.run(self.scheduler.run_once())

    def job(self, job_id: str) -> Job:
        with transaction(self.factory) as session:
            return JobRepository(session).get(job_id)

    def entries(self, job_id: str, kind: EntryKind) -> int:
        """What the job's ledger entries of ``kind`` moved, in millicredits."""
        with transaction(self.factory) as session:
            entries = Books(session).ledger.entries(job=job_id, kinds=[kind], limit=1000)
            return sum(entry.posting.amount.milli for entry in entries)
