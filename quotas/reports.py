"""The reports' arithmetic, pure: fair share with credits and burn, utilisation, spend, waits.

Every report is computed here from plain values the repositories read (``quotas.db.reports``),
so the numbers an admin or an auditor reads can be checked by hand:

- fair share, like Slurm's ``sshare``: each account's share, decayed usage and level fair share
  (``quotas.fairshare``), the GPUs its jobs hold and ask for, and its credits in a period:
  awarded (everything that came into the subtree, net of what left it: what it has spent, holds,
  has available and let expire), spent, held and available (the ledger's three balances, named
  as ``gpupool quota`` names them), the burn rate over the last ``BURN_WINDOW`` and the day the
  credits not yet charged (held + available) run out at that rate;
  and who used a priority class above normal (``urgent``, granted per project): the jobs of
  that class that ran in the period, their GPU-time and the credits charged to them;
- utilisation, like ``sreport cluster Utilization``: per cluster and flavor, total GPU-time
  (inventory x window), allocated GPU-time (job run intervals clipped to the window), down
  GPU-time (node outages clipped to the window), idle GPU-time and the busy share of the
  available time;
- spend: credits charged net of refunds, grouped by funder, program, organization, project,
  flavor or site, with their price in won at each funder's price per credit;
- wait times: per program, how many jobs were first admitted in a window and the 50th, 90th and
  99th percentile of their wait from submission to admission (nearest rank: a wait that happened).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from quotas.accounts import AccountKind, AccountTree
from quotas.admission import PriorityClass
from quotas.errors import InvalidInput
from quotas.fairshare import FairShare, decay_factor, decayed_usage, fair_share
from quotas.ledger import Balances, Bucket
from quotas.outages import NodeOutage
from quotas.quantities import MILLI, SECONDS_PER_HOUR, Credits

BURN_WINDOW = timedelta(days=7)
"""Burn rates average the credits charged over this window, ending now."""
DEFAULT_WINDOW = timedelta(days=7)
"""Utilisation and wait times cover this window, ending now, unless asked otherwise."""
USAGE_HORIZON_HALF_LIVES = 10
"""Charges older than this many half-lives weigh under 0.1% and are not read for usage."""
WAIT_PERCENTILES = (50, 90, 99)
PERCENT = 100
SECONDS_PER_DAY = 24 * SECONDS_PER_HOUR


# -- small pieces ----------------------------------------------------------------------------


def percentile(values: Sequence[float], percent: int) -> float:
    """The nearest-rank percentile: the smallest value with at least ``percent``% of the values
    at or below it, so the answer is always one of ``values``.

    ``percentile([240, 240, 300], 50) == 240``; ``percentile([240, 240, 300], 90) == 300``.
    """
    if not values:
        raise InvalidInput("a percentile of no values is undefined")
    if not 0 < percent <= PERCENT:
        raise InvalidInput(f"a percentile lies in (0, {PERCENT}], got {percent}")
    ordered = sorted(values)
    rank = -(-percent * len(ordered) // PERCENT)  # ceil(percent / 100 * n), exact in integers
    return ordered[rank - 1]


def overlap_seconds(start: datetime, end: datetime, since: datetime, until: datetime) -> float:
    """Seconds of ``[start, end)`` inside the window ``[since, until)``; never negative."""
    clipped = (min(end, until) - max(start, since)).total_seconds()
    return max(clipped, 0.0)


def window(
    since: datetime | None, until: datetime | None, now: datetime, default: timedelta
) -> tuple[datetime, datetime]:
    """The report window: ``until`` defaults to now and never passes it (nothing is known of
    the future); ``since`` defaults to ``default`` before ``until``."""
    end = min(until, now) if until is not None else now
    try:
        start = since if since is not None else end - default
    except OverflowError:
        raise InvalidInput(f"no window of {default} ends at {end.isoformat()}") from None
    if start >= end:
        raise InvalidInput(
            f"the window must start before it ends: {start.isoformat()} to {end.isoformat()}"
        )
    return start, end


def round_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded to the nearest integer, halves away from zero."""
    quotient = (2 * abs(numerator) + denominator) // (2 * denominator)
    return quotient if numerator >= 0 else -quotient


def usage_since(now: datetime, half_life_seconds: float) -> datetime:
    """The oldest charge worth reading for decayed usage."""
    return now - timedelta(seconds=half_life_seconds * USAGE_HORIZON_HALF_LIVES)


def usage_by_project(
    charges: Iterable[tuple[str, datetime, int]], now: datetime, half_life_seconds: float
) -> dict[str, float]:
    """Decayed usage in credits per project from ``(project, time, milli)`` charges (refunds
    negative), never below zero: the usage fair share orders work by."""
    per_project: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for project, at, milli in charges:
        per_project[project].append((at, milli))
    return {
        project: max(0.0, decayed_usage(items, now, half_life_seconds))
        for project, items in per_project.items()
    }


def roll_up(tree: AccountTree, per_project: Mapping[str, int]) -> dict[str, int]:
    """Per-account totals of the whole subtree from amounts per account (usually projects)."""
    totals: dict[str, int] = defaultdict(int)
    for account, amount in per_project.items():
        for step in tree.path(account):
            totals[step.name] += amount
    return dict(totals)


# -- fair share ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeCredits:
    """An account's credits in one period, over its whole subtree."""

    awarded: Credits
    """Everything the subtree holds or held: spent + held + available + expired."""
    spent: Credits
    """Charged, net of refunds."""
    held: Credits
    """Reserved for admitted and running jobs."""
    available: Credits
    """Neither held nor spent: what new jobs can still use."""

    @property
    def uncharged(self) -> Credits:
        """Held + available: what a burn rate runs down."""
        return self.held + self.available


def credits_by_account(
    tree: AccountTree, balances: Balances, period: str
) -> dict[str, NodeCredits]:
    """Awarded, spent, held and available credits of every account's subtree in ``period``."""
    own: dict[Bucket, dict[str, int]] = {bucket: defaultdict(int) for bucket in Bucket}
    for (each_period, _funder, pocket), amount in balances.amounts.items():
        if each_period == period and pocket.account is not None and pocket.account in tree:
            own[pocket.bucket][pocket.account] += amount
    subtree = {bucket: roll_up(tree, amounts) for bucket, amounts in own.items()}
    found: dict[str, NodeCredits] = {}
    for account in tree:
        spent, held, available, expired = (
            subtree[bucket].get(account.name, 0)
            for bucket in (Bucket.SPENT, Bucket.HELD, Bucket.AVAILABLE, Bucket.EXPIRED)
        )
        found[account.name] = NodeCredits(
            awarded=Credits(spent + held + available + expired),
            spent=Credits(spent),
            held=Credits(held),
            available=Credits(available),
        )
    return found


@dataclass(frozen=True, slots=True)
class Burn:
    """How fast an account spends: credits per day over a window, and when its credits end."""

    per_day: Credits
    """Milli-credits per day, rounded to the nearest milli-credit."""
    exhausted_on: date | None
    """The day the uncharged credits run out at this rate; ``None`` with no burn, or past the
    calendar."""
    outlasts_period: bool = False
    """At this rate the credits last past the period's end, when they expire: they are not
    exhausted within it (and ``exhausted_on`` is only where the rate would lead)."""


def burn(
    spent_milli: int,
    left: Credits,
    now: datetime,
    over: timedelta,
    period_ends: datetime | None = None,
) -> Burn:
    """The burn of ``spent_milli`` charged (net) over the window ``over`` ending ``now``.

    The exhaustion day is ``now + left / rate``; an account with nothing left and a burn is
    exhausted today. Credits that would last past ``period_ends`` expire first: they outlast
    the period (``outlasts_period``).
    """
    seconds = over.total_seconds()
    if seconds <= 0:
        raise InvalidInput(f"a burn window must be positive, got {over}")
    if spent_milli <= 0:
        return Burn(Credits.zero(), None)
    per_day = Credits(round_half_up(spent_milli * SECONDS_PER_DAY, int(seconds)))
    remaining = max(left.milli, 0) * seconds / spent_milli
    outlasts = period_ends is not None and remaining > max((period_ends - now).total_seconds(), 0)
    days_to_spare = (date.max - now.date()).days
    if remaining / SECONDS_PER_DAY >= days_to_spare:
        return Burn(per_day, None, outlasts)
    return Burn(per_day, (now + timedelta(seconds=remaining)).date(), outlasts)


@dataclass(frozen=True, slots=True)
class FairShareRow:
    """One account in the fair-share report (``sshare``-like, with credits and burn)."""

    name: str
    kind: AccountKind
    parent: str | None
    share: int
    norm_share: float
    usage: float
    """Decayed usage in credits (normalised by exchange rate) of the subtree."""
    norm_usage: float
    level_fs: float
    """``math.inf`` for an account with a share and no usage."""
    running_gpus: int
    """GPUs held by the subtree's admitted, starting and running jobs."""
    pending_gpus: int
    """GPUs asked for by the subtree's queued jobs."""
    credits: NodeCredits
    burn: Burn


def fair_share_rows(
    tree: AccountTree,
    shares: FairShare,
    credits: Mapping[str, NodeCredits],
    running_gpus: Mapping[str, int],
    pending_gpus: Mapping[str, int],
    recent_spend: Mapping[str, int],
    now: datetime,
    accounts: Iterable[str],
    over: timedelta = BURN_WINDOW,
    period_ends: datetime | None = None,
) -> list[FairShareRow]:
    """Rows for ``accounts`` (in the order given).

    ``running_gpus``, ``pending_gpus`` and ``recent_spend`` are per project; ``recent_spend``
    is the milli-credits charged net of refunds in ``(now - over, now]``; credits that last
    past ``period_ends`` outlast the period (``Burn.outlasts_period``).
    """
    spent_subtree = roll_up(tree, recent_spend)
    running = roll_up(tree, running_gpus)
    pending = roll_up(tree, pending_gpus)
    rows: list[FairShareRow] = []
    for name in accounts:
        node = shares.explain(name)
        account_credits = credits[name]
        rows.append(
            FairShareRow(
                name=name,
                kind=node.kind,
                parent=tree[name].parent,
                share=node.share,
                norm_share=node.norm_share,
                usage=node.usage,
                norm_usage=node.norm_usage,
                level_fs=node.level_fs,
                running_gpus=running.get(name, 0),
                pending_gpus=pending.get(name, 0),
                credits=account_credits,
                burn=burn(
                    spent_subtree.get(name, 0), account_credits.uncharged, now, over, period_ends
                ),
            )
        )
    return rows


# -- priority use ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriorityRun:
    """A job of a class above normal that held ``gpus`` from ``start`` until ``end``
    (``None``: still running)."""

    project: str
    job: str
    priority: PriorityClass
    gpus: int
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class PriorityUse:
    """What an account's subtree ran at one priority class in a window."""

    jobs: int
    """Distinct jobs of the class that ran in the window."""
    gpu_seconds: float
    """Their GPUs x run time inside the window."""
    used: Credits
    """Charged to jobs of the class, net of refunds."""


NO_PRIORITY_USE = PriorityUse(0, 0.0, Credits.zero())


def priority_use(
    tree: AccountTree,
    priority: PriorityClass,
    runs: Iterable[PriorityRun],
    spent: Iterable[SpendItem],
    since: datetime,
    until: datetime,
) -> dict[str, PriorityUse]:
    """Per account, over its whole subtree: the jobs of ``priority`` that ran in ``[since,
    until)`` and their GPU-seconds there, and the credits ``spent`` (a period's spend items)
    charged to jobs of that class. Accounts without any are left out: ``NO_PRIORITY_USE``."""
    jobs: dict[str, set[str]] = defaultdict(set)
    seconds: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        end = run.end if run.end is not None else until
        ran = overlap_seconds(run.start, end, since, until)
        if run.priority is not priority or ran <= 0:
            continue
        for step in tree.path(run.project):
            jobs[step.name].add(run.job)
            seconds[step.name].append(run.gpus * ran)
    charged: dict[str, int] = defaultdict(int)
    for item in spent:
        if item.priority is priority:
            charged[item.project] += item.milli
    milli = roll_up(tree, charged)
    return {
        name: PriorityUse(
            len(jobs.get(name, ())), math.fsum(seconds.get(name, ())), Credits(milli.get(name, 0))
        )
        for name in sorted(set(jobs) | set(milli))
    }


# -- utilisation -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunInterval:
    """GPUs a job held on one cluster and flavor from ``start`` until ``end`` (``None``: still
    running)."""

    cluster: str
    flavor: str
    gpus: int
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class Capacity:
    """GPUs one cluster declares of one flavor, its site kind, and since when."""

    cluster: str
    flavor: str
    site: str
    gpus: int
    since: datetime | None = None
    """When the cluster was declared; ``None`` when not known (counted as always there)."""


@dataclass(frozen=True, slots=True)
class UtilisationRow:
    """GPU-time of one cluster and flavor over a window, in GPU-seconds."""

    cluster: str
    flavor: str
    site: str | None
    total: float
    """Inventory x window."""
    allocated: float
    """Run intervals of jobs placed there, clipped to the window."""
    down: float
    idle: float
    """``total - allocated - down``: negative only if jobs ran on more GPUs than declared, or
    on nodes while they were down (a cordoned node keeps the jobs it runs)."""

    @property
    def utilisation(self) -> float | None:
        """Busy share of the available GPU-time, in percent; ``None`` with nothing available."""
        available = self.total - self.down
        return self.allocated / available * PERCENT if available > 0 else None


def down_time(
    outages: Iterable[NodeOutage], since: datetime, until: datetime
) -> dict[tuple[str, str], float]:
    """GPU-seconds down per (cluster, flavor) in ``[since, until)``: each outage's GPUs x the part
    of it inside the window; one still open counts until ``until`` (a window never ends after
    now)."""
    down: dict[tuple[str, str], list[float]] = defaultdict(list)
    for outage in outages:
        end = outage.until if outage.until is not None else until
        down[outage.key].append(outage.gpus * overlap_seconds(outage.since, end, since, until))
    return {key: math.fsum(parts) for key, parts in down.items()}


def utilisation(
    capacities: Iterable[Capacity],
    runs: Iterable[RunInterval],
    since: datetime,
    until: datetime,
    down: Mapping[tuple[str, str], float] | None = None,
) -> list[UtilisationRow]:
    """Per (cluster, flavor): total, allocated, down and idle GPU-seconds in ``[since, until)``.

    ``down`` is GPU-seconds out of service per (cluster, flavor) within the window, where known.
    A run still going counts until ``until``. A cluster and flavor with runs but no declared
    inventory (since removed) gets a row with no total. A cluster declared within the window
    counts its inventory from then on: GPUs that were not in the pool were not idle.
    """
    seconds = (until - since).total_seconds()
    if seconds <= 0:
        raise InvalidInput("the window must start before it ends")
    declared = {(each.cluster, each.flavor): each for each in capacities}
    allocated: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in runs:
        end = run.end if run.end is not None else until
        allocated[(run.cluster, run.flavor)].append(
            run.gpus * overlap_seconds(run.start, end, since, until)
        )
    outages = down or {}
    rows: list[UtilisationRow] = []
    for key in sorted(set(declared) | set(allocated)):
        capacity = declared.get(key)
        total = 0.0
        if capacity is not None:
            declared_at = capacity.since if capacity.since is not None else since
            total = capacity.gpus * overlap_seconds(declared_at, until, since, until)
        busy = math.fsum(allocated.get(key, ()))
        out = outages.get(key, 0.0)
        rows.append(
            UtilisationRow(
                cluster=key[0],
                flavor=key[1],
                site=capacity.site if capacity is not None else None,
                total=total,
                allocated=busy,
                down=out,
                idle=total - busy - out,
            )
        )
    return rows


# -- spend -----------------------------------------------------------------------------------


class SpendBy(StrEnum):
    FUNDER = "funder"
    PROGRAM = "program"
    ORGANIZATION = "organization"
    PROJECT = "project"
    FLAVOR = "flavor"
    SITE = "site"


@dataclass(frozen=True, slots=True)
class SpendItem:
    """One ledger movement into (positive) or out of (negative) a job's spent credits."""

    project: str
    funder: str
    job: str | None
    milli: int
    flavor: str | None
    """Where the job ran, as recorded on it; ``None`` if no placement is recorded."""
    site: str | None
    priority: PriorityClass | None = None
    """The job's priority class; ``None`` where the entry names no job."""


@dataclass(frozen=True, slots=True)
class SpendRow:
    key: str | None
    """The funder, program, ... name; ``None`` where the jobs charged have no flavor or site
    recorded."""
    credits: Credits
    krw: int
    """What these credits cost in won, at each funder's price per credit."""
    jobs: int
    """Distinct jobs charged."""


def spend(
    tree: AccountTree,
    items: Iterable[SpendItem],
    by: SpendBy,
    krw_per_credit: Mapping[str, int],
) -> list[SpendRow]:
    """Credits charged net of refunds, grouped ``by``; rows by key, an unknown key last."""
    milli: dict[str | None, int] = defaultdict(int)
    krw_milli: dict[str | None, int] = defaultdict(int)
    jobs: dict[str | None, set[str]] = defaultdict(set)
    for item in items:
        key = _spend_key(tree, item, by)
        milli[key] += item.milli
        krw_milli[key] += item.milli * krw_per_credit.get(item.funder, 0)
        if item.job is not None:
            jobs[key].add(item.job)
    return [
        SpendRow(key, Credits(milli[key]), round_half_up(krw_milli[key], MILLI), len(jobs[key]))
        for key in sorted(milli, key=lambda key: (key is None, key or ""))
    ]


def _spend_key(tree: AccountTree, item: SpendItem, by: SpendBy) -> str | None:
    if by is SpendBy.FUNDER:
        return item.funder
    if by is SpendBy.PROJECT:
        return item.project
    if by is SpendBy.FLAVOR:
        return item.flavor
    if by is SpendBy.SITE:
        return item.site
    kind = AccountKind.PROGRAM if by is SpendBy.PROGRAM else AccountKind.ORGANIZATION
    return next((step.name for step in tree.path(item.project) if step.kind is kind), None)


# -- wait times ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaitRow:
    program: str
    jobs: int
    percentiles: tuple[tuple[int, float], ...]
    """``(percent, seconds)`` for each of ``WAIT_PERCENTILES``."""


def wait_times(
    tree: AccountTree,
    waits: Iterable[tuple[str, datetime, datetime]],
    percents: Sequence[int] = WAIT_PERCENTILES,
) -> list[WaitRow]:
    """Per program (by name): jobs and wait percentiles in seconds, from ``(project, submitted,
    admitted)`` of each job."""
    per_program: dict[str, list[float]] = defaultdict(list)
    for project, submitted, admitted in waits:
        program = next(step.name for step in tree.path(project) if step.kind is AccountKind.PROGRAM)
        per_program[program].append(max((admitted - submitted).total_seconds(), 0.0))
    return [
        WaitRow(
            program,
            len(seconds),
            tuple((percent, percentile(seconds, percent)) for percent in percents),
        )
        for program, seconds in sorted(per_program.items())
    ]


# -- spend as a tree -------------------------------------------------------------------------

FUNDER_LEVEL = "funder"
"""The kind of a spend tree's top level when it starts at the funders."""


@dataclass(frozen=True, slots=True)
class SpendNode:
    """One node of spend as a tree: a funder, or an account under it (or under the pool)."""

    level: int
    """0 for the top level (funders, or programs without them)."""
    kind: str
    """``funder``, or the account's kind (``program``, ``organization``, ``project``)."""
    name: str
    path: tuple[str, ...]
    """The names from the top level down to this node, both included."""
    credits: Credits
    krw: int
    jobs: int


def spend_tree(
    tree: AccountTree,
    items: Iterable[SpendItem],
    krw_per_credit: Mapping[str, int],
    with_funders: bool,
) -> list[SpendNode]:
    """Credits charged net of refunds as a tree, depth first, children by name: funder ->
    program -> organization -> project (program -> ... without funders). Each node counts its
    whole subtree as ``spend`` counts a group (credits, won at each funder's price, distinct
    jobs), so a funder's node is ``spend(..., SpendBy.FUNDER, ...)``'s row for it and, without
    funders, a program's node is the row ``SpendBy.PROGRAM`` gives."""
    milli: dict[tuple[str, ...], int] = defaultdict(int)
    krw_milli: dict[tuple[str, ...], int] = defaultdict(int)
    jobs: dict[tuple[str, ...], set[str]] = defaultdict(set)
    kinds: dict[tuple[str, ...], str] = {}
    for item in items:
        steps = [(step.kind.value, step.name) for step in tree.path(item.project)[1:]]
        if with_funders:
            steps.insert(0, (FUNDER_LEVEL, item.funder))
        for depth in range(1, len(steps) + 1):
            key = tuple(name for _, name in steps[:depth])
            kinds[key] = steps[depth - 1][0]
            milli[key] += item.milli
            krw_milli[key] += item.milli * krw_per_credit.get(item.funder, 0)
            if item.job is not None:
                jobs[key].add(item.job)
    return [
        SpendNode(
            level=len(key) - 1,
            kind=kinds[key],
            name=key[-1],
            path=key,
            credits=Credits(milli[key]),
            krw=round_half_up(krw_milli[key], MILLI),
            jobs=len(jobs[key]),
        )
        for key in sorted(milli)
    ]


# -- over time -------------------------------------------------------------------------------


def day_starts(since: datetime, until: datetime, zone: tzinfo) -> list[datetime]:
    """The midnights of ``zone`` strictly inside ``(since, until)``, in UTC: where a window's
    days begin, for reports per day in the pool's time zone."""
    found: list[datetime] = []
    day = since.astimezone(zone).date() + timedelta(days=1)
    while True:
        midnight = datetime.combine(day, time(), tzinfo=zone).astimezone(UTC)
        if midnight >= until:
            return found
        if midnight > since:
            found.append(midnight)
        day += timedelta(days=1)


@dataclass(frozen=True, slots=True)
class SharePoint:
    """An account's entitlement and usage among its siblings at one moment."""

    at: datetime
    norm_share: float
    """Its share / the sum of its siblings' shares (the tree as it is now)."""
    norm_usage: float
    """Its subtree's decayed usage / its siblings' at ``at``: what fair share ordered by then."""


def usage_share_history(
    tree: AccountTree,
    charges: Iterable[tuple[str, datetime, int]],
    moments: Sequence[datetime],
    half_life_seconds: float,
    accounts: Iterable[str],
) -> dict[str, list[SharePoint]]:
    """For each of ``accounts``, its normalised share and normalised usage at each of
    ``moments`` (ascending), as fair share computes them (``quotas.fairshare``) from the
    ``(project, time, milli)`` charges and refunds made until each moment, decayed to it with
    ``half_life_seconds``. Shares are the tree's now: the tree keeps no history of them."""
    ordered = sorted(
        (at, project, milli)
        for project, at, milli in charges
        if project in tree.accounts and tree[project].kind is AccountKind.PROJECT
    )
    raw: dict[str, float] = defaultdict(float)
    wanted = list(accounts)
    history: dict[str, list[SharePoint]] = {name: [] for name in wanted}
    position, previous = 0, None
    for moment in moments:
        if previous is not None:
            if moment < previous:
                raise InvalidInput("moments must be in ascending order")
            factor = decay_factor((moment - previous).total_seconds(), half_life_seconds)
            for project in raw:
                raw[project] *= factor
        while position < len(ordered) and ordered[position][0] <= moment:
            at, project, milli = ordered[position]
            elapsed = (moment - at).total_seconds()
            raw[project] += milli / MILLI * decay_factor(elapsed, half_life_seconds)
            position += 1
        previous = moment
        shares = fair_share(tree, {project: max(0.0, used) for project, used in raw.items()})
        for name in wanted:
            node = shares.explain(name)
            history[name].append(SharePoint(moment, node.norm_share, node.norm_usage))
    return history
