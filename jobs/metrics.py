"""The numbers ``/metrics`` reports, each read by one aggregate query at scrape time."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, Float, Text, case, cast, func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from jobs.model import JobState
from quotas.db.models import AccountRow, JobEventRow, JobRow, LedgerEntryRow
from quotas.ledger import EntryKind


class MetricsRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def queued_flavors(self) -> list[tuple[str, tuple[str, ...], int]]:
        """Queued jobs counted per project and the flavors they accept."""
        flavors = cast(JobRow.flavors, Text)  # JSON has no equality to group by on PostgreSQL
        rows = self.session.execute(
            select(AccountRow.name, flavors, func.count())
            .join(AccountRow, AccountRow.id == JobRow.project_id)
            .where(JobRow.state == JobState.QUEUED.value)
            .group_by(AccountRow.name, flavors)
        )
        return [(name, tuple(json.loads(names)), int(count)) for name, names, count in rows]

    def admissions(self) -> int:
        """Admissions so far, every attempt counted."""
        count = self.session.scalar(
            select(func.count(JobEventRow.id)).where(
                JobEventRow.to_state == JobState.ADMITTED.value
            )
        )
        return int(count or 0)

    def waits(self, bounds: Sequence[float]) -> tuple[list[int], int, float]:
        """Of the jobs ever admitted: how many waited at most each bound (seconds, ascending),
        how many in all, and their summed waits in seconds."""
        seconds = _seconds_between(self.session, JobRow.submitted_at, JobRow.admitted_at)
        columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in bounds]
        row = self.session.execute(
            select(*columns, func.count(), func.coalesce(func.sum(seconds), 0.0)).where(
                JobRow.admitted_at.is_not(None)
            )
        ).one()
        *within, count, total = row
        return [int(value or 0) for value in within], int(count), float(total)

    def charged_milli(self) -> int:
        """Milli-credits charged for GPU time, net of refunds."""
        amount = self.session.scalar(
            select(
                func.coalesce(
                    func.sum(
                        case(
                            (LedgerEntryRow.kind == EntryKind.REFUND.value, -1),
                            else_=1,
                        )
                        * LedgerEntryRow.amount_milli
                    ),
                    0,
                )
            ).where(LedgerEntryRow.kind.in_([EntryKind.CHARGE.value, EntryKind.REFUND.value]))
        )
        return int(amount or 0)


def _seconds_between(
    session: Session,
    start: InstrumentedAttribute[datetime],
    end: InstrumentedAttribute[datetime | None],
) -> ColumnElement[float]:
    """SQL for the seconds from ``start`` to ``end``, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "sqlite":
        return (func.julianday(end) - func.julianday(start)) * 86400.0
    return cast(func.extract("epoch", end - start), Float)
