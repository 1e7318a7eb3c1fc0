"""The Slurm baseline: multifactor priority with classic fair share, and EASY backfill.

Priority (Slurm's ``priority/multifactor`` plugin,
https://slurm.schedmd.com/priority_multifactor.html)::

    priority = PriorityWeightFairshare * F + PriorityWeightAge * min(1, age / PriorityMaxAge)

with the job-size, partition, QOS, association, nice and TRES factors at weight 0. The weights
are a common site configuration, not Slurm's own defaults (which are 0, making the order plain
submission order): ``PriorityWeightFairshare=10000``, ``PriorityWeightAge=1000``,
``PriorityMaxAge=7-0`` (7 days, Slurm's default). Age counts from submission.

Fair share is the classic algorithm (``PriorityFlags=NO_FAIR_TREE``,
https://slurm.schedmd.com/classic_fair_share.html): ``F = 2^(-U/S)``, where ``S`` is the
account's normalised share and ``U`` its normalised usage, its decayed usage over everyone's.
The hierarchy is kept flat per project: ``S`` is the product, along the project's path in the
account tree, of each account's share over its siblings' (the classic page's normalised
shares), and ``U`` the project's usage alone (classic's effective usage would also mix in its
parents'). Usage is GPU-seconds, as TRES billing with the GPU weighted 1 (no exchange rates:
every flavor's GPU-second counts the same), charged while jobs run and decayed with the
half-life ``PriorityDecayHalfLife`` (``SimSettings.half_life_seconds``): a GPU-second used
``t`` seconds ago counts ``2^(-t/half_life)``.

Scheduling (``SchedulerType=sched/backfill``, https://slurm.schedmd.com/sched_config.html):
jobs are taken in priority order (then submission) and start while they fit; the first that
does not (the top blocked job) gets a reservation at its earliest start, computed from the
running jobs' time limits (a run ends at the latest at its start plus ``SimJob.time_limit``),
on whichever of its places frees soonest. Jobs below it start only where they do not delay
it (EASY backfill, one reservation): on another place, or on its place if they end, by their
time limit, before it starts, or if the GPUs they take leave it room at its start. At most
``bf_max_job_test`` jobs (100, Slurm's default, as is ``default_queue_depth``'s) are tested
per decision. Placement is heterogeneity-agnostic: the first flavor by name where the job
fits (``fifo.FirstFit``). Slurm here never preempts (``PreemptType=preempt/none``), and
budgets play no part (the baseline has no credits).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from jobs.capacity import pack
from quotas.accounts import AccountTree
from scheduler.simulator.policies.fifo import Arrivals, FirstFit, Key
from scheduler.simulator.world import Moves, Policy, Run, SimJob, World, fits

PRIORITY_WEIGHT_FAIRSHARE = 10_000
PRIORITY_WEIGHT_AGE = 1_000
PRIORITY_MAX_AGE = 7 * 24 * 3600
BF_MAX_JOB_TEST = 100


def project_shares(tree: AccountTree) -> dict[str, float]:
    """Each project's normalised share: the product, along its path from the pool, of each
    account's share over the sum of its siblings' shares (Slurm's classic normalised shares)."""
    shares: dict[str, float] = {}
    for project in tree.projects():
        value = 1.0
        for account in tree.path(project.name)[1:]:
            assert account.parent is not None
            total = sum(sibling.share for sibling in tree.children(account.parent))
            value *= account.share / total if total else 0.0
        shares[project.name] = value
    return shares


class DecayedUsage:
    """GPU-seconds per project, each decayed with ``half_life`` from when it was used, as of
    any time: finished runs are summed as they end, running ones as of the moment asked.

    Values are kept against a base time ``b`` (``used * 2^((t - b) / h)``), which keeps the
    sum independent of the order runs end in, and moved forward before it overflows."""

    def __init__(self, half_life: float) -> None:
        self.half_life = half_life
        self.scale = half_life / math.log(2)
        self.base = 0.0
        self.done: dict[str, float] = {}
        self.rate: dict[str, int] = {}
        """GPUs running now."""
        self.started: dict[str, float] = {}
        """Sum of GPUs * growth at start over the runs running now."""

    def _growth(self, t: float) -> float:
        return math.pow(2.0, (t - self.base) / self.half_life)

    def start(self, project: str, gpus: int, at: float) -> None:
        self.rate[project] = self.rate.get(project, 0) + gpus
        self.started[project] = self.started.get(project, 0.0) + gpus * self._growth(at)

    def end(self, project: str, gpus: int, start: float, end: float) -> None:
        began = gpus * self._growth(start)
        self.rate[project] -= gpus
        self.started[project] -= began
        used = self.scale * (gpus * self._growth(end) - began)
        self.done[project] = self.done.get(project, 0.0) + used

    def at(self, now: float) -> dict[str, float]:
        if (now - self.base) / self.half_life > 32:
            factor = self._growth(now)
            self.done = {p: used / factor for p, used in self.done.items()}
            self.started = {p: began / factor for p, began in self.started.items()}
            self.base = now
        growth = self._growth(now)
        usage = dict(self.done)
        for project, rate in self.rate.items():
            running = self.scale * (rate * growth - self.started[project])
            usage[project] = usage.get(project, 0.0) + running
        return {project: max(0.0, used / growth) for project, used in usage.items()}


@dataclass
class Reservation:
    """The top blocked job's: its place, when it starts there, and the sizes of the runs that
    will still hold that place then."""

    key: Key
    start: float
    gpus: int
    holding: list[int] = field(default_factory=list)


class SlurmPolicy(Policy):
    name = "slurm"

    def __init__(
        self,
        weight_fairshare: int = PRIORITY_WEIGHT_FAIRSHARE,
        weight_age: int = PRIORITY_WEIGHT_AGE,
        max_age: int = PRIORITY_MAX_AGE,
        max_job_test: int = BF_MAX_JOB_TEST,
    ) -> None:
        self.weight_fairshare = weight_fairshare
        self.weight_age = weight_age
        self.max_age = max_age
        self.max_job_test = max_job_test

    def attach(self, world: World) -> None:
        super().attach(world)
        scenario = world.scenario
        self.fit = FirstFit(world)
        self.arrivals = Arrivals()
        self.shares = project_shares(scenario.tree)
        self.usage = DecayedUsage(scenario.settings.half_life_seconds)
        self.pending: dict[str, dict[int, SimJob]] = {}
        """Per project, its waiting jobs by submission (Slurm never requeues them here)."""
        self.holding: dict[Key, dict[int, tuple[float, int]]] = {k: {} for k in self.fit.keys}
        """Per place, each running job's end by its time limit and its GPUs."""

    # -- deciding -----------------------------------------------------------------------------

    def fair_share(self, now: float) -> dict[str, float]:
        """Each project's classic fair-share factor ``2^(-U/S)``."""
        usage = self.usage.at(now)
        total = sum(usage.values())
        factors: dict[str, float] = {}
        for project, share in self.shares.items():
            used = usage.get(project, 0.0) / total if total > 0 else 0.0
            factors[project] = math.pow(2.0, -used / share) if share > 0 else 0.0
        return factors

    def _ordered(self, now: int) -> Iterator[SimJob]:
        """The waiting jobs by priority, highest first, then by submission. Within a project
        the fair-share factor is the same and age falls with submission, so each project's
        jobs are already in order and the queue is their merge."""
        factors = self.fair_share(now)
        weight_age, max_age = self.weight_age, self.max_age

        def jobs(project: str) -> Iterator[tuple[float, int, SimJob]]:
            base = self.weight_fairshare * factors.get(project, 0.0)
            for job in self.pending[project].values():
                age = min(1.0, (now - job.trace.submit_s) / max_age)
                yield -(base + weight_age * age), job.index, job

        for _, _, job in heapq.merge(*(jobs(p) for p, q in self.pending.items() if q)):
            yield job

    def decide(self, now: int) -> Moves:
        world = self.world
        arrived, reject = self.arrivals.split(world, now, self.fit)
        for job in arrived:
            self.pending.setdefault(job.project, {})[job.index] = job
        view = world.free_view()
        free = {key: view.free_gpus(*key) for key in self.fit.keys}
        admitted: dict[Key, list[tuple[float, int]]] = {key: [] for key in self.fit.keys}
        admit: list[tuple[int, str, str]] = []
        reservation: Reservation | None = None
        tested = 0
        for job in self._ordered(now):
            if tested >= self.max_job_test or not any(free.values()):
                break
            tested += 1
            ends = now + job.time_limit
            placed: Key | None = None
            for key in self.fit.candidates(job):
                if free[key] < job.gpus or not view.fits(job.gpus, *key):
                    continue
                if reservation is not None and key == reservation.key and ends > reservation.start:
                    holding = [*reservation.holding, job.gpus]
                    nodes, per = self.fit.shape[key]
                    if not fits(pack(nodes, per, holding), reservation.gpus):
                        continue  # it would delay the reserved job
                    reservation.holding = holding
                placed = key
                break
            if placed is not None:
                view.take(job.gpus, *placed)
                free[placed] -= job.gpus
                admitted[placed].append((ends, job.gpus))
                admit.append((job.index, *placed))
            elif reservation is None:
                reservation = self._reserve(job, now, admitted)
        for index, _, _ in admit:
            del self.pending[world.queue[index].project][index]
        return Moves(admit=admit, reject=reject)

    def _reserve(
        self, job: SimJob, now: int, admitted: dict[Key, list[tuple[float, int]]]
    ) -> Reservation:
        """The earliest start of ``job`` over its places, from the time limits of what runs
        there (and what this decision starts), and what will still run there then."""
        best: Reservation | None = None
        for key in self.fit.candidates(job):
            if not fits(self.fit.empty[key], job.gpus):
                continue
            nodes, per = self.fit.shape[key]
            runs = sorted([*self.holding[key].values(), *admitted[key]])
            capacity = nodes * per
            busy = sum(gpus for _, gpus in runs)
            # a run that ended since the last tick holds its GPUs until this tick's reconcile
            start, first = float(now), 0
            while first < len(runs) and capacity - busy < job.gpus:
                busy -= runs[first][1]
                start = max(start, runs[first][0])
                first += 1
            while True:
                holding = [gpus for _, gpus in runs[first:]]
                if fits(pack(nodes, per, holding), job.gpus) or first == len(runs):
                    break
                start = max(start, runs[first][0])
                first += 1
            if best is None or start < best.start:
                best = Reservation(key, start, job.gpus, holding)
        assert best is not None  # it fits some place with nothing running (never_fits)
        return best

    # -- running ------------------------------------------------------------------------------

    def started(self, run: Run, now: int) -> None:
        job = run.job
        self.usage.start(job.project, job.gpus, now)
        self.holding[(run.cluster, run.flavor)][job.index] = (now + job.time_limit, job.gpus)

    def ended(self, run: Run, now: int) -> None:
        job = run.job
        end = run.stopped if run.stopped is not None else run.ends
        self.usage.end(job.project, job.gpus, run.start, end)
        del self.holding[(run.cluster, run.flavor)][job.index]
