"""How well a finished simulation shared the pool: job completion and wait times, makespan,
utilisation, fairness against the water-filled entitlement, finish-time fairness, credits spent
beyond their caps, and the same per tenant, as ``../shared/DESIGN.md`` ("Measuring allocation
quality") defines them.

``summarise`` reads a ``World`` after ``World.run``: its jobs' runs for times, GPU-time and
credits, and its samples (running and demanded GPUs per tenant, busy GPUs per flavor, every
``sample_seconds``) for usage, entitlement and utilisation over time. The sampled matrices are
handled with numpy, whole columns at a time, so a national trace (a thousand tenants, thousands
of samples) is summarised in seconds.

Definitions, each from its published source:

- Entitlement (max-min fairness, "water-filling": Bertsekas and Gallager, *Data Networks*, 2nd
  ed., section 6.5.2, with weights; hierarchical as in Slurm's Fair Tree and Kueue's cohorts):
  at each sample the pool's GPUs are divided among the pool's children in proportion to their
  shares, none getting more than its subtree demands, what a capped child leaves being shared
  among the others; each child's part is divided the same way among its own children, down to
  the projects, and a project's part among its tenants (equal weights). Accounts of share 0
  get only what the others, all capped, leave.
- Jain's fairness index (Jain, Chiu and Hawe, "A Quantitative Measure of Fairness and
  Discrimination for Resource Allocation in Shared Computer Systems", DEC-TR-301, 1984):
  ``J = (sum x)^2 / (n sum x^2)`` with ``x_i = usage_i / entitled_i`` per day (mean running
  GPUs over mean entitled GPUs), over the tenants entitled to anything that day; the reported
  index is the mean over days. A day on which no entitled tenant ran anything has no index.
- Finish-time fairness (Mahajan et al., "Themis: Fair and Efficient GPU Cluster Scheduling",
  NSDI 2020): ``rho = JCT / T_isolated``, ``T_isolated`` the job's runtime on the fastest
  flavor it can run on, stretched by ``max(1, gpus * n / C)`` when a ``1/n`` share of the
  pool's ``C`` GPUs cannot hold it at once (``n``: the tenants with demand at its submission,
  itself included).
- Percentiles interpolate linearly between the closest ranks (numpy's default).
- Money: a run costs ``rate_card.rate(flavor).cost(gpus, whole seconds run)``, whole seconds
  truncated as ``jobs.lifecycle.run_seconds`` truncates them; spend and overrun are
  ``Credits`` (integer milli-credits) here and in ``Summary``; ``as_dict`` writes them as
  credits in a JSON number (exact to the milli-credit up to 2^53 milli-credits) beside the
  exact integer milli-credits.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from quotas.quantities import Credits
from scheduler.simulator.world import SimJob, World

DAY_SECONDS = 86_400
UNFAIR_RHO = 1.1
"""A job whose finish-time fairness exceeds this was treated unfairly (Themis' threshold)."""
CHUNK_SAMPLES = 4096
"""Samples water-filled at once: bounds the memory of a thousand-tenant entitlement."""

Floats = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class TenantRow:
    """One tenant's outcome."""

    tenant: str
    project: str
    jobs: int
    finished: int
    avg_wait_s: float | None
    p50_wait_s: float | None
    p99_wait_s: float | None
    avg_jct_s: float | None
    gpu_hours: float
    usage_share: float
    """Mean running GPUs over the pool's GPUs."""
    entitled_share: float
    """Mean water-filled entitlement over the pool's GPUs."""
    x_mean: float | None
    """Mean over days of usage / entitlement (days it was entitled to anything)."""
    credits_spent: Credits
    credits_cap: Credits | None
    """Its project's credits awarded for the period (shared with the project's other tenants)."""


@dataclass(frozen=True, slots=True)
class FairnessRow:
    """One tenant on one day: mean running and entitled GPUs, and their ratio."""

    day: int
    tenant: str
    usage: float
    entitled: float
    x: float | None
    """``usage / entitled``; ``None`` when it was entitled to nothing that day."""


@dataclass(frozen=True, slots=True)
class JobRow:
    """One job's times (seconds after the trace's start) and finish-time fairness."""

    index: int
    tenant: str
    gpus: int
    submit_s: int
    first_start_s: int | None
    finish_s: float | None
    wait_s: int | None
    jct_s: float | None
    rho: float | None
    preemptions: int


@dataclass(frozen=True)
class Summary:
    """A policy's metrics over one run. Times in seconds, shares as fractions of 1."""

    jobs: int
    finished: int
    rejected: int
    """Refused for good by the policy."""
    unrunnable: int
    """No flavor of the pool can run them: never queued."""
    stranded: int
    """Still waiting when nothing more could happen."""
    timed_out: int
    avg_jct_s: float | None
    p50_jct_s: float | None
    p99_jct_s: float | None
    avg_wait_s: float | None
    makespan_s: float | None
    utilisation: float | None
    utilisation_by_flavor: Mapping[str, float | None]
    jain_index: float | None
    median_ftf_rho: float | None
    worst_ftf_rho: float | None
    unfair_fraction: float | None
    budget_overrun: Credits
    spent: Credits
    preemptions: int
    decisions: int
    wall_seconds: float
    jobs_per_second: float | None
    tenants: tuple[TenantRow, ...] = field(default=(), repr=False)
    fairness: tuple[FairnessRow, ...] = field(default=(), repr=False)
    """Per day and tenant; tenants with neither usage nor entitlement that day are left out."""
    job_rows: tuple[JobRow, ...] = field(default=(), repr=False)
    daily_utilisation: tuple[tuple[int, float], ...] = field(default=(), repr=False)
    """(day, mean busy GPUs over the pool's GPUs) from the samples."""

    @property
    def budget_overrun_credits(self) -> float:
        return self.budget_overrun.milli / 1000

    @property
    def spent_credits(self) -> float:
        return self.spent.milli / 1000

    def as_dict(self) -> dict[str, Any]:
        """The scalar metrics for ``summary.json`` (rows go to the CSVs)."""
        return {
            "jobs": self.jobs,
            "finished": self.finished,
            "rejected": self.rejected,
            "unrunnable": self.unrunnable,
            "stranded": self.stranded,
            "timed_out": self.timed_out,
            "avg_jct_s": self.avg_jct_s,
            "p50_jct_s": self.p50_jct_s,
            "p99_jct_s": self.p99_jct_s,
            "avg_wait_s": self.avg_wait_s,
            "makespan_s": self.makespan_s,
            "utilisation": self.utilisation,
            "utilisation_by_flavor": dict(self.utilisation_by_flavor),
            "jain_index": self.jain_index,
            "median_ftf_rho": self.median_ftf_rho,
            "worst_ftf_rho": self.worst_ftf_rho,
            "unfair_fraction": self.unfair_fraction,
            "budget_overrun_credits": self.budget_overrun_credits,
            "budget_overrun_milli": self.budget_overrun.milli,
            "spent_credits": self.spent_credits,
            "spent_milli": self.spent.milli,
            "preemptions": self.preemptions,
            "decisions": self.decisions,
            "wall_seconds": self.wall_seconds,
            "jobs_per_second": self.jobs_per_second,
        }


def summarise(world: World, wall_seconds: float) -> Summary:
    """The metrics of ``world`` after its run, which took ``wall_seconds``."""
    scenario = world.scenario
    jobs = world.jobs
    finished = [job for job in jobs if job.finished is not None]
    jct = [job.finished - job.trace.submit_s for job in finished if job.finished is not None]
    waits = [job.first_start - job.trace.submit_s for job in jobs if job.first_start is not None]
    first_submit = min((job.trace.submit_s for job in jobs), default=0)
    last_finish = max((job.finished for job in finished if job.finished is not None), default=None)
    makespan = None if last_finish is None else last_finish - first_submit

    capacity = scenario.capacity
    pool_gpus = sum(capacity.values())
    busy = _busy_seconds(jobs)
    if makespan and pool_gpus:
        utilisation: float | None = sum(busy.values()) / (pool_gpus * makespan)
        by_flavor: dict[str, float | None] = {
            name: busy.get(name, 0.0) / (gpus * makespan) for name, gpus in sorted(capacity.items())
        }
    else:
        utilisation = None
        by_flavor = dict.fromkeys(sorted(capacity))

    sampled = Sampled.of(world)
    entitled = sampled.entitlement(world)
    daily = sampled.daily(entitled)
    rhos = finish_time_fairness(world, sampled)
    spend = Spend.of(world)

    job_rows = tuple(
        JobRow(
            job.index,
            job.trace.tenant,
            job.gpus,
            job.trace.submit_s,
            job.first_start,
            job.finished,
            None if job.first_start is None else job.first_start - job.trace.submit_s,
            None if job.finished is None else job.finished - job.trace.submit_s,
            rhos.get(job.index),
            job.preemptions,
        )
        for job in jobs
    )
    rho_values = list(rhos.values())
    return Summary(
        jobs=len(jobs),
        finished=len(finished),
        rejected=sum(job.rejected for job in jobs),
        unrunnable=len(world.unrunnable),
        stranded=len(world.stranded),
        timed_out=sum(job.timed_out for job in jobs),
        avg_jct_s=_mean(jct),
        p50_jct_s=percentile(jct, 50),
        p99_jct_s=percentile(jct, 99),
        avg_wait_s=_mean(waits),
        makespan_s=makespan,
        utilisation=utilisation,
        utilisation_by_flavor=by_flavor,
        jain_index=daily.jain,
        median_ftf_rho=percentile(rho_values, 50),
        worst_ftf_rho=max(rho_values, default=None),
        unfair_fraction=(
            sum(rho > UNFAIR_RHO for rho in rho_values) / len(rho_values) if rho_values else None
        ),
        budget_overrun=spend.overrun(world),
        spent=Credits(sum(c.milli for c in spend.projects.values())),
        preemptions=sum(job.preemptions for job in jobs),
        decisions=world.decisions,
        wall_seconds=wall_seconds,
        jobs_per_second=len(jobs) / wall_seconds if wall_seconds > 0 else None,
        tenants=_tenant_rows(world, sampled, entitled, daily, spend, pool_gpus),
        fairness=daily.rows(world.tenants),
        job_rows=job_rows,
        daily_utilisation=sampled.daily_utilisation(pool_gpus),
    )


# -- the samples ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Sampled:
    """The world's samples as matrices: one row per sample, one column per tenant (flavor)."""

    times: NDArray[np.int64]
    running: Floats
    demand: Floats
    busy: Floats

    @classmethod
    def of(cls, world: World) -> Sampled:
        count = len(world.samples)
        tenants, flavors = len(world.tenants), len(world.flavor_names)
        return cls(
            np.asarray(world.samples, dtype=np.int64),
            _matrix(world.running_samples, count, tenants),
            _matrix(world.demand_samples, count, tenants),
            _matrix(world.busy_samples, count, flavors),
        )

    def entitlement(self, world: World) -> Floats:
        """Each tenant's water-filled entitlement at each sample (the module's docstring)."""
        tree = Hierarchy.of(world)
        out = np.zeros_like(self.demand)
        for start in range(0, len(self.times), CHUNK_SAMPLES):
            rows = slice(start, start + CHUNK_SAMPLES)
            out[rows] = tree.fill(self.demand[rows], float(world.scenario.gpus))
        return out

    def daily(self, entitled: Floats) -> Daily:
        if not len(self.times):
            empty = np.zeros((0, self.running.shape[1]))
            return Daily(np.zeros(0, dtype=np.int64), empty, empty)
        days, starts, counts = np.unique(
            self.times // DAY_SECONDS, return_index=True, return_counts=True
        )
        per = counts[:, None].astype(np.float64)
        usage = np.add.reduceat(self.running, starts, axis=0) / per
        means = np.add.reduceat(entitled, starts, axis=0) / per
        return Daily(days.astype(np.int64), usage, means)

    def daily_utilisation(self, pool_gpus: int) -> tuple[tuple[int, float], ...]:
        if not len(self.times) or not pool_gpus:
            return ()
        days, starts, counts = np.unique(
            self.times // DAY_SECONDS, return_index=True, return_counts=True
        )
        busy = np.add.reduceat(self.busy.sum(axis=1), starts) / counts / pool_gpus
        return tuple((int(day), float(value)) for day, value in zip(days, busy, strict=True))


def _matrix(values: Sequence[int], rows: int, columns: int) -> Floats:
    if not rows or not columns:
        return np.zeros((rows, columns))
    return np.asarray(values, dtype=np.float64).reshape(rows, columns)


@dataclass(frozen=True, eq=False)
class Daily:
    """Per day (rows) and tenant (columns): mean running GPUs and mean entitled GPUs."""

    days: NDArray[np.int64]
    usage: Floats
    entitled: Floats

    @property
    def x(self) -> Floats:
        """usage / entitled, NaN where entitled to nothing."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.entitled > 0, self.usage / self.entitled, np.nan)

    @property
    def jain_by_day(self) -> Floats:
        """Jain's index per day over the entitled tenants; NaN when none ran anything."""
        x = self.x
        present = ~np.isnan(x)
        n = present.sum(axis=1)
        total = np.where(present, x, 0.0).sum(axis=1)
        squares = np.where(present, x * x, 0.0).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((n > 0) & (squares > 0), total * total / (n * squares), np.nan)

    @property
    def jain(self) -> float | None:
        by_day = self.jain_by_day
        defined = by_day[~np.isnan(by_day)]
        return float(defined.mean()) if len(defined) else None

    def rows(self, tenants: Sequence[str]) -> tuple[FairnessRow, ...]:
        x = self.x
        found: list[FairnessRow] = []
        for d, day in enumerate(self.days):
            for t, tenant in enumerate(tenants):
                usage, entitled = float(self.usage[d, t]), float(self.entitled[d, t])
                if usage or entitled:
                    ratio = float(x[d, t])
                    found.append(
                        FairnessRow(
                            int(day), tenant, usage, entitled, None if math.isnan(ratio) else ratio
                        )
                    )
        return tuple(found)


# -- water-filling -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Hierarchy:
    """The account tree above the tenants, as arrays: each node's children, their shares, and
    the tenants (columns of the demand matrix) under each node."""

    children: Mapping[int, tuple[int, ...]]
    weights: Mapping[int, float]
    columns: Mapping[int, tuple[int, ...]]
    leaves: Mapping[int, int]
    """Node -> the tenant's column, for the tenants themselves."""

    @classmethod
    def of(cls, world: World) -> Hierarchy:
        scenario = world.scenario
        tree = scenario.tree
        ids: dict[tuple[str, str], int] = {("account", tree.root.name): 0}
        children: dict[int, list[int]] = defaultdict(list)
        weights: dict[int, float] = {0: 1.0}
        columns: dict[int, list[int]] = defaultdict(list)
        leaves: dict[int, int] = {}
        for column, tenant in enumerate(world.tenants):
            path = [("account", a.name) for a in tree.path(scenario.projects[tenant])]
            path.append(("tenant", tenant))
            parent: int | None = None
            for key in path:
                node = ids.get(key)
                if node is None:
                    node = ids[key] = len(ids)
                    weights[node] = float(tree[key[1]].share) if key[0] == "account" else 1.0
                    assert parent is not None
                    children[parent].append(node)
                columns[node].append(column)
                parent = node
            assert parent is not None
            leaves[parent] = column
        return cls(
            {node: tuple(kids) for node, kids in children.items()},
            weights,
            {node: tuple(cols) for node, cols in columns.items()},
            leaves,
        )

    def fill(self, demand: Floats, capacity: float) -> Floats:
        """Each tenant's entitlement (columns) at each sample (rows) of ``demand``."""
        out = np.zeros_like(demand)
        if not demand.size:
            return out
        root_demand = demand.sum(axis=1)
        pending: list[tuple[int, Floats]] = [(0, np.minimum(root_demand, capacity))]
        while pending:
            node, share = pending.pop()
            if node in self.leaves:
                out[:, self.leaves[node]] = share
                continue
            kids = self.children.get(node, ())
            if len(kids) == 1:
                pending.append((kids[0], share))
                continue
            kid_demand = np.stack(
                [demand[:, list(self.columns[kid])].sum(axis=1) for kid in kids], axis=1
            )
            weights = np.array([self.weights[kid] for kid in kids])
            parts = water_fill(share, kid_demand, weights)
            pending.extend((kid, parts[:, i]) for i, kid in enumerate(kids))
        return out


def water_fill(capacity: Floats, demand: Floats, weights: Floats) -> Floats:
    """Weighted max-min fair shares of ``capacity`` (one value per row) among ``demand``'s
    columns: each gets ``min(demand, weight * level)``, the level set so that the shares add up
    to the capacity or to the whole demand, whichever is less. Columns of weight 0 share, in
    equal weights, only what the others leave when every one of them has its demand."""
    out = np.zeros_like(demand)
    positive = weights > 0
    if positive.any():
        out[:, positive] = _fill(capacity, demand[:, positive], weights[positive])
    if not positive.all():
        left = np.maximum(capacity - out.sum(axis=1), 0.0)
        zero = ~positive
        out[:, zero] = _fill(left, demand[:, zero], np.ones(int(zero.sum())))
    return out


def _fill(capacity: Floats, demand: Floats, weights: Floats) -> Floats:
    rows = np.arange(demand.shape[0])
    target = np.minimum(capacity, demand.sum(axis=1))
    ratio = demand / weights
    order = np.argsort(ratio, axis=1, kind="stable")
    level_at = np.take_along_axis(ratio, order, axis=1)
    capped = np.take_along_axis(demand, order, axis=1)
    # Columns in order of demand per weight. With the level at a column's ratio, the columns
    # before it are capped at their demand (below) and it and those after share the level in
    # proportion to their weights (above); reach, what all get then, grows with the column.
    below = np.cumsum(capped, axis=1) - capped
    above = np.cumsum(weights[order][:, ::-1], axis=1)[:, ::-1]
    reach = below + level_at * above
    tolerance = 1e-9 * np.maximum(target, 1.0)
    first = np.argmax(reach >= (target - tolerance)[:, None], axis=1)
    level = (target - below[rows, first]) / above[rows, first]
    shares: Floats = np.minimum(demand, weights[None, :] * level[:, None])
    return shares


# -- finish-time fairness ------------------------------------------------------------------------


def finish_time_fairness(world: World, sampled: Sampled) -> dict[int, float]:
    """Themis' rho per finished job, by index (the module's docstring)."""
    pool_gpus = world.scenario.gpus
    done = [job for job in world.jobs if job.finished is not None and job.flavors]
    if not done:
        return {}
    column = {tenant: i for i, tenant in enumerate(world.tenants)}
    tenants = np.ones(len(done), dtype=np.int64)
    if len(sampled.times):
        submits = np.array([job.trace.submit_s for job in done], dtype=np.float64)
        at = nearest(sampled.times, submits)
        own = np.array([column[job.trace.tenant] for job in done])
        demanding = (sampled.demand > 0).sum(axis=1)
        tenants = demanding[at] + (sampled.demand[at, own] <= 0)
    rhos: dict[int, float] = {}
    for job, sharing in zip(done, tenants.tolist(), strict=True):
        assert job.finished is not None
        alone = min(job.trace.runtime_on(name) for name in job.flavors)
        isolated = alone * max(1.0, job.gpus * sharing / pool_gpus)
        jct = job.finished - job.trace.submit_s
        rhos[job.index] = jct / isolated if isolated > 0 else math.inf
    return rhos


def nearest(times: NDArray[np.int64], at: Floats) -> NDArray[np.intp]:
    """The index of the sample nearest each of ``at`` (the earlier one on a tie)."""
    after = np.searchsorted(times, at)
    before = np.maximum(after - 1, 0)
    later = np.minimum(after, len(times) - 1)
    closer_later = (after < len(times)) & (times[later] - at < at - times[before])
    return np.where(closer_later, later, before)


# -- credits -------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Spend:
    """Credits spent on the runs, per project and per tenant."""

    projects: Mapping[str, Credits]
    tenants: Mapping[str, Credits]

    @classmethod
    def of(cls, world: World) -> Spend:
        card = world.scenario.rate_card
        projects: dict[str, int] = defaultdict(int)
        tenants: dict[str, int] = defaultdict(int)
        for job in world.jobs:
            for _, flavor, start, end in job.runs:
                milli = card.rate(flavor).cost(job.gpus, int(end - start)).milli
                projects[job.project] += milli
                tenants[job.trace.tenant] += milli
        return cls(
            {name: Credits(m) for name, m in projects.items()},
            {name: Credits(m) for name, m in tenants.items()},
        )

    def overrun(self, world: World) -> Credits:
        """Credits spent beyond each cap, summed: each project's beyond its awarded credits,
        and each budgeted account's subtree beyond its budget."""
        scenario = world.scenario
        tree = scenario.tree
        milli = 0
        under: dict[str, int] = defaultdict(int)
        for project, spent in self.projects.items():
            cap = scenario.credits.get(project)
            if cap is not None:
                milli += max(0, spent.milli - cap.milli)
            for account in tree.path(project):
                under[account.name] += spent.milli
        for account in tree:
            if account.budget is not None:
                milli += max(0, under.get(account.name, 0) - account.budget.milli)
        return Credits(milli)


# -- per tenant ----------------------------------------------------------------------------------


def _tenant_rows(
    world: World,
    sampled: Sampled,
    entitled: Floats,
    daily: Daily,
    spend: Spend,
    pool_gpus: int,
) -> tuple[TenantRow, ...]:
    by_tenant: dict[str, list[SimJob]] = defaultdict(list)
    for job in world.jobs:
        by_tenant[job.trace.tenant].append(job)
    x = daily.x
    rows: list[TenantRow] = []
    samples = len(sampled.times)
    for column, tenant in enumerate(world.tenants):
        jobs = by_tenant[tenant]
        waits = [j.first_start - j.trace.submit_s for j in jobs if j.first_start is not None]
        jct = [j.finished - j.trace.submit_s for j in jobs if j.finished is not None]
        gpu_seconds = sum(j.gpus * (end - start) for j in jobs for _, _, start, end in j.runs)
        ratios = x[:, column] if len(x) else np.zeros(0)
        ratios = ratios[~np.isnan(ratios)]
        project = world.scenario.projects[tenant]
        usage = float(sampled.running[:, column].mean()) if samples else 0.0
        entitlement = float(entitled[:, column].mean()) if samples else 0.0
        rows.append(
            TenantRow(
                tenant=tenant,
                project=project,
                jobs=len(jobs),
                finished=len(jct),
                avg_wait_s=_mean(waits),
                p50_wait_s=percentile(waits, 50),
                p99_wait_s=percentile(waits, 99),
                avg_jct_s=_mean(jct),
                gpu_hours=gpu_seconds / 3600,
                usage_share=usage / pool_gpus if pool_gpus else 0.0,
                entitled_share=entitlement / pool_gpus if pool_gpus else 0.0,
                x_mean=float(ratios.mean()) if len(ratios) else None,
                credits_spent=spend.tenants.get(tenant, Credits.zero()),
                credits_cap=world.scenario.credits.get(project),
            )
        )
    return tuple(rows)


# -- small statistics ----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile, interpolating linearly between the closest ranks."""
    if not values:
        return None
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _busy_seconds(jobs: Sequence[SimJob]) -> dict[str, float]:
    busy: dict[str, float] = defaultdict(float)
    for job in jobs:
        for _, flavor, start, end in job.runs:
            busy[flavor] += job.gpus * (end - start)
    return busy
