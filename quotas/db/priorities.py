"""The priority grants repository: which projects may submit work above ``normal``.

Bound to a session, taking and returning ``quotas.priorities.PriorityGrant``; never commits.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from quotas.admission import PriorityClass
from quotas.db.models import AccountRow, PriorityGrantRow
from quotas.db.repositories import AccountRepository, as_utc
from quotas.priorities import PriorityGrant


class PriorityGrantRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _row(self, project: str, priority: PriorityClass) -> PriorityGrantRow | None:
        project_id = AccountRepository(self.session).id_of(project)
        return self.session.get(PriorityGrantRow, (project_id, priority.value))

    def get(self, project: str, priority: PriorityClass) -> PriorityGrant | None:
        """The project's grant of ``priority``, in force or lapsed; ``None`` without one."""
        row = self._row(project, priority)
        return _grant(row, project) if row is not None else None

    def put(self, grant: PriorityGrant) -> None:
        """Record ``grant``, replacing the project's earlier grant of the same class."""
        row = self._row(grant.project, grant.priority)
        if row is None:
            row = PriorityGrantRow(
                project_id=AccountRepository(self.session).id_of(grant.project),
                priority=grant.priority.value,
            )
            self.session.add(row)
        row.granted_by = grant.granted_by
        row.granted_at = grant.granted_at
        row.expires_at = grant.expires_at
        self.session.flush()

    def remove(self, project: str, priority: PriorityClass) -> bool:
        """Delete the project's grant of ``priority``; ``False`` when it held none."""
        row = self._row(project, priority)
        if row is None:
            return False
        self.session.delete(row)
        self.session.flush()
        return True

    def of_project(self, project: str) -> list[PriorityGrant]:
        """The project's grants, in force or lapsed, by class."""
        query = (
            select(PriorityGrantRow)
            .join(AccountRow, AccountRow.id == PriorityGrantRow.project_id)
            .where(AccountRow.name == project)
            .order_by(PriorityGrantRow.priority)
        )
        return [_grant(row, project) for row in self.session.scalars(query)]


def _grant(row: PriorityGrantRow, project: str) -> PriorityGrant:
    expires_at: datetime | None = row.expires_at
    return PriorityGrant(
        project=project,
        priority=PriorityClass(row.priority),
        granted_by=row.granted_by,
        granted_at=as_utc(row.granted_at),
        expires_at=as_utc(expires_at) if expires_at is not None else None,
    )
