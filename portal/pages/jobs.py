"""Job pages: the jobs a viewer may see, the submit form with its live quote, one job with its
timeline, charges and live output, and cancelling.

Every read and write goes through ``jobs.cases`` (the API's use cases) with the viewer's
principal: a job another organization runs is "not found" here exactly as in the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, Response

from jobs.cases import cancel_as, readable_job, submit_as, visible_jobs
from jobs.model import JobSpec, JobState
from jobs.repository import JobRepository
from portal.api.common import NO_NUL, Segment
from portal.deps import PortalDep
from portal.pages.render import (
    Csrf,
    Offset,
    Paging,
    Viewer,
    check_form,
    render,
    see_other,
    signed_in,
)
from portal.scopes import JOBS, READ_OR_JOBS
from quotas.admission import DataClass, PriorityClass
from quotas.cases.accounts import account_view, running_period
from quotas.cases.catalog import job_quote
from quotas.errors import BooksError, InvalidInput
from quotas.flavors import Flavor
from quotas.quantities import Credits, parse_duration
from quotas.quote import QuoteLine

router = APIRouter(include_in_schema=False)

SCOPES = {
    ("GET", "/jobs"): READ_OR_JOBS,
    ("GET", "/jobs/new"): JOBS,
    ("GET", "/jobs/new/quote"): READ_OR_JOBS,
    ("POST", "/jobs/new"): JOBS,
    ("GET", "/jobs/{job_id}"): READ_OR_JOBS,
    ("GET", "/jobs/{job_id}/live"): READ_OR_JOBS,
    ("POST", "/jobs/{job_id}/cancel"): JOBS,
}

PAGE_SIZE = 25
ACTIVE = (JobState.QUEUED, JobState.ADMITTED, JobState.STARTING, JobState.RUNNING)


@router.get("/jobs")
def jobs_page(
    request: Request,
    portal: PortalDep,
    state: Annotated[list[JobState] | None, Query()] = None,
    project: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    mine: bool = False,
    offset: Offset = 0,
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    project = project or None
    with portal.books() as books:
        found, total = visible_jobs(
            books,
            viewer.principal,
            project=project,
            states=state,
            submitter=viewer.user if mine else None,
            limit=PAGE_SIZE,
            offset=offset,
        )
        projects = viewer.principal.readable_projects(books.tree())
    filters = [("state", each.value) for each in state or ()]
    if project:
        filters.append(("project", project))
    if mine:
        filters.append(("mine", "true"))
    return render(
        viewer,
        "jobs.html",
        jobs=found,
        paging=Paging(total, PAGE_SIZE, offset, "/jobs", tuple(filters)),
        states=list(JobState),
        chosen_states={each.value for each in state or ()},
        project=project,
        projects=sorted(projects) if projects is not None else None,
        mine=mine,
    )


@dataclass
class Draft:
    """What the submit form holds: a fresh form, or one sent back with what was wrong."""

    project: str = ""
    name: str = "job"
    entrypoint: str = ""
    gpus: int = 1
    time_limit: str = "1h"
    flavors: tuple[str, ...] = ()
    priority: PriorityClass = PriorityClass.NORMAL
    data_class: DataClass = DataClass.PUBLIC
    preemptible: bool = False


@dataclass
class Quote:
    lines: list[QuoteLine]
    rate_card_version: int | None
    left: Credits | None
    problem: str | None = None


def _quote(portal: PortalDep, viewer: Viewer, draft: Draft) -> Quote:
    """The draft's quote and its project's available credits; what is wrong instead, if so."""
    try:
        seconds = parse_duration(draft.time_limit)
    except ValueError as error:
        return Quote([], None, None, f"{viewer.t('submit.time_limit')}: {error}")
    left = None
    with portal.books() as books:
        try:
            card, lines = job_quote(books, draft.gpus, seconds, draft.flavors)
        except BooksError as error:
            return Quote([], None, None, str(error))
        if draft.project and draft.project in viewer.principal.projects:
            period = running_period(books)
            if period is not None:
                view = account_view(books, viewer.principal, draft.project, period)
                left = view.balances.available
    return Quote(lines, card.version, left)


def _flavors(portal: PortalDep) -> list[Flavor]:
    with portal.books() as books:
        return sorted(books.flavors.all().values(), key=lambda flavor: flavor.name)


def _submit_form(
    portal: PortalDep, viewer: Viewer, draft: Draft, error: str | None = None, status: int = 200
) -> HTMLResponse:
    submittable = sorted(viewer.principal.projects)
    if not draft.project and submittable:
        draft.project = submittable[0]
    return render(
        viewer,
        "submit.html",
        status=status,
        draft=draft,
        projects=submittable,
        flavors=_flavors(portal),
        priorities=list(PriorityClass),
        data_classes=list(DataClass),
        quote=_quote(portal, viewer, draft),
        error=error,
    )


@router.get("/jobs/new")
def submit_page(
    request: Request,
    portal: PortalDep,
    project: Annotated[str, Query(max_length=64, pattern=NO_NUL)] = "",
    gpus: Annotated[int, Query(ge=1, le=100_000)] = 1,
    time_limit: Annotated[str, Query(max_length=32)] = "1h",
    flavors: Annotated[list[str] | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    draft = Draft(project=project, gpus=gpus, time_limit=time_limit, flavors=tuple(flavors or ()))
    return _submit_form(portal, viewer, draft)


@router.get("/jobs/new/quote")
def quote_part(
    request: Request,
    portal: PortalDep,
    project: Annotated[str, Query(max_length=64, pattern=NO_NUL)] = "",
    gpus: Annotated[int, Query(ge=1, le=100_000)] = 1,
    time_limit: Annotated[str, Query(max_length=32)] = "1h",
    flavors: Annotated[list[str] | None, Query(max_length=32)] = None,
) -> HTMLResponse:
    """The quote part of the submit form, for its script to swap in as the fields change."""
    viewer = signed_in(request, portal)
    draft = Draft(project=project, gpus=gpus, time_limit=time_limit, flavors=tuple(flavors or ()))
    return render(viewer, "quote_part.html", draft=draft, quote=_quote(portal, viewer, draft))


@router.post("/jobs/new")
def submit_job(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    project: Annotated[str, Form(max_length=64, pattern=NO_NUL)],
    entrypoint: Annotated[str, Form(min_length=1, max_length=16_384)],
    name: Annotated[str, Form(min_length=1, max_length=128)] = "job",
    gpus: Annotated[int, Form(ge=1, le=100_000)] = 1,
    time_limit: Annotated[str, Form(max_length=32)] = "1h",
    flavors: Annotated[list[str] | None, Form(max_length=32)] = None,
    priority: Annotated[PriorityClass, Form()] = PriorityClass.NORMAL,
    data_class: Annotated[DataClass, Form()] = DataClass.PUBLIC,
    preemptible: Annotated[bool, Form()] = False,
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = Draft(
        project,
        name,
        entrypoint,
        gpus,
        time_limit,
        tuple(flavors or ()),
        priority,
        data_class,
        preemptible,
    )
    try:
        try:
            seconds = parse_duration(time_limit)
        except ValueError as error:
            raise InvalidInput(f"time limit: {error}") from error
        spec = JobSpec(
            submitter=viewer.user,
            project=project,
            entrypoint=entrypoint,
            name=name,
            gpus=gpus,
            time_limit_seconds=seconds,
            flavors=draft.flavors,
            priority=priority,
            data_class=data_class,
            preemptible=preemptible,
        )
        with portal.books_for_one_write() as books:
            limit = portal.settings.max_time_limit_seconds
            job, _ = submit_as(books, viewer.principal, spec, limit)
    except BooksError as error:
        return _submit_form(portal, viewer, draft, error=str(error), status=422)
    return see_other(f"/jobs/{job.id}")


def _job_context(portal: PortalDep, viewer: Viewer, job_id: str) -> dict[str, Any]:
    with portal.books() as books:
        job = readable_job(books, viewer.principal, job_id)
        repository = JobRepository(books.session)
        events = repository.events(job_id)
        charged = Credits(repository.charged_milli(job_id))
    return {"job": job, "events": events, "charged": charged}


@router.get("/jobs/{job_id}")
def job_page(job_id: Segment, request: Request, portal: PortalDep) -> HTMLResponse:
    viewer = signed_in(request, portal)
    return render(viewer, "job.html", **_job_context(portal, viewer, job_id))


@router.get("/jobs/{job_id}/live")
def job_live_part(job_id: Segment, request: Request, portal: PortalDep) -> HTMLResponse:
    """The job's state, why, place in the queue, charges and timeline, for the page's script to
    swap in every few seconds."""
    viewer = signed_in(request, portal)
    return render(viewer, "job_live.html", **_job_context(portal, viewer, job_id))


@router.post("/jobs/{job_id}/cancel")
def cancel_job(
    job_id: Segment,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    with portal.books() as books:
        cancel_as(books, viewer.principal, job_id)
    return see_other(f"/jobs/{job_id}")
