"""Jobs: submit (with the quote), list, one job with its history, logs, cancel."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from jobs.cases import cancel_as, readable_job, submit_as, visible_jobs
from jobs.model import Job, JobEvent, JobSpec, JobState
from jobs.repository import JobRepository
from portal.api.common import (
    CSV_ANSWER,
    NO_NUL,
    Format,
    Limit,
    Offset,
    Page,
    ReportFormat,
    Segment,
    Strict,
    answer,
    page_csv,
)
from portal.deps import PortalDep, PrincipalDep
from portal.problems import Problem
from quotas.access import Principal
from quotas.admission import DataClass, PriorityClass
from quotas.quantities import Credits, Rate, parse_duration
from quotas.quote import QuoteLine
from scheduler.logs import LogsUnavailable

router = APIRouter(tags=["jobs"])

LOG_POLL_SECONDS = 1.0


class JobSubmission(Strict):
    project: str = Field(min_length=1, max_length=64)
    entrypoint: str = Field(min_length=1, max_length=16_384, description="The command to run")
    name: str = Field(default="job", min_length=1, max_length=128)
    gpus: int = Field(default=1, ge=1, le=100_000)
    time_limit: str = Field(default="1h", max_length=32, description="e.g. 4h, 90m, 2d")
    flavors: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=32)
    min_memory_gb: int | None = Field(default=None, ge=1, le=100_000)
    runtime_env: dict[str, Any] = Field(
        default={},
        description="Ray's runtime_env, limited to what a tenant may set (quotas.runtime_env): "
        "working_dir and py_modules as packages you uploaded, pip and uv as requirement "
        "specifiers, conda inline, env_vars that do not steer Ray or the GPUs",
    )
    metadata: dict[str, Annotated[str, Field(max_length=1000)]] = Field(default={})
    priority: PriorityClass = Field(
        default=PriorityClass.NORMAL,
        description="urgent needs the project's priority grant (else 403); normal needs none",
    )
    data_class: DataClass = DataClass.PUBLIC
    preemptible: bool = False


class QuoteLineOut(Strict):
    flavor: str
    rate: str = Field(description="Credits per GPU-hour")
    credits: str = Field(description="Credits for the whole time limit")
    training_per_credit: float


class EventOut(Strict):
    at: datetime
    from_state: JobState | None
    to_state: JobState
    reason: str


class JobOut(Strict):
    id: str
    name: str
    project: str
    submitter: str
    entrypoint: str
    gpus: int
    time_limit_seconds: int
    flavors: list[str]
    min_memory_gb: int | None
    priority: PriorityClass
    data_class: DataClass
    preemptible: bool
    metadata: dict[str, str]
    state: JobState
    reason: str = Field(description="Why it waits, or how it ended")
    position: int | None = Field(description="Place in the queue while it waits")
    eta: datetime | None = Field(description="Estimated start while it waits")
    submitted_at: datetime
    admitted_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    cluster: str | None
    flavor: str | None
    rate: str | None = Field(description="Credits per GPU-hour recorded at admission")
    rate_card_version: int | None
    held: str | None = Field(description="Credits held for the job")
    cancel_requested: bool


class JobDetail(JobOut):
    charged: str = Field(description="Credits charged, net of refunds, from the ledger")
    events: list[EventOut]


class Submitted(Strict):
    job: JobOut
    quote: list[QuoteLineOut]


def quote_out(line: QuoteLine) -> QuoteLineOut:
    return QuoteLineOut(
        flavor=line.flavor,
        rate=str(line.rate),
        credits=str(line.credits),
        training_per_credit=round(line.training_per_credit, 4),
    )


def job_out(job: Job) -> JobOut:
    placed = job.placed
    return JobOut(
        id=job.id,
        name=job.spec.name,
        project=job.spec.project,
        submitter=job.spec.submitter,
        entrypoint=job.spec.entrypoint,
        gpus=job.spec.gpus,
        time_limit_seconds=job.spec.time_limit_seconds,
        flavors=list(job.spec.flavors),
        min_memory_gb=job.spec.min_memory_gb,
        priority=job.spec.priority,
        data_class=job.spec.data_class,
        preemptible=job.spec.preemptible,
        metadata=dict(job.spec.metadata),
        state=job.state,
        reason=job.reason,
        position=job.position,
        eta=job.eta,
        submitted_at=job.submitted_at,
        admitted_at=job.admitted_at,
        started_at=job.started_at,
        ended_at=job.ended_at,
        cluster=placed.cluster if placed else None,
        flavor=placed.flavor if placed else None,
        rate=str(Rate(placed.rate_milli)) if placed else None,
        rate_card_version=placed.rate_version if placed else None,
        held=str(Credits(placed.hold_milli)) if placed else None,
        cancel_requested=job.cancel_requested,
    )


def event_out(event: JobEvent) -> EventOut:
    return EventOut(
        at=event.at, from_state=event.from_state, to_state=event.to_state, reason=event.reason
    )


@router.post(
    "/jobs",
    status_code=201,
    response_model=Submitted,
    summary="Submit a job; the answer carries its quote",
)
async def submit_job(body: JobSubmission, portal: PortalDep, principal: PrincipalDep) -> Response:
    try:
        seconds = parse_duration(body.time_limit)
    except ValueError as error:
        raise Problem(422, f"time_limit: {error}") from error
    fields = body.model_dump(exclude={"time_limit"})
    fields["flavors"] = tuple(body.flavors)
    spec = JobSpec(submitter=principal.user, time_limit_seconds=seconds, **fields)

    def submit() -> Submitted:
        with portal.books_for_one_write() as books:
            job, lines = submit_as(books, principal, spec, portal.settings.max_time_limit_seconds)
        return Submitted(job=job_out(job), quote=[quote_out(line) for line in lines])

    # one worker thread for the books; the answer is written on the event loop
    return answer(await run_in_threadpool(submit), 201)


@router.get(
    "/jobs",
    summary="Jobs you may see, newest first (?format=csv: the page as CSV)",
    response_model=Page[JobOut],
    responses=CSV_ANSWER,
)
def list_jobs(
    portal: PortalDep,
    principal: PrincipalDep,
    limit: Limit = 50,
    offset: Offset = 0,
    project: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    state: Annotated[list[JobState] | None, Query()] = None,
    submitter: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    form: Format = ReportFormat.JSON,
) -> BaseModel | Response:
    with portal.books() as books:
        jobs, total = visible_jobs(
            books,
            principal,
            project=project,
            states=state,
            submitter=submitter,
            limit=limit,
            offset=offset,
        )
    items = [job_out(job) for job in jobs]
    if form is ReportFormat.CSV:
        return page_csv(JobOut, items, "jobs.csv", total)
    return Page[JobOut](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/jobs/{job_id}", summary="One job: state, wait reason, position, ETA, charges, history"
)
def get_job(job_id: Segment, portal: PortalDep, principal: PrincipalDep) -> JobDetail:
    with portal.books() as books:
        job = readable_job(books, principal, job_id)
        repository = JobRepository(books.session)
        events = repository.events(job_id)
        charged = repository.charged_milli(job_id)
    return JobDetail(
        **job_out(job).model_dump(),
        charged=str(Credits(charged)),
        events=[event_out(event) for event in events],
    )


@router.post("/jobs/{job_id}/cancel", summary="Cancel: at once if queued, else on the next cycle")
def cancel_job(job_id: Segment, portal: PortalDep, principal: PrincipalDep) -> JobOut:
    with portal.books() as books:
        return job_out(cancel_as(books, principal, job_id))


@router.get(
    "/jobs/{job_id}/logs",
    summary="The job's output so far",
    response_class=PlainTextResponse,
)
async def job_logs(
    job_id: Segment, portal: PortalDep, principal: PrincipalDep
) -> PlainTextResponse:
    job = await asyncio.to_thread(_readable, portal, principal, job_id)
    try:
        text = await portal.logs.read(job)
    except LogsUnavailable as error:
        raise Problem(503, str(error)) from error
    return PlainTextResponse(text)


def _readable(portal: PortalDep, principal: Principal, job_id: str) -> Job:
    with portal.books() as books:
        return readable_job(books, principal, job_id)


@router.get(
    "/jobs/{job_id}/logs/stream",
    summary="The job's output as it is written, until the job ends",
    response_class=StreamingResponse,
)
async def stream_logs(
    job_id: Segment, portal: PortalDep, principal: PrincipalDep
) -> StreamingResponse:
    job = await asyncio.to_thread(_readable, portal, principal, job_id)

    async def refresh(job: Job) -> Job:
        return await asyncio.to_thread(_readable, portal, principal, job.id)

    chunks = portal.logs.follow(job, refresh, LOG_POLL_SECONDS)
    return StreamingResponse(chunks, media_type="text/plain; charset=utf-8")
