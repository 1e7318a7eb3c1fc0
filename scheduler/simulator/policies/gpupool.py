"""gpupool's own policy, as production runs it: the same decision code over the same snapshot.

Each decision builds ``quotas.admission.Snapshot`` the way ``scheduler.snapshot.read_pool``
does: capacity packed from the holding jobs (``jobs.capacity``), committed credits and budget
use from the ledger's balances, GPUs held per account, backfill releases from the holding jobs'
time limits, and Fair Tree ranks from usage decayed with the configured half-life. It then
decides the whole queue (``decide_queue``: priority, fair share, age; budgets, borrowing limits,
placement by training per credit, backfill) and chooses preemptions for the jobs starved of
capacity (``choose_preemptions``), with the scheduler's settings. Each job is a ``jobs.model.Job``
taken through ``jobs.lifecycle`` (admit, start, charge while running, settle, requeue after a
preemption), and every booking is posted to an in-memory ``quotas.ledger.Ledger``: holds are
taken at admission and refused if a budget would be passed, so no account overspends.

It decides when the scheduler would (``scheduler.cycle.Scheduler._decided``): when a job was
submitted, admitted, ended or requeued, or a ledger entry was written since the last decision;
otherwise every ``decide_every_seconds``, and sooner when a starved job will have waited long
enough to preempt, or a victim run long enough. Decayed usage is kept as a running sum rather
than re-read from every charge, which also keeps charges older than the ten half-lives
production reads (they weigh under 0.1%).
"""

from __future__ import annotations

import heapq
import math
from bisect import insort
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from jobs import lifecycle
from jobs.capacity import listed
from jobs.lifecycle import RunState, RunStatus
from jobs.model import Job, JobSpec, JobState, Placed
from quotas.admission import (
    Admit,
    JobRequest,
    Reject,
    Snapshot,
    decider,
    plan_while_free,
)
from quotas.causes import NoCapacity, StopCause, Stopping
from quotas.errors import BooksError
from quotas.fairshare import decay_factor, fair_share
from quotas.ledger import Actor, Balances, Bucket, EntryKind, Ledger, Posting
from quotas.preemption import choose_preemptions
from quotas.quantities import Credits
from scheduler.settings import SchedulerSettings
from scheduler.simulator.scenario import EPOCH, PERIOD, Scenario
from scheduler.simulator.world import Moves, Policy, Run, SimJob, World

ACTOR = "scheduler"
FUNDER = "simulation"


def job_of(job: SimJob, scenario: Scenario) -> Job:
    """The ``jobs.model.Job`` a trace job is submitted as."""
    every = tuple(n for n, f in scenario.flavors.items() if not f.named_only)
    flavors = () if job.flavors == every else job.flavors
    spec = JobSpec(
        project=job.project,
        submitter="trace",
        name=job.trace.name,
        entrypoint="replay",
        gpus=job.gpus,
        time_limit_seconds=job.time_limit,
        flavors=flavors,
        priority=job.trace.priority,
        preemptible=scenario.settings.preemptible,
    )
    return Job(str(job.index), spec, JobState.QUEUED, at(job.trace.submit_s))


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def _age(request: JobRequest) -> tuple[datetime, str]:
    return request.submitted_at, request.id


class GpupoolPolicy(Policy):
    name = "gpupool"

    def attach(self, world: World) -> None:
        super().attach(world)
        scenario = world.scenario
        self.scenario = scenario
        self.tree = scenario.tree
        self.production = SchedulerSettings()
        self.balances = Balances()
        self.entries: Counter[EntryKind] = Counter()
        """Ledger entries written, by kind."""
        self.ledger = Ledger(self.tree, self.balances, PERIOD)
        self.available: dict[str, int] = defaultdict(int)
        self.used: dict[str, int] = defaultdict(int)
        self.paths = {name: [a.name for a in self.tree.path(name)] for name in self.tree.accounts}
        self.running_gpus: dict[str, int] = defaultdict(int)
        self.usage: dict[str, float] = {}
        """Per project: decayed usage in credits, as of second 0 (``_use``)."""
        self.jobs: dict[int, Job] = {}
        self.queued: dict[int, JobRequest] = {}
        self.groups: dict[tuple[int, str], list[JobRequest]] = {}
        """The queue by (priority, project), each oldest first."""
        self.releases: dict[tuple[str, str], list[tuple[datetime, int, int]]] = defaultdict(list)
        """Per (cluster, flavor): when each holding job's time limit ends, its GPUs and index."""
        self.available_credits: dict[str, Credits] = {}
        self.used_credits: dict[str, Credits] = {}
        self.charges: list[tuple[int, int, int]] = []
        """(due, job index, attempt): when each running job is next charged."""
        self.decide_by = 0.0
        setup = Actor(ACTOR, "simulation credits")
        total = sum((c for c in scenario.credits.values()), Credits.zero())
        if total:
            self._post(self.ledger.contribute(FUNDER, total, setup))
        root = self.tree.root.name
        for project, credits in sorted(scenario.credits.items()):
            if credits:
                self._post(self.ledger.award(root, project, credits, setup))
        self.idle = decider(
            Snapshot(
                now=EPOCH,
                period=PERIOD,
                tree=self.tree,
                flavors=scenario.flavors,
                rate_card=scenario.rate_card,
                clusters=tuple(spec.idle() for spec in scenario.clusters),
                available=dict(self.available_credits),
                used={},
            )
        )
        """Decisions on the pool with nothing running and every credit free: what a refusal is
        judged on."""

    # -- the books ----------------------------------------------------------------------------

    def _post(self, postings: Sequence[Posting]) -> None:
        self.balances.apply(postings)
        for posting in postings:
            self.entries[posting.kind] += 1
            for pocket, sign in ((posting.source, -1), (posting.target, 1)):
                account = pocket.account
                if account is None:
                    continue
                amount = sign * posting.amount.milli
                if pocket.bucket is Bucket.AVAILABLE:
                    self.available[account] += amount
                    self.available_credits[account] = Credits(self.available[account])
                elif pocket.bucket in (Bucket.HELD, Bucket.SPENT):
                    for name in self.paths[account]:
                        self.used[name] += amount
                        self.used_credits[name] = Credits(self.used[name])
            if posting.kind is EntryKind.CHARGE and posting.target.account is not None:
                self._use(posting.target.account, posting.amount.milli)
            elif posting.kind is EntryKind.REFUND and posting.source.account is not None:
                self._use(posting.source.account, -posting.amount.milli)

    def _use(self, project: str, milli: int) -> None:
        """Add a charge (a refund: negative) made now to the project's decayed usage, kept as
        its value at second 0: ``sum(credits * 2 ** (t / half_life))``, so that the usage at
        any time is one multiplication away (``_snapshot``)."""
        growth = 2.0 ** (self.world.now / self.scenario.settings.half_life_seconds)
        self.usage[project] = self.usage.get(project, 0.0) + milli / 1000 * growth

    def _record(self, step: lifecycle.Step) -> Job:
        for booking in step.bookings:
            self._post(lifecycle.post(self.ledger, booking, ACTOR))
        return step.job

    # -- deciding -----------------------------------------------------------------------------

    def wake_at(self) -> int | None:
        due = self.charges[0][0] if self.charges else math.inf
        wake = min(self.decide_by, due)
        return None if math.isinf(wake) else math.ceil(wake)

    def _snapshot(self, now: int) -> Snapshot:
        world = self.world
        clusters = tuple(
            spec.with_free(
                {item.flavor: listed(world.free(spec.name, item.flavor)) for item in spec.inventory}
            )
            for spec in self.scenario.clusters
        )
        decay = decay_factor(now, self.scenario.settings.half_life_seconds)
        usage = {project: max(0.0, value * decay) for project, value in self.usage.items()}
        when = at(now)
        return Snapshot(
            now=when,
            period=PERIOD,
            tree=self.tree,
            flavors=self.scenario.flavors,
            rate_card=self.scenario.rate_card,
            clusters=clusters,
            available=self.available_credits,
            used=self.used_credits,
            running_gpus=self.running_gpus,
            fair_share=fair_share(self.tree, usage),
            releases={
                key: tuple((max(when, ends), gpus) for ends, gpus, _ in items)
                for key, items in self.releases.items()
                if items
            },
            burst_wait_seconds=self.production.burst_wait_seconds,
        )

    def _arrived(self, job: SimJob) -> bool:
        """Take in a job new to the queue; False if the pool refuses it for good (a refusal
        depends on the pool's shape and the accounts' whole credits, which never change here,
        so it is found once, on an idle pool with every credit free)."""
        made = self.jobs[job.index] = job_of(job, self.scenario)
        request = made.request()
        if isinstance(self.idle(request), Reject):
            return False
        self._enqueue(request)
        return True

    def _enqueue(self, request: JobRequest) -> None:
        self.queued[int(request.id)] = request
        key = (request.priority.order, request.project)
        insort(self.groups.setdefault(key, []), request, key=_age)

    def _ordered(self, ranking: Sequence[str]) -> Iterator[JobRequest]:
        """The queue in ``order_queue``'s order: priority, fair-share rank, age."""
        rank = {project: place for place, project in enumerate(ranking)}
        unranked = len(rank)
        keys = sorted(
            (key for key, group in self.groups.items() if group),
            key=lambda key: (key[0], rank.get(key[1], unranked), key[1]),
        )
        for key in keys:
            yield from self.groups[key]

    def _dequeue(self, index: int) -> None:
        request = self.queued.pop(index, None)
        if request is not None:
            self.groups[(request.priority.order, request.project)].remove(request)

    def decide(self, now: int) -> Moves:
        world = self.world
        reject = [
            job.index
            for job in world.waiting()
            if job.index not in self.jobs and not self._arrived(job)
        ]
        snapshot = self._snapshot(now)
        assert snapshot.fair_share is not None
        plan = plan_while_free(snapshot, self._ordered(snapshot.fair_share.ranking))
        admit: list[tuple[int, str, str]] = []
        starved: list[JobRequest] = []
        for decision in plan.decisions:
            index = int(decision.job)
            if isinstance(decision, Admit):
                if self._hold(index, decision, now):
                    admit.append((index, decision.placement.cluster, decision.placement.flavor))
            elif isinstance(decision, Reject):
                reject.append(index)
            elif isinstance(decision.cause, NoCapacity):
                starved.append(self.queued[index])
        starved.extend(request for request in plan.undecided if plan.waits_for_capacity(request))
        preempt = self._preempt(snapshot, starved)
        for index in (*reject, *(index for index, _, _ in admit)):
            self._dequeue(index)
        self._decided(now, starved)
        return Moves(admit, preempt, reject)

    def _hold(self, index: int, decision: Admit, now: int) -> bool:
        job = self.jobs[index]
        placement = decision.placement
        where = f"admitted on {placement.cluster} ({placement.flavor})"
        try:
            self._post(
                self.ledger.hold(job.spec.project, job.id, placement.hold, Actor(ACTOR, where))
            )
        except BooksError:  # the books moved: it waits a cycle, as in production
            return False
        placed = Placed(
            placement.cluster,
            placement.flavor,
            placement.rate.milli_per_gpu_hour,
            placement.rate_version,
            PERIOD,
            placement.hold.milli,
        )
        self.jobs[index] = lifecycle.admit(job, placed, at(now))
        return True

    def _preempt(self, snapshot: Snapshot, starved: list[JobRequest]) -> list[int]:
        if not starved:
            return []
        stopping = {run.job.index for run in self.world.stopping}
        holding = [*self.world.running, *stopping]
        running = [each for index in holding if (each := self.jobs[index].running()) is not None]
        if not running:
            return []
        chosen = choose_preemptions(
            snapshot,
            starved,
            [job for job in running if int(job.id) not in stopping],
            wait_bound_seconds=self.scenario.settings.preempt_after_seconds,
            min_runtime_seconds=self.scenario.settings.min_runtime_seconds,
            stopping=[job for job in running if int(job.id) in stopping],
        )
        victims: list[int] = []
        for preemption in chosen:
            index = int(preemption.victim)
            asked = Stopping(StopCause.PREEMPT, preemption.reason)
            self.jobs[index] = replace(
                self.jobs[index].because(asked), stop_cause=StopCause.PREEMPT
            )
            victims.append(index)
        return victims

    def _decided(self, now: int, starved: Sequence[JobRequest]) -> None:
        """``Scheduler._decided``: until when this decision holds with nothing changed."""
        settings = self.scenario.settings
        by: float = now + settings.decide_every_seconds
        crossings = [
            (job.submitted_at - EPOCH).total_seconds() + settings.preempt_after_seconds
            for job in starved
        ]
        by = min([by, *(t for t in crossings if t > now)])
        if any(t <= now for t in crossings):
            grown = (
                (job.started_at - EPOCH).total_seconds() + settings.min_runtime_seconds
                for index in self.world.running
                if (job := self.jobs[index]).started_at is not None
            )
            by = min([by, *(t for t in grown if t > now)])
        self.decide_by = by

    # -- running ------------------------------------------------------------------------------

    def started(self, run: Run, now: int) -> None:
        index = run.job.index
        job = self.jobs[index]
        self.jobs[index] = replace(
            job, state=JobState.RUNNING, started_at=at(now), charged_until=None
        )
        for name in self.paths[job.spec.project]:
            self.running_gpus[name] += job.spec.gpus
        assert job.placed is not None
        ends = at(now + job.spec.time_limit_seconds)
        insort(self.releases[(job.placed.cluster, job.placed.flavor)], (ends, job.spec.gpus, index))
        every = self.scenario.settings.charge_interval_seconds
        heapq.heappush(self.charges, (now + every, index, job.attempt))

    def reconcile(self, now: int) -> bool:
        charged = False
        every = self.scenario.settings.charge_interval_seconds
        while self.charges and self.charges[0][0] <= now:
            _, index, attempt = heapq.heappop(self.charges)
            job = self.jobs[index]
            if job.state is not JobState.RUNNING or job.attempt != attempt:
                continue
            step = lifecycle.charge(job, at(now), "usage while running")
            charged = charged or bool(step.bookings)
            self.jobs[index] = self._record(step)
            heapq.heappush(self.charges, (now + every, index, attempt))
        return charged

    def ended(self, run: Run, now: int) -> None:
        index = run.job.index
        job = self.jobs[index]
        for name in self.paths[job.spec.project]:
            self.running_gpus[name] -= job.spec.gpus
        assert job.placed is not None
        assert job.started_at is not None
        ends = job.started_at + timedelta(seconds=job.spec.time_limit_seconds)
        self.releases[(job.placed.cluster, job.placed.flavor)].remove((ends, job.spec.gpus, index))
        started = job.started_at
        if run.stopped is not None:
            asked = job.cause if isinstance(job.cause, Stopping) else None
            why = asked or Stopping.requested(StopCause.PREEMPT)
            step = lifecycle.requeue(job, why, at(now), at(run.stopped))
        else:
            timed_out = run.job.timed_out
            status = RunStatus(
                RunState.STOPPED if timed_out else RunState.SUCCEEDED,
                started_at=started,
                ended_at=at(run.ends),
                time_limit_reached=timed_out,
            )
            step = lifecycle.settle(job, status, at(now))
        self.jobs[index] = self._record(step)
        if run.stopped is not None:
            self._enqueue(self.jobs[index].request())
