"""The queue's front door: the use cases of jobs, each checking everything itself.

Every operation takes the principal asking for it and checks, in one place, what the portal's
routes, its Ray Jobs API, the CLI and (coming) the web pages would otherwise each check: that
the job or project is theirs to see (else "not found": names do not leak), the token's scope,
the role, the runtime_env and packages, the priority grant, the time-limit cap, and that the job
could ever run here. Callers only translate. They only write desired state: the scheduler does
the rest.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import replace

from jobs.capacity import free_capacity
from jobs.model import Job, JobEvent, JobSpec, JobState, check_time_limit
from jobs.repository import JobRepository
from quotas.access import Principal, Scope
from quotas.accounts import AccountKind, with_article
from quotas.admission import Snapshot, refusal
from quotas.db.access import PackageRepository
from quotas.errors import (
    AlreadyExists,
    BooksError,
    Conflict,
    Forbidden,
    InvalidInput,
    InvalidRuntimeEnv,
    NoSuchProject,
    NotFound,
)
from quotas.flavors import acceptable_flavors
from quotas.packages import (
    content_addressed_uri,
    content_digest,
    uploaded_packages,
    with_packages_renamed,
)
from quotas.quote import QuoteLine, quote
from quotas.runtime_env import checked_runtime_env as allowed_runtime_env
from quotas.service import Books

JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def new_job_id() -> str:
    return f"gp-{secrets.token_hex(6)}"


# -- use cases: the principal's view --------------------------------------------------------


def readable_job(books: Books, principal: Principal, job_id: str) -> Job:
    """The job, or "not found" when it is not this principal's to see (names do not leak)."""
    job = JobRepository(books.session).get(job_id)
    if not principal.can_read_account(books.tree(), job.spec.project):
        raise NotFound(f"no job {job_id}")
    return job


def visible_jobs(
    books: Books,
    principal: Principal,
    *,
    project: str | None = None,
    states: Sequence[JobState] | None = None,
    submitter: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Job], int]:
    """A page of the jobs the principal may see, newest first, and how many match in all;
    ``project`` narrows to that account's subtree (not found unless they may read it)."""
    tree = books.tree()
    projects: list[str] | None
    if project is not None:
        if project not in tree or not principal.can_read_account(tree, project):
            raise NoSuchProject(project, principal.project_names(tree))
        projects = [project, *(node.name for node in tree.descendants(project))]
    else:
        projects = principal.readable_projects(tree)
    return JobRepository(books.session).search(
        projects=projects, states=states, submitter=submitter, limit=limit, offset=offset
    )


def submit_as(
    books: Books,
    principal: Principal,
    spec: JobSpec,
    max_time_limit_seconds: int,
    job_id: str | None = None,
) -> tuple[Job, list[QuoteLine]]:
    """Queue ``spec`` for ``principal``, who must be its submitter, may see the project and
    submit to it with a token that carries the jobs scope; its runtime_env names only packages
    they uploaded. Returns the job and its quote.

    A refusal read from a catalogue taken on trust (``Books.catalogue_on_trust``: a project
    made a moment ago in another process is not in it) is checked again against the current
    catalogue before it is given."""
    try:
        return _submit_as(books, principal, spec, max_time_limit_seconds, job_id)
    except BooksError:
        if not books.catalogue_on_trust:
            raise
    books.catalogue_moved()
    return _submit_as(books, principal, spec, max_time_limit_seconds, job_id)


def _submit_as(
    books: Books,
    principal: Principal,
    spec: JobSpec,
    max_time_limit_seconds: int,
    job_id: str | None,
) -> tuple[Job, list[QuoteLine]]:
    project = spec.project
    tree = books.tree()
    if project not in tree or not principal.can_read_account(tree, project):
        yours = [each for each in principal.project_names(tree) if principal.can_submit_to(each)]
        raise NoSuchProject(project, yours, "projects you may submit to")
    principal.require(Scope.JOBS)
    if spec.submitter != principal.user:
        raise Forbidden(f"{principal.user} may not submit jobs as {spec.submitter}")
    if not principal.can_submit_to(project):
        raise Forbidden(f"{principal.user} may not submit jobs to {project}")
    runtime_env = checked_runtime_env(books, principal.user, spec.runtime_env)
    return submit(books, replace(spec, runtime_env=runtime_env), max_time_limit_seconds, job_id)


def cancel_as(books: Books, principal: Principal, job_id: str) -> Job:
    """Cancel a job the principal may stop: at once if queued, else on the next cycle."""
    job = readable_job(books, principal, job_id)
    check_may_stop(books, principal, job, "cancel")
    return request_cancel(books, job.id, principal.user)


def check_may_stop(books: Books, principal: Principal, job: Job, verb: str) -> None:
    """Refuse unless ``principal`` may stop ``job`` (its submitter, the project's pi, the
    program's manager or an admin, with a token that carries the jobs scope)."""
    principal.require(Scope.JOBS)
    if not principal.can_cancel(books.tree(), job.spec.project, job.spec.submitter):
        raise Forbidden(f"{principal.user} may not {verb} job {job.id}")


def checked_runtime_env(
    books: Books, owner: str, runtime_env: Mapping[str, object]
) -> dict[str, object]:
    """The runtime_env as Ray will take it, with each uploaded package renamed to the
    content-addressed name of the bytes ``owner`` uploaded. Refuses (``InvalidRuntimeEnv``)
    any field a tenant may not set, without reading anything it names: gpupool never reads a
    server path on a tenant's behalf."""
    allowed = allowed_runtime_env(runtime_env)
    return with_packages_renamed(allowed, own_packages(books, owner, allowed))


def own_packages(books: Books, owner: str, runtime_env: Mapping[str, object]) -> dict[str, str]:
    """The content-addressed name of each package the runtime_env names, found among the
    packages ``owner`` uploaded; refuses one they did not upload."""
    packages = PackageRepository(books.session)
    names: dict[str, str] = {}
    for uri in uploaded_packages(runtime_env):
        if not uri.endswith(".zip"):
            raise InvalidRuntimeEnv(
                f"runtime_env names {uri}: gpupool runs uploaded packages that are zips only (a "
                "local directory or .zip file); a wheel, named by its file name rather than "
                "its content, cannot be kept apart from another user's of the same name"
            )
        digest = packages.digest(owner, uri)
        if digest is None:
            named = content_digest(uri)
            if named is not None and packages.has_content(owner, named):
                digest = named
        if digest is None:
            raise InvalidRuntimeEnv(
                f"runtime_env names {uri}, which you never uploaded here; upload it with "
                "PUT /api/packages/... first (Ray's client does so for a local working_dir)"
            )
        names[uri] = content_addressed_uri(digest)
    return names


# -- the books' side: what any submission goes through --------------------------------------


def submit(
    books: Books, spec: JobSpec, max_time_limit_seconds: int, job_id: str | None = None
) -> tuple[Job, list[QuoteLine]]:
    """Queue a job after checking what can be checked at the door; returns it with its quote.

    A class above normal (``urgent``) needs the project's priority grant (``quotas.priorities``).
    A job that could never run in this pool's shape is refused with the reason. ``job_id`` lets
    a client choose the id (Ray's ``submission_id``); a taken one is refused. The job is
    written only while the catalogue it was checked against is current; when an audited change
    landed in between, it is checked again against the new one.
    """
    for _ in range(CATALOGUE_RETRIES):
        job, lines = _checked(books, spec, max_time_limit_seconds, job_id)
        added = JobRepository(books.session).add(
            job,
            books.catalogue().account_ids.get(spec.project),
            at_catalogue=books.catalogue_stamp,
        )
        if added:
            return job, lines
        books.catalogue_moved()
    raise Conflict(
        f"the pool's catalogue changed {CATALOGUE_RETRIES} times during this submission; "
        "nothing was queued"
    )


CATALOGUE_RETRIES = 3


def _checked(
    books: Books, spec: JobSpec, max_time_limit_seconds: int, job_id: str | None
) -> tuple[Job, list[QuoteLine]]:
    """The job ``spec`` makes, with its quote, if it passes every check at the door."""
    catalogue = books.catalogue()
    tree = catalogue.tree
    if tree[spec.project].kind is not AccountKind.PROJECT:
        raise InvalidInput(
            f"{spec.project} is {with_article(tree[spec.project].kind)}, not a project"
        )
    books.require_priority_grant(spec.project, spec.priority)
    check_time_limit(spec.time_limit_seconds, max_time_limit_seconds)
    flavors = dict(catalogue.flavors)
    acceptable_flavors(flavors, spec.flavors, spec.min_memory_gb)  # unknown flavor -> error
    rate_card = catalogue.rate_card(books.clock())
    never = refusal(
        Snapshot(
            now=books.clock(),
            period="",
            tree=tree,
            flavors=flavors,
            rate_card=rate_card,
            clusters=tuple(free_capacity(catalogue.clusters, [])),
            available={},
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
