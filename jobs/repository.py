"""Jobs and their history in the database: the jobs domain's repository.

It never commits; the edge that opened the session does. A state change and its event are
written together, many jobs in one statement where a cycle moves many.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    Row,
    Select,
    TextClause,
    bindparam,
    func,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from jobs.model import Job, JobEvent, JobSpec, JobState, Placed
from quotas.admission import DataClass, PriorityClass
from quotas.causes import StopCause, from_json, to_json
from quotas.db.access import AuditRepository
from quotas.db.bulk import insert_rows, update_rows
from quotas.db.models import (
    AccountRow,
    AuditEntryRow,
    JobEventRow,
    JobRow,
    LedgerEntryRow,
)
from quotas.db.repositories import AccountRepository, as_utc, maybe_utc
from quotas.errors import NotFound
from quotas.ledger import EntryKind


class News(StrEnum):
    """What woke a pausing scheduler (``JobRepository.news_since``)."""

    NONE = "none"
    STARTING = "starting"
    WORK = "work"


@dataclass(frozen=True, slots=True)
class Standing:
    """A job's state and attempt, and the flags a cancel may set while the scheduler works."""

    state: JobState
    attempt: int
    cancel_requested: bool
    stop_cause: StopCause | None


JOBS = JobRow.metadata.tables[JobRow.__tablename__]
EVENTS = JobEventRow.metadata.tables[JobEventRow.__tablename__]

ID_CHUNK = 900
"""Ids per ``IN (...)``: below SQLite's oldest limit on a statement's parameters."""


class JobRepository:
    """Jobs and their event history. A state change and its event are written together."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self, job: Job, project_id: int | None = None, *, at_catalogue: int | None = None
    ) -> bool:
        """Insert a new job and its first event, without the ORM's unit of work.
        ``project_id`` saves looking the project up when the caller knows it.

        With ``at_catalogue``, only while the newest audit entry is still that one (the
        catalogue the caller checked the job against is current): returns False, writing
        nothing, when a newer one has landed. On PostgreSQL that check and both inserts are one
        statement: in autocommit, a submission is one round trip."""
        spec = job.spec
        if project_id is None:
            project_id = AccountRepository(self.session).id_of(spec.project)
        self.session.flush()
        row = {
            "id": job.id,
            "project_id": project_id,
            "submitter": spec.submitter,
            "name": spec.name,
            "entrypoint": spec.entrypoint,
            "runtime_env": dict(spec.runtime_env),
            "metadata": dict(spec.metadata),
            "image": spec.image,
            "gpus": spec.gpus,
            "flavors": list(spec.flavors),
            "min_memory_gb": spec.min_memory_gb,
            "time_limit_seconds": spec.time_limit_seconds,
            "priority": spec.priority.value,
            "data_class": spec.data_class.value,
            "preemptible": spec.preemptible,
            "submitted_at": job.submitted_at,
            **_state_values(job),
        }
        first = _event_values(
            job.id, JobEvent(job.submitted_at, None, job.state, job.reason or "submitted")
        )
        if at_catalogue is not None:
            if self.session.get_bind().dialect.name == "postgresql":
                added = self.session.execute(
                    _ADD_WHILE_CURRENT,
                    {
                        **row,
                        **{f"event_{name}": value for name, value in first.items()},
                        "stamp": at_catalogue,
                    },
                ).scalar_one()
                return bool(added)
            if AuditRepository(self.session).last_id() != at_catalogue:
                return False
        self.session.execute(insert(JOBS), row)
        self.session.execute(insert(EVENTS), first)
        return True

    def _fill(self, row: JobRow, job: Job) -> None:
        for name, value in _state_values(job).items():
            setattr(row, name, value)

    def save(self, job: Job, *events: JobEvent) -> None:
        """The job's new state with the events that led to it, in order."""
        row = self.session.get(JobRow, job.id)
        if row is None:
            raise NotFound(f"no job {job.id}")
        self._fill(row, job)
        for event in events:
            self.session.add(JobEventRow(**_event_values(job.id, event)))
        self.session.flush()

    def save_many(self, moves: Sequence[tuple[Job, JobEvent | None]]) -> None:
        """``save`` for many jobs: one UPDATE statement for the jobs, one INSERT for their
        events."""
        if not moves:
            return
        update_rows(
            self.session,
            JOBS,
            [{"id": job.id, **_state_values(job)} for job, _ in moves],
        )
        events = [_event_values(job.id, event) for job, event in moves if event is not None]
        insert_rows(self.session, EVENTS, events)

    def save_waits(self, jobs: Sequence[Job]) -> None:
        """Write waiting jobs' cause, reason, queue position and estimated start, in one
        statement for them all."""
        if not jobs:
            return
        update_rows(
            self.session,
            JOBS,
            [
                {
                    "id": job.id,
                    "reason": job.reason,
                    "cause": to_json(job.cause) if job.cause is not None else None,
                    "position": job.position,
                    "eta": job.eta,
                }
                for job in jobs
            ],
        )

    def exists(self, job_id: str) -> bool:
        return self.session.get(JobRow, job_id) is not None

    def get(self, job_id: str, for_update: bool = False) -> Job:
        row = self.session.get(JobRow, job_id, with_for_update=for_update)
        if row is None:
            raise NotFound(f"no job {job_id}")
        project = self.session.get(AccountRow, row.project_id)
        assert project is not None
        return self._job(row, project.name)

    def get_many(self, job_ids: Sequence[str], for_update: bool = False) -> dict[str, Job]:
        """The jobs of these ids that exist, by id, read (and locked) in chunks."""
        found: dict[str, Job] = {}
        for start in range(0, len(job_ids), ID_CHUNK):
            query = (
                _job_columns()
                .where(JobRow.id.in_(job_ids[start : start + ID_CHUNK]))
                .order_by(JobRow.id)
            )
            if for_update:
                query = query.with_for_update(of=JobRow.__table__)
            for row in self.session.execute(query):
                found[row.id] = self._job(row, row.project_name)
        return found

    def standings(self, job_ids: Sequence[str]) -> dict[str, Standing]:
        """Where these jobs stand, by id, locked for update: what a batch of moves checks
        before it writes, without reading (and decoding) whole jobs."""
        found: dict[str, Standing] = {}
        columns = (JobRow.id, JobRow.state, JobRow.attempt, JobRow.cancel_requested)
        for start in range(0, len(job_ids), ID_CHUNK):
            query = (
                select(*columns, JobRow.stop_cause)
                .where(JobRow.id.in_(job_ids[start : start + ID_CHUNK]))
                .order_by(JobRow.id)
                .with_for_update()
            )
            for job_id, state, attempt, cancel_requested, stop_cause in self.session.execute(query):
                found[job_id] = Standing(
                    JobState(state),
                    attempt,
                    cancel_requested,
                    StopCause(stop_cause) if stop_cause else None,
                )
        return found

    def find(
        self,
        states: Iterable[JobState] | None = None,
        project: str | None = None,
        limit: int | None = None,
    ) -> list[Job]:
        """Jobs in submission order, optionally by state and project."""
        query = _job_columns().order_by(JobRow.submitted_at, JobRow.id)
        if states is not None:
            query = query.where(JobRow.state.in_([state.value for state in states]))
        if project is not None:
            query = query.where(AccountRow.name == project)
        if limit is not None:
            query = query.limit(limit)
        return [self._job(row, row.project_name) for row in self.session.execute(query)]

    def search(
        self,
        *,
        projects: Sequence[str] | None = None,
        states: Iterable[JobState] | None = None,
        submitter: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Job], int]:
        """A page of jobs, newest first, and how many match in all; ``projects=None`` is all."""
        query = _job_columns()
        if projects is not None:
            query = query.where(AccountRow.name.in_(list(projects)))
        if states is not None:
            query = query.where(JobRow.state.in_([state.value for state in states]))
        if submitter is not None:
            query = query.where(JobRow.submitter == submitter)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(JobRow.submitted_at.desc(), JobRow.id.desc()).offset(offset)
        found = [
            self._job(row, row.project_name) for row in self.session.execute(page.limit(limit))
        ]
        return found, total

    def charged_milli(self, job_id: str) -> int:
        """Credits charged to the job net of refunds, from the ledger itself."""
        charged = self.session.scalar(
            select(func.coalesce(func.sum(LedgerEntryRow.amount_milli), 0)).where(
                LedgerEntryRow.kind == EntryKind.CHARGE.value, LedgerEntryRow.target_job == job_id
            )
        )
        refunded = self.session.scalar(
            select(func.coalesce(func.sum(LedgerEntryRow.amount_milli), 0)).where(
                LedgerEntryRow.kind == EntryKind.REFUND.value, LedgerEntryRow.source_job == job_id
            )
        )
        return int(charged or 0) - int(refunded or 0)

    def used_at(
        self, clusters: Iterable[str], period: str, holding: Iterable[JobState]
    ) -> dict[tuple[str, str], int]:
        """Credits per (cluster, project) that jobs placed on ``clusters`` in ``period`` hold
        (the whole hold of each job in a ``holding`` state) or were charged net of refunds
        (each job that ended there), from the ledger itself."""
        clusters = list(clusters)
        if not clusters:
            return {}
        held_states = [state.value for state in holding]
        placed = (JobRow.cluster.in_(clusters), JobRow.period == period)
        used: dict[tuple[str, str], int] = {}
        holds = (
            select(JobRow.cluster, AccountRow.name, func.sum(JobRow.hold_milli))
            .join(AccountRow, AccountRow.id == JobRow.project_id)
            .where(*placed, JobRow.state.in_(held_states))
            .group_by(JobRow.cluster, AccountRow.name)
        )
        for cluster, project, milli in self.session.execute(holds):
            used[(str(cluster), project)] = int(milli or 0)
        for kind, side, sign in (
            (EntryKind.CHARGE, LedgerEntryRow.target_job, 1),
            (EntryKind.REFUND, LedgerEntryRow.source_job, -1),
        ):
            moved = (
                select(JobRow.cluster, AccountRow.name, func.sum(LedgerEntryRow.amount_milli))
                .join(JobRow, JobRow.id == side)
                .join(AccountRow, AccountRow.id == JobRow.project_id)
                .where(
                    *placed,
                    JobRow.state.not_in(held_states),
                    LedgerEntryRow.kind == kind.value,
                    LedgerEntryRow.period == period,
                )
                .group_by(JobRow.cluster, AccountRow.name)
            )
            for cluster, project, milli in self.session.execute(moved):
                key = (str(cluster), project)
                used[key] = used.get(key, 0) + sign * int(milli or 0)
        return used

    def gpus_in_use(self, states: Iterable[JobState]) -> dict[tuple[str, str], int]:
        """GPUs held by jobs in ``states``, per (cluster, flavor) they were placed on."""
        query = (
            select(JobRow.cluster, JobRow.flavor, func.sum(JobRow.gpus))
            .where(
                JobRow.state.in_([state.value for state in states]),
                JobRow.cluster.is_not(None),
                JobRow.flavor.is_not(None),
            )
            .group_by(JobRow.cluster, JobRow.flavor)
        )
        return {
            (cluster, flavor): int(gpus or 0)
            for cluster, flavor, gpus in self.session.execute(query)
            if cluster is not None and flavor is not None
        }

    def news_since(self, since: datetime, now: datetime, starting_watch: timedelta) -> News:
        """What a pausing scheduler should act on soon, since the cycle that began at ``since``.

        ``News.WORK`` (a full cycle): a job submitted, an admitted job whose dispatch is due, or a
        cancel not yet acted on. ``News.STARTING`` (a poll of what runs): a job launched within
        ``starting_watch``, to see it start within a fraction of a second. A job waiting out a
        dispatch retry, starting for longer (a large runtime_env being installed) or being
        stopped is no news: the regular cycle looks at it, so the loop never spins.
        """
        work = select(JobRow.id).where(
            ((JobRow.state == JobState.QUEUED.value) & (JobRow.submitted_at > since))
            | (
                (JobRow.state == JobState.ADMITTED.value)
                & (JobRow.next_dispatch_at.is_(None) | (JobRow.next_dispatch_at <= now))
            )
            | (
                JobRow.cancel_requested
                & JobRow.stop_cause.is_(None)
                & JobRow.state.in_(
                    [JobState.RUNNING.value, JobState.STARTING.value, JobState.ADMITTED.value]
                )
            )
        )
        if self.session.scalar(work.limit(1)) is not None:
            return News.WORK
        starting = select(JobRow.id).where(
            (JobRow.state == JobState.STARTING.value) & (JobRow.admitted_at > now - starting_watch)
        )
        if self.session.scalar(starting.limit(1)) is not None:
            return News.STARTING
        return News.NONE

    def last_event_id(self, ignoring: Iterable[JobState] = ()) -> int:
        """The id of the newest event (0 with none) into a state not in ``ignoring``."""
        skipped = [str(state) for state in ignoring]
        query = select(JobEventRow.id).order_by(JobEventRow.id.desc()).limit(1)
        if skipped:
            query = query.where(JobEventRow.to_state.not_in(skipped))
        return int(self.session.scalar(query) or 0)

    def events(self, job_id: str) -> list[JobEvent]:
        rows = self.session.scalars(
            select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.id)
        )
        return [
            JobEvent(
                as_utc(row.at),
                JobState(row.from_state) if row.from_state else None,
                JobState(row.to_state),
                row.reason,
            )
            for row in rows
        ]

    def _job(self, row: JobRow | Row[Any], project: str) -> Job:
        """A job from its ORM row, or from a row of ``_job_columns`` (read without the ORM's
        bookkeeping, several times faster for the thousands a cycle reads)."""
        placed = None
        if row.cluster is not None and row.flavor is not None and row.period is not None:
            placed = Placed(
                cluster=row.cluster,
                flavor=row.flavor,
                rate_milli=row.rate_milli or 0,
                rate_version=row.rate_version or 0,
                period=row.period,
                hold_milli=row.hold_milli or 0,
            )
        return Job(
            id=row.id,
            spec=JobSpec(
                project=project,
                submitter=row.submitter,
                name=row.name,
                entrypoint=row.entrypoint,
                gpus=row.gpus,
                time_limit_seconds=row.time_limit_seconds,
                flavors=tuple(row.flavors),
                min_memory_gb=row.min_memory_gb,
                runtime_env=row.runtime_env,
                metadata=row.labels,
                image=row.image,
                priority=PriorityClass(row.priority),
                data_class=DataClass(row.data_class),
                preemptible=row.preemptible,
            ),
            state=JobState(row.state),
            submitted_at=as_utc(row.submitted_at),
            reason=row.reason,
            placed=placed,
            attempt=row.attempt,
            admitted_at=maybe_utc(row.admitted_at),
            started_at=maybe_utc(row.started_at),
            ended_at=maybe_utc(row.ended_at),
            charged_milli=row.charged_milli,
            charged_until=maybe_utc(row.charged_until),
            cancel_requested=row.cancel_requested,
            stop_cause=StopCause(row.stop_cause) if row.stop_cause else None,
            cause=from_json(row.cause) if row.cause else None,
            position=row.position,
            eta=maybe_utc(row.eta),
            dispatch_failures=row.dispatch_failures,
            next_dispatch_at=maybe_utc(row.next_dispatch_at),
            avoid_clusters=tuple(row.avoid_clusters or ()),
        )

    def gpus_by_project(self, states: Iterable[JobState]) -> dict[str, int]:
        """GPUs of the jobs in ``states``, per project."""
        query = (
            select(AccountRow.name, func.sum(JobRow.gpus))
            .join(AccountRow, AccountRow.id == JobRow.project_id)
            .where(JobRow.state.in_([state.value for state in states]))
            .group_by(AccountRow.name)
        )
        return {project: int(gpus or 0) for project, gpus in self.session.execute(query)}

    def first_admissions(
        self, since: datetime, until: datetime, projects: Sequence[str] | None = None
    ) -> list[tuple[str, datetime, datetime]]:
        """``(project, submitted, first admitted)`` of jobs first admitted in ``[since, until)``;
        a job preempted and admitted again counts once, with its first wait."""
        first = (
            select(JobEventRow.job_id, func.min(JobEventRow.at).label("admitted_at"))
            .where(JobEventRow.to_state == JobState.ADMITTED.value)
            .group_by(JobEventRow.job_id)
            .subquery()
        )
        query = (
            select(AccountRow.name, JobRow.submitted_at, first.c.admitted_at)
            .join(JobRow, JobRow.id == first.c.job_id)
            .join(AccountRow, AccountRow.id == JobRow.project_id)
            .where(first.c.admitted_at >= since, first.c.admitted_at < until)
        )
        if projects is not None:
            query = query.where(AccountRow.name.in_(list(projects)))
        return [
            (project, as_utc(submitted), as_utc(admitted))
            for project, submitted, admitted in self.session.execute(query)
        ]


def _job_columns() -> Select[Any]:
    """Every column of a job, the metadata column as ``labels`` (the ORM attribute's name),
    with its project's name as ``project_name``."""
    columns = [
        column.label("labels") if column.name == "metadata" else column
        for column in JobRow.__table__.c
    ]
    return select(*columns, AccountRow.name.label("project_name")).join(
        AccountRow, AccountRow.id == JobRow.project_id
    )


def _state_values(job: Job) -> dict[str, object]:
    """The columns of a job's row that change as it moves through its lifecycle."""
    placed = job.placed
    return {
        "state": job.state.value,
        "reason": job.reason,
        "cause": to_json(job.cause) if job.cause is not None else None,
        "attempt": job.attempt,
        "cluster": placed.cluster if placed else None,
        "flavor": placed.flavor if placed else None,
        "rate_milli": placed.rate_milli if placed else None,
        "rate_version": placed.rate_version if placed else None,
        "period": placed.period if placed else None,
        "hold_milli": placed.hold_milli if placed else None,
        "admitted_at": job.admitted_at,
        "started_at": job.started_at,
        "ended_at": job.ended_at,
        "charged_milli": job.charged_milli,
        "charged_until": job.charged_until,
        "cancel_requested": job.cancel_requested,
        "stop_cause": job.stop_cause.value if job.stop_cause else None,
        "position": job.position,
        "eta": job.eta,
        "dispatch_failures": job.dispatch_failures,
        "next_dispatch_at": job.next_dispatch_at,
        "avoid_clusters": list(job.avoid_clusters),
    }


def _add_while_current() -> TextClause:
    """One statement (PostgreSQL) inserting a job and its first event, only while the newest
    audit entry is ``:stamp``; it answers how many jobs it inserted (0 or 1). The job's values
    are bound by column name, the event's as ``event_<column>``."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]

    def typed(column: Column[Any], prefix: str) -> str:
        return f"CAST(:{prefix}{column.name} AS {column.type.compile(dialect=dialect)})"

    job_columns = list(JOBS.c)
    event_columns = [column for column in EVENTS.c if column.name not in ("id", "job_id")]
    sql = (
        f"WITH made AS (INSERT INTO {JOBS.name} ({_names(job_columns)}) "  # noqa: S608 (the tables' own names)
        f"SELECT {', '.join(typed(column, '') for column in job_columns)} "
        f"WHERE (SELECT coalesce(max(id), 0) FROM {AuditEntryRow.__tablename__}) = :stamp "
        "RETURNING id), "
        f"logged AS (INSERT INTO {EVENTS.name} (job_id, {_names(event_columns)}) "
        f"SELECT made.id, {', '.join(typed(column, 'event_') for column in event_columns)} "
        "FROM made) SELECT count(*) FROM made"
    )
    binds = [bindparam(column.name, type_=column.type) for column in job_columns]
    binds += [bindparam(f"event_{column.name}", type_=column.type) for column in event_columns]
    return text(sql).bindparams(*binds, bindparam("stamp", type_=Integer()))


def _names(columns: Iterable[Column[Any]]) -> str:
    return ", ".join(f'"{column.name}"' for column in columns)


_ADD_WHILE_CURRENT = _add_while_current()


def _event_values(job_id: str, event: JobEvent) -> dict[str, object]:
    return {
        "job_id": job_id,
        "at": event.at,
        "from_state": event.from_state.value if event.from_state else None,
        "to_state": event.to_state.value,
        "reason": event.reason,
    }
