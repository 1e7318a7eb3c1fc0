"""The Ray Jobs-compatible API, so Ray's own client works against gpupool with a token header.

``ray job submit --address http://<portal> --headers '{"Authorization": "Bearer <token>"}'``
and ``ray.job_submission.JobSubmissionClient(address, headers=...)`` talk to these routes as they
would to a Ray dashboard (the shapes of Ray 2.60's ``job_head.py``), but a job submitted here is
a gpupool job: queued, admitted by fair share and budget, charged to a project, and run on
whichever pooled Ray cluster the scheduler chooses. Roles and scopes apply exactly as in
``/api/v1`` (the same use cases, ``jobs.cases``); a job the caller may not read answers
404, as if it did not exist.

How Ray's submission maps onto a gpupool job:

* ``submission_id`` is the submitter's own name for the job: ids are namespaced per
  submitter, so the job is kept under the gpupool job id ``<submission_id>.<owner tag>`` (the
  tag is the start of the sha256 of the submitter's name; see ``own_job_id``), and this API
  shows the submitter their job by the id they chose, everyone else (a pi, an admin) by the
  gpupool job id. One the submitter already uses, or that names a job they can see, is refused
  with 409, so a retried submit never runs twice; another user's job of the same name is not
  theirs and is never mentioned: the submit answers as for a fresh id. A submission id is 1-48
  letters, digits, '.', '_' or '-'. Without one gpupool picks the id. ``job_id`` in answers is
  the same id.
* ``entrypoint_num_gpus`` is the job's GPU count, a whole number of at least 1; **without it
  the job gets 1 GPU** (Ray's own default of 0 GPUs is not a job gpupool runs).
* ``entrypoint_resources`` keys name acceptable flavors, by flavor name or by the flavor's Ray
  resource; each amount, if given, must equal the GPU count. Without it any flavor will do.
* ``metadata`` is stored as the job's metadata; ``metadata["project"]`` names the project to
  charge (needed unless the caller is in exactly one project), ``metadata["time_limit"]`` the
  time limit (e.g. ``4h``; default ``settings.default_time_limit``), ``metadata["name"]`` the
  job's name (default ``ray-job``), and three keys set how the job is scheduled:
  ``metadata["priority"]`` is ``urgent``, ``normal`` (the default) or ``opportunistic``
  (``urgent`` only in a project holding a priority grant, else 403 as on ``/api/v1/jobs``);
  ``metadata["data_class"]`` is ``public`` (the default), ``sensitive`` (national and domestic
  sites only) or ``restricted`` (national sites only); ``metadata["preemptible"]`` is ``true``
  or ``false`` (the default). Any other value is refused with 400.
* ``runtime_env`` is passed to Ray as given, once it is known to hold only what a tenant may set
  (``quotas.runtime_env``: uploaded packages, requirement specifiers, an inline conda environment,
  env_vars that do not steer Ray or the GPUs; anything else, or any path, is refused with 400 that
  quotes nothing from the request or the host), but for the packages it names. A local
  ``working_dir`` (or ``py_modules``) is zipped by the client, named ``gcs://_ray_pkg_<hash>.zip``
  after the directory, looked for with ``GET /api/packages/gcs/<name>`` and uploaded with ``PUT``
  if missing. Packages belong to their uploader: both routes answer for the caller's own uploads
  only, so a package another user uploaded under the same name (names are easy to forge) is not
  the caller's, answers 404, and the client uploads its own. At submit each ``gcs://`` URI is
  looked up among the submitter's own uploads (400 if missing) and replaced, in the job's
  runtime_env, by ``gcs://_ray_pkg_<sha256 of the zip>.zip``; at dispatch the scheduler forwards
  exactly those bytes, uploaded by the submitter, to the cluster the job runs on. A name on a
  cluster then means one content: two tenants share one only when their bytes are the same. A
  runtime_env may also name such a content-addressed package directly, if the submitter uploaded
  those bytes. Uploaded wheels (``py_modules`` ``.whl`` files, named by file name rather than
  content) are refused at submit. Each upload is charged to a project's package storage quota: the
  one the ``X-Gpupool-Project`` header names, else the uploader's only project (see
  ``portal.api.packages``); past the quota it is refused with 413 (507 when the pool's storage is
  full), and packages no job needs any more are removed by the scheduler.
* ``entrypoint_num_cpus``, ``entrypoint_memory`` and ``entrypoint_label_selector`` are refused:
  gpupool reserves GPUs, and places jobs itself.

Status, as Ray names it: queued, admitted and preempted (requeued) jobs are ``PENDING`` with the
wait reason, queue position and estimated start in ``message``; starting and running ones are
``RUNNING``; succeeded ``SUCCEEDED``; cancelled ``STOPPED``; failed, timed out and rejected
``FAILED`` with the reason. ``start_time`` is when the job was submitted (Ray's meaning: when the
job was accepted), ``end_time`` when it ended, both in Unix milliseconds.

``DELETE /api/jobs/{id}`` removes a finished job from this API only: gpupool's records of a job
are the books (charges, history) and stay; the deletion is written to the audit log (action
``job.ray_delete``), and a job deleted so answers 404 here and leaves the Ray job list, while
``/api/v1/jobs`` still shows it. Its id stays taken.

The log WebSocket (``/api/jobs/{id}/logs/tail``) refuses an upgrade whose ``Origin`` is not the
portal's own (``settings.base_url``), so a page on another site cannot read logs with a
signed-in browser's session; Ray's client sends no ``Origin`` and is let in. Ids in paths, like
all text here, may not hold NUL characters (422, as in ``/api/v1``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import io
import math
import re
import zipfile
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Request, WebSocket, WebSocketDisconnect
from pydantic import Field

from jobs.cases import check_may_stop, readable_job, request_cancel, submit_as, visible_jobs
from jobs.model import Job, JobSpec, JobState
from portal.api.common import Segment, Strict
from portal.api.packages import PROJECT_HEADER, charged_project
from portal.deps import Portal, PortalDep, PrincipalDep, authenticate
from portal.problems import Problem
from quotas.access import Principal
from quotas.admission import DataClass, PriorityClass
from quotas.cases.packages import check_may_upload, sole_project, store_package
from quotas.causes import Ended, Outcome, Stopping
from quotas.db.access import PackageRepository
from quotas.errors import BooksError, NotFound
from quotas.quantities import parse_duration
from quotas.runtime_env import PACKAGE_NAME
from quotas.service import Books
from scheduler.logs import LogsUnavailable

router = APIRouter(tags=["ray jobs"])
T = TypeVar("T")

API_VERSION = "4"
"""The Jobs API version Ray 2.60's dashboard reports (``ray.dashboard.modules.version``)."""
SESSION_NAME = "gpupool"
DEFAULT_NAME = "ray-job"
MAX_GPUS = 100_000
DELETE_ACTION = "job.ray_delete"
LIST_LIMIT = 1000
"""``GET /api/jobs/`` (unpaged in Ray) answers at most this many jobs, newest first."""
LOG_POLL_SECONDS = 1.0
PACKAGE_PROTOCOL = "gcs"
TRUTH = {"true": True, "false": False}
WS_POLICY_VIOLATION = 1008
SUBMISSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,47}")
"""A client's own name for its job: with the owner tag it must fit a gpupool job id (64)."""
OWNER_TAG_LENGTH = 12
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


# -- request and answer shapes (Ray's) --------------------------------------------------------


class RaySubmission(Strict):
    """Ray's ``JobSubmitRequest``."""

    entrypoint: str = Field(min_length=1, max_length=16_384)
    submission_id: str | None = Field(default=None, max_length=64)
    job_id: str | None = Field(default=None, max_length=64, description="Deprecated by Ray")
    runtime_env: dict[str, Any] | None = None
    metadata: dict[str, Annotated[str, Field(max_length=1000)]] | None = None
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None
    entrypoint_memory: int | None = None
    entrypoint_resources: dict[str, float] | None = None
    entrypoint_label_selector: dict[str, str] | None = None


class RayJobDetails(Strict):
    """Ray's ``JobDetails`` for a submitted job."""

    type: str = "SUBMISSION"
    job_id: str
    submission_id: str
    driver_info: None = None
    status: str
    entrypoint: str
    message: str
    error_type: str | None
    start_time: int | None = Field(description="Submitted at, Unix ms")
    end_time: int | None = Field(description="Ended at, Unix ms")
    metadata: dict[str, str]
    runtime_env: dict[str, Any]
    driver_agent_http_address: None = None
    driver_node_id: None = None
    driver_exit_code: int | None


class Submitted(Strict):
    job_id: str
    submission_id: str


class Stopped(Strict):
    stopped: bool


class Deleted(Strict):
    deleted: bool


class Logs(Strict):
    logs: str


# -- mapping gpupool's jobs onto Ray's statuses ------------------------------------------------


def ray_status(job: Job) -> tuple[str, str, str | None]:
    """Ray's ``(status, message, error_type)`` for a gpupool job."""
    state = job.state
    where = f"{job.placed.cluster} ({job.placed.flavor})" if job.placed else "its cluster"
    reason = job.reason
    if state is JobState.QUEUED:
        parts = [
            f"waiting in gpupool's queue: {reason}" if reason else "waiting in gpupool's queue"
        ]
        if job.position is not None:
            parts.append(f"position {job.position} in the queue")
        if job.eta is not None:
            parts.append(f"estimated start {job.eta:%Y-%m-%d %H:%M} UTC")
        return "PENDING", _stopping("; ".join(parts), job), None
    if state is JobState.ADMITTED:
        detail = f"; {reason}" if reason else ""
        return "PENDING", _stopping(f"admitted on {where}; launching{detail}", job), None
    if state is JobState.PREEMPTED:
        return "PENDING", f"preempted ({reason}); it will be queued again", None
    if state is JobState.STARTING:
        return "RUNNING", _stopping(f"starting on {where}", job), None
    if state is JobState.RUNNING:
        if isinstance(job.cause, Stopping):  # the scheduler is stopping it, and says why
            return "RUNNING", f"running on {where}; {reason}", None
        return "RUNNING", _stopping(f"running on {where}", job), None
    if state is JobState.SUCCEEDED:
        return "SUCCEEDED", f"succeeded on {where}", None
    if state is JobState.CANCELLED:
        return "STOPPED", reason or "cancelled", None
    if state is JobState.TIMED_OUT:
        return "FAILED", f"timed out: {reason}", "TIMED_OUT"
    if state is JobState.REJECTED:
        return "FAILED", f"rejected: {reason}", "REJECTED"
    fault = isinstance(job.cause, Ended) and job.cause.outcome is Outcome.SYSTEM_FAULT
    return "FAILED", reason or "failed", "SYSTEM_FAULT" if fault else "FAILED"


def _stopping(message: str, job: Job) -> str:
    return f"{message}; stop requested" if job.cancel_requested else message


def exit_code(job: Job) -> int | None:
    """The entrypoint's exit code, where gpupool knows it."""
    if job.state is JobState.SUCCEEDED:
        return 0
    if job.state is JobState.FAILED and isinstance(job.cause, Ended):
        return job.cause.exit_code
    return None


def job_details(job: Job, viewer: str | None = None) -> RayJobDetails:
    """Ray's ``JobDetails`` for ``job`` as ``viewer`` sees it (their own job by the submission
    id they chose; see ``ray_id``)."""
    status, message, error_type = ray_status(job)
    shown = job.id if viewer is None else ray_id(job, viewer)
    return RayJobDetails(
        job_id=shown,
        submission_id=shown,
        status=status,
        entrypoint=job.spec.entrypoint,
        message=message,
        error_type=error_type,
        start_time=_ms(job.submitted_at),
        end_time=_ms(job.ended_at),
        metadata=dict(job.spec.metadata),
        runtime_env=dict(job.spec.runtime_env),
        driver_exit_code=exit_code(job),
    )


def _ms(at: datetime | None) -> int | None:
    return None if at is None else int(at.timestamp() * 1000)


# -- turning a Ray submission into a gpupool one -----------------------------------------------


def gpu_count(asked: float | None) -> int:
    if asked is None:
        return 1
    if not math.isfinite(asked) or asked > MAX_GPUS:
        raise Problem(400, f"entrypoint_num_gpus must be at most {MAX_GPUS}, got {asked:g}")
    if asked != int(asked):
        raise Problem(
            400,
            f"entrypoint_num_gpus must be a whole number of GPUs, got {asked:g}; gpupool "
            "reserves whole GPUs",
        )
    if asked < 1:
        raise Problem(400, f"entrypoint_num_gpus must be at least 1, got {asked:g}")
    return int(asked)


def acceptable_flavors(books: Books, resources: Mapping[str, float], gpus: int) -> tuple[str, ...]:
    """Flavors named by ``entrypoint_resources`` keys (flavor names or their Ray resources)."""
    flavors = books.flavors.all()
    by_resource = {flavor.ray_resource: name for name, flavor in flavors.items()}
    chosen: list[str] = []
    unknown: list[str] = []
    for key, amount in resources.items():
        name = key if key in flavors else by_resource.get(key)
        if name is None:
            unknown.append(key)
            continue
        if amount != gpus:
            raise Problem(
                400,
                f"entrypoint_resources[{key!r}] is {amount:g} but the job asks for {gpus} "
                "GPU(s) (entrypoint_num_gpus); gpupool reserves entrypoint_num_gpus GPUs of "
                "one of the flavors named, so give each the same amount",
            )
        if name not in chosen:
            chosen.append(name)
    if unknown:
        known = ", ".join(
            name if flavor.ray_resource == name else f"{name} (Ray resource {flavor.ray_resource})"
            for name, flavor in sorted(flavors.items())
        )
        raise Problem(
            400,
            f"entrypoint_resources names no flavor: {', '.join(sorted(unknown))}; "
            f"the flavors are {known}",
        )
    return tuple(chosen)


def project_of(principal: Principal, metadata: Mapping[str, str]) -> str:
    named = metadata.get("project", "").strip()
    if named:
        return named
    return sole_project(
        principal,
        'say which project to charge with metadata {"project": "<name>"} '
        '(e.g. --metadata-json \'{"project": "..."}\')',
    )


def refuse_unsupported(body: RaySubmission) -> None:
    for field, value in (
        ("entrypoint_num_cpus", body.entrypoint_num_cpus),
        ("entrypoint_memory", body.entrypoint_memory),
    ):
        if value:
            raise Problem(
                400, f"{field} is not supported: gpupool reserves GPUs only; leave it out"
            )
    if body.entrypoint_label_selector:
        raise Problem(
            400,
            "entrypoint_label_selector is not supported: gpupool chooses the cluster and "
            "flavor; name acceptable flavors in entrypoint_resources instead",
        )


def _choice(metadata: Mapping[str, str], key: str, choices: Mapping[str, T], default: T) -> T:
    """``metadata[key]`` read as one of ``choices`` (any case), or ``default`` without it."""
    given = metadata.get(key)
    if given is None:
        return default
    found = choices.get(given.strip().lower())
    if found is None:
        raise Problem(400, f"metadata {key} must be one of {', '.join(choices)}; got {given!r}")
    return found


def scheduling_fields(metadata: Mapping[str, str]) -> dict[str, Any]:
    """The job's priority, data class and preemptibility, from Ray metadata (all strings)."""
    return {
        "priority": _choice(
            metadata, "priority", {p.value: p for p in PriorityClass}, PriorityClass.NORMAL
        ),
        "data_class": _choice(
            metadata, "data_class", {d.value: d for d in DataClass}, DataClass.PUBLIC
        ),
        "preemptible": _choice(metadata, "preemptible", TRUTH, False),
    }


def spec_fields(
    books: Books, principal: Principal, body: RaySubmission, default_time_limit: str
) -> dict[str, Any]:
    """The gpupool job a Ray submission asks for; refuses what cannot be honoured."""
    refuse_unsupported(body)
    metadata = dict(body.metadata or {})
    runtime_env = dict(body.runtime_env or {})
    gpus = gpu_count(body.entrypoint_num_gpus)
    flavors = acceptable_flavors(books, body.entrypoint_resources or {}, gpus)
    limit = metadata.get("time_limit", default_time_limit)
    try:
        seconds = parse_duration(limit)
    except ValueError as error:
        raise Problem(400, f"metadata time_limit: {error}") from error
    scheduling = scheduling_fields(metadata)
    return {
        "project": project_of(principal, metadata),
        "name": metadata.get("name", DEFAULT_NAME),
        "entrypoint": body.entrypoint,
        "gpus": gpus,
        "time_limit_seconds": seconds,
        "flavors": flavors,
        "runtime_env": runtime_env,
        "metadata": metadata,
        **scheduling,
    }


# -- submission ids, namespaced per submitter ---------------------------------------------------


def owner_tag(user: str) -> str:
    """A short, fixed-length tag of ``user`` that fits a job id, whatever their name holds."""
    return hashlib.sha256(user.encode()).hexdigest()[:OWNER_TAG_LENGTH]


def own_job_id(user: str, submission_id: str) -> str:
    """The gpupool job id of the job ``user`` submits under ``submission_id``.

    Submission ids are namespaced per submitter rather than global: with a global id, a 409
    for an id taken by a job the caller cannot see would tell them that job exists. Each user's
    ids live under their own tag, so another user's job of the same name is simply not in the
    caller's way, and the submit answers exactly as for a fresh id.
    """
    return f"{submission_id}.{owner_tag(user)}"


def ray_id(job: Job, viewer: str) -> str:
    """The id this API shows ``viewer`` for ``job``: the submission id they chose for a job of
    their own, else the gpupool job id (which ``named_job`` finds for anyone who may read it)."""
    suffix = f".{owner_tag(viewer)}"
    chosen = job.id.removesuffix(suffix)
    if job.spec.submitter == viewer and chosen != job.id and SUBMISSION_ID.fullmatch(chosen):
        return chosen
    return job.id


def named_job(books: Books, principal: Principal, name: str) -> Job:
    """The job ``name`` means to ``principal`` in this API: their own job of that submission
    id, else the job of that gpupool id if they may read it; "not found" otherwise."""
    if SUBMISSION_ID.fullmatch(name):
        with contextlib.suppress(NotFound):
            own = readable_job(books, principal, own_job_id(principal.user, name))
            if own.spec.submitter == principal.user:
                return own
    return readable_job(books, principal, name)


def chosen_job_id(books: Books, principal: Principal, submission_id: str) -> str:
    """The job id for a submit with a client-chosen ``submission_id``; 409 when it already
    names a job the caller can see (their own, or one of a project they may read, even if
    deleted from this API), so a retried submit never runs twice."""
    if not SUBMISSION_ID.fullmatch(submission_id):
        raise Problem(
            400,
            "submission_id must be 1-48 letters, digits, '.', '_' or '-', starting with a "
            "letter or digit",
        )
    try:
        named_job(books, principal, submission_id)
    except NotFound:
        return own_job_id(principal.user, submission_id)
    raise Problem(
        409, f"a job with submission_id {submission_id} already exists; use a different one"
    )


# -- what was deleted from this API --------------------------------------------------------------


def _target(job_id: str) -> str:
    return f"job/{job_id}"


def is_deleted(books: Books, job_id: str) -> bool:
    return bool(books.audit.entries(action=DELETE_ACTION, target=_target(job_id), limit=1))


def deleted_since(books: Books, since: datetime) -> set[str]:
    """Ids of jobs deleted from this API since ``since`` (a job is deleted after it was
    submitted, so the oldest job listed bounds the search)."""
    found: set[str] = set()
    before: int | None = None
    while True:
        page = books.audit.entries(action=DELETE_ACTION, since=since, before_id=before, limit=500)
        found.update(entry.target.removeprefix("job/") for entry in page)
        if len(page) < 500:
            return found
        before = min(entry.id for entry in page)


def visible_job(books: Books, principal: Principal, job_id: str) -> Job:
    """The job ``job_id`` names for the principal (``named_job``), or 404 when they may not
    read it or it was deleted from this API."""
    job = named_job(books, principal, job_id)
    if is_deleted(books, job.id):
        raise NotFound(f"no job {job_id}")
    return job


# -- routes -----------------------------------------------------------------------------------


@functools.cache
def _ray_release() -> tuple[str, str]:
    import ray  # heavy, and only this route needs it

    return str(ray.__version__), str(ray.__commit__)


@router.get("/api/version", summary="Which Ray Jobs API this is (Ray's clients check it)")
def version() -> dict[str, str]:
    ray_version, ray_commit = _ray_release()
    return {
        "version": API_VERSION,
        "ray_version": ray_version,
        "ray_commit": ray_commit,
        "session_name": SESSION_NAME,
    }


def _package_uri(protocol: str, name: str) -> str:
    if protocol != PACKAGE_PROTOCOL or not PACKAGE_NAME.fullmatch(name):
        raise Problem(
            400,
            f"packages are named gcs://<name> with a name of letters, digits, '.', '_', '-'; "
            f"got {protocol}://{name}",
        )
    return f"{protocol}://{name}"


@router.get(
    "/api/packages/{protocol}/{name}",
    summary="Whether you uploaded a working_dir package so named (200) or not (404)",
)
def package_exists(
    protocol: Segment, name: Segment, portal: PortalDep, principal: PrincipalDep
) -> None:
    """Answers for the caller's own uploads only: another user's package of the same name is
    not theirs, so the client uploads its own."""
    uri = _package_uri(protocol, name)
    with portal.books() as books:
        if not PackageRepository(books.session).exists(principal.user, uri):
            raise Problem(404, f"you uploaded no package {uri}")


@router.put("/api/packages/{protocol}/{name}", summary="Upload a working_dir package (zip)")
async def upload_package(
    protocol: Segment, name: Segment, request: Request, portal: PortalDep, principal: PrincipalDep
) -> None:
    """Keep the caller's package, for the caller only. Names are hashes chosen by the client,
    so the caller's package already here under the name is kept as it is, never overwritten;
    another user's of the same name is another package. The upload is charged to one of the
    caller's projects and refused whole past its storage quota (``portal.api.packages``)."""
    uri = _package_uri(protocol, name)
    check_may_upload(principal)  # before the body is read
    named = request.headers.get(PROJECT_HEADER, "").strip() or None

    def charged() -> str:
        with portal.books() as books:
            return charged_project(books, principal, named)

    project = await asyncio.to_thread(charged)
    content = await request.body()
    if not zipfile.is_zipfile(io.BytesIO(content)):
        raise Problem(400, f"package {uri} is not a zip archive")

    def store() -> None:
        with portal.books() as books:
            quota = portal.settings.package_quota
            store_package(books, principal.user, project, uri, content, quota)

    await asyncio.to_thread(store)


@router.post("/api/jobs/", summary="Submit a job as Ray's client does; gpupool queues it")
def submit_job(body: RaySubmission, portal: PortalDep, principal: PrincipalDep) -> Submitted:
    chosen = body.submission_id or body.job_id
    settings = portal.settings
    with portal.books() as books:
        fields = spec_fields(books, principal, body, settings.default_time_limit)
        job_id = None if chosen is None else chosen_job_id(books, principal, chosen)
        spec = JobSpec(submitter=principal.user, **fields)
        job, _ = submit_as(books, principal, spec, settings.max_time_limit_seconds, job_id=job_id)
    shown = ray_id(job, principal.user)
    return Submitted(job_id=shown, submission_id=shown)


@router.get("/api/jobs/", summary="Jobs you may see, newest first, as Ray's JobDetails")
def list_jobs(portal: PortalDep, principal: PrincipalDep) -> list[RayJobDetails]:
    with portal.books() as books:
        jobs, _ = visible_jobs(books, principal, limit=LIST_LIMIT)
        if not jobs:
            return []
        deleted = deleted_since(books, min(job.submitted_at for job in jobs))
    return [job_details(job, principal.user) for job in jobs if job.id not in deleted]


@router.get("/api/jobs/{job_id}", summary="One job as Ray's JobDetails")
def get_job(job_id: Segment, portal: PortalDep, principal: PrincipalDep) -> RayJobDetails:
    with portal.books() as books:
        return job_details(visible_job(books, principal, job_id), principal.user)


@router.post("/api/jobs/{job_id}/stop", summary="Stop a job; stopped is false if it had ended")
def stop_job(job_id: Segment, portal: PortalDep, principal: PrincipalDep) -> Stopped:
    with portal.books() as books:
        job = visible_job(books, principal, job_id)
        check_may_stop(books, principal, job, "stop")
        if job.state.is_terminal:
            return Stopped(stopped=False)
        request_cancel(books, job.id, principal.user)
    return Stopped(stopped=True)


@router.delete("/api/jobs/{job_id}", summary="Remove a finished job from this API (not the books)")
def delete_job(job_id: Segment, portal: PortalDep, principal: PrincipalDep) -> Deleted:
    with portal.books() as books:
        job = visible_job(books, principal, job_id)
        check_may_stop(books, principal, job, "delete")
        if not job.state.is_terminal:
            raise Problem(
                400, f"job {job_id} is {job.state}, not finished; stop it before deleting it"
            )
        books.audit.record(
            books.clock(),
            principal.user,
            DELETE_ACTION,
            _target(job.id),
            {"state": job.state.value},
            {"hidden_from": "the Ray Jobs API"},
        )
    return Deleted(deleted=True)


def _visible(portal: Portal, principal: Principal, job_id: str) -> Job:
    with portal.books() as books:
        return visible_job(books, principal, job_id)


def _refreshed(portal: Portal, principal: Principal, job: Job) -> Job:
    """``job`` read again by its gpupool id, while the principal may still see it."""
    with portal.books() as books:
        current = readable_job(books, principal, job.id)
        if is_deleted(books, job.id):
            raise NotFound(f"no job {job.id}")
        return current


def allowed_origin(origin: str | None, base_url: str) -> bool:
    """Whether a WebSocket upgrade with this ``Origin`` may read logs.

    Browsers send ``Origin`` on every WebSocket upgrade and attach the portal's session
    cookie whatever page opened it, so a page on another site must be refused; only the
    portal's own origin (``settings.base_url``) is let in. A request without ``Origin`` comes
    from no browser (Ray's client, the CLI) and carries its own credentials.
    """
    if origin is None:
        return True
    seen = _origin(origin)
    return seen is not None and seen == _origin(base_url)


def _origin(url: str) -> tuple[str, str, int] | None:
    """``(scheme, host, port)`` of an origin or URL, default ports filled in; None if not one."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


@router.get("/api/jobs/{job_id}/logs", summary="The job's output so far")
async def job_logs(job_id: Segment, portal: PortalDep, principal: PrincipalDep) -> Logs:
    job = await asyncio.to_thread(_visible, portal, principal, job_id)
    try:
        return Logs(logs=await portal.logs.read(job))
    except LogsUnavailable as error:
        raise Problem(503, str(error)) from error


@router.websocket("/api/jobs/{job_id}/logs/tail")
async def tail_logs(websocket: WebSocket, job_id: Segment) -> None:
    """The job's output as text frames while it is written, closed when the job ends.

    The upgrade request carries the same ``Authorization`` header as every other call; one
    that is refused, or that comes from a page of another origin (``allowed_origin``), is
    closed before it is accepted (the client sees HTTP 403).
    """
    portal: Portal = websocket.app.state.portal
    if not allowed_origin(websocket.headers.get("origin"), portal.settings.base_url):
        await websocket.close(
            code=WS_POLICY_VIOLATION, reason="a page of another origin may not read job logs"
        )
        return
    try:
        # authenticate reads only what HTTP requests and WebSockets share (headers, session)
        principal = await asyncio.to_thread(authenticate, websocket, portal)
        if principal is None:
            raise Problem(401, "send 'Authorization: Bearer <token>'")
        job = await asyncio.to_thread(_visible, portal, principal, job_id)
    except (Problem, BooksError) as error:
        await websocket.close(code=WS_POLICY_VIOLATION, reason=str(error)[:120])
        return
    await websocket.accept()
    gone = asyncio.create_task(_until_disconnected(websocket))
    try:
        await _follow(websocket, portal, principal, job, gone)
    except (WebSocketDisconnect, LogsUnavailable, BooksError):
        pass  # the client left, the cluster went away, or the job is no longer readable
    finally:
        gone.cancel()
    with contextlib.suppress(RuntimeError, WebSocketDisconnect):
        await websocket.close()  # fails harmlessly when the client closed first


async def _follow(
    websocket: WebSocket,
    portal: Portal,
    principal: Principal,
    job: Job,
    gone: asyncio.Task[None],
) -> None:
    async def refresh(job: Job) -> Job:
        return await asyncio.to_thread(_refreshed, portal, principal, job)

    async for chunk in portal.logs.follow(job, refresh, LOG_POLL_SECONDS, stopped=gone.done):
        await websocket.send_text(chunk)


async def _until_disconnected(websocket: WebSocket) -> None:
    """Returns when the client goes away (anything it sends is ignored)."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
