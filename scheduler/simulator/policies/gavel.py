"""The Gavel baseline: heterogeneity-aware max-min fairness, solved as a linear program and
carried out in rounds.

Source: Narayanan et al., "Heterogeneity-Aware Cluster Scheduling Policies for Deep Learning
Workloads", OSDI'20, policy ``max_min_fairness`` with throughputs (``MaxMinFairnessPolicyWithPerf``
in stanford-futuredata/gavel), and its round-based mechanism (``scheduler.py``, simulation mode).

The allocation ``X[j][f]`` is the fraction of time job ``j`` should run on flavor ``f``. It
maximises the least, over jobs, of the job's effective throughput ``sum_f X[j][f] * speed_j[f]``
normalised by its throughput under an equal time share of every flavor (``X_equal[f]``: the
flavor's GPUs over all GPUs, as Gavel's ``ProportionalPolicy``), times its GPUs (Gavel's scale
factor: a job of ``g`` GPUs needs ``1/g`` the time to be as well served) and over its weight,
subject to ``sum_f X[j][f] <= 1`` and ``sum_j X[j][f] * gpus_j <= GPUs of f``, with
``X[j][f] = 0`` where ``j`` cannot run. Jobs alike (same GPUs, weight and speeds) get the same
allocation, which the LP takes as one class (an optimum of the per-job LP, found far faster),
and ties between optima go to the most total normalised throughput (a secondary term a
thousandth of the first). It is solved with HiGHS (``scipy.optimize.linprog``). A job's weight
(Gavel's priority weight, 1 by default) is its project's normalised share times the number of
projects (``slurm.project_shares``): 1 with equal shares.

As in Gavel's simulator, the allocation is recomputed when jobs arrived or finished since it
was, but no sooner than ``reset_seconds`` (1920 s, Gavel's
``minimum_time_between_allocation_resets``) after the last; each recomputation restarts the
count of time received (``reset_seconds=round_seconds`` solves every round things changed).
At most ``max_jobs`` (256) jobs, the oldest, are in the LP, which keeps it in milliseconds.

Every round (``round_seconds``, 360 s as Gavel's simulator) each job's priority on each flavor
it has a share of is ``X[j][f]`` over the fraction of the time since that restart it ran there
(``X[j][f] * 1e9`` if none), ties broken by its deficit (the time it should have had there
less what it had, summed over past allocations), then ``X[j][f]``. Flavors are taken fastest
first (by catalogue throughput) and, for each, its jobs by priority: a job not yet placed
takes the flavor if it has room (node packing as the world's), on its current cluster if it
runs there. Then every job still unplaced, oldest first, takes the flavor with room where it
runs fastest: jobs with no share of the flavors left, those beyond ``max_jobs`` and those
arrived since the allocation (they wait for it). Gavel's own loop lists every job under every
type, at priority 0 where it has no share, so spare GPUs of the first type go to whoever is
listed there even where it runs slower; here spare GPUs go where each job runs fastest.

Jobs whose place changes are preempted and resume with their progress once stopped (the
world's preemption); jobs placed on GPUs still held start as those free during the round, and
nothing else starts mid-round, as in Gavel's rounds, except on an idle pool, where a round
starts at once (the world wakes no policy while nothing runs). Budgets play no part (the
baseline has no credits).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from scheduler.simulator.policies.fifo import Arrivals, FirstFit, Key
from scheduler.simulator.policies.slurm import project_shares
from scheduler.simulator.world import FreeView, Moves, Policy, Run, SimJob, World, fits

ROUND_SECONDS = 360
RESET_SECONDS = 1920
MAX_JOBS = 256
Kind = tuple[int, float, tuple[tuple[str, float], ...]]
"""Jobs alike to the LP: GPUs, weight, and speed on each flavor it can run on."""
UNRECEIVED = 1e9
TIEBREAK = 1e-3


class GavelPolicy(Policy):
    name = "gavel"

    def __init__(
        self,
        round_seconds: int = ROUND_SECONDS,
        reset_seconds: int = RESET_SECONDS,
        max_jobs: int = MAX_JOBS,
    ) -> None:
        self.round_seconds = round_seconds
        self.reset_seconds = reset_seconds
        self.max_jobs = max_jobs

    def attach(self, world: World) -> None:
        super().attach(world)
        scenario = world.scenario
        self.fit = FirstFit(world)
        self.arrivals = Arrivals()
        self.capacity = scenario.capacity
        self.total = sum(self.capacity.values())
        self.flavors = sorted(
            self.capacity, key=lambda f: (-scenario.flavors[f].relative_throughput, f)
        )
        """Fastest first: the order Gavel fills worker types in."""
        self.places: dict[str, list[Key]] = {
            flavor: [key for key in self.fit.keys if key[1] == flavor] for flavor in self.flavors
        }
        shares = project_shares(scenario.tree)
        self.weights = {project: share * len(shares) for project, share in shares.items()}
        self.allocation: dict[int, dict[str, float]] = {}
        self.received: dict[int, dict[str, float]] = {}
        """Seconds each job ran on each flavor since the last reset, in runs that ended."""
        self.deficit: dict[int, dict[str, float]] = {}
        self.reset_at: int | None = None
        self.changed = False
        """Whether jobs arrived or finished since the allocation was computed."""
        self.next_round: int | None = None
        self.planned: dict[int, Key] = {}
        """This round's places for jobs not running there yet, in the order they were given."""

    def wake_at(self) -> int | None:
        return self.next_round

    # -- deciding -----------------------------------------------------------------------------

    def decide(self, now: int) -> Moves:
        world = self.world
        arrived, reject = self.arrivals.split(world, now, self.fit)
        if arrived:
            self.changed = True
        view = world.free_view()
        preempt: list[int] = []
        idle = not world.running and not world.stopping and not self.planned
        if self.next_round is None or now >= self.next_round or idle:
            # an idle pool starts a round at once: the world wakes no one while nothing runs
            self.next_round = now + self.round_seconds
            preempt = self._round(now, set(reject))
        admit: list[tuple[int, str, str]] = []
        for index, key in list(self.planned.items()):
            queued = world.queue.get(index)
            if queued is not None and view.fits(queued.gpus, *key):
                view.take(queued.gpus, *key)
                admit.append((index, *key))
                del self.planned[index]
        return Moves(admit=admit, preempt=preempt, reject=reject)

    def _round(self, now: int, refused: set[int]) -> list[int]:
        """Plan the round; the runs to stop."""
        world = self.world
        running = world.running
        waiting = {i: job for i, job in world.queue.items() if i not in refused}
        if self.reset_at is None or (self.changed and now - self.reset_at >= self.reset_seconds):
            self._reset(now)
            self._solve(running, waiting)
            self.changed = False
        assert self.reset_at is not None
        elapsed = now - self.reset_at
        room = {key: list(self.fit.empty[key]) for key in self.fit.keys}
        left = dict(self.capacity)
        plan: dict[int, Key] = {}

        def place(job: SimJob, flavor: str) -> bool:
            run = running.get(job.index)
            keys = self.places[flavor]
            if run is not None and run.flavor == flavor:
                keys = [(run.cluster, flavor), *keys]
            for key in keys:
                if fits(room[key], job.gpus):
                    FreeView(room).take(job.gpus, *key)
                    left[flavor] -= job.gpus
                    plan[job.index] = key
                    return True
            return False

        for flavor in self.flavors:
            entries: list[tuple[float, float, float, int]] = []
            for index, shares in self.allocation.items():
                share = shares.get(flavor)
                if not share or (index not in running and index not in waiting):
                    continue
                got = self._received(index, flavor, now)
                fraction = got / elapsed if elapsed > 0 else 0.0
                priority = share / fraction if fraction > 0 else share * UNRECEIVED
                deficit = self.deficit.get(index, {}).get(flavor, 0.0)
                entries.append((priority, deficit, share, -index))
            entries.sort(reverse=True)
            for _, _, _, negative in entries:
                if not left[flavor]:
                    break
                index = -negative
                if index not in plan:
                    job = running[index].job if index in running else waiting[index]
                    if job.gpus <= left[flavor]:
                        place(job, flavor)
        if any(left.values()):
            others = sorted(i for i in (*running, *waiting) if i not in plan)
            for index in others:
                job = running[index].job if index in running else waiting[index]
                speed = job.trace.speed
                for flavor in sorted(job.flavors, key=lambda f: -speed[f]):
                    if job.gpus <= left[flavor] and place(job, flavor):
                        break
                if not any(left.values()):
                    break
        self.planned = {
            index: key
            for index, key in plan.items()
            if index not in running or (running[index].cluster, running[index].flavor) != key
        }
        return [
            index for index, run in running.items() if plan.get(index) != (run.cluster, run.flavor)
        ]

    def _received(self, index: int, flavor: str, now: int) -> float:
        """Seconds ``index`` ran on ``flavor`` since the last reset, its current run included."""
        assert self.reset_at is not None
        got = self.received.get(index, {}).get(flavor, 0.0)
        run = self.world.running.get(index)
        if run is not None and run.flavor == flavor:
            got += now - max(run.start, self.reset_at)
        return got

    def _reset(self, now: int) -> None:
        """Close the allocation's period: each job's deficit grows by what it should have had
        less what it had; the time received counts afresh from ``now``."""
        if self.reset_at is not None:
            elapsed = now - self.reset_at
            for index, shares in self.allocation.items():
                deficit = self.deficit.setdefault(index, {})
                for flavor, share in shares.items():
                    got = self._received(index, flavor, now)
                    deficit[flavor] = deficit.get(flavor, 0.0) + share * elapsed - got
        self.received = {}
        self.reset_at = now

    def _solve(self, running: dict[int, Run], waiting: dict[int, SimJob]) -> None:
        """The max-min fair allocation over the oldest ``max_jobs`` active jobs."""
        for each in (self.received, self.deficit):
            for index in [i for i in each if i not in running and i not in waiting]:
                del each[index]
        active = sorted({*running, *waiting})[: self.max_jobs]
        classes: dict[Kind, list[int]] = {}
        for index in active:
            job = running[index].job if index in running else waiting[index]
            speeds = tuple(
                (flavor, job.trace.speed[flavor])
                for flavor in self.flavors
                if flavor in job.flavors
                and any(fits(self.fit.empty[key], job.gpus) for key in self.places[flavor])
            )
            if speeds:
                weight = self.weights.get(job.project, 1.0)
                classes.setdefault((job.gpus, weight, speeds), []).append(index)
        self.allocation = {}
        if not classes:
            return
        solved = self._lp([(kind, len(jobs)) for kind, jobs in classes.items()])
        if solved is None:
            return  # no allocation: every job waits as if it arrived since
        for jobs, shares in zip(classes.values(), solved, strict=True):
            for index in jobs:
                self.allocation[index] = shares

    def _lp(self, kinds: list[tuple[Kind, int]]) -> list[dict[str, float]] | None:
        """Gavel's max-min fairness LP over classes of alike jobs (``(kind, how many)``): per
        class, each of its jobs' time fraction on each flavor; None if HiGHS finds none.

        Variables: ``x[k][f]`` per class and flavor it can run on, then ``t``. Maximise
        ``t`` (plus a thousandth of the jobs' mean normalised throughput) subject to, per
        class, ``sum_f x[k][f] <= 1`` and ``t * weight / gpus - sum_f x[k][f] * speed[f] /
        equal <= 0`` (``equal``: its throughput on an equal share of every flavor), and per
        flavor ``sum_k count * gpus * x[k][f] <= GPUs``."""
        column = {flavor: place for place, flavor in enumerate(self.flavors)}
        rows: list[int] = []
        columns: list[int] = []
        values: list[float] = []
        bounds: list[tuple[float, float | None]] = []
        objective: list[float] = []
        owners: list[tuple[int, str]] = []
        jobs = sum(count for _, count in kinds)
        flavors = len(self.flavors)
        fair = len(kinds) + flavors
        t = sum(len(speeds) for (_, _, speeds), _ in kinds)
        for k, ((gpus, weight, speeds), count) in enumerate(kinds):
            equal = sum(speed * self.capacity[f] / self.total for f, speed in speeds)
            for flavor, speed in speeds:
                variable = len(owners)
                owners.append((k, flavor))
                bounds.append((0.0, 1.0))
                objective.append(-TIEBREAK * count * speed / equal / jobs)
                rows += [k, len(kinds) + column[flavor], fair + k]
                columns += [variable, variable, variable]
                values += [1.0, float(count * gpus), -speed / equal]
            rows.append(fair + k)
            columns.append(t)
            values.append(weight / gpus)
        bounds.append((0.0, None))
        objective.append(-1.0)
        limits = [1.0] * len(kinds) + [float(self.capacity[f]) for f in self.flavors]
        limits += [0.0] * len(kinds)
        matrix = csr_matrix((values, (rows, columns)), shape=(len(limits), t + 1))
        result = linprog(
            np.array(objective),
            A_ub=matrix,
            b_ub=np.array(limits),
            bounds=bounds,
            method="highs",
        )
        if result.status != 0:
            return None
        found: list[dict[str, float]] = [{f: 0.0 for f, _ in speeds} for (_, _, speeds), _ in kinds]
        for (k, flavor), value in zip(owners, result.x[:t], strict=True):
            found[k][flavor] = min(1.0, max(0.0, float(value)))
        return found

    # -- running ------------------------------------------------------------------------------

    def ended(self, run: Run, now: int) -> None:
        job = run.job
        end = run.stopped if run.stopped is not None else run.ends
        got = max(0.0, end - max(run.start, self.reset_at or 0))
        received = self.received.setdefault(job.index, {})
        received[run.flavor] = received.get(run.flavor, 0.0) + got
        if job.finished is not None:
            self.changed = True
            self.allocation.pop(job.index, None)
            self.planned.pop(job.index, None)
