"""Preemption decisions: when an under-served project has waited too long, reclaim GPUs.

Pure, over the admission snapshot. A waiting job may preempt only when all of these hold:

* it has waited at least ``wait_bound_seconds`` for capacity (not for budget);
* its project is under-served: some account on its path runs fewer GPUs than its guarantee, or
  its program uses less than its fair share (normalised usage below normalised share);
* the victims run on a flavor it accepts, in one cluster at a site its data class allows, and
  freeing them (with what is free there) makes room for it.

A victim is a running job that is opportunistic, or preemptible and borrowing (some account on
its path runs more GPUs than it is guaranteed); never an urgent job, never one of the waiting
job's own program, and never one that has run less than ``min_runtime_seconds`` (so work is not
thrown away in loops). The newest-started victims go first (they lose the least), and the cluster
needing the fewest victims wins. Each running job is preempted at most once per cycle.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from quotas.accounts import AccountKind
from quotas.admission import ALLOWED_SITES, JobRequest, PriorityClass, Snapshot


@dataclass(frozen=True, slots=True)
class RunningJob:
    id: str
    project: str
    gpus: int
    cluster: str
    flavor: str
    started_at: datetime
    priority: PriorityClass = PriorityClass.NORMAL
    preemptible: bool = False


@dataclass(frozen=True, slots=True)
class Preemption:
    victim: str
    for_job: str
    reason: str


def choose_preemptions(
    snapshot: Snapshot,
    waiting: Iterable[JobRequest],
    running: Sequence[RunningJob],
    *,
    wait_bound_seconds: float,
    min_runtime_seconds: float,
    stopping: Sequence[RunningJob] = (),
) -> list[Preemption]:
    """Victims to stop so that long-waiting, under-served jobs can start; in ``waiting`` order.

    ``stopping`` are jobs already being preempted: their GPUs count as coming free, so a job
    that earlier preemptions make room for does not cost another victim.

    A job of the same program and shape (GPUs, flavors, data class) as one that found neither
    room nor victims since the last preemption finds none either, and is passed over at once:
    in a full pool most starved jobs are of a few such kinds.
    """
    now = snapshot.now
    bound = timedelta(seconds=wait_bound_seconds)
    taken: set[str] = set()
    chosen: list[Preemption] = []
    free = {
        (cluster.name, group.flavor): sum(group.free)
        for cluster in snapshot.clusters
        for group in cluster.groups
    }
    for leaving in stopping:
        place = (leaving.cluster, leaving.flavor)
        free[place] = free.get(place, 0) + leaving.gpus
    sites = {cluster.name: cluster.site for cluster in snapshot.clusters}
    # Whether a running job may be preempted at all, and its program, do not depend on the
    # waiting job: worked out once per call, not once per (waiting, running) pair.
    programs: dict[str, str | None] = {}
    eligible = [
        (victim, _program_of(snapshot, victim.project, programs))
        for victim in running
        if _may_be_preempted(snapshot, victim, now, min_runtime_seconds)
    ]
    served: dict[str, bool] = {}
    hopeless: set[tuple[object, ...]] = set()
    """Kinds of job that found no room and no victims since ``free`` or ``taken`` changed."""
    for job in waiting:
        if now - job.submitted_at < bound:
            continue
        under = served.get(job.project)
        if under is None:
            under = served[job.project] = under_served(snapshot, job.project)
        if not under:
            continue
        program = _program_of(snapshot, job.project, programs)
        kind = (program, job.gpus, job.flavors, job.data_class)
        if kind in hopeless:
            continue
        room = [
            place
            for place, gpus in sorted(free.items())
            if gpus >= job.gpus
            and (not job.flavors or place[1] in job.flavors)
            and sites.get(place[0]) in ALLOWED_SITES[job.data_class]
        ]
        if room:  # GPUs already coming free (or free) cover it
            free[room[0]] -= job.gpus
            hopeless.clear()
            continue
        allowed = ALLOWED_SITES[job.data_class]
        candidates = [
            victim
            for victim, victim_program in eligible
            if victim.id not in taken
            and (program is None or victim_program != program)
            and (not job.flavors or victim.flavor in job.flavors)
            and sites.get(victim.cluster) in allowed
        ]
        plan = _cheapest_plan(job, candidates, free)
        if plan is None:
            hopeless.add(kind)
            continue
        hopeless.clear()
        for victim in plan:
            taken.add(victim.id)
            free[(victim.cluster, victim.flavor)] += victim.gpus
            chosen.append(
                Preemption(
                    victim.id,
                    job.id,
                    f"preempted for {job.id} of {job.project}, which waited "
                    f"{_minutes(now - job.submitted_at)} min and is under its share; "
                    f"{victim.project} was using "
                    + (
                        "opportunistic"
                        if victim.priority is PriorityClass.OPPORTUNISTIC
                        else "borrowed"
                    )
                    + " capacity",
                )
            )
        key = (plan[0].cluster, plan[0].flavor)
        free[key] -= job.gpus
    return chosen


def _minutes(delta: timedelta) -> int:
    return int(delta.total_seconds() // 60)


def _program(snapshot: Snapshot, project: str) -> str | None:
    for account in snapshot.tree.path(project):
        if account.kind is AccountKind.PROGRAM:
            return account.name
    return None


def under_served(snapshot: Snapshot, project: str) -> bool:
    """Some account on the project's path runs fewer GPUs than it is guaranteed, or its
    program uses less than its fair share."""
    for account in snapshot.tree.path(project):
        if account.kind is AccountKind.POOL:
            continue
        if account.guaranteed_gpus and snapshot.running_gpus.get(account.name, 0) < (
            account.guaranteed_gpus
        ):
            return True
    shares = snapshot.fair_share
    program = _program(snapshot, project)
    if shares is None or program is None:
        return False
    node = shares.explain(program)
    return node.norm_usage < node.norm_share


def _borrowing(snapshot: Snapshot, project: str) -> bool:
    """Runs above a guarantee on its path; with no guarantee anywhere, everything is borrowed."""
    guaranteed = [a for a in snapshot.tree.path(project) if a.guaranteed_gpus > 0]
    if not guaranteed:
        return True
    return any(
        snapshot.running_gpus.get(account.name, 0) > account.guaranteed_gpus
        for account in guaranteed
    )


def _program_of(snapshot: Snapshot, project: str, known: dict[str, str | None]) -> str | None:
    if project not in known:
        known[project] = _program(snapshot, project)
    return known[project]


def _may_be_preempted(
    snapshot: Snapshot, victim: RunningJob, now: datetime, min_runtime_seconds: float
) -> bool:
    """Never urgent work, never before its minimum runtime; opportunistic work always, other
    work when it is preemptible and runs on borrowed capacity. (Never for a waiting job of its
    own program: checked per waiting job.)"""
    if victim.priority is PriorityClass.URGENT:
        return False
    if now - victim.started_at < timedelta(seconds=min_runtime_seconds):
        return False
    if victim.priority is PriorityClass.OPPORTUNISTIC:
        return True
    return victim.preemptible and _borrowing(snapshot, victim.project)


def _cheapest_plan(
    job: JobRequest,
    candidates: Iterable[RunningJob],
    free: dict[tuple[str, str], int],
) -> list[RunningJob] | None:
    """The fewest victims in one cluster and flavor that make room, newest-started first."""
    by_place: dict[tuple[str, str], list[RunningJob]] = {}
    for victim in candidates:
        by_place.setdefault((victim.cluster, victim.flavor), []).append(victim)
    best: list[RunningJob] | None = None
    for place, victims in sorted(by_place.items()):
        room = free.get(place, 0)
        plan: list[RunningJob] = []
        for victim in sorted(victims, key=lambda v: (v.started_at, v.id), reverse=True):
            if room >= job.gpus:
                break
            plan.append(victim)
            room += victim.gpus
        if room >= job.gpus and plan and (best is None or len(plan) < len(best)):
            best = plan
    return best
