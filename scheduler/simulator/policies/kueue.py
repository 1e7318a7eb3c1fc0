"""The Kueue baseline: a ClusterQueue per project in one cohort, nominal quota by share,
borrowing of unused quota, and preemption of borrowed work by dominant resource share.

As configured here (Kueue v1beta2 concepts, https://kueue.sigs.k8s.io/docs/concepts/):

- ClusterQueues (``concepts/cluster_queue``): one per project of the account tree, all in one
  cohort, each with one ``nvidia.com/gpu`` resource over the pool's flavors in name order. A
  queue's ``nominalQuota`` of a flavor is its project's entitled share of that flavor's GPUs:
  the normalised share (the product along its path of share over siblings' shares, as
  ``slurm.project_shares``) times the flavor's GPUs, rounded to whole GPUs by largest
  remainder so that the cohort's quotas add up to the flavor's GPUs. No ``borrowingLimit`` or
  ``lendingLimit``: a queue may borrow all the cohort's unused quota.
- ``queueingStrategy: StrictFIFO``: each queue's workloads in order of priority, then creation
  (submission; a preempted workload keeps its place); a head that cannot be admitted blocks
  the queue's later workloads. Kueue's default is ``BestEffortFIFO``, which lets later
  workloads pass an inadmissible head and so can starve a tenant's large job behind its own
  small ones; StrictFIFO keeps the tenant's order.
- ``flavorFungibility: {whenCanBorrow: TryNextFlavor, whenCanPreempt: TryNextFlavor}`` with the
  default preference ``BorrowingOverPreemption``: the first flavor, in the queue's order, where
  the workload fits within nominal quota; else the first where it fits by borrowing; else one
  where preemption may make room, not borrowing first.
- ``preemption: {withinClusterQueue: Never, reclaimWithinCohort: Any}``, with fair sharing
  enabled (``fairSharing.preemptionStrategies: [LessThanOrEqualToFinalShare,
  LessThanInitialShare]``, the default; ``concepts/preemption``, ``concepts/fair_sharing``)
  and each queue's ``fairSharing.weight`` its project's normalised share. A queue's share
  value is its dominant resource share (DRS): the GPUs it uses above its nominal quota, over
  all flavors, per mille of the cohort's lendable GPUs, divided by its weight. Candidates are
  the running workloads on the flavor needing preemption of other queues borrowing on that
  flavor, each queue's ordered lowest priority first, then most recently admitted first. The
  queue with the highest DRS is preempted from first: unconditionally while the preemptor's
  queue stays within its nominal quota with the workload (reclaiming; Kueue 0.17's
  ``FairSharingPreemptWithinNominal``), otherwise only a workload whose removal leaves its
  queue's DRS at least the preemptor queue's DRS with the workload (then, as the second
  strategy, while the target's DRS is above it); finally, targets not needed are given back
  in reverse order. Workloads are admitted in a tournament over the queues' heads: a head
  that would not borrow on its flavor first, then the lowest DRS with it admitted, then
  priority, then creation.

Admission reserves quota; the job starts as soon as its flavor has nodes with room (a
workload admitted by quota whose pods wait for nodes keeps its quota, as with
kube-scheduler), and a preempted workload's quota is released when its run has stopped.
Placement within a flavor takes the clusters in order. Kueue has nothing like
``SimSettings.min_runtime_seconds`` (a victim may have just started) or a wait before
preempting, and knows nothing of budgets or of how fast a job runs where.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from scheduler.simulator.policies.fifo import Arrivals, FirstFit, Key
from scheduler.simulator.policies.slurm import project_shares
from scheduler.simulator.world import FreeView, Moves, Policy, Run, SimJob, World, fits


@dataclass(slots=True)
class Admitted:
    """A workload holding quota: on which flavor, how much, since when, at what priority."""

    flavor: str
    gpus: int
    at: int
    priority: int


@dataclass(frozen=True, slots=True)
class Candidate:
    """A running workload that may be preempted."""

    index: int
    gpus: int
    priority: int
    at: int

    def order(self) -> tuple[int, int, int]:
        """Kueue's candidate order: lowest priority, then most recently admitted, first."""
        return (self.priority, -self.at, -self.index)


@dataclass
class ClusterQueue:
    name: str
    nominal: dict[str, int]
    weight: float
    usage: dict[str, int]
    pending: list[tuple[int, int, int]] = field(default_factory=list)
    """A heap of (priority order, submission, index): StrictFIFO's order."""
    admitted: dict[int, Admitted] = field(default_factory=dict)


def nominal_quotas(
    shares: Mapping[str, float], capacity: Mapping[str, int]
) -> dict[str, dict[str, int]]:
    """Per project, per flavor, its share of the flavor's GPUs in whole GPUs (largest
    remainder, ties by name), adding up to the flavor's GPUs."""
    total = sum(shares.values())
    quotas: dict[str, dict[str, int]] = {project: {} for project in shares}
    for flavor, gpus in capacity.items():
        exact = {p: gpus * s / total if total else 0.0 for p, s in shares.items()}
        for project, value in exact.items():
            quotas[project][flavor] = math.floor(value)
        left = gpus - sum(quotas[p][flavor] for p in shares)
        by_remainder = sorted(shares, key=lambda p: (-(exact[p] - math.floor(exact[p])), p))
        for project in by_remainder[: max(0, left)]:
            quotas[project][flavor] += 1
    return quotas


class KueuePolicy(Policy):
    name = "kueue"

    def attach(self, world: World) -> None:
        super().attach(world)
        scenario = world.scenario
        self.fit = FirstFit(world)
        self.arrivals = Arrivals()
        self.capacity = scenario.capacity
        self.flavors = sorted(self.capacity)
        self.places: dict[str, list[Key]] = {
            flavor: [key for key in self.fit.keys if key[1] == flavor] for flavor in self.flavors
        }
        shares = project_shares(scenario.tree)
        quotas = nominal_quotas(shares, self.capacity)
        self.queues = {
            project: ClusterQueue(project, quotas[project], share, dict.fromkeys(self.flavors, 0))
            for project, share in shares.items()
        }
        self.lendable = sum(self.capacity.values())
        self.cohort_usage = dict.fromkeys(self.flavors, 0)
        self.jobs: dict[int, SimJob] = {}
        self.reserved: dict[int, str] = {}
        """Workloads admitted by quota waiting for nodes, by admission: index -> flavor."""

    # -- shares -------------------------------------------------------------------------------

    def drs(self, queue: ClusterQueue, usage: Mapping[str, int]) -> float:
        """The queue's dominant resource share with ``usage``: borrowed GPUs per mille of the
        lendable GPUs, over its weight (infinite for a borrowing queue of weight 0)."""
        borrowed = sum(max(0, usage[f] - queue.nominal[f]) for f in self.flavors)
        if borrowed == 0:
            return 0.0
        if queue.weight <= 0:
            return math.inf
        return borrowed * 1000 / self.lendable / queue.weight

    # -- deciding -----------------------------------------------------------------------------

    def decide(self, now: int) -> Moves:
        world = self.world
        arrived, reject = self.arrivals.split(world, now, self.fit)
        for job in arrived:
            self._enqueue(job)
        view = world.free_view()
        admit: list[tuple[int, str, str]] = []
        for index, flavor in list(self.reserved.items()):
            self._start(index, flavor, view, admit)
        stopping = {run.job.index for run in world.stopping}
        preempt: list[int] = []
        blocked: set[str] = set()
        while True:
            entries: list[tuple[tuple[bool, float, int, int, int], ClusterQueue, SimJob, bool]] = []
            for queue in self.queues.values():
                if not queue.pending or queue.name in blocked:
                    continue
                job = self.jobs[queue.pending[0][2]]
                choice = self._assign(queue, job)
                if choice is None:
                    blocked.add(queue.name)
                    continue
                flavor, borrows, preempting = choice
                usage = dict(queue.usage)
                usage[flavor] += job.gpus
                order = job.trace.priority.order
                rank = (borrows, self.drs(queue, usage), order, job.trace.submit_s, job.index)
                entries.append((rank, queue, job, preempting))
            if not entries:
                break
            entries.sort(key=lambda entry: entry[0])
            progressed = False
            for _, queue, job, planned in entries:
                choice = self._assign(queue, job)
                if choice is None:
                    blocked.add(queue.name)
                    continue
                flavor, _, preempting = choice
                if preempting and not planned:
                    continue  # it fitted when the cycle began: it is tried again next cycle
                if not preempting:
                    self._admit(queue, job, flavor, now, view, admit)
                    progressed = True
                    continue
                blocked.add(queue.name)  # it waits for its victims (or for room) either way
                for option in self._preemptible(queue, job):
                    targets = self._targets(queue, job, option, stopping)
                    if targets is None:
                        continue
                    preempt.extend(targets)
                    stopping.update(targets)
                    progressed = progressed or bool(targets)
                    break
            if not progressed:
                break
        return Moves(admit=admit, preempt=preempt, reject=reject)

    def _enqueue(self, job: SimJob) -> None:
        self.jobs[job.index] = job
        queue = self.queues[job.project]
        heapq.heappush(queue.pending, (job.trace.priority.order, job.trace.submit_s, job.index))

    def _assign(self, queue: ClusterQueue, job: SimJob) -> tuple[str, bool, bool] | None:
        """The flavor for ``job`` by the queue's fungibility: (flavor, borrows, preempting).
        Fits within nominal quota at once; else the first fit by borrowing; else the first
        where preemption could make room, not borrowing first; None if none."""
        borrowing: str | None = None
        reclaim: str | None = None
        preempt: str | None = None
        for flavor in self.flavors:
            if flavor not in job.flavors or not self._ever_fits(job, flavor):
                continue
            borrows = queue.usage[flavor] + job.gpus > queue.nominal[flavor]
            if self.cohort_usage[flavor] + job.gpus <= self.capacity[flavor]:
                if not borrows:
                    return flavor, False, False
                borrowing = borrowing or flavor
            elif not borrows:
                reclaim = reclaim or flavor
            else:
                preempt = preempt or flavor
        if borrowing is not None:
            return borrowing, True, False
        if reclaim is not None:
            return reclaim, False, True
        if preempt is not None:
            return preempt, True, True
        return None

    def _preemptible(self, queue: ClusterQueue, job: SimJob) -> list[str]:
        """The flavors where preemption could make room for ``job``, not borrowing first."""
        within: list[str] = []
        beyond: list[str] = []
        for flavor in self.flavors:
            if flavor not in job.flavors or not self._ever_fits(job, flavor):
                continue
            if queue.usage[flavor] + job.gpus <= queue.nominal[flavor]:
                within.append(flavor)
            else:
                beyond.append(flavor)
        return within + beyond

    def _ever_fits(self, job: SimJob, flavor: str) -> bool:
        return any(fits(self.fit.empty[key], job.gpus) for key in self.places[flavor])

    def _admit(
        self,
        queue: ClusterQueue,
        job: SimJob,
        flavor: str,
        now: int,
        view: FreeView,
        admit: list[tuple[int, str, str]],
    ) -> None:
        heapq.heappop(queue.pending)
        queue.usage[flavor] += job.gpus
        self.cohort_usage[flavor] += job.gpus
        order = job.trace.priority.order
        queue.admitted[job.index] = Admitted(flavor, job.gpus, now, -order)
        self.reserved[job.index] = flavor
        self._start(job.index, flavor, view, admit)

    def _start(
        self, index: int, flavor: str, view: FreeView, admit: list[tuple[int, str, str]]
    ) -> None:
        """Start an admitted workload on the first cluster whose nodes have room for it."""
        job = self.jobs[index]
        for key in self.places[flavor]:
            if view.fits(job.gpus, *key):
                view.take(job.gpus, *key)
                admit.append((index, *key))
                del self.reserved[index]
                return

    # -- preemption ---------------------------------------------------------------------------

    def _targets(
        self, preemptor: ClusterQueue, job: SimJob, flavor: str, stopping: set[int]
    ) -> list[int] | None:
        """Kueue's fair-sharing preemption for ``job`` on ``flavor``: the workloads to stop,
        [] if the runs already stopping make room, None if no strategy allows enough."""
        usage = {name: dict(queue.usage) for name, queue in self.queues.items()}
        for index in stopping:
            held = self.queues[self.jobs[index].project].admitted.get(index)
            if held is not None:
                usage[self.jobs[index].project][held.flavor] -= held.gpus
        needed = job.gpus
        free = self.capacity[flavor] - sum(each[flavor] for each in usage.values())
        if free >= needed:
            return []
        borrowing = [
            name
            for name, queue in self.queues.items()
            if name != preemptor.name and usage[name][flavor] > queue.nominal[flavor]
        ]
        usage[preemptor.name][flavor] += needed  # shares are taken with the workload admitted
        preemptor_share = self.drs(preemptor, usage[preemptor.name])
        within = usage[preemptor.name][flavor] <= preemptor.nominal[flavor]
        if not within and all(
            preemptor_share > self.drs(self.queues[each], usage[each]) for each in borrowing
        ):
            return None  # no workload of any queue can pass either strategy
        running = self.world.running  # not those admitted by quota only, or just now
        pool: dict[str, list[Candidate]] = {}
        for borrower in borrowing:
            found = [
                Candidate(index, held.gpus, held.priority, held.at)
                for index, held in self.queues[borrower].admitted.items()
                if held.flavor == flavor and index in running and index not in stopping
            ]
            if found:
                pool[borrower] = sorted(found, key=Candidate.order)
        targets: list[tuple[str, Candidate]] = []

        def take(name: str, candidate: Candidate) -> bool:
            """Preempt ``candidate``; whether the workload fits now."""
            nonlocal free
            usage[name][flavor] -= candidate.gpus
            free += candidate.gpus
            targets.append((name, candidate))
            return free >= needed

        def highest(queues: dict[str, list[Candidate]]) -> str | None:
            """The queue, still borrowing and with candidates left, of the highest DRS (ties:
            the one whose first candidate comes first)."""
            best: tuple[float, tuple[int, int, int], str] | None = None
            for name in list(queues):
                share = self.drs(self.queues[name], usage[name])
                if not queues[name] or share <= 0:
                    del queues[name]
                    continue
                rank = (-share, queues[name][0].order(), name)
                if best is None or rank < best:
                    best = rank
            return None if best is None else best[2]

        retry: dict[str, list[Candidate]] = {}
        while (name := highest(pool)) is not None:
            found = pool[name]
            if within:  # reclaiming nominal quota: no strategy needs to pass
                if take(name, found.pop(0)):
                    return self._fill_back(targets, free, needed)
                continue
            while found:
                candidate = found.pop(0)
                usage[name][flavor] -= candidate.gpus
                after = self.drs(self.queues[name], usage[name])
                usage[name][flavor] += candidate.gpus
                if preemptor_share <= after:  # LessThanOrEqualToFinalShare
                    if take(name, candidate):
                        return self._fill_back(targets, free, needed)
                    break  # the shares moved: choose the queue again
                retry.setdefault(name, []).append(candidate)
        while (name := highest(retry)) is not None:
            initial = self.drs(self.queues[name], usage[name])
            if preemptor_share < initial and take(name, retry[name][0]):  # LessThanInitialShare
                return self._fill_back(targets, free, needed)
            del retry[name]
        return None

    @staticmethod
    def _fill_back(targets: list[tuple[str, Candidate]], free: int, needed: int) -> list[int]:
        """The targets less those the workload fits without, tried from the next-to-last
        chosen back to the first."""
        kept = list(targets)
        for position in range(len(kept) - 2, -1, -1):
            gpus = kept[position][1].gpus
            if free - gpus >= needed:
                free -= gpus
                del kept[position]
        return [candidate.index for _, candidate in kept]

    # -- running ------------------------------------------------------------------------------

    def ended(self, run: Run, now: int) -> None:
        job = run.job
        queue = self.queues[job.project]
        held = queue.admitted.pop(job.index)
        queue.usage[held.flavor] -= held.gpus
        self.cohort_usage[held.flavor] -= held.gpus
        if run.stopped is not None:
            heapq.heappush(queue.pending, (job.trace.priority.order, job.trace.submit_s, job.index))
