"""The reports' queries: the plain values ``quotas.reports`` computes on, read in one session.

Read-only. Spend is read from the ledger itself (every movement into or out of a job's spent
credits), joined to the job it paid for and the cluster that job was placed on; run intervals
and waits from the jobs and their event history.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from quotas.admission import PriorityClass
from quotas.db.models import AccountRow, AuditEntryRow, ClusterRow, JobRow, LedgerEntryRow
from quotas.db.repositories import as_utc
from quotas.ledger import Bucket
from quotas.reports import PriorityRun, RunInterval, SpendItem

Entries = LedgerEntryRow
CLUSTER_ADDED = "cluster.add"
"""The audit action ``Books.add_cluster`` records."""


class ReportRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def spend(
        self,
        period: str,
        projects: Sequence[str] | None = None,
        after: datetime | None = None,
        until: datetime | None = None,
    ) -> list[SpendItem]:
        """Net movements into (+) and out of (-) jobs' spent credits in ``period`` (charges,
        refunds, their reversals), summed per project, funder and job; ``projects=None`` reads
        every project. ``after`` and ``until`` keep the entries made in ``(after, until]``."""
        sides = (
            (
                Entries.target_bucket,
                Entries.target_account_id,
                Entries.target_job,
                Entries.amount_milli,
            ),
            (
                Entries.source_bucket,
                Entries.source_account_id,
                Entries.source_job,
                -Entries.amount_milli,
            ),
        )
        filtered = []
        for bucket, account, job, amount in sides:
            moves = select(
                Entries.funder.label("funder"),
                account.label("account_id"),
                job.label("job"),
                amount.label("amount"),
            ).where(bucket == Bucket.SPENT.value, Entries.period == period)
            if after is not None:
                moves = moves.where(Entries.at > after)
            if until is not None:
                moves = moves.where(Entries.at <= until)
            filtered.append(moves)
        moved = union_all(*filtered).subquery()
        spent = (
            select(
                moved.c.account_id,
                moved.c.funder,
                moved.c.job,
                func.sum(moved.c.amount).label("amount"),
            )
            .group_by(moved.c.account_id, moved.c.funder, moved.c.job)
            .subquery()
        )
        query = (
            select(
                AccountRow.name,
                spent.c.funder,
                spent.c.job,
                spent.c.amount,
                JobRow.flavor,
                ClusterRow.site,
                JobRow.priority,
            )
            .join(AccountRow, AccountRow.id == spent.c.account_id)
            .outerjoin(JobRow, JobRow.id == spent.c.job)
            .outerjoin(ClusterRow, ClusterRow.name == JobRow.cluster)
            .order_by(AccountRow.name, spent.c.funder, spent.c.job)
        )
        if projects is not None:
            query = query.where(AccountRow.name.in_(list(projects)))
        return [
            SpendItem(
                project,
                funder,
                job,
                int(amount),
                flavor,
                site,
                PriorityClass(priority) if priority is not None else None,
            )
            for project, funder, job, amount, flavor, site, priority in self.session.execute(query)
        ]

    def runs(self, since: datetime, until: datetime) -> list[RunInterval]:
        """Run intervals of jobs placed on a cluster that overlap ``[since, until)``: from the
        start the backend reported to the end (``None`` while running)."""
        query = select(
            JobRow.cluster, JobRow.flavor, JobRow.gpus, JobRow.started_at, JobRow.ended_at
        ).where(
            JobRow.cluster.is_not(None),
            JobRow.flavor.is_not(None),
            JobRow.started_at.is_not(None),
            JobRow.started_at < until,
            JobRow.ended_at.is_(None) | (JobRow.ended_at > since),
        )
        return [
            RunInterval(cluster, flavor, gpus, as_utc(started), as_utc(ended) if ended else None)
            for cluster, flavor, gpus, started, ended in self.session.execute(query)
            if cluster is not None and flavor is not None and started is not None
        ]

    def clusters_declared(self) -> dict[str, datetime]:
        """When each cluster was declared: its first ``cluster.add`` in the audit log (a cluster
        declared before the audit log was kept has none)."""
        query = (
            select(AuditEntryRow.target, func.min(AuditEntryRow.at))
            .where(AuditEntryRow.action == CLUSTER_ADDED)
            .group_by(AuditEntryRow.target)
        )
        return {
            target.removeprefix("cluster/"): as_utc(at)
            for target, at in self.session.execute(query)
            if at is not None
        }

    def priority_runs(
        self, priorities: Iterable[PriorityClass], since: datetime, until: datetime
    ) -> list[PriorityRun]:
        """Run intervals, with project and job, of the jobs of ``priorities`` that started
        before ``until`` and had not ended by ``since``."""
        query = (
            select(
                AccountRow.name,
                JobRow.id,
                JobRow.priority,
                JobRow.gpus,
                JobRow.started_at,
                JobRow.ended_at,
            )
            .join(AccountRow, AccountRow.id == JobRow.project_id)
            .where(
                JobRow.priority.in_([priority.value for priority in priorities]),
                JobRow.started_at.is_not(None),
                JobRow.started_at < until,
                JobRow.ended_at.is_(None) | (JobRow.ended_at > since),
            )
        )
        return [
            PriorityRun(
                project,
                job,
                PriorityClass(priority),
                gpus,
                as_utc(started),
                as_utc(ended) if ended else None,
            )
            for project, job, priority, gpus, started, ended in self.session.execute(query)
            if started is not None
        ]
