"""Use cases of the reports that read only the books: cluster utilisation and spend.

Scoping follows ``quotas.access``: spend counts only the projects the principal may read (all
of them for admin and auditor), and spend by funder is for admin and auditor only. Cluster
utilisation is pool-wide and open to everyone signed in: it says how busy the pool is, not who
used it. The reports that read jobs are ``jobs.reports``'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise

from quotas.access import Principal
from quotas.cases import require
from quotas.db.reports import ReportRepository
from quotas.errors import InvalidInput
from quotas.inventory import ClusterSpec
from quotas.reports import (
    DEFAULT_WINDOW,
    Capacity,
    SpendBy,
    SpendNode,
    SpendRow,
    UtilisationRow,
    day_starts,
    down_time,
    spend,
    spend_tree,
    utilisation,
    window,
)
from quotas.service import Books


@dataclass(frozen=True, slots=True)
class Utilisation:
    since: datetime
    until: datetime
    rows: list[UtilisationRow]


@dataclass(frozen=True, slots=True)
class Spend:
    period: str
    rows: list[SpendRow]


def in_utc(moment: datetime | None) -> datetime | None:
    """In UTC, as everything is stored (SQLite compares the digits, not the instants); a time
    without an offset is taken to be UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{moment.isoformat()} is outside the calendar in UTC") from None


def report_window(
    books: Books, since: datetime | timedelta | None, until: datetime | None
) -> tuple[datetime, datetime]:
    """The window a report covers: ``until`` (default now, never later) and ``since`` (default
    the report window before it), in UTC; ``since`` may be a duration, as long before
    ``until`` (``--since 24h``)."""
    if isinstance(since, timedelta):
        if since <= timedelta(0):
            raise InvalidInput(f"a window lasts some time, not {since}")
        return window(None, in_utc(until), books.clock(), since)
    return window(in_utc(since), in_utc(until), books.clock(), DEFAULT_WINDOW)


def period_or_current(books: Books, period: str | None) -> str:
    """``period``, or the one running now."""
    return period if period is not None else books.current_period(books.clock()).name


def _capacities(
    clusters: Sequence[ClusterSpec], declared: Mapping[str, datetime]
) -> list[Capacity]:
    return [
        Capacity(
            cluster.name, item.flavor, cluster.site.value, item.gpus, declared.get(cluster.name)
        )
        for cluster in clusters
        for item in cluster.inventory
    ]


def utilisation_report(
    books: Books, since: datetime | timedelta | None = None, until: datetime | None = None
) -> Utilisation:
    """Per cluster and flavor: total, allocated, down and idle GPU-seconds in the window; for
    everyone signed in, so it takes no principal. A cluster's total counts from when it was
    declared (its ``cluster.add`` in the audit log), if that was within the window. Down is the
    node outages the scheduler recorded (``scheduler.outages``), clipped to the window: GPUs per
    cluster and flavor, never whose jobs ran there."""
    start, end = report_window(books, since, until)
    reports = ReportRepository(books.session)
    rows = utilisation(
        _capacities(books.clusters.all(), reports.clusters_declared()),
        reports.runs(start, end),
        start,
        end,
        down=down_time(books.outages.overlapping(start, end), start, end),
    )
    return Utilisation(start, end, rows)


def spend_report(
    books: Books, principal: Principal, by: SpendBy, period: str | None = None
) -> Spend:
    """Credits charged in ``period`` (default: the current one), net of refunds, grouped ``by``,
    counting only the projects the principal may read; by funder for admin and auditor only."""
    if by is SpendBy.FUNDER:
        require(principal, principal.reads_everything, "see spend by funder")
    name = period_or_current(books, period)
    tree = books.tree(name)
    items = ReportRepository(books.session).spend(name, principal.readable_projects(tree))
    prices = {funder.name: funder.krw_per_credit for funder in books.funding.funders()}
    return Spend(name, spend(tree, items, by, prices))


def require_report_reader(principal: Principal) -> None:
    """The reports pages are for admin and auditor (everything) and program managers (their
    programs); a pi or researcher reads their projects' usage on the project pages instead."""
    require(
        principal,
        principal.reads_everything or bool(principal.programs),
        "read the pool's reports (admin, auditor or a program manager)",
    )


MAX_REPORT_DAYS = 92
"""Reports per day cover at most this many days (a quarter)."""


def utilisation_by_day(
    books: Books, since: datetime | None, until: datetime | None, zone: tzinfo
) -> list[Utilisation]:
    """``utilisation_report`` for each day of the window (the days of ``zone``; the first and
    last may be partial), so each day's GPU-hours are counted as the window's are; at most
    ``MAX_REPORT_DAYS`` days."""
    start, end = report_window(books, since, until)
    edges = [start, *day_starts(start, end, zone), end]
    if len(edges) - 1 > MAX_REPORT_DAYS:
        raise InvalidInput(f"a report per day covers at most {MAX_REPORT_DAYS} days")
    return [utilisation_report(books, first, last) for first, last in pairwise(edges)]


@dataclass(frozen=True, slots=True)
class SpendTree:
    period: str
    with_funders: bool
    nodes: list[SpendNode]


def spend_tree_report(books: Books, principal: Principal, period: str | None = None) -> SpendTree:
    """Spend in ``period`` (default: the current one) as a tree, counting only the projects the
    principal may read: funder -> program -> organization -> project for admin and auditor
    (spend by funder is theirs only), program -> organization -> project for others."""
    name = period_or_current(books, period)
    tree = books.tree(name)
    items = ReportRepository(books.session).spend(name, principal.readable_projects(tree))
    prices = {funder.name: funder.krw_per_credit for funder in books.funding.funders()}
    with_funders = principal.reads_everything
    return SpendTree(name, with_funders, spend_tree(tree, items, prices, with_funders))
