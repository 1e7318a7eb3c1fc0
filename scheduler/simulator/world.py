"""The simulated pool: a virtual clock, the trace's arrivals, what waits and what runs, and the
capacity it takes, driven by a policy that decides on the scheduler's cycle grid.

Each tick of ``cycle_seconds`` runs the production loop's steps in its order
(``scheduler.cycle.Scheduler.run_once``):

1. the jobs submitted since the last tick join the queue;
2. the policy decides, when anything it depends on changed since it last did, or when it asks
   to (``Policy.wake_at``): admissions, each on a cluster and flavor, and preemptions;
3. admitted jobs start at once (the simulated backends have no start-up time);
4. reconcile: runs that ended by now are settled and free their GPUs (so they are free to the
   next tick's decision, as the scheduler sees an ending on its next cycle); runs preempted on
   an earlier tick stop and their jobs go back to the queue with the work they have left.

Ticks where nothing can change are skipped. Every ``sample_seconds`` the running and demanded
GPUs per tenant and the busy GPUs per flavor are recorded for the metrics.
"""

from __future__ import annotations

import heapq
import math
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from jobs.capacity import pack, take
from scheduler.simulator.scenario import Scenario
from scheduler.simulator.trace import TraceJob


@dataclass(slots=True)
class SimJob:
    """One trace job as the simulation goes: what it has left to do and how it went."""

    trace: TraceJob
    project: str
    flavors: tuple[str, ...]
    """The pool's flavors it can run on."""
    time_limit: int
    work_left: float
    """Reference-flavor seconds of work still to do."""
    first_start: int | None = None
    finished: float | None = None
    timed_out: bool = False
    rejected: bool = False
    preemptions: int = 0
    runs: list[tuple[str, str, int, float]] = field(default_factory=list)
    """(cluster, flavor, start, end) of each run."""

    @property
    def index(self) -> int:
        return self.trace.index

    @property
    def gpus(self) -> int:
        return self.trace.gpus


@dataclass(slots=True)
class Run:
    job: SimJob
    cluster: str
    flavor: str
    start: int
    ends: float
    """When it ends unless stopped: its work done, or its time limit reached."""
    stopped: int | None = None


@dataclass(frozen=True, slots=True)
class Moves:
    """A decision's outcome: jobs to start (index, cluster, flavor), in order, runs to stop
    (their jobs go back to the queue), and jobs refused for good (they can never run)."""

    admit: Sequence[tuple[int, str, str]] = ()
    preempt: Sequence[int] = ()
    reject: Sequence[int] = ()


class FreeView:
    """Free GPUs per (cluster, flavor) as node histograms (``jobs.capacity.pack``), consumed
    by ``take`` the way the world packs a job: best fit up to a node, whole nodes beyond."""

    def __init__(self, histograms: dict[tuple[str, str], list[int]]) -> None:
        self.histograms = histograms

    def fits(self, gpus: int, cluster: str, flavor: str) -> bool:
        return fits(self.histograms[(cluster, flavor)], gpus)

    def free_gpus(self, cluster: str, flavor: str) -> int:
        return sum(free * count for free, count in enumerate(self.histograms[(cluster, flavor)]))

    def take(self, gpus: int, cluster: str, flavor: str) -> None:
        histogram = self.histograms[(cluster, flavor)]
        if not fits(histogram, gpus):
            raise ValueError(f"{gpus} GPUs do not fit on {cluster} {flavor}")
        take(histogram, len(histogram) - 1, gpus)


def fits(histogram: Sequence[int], gpus: int) -> bool:
    """Whether a job of ``gpus`` fits nodes with these free GPUs (``pack``'s histogram)."""
    per_node = len(histogram) - 1
    if gpus <= per_node:
        return any(histogram[gpus:])
    return histogram[per_node] >= -(-gpus // per_node)


class Policy:
    """Decides what runs. Subclasses implement ``decide``; the hooks are optional."""

    name = "policy"

    def attach(self, world: World) -> None:
        self.world = world

    def decide(self, now: int) -> Moves:
        raise NotImplementedError

    def wake_at(self) -> int | None:
        """A time at which it must decide again even if nothing changed."""
        return None

    def started(self, run: Run, now: int) -> None:
        """``run`` began at ``now``."""

    def ended(self, run: Run, now: int) -> None:
        """``run`` ended (at ``run.stopped`` or ``run.ends``), seen by reconcile at ``now``;
        its job finished if ``run.job.finished`` is set, else it is queued again."""

    def reconcile(self, now: int) -> bool:
        """After each tick's reconcile; True when it changed something a decision reads."""
        return False


class World:
    """The state of one simulation run; ``run`` plays the trace to its end."""

    def __init__(self, scenario: Scenario, policy: Policy) -> None:
        self.scenario = scenario
        self.settings = scenario.settings
        self.policy = policy
        self.now = 0
        self.jobs = [
            SimJob(
                trace,
                scenario.projects[trace.tenant],
                scenario.acceptable(trace),
                scenario.time_limit(trace),
                trace.duration_s,
            )
            for trace in scenario.jobs
        ]
        self.queue: dict[int, SimJob] = {}
        """Waiting jobs by index, in the order they (re)joined the queue."""
        self.running: dict[int, Run] = {}
        self.stopping: list[Run] = []
        self.unrunnable: list[SimJob] = []
        """Jobs no flavor of the pool can run: never queued (the door refuses them)."""
        self._ends: list[tuple[float, int, int]] = []
        self._next_arrival = 0
        self.keys = [
            (cluster.name, item.flavor, item.nodes, item.gpus_per_node)
            for cluster in scenario.clusters
            for item in cluster.inventory
        ]
        self.gpus_per_node = {(c, f): per for c, f, _, per in self.keys}
        self._sizes: dict[tuple[str, str], Counter[int]] = {
            (c, f): Counter() for c, f, _, _ in self.keys
        }
        self._free: dict[tuple[str, str], list[int]] = {}
        self.changed = True
        self.decisions = 0
        tenants = list(dict.fromkeys(job.trace.tenant for job in self.jobs))
        self.tenants = tenants
        self._tenant_index = {tenant: i for i, tenant in enumerate(tenants)}
        self.flavor_names = sorted(scenario.capacity)
        self._flavor_index = {name: i for i, name in enumerate(self.flavor_names)}
        self.running_gpus = [0] * len(tenants)
        self.demand_gpus = [0] * len(tenants)
        self.busy_gpus = [0] * len(self.flavor_names)
        self.samples: list[int] = []
        self.running_samples = array("i")
        self.demand_samples = array("i")
        self.busy_samples = array("i")
        self._next_sample = 0
        self.stranded: list[SimJob] = []
        """Jobs still waiting when nothing more could ever happen (their budget ran out)."""
        self.policy.attach(self)

    # -- capacity ------------------------------------------------------------------------------

    def free(self, cluster: str, flavor: str) -> list[int]:
        """Nodes by free GPUs (a histogram, ``jobs.capacity.pack``) of one cluster's flavor."""
        key = (cluster, flavor)
        histogram = self._free.get(key)
        if histogram is None:
            nodes = next(n for c, f, n, _ in self.keys if (c, f) == key)
            histogram = pack(nodes, self.gpus_per_node[key], self._sizes[key].elements())
            self._free[key] = histogram
        return histogram

    def fits(self, gpus: int, cluster: str, flavor: str) -> bool:
        return fits(self.free(cluster, flavor), gpus)

    def free_gpus(self, cluster: str, flavor: str) -> int:
        return sum(free * count for free, count in enumerate(self.free(cluster, flavor)))

    def free_view(self) -> FreeView:
        """A copy of the free capacity that a policy's own admissions can consume while it
        decides (the world's capacity changes only once the moves are applied)."""
        return FreeView({(c, f): list(self.free(c, f)) for c, f, _, _ in self.keys})

    def _hold(self, run: Run, sign: int) -> None:
        key = (run.cluster, run.flavor)
        sizes = self._sizes[key]
        sizes[run.job.gpus] += sign
        if not sizes[run.job.gpus]:
            del sizes[run.job.gpus]
        self._free.pop(key, None)
        tenant = self._tenant_index[run.job.trace.tenant]
        self.running_gpus[tenant] += sign * run.job.gpus
        self.busy_gpus[self._flavor_index[run.flavor]] += sign * run.job.gpus

    # -- the loop ------------------------------------------------------------------------------

    def run(self, progress: Callable[[int, int], None] | None = None) -> None:
        cycle = self.settings.cycle_seconds
        jobs = self.jobs
        total = len(jobs)
        if not jobs:
            return
        self.now = _tick_at(jobs[0].trace.submit_s, cycle)
        self._next_sample = 0
        done = 0
        while True:
            self._sample_until(self.now)
            self._arrive()
            wake = self.policy.wake_at()
            if self.changed or (wake is not None and wake <= self.now):
                self.changed = False
                self.decisions += 1
                self._apply(self.policy.decide(self.now))
            finished = self._reconcile()
            if self.policy.reconcile(self.now):
                self.changed = True
            if finished and progress is not None:
                done += finished
                progress(done, total)
            following = self._next_tick()
            if following is None:
                break
            self.now = following
        self._sample_until(self.now + 1)

    def _arrive(self) -> None:
        jobs = self.jobs
        while (
            self._next_arrival < len(jobs) and jobs[self._next_arrival].trace.submit_s <= self.now
        ):
            job = jobs[self._next_arrival]
            self._next_arrival += 1
            if not job.flavors:
                self.unrunnable.append(job)
                continue
            self.queue[job.index] = job
            self.demand_gpus[self._tenant_index[job.trace.tenant]] += job.gpus
            self.changed = True

    def _apply(self, moves: Moves) -> None:
        now = self.now
        for index in moves.preempt:
            run = self.running.pop(index)
            run.stopped = now
            self.stopping.append(run)
            self.changed = True
        for index in moves.reject:
            job = self.queue.pop(index)
            job.rejected = True
            self.demand_gpus[self._tenant_index[job.trace.tenant]] -= job.gpus
            self.changed = True
        for index, cluster, flavor in moves.admit:
            job = self.queue.pop(index)
            if not self.fits(job.gpus, cluster, flavor):
                raise RuntimeError(
                    f"{self.policy.name} placed job {index} ({job.gpus} GPUs) on {cluster} "
                    f"{flavor}, where it does not fit"
                )
            needed = job.trace.runtime_on(flavor, job.work_left)
            run = Run(job, cluster, flavor, now, now + min(needed, float(job.time_limit)))
            self.running[index] = run
            self._hold(run, +1)
            if job.first_start is None:
                job.first_start = now
            heapq.heappush(self._ends, (run.ends, index, len(job.runs)))
            job.runs.append((cluster, flavor, now, run.ends))
            self.policy.started(run, now)
            self.changed = True

    def _reconcile(self) -> int:
        now = self.now
        finished = 0
        stopping, self.stopping = self.stopping, []
        for run in stopping:
            if run.stopped is not None and run.stopped >= now:
                self.stopping.append(run)  # stopped on this tick: seen on the next
                continue
            self._end(run, requeue=True)
        ends = self._ends
        while ends and ends[0][0] <= now:
            _, index, attempt = heapq.heappop(ends)
            ending = self.running.get(index)
            if ending is None or len(ending.job.runs) - 1 != attempt:
                continue  # stopped before it ended
            del self.running[index]
            self._end(ending, requeue=False)
            finished += 1
        return finished

    def _end(self, run: Run, requeue: bool) -> None:
        job = run.job
        self._hold(run, -1)
        ended = run.stopped if run.stopped is not None else run.ends
        cluster, flavor, start, _ = job.runs[-1]
        job.runs[-1] = (cluster, flavor, start, ended)
        done = (ended - start) * job.trace.speed[flavor]
        if requeue:
            job.work_left = max(0.0, job.work_left - done)
            job.preemptions += 1
            self.queue[job.index] = job
        else:
            job.timed_out = job.trace.runtime_on(flavor, job.work_left) > job.time_limit
            job.work_left = 0.0
            job.finished = ended
            self.demand_gpus[self._tenant_index[job.trace.tenant]] -= job.gpus
        self.changed = True
        self.policy.ended(run, self.now)

    def _next_tick(self) -> int | None:
        cycle = self.settings.cycle_seconds
        candidates: list[int] = []
        if self.changed or self.stopping:
            candidates.append(self.now + cycle)
        if self._next_arrival < len(self.jobs):
            candidates.append(_tick_at(self.jobs[self._next_arrival].trace.submit_s, cycle))
        if self._ends:
            candidates.append(_tick_at(math.ceil(self._ends[0][0]), cycle))
        wake = self.policy.wake_at()
        if wake is not None and (self.running or self.stopping or candidates):
            candidates.append(_tick_at(wake, cycle))
        if not candidates:
            self.stranded = list(self.queue.values())
            return None
        return max(self.now + cycle, min(candidates))

    def _sample_until(self, until: int) -> None:
        """Samples at every ``sample_seconds`` before ``until``: the state stood still since."""
        every = self.settings.sample_seconds
        while self._next_sample < until:
            self.samples.append(self._next_sample)
            self.running_samples.extend(self.running_gpus)
            self.demand_samples.extend(self.demand_gpus)
            self.busy_samples.extend(self.busy_gpus)
            self._next_sample += every

    # -- for policies ---------------------------------------------------------------------------

    def waiting(self) -> Iterable[SimJob]:
        return self.queue.values()


def _tick_at(seconds: float, cycle: int) -> int:
    """The first tick at or after ``seconds``."""
    return int(math.ceil(seconds / cycle) * cycle)
