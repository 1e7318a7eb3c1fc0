"""Backfill leaves no GPU idle that a waiting job could use, over random pools and queues.

After one cycle (``plan_queue``) the cycle's admissions are applied to the snapshot, and every
waiting job is decided again, alone, on what is left, with no reservations: if it could be
admitted there, each place it could go must be a cluster's flavor reserved for an earlier
blocked job that it would delay (it runs past the reserved start and needs more than is spare
then). Budgets, available credits, borrowing limits, data classes and dedicated clusters are
judged by the same ``decide``, so a job waiting for any of them is found waiting again. Each
reservation, in turn, is for a job that could not start anywhere, on a cluster open to it, and
the jobs admitted after it leave it exactly its ``spare``: nothing backfilled delays it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from datetime import datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quotas.admission import (
    ALLOWED_SITES,
    Admit,
    Cluster,
    DataClass,
    Decision,
    JobRequest,
    NodeGroup,
    PriorityClass,
    Reject,
    Reservation,
    SiteKind,
    Snapshot,
    Wait,
    decide,
    plan_queue,
)
from quotas.quantities import Credits
from tests.quotas.builders import A100, H100, NOW, a_job, a_pool

SITES = [SiteKind.NATIONAL, SiteKind.NATIONAL, SiteKind.DOMESTIC_CLOUD, SiteKind.FOREIGN_CLOUD]
DATA_CLASSES = [DataClass.PUBLIC, DataClass.PUBLIC, DataClass.SENSITIVE, DataClass.RESTRICTED]


@st.composite
def pools(draw: st.DrawFn) -> Snapshot:
    """1-3 clusters of 1-2 flavors on nodes of 1-8 GPUs, some busy until a known time; a small
    account tree with optional budgets and borrowing limits; optionally dedicated clusters;
    cloud burst targets with optional burst budgets, open to some projects after a wait."""
    budgets = st.one_of(st.none(), st.integers(0, 400))
    pool = a_pool().burst_wait(draw(st.sampled_from([0, 30, 600])))
    owners = []
    programs = draw(st.integers(1, 2))
    for p in range(programs):
        pool.program(f"prog-{p}", budget=draw(budgets))
        owners.append(f"prog-{p}")
        for o in range(draw(st.integers(1, 2))):
            org = f"org-{p}-{o}"
            borrowing = draw(st.one_of(st.none(), st.integers(0, 24)))
            pool.organization(org, budget=draw(budgets), guaranteed=4, borrowing=borrowing)
            pool.running(org, draw(st.integers(0, 8)))
            owners.append(org)
            for j in range(draw(st.integers(1, 2))):
                pool.project(
                    f"proj-{p}-{o}-{j}",
                    credits=draw(st.integers(0, 300)),
                    may_burst=draw(st.booleans()),
                )
    for c in range(draw(st.integers(1, 3))):
        name = f"cluster-{c}"
        flavors = draw(st.lists(st.sampled_from(["h100", "a100"]), min_size=1, unique=True))
        shapes = {short: (draw(st.integers(1, 4)), draw(st.integers(1, 8))) for short in flavors}
        site = draw(st.sampled_from(SITES))
        pool.cluster(name, site=site, **shapes)
        if site is not SiteKind.NATIONAL:
            for p in range(programs):
                if draw(st.booleans()):
                    pool.burst_budget(name, f"prog-{p}", draw(st.integers(0, 200)))
                    pool.burst_used(name, f"prog-{p}", draw(st.integers(0, 100)))
        busy = {
            short: tuple(draw(st.integers(0, per_node)) for _ in range(nodes))
            for short, (nodes, per_node) in shapes.items()
        }
        pool.busy(name, **busy)
        # Busy GPUs come back in a few chunks at known times; some are not gpupool's (unknown).
        releases: dict[str, tuple[tuple[float, int], ...]] = {}
        for short, per_node in busy.items():
            known = draw(st.integers(0, sum(per_node)))
            chunks = []
            while known:
                gpus = draw(st.integers(1, known))
                chunks.append((draw(st.sampled_from([0.5, 1, 2, 3, 6, 12])), gpus))
                known -= gpus
            releases[short] = tuple(chunks)
        pool.released(name, **releases)
        if draw(st.integers(0, 4)) == 0:
            pool.single_node(name)
        if draw(st.integers(0, 3)) == 0:
            pool.dedicated(name, to=draw(st.sampled_from(owners)))
    return pool.snapshot()


@st.composite
def queues(draw: st.DrawFn, snapshot: Snapshot) -> list[JobRequest]:
    projects = [account.name for account in snapshot.tree.projects()]
    jobs = []
    for n in range(draw(st.integers(1, 20))):
        job = (
            a_job(f"j{n}")
            .project(draw(st.sampled_from(projects)))
            .gpus(draw(st.sampled_from([1, 1, 2, 2, 3, 4, 4, 6, 8, 12, 16, 24])))
            .minutes(draw(st.sampled_from([10, 30, 60, 90, 180, 240, 480, 900])))
            .priority(draw(st.sampled_from(list(PriorityClass))))
            .data(draw(st.sampled_from(DATA_CLASSES)))
            .submitted(minutes_ago=draw(st.integers(0, 1000)))
        )
        if draw(st.booleans()):
            job.of(*draw(st.lists(st.sampled_from([H100, A100]), min_size=1, unique=True)))
        jobs.append(job.build())
    return jobs


@st.composite
def pools_and_queues(draw: st.DrawFn) -> tuple[Snapshot, list[JobRequest]]:
    snapshot = draw(pools())
    return snapshot, draw(queues(snapshot))


def _group(snapshot: Snapshot, cluster: str, flavor: str) -> tuple[Cluster, NodeGroup]:
    found = next(c for c in snapshot.clusters if c.name == cluster)
    group = found.group(flavor)
    assert group is not None
    return found, group


def _taken(group: NodeGroup, gpus: int) -> int:
    """The GPUs a job occupies: its own, or its whole nodes when it spans several."""
    per_node = group.gpus_per_node
    return gpus if gpus <= per_node else -(-gpus // per_node) * per_node


def _take(free: list[int], per_node: int, gpus: int) -> None:
    """Place a job on nodes as admission does: the fullest node it fits on, or whole nodes."""
    if gpus <= per_node:
        node = min((i for i, f in enumerate(free) if f >= gpus), key=lambda i: free[i])
        free[node] -= gpus
        return
    for _ in range(-(-gpus // per_node)):
        free[free.index(per_node)] = 0


def after_admissions(
    snapshot: Snapshot, jobs: dict[str, JobRequest], decisions: list[Decision]
) -> Snapshot:
    """The snapshot as the cycle leaves it: each admission's GPUs, credits and hold taken."""
    free = {
        (cluster.name, group.flavor): list(group.free)
        for cluster in snapshot.clusters
        for group in cluster.groups
    }
    available = dict(snapshot.available)
    used = dict(snapshot.used)
    running = dict(snapshot.running_gpus)
    burst_used = dict(snapshot.burst_used)
    for decision in decisions:
        if not isinstance(decision, Admit):
            continue
        job, placement = jobs[decision.job], decision.placement
        cluster, group = _group(snapshot, placement.cluster, placement.flavor)
        _take(free[(placement.cluster, placement.flavor)], group.gpus_per_node, job.gpus)
        if cluster.burst_target:
            key = (cluster.name, snapshot.tree.path(job.project)[1].name)
            burst_used[key] = burst_used.get(key, Credits.zero()) + placement.hold
        available[job.project] = available.get(job.project, Credits.zero()) - placement.hold
        for account in snapshot.tree.path(job.project):
            running[account.name] = running.get(account.name, 0) + job.gpus
            if account.name == job.project or account.budget is not None:
                used[account.name] = used.get(account.name, Credits.zero()) + placement.hold
    clusters = tuple(
        replace(
            cluster,
            groups=tuple(
                replace(group, free=tuple(free[(cluster.name, group.flavor)]))
                for group in cluster.groups
            ),
        )
        for cluster in snapshot.clusters
    )
    return replace(
        snapshot,
        clusters=clusters,
        available=available,
        used=used,
        running_gpus=running,
        burst_used=burst_used,
    )


def _ends(job: JobRequest) -> datetime:
    return NOW + timedelta(seconds=job.time_limit_seconds)


def _open_to(snapshot: Snapshot, cluster: Cluster, job: JobRequest) -> bool:
    path = {account.name for account in snapshot.tree.path(job.project)}
    return (
        cluster.site in ALLOWED_SITES[job.data_class]
        and (cluster.dedicated_to is None or cluster.dedicated_to in path)
        and (not cluster.burst_target or snapshot.tree[job.project].may_burst)
    )


def _released_by(
    snapshot: Snapshot,
    jobs: dict[str, JobRequest],
    decisions: list[Decision],
    reservation: Reservation,
) -> int:
    """GPUs of the reserved cluster's flavor released by the reserved start: by jobs running
    before the cycle and by those the cycle admitted there."""
    key = (reservation.cluster, reservation.flavor)
    _cluster, group = _group(snapshot, *key)
    released = sum(g for at, g in snapshot.releases.get(key, ()) if at <= reservation.start)
    for decision in decisions:
        if isinstance(decision, Admit) and (
            (decision.placement.cluster, decision.placement.flavor) == key
        ):
            job = jobs[decision.job]
            if _ends(job) <= reservation.start:
                released += _taken(group, job.gpus)
    return released


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools_and_queues())
def test_no_waiting_job_could_use_the_free_gpus_without_delaying_a_reservation(
    scenario: tuple[Snapshot, list[JobRequest]],
) -> None:
    snapshot, queue = scenario
    jobs = {job.id: job for job in queue}

    plan = plan_queue(snapshot, queue)

    after = after_admissions(snapshot, jobs, plan.decisions)
    reserved = {(r.cluster, r.flavor): r for r in plan.reservations}
    assert len(reserved) == len(plan.reservations), "one reservation per cluster's flavor"
    for decision in plan.decisions:
        if not isinstance(decision, Wait):
            continue
        job = jobs[decision.job]
        if "is reserved for a larger job" in decision.reason:
            assert any(
                f"{r.flavor} on {r.cluster} is reserved" in decision.reason
                for r in reserved.values()
            )
        again = decide(after, job)
        assert not isinstance(again, Reject), again
        if not isinstance(again, Admit):
            continue  # still waits for credits, a borrowing limit or capacity
        for placement in again.placements:
            reservation = reserved.get((placement.cluster, placement.flavor))
            _cluster, group = _group(snapshot, placement.cluster, placement.flavor)
            assert reservation is not None, (
                f"{job.id} waits ({decision.reason}) but fits {placement.cluster}"
            )
            assert _ends(job) > reservation.start, f"{job.id} would end before {reservation}"
            assert _taken(group, job.gpus) > reservation.spare, f"{job.id} fits {reservation}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools_and_queues())
def test_a_reservation_is_for_a_blocked_job_on_a_cluster_open_to_it_and_is_never_delayed(
    scenario: tuple[Snapshot, list[JobRequest]],
) -> None:
    snapshot, queue = scenario
    jobs = {job.id: job for job in queue}

    plan = plan_queue(snapshot, queue)

    after = after_admissions(snapshot, jobs, plan.decisions)
    decisions = {decision.job: decision for decision in plan.decisions}
    holders: defaultdict[str, int] = defaultdict(int)
    for reservation in plan.reservations:
        job = jobs[reservation.job]
        holders[job.id] += 1
        cluster, group = _group(snapshot, reservation.cluster, reservation.flavor)
        assert isinstance(decisions[job.id], Wait)
        assert reservation.start >= NOW
        assert _open_to(snapshot, cluster, job)
        assert not job.flavors or reservation.flavor in job.flavors
        # It could not start anywhere now (else it would not be waiting for capacity).
        assert not isinstance(decide(after, job), Admit)
        # What is free now plus what comes back by the start covers the job and the spare
        # exactly: the jobs backfilled after it that run past its start took only the spare.
        _after_cluster, left = _group(after, reservation.cluster, reservation.flavor)
        at_start = sum(left.free) + _released_by(snapshot, jobs, plan.decisions, reservation)
        assert reservation.spare >= 0
        assert at_start - _taken(group, job.gpus) == reservation.spare
    assert all(count == 1 for count in holders.values()), "one reservation per blocked job"
