"""Reports: fair share, utilisation, spend and wait times; JSON, or CSV with ``?format=csv``.

The CSV holds exactly the JSON's ``rows``, one line each, columns in the same order. The
arithmetic lives in ``quotas.reports``, the reading and scoping in the use cases
(``quotas.cases.reports``, ``jobs.reports``); this module shapes. Scoping follows
``quotas.access``: admin and auditor see everything; a program manager the accounts and spend
of their programs; a pi or researcher their projects. Spend by funder is for admin and auditor
only. The fair-share rows also say who used urgent work (a priority class granted per
project) in the period. Cluster utilisation is pool-wide and open to every signed-in user: it
says how busy the pool is, not who used it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from jobs import reports as job_reports
from portal.api.common import CSV_ANSWER, NO_NUL, Format, ReportFormat, Strict, csv_response
from portal.deps import PortalDep, PrincipalDep
from portal.problems import Problem
from quotas.accounts import AccountKind
from quotas.cases import reports as book_reports
from quotas.quantities import SECONDS_PER_HOUR, parse_duration
from quotas.reports import (
    BURN_WINDOW,
    NO_PRIORITY_USE,
    SECONDS_PER_DAY,
    WAIT_PERCENTILES,
    FairShareRow,
    PriorityUse,
    SpendBy,
    SpendRow,
    UtilisationRow,
    WaitRow,
)

router = APIRouter(tags=["reports"])

HOURS_DECIMALS = 3
"""GPU-hours are shown to the GPU-second's order (1/3600 h)."""
PERCENT_DECIMALS = 2


PeriodName = Annotated[
    str | None,
    Query(max_length=64, pattern=NO_NUL, description="Allocation period; default the current one"),
]
Since = Annotated[
    str | None,
    Query(
        max_length=64,
        pattern=NO_NUL,
        description="Window start: a time (ISO 8601; UTC if no offset), or how long before "
        "until, e.g. 24h, 7d or 1h30m; default 7 days before until",
        examples=["24h", "2026-12-01T00:00:00+09:00"],
    ),
]


def window_start(text: str | None) -> datetime | timedelta | None:
    """``since`` as the use cases take it: a time, or a duration before the window's end."""
    if text is None:
        return None
    try:
        return timedelta(seconds=parse_duration(text))
    except ValueError as error:
        if text.strip().isdigit():  # not a Unix time: "24" is 24 of something
            raise Problem(422, f"since: {error}") from None
    try:
        return MOMENT.validate_python(text)
    except ValidationError:
        raise Problem(
            422, f"since: {text!r} is neither a time (ISO 8601) nor a duration such as 24h or 7d"
        ) from None


MOMENT = TypeAdapter(datetime)
Until = Annotated[
    datetime | None,
    Query(description="Window end (ISO 8601; UTC if no offset); default now, never later"),
]


def _answer(
    report: BaseModel,
    rows: Sequence[BaseModel],
    columns: Sequence[str],
    form: ReportFormat,
    name: str,
) -> BaseModel | Response:
    if form is ReportFormat.JSON:
        return report
    cells = (row.model_dump(mode="json") for row in rows)
    return csv_response(columns, ([cell[column] for column in columns] for cell in cells), name)


# -- fair share ------------------------------------------------------------------------------


class FairShareRowOut(Strict):
    name: str
    kind: AccountKind
    parent: str | None
    share: int = Field(description="Raw share weight among siblings")
    norm_share: float = Field(description="share / sum of sibling shares")
    usage: float = Field(description="Decayed usage in credits (normalised by exchange rate)")
    norm_usage: float = Field(description="usage / sum of sibling usage")
    level_fs: float | None = Field(
        description="norm_share / norm_usage; null is infinite (a share and no usage yet)"
    )
    running_gpus: int = Field(description="GPUs held by admitted, starting and running jobs")
    pending_gpus: int = Field(description="GPUs asked for by queued jobs")
    awarded: str = Field(description="Credits that came into the account's subtree this period")
    spent: str = Field(description="Credits charged, net of refunds")
    held: str = Field(description="Credits held for admitted or running jobs")
    available: str = Field(
        description="Credits neither held nor spent: what new jobs can still use (as in quota)"
    )
    burn_per_day: str = Field(description="Credits charged per day over the burn window")
    exhausted_on: date | None = Field(
        description="When held + available run out at this burn rate; null with no burn. A day "
        "after the period's end is only where the rate leads (see outlasts_period)"
    )
    outlasts_period: bool = Field(
        description="At this burn rate held + available last past the period's end, when they "
        "expire: they are not exhausted within the period"
    )
    urgent_jobs: int = Field(description="Urgent jobs (a granted class) that ran this period")
    urgent_gpu_hours: float = Field(description="Their GPUs x run time this period")
    urgent_used: str = Field(description="Credits charged to urgent jobs, net of refunds")


class FairShareReport(Strict):
    period: str
    at: datetime
    half_life_hours: float
    burn_window_days: float
    rows: list[FairShareRowOut]


def fair_share_out(row: FairShareRow, urgent: PriorityUse = NO_PRIORITY_USE) -> FairShareRowOut:
    return FairShareRowOut(
        name=row.name,
        kind=row.kind,
        parent=row.parent,
        share=row.share,
        norm_share=row.norm_share,
        usage=row.usage,
        norm_usage=row.norm_usage,
        level_fs=None if math.isinf(row.level_fs) else row.level_fs,
        running_gpus=row.running_gpus,
        pending_gpus=row.pending_gpus,
        awarded=str(row.credits.awarded),
        spent=str(row.credits.spent),
        held=str(row.credits.held),
        available=str(row.credits.available),
        burn_per_day=str(row.burn.per_day),
        exhausted_on=row.burn.exhausted_on,
        outlasts_period=row.burn.outlasts_period,
        urgent_jobs=urgent.jobs,
        urgent_gpu_hours=_hours(urgent.gpu_seconds),
        urgent_used=str(urgent.used),
    )


@router.get(
    "/reports/fairshare",
    summary="Per account: share, usage, level fair share, GPUs, credits and burn",
    response_model=FairShareReport,
    responses=CSV_ANSWER,
)
def fairshare_report(
    portal: PortalDep,
    principal: PrincipalDep,
    period: PeriodName = None,
    form: Format = ReportFormat.JSON,
) -> BaseModel | Response:
    """Like Slurm's ``sshare``, with the period's credits: decayed usage orders work, the
    non-decaying ledger caps it. Rows for the accounts the caller may read, in tree order.
    The ``urgent_*`` columns count the period so far: urgent jobs that ran in it, their
    GPU-hours in it, and the credits charged to them in its ledger."""
    with portal.books() as books:
        found = job_reports.fair_share_report(
            books, principal, portal.settings.fair_share_half_life_hours, period
        )
    out = [fair_share_out(row, urgent) for row, urgent in found.rows]
    name = found.period
    report = FairShareReport(
        period=name,
        at=found.at,
        half_life_hours=portal.settings.fair_share_half_life_hours,
        burn_window_days=BURN_WINDOW.total_seconds() / SECONDS_PER_DAY,
        rows=out,
    )
    return _answer(report, out, list(FairShareRowOut.model_fields), form, f"fairshare-{name}.csv")


# -- utilisation -----------------------------------------------------------------------------


class UtilisationRowOut(Strict):
    cluster: str
    flavor: str
    site: str | None = Field(description="national, domestic_cloud or foreign_cloud")
    total_gpu_hours: float = Field(description="Declared inventory x the window")
    allocated_gpu_hours: float = Field(description="Jobs' run time x GPUs, within the window")
    down_gpu_hours: float = Field(
        description="Nodes out of service (cordoned, NotReady) x their outage within the window"
    )
    idle_gpu_hours: float = Field(description="total - allocated - down")
    utilisation_percent: float | None = Field(
        description="allocated / (total - down); null with nothing available"
    )


class UtilisationReport(Strict):
    since: datetime
    until: datetime
    rows: list[UtilisationRowOut]


def _hours(gpu_seconds: float) -> float:
    return round(gpu_seconds / SECONDS_PER_HOUR, HOURS_DECIMALS)


def utilisation_out(row: UtilisationRow) -> UtilisationRowOut:
    busy = row.utilisation
    return UtilisationRowOut(
        cluster=row.cluster,
        flavor=row.flavor,
        site=row.site,
        total_gpu_hours=_hours(row.total),
        allocated_gpu_hours=_hours(row.allocated),
        down_gpu_hours=_hours(row.down),
        idle_gpu_hours=_hours(row.idle),
        utilisation_percent=round(busy, PERCENT_DECIMALS) if busy is not None else None,
    )


@router.get(
    "/reports/utilisation",
    summary="Per cluster and flavor: total, allocated, down and idle GPU-hours",
    response_model=UtilisationReport,
    responses=CSV_ANSWER,
)
def utilisation_report(
    portal: PortalDep,
    principal: PrincipalDep,
    since: Since = None,
    until: Until = None,
    form: Format = ReportFormat.JSON,
) -> BaseModel | Response:
    """Like ``sreport cluster Utilization``. Total is each cluster's declared inventory of the
    flavor (nodes x GPUs per node) over the window; allocated is every job's GPUs x the part of
    its run (from the start its backend reported to its end, or the window's end while it runs)
    inside the window. Down is the GPUs of nodes out of service x the part of each outage inside
    the window (one that lasts counts to the window's end): every ``GPUPOOL_HEALTH_CHECK_SECONDS``
    the scheduler asks each national cluster's backend which nodes are up, and declared nodes it
    does not report up (cordoned, NotReady) are down until it does; no job is placed on them
    meanwhile. Idle is total - allocated - down (below 0 if jobs ran on a node while it was
    down: a cordoned node keeps its jobs); utilisation is allocated / (total - down)."""
    with portal.books() as books:
        found = book_reports.utilisation_report(books, window_start(since), until)
    out = [utilisation_out(row) for row in found.rows]
    report = UtilisationReport(since=found.since, until=found.until, rows=out)
    return _answer(report, out, list(UtilisationRowOut.model_fields), form, "utilisation.csv")


# -- spend -----------------------------------------------------------------------------------


class SpendRowOut(Strict):
    name: str | None = Field(
        description="The funder, program, organization, project, flavor or site; null where the "
        "jobs charged have no placement recorded"
    )
    credits: str = Field(description="Charged, net of refunds")
    krw: int = Field(description="Those credits in won, at each funder's price per credit")
    jobs: int = Field(description="Distinct jobs charged")


class SpendReport(Strict):
    period: str
    by: SpendBy
    rows: list[SpendRowOut]


def spend_out(row: SpendRow) -> SpendRowOut:
    return SpendRowOut(name=row.key, credits=str(row.credits), krw=row.krw, jobs=row.jobs)


@router.get(
    "/reports/spend",
    summary="Credits charged (net of refunds) in a period, grouped",
    response_model=SpendReport,
    responses=CSV_ANSWER,
)
def spend_report(
    portal: PortalDep,
    principal: PrincipalDep,
    by: Annotated[SpendBy, Query(description="How to group the credits")] = SpendBy.PROJECT,
    period: PeriodName = None,
    form: Format = ReportFormat.JSON,
) -> BaseModel | Response:
    """From the ledger: every charge into a job's spent credits, less refunds (and reversals).
    The funder is the earmark each entry carries; flavor and site are where the job charged
    was placed. Only the caller's projects count (all of them for admin and auditor)."""
    with portal.books() as books:
        found = book_reports.spend_report(books, principal, by, period)
    out = [spend_out(row) for row in found.rows]
    name = found.period
    report = SpendReport(period=name, by=by, rows=out)
    return _answer(report, out, list(SpendRowOut.model_fields), form, f"spend-{by}-{name}.csv")


# -- wait times ------------------------------------------------------------------------------


class WaitRowOut(Strict):
    program: str
    jobs: int = Field(description="Jobs first admitted in the window")
    p50_seconds: float
    p90_seconds: float
    p99_seconds: float


class WaitReport(Strict):
    since: datetime
    until: datetime
    rows: list[WaitRowOut]


def wait_out(row: WaitRow) -> WaitRowOut:
    seconds = dict(row.percentiles)
    p50, p90, p99 = (seconds[percent] for percent in WAIT_PERCENTILES)
    return WaitRowOut(
        program=row.program, jobs=row.jobs, p50_seconds=p50, p90_seconds=p90, p99_seconds=p99
    )


@router.get(
    "/reports/wait-times",
    summary="Per program: jobs admitted and their wait from submission, p50/p90/p99",
    response_model=WaitReport,
    responses=CSV_ANSWER,
)
def wait_times_report(
    portal: PortalDep,
    principal: PrincipalDep,
    since: Since = None,
    until: Until = None,
    form: Format = ReportFormat.JSON,
) -> BaseModel | Response:
    """Jobs first admitted in the window, per program; the wait is submission to first
    admission, in seconds (nearest-rank percentiles: each is a wait a job really had). Only
    the caller's projects count."""
    with portal.books() as books:
        found = job_reports.wait_times_report(books, principal, window_start(since), until)
    out = [wait_out(row) for row in found.rows]
    report = WaitReport(since=found.since, until=found.until, rows=out)
    return _answer(report, out, list(WaitRowOut.model_fields), form, "wait-times.csv")
