"""What the scheduling-cycle scenarios share: a clock the test moves, and a pool of books with
a scheduler whose jobs, ledger entries and cycles a test reads and runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from jobs.model import Job
from jobs.repository import JobRepository
from quotas.db.session import transaction
from quotas.ledger import EntryKind
from quotas.service import Books
from scheduler.cycle import Scheduler

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
HOUR = 3600


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
