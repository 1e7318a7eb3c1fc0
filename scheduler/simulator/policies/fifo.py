"""The FIFO baseline: strict first-come, first-served by submission time, with no backfill.

The oldest waiting job starts as soon as it fits; until it does, nothing submitted after it
starts (head-of-line blocking), however much is free. It runs on the first flavor, in the
pool's flavors' name order (then the clusters' order), where it fits: the policy knows nothing
of how fast a job runs where (heterogeneity-agnostic), and never preempts.

Source: the FIFO baseline of Gavel (Narayanan et al., "Heterogeneity-Aware Cluster Scheduling
Policies for Deep Learning Workloads", OSDI'20; its ``FIFOPolicy`` in base mode gives each job,
in arrival order, a GPU type with enough free workers, drawn at random among them where this
policy takes the first by name, and stops at the first job it cannot place, so that no later
job jumps ahead) and of Tiresias (Gu et al., "Tiresias: A GPU Cluster Manager for Distributed
Deep Learning", NSDI'19), where FIFO stands for YARN-CS's scheduling of GPU jobs. Budgets play
no part: the baseline has no credits.

The placement order and the refusal of jobs that fit nowhere (``FirstFit``), and the tracking
of new arrivals (``Arrivals``), are shared with the other baselines.
"""

from __future__ import annotations

from scheduler.simulator.world import FreeView, Moves, Policy, SimJob, World, fits

Key = tuple[str, str]
"""A place to run: (cluster, flavor)."""


class FirstFit:
    """Heterogeneity-agnostic placement: the (cluster, flavor) pairs in a fixed order, flavor
    name first, then the clusters' order in the scenario; a job goes to the first it fits."""

    def __init__(self, world: World) -> None:
        rank = {cluster.name: place for place, cluster in enumerate(world.scenario.clusters)}
        self.keys: list[Key] = sorted(
            ((cluster, flavor) for cluster, flavor, _, _ in world.keys),
            key=lambda key: (key[1], rank[key[0]]),
        )
        self.shape = {(c, f): (nodes, per) for c, f, nodes, per in world.keys}
        self.empty = {key: [0] * per + [nodes] for key, (nodes, per) in self.shape.items()}
        """Each place's node histogram with nothing running (``jobs.capacity.pack``)."""
        self._by_flavors: dict[tuple[str, ...], list[Key]] = {}

    def candidates(self, job: SimJob) -> list[Key]:
        """The places ``job`` may run, in order: its flavors only."""
        found = self._by_flavors.get(job.flavors)
        if found is None:
            found = [key for key in self.keys if key[1] in job.flavors]
            self._by_flavors[job.flavors] = found
        return found

    def never_fits(self, job: SimJob) -> bool:
        """Whether ``job`` fits none of its places even with nothing running there."""
        return not any(fits(self.empty[key], job.gpus) for key in self.candidates(job))

    def place(self, view: FreeView, job: SimJob) -> Key | None:
        """The first of ``job``'s places where it fits now."""
        for key in self.candidates(job):
            if view.fits(job.gpus, *key):
                return key
        return None


class Arrivals:
    """The jobs that joined the queue since the last call, by submission: the world queues a
    trace's jobs in its order, skipping those no flavor of the pool can run."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, world: World, now: int) -> list[SimJob]:
        jobs = world.jobs
        found: list[SimJob] = []
        while self.next < len(jobs) and jobs[self.next].trace.submit_s <= now:
            job = jobs[self.next]
            self.next += 1
            if job.index in world.queue:
                found.append(job)
        return found

    def split(self, world: World, now: int, fit: FirstFit) -> tuple[list[SimJob], list[int]]:
        """The jobs arrived since the last call that could run here, and (by index) those that
        never could: no flavor of the pool holds them."""
        runnable: list[SimJob] = []
        never: list[int] = []
        for job in self.take(world, now):
            if fit.never_fits(job):
                never.append(job.index)
            else:
                runnable.append(job)
        return runnable, never


class FifoPolicy(Policy):
    name = "fifo"

    def attach(self, world: World) -> None:
        super().attach(world)
        self.fit = FirstFit(world)
        self.arrivals = Arrivals()

    def decide(self, now: int) -> Moves:
        world = self.world
        _, reject = self.arrivals.split(world, now, self.fit)
        refused = set(reject)
        view = world.free_view()
        admit: list[tuple[int, str, str]] = []
        # The queue is in arrival order, which is submission order: FIFO never preempts, so
        # no job rejoins it.
        for job in world.waiting():
            if job.index in refused:
                continue
            key = self.fit.place(view, job)
            if key is None:
                break  # head-of-line blocking: nothing behind the oldest job starts before it
            view.take(job.gpus, *key)
            admit.append((job.index, *key))
        return Moves(admit=admit, reject=reject)
