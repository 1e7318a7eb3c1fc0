"""The queue's front door: submit a job (checked, quoted, queued) and ask to cancel one.

The portal and the CLI call these; they only write desired state. The scheduler does the rest.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import replace

from quotas.accounts import AccountKind
from quotas.admission import Snapshot, refusal
from quotas.db.repositories import JobRepository
from quotas.errors import AlreadyExists, InvalidInput
from quotas.flavors import acceptable_flavors
from quotas.jobs import Job, JobEvent, JobSpec, JobState
from quotas.quantities import format_duration
from quotas.quote import QuoteLine, quote
from quotas.service import Books
from scheduler.snapshot import free_capacity

JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def new_job_id() -> str:
    return f"gp-{secrets.token_hex(6)}"


def submit(
    books: Books, spec: JobSpec, max_time_limit_seconds: int, job_id: str | None = None
) -> tuple[Job, list[QuoteLine]]:
    """Queue a job after checking what can be checked at the door; returns it with its quote.

    A class above normal (``urgent``) needs the project's priority grant (``quotas.priorities``).
    ``job_id`` lets a client choose the id (Ray's ``submission_id``); a taken one is refused.
    """
    tree = books.tree()
    if tree[spec.project].kind is not AccountKind.PROJECT:
        raise InvalidInput(f"{spec.project} is a {tree[spec.project].kind}, not a project")
    books.require_priority_grant(spec.project, spec.priority)
    if spec.time_limit_seconds > max_time_limit_seconds:
        raise InvalidInput(
            f"time limit {format_duration(spec.time_limit_seconds)} is over the cap of "
            f"{format_duration(max_time_limit_seconds)}"
        )
    flavors = books.flavors.all()
    acceptable_flavors(flavors, spec.flavors, spec.min_memory_gb)  # unknown flavor -> error
    rate_card = books.rate_card()
    never = refusal(
        Snapshot(
            now=books.clock(),
            period="",
            tree=tree,
            flavors=flavors,
            rate_card=rate_card,
            clusters=tuple(free_capacity(books.clusters.all(), [])),
            committed={},
            used={},
        ),
        spec.request("", books.clock()),
    )
    if never is not None:
        raise InvalidInput(f"this job could never run in this pool: {never.sentence}")
    lines = quote(
        flavors,
        rate_card,
        spec.gpus,
        spec.time_limit_seconds,
        spec.flavors,
        spec.min_memory_gb,
    )
    jobs = JobRepository(books.session)
    if job_id is not None:
        if not JOB_ID.fullmatch(job_id):
            raise InvalidInput(
                f"{job_id!r} is not a valid job id: 1-64 letters, digits, '.', '_', '-'"
            )
        if jobs.exists(job_id):
            raise AlreadyExists(f"job id {job_id} is taken")
    job = Job(
        id=job_id or new_job_id(), spec=spec, state=JobState.QUEUED, submitted_at=books.clock()
    )
    jobs.add(job)
    return job, lines


def request_cancel(books: Books, job_id: str, actor: str) -> Job:
    """Cancel a queued job at once; ask the scheduler to stop one that was admitted."""
    jobs = JobRepository(books.session)
    job = jobs.get(job_id, for_update=True)
    if job.state.is_terminal:
        return job
    if job.state is JobState.QUEUED:
        cancelled = replace(
            job, state=JobState.CANCELLED, reason=f"cancelled by {actor}", ended_at=books.clock()
        )
        jobs.save(
            cancelled,
            JobEvent(
                books.clock(),
                job.state,
                JobState.CANCELLED,
                f"cancelled by {actor} before it started",
            ),
        )
        return cancelled
    asked = replace(job, cancel_requested=True)
    jobs.save(asked)
    return asked
