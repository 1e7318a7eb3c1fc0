"""Report pages: fair share (a tree table like Slurm's ``sshare``, with usage against entitlement
over time), utilisation per cluster and flavor, spend from funder down to project, wait-time
percentiles, and the ledger and audit log with filters.

Every number comes from the use cases the API's reports call (``jobs.reports``,
``quotas.cases.reports``, ``quotas.cases.ledger``) with the viewer's principal, shaped by the
API's own functions (``portal.api.reports``), so a table cell and a chart mark hold exactly
what ``GET /api/v1/reports/...`` answers; each table links the API's CSV of the same rows. The
reports pages are for admin and auditor (everything) and program managers (their programs):
``require_report_reader``. The ledger is everyone's, scoped by its use case; the audit log is
admin's and auditor's.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any
from urllib.parse import urlencode

from babel.dates import format_date
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup

from jobs import reports as job_reports
from portal.api.common import MAX_PAGE, NO_NUL, csv_response
from portal.api.ledger import audit_out, entry_out
from portal.api.reports import (
    FairShareRowOut,
    UtilisationRowOut,
    fair_share_out,
    spend_out,
    utilisation_out,
    wait_out,
)
from portal.deps import PortalDep
from portal.pages.charts import Bucket, Part, Series, bar_chart, line_chart, stacked_bar_chart
from portal.pages.i18n import Words
from portal.pages.render import Offset, Paging, Viewer, render, signed_in
from portal.scopes import READ
from quotas.accounts import AccountKind
from quotas.cases import reports as book_reports
from quotas.cases.ledger import audit_entries, visible_entries
from quotas.errors import InvalidInput
from quotas.ledger import EntryKind
from quotas.quantities import parse_duration
from quotas.reports import SpendBy

router = APIRouter(include_in_schema=False)

SCOPES = {
    ("GET", "/reports"): READ,
    ("GET", "/reports/fairshare"): READ,
    ("GET", "/reports/utilisation"): READ,
    ("GET", "/reports/spend"): READ,
    ("GET", "/reports/wait-times"): READ,
    ("GET", "/ledger"): READ,
    ("GET", "/audit"): READ,
}

API = "/api/v1"
PAGE_SIZE = 50
MAX_NODES = 8
"""Fair-share charts drawn at once."""
HOURS_DIGITS = 3
SHARE_DIGITS = 4

Text = Annotated[str, Query(max_length=64, pattern=NO_NUL)]
When = Annotated[str, Query(max_length=40, pattern=NO_NUL)]


# -- pieces --------------------------------------------------------------------------------------


def moment(text: str, now: datetime, viewer: Viewer) -> datetime | None:
    """A time a filter names: empty for none; ``24h``, ``7d``, ``1h30m`` that long before now;
    else an ISO date or time (in the pool's time zone when it names none)."""
    text = text.strip()
    if not text:
        return None
    if re.fullmatch(r"[0-9smhdSMHD]+", text) and not text.isdigit():
        try:
            return now - timedelta(seconds=parse_duration(text))
        except (ValueError, OverflowError) as error:
            raise InvalidInput(str(error)) from None
    try:
        found = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"cannot read the time {text!r}: write e.g. 24h, 7d, 2025-03-01 or "
            "2025-03-01T09:00+09:00"
        ) from None
    if found.tzinfo is None:
        found = found.replace(tzinfo=viewer.t.timezone)
    return found


def query(**values: Any) -> str:
    """A query string of the values given (lists repeat their key; empty ones are left out)."""
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        for each in value if isinstance(value, list | tuple) else [value]:
            if each is None or each == "":
                continue
            pairs.append((key, each.isoformat() if isinstance(each, datetime) else str(each)))
    return urlencode(pairs)


def hours(t: Words) -> Any:
    return lambda value: t("unit.gpu_hours", amount=t.number(value, HOURS_DIGITS))


def credits_of(t: Words) -> Any:
    return lambda value: t.credits(Decimal(str(value)))


def _levels(rows: list[FairShareRowOut]) -> dict[str, int]:
    """Each row's depth below the highest row shown (rows come in tree order)."""
    levels: dict[str, int] = {}
    for row in rows:
        parent = row.parent
        levels[row.name] = levels[parent] + 1 if parent is not None and parent in levels else 0
    return levels


# -- the index -----------------------------------------------------------------------------------


@router.get("/reports")
def reports_index(request: Request, portal: PortalDep) -> HTMLResponse:
    viewer = signed_in(request, portal)
    book_reports.require_report_reader(viewer.principal)
    programs = sorted(viewer.principal.programs)
    return render(viewer, "reports.html", programs=programs)


# -- fair share ----------------------------------------------------------------------------------


@router.get("/reports/fairshare")
def fairshare_page(
    request: Request,
    portal: PortalDep,
    period: Text = "",
    node: Annotated[list[str] | None, Query(max_length=MAX_NODES * 4)] = None,
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    half_life = portal.settings.fair_share_half_life_hours
    t = viewer.t
    with portal.books() as books:
        book_reports.require_report_reader(viewer.principal)
        found = job_reports.fair_share_report(books, viewer.principal, half_life, period or None)
        rows = [fair_share_out(row, urgent) for row, urgent in found.rows]
        names = [row.name for row in rows]
        chosen = [each for each in dict.fromkeys(node or ()) if each][:MAX_NODES]
        if not chosen:
            programs = [row.name for row in rows if row.kind is AccountKind.PROGRAM]
            chosen = programs[:MAX_NODES] or names[:1]
        history = job_reports.fair_share_history(
            books, viewer.principal, half_life, chosen, t.timezone, found.period
        )
    charts = []
    for name in chosen:
        points = history.points[name]
        charts.append(
            line_chart(
                t("reports.fs_chart_title", account=name),
                [
                    Series(
                        t("reports.fs_entitled"),
                        [(p.at, p.norm_share) for p in points],
                        "chart-entitled",
                    ),
                    Series(
                        t("reports.fs_used"), [(p.at, p.norm_usage) for p in points], "chart-used"
                    ),
                ],
                x_format=t.day,
                y_format=t.percent,
                empty_message=t("reports.fs_chart_empty"),
                y_label=t("reports.fs_axis"),
                chart_id=f"fs-{_html_id(name)}",
            )
        )
    return render(
        viewer,
        "report_fairshare.html",
        report=found,
        rows=rows,
        levels=_levels(rows),
        names=names,
        chosen=chosen,
        charts=list(zip(chosen, charts, strict=True)),
        half_life=half_life,
        on_day=lambda day: format_date(day, "medium", locale=t.language.locale),
        csv=f"{API}/reports/fairshare?{query(period=found.period, format='csv')}",
    )


def _html_id(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", name)


# -- utilisation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterChart:
    cluster: str
    flavor: str
    chart: Markup


@router.get("/reports/utilisation")
def utilisation_page(
    request: Request, portal: PortalDep, since: When = "", until: When = ""
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    t = viewer.t
    now = portal.clock()
    start, end = moment(since, now, viewer), moment(until, now, viewer)
    with portal.books() as books:
        book_reports.require_report_reader(viewer.principal)
        found = book_reports.utilisation_report(books, start, end)
        try:
            days = book_reports.utilisation_by_day(books, found.since, found.until, t.timezone)
        except InvalidInput:
            days = None
    rows = [utilisation_out(row) for row in found.rows]
    charts = [] if days is None else _utilisation_charts(t, rows, days)
    return render(
        viewer,
        "report_utilisation.html",
        report=found,
        rows=rows,
        charts=charts,
        daily=days is not None,
        since=since,
        until=until,
        csv=f"{API}/reports/utilisation?"
        + query(since=found.since, until=found.until, format="csv"),
    )


def _utilisation_charts(
    t: Words, rows: list[UtilisationRowOut], days: list[book_reports.Utilisation]
) -> list[ClusterChart]:
    parts = [
        Part(t("reports.allocated"), "chart-allocated"),
        Part(t("reports.idle"), "chart-idle"),
        Part(t("reports.down"), "chart-down"),
    ]
    charts = []
    for row in rows:
        buckets = []
        for day in days:
            shaped = {(r.cluster, r.flavor): utilisation_out(r) for r in day.rows}
            each = shaped.get((row.cluster, row.flavor))
            values = (
                [each.allocated_gpu_hours, each.idle_gpu_hours, each.down_gpu_hours]
                if each is not None
                else [0.0, 0.0, 0.0]
            )
            buckets.append(Bucket(t.day(day.since), values))
        chart = stacked_bar_chart(
            t("reports.util_chart_title", cluster=row.cluster, flavor=row.flavor),
            parts,
            buckets,
            y_format=lambda value: t.number(value, 1),
            empty_message=t("reports.no_data"),
            y_label=t("reports.gpu_hours"),
            chart_id=f"util-{_html_id(row.cluster)}-{_html_id(row.flavor)}",
        )
        charts.append(ClusterChart(row.cluster, row.flavor, chart))
    return charts


# -- spend ---------------------------------------------------------------------------------------


@router.get("/reports/spend", response_model=None)
def spend_page(
    request: Request,
    portal: PortalDep,
    by: SpendBy | None = None,
    period: Text = "",
    form: Annotated[str, Query(alias="format", pattern="^(html|csv)$")] = "html",
) -> Response:
    viewer = signed_in(request, portal)
    t = viewer.t
    with portal.books() as books:
        book_reports.require_report_reader(viewer.principal)
        tree = book_reports.spend_tree_report(books, viewer.principal, period or None)
        if form == "csv":
            return csv_response(
                ["level", "kind", "name", "path", "credits", "krw", "jobs"],
                (
                    [n.level, n.kind, n.name, " / ".join(n.path), str(n.credits), n.krw, n.jobs]
                    for n in tree.nodes
                ),
                f"spend-tree-{tree.period}.csv",
            )
        chosen = by or (SpendBy.FUNDER if tree.with_funders else SpendBy.PROGRAM)
        grouped = book_reports.spend_report(books, viewer.principal, chosen, tree.period)
    rows = [spend_out(row) for row in grouped.rows]
    unplaced = t("reports.unplaced")
    chart = bar_chart(
        t("reports.spend_chart_title", by=t(f"reports.by_{chosen.value}"), period=tree.period),
        [(row.name if row.name is not None else unplaced, float(row.credits)) for row in rows],
        value_format=credits_of(t),
        empty_message=t("reports.no_spend"),
        value_label=t("reports.credits"),
        chart_id="spend-chart",
    )
    choices = [each for each in SpendBy if tree.with_funders or each is not SpendBy.FUNDER]
    return render(
        viewer,
        "report_spend.html",
        tree=tree,
        rows=rows,
        by=chosen,
        choices=choices,
        chart=chart,
        unplaced=unplaced,
        tree_csv="/reports/spend?" + query(period=tree.period, format="csv"),
        csv=f"{API}/reports/spend?{query(by=chosen.value, period=tree.period, format='csv')}",
    )


# -- wait times ----------------------------------------------------------------------------------


@router.get("/reports/wait-times")
def wait_times_page(
    request: Request, portal: PortalDep, since: When = "", until: When = ""
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    t = viewer.t
    now = portal.clock()
    start, end = moment(since, now, viewer), moment(until, now, viewer)
    with portal.books() as books:
        book_reports.require_report_reader(viewer.principal)
        found = job_reports.wait_times_report(books, viewer.principal, start, end)
    rows = [wait_out(row) for row in found.rows]
    bars = [
        (f"{row.program} · {label}", seconds)
        for row in rows
        for label, seconds in (
            ("p50", row.p50_seconds),
            ("p90", row.p90_seconds),
            ("p99", row.p99_seconds),
        )
    ]
    chart = bar_chart(
        t("reports.wait_chart_title"),
        bars,
        value_format=t.duration,
        empty_message=t("reports.no_waits"),
        value_label=t("reports.wait_axis"),
        chart_id="wait-chart",
    )
    return render(
        viewer,
        "report_wait_times.html",
        report=found,
        rows=rows,
        chart=chart,
        since=since,
        until=until,
        csv=f"{API}/reports/wait-times?"
        + query(since=found.since, until=found.until, format="csv"),
    )


# -- the ledger and the audit log -----------------------------------------------------------------


@router.get("/ledger")
def ledger_page(
    request: Request,
    portal: PortalDep,
    account: Text = "",
    period: Text = "",
    kind: Annotated[list[EntryKind] | None, Query()] = None,
    since: When = "",
    until: When = "",
    offset: Offset = 0,
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    now = portal.clock()
    start, end = moment(since, now, viewer), moment(until, now, viewer)
    with portal.books() as books:
        entries, total = visible_entries(
            books,
            viewer.principal,
            account=account or None,
            kinds=kind or (),
            period=period or None,
            since=start,
            until=end,
            limit=PAGE_SIZE,
            offset=offset,
        )
    items = [entry_out(entry) for entry in entries]
    kinds = [each.value for each in kind or ()]
    filters = {"account": account, "period": period, "kind": kinds, "since": since, "until": until}
    api = {"account": account, "period": period, "kind": kinds, "since": start, "until": end}
    return render(
        viewer,
        "ledger.html",
        entries=items,
        paging=Paging(total, PAGE_SIZE, offset, "/ledger", _pairs(filters)),
        kinds=list(EntryKind),
        chosen_kinds=set(kinds),
        account=account,
        period=period,
        since=since,
        until=until,
        csv=f"{API}/ledger?" + query(**api, limit=MAX_PAGE, offset=offset, format="csv"),
    )


@router.get("/audit")
def audit_page(
    request: Request,
    portal: PortalDep,
    actor: Text = "",
    action: Text = "",
    since: When = "",
    offset: Offset = 0,
) -> HTMLResponse:
    viewer = signed_in(request, portal)
    start = moment(since, portal.clock(), viewer)
    with portal.books() as books:
        entries, total = audit_entries(
            books,
            viewer.principal,
            actor=actor or None,
            action=action or None,
            since=start,
            limit=PAGE_SIZE,
            offset=offset,
        )
    items = [audit_out(entry) for entry in entries]
    filters = {"actor": actor, "action": action, "since": since}
    api = {"actor": actor, "action": action, "since": start}
    return render(
        viewer,
        "audit.html",
        entries=items,
        paging=Paging(total, PAGE_SIZE, offset, "/audit", _pairs(filters)),
        actor=actor,
        action=action,
        since=since,
        compact=_compact,
        csv=f"{API}/audit?" + query(**api, limit=MAX_PAGE, offset=offset, format="csv"),
    )


def _pairs(values: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        for each in value if isinstance(value, list) else [value]:
            if each:
                pairs.append((key, str(each)))
    return tuple(pairs)


def _compact(value: dict[str, Any] | None) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)
