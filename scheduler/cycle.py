"""The scheduling cycle: numbered steps over an immutable snapshot, I/O around pure decisions.

1. heads      queued jobs and the jobs that hold capacity (``snapshot.read_pool``);
2. snapshot   capacity per cluster and flavor, balances, decayed usage, fair share;
3. order      priority class, then hierarchical fair share, then age (``decide_queue``);
4. decide     admit (hold credits, choose cluster + flavor), wait (a reason, a position, an
              estimated start) or reject, for the whole queue in one pass; backfill within it;
5. preempt    borrowed or opportunistic work, for under-served jobs that waited too long
              (``quotas.preemption``); victims are stopped, charged for what ran, requeued;
6. dispatch   launch admitted jobs on their backend, keyed by the job's submission id, after
              forwarding the packages their runtime_env names (uploaded to gpupool by a Ray
              client) to that backend;
7. reconcile  poll what runs: start, charge while running, enforce time limits and GPU
              reservations, settle at the end, release holds, refund system faults; jobs the
              backend lost are requeued.

No backend is called while a database transaction is open. Each state change and its ledger
entries are written in one transaction, so a crash between steps leaves nothing half done:
admitted jobs are re-dispatched (idempotently), running jobs re-polled, finished ones settled
once. ``on_step`` is called at each boundary (the crash tests use it).
"""

from __future__ import annotations

import asyncio
import hashlib
import heapq
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from jobs import lifecycle
from jobs.lifecycle import RunState, RunStatus
from jobs.model import Job, JobEvent, JobState, Placed
from jobs.repository import JobRepository
from quotas.accounts import AccountKind, AccountTree
from quotas.admission import Admit, JobRequest, Reject, SiteKind, Wait, decide_queue, order_queue
from quotas.causes import (
    BooksMoved,
    DispatchRetry,
    Ended,
    NoCapacity,
    Outcome,
    OverShare,
    RejectCause,
    Reserved,
    StopCause,
    Stopping,
)
from quotas.clock import Clock, utc_now
from quotas.db.access import PackageRepository
from quotas.db.session import transaction
from quotas.errors import BooksError, NotFound
from quotas.fairshare import FairShare
from quotas.inventory import ClusterSpec, Tenancy
from quotas.ledger import EntryKind
from quotas.packages import content_digest, uploaded_packages
from quotas.preemption import choose_preemptions
from quotas.quantities import Credits, Rate
from quotas.service import Books, Catalogue, HoldRequest
from scheduler.backends.base import (
    Backend,
    GpuAccounting,
    JobListing,
    LaunchSpec,
    PackageStore,
    PermanentBackendError,
    StatusListing,
    TransientBackendError,
)
from scheduler.outages import OutageWatch
from scheduler.settings import SchedulerSettings
from scheduler.snapshot import PoolView, read_pool

log = logging.getLogger(__name__)
ACTOR = "scheduler"


@dataclass
class CycleReport:
    admitted: list[str] = field(default_factory=list)
    waiting: int = 0
    rejected: list[str] = field(default_factory=list)
    dispatched: list[str] = field(default_factory=list)
    preempted: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    strays_stopped: list[str] = field(default_factory=list)
    """Jobs found running on a cluster that the books never started there, now stopped."""
    decided: bool = True
    """False when nothing the queue's decisions depend on changed since the last cycle's."""


@dataclass(frozen=True)
class _Inputs:
    """What the decisions of steps 1-5 depend on, read cheaply: when none of it changed since
    the last decision, and nothing time-bound is due, deciding again would decide the same.

    Every change that matters writes one of these: a submission, cancel, admission, rejection,
    requeue or ending writes a job event (starts do not: a start changes no decision); a hold,
    charge, release, refund or award writes a ledger entry; a change to the tree, a budget, a
    share, the catalogue or a grant writes an audit entry; clusters are compared whole, and
    so are the open node outages, by their numbers (``scheduler.outages``: nodes going down or
    coming back end one and start another).
    """

    period: str
    last_event: int
    last_entry: int
    last_audit: int
    clusters: tuple[ClusterSpec, ...]
    runnable: frozenset[str]
    outages: frozenset[int]


QUIET_MOVES = (JobState.STARTING, JobState.RUNNING)
"""Moves no decision depends on, so a cycle that only saw these need not decide again."""


class Scheduler:
    """One writer of job state: admits, dispatches and reconciles."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        backends: Mapping[str, Backend],
        settings: SchedulerSettings,
        clock: Clock = utc_now,
        on_step: Callable[[str], None] = lambda step: None,
    ) -> None:
        self.factory = factory
        self.backends = backends
        self.settings = settings
        self.clock = clock
        self.on_step = on_step
        self._next_stray_check = 0.0
        self._decided_on: _Inputs | None = None
        self._decide_by = datetime.min.replace(tzinfo=UTC)
        self.outages = OutageWatch(factory, settings, clock)

    async def run_once(self) -> CycleReport:
        report = CycleReport()
        await self.outages.check(self.backends)
        self.admit(report)
        await self.dispatch(report)
        await self.reconcile(report)
        await self.stop_strays(report)
        return report

    # -- steps 1-4: heads, snapshot, order, decide ------------------------------------------

    def admit(self, report: CycleReport) -> None:
        now = self.clock()
        half_life = self.settings.fair_share_half_life_hours * 3600
        with transaction(self.factory) as session:
            books = Books(session, self.clock)
            inputs = self._inputs(books, now)
            if inputs == self._decided_on and now < self._decide_by:
                report.decided = False
                return
            view = read_pool(books, now, half_life, self.backends, self.settings.burst_wait_seconds)
            if not view.queued:
                self._decided(inputs, now, view, [])
                return
            requests = {job.id: job.request() for job in view.queued}
            decisions = decide_queue(view.snapshot, requests.values())
            jobs = {job.id: job for job in view.queued}
            eta = _EtaEstimator(view, now)
            ordered = order_queue(view.snapshot, requests.values())
            position = 0
            starved: list[JobRequest] = []
            waits: list[Job] = []
            moves: list[tuple[Job, JobEvent | None]] = []
            admits: list[tuple[Job, Admit]] = []
            previous: JobRequest | None = None
            for request, decision in zip(ordered, decisions, strict=True):
                job = jobs[request.id]
                if isinstance(decision, Wait):
                    position += 1
                    if isinstance(decision.cause, NoCapacity):
                        starved.append(request)
                    changed = self._wait(job, decision, position, eta, view, previous)
                    if changed is not None:
                        waits.append(changed)
                    report.waiting += 1
                elif isinstance(decision, Reject):
                    moves.append(self._reject(job, decision.cause))
                    report.rejected.append(job.id)
                else:
                    admits.append((job, decision))
                    eta.admitted(
                        decision.placement.flavor,
                        job.spec.gpus,
                        now + timedelta(seconds=job.spec.time_limit_seconds),
                    )
                previous = request
            for job, held in self._hold(books, admits, view):
                if held.state is JobState.ADMITTED:
                    moves.append((held, self._event(job, held, _admitted_note(held, view))))
                    report.admitted.append(job.id)
                else:
                    waits.append(held)
            jobs_table = JobRepository(session)
            jobs_table.save_many(moves)
            jobs_table.save_waits(waits)
            self._preempt(books, view, starved, report)
        self._decided(inputs, now, view, starved)
        self.on_step("admitted")

    def _inputs(self, books: Books, now: datetime) -> _Inputs:
        return _Inputs(
            period=books.current_period(now).name,
            last_event=JobRepository(books.session).last_event_id(ignoring=QUIET_MOVES),
            last_entry=books.ledger.last_id(),
            last_audit=books.audit.last_id(),
            clusters=tuple(books.clusters.all()),
            runnable=frozenset(self.backends),
            outages=books.outages.open_ids(),
        )

    def _decided(
        self, inputs: _Inputs, now: datetime, view: PoolView, starved: Sequence[JobRequest]
    ) -> None:
        """Remember what this decision was made on, and until when it holds with nothing
        changed: ``decide_every_seconds`` (estimated starts stay fresh), or sooner when a
        starved job will have waited long enough to preempt, or one that has will find a victim
        that has run long enough."""
        self._decided_on = inputs
        by = now + timedelta(seconds=self.settings.decide_every_seconds)
        bound = timedelta(seconds=self.settings.preempt_after_seconds)
        crossings = [job.submitted_at + bound for job in starved]
        by = min([by, *(at for at in crossings if at > now)])
        if any(at <= now for at in crossings):
            run = timedelta(seconds=self.settings.min_runtime_seconds)
            grown = (job.started_at + run for job in view.holding if job.started_at is not None)
            by = min([by, *(at for at in grown if at > now)])
        self._decide_by = by

    # -- step 5: preempt --------------------------------------------------------------------

    def _preempt(
        self, books: Books, view: PoolView, starved: list[JobRequest], report: CycleReport
    ) -> None:
        running = [
            each
            for job in view.holding
            if job.state is JobState.RUNNING and (each := job.running()) is not None
        ]
        if not starved or not running:
            return
        stopping = {job.id for job in view.holding if job.stop_cause is StopCause.PREEMPT}
        chosen = choose_preemptions(
            view.snapshot,
            starved,
            [job for job in running if job.id not in stopping],
            wait_bound_seconds=self.settings.preempt_after_seconds,
            min_runtime_seconds=self.settings.min_runtime_seconds,
            stopping=[job for job in running if job.id in stopping],
        )
        victims = {job.id: job for job in view.holding}
        for preemption in chosen:
            victim = victims[preemption.victim]
            asked = Stopping(StopCause.PREEMPT, preemption.reason)
            self._save(books, replace(victim.because(asked), stop_cause=StopCause.PREEMPT))
            report.preempted.append(victim.id)

    def _hold(
        self, books: Books, admits: list[tuple[Job, Admit]], view: PoolView
    ) -> list[tuple[Job, Job]]:
        """Hold the credits of every admitted job at once: each job, and what it becomes
        (admitted, or still queued when the books moved since the snapshot)."""
        period = view.snapshot.period
        holds = [
            HoldRequest(
                job.spec.project,
                job.id,
                decision.placement.hold,
                f"admitted on {decision.placement.cluster} ({decision.placement.flavor})",
            )
            for job, decision in admits
        ]
        try:
            refused = books.hold_many(holds, ACTOR, period)
        except BooksError as error:  # e.g. the period closed since the snapshot
            refused = {job.id: error for job, _ in admits}
        now = self.clock()
        outcome: list[tuple[Job, Job]] = []
        for job, decision in admits:
            if job.id in refused:  # the books moved since the snapshot: wait a cycle
                outcome.append((job, job.because(BooksMoved(str(refused[job.id])))))
                continue
            placement = decision.placement
            placed = Placed(
                placement.cluster,
                placement.flavor,
                placement.rate.milli_per_gpu_hour,
                placement.rate_version,
                period,
                placement.hold.milli,
            )
            outcome.append((job, lifecycle.admit(job, placed, now)))
        return outcome

    def _wait(
        self,
        job: Job,
        decision: Wait,
        position: int,
        eta: _EtaEstimator,
        view: PoolView,
        ahead: JobRequest | None,
    ) -> Job | None:
        """The waiting job with its cause, position and estimated start, if any changed."""
        cause = decision.cause
        estimate = None
        if isinstance(cause, NoCapacity):
            share = _over_share(view.snapshot.tree, job, ahead, view.fair_share)
            cause = replace(cause, over_share=share, passed_by=_passed_by(job, position))
            estimate = eta.estimate(job)
        elif isinstance(cause, Reserved):
            estimate = eta.estimate(job)
        else:
            eta.skip(job)
        if (job.cause, job.reason, job.position, job.eta) == (
            cause,
            cause.sentence,
            position,
            estimate,
        ):
            return None
        return replace(job.because(cause), position=position, eta=estimate)

    def _reject(self, job: Job, cause: RejectCause) -> tuple[Job, JobEvent]:
        rejected = replace(
            job.because(cause),
            state=JobState.REJECTED,
            ended_at=self.clock(),
            position=None,
            eta=None,
        )
        return rejected, self._event(job, rejected, cause.sentence)

    # -- step 6: dispatch -------------------------------------------------------------------

    async def dispatch(self, report: CycleReport) -> None:
        """Launch every admitted job that is due, ``dispatch_concurrency`` at a time, then
        mark the launched ones starting in one transaction."""
        now = self.clock()
        with transaction(self.factory) as session:
            admitted = JobRepository(session).find([JobState.ADMITTED])
            catalogue = Books(session, self.clock).catalogue()
        due = [
            job for job in admitted if job.next_dispatch_at is None or job.next_dispatch_at <= now
        ]
        slots = asyncio.Semaphore(self.settings.dispatch_concurrency)

        async def launch(job: Job) -> Job | None:
            async with slots:
                return await self._launch(job, catalogue)

        launched = [job for job in await asyncio.gather(*map(launch, due)) if job is not None]
        self._mark_starting(launched)
        report.dispatched.extend(job.id for job in launched if not job.cancel_requested)

    async def _launch(self, job: Job, catalogue: Catalogue) -> Job | None:
        """Launch one admitted job on its backend; the job if it was launched."""
        assert job.placed is not None
        backend = self.backends.get(job.placed.cluster)
        if backend is None:
            self._finish_unlaunched(
                job, Ended(Outcome.NEVER_STARTED, detail=f"no backend runs {job.placed.cluster}")
            )
            return None
        if job.cancel_requested:
            return await self._cancel_admitted(job, backend)
        try:
            self.on_step("dispatching")
            spec = self._launch_spec(job, catalogue)
            await self._forward_packages(job, backend, spec)
            await backend.submit(spec)
        except TransientBackendError as error:
            self._retry_later(job, str(error))
            return None
        except PermanentBackendError as error:
            self._finish_unlaunched(
                job, Ended(Outcome.NEVER_STARTED, detail=f"the backend refused it: {error}")
            )
            return None
        self.on_step("dispatched")
        return job

    async def _forward_packages(self, job: Job, backend: Backend, spec: LaunchSpec) -> None:
        """Give the backend each uploaded package the job's runtime_env names, unless it has it.

        A job names a package by the sha256 of its bytes (``content_addressed_uri``), and the
        bytes forwarded are ones its submitter uploaded, checked against that digest: a name on
        the cluster then means one content, whoever uploaded it first. The bytes are read in a
        transaction of their own, closed before the upload.
        """
        uris = uploaded_packages(spec.runtime_env)
        if not uris:
            return
        cluster = job.placed.cluster if job.placed else "the cluster"
        if not isinstance(backend, PackageStore):
            raise PermanentBackendError(
                f"{cluster} cannot take uploaded packages; the runtime_env names {', '.join(uris)}"
            )
        submitter = job.spec.submitter
        for uri in uris:
            digest = content_digest(uri)
            if digest is None:
                raise PermanentBackendError(
                    f"the runtime_env names {uri}, which is not a package gpupool keeps by its "
                    "content (gcs://_ray_pkg_<sha256>.zip); submit through the Ray Jobs API, "
                    "which names uploaded packages so"
                )
            never = f"package {uri} was never uploaded to gpupool by {submitter}"
            with transaction(self.factory) as session:
                uploaded = PackageRepository(session).has_content(submitter, digest)
            if not uploaded:  # checked even when the cluster has it: it may be another's
                raise PermanentBackendError(never)
            if await backend.has_package(uri):
                continue
            try:
                with transaction(self.factory) as session:
                    content = PackageRepository(session).content(submitter, digest)
            except NotFound as error:
                raise PermanentBackendError(never) from error
            if hashlib.sha256(content).hexdigest() != digest:
                raise PermanentBackendError(f"the bytes kept for package {uri} do not match it")
            await backend.upload_package(uri, content)

    async def _cancel_admitted(self, job: Job, backend: Backend) -> Job | None:
        """Cancel an admitted job; if an earlier, interrupted dispatch did launch it, let
        reconcile stop it and charge what ran instead of pretending it never started (the job
        is returned, to be marked starting)."""
        try:
            status = await backend.status(job.submission_id)
        except TransientBackendError as error:
            log.warning("cannot poll %s before cancelling: %s", job.id, error)
            return None
        if status.state is RunState.NOT_FOUND:
            self._finish_unlaunched(
                job, Ended(Outcome.CANCELLED, detail="cancelled before it started")
            )
            return None
        return job

    def _mark_starting(self, launched: Sequence[Job]) -> None:
        """Admitted -> starting for each launched job, in one transaction."""

        def starting(now: Job) -> tuple[Job, str]:
            assert now.placed is not None
            where = f"{now.placed.cluster} as {now.submission_id}"
            if now.cancel_requested:
                return replace(now, state=JobState.STARTING), (
                    f"found launched on {where}; stopping it as asked"
                )
            return replace(now, state=JobState.STARTING), f"dispatched to {where}"

        self._move_many([(job, starting) for job in launched], JobState.ADMITTED)

    def _launch_spec(self, job: Job, catalogue: Catalogue) -> LaunchSpec:
        assert job.placed is not None
        tree = catalogue.tree
        above = (
            {account.kind: account.name for account in tree.path(job.spec.project)}
            if job.spec.project in tree
            else {}
        )
        per_node = next(
            (
                item.gpus_per_node
                for cluster in catalogue.clusters
                if cluster.name == job.placed.cluster
                for item in cluster.inventory
                if item.flavor == job.placed.flavor
            ),
            job.spec.gpus,
        )
        return LaunchSpec(
            job_id=job.submission_id,
            project=job.spec.project,
            entrypoint=job.spec.entrypoint,
            gpus=job.spec.gpus,
            flavor=job.placed.flavor,
            time_limit_seconds=job.spec.time_limit_seconds,
            runtime_env=job.spec.runtime_env,
            image=job.spec.image,
            metadata={"gpupool_job": job.id, "gpupool_name": job.spec.name},
            organization=above.get(AccountKind.ORGANIZATION, ""),
            program=above.get(AccountKind.PROGRAM, ""),
            priority=job.spec.priority.value,
            nodes=-(-job.spec.gpus // per_node) if job.spec.gpus > per_node else 1,
        )

    def _retry_later(self, job: Job, error: str) -> None:
        failures = job.dispatch_failures + 1
        if failures >= self.settings.dispatch_max_failures:
            detail = f"could not reach the backend {failures} times: {error}"
            self._finish_unlaunched(job, Ended(Outcome.NEVER_STARTED, detail=detail))
            return
        delay = self.settings.dispatch_retry_seconds * 2 ** (failures - 1)
        with transaction(self.factory) as session:
            books = Books(session, self.clock)
            retry = DispatchRetry(error, delay)
            self._save(
                books,
                replace(
                    job.because(retry),
                    dispatch_failures=failures,
                    next_dispatch_at=self.clock() + timedelta(seconds=delay),
                ),
            )

    def _finish_unlaunched(self, job: Job, ended: Ended) -> None:
        """End an admitted job that never ran: release its whole hold, charge nothing."""
        with transaction(self.factory) as session:
            books = Books(session, self.clock)
            current = JobRepository(session).get(job.id, for_update=True)
            if current.state is JobState.ADMITTED:
                self._record(books, lifecycle.end_unlaunched(current, ended, self.clock()))

    # -- step 7: reconcile ------------------------------------------------------------------

    async def reconcile(self, report: CycleReport) -> None:
        """Poll what runs (one list call per backend that can list its jobs), then write what
        changed: starts in one transaction, each ending or charge in its own."""
        with transaction(self.factory) as session:
            live = JobRepository(session).find([JobState.STARTING, JobState.RUNNING])
            deadlines = {
                cluster.name: cluster.provisioning_deadline_seconds
                for cluster in Books(session).clusters.all()
                if cluster.site is not SiteKind.NATIONAL
            }
        usage = await self._gpu_usage(live)
        listed = await self._listed_statuses(live)
        starts: list[tuple[Job, RunStatus]] = []
        for job in live:
            assert job.placed is not None
            backend = self.backends.get(job.placed.cluster)
            if backend is None:
                continue
            try:
                status = await self._status(job, backend, listed)
            except TransientBackendError as error:
                log.warning("cannot poll %s: %s", job.id, error)
                continue
            overdue = lifecycle.unprovisioned(
                job, status, deadlines.get(job.placed.cluster), self.clock()
            )
            if overdue is not None:
                # take it off the burst target (its capacity request too) before requeueing it
                if await self._call(backend.cancel(job.submission_id)):
                    self._apply_status(job, overdue)
                continue
            cause = lifecycle.stop_needed(job, status, self.clock(), usage.get(job.submission_id))
            if cause is not None and not status.state.is_terminal:
                # record why first: a crash after the backend stops it must not lose the cause
                self._mark_stopping(job, cause, usage.get(job.submission_id))
                await self._call(backend.cancel(job.submission_id))
                continue
            self.on_step("polled")
            if status.state is RunState.RUNNING:
                if job.state is JobState.STARTING:
                    starts.append((job, status))
                elif self._due(job):
                    self._apply_status(job, status)
                continue  # else running on, not yet due for a charge: nothing to write
            if self._apply_status(job, status):
                report.finished.append(job.id)
        self._mark_running(starts)

    async def _listed_statuses(
        self, live: Iterable[Job]
    ) -> dict[int, Mapping[str, RunStatus] | TransientBackendError]:
        """Per backend (by identity) that lists its jobs: their statuses, or why not."""
        listed: dict[int, Mapping[str, RunStatus] | TransientBackendError] = {}
        for job in live:
            backend = self.backends.get(job.placed.cluster) if job.placed else None
            if not isinstance(backend, StatusListing) or id(backend) in listed:
                continue
            try:
                listed[id(backend)] = await backend.statuses()
            except TransientBackendError as error:
                listed[id(backend)] = error
        return listed

    async def _status(
        self,
        job: Job,
        backend: Backend,
        listed: Mapping[int, Mapping[str, RunStatus] | TransientBackendError],
    ) -> RunStatus:
        found = listed.get(id(backend))
        if found is None:
            return await backend.status(job.submission_id)
        if isinstance(found, TransientBackendError):
            raise found
        status = found.get(job.submission_id)
        if status is None:
            return RunStatus(
                RunState.NOT_FOUND,
                f"{job.placed.cluster if job.placed else ''} "
                f"has no job {job.submission_id}".strip(),
            )
        return status

    def _mark_running(self, starts: Sequence[tuple[Job, RunStatus]]) -> None:
        """Starting -> running for each job its backend now runs, in one transaction."""
        now = self.clock()

        def running(status: RunStatus) -> Callable[[Job], tuple[Job, str]]:
            def move(found: Job) -> tuple[Job, str]:
                started = status.started_at or now
                return (
                    replace(found, state=JobState.RUNNING, started_at=started, charged_until=None),
                    "running",
                )

            return move

        self._move_many([(job, running(status)) for job, status in starts], JobState.STARTING)

    def _move_many(
        self, moves: Sequence[tuple[Job, Callable[[Job], tuple[Job, str]]]], expected: JobState
    ) -> None:
        """Apply each move (the job as it now stands -> what it becomes, and why) in one
        transaction, to the jobs still ``expected`` in the same attempt; a job that moved on
        meanwhile (or is a later attempt) is left be."""
        if not moves:
            return
        with transaction(self.factory) as session:
            jobs = JobRepository(session)
            standings = jobs.standings([job.id for job, _ in moves])
            written: list[tuple[Job, JobEvent | None]] = []
            for job, move in moves:
                now = standings.get(job.id)
                if now is None or now.state is not expected or now.attempt != job.attempt:
                    continue
                found = replace(
                    job,
                    state=now.state,
                    cancel_requested=now.cancel_requested,
                    stop_cause=now.stop_cause,
                )
                after, reason = move(found)
                written.append((after, self._event(found, after, reason)))
            jobs.save_many(written)

    async def stop_strays(self, report: CycleReport) -> None:
        """Stop every job running on a cluster that the books did not put there.

        gpupool is the only way onto the pooled GPUs: a job submitted straight to a cluster
        (with its token, from a job on a shared cluster, or by an operator) is charged to
        nobody, so it is stopped. A launch is the books' while its job holds a placement
        (admitted, starting or running) under that launch's submission id; an earlier attempt
        still running after a requeue is stopped too. Searched every
        ``stray_jobs_check_seconds``, on each backend that can list its jobs.
        """
        now = time.monotonic()
        if now < self._next_stray_check:
            return
        self._next_stray_check = now + self.settings.stray_jobs_check_seconds
        listing = {id(b): b for b in self.backends.values() if isinstance(b, JobListing)}
        if not listing:
            return
        with transaction(self.factory) as session:
            holding = JobRepository(session).find(
                [JobState.ADMITTED, JobState.STARTING, JobState.RUNNING]
            )
        ours = {job.submission_id for job in holding}
        for backend in listing.values():
            try:
                active = await backend.active_jobs()
            except TransientBackendError as error:
                log.warning("cannot list the jobs of a cluster: %s", error)
                continue
            for stray in sorted(set(active) - ours):
                log.warning(
                    "stopping %s: the books did not start it (submitted around gpupool)", stray
                )
                await self._call(backend.cancel(stray))
                report.strays_stopped.append(stray)

    async def _gpu_usage(self, live: Iterable[Job]) -> dict[str, float]:
        usage: dict[str, float] = {}
        clusters = {job.placed.cluster for job in live if job.placed is not None}
        for cluster in clusters:
            backend = self.backends.get(cluster)
            if isinstance(backend, GpuAccounting):
                try:
                    usage.update(await backend.gpus_in_use())
                except TransientBackendError as error:
                    log.warning("cannot read GPU use on %s: %s", cluster, error)
        return usage

    def _mark_stopping(self, job: Job, cause: StopCause, gpus: float | None) -> None:
        if job.stop_cause is cause:
            return
        with transaction(self.factory) as session:
            books = Books(session, self.clock)
            current = JobRepository(session).get(job.id, for_update=True)
            if current.state.holds_capacity:
                self._save(books, lifecycle.asked_to_stop(current, cause, gpus))

    def _apply_status(self, job: Job, status: RunStatus) -> bool:
        """Record what the backend says; returns True when the job ended (and was settled)."""
        with transaction(self.factory) as session:
            books = Books(session, self.clock)
            current = JobRepository(session).get(job.id, for_update=True)
            if current.state not in (JobState.STARTING, JobState.RUNNING) or (
                current.attempt != job.attempt
            ):
                return False
            step = lifecycle.observe(
                current,
                status,
                self.clock(),
                charge_every_seconds=self.settings.charge_interval_seconds,
            )
            if step.ended:
                self.on_step("settling")
            self._record(books, step)
            return step.ended

    def _due(self, job: Job) -> bool:
        """Whether a job the backend reports running needs writing: it starts now, or it is
        due for its next charge."""
        if job.state is not JobState.RUNNING:
            return True
        return lifecycle.charge_due(job, self.clock(), self.settings.charge_interval_seconds)

    # -- helpers ------------------------------------------------------------------------------

    async def _call(self, call: Awaitable[None]) -> bool:
        try:
            await call
        except TransientBackendError as error:
            log.warning("backend call failed, will retry: %s", error)
            return False
        return True

    def _record(self, books: Books, step: lifecycle.Step) -> None:
        """Post a lifecycle step's bookings and save the job with its events, in the caller's
        transaction."""
        for booking in step.bookings:
            _post(books, booking)
        JobRepository(books.session).save(step.job, *step.events)

    def _save(self, books: Books, job: Job) -> None:
        JobRepository(books.session).save(job)

    def _event(self, before: Job, after: Job, reason: str) -> JobEvent:
        """The event of a move the transition table allows, now."""
        return lifecycle.event(before, after, reason, self.clock())


def _post(books: Books, booking: lifecycle.Booking) -> None:
    """One booking of a lifecycle step, through the books (which check and lock)."""
    project, job, period = booking.project, booking.job, booking.period
    if booking.kind is EntryKind.CHARGE:
        books.charge(project, job, booking.credits, ACTOR, booking.reason, period)
    elif booking.kind is EntryKind.RELEASE:
        books.release(project, job, ACTOR, booking.reason, period)
    else:
        books.refund(project, job, booking.credits, ACTOR, booking.reason, period)


def _passed_by(job: Job, position: int) -> int:
    """How many jobs have moved ahead of a job waiting for capacity, counted while its place
    only worsens and forgotten once it moves up: a job moved back is told why."""
    before = job.cause.passed_by if isinstance(job.cause, NoCapacity) else 0
    if job.position is None or position < job.position:
        return 0
    return before + position - job.position


def _over_share(
    tree: AccountTree, job: Job, ahead: JobRequest | None, shares: FairShare
) -> OverShare | None:
    """Where fair share put the job behind ``ahead`` (the job just before it in the queue): the
    job's account at the level where their paths part, if it uses more than its share there.
    None when that account is within its share (priority class or age decided) or nothing is
    ahead: a project is never told it is over its share because its program is."""
    if ahead is None:
        return None
    theirs = {account.name for account in tree.path(ahead.project)}
    for account in tree.path(job.spec.project):
        if account.name in theirs:
            continue
        node = shares.explain(account.name)
        if node.norm_usage > node.norm_share + 1e-9:
            return OverShare(
                account.kind.value,
                account.name,
                round(node.norm_usage * 100),
                round(node.norm_share * 100),
            )
        return None
    return None


class _EtaEstimator:
    """Estimated starts of waiting jobs, from time limits: the queue run forward in its order.

    Per flavor, over the whole pool: the GPUs free now, and when each holding job gives its GPUs
    back (its start plus its time limit). Waiting jobs are taken in queue order; each starts, on
    the flavor it accepts where that is soonest, once enough GPUs are back, and gives them back
    after its own time limit. So every job waiting for capacity gets an estimate, and it reads
    "no later than" if the jobs ahead run to their limits and none jump the queue; a job that
    waits although enough GPUs look free (split across nodes, or reserved) is given the next
    release rather than "now".
    """

    def __init__(self, view: PoolView, now: datetime) -> None:
        self.now = now
        self.free: dict[str, int] = defaultdict(int)
        for cluster in view.snapshot.clusters:
            for group in cluster.groups:
                self.free[group.flavor] += sum(group.free)
        self.releases: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
        for (_cluster, flavor), items in view.snapshot.releases.items():
            self.releases[flavor].extend(items)
        for heap in self.releases.values():
            heapq.heapify(heap)
        self.at: dict[str, datetime] = defaultdict(lambda: now)
        """How far each flavor's run-forward has come."""
        self.flavors = view.flavors

    def admitted(self, flavor: str, gpus: int, ends: datetime) -> None:
        """A job admitted earlier in this cycle takes free GPUs and gives them back at ``ends``."""
        self.free[flavor] -= gpus
        heapq.heappush(self.releases[flavor], (ends, gpus))

    def _accepted(self, job: Job) -> list[str]:
        names = job.spec.flavors or tuple(self.flavors)
        return [
            name
            for name in names
            if name in self.flavors
            and (
                job.spec.min_memory_gb is None
                or self.flavors[name].memory_gb >= job.spec.min_memory_gb
            )
        ]

    def _when(self, flavor: str, gpus: int) -> tuple[datetime, list[tuple[datetime, int]]] | None:
        """When ``gpus`` are back on ``flavor`` (at least one release after now), and the
        releases taken for it, removed from the heap; None (nothing taken) if they never are."""
        heap = self.releases[flavor]
        free, at = self.free[flavor], self.at[flavor]
        taken: list[tuple[datetime, int]] = []
        waits_now = at <= self.now  # GPUs that look free now do not start a waiting job
        while heap and (free < gpus or (waits_now and not taken)):
            release = heapq.heappop(heap)
            taken.append(release)
            free += release[1]
            at = max(at, release[0])
        if free < gpus or (waits_now and not taken):
            self._put_back(flavor, taken)
            return None
        return at, taken

    def _put_back(self, flavor: str, taken: list[tuple[datetime, int]]) -> None:
        for release in taken:
            heapq.heappush(self.releases[flavor], release)

    def estimate(self, job: Job) -> datetime | None:
        """When the job is expected to start, the run-forward moved on past it."""
        gpus = job.spec.gpus
        trials = {f: found for f in self._accepted(job) if (found := self._when(f, gpus))}
        if not trials:
            return None
        chosen = min(trials, key=lambda f: (trials[f][0], f))
        for flavor, (_, taken) in trials.items():
            if flavor != chosen:
                self._put_back(flavor, taken)
        start, taken = trials[chosen]
        self.free[chosen] += sum(released for _, released in taken) - gpus
        self.at[chosen] = start
        ends = start + timedelta(seconds=job.spec.time_limit_seconds)
        heapq.heappush(self.releases[chosen], (ends, gpus))
        return start

    def skip(self, job: Job) -> None:
        """A job waiting for something other than capacity (credits, a borrowing limit) gets no
        estimate; it is counted ahead of later jobs, as if it started when it could."""
        self.estimate(job)


def _admitted_note(job: Job, view: PoolView) -> str:
    placed = job.placed
    assert placed is not None
    return (
        f"admitted on {placed.cluster} ({placed.flavor} at {Rate(placed.rate_milli)} "
        f"credits/GPU-h, rate card v{placed.rate_version}); held {Credits(placed.hold_milli)} "
        f"credits{_tenancy_note(view.clusters.get(placed.cluster))}"
    )


def _tenancy_note(cluster: ClusterSpec | None) -> str:
    """What a placement on ``cluster`` shares, said on every placement on a shared cluster."""
    if cluster is None or cluster.tenancy is not Tenancy.SHARED:
        return ""
    return (
        f"; {cluster.name} is a shared cluster: other tenants' jobs run beside this one and can "
        "see its env_vars and logs"
    )
