"""Use cases of the reports that read jobs: fair share and wait times, scoped to the principal.

A program manager sees the accounts of their programs, a pi or researcher their projects, admin
and auditor everything (``quotas.access``). The arithmetic lives in ``quotas.reports``; the
reports that read only the books are ``quotas.cases.reports``'.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from jobs.model import JobState
from jobs.repository import JobRepository
from quotas.access import Principal
from quotas.admission import PriorityClass
from quotas.cases.reports import period_or_current, report_window
from quotas.db.reports import ReportRepository
from quotas.errors import NotFound
from quotas.fairshare import fair_share
from quotas.quantities import SECONDS_PER_HOUR
from quotas.reports import (
    BURN_WINDOW,
    NO_PRIORITY_USE,
    FairShareRow,
    PriorityUse,
    SharePoint,
    WaitRow,
    credits_by_account,
    day_starts,
    fair_share_rows,
    priority_use,
    usage_by_project,
    usage_share_history,
    usage_since,
    wait_times,
)
from quotas.service import Books

HOLDING_STATES = tuple(state for state in JobState if state.holds_capacity)


@dataclass(frozen=True, slots=True)
class FairShareReport:
    """The fair-share rows of a period, each with its urgent work in the period so far."""

    period: str
    at: datetime
    rows: list[tuple[FairShareRow, PriorityUse]]


@dataclass(frozen=True, slots=True)
class WaitTimes:
    since: datetime
    until: datetime
    rows: list[WaitRow]


def fair_share_report(
    books: Books, principal: Principal, half_life_hours: float, period: str | None = None
) -> FairShareReport:
    """Per account the principal may read, in tree order: share, decayed usage (halving every
    ``half_life_hours``), level fair share, GPUs, the period's credits and burn, and the urgent
    work that ran in the period so far."""
    half_life = half_life_hours * SECONDS_PER_HOUR
    now = books.clock()
    name = period_or_current(books, period)
    tree = books.tree(name)
    reports = ReportRepository(books.session)
    jobs = JobRepository(books.session)
    usage = usage_by_project(
        books.ledger.usage_charges(usage_since(now, half_life)), now, half_life
    )
    recent: dict[str, int] = defaultdict(int)
    for item in reports.spend(name, after=now - BURN_WINDOW, until=now):
        recent[item.project] += item.milli
    span = books.funding.period(name)
    rows = fair_share_rows(
        tree,
        fair_share(tree, usage),
        credits_by_account(tree, books.ledger.balances(name), name),
        jobs.gpus_by_project(HOLDING_STATES),
        jobs.gpus_by_project([JobState.QUEUED]),
        recent,
        now,
        principal.readable_accounts(tree),
        period_ends=span.ends_at,
    )
    since, until = span.starts_at, min(span.ends_at, now)
    urgent = priority_use(
        tree,
        PriorityClass.URGENT,
        reports.priority_runs([PriorityClass.URGENT], since, until),
        reports.spend(name),
        since,
        until,
    )
    return FairShareReport(
        name, now, [(row, urgent.get(row.name, NO_PRIORITY_USE)) for row in rows]
    )


def wait_times_report(
    books: Books,
    principal: Principal,
    since: datetime | timedelta | None = None,
    until: datetime | None = None,
) -> WaitTimes:
    """Per program: jobs first admitted in the window and their waits from submission, counting
    only the projects the principal may read; ``since`` a time, or how long before ``until``."""
    start, end = report_window(books, since, until)
    tree = books.tree()
    waits = JobRepository(books.session).first_admissions(
        start, end, principal.readable_projects(tree)
    )
    return WaitTimes(start, end, wait_times(tree, waits))


@dataclass(frozen=True, slots=True)
class FairShareHistory:
    """Entitled and used shares of some accounts, at the start of each day of a period so far
    and now."""

    period: str
    at: datetime
    half_life_hours: float
    points: dict[str, list[SharePoint]]


def fair_share_history(
    books: Books,
    principal: Principal,
    half_life_hours: float,
    accounts: Sequence[str],
    zone: tzinfo,
    period: str | None = None,
) -> FairShareHistory:
    """For each of ``accounts`` (each one the principal may read, else "not found"): its
    normalised share among its siblings and its normalised decayed usage, the two numbers fair
    share compares (``norm_share`` and ``norm_usage`` of ``fair_share_report``), at each
    midnight of ``zone`` in the period up to now, and now (the last point is the report's)."""
    half_life = half_life_hours * SECONDS_PER_HOUR
    now = books.clock()
    name = period_or_current(books, period)
    tree = books.tree(name)
    for account in accounts:
        if account not in tree or not principal.can_read_account(tree, account):
            raise NotFound(f"no account {account}")
    span = books.funding.period(name)
    start, end = span.starts_at, min(span.ends_at, now)
    if start >= end:
        return FairShareHistory(name, now, half_life_hours, {each: [] for each in accounts})
    moments = [start, *day_starts(start, end, zone), end]
    charges = books.ledger.usage_charges(usage_since(start, half_life))
    points = usage_share_history(tree, charges, moments, half_life, accounts)
    return FairShareHistory(name, now, half_life_hours, points)
