"""The admin's catalogue pages: funders and their contributions (recorded here, and the pool's
credits appropriated to programs), periods, flavors and the versioned rate card, and clusters
with their inventory, tenancy, burst budgets and what their GPUs are doing now.

An admin changes the catalogue here; an auditor reads every page but is shown no form; anyone
else is refused (the ``*_records`` use cases of ``quotas.cases.catalog`` decide, as the additions'
use cases decide who may add). A form is read into the API's own request model (``NewFunder``,
``NewCluster``, ...), so a page accepts exactly what ``/api/v1`` accepts, and goes through the
same use case; a refusal shows the form again with what was typed and why (422).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, ValidationError

from jobs.repository import JobRepository
from portal.api.catalog import (
    ALLOCATED_STATES,
    BurstBudgetChange,
    ClusterOut,
    NewAppropriation,
    NewCluster,
    NewContribution,
    NewFlavor,
    NewFunder,
    NewPeriod,
    NewRateCard,
    cluster_out,
)
from portal.api.common import Format, ReportFormat, Segment, csv_response
from portal.deps import PortalDep
from portal.pages.charts import Bucket, Part, stacked_bar_chart
from portal.pages.render import Csrf, Viewer, check_form, render, see_other, signed_in
from portal.problems import field_errors
from portal.scopes import MANAGE, READ
from quotas.admission import SiteKind
from quotas.cases import catalog
from quotas.errors import BooksError, Forbidden, InvalidInput
from quotas.flavors import Flavor
from quotas.funding import Funder, FunderKind, Period
from quotas.inventory import BackendKind, Inventory, Tenancy
from quotas.quantities import Credits, Rate

router = APIRouter(include_in_schema=False)

SCOPES = {
    ("GET", "/admin"): READ,
    ("GET", "/admin/funders"): READ,
    ("POST", "/admin/funders"): MANAGE,
    ("POST", "/admin/funders/contributions"): MANAGE,
    ("POST", "/admin/funders/appropriations"): MANAGE,
    ("GET", "/admin/periods"): READ,
    ("POST", "/admin/periods"): MANAGE,
    ("GET", "/admin/flavors"): READ,
    ("POST", "/admin/flavors"): MANAGE,
    ("POST", "/admin/rate-cards"): MANAGE,
    ("GET", "/admin/clusters"): READ,
    ("POST", "/admin/clusters"): MANAGE,
    ("POST", "/admin/clusters/{name}/burst-budgets"): MANAGE,
}

Text = Annotated[str, Form(max_length=2000)]
"""A form field as typed; the API's model checks it."""
Texts = Annotated[list[str] | None, Form(max_length=256)]
"""A field repeated once per row of a form's table (a flavor's rate, a node group)."""

M = TypeVar("M", bound=BaseModel)


# -- reading forms the way the API reads bodies ------------------------------------------------


def _valid(model: type[M], fields: Mapping[str, Any]) -> M:
    """``fields`` as the API's request ``model``, or ``InvalidInput`` saying what was wrong,
    field by field, as the pages say a wrong query."""
    try:
        return model.model_validate(dict(fields))
    except ValidationError as error:
        raise InvalidInput(field_errors(error.errors())) from error


def _given(fields: Mapping[str, str]) -> dict[str, str]:
    """The fields filled in: an empty one takes the API's default, as a field left out does."""
    return {name: value for name, value in fields.items() if value.strip()}


def _moment(viewer: Viewer, text: str, what: str) -> datetime | None:
    """A form's date and time, read in the pool's time zone (the one every page shows times
    in) unless it names its own offset; ``None`` when left empty."""
    if not text.strip():
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as error:
        raise InvalidInput(f"{what}: {text!r} is not a date and time") from error
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=viewer.t.timezone)


def _columns(*columns: Sequence[str] | None) -> list[list[str]]:
    """A form table's columns (one value per row each); a table whose columns differ in length
    was not sent by its page."""
    lists = [list(column or ()) for column in columns]
    if len({len(each) for each in lists}) > 1:
        raise InvalidInput("the form's table lost some of its cells; reload the page")
    return lists


def _pairs(first: Sequence[str] | None, second: Sequence[str] | None) -> list[tuple[str, str]]:
    """The rows of a form table of two columns."""
    left, right = _columns(first, second)
    return list(zip(left, right, strict=True))


def _triples(
    first: Sequence[str] | None, second: Sequence[str] | None, third: Sequence[str] | None
) -> list[tuple[str, str, str]]:
    """The rows of a form table of three columns."""
    one, two, three = _columns(first, second, third)
    return list(zip(one, two, three, strict=True))


def _rate(text: str, what: str) -> Rate:
    try:
        return Rate.of(text)
    except ValueError as error:
        raise InvalidInput(f"{what}: {error}") from error


def _credits(text: str, what: str) -> Credits:
    try:
        return Credits.of(text)
    except ValueError as error:
        raise InvalidInput(f"{what}: {error}") from error


def _refused(error: BooksError) -> str:
    """A refusal the form shows again; a refusal of the person (not their input) is a 403
    page instead."""
    if isinstance(error, Forbidden):
        raise error
    return str(error)


# -- the overview ------------------------------------------------------------------------------


@router.get("/admin")
def overview(request: Request, portal: PortalDep) -> HTMLResponse:
    viewer = signed_in(request, portal)
    with portal.books() as books:
        counts = catalog.catalogue_counts(books, viewer.principal)
        in_use = JobRepository(books.session).gpus_in_use(ALLOCATED_STATES)
    allocated = sum(in_use.values())
    return render(
        viewer,
        "admin.html",
        counts=counts,
        allocated=allocated,
        idle=max(counts.gpus - allocated - counts.down, 0),
    )


# -- funders -----------------------------------------------------------------------------------


FUNDER_CSV = ["funder", "display_name", "kind", "krw_per_credit", "period", "contributed"]


@router.get("/admin/funders", response_model=None)
def funders_page(request: Request, portal: PortalDep, form: Format = ReportFormat.JSON) -> Response:
    """With ``?format=csv``, one line per funder and period it contributed in."""
    viewer = signed_in(request, portal)
    if form is ReportFormat.CSV:
        with portal.books() as books:
            records = catalog.funder_records(books, viewer.principal)
        return csv_response(
            FUNDER_CSV,
            (
                [
                    record.funder.name,
                    record.funder.display_name,
                    record.funder.kind.value,
                    record.funder.krw_per_credit,
                    period,
                    str(amount),
                ]
                for record in records
                for period, amount in record.contributed.items()
            ),
            "funders.csv",
        )
    return _funders(portal, viewer)


def _funders(
    portal: PortalDep,
    viewer: Viewer,
    draft: Mapping[str, str] | None = None,
    error: str | None = None,
    contribution_draft: Mapping[str, str] | None = None,
    contribution_error: str | None = None,
    appropriation_draft: Mapping[str, str] | None = None,
    appropriation_error: str | None = None,
) -> HTMLResponse:
    with portal.books() as books:
        records = catalog.funder_records(books, viewer.principal)
        period_records = catalog.period_records(books, viewer.principal)
        funds = catalog.pool_funds(books, viewer.principal)
    periods = [each.period.name for each in period_records]
    shown = [name for name in periods if any(name in each.contributed for each in records)]
    open_periods = [each.period.name for each in period_records if each.expired_at is None]
    current = next((each.period.name for each in period_records if each.current), None)
    refused = error or contribution_error or appropriation_error
    return render(
        viewer,
        "admin_funders.html",
        status=422 if refused else 200,
        records=records,
        periods=shown,
        kinds=list(FunderKind),
        draft=draft or {},
        error=error,
        funds=funds,
        open_periods=open_periods,
        default_period=current or (open_periods[-1] if open_periods else ""),
        programs=[each.program for each in funds.programs] if funds else [],
        contribution_draft=contribution_draft or {},
        contribution_error=contribution_error,
        appropriation_draft=appropriation_draft or {},
        appropriation_error=appropriation_error,
    )


@router.post("/admin/funders")
def add_funder(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    name: Text = "",
    display_name: Text = "",
    kind: Text = "",
    krw_per_credit: Text = "",
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = {
        "name": name,
        "display_name": display_name,
        "kind": kind,
        "krw_per_credit": krw_per_credit,
    }
    try:
        body = _valid(NewFunder, _given(draft))
        funder = Funder(body.name, body.display_name, body.kind, body.krw_per_credit)
        with portal.books() as books:
            catalog.add_funder(books, viewer.principal, funder)
    except BooksError as error:
        return _funders(portal, viewer, draft, _refused(error))
    return see_other("/admin/funders")


@router.post("/admin/funders/contributions")
def contribute(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    funder: Annotated[str, Form(max_length=200)] = "",
    period: Text = "",
    credits: Text = "",
    reason: Text = "",
) -> Response:
    """Record a funder's contribution as ``POST /api/v1/funders/{name}/contributions`` does."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = {"funder": funder, "period": period, "credits": credits, "reason": reason}
    try:
        body = _valid(
            NewContribution, _given({"period": period, "credits": credits, "reason": reason})
        )
        amount = _credits(body.credits, "credits")
        with portal.books() as books:
            catalog.contribute(books, viewer.principal, funder, body.period, amount, body.reason)
    except BooksError as error:
        return _funders(
            portal, viewer, contribution_draft=draft, contribution_error=_refused(error)
        )
    return see_other("/admin/funders#contributions")


@router.post("/admin/funders/appropriations")
def appropriate(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    program: Annotated[str, Form(max_length=200)] = "",
    period: Text = "",
    credits: Text = "",
    reason: Text = "",
    funder: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    """Appropriate the pool's credits to a program as ``POST /api/v1/accounts/{program}/
    appropriations`` does; no funder: funder by funder."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = {
        "program": program,
        "period": period,
        "credits": credits,
        "reason": reason,
        "funder": funder,
    }
    try:
        body = _valid(
            NewAppropriation,
            _given({"period": period, "credits": credits, "reason": reason, "funder": funder}),
        )
        amount = _credits(body.credits, "credits")
        with portal.books() as books:
            catalog.appropriate(
                books, viewer.principal, program, body.period, amount, body.reason, body.funder
            )
    except BooksError as error:
        return _funders(
            portal, viewer, appropriation_draft=draft, appropriation_error=_refused(error)
        )
    return see_other("/admin/funders#appropriations")


# -- periods -----------------------------------------------------------------------------------


def _periods(
    portal: PortalDep,
    viewer: Viewer,
    draft: Mapping[str, str] | None = None,
    error: str | None = None,
) -> HTMLResponse:
    with portal.books() as books:
        records = catalog.period_records(books, viewer.principal)
    return render(
        viewer,
        "admin_periods.html",
        status=422 if error else 200,
        records=records,
        draft=draft or {},
        error=error,
    )


@router.get("/admin/periods")
def periods_page(request: Request, portal: PortalDep) -> HTMLResponse:
    viewer = signed_in(request, portal)
    return _periods(portal, viewer)


@router.post("/admin/periods")
def add_period(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    name: Text = "",
    starts_at: Text = "",
    ends_at: Text = "",
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = {"name": name, "starts_at": starts_at, "ends_at": ends_at}
    try:
        fields: dict[str, Any] = _given({"name": name})
        for what, text in (("starts_at", starts_at), ("ends_at", ends_at)):
            moment = _moment(viewer, text, what)
            if moment is not None:
                fields[what] = moment
        body = _valid(NewPeriod, fields)
        period = Period(
            body.name,
            catalog.in_utc(body.starts_at, "starts_at"),
            catalog.in_utc(body.ends_at, "ends_at"),
        )
        with portal.books() as books:
            catalog.add_period(books, viewer.principal, period)
    except BooksError as error:
        return _periods(portal, viewer, draft, _refused(error))
    return see_other("/admin/periods")


# -- flavors and the rate card -----------------------------------------------------------------


@dataclass(frozen=True)
class RateCardRow:
    """One version of the rate card as the page lists it."""

    version: int
    effective_from: datetime
    rates: Mapping[str, Rate]
    created_by: str
    note: str
    in_force: bool
    scheduled: bool
    """Published to take effect later."""


def _rate_card_rows(records: catalog.FlavorRecords, now: datetime) -> list[RateCardRow]:
    rows = []
    for card in reversed(records.rate_cards):
        created_by, note = records.notes.get(card.version, ("", ""))
        rows.append(
            RateCardRow(
                card.version,
                card.effective_from,
                dict(sorted(card.rates.items())),
                created_by,
                note,
                card.version == records.in_force,
                card.effective_from > now,
            )
        )
    return rows


def _flavors(
    portal: PortalDep,
    viewer: Viewer,
    flavor_draft: Mapping[str, str] | None = None,
    flavor_error: str | None = None,
    card_draft: Mapping[str, Any] | None = None,
    card_error: str | None = None,
) -> HTMLResponse:
    with portal.books() as books:
        records = catalog.flavor_records(books, viewer.principal)
        now = books.clock()
    rows = _rate_card_rows(records, now)
    latest = rows[0].rates if rows else {}
    if card_draft is None:
        card_draft = {
            "rates": {name: str(rate) for name, rate in latest.items()},
            "effective_from": "",
            "note": "",
        }
    return render(
        viewer,
        "admin_flavors.html",
        status=422 if flavor_error or card_error else 200,
        flavors=records.flavors,
        cards=rows,
        latest=latest,
        in_force=records.in_force,
        flavor_draft=flavor_draft or {},
        flavor_error=flavor_error,
        card_draft=card_draft,
        card_error=card_error,
    )


@router.get("/admin/flavors", response_model=None)
def flavors_page(request: Request, portal: PortalDep, form: Format = ReportFormat.JSON) -> Response:
    """With ``?format=csv``, every version of the rate card: one line per version and flavor."""
    viewer = signed_in(request, portal)
    if form is ReportFormat.CSV:
        with portal.books() as books:
            records = catalog.flavor_records(books, viewer.principal)
        return csv_response(
            ["version", "effective_from", "flavor", "rate", "created_by", "note"],
            (
                [
                    card.version,
                    card.effective_from.isoformat(),
                    flavor,
                    str(rate),
                    *records.notes.get(card.version, ("", "")),
                ]
                for card in records.rate_cards
                for flavor, rate in sorted(card.rates.items())
            ),
            "rate-cards.csv",
        )
    return _flavors(portal, viewer)


@router.post("/admin/flavors")
def add_flavor(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    name: Text = "",
    memory_gb: Text = "",
    relative_throughput: Text = "",
    ray_resource: Text = "",
    kubernetes_resource: Text = "",
    throughput_source: Text = "",
    named_only: Annotated[bool, Form()] = False,
) -> Response:
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = {
        "name": name,
        "memory_gb": memory_gb,
        "relative_throughput": relative_throughput,
        "ray_resource": ray_resource,
        "kubernetes_resource": kubernetes_resource,
        "throughput_source": throughput_source,
        "named_only": "true" if named_only else "",
    }
    try:
        body = _valid(NewFlavor, {**_given(draft), "named_only": named_only})
        flavor = Flavor(
            body.name,
            body.memory_gb,
            body.relative_throughput,
            body.ray_resource,
            body.kubernetes_resource,
            body.named_only,
        )
        with portal.books() as books:
            catalog.add_flavor(books, viewer.principal, flavor, body.throughput_source)
    except BooksError as error:
        return _flavors(portal, viewer, flavor_draft=draft, flavor_error=_refused(error))
    return see_other("/admin/flavors")


@router.post("/admin/rate-cards")
def publish_rate_card(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    flavor: Texts = None,
    rate: Texts = None,
    effective_from: Text = "",
    note: Text = "",
) -> Response:
    """Publish a new version: the rate of each flavor (one left empty is left off the card,
    which the books then refuse, as the API does) from ``effective_from`` (empty: now)."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft: dict[str, Any] = {"rates": {}, "effective_from": effective_from, "note": note}
    try:
        rows = _pairs(flavor, rate)
        draft["rates"] = dict(rows)
        fields: dict[str, Any] = {
            "rates": {name: text.strip() for name, text in rows if text.strip()},
            "note": note,
        }
        start = _moment(viewer, effective_from, "effective_from")
        if start is not None:
            fields["effective_from"] = start
        body = _valid(NewRateCard, fields)
        rates = {name: _rate(text, f"rates.{name}") for name, text in body.rates.items()}
        with portal.books() as books:
            catalog.publish_rate_card(
                books, viewer.principal, rates, body.effective_from, body.note
            )
    except BooksError as error:
        return _flavors(portal, viewer, card_draft=draft, card_error=_refused(error))
    return see_other("/admin/flavors#rate-cards")


# -- clusters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterRow:
    """A cluster as its page shows it: the API's view of it (its node groups' allocated, down
    and idle GPUs counted as ``GET /api/v1/clusters`` counts them)."""

    out: ClusterOut

    @property
    def burst_target(self) -> bool:
        return self.out.site is not SiteKind.NATIONAL


def _clusters(
    portal: PortalDep,
    viewer: Viewer,
    draft: Mapping[str, Any] | None = None,
    error: str | None = None,
    budget_draft: Mapping[str, str] | None = None,
    budget_error: str | None = None,
) -> HTMLResponse:
    with portal.books() as books:
        records = catalog.cluster_records(books, viewer.principal)
        in_use = JobRepository(books.session).gpus_in_use(ALLOCATED_STATES)
    rows = [ClusterRow(cluster_out(view, in_use, records.down)) for view in records.clusters]
    t = viewer.t
    chart = stacked_bar_chart(
        t("admin.clusters.chart_title"),
        [
            Part(t("admin.clusters.allocated"), "chart-allocated"),
            Part(t("admin.clusters.idle"), "chart-idle"),
            Part(t("admin.clusters.down"), "chart-down"),
        ],
        [
            Bucket(f"{row.out.name} · {group.flavor}", (group.allocated, group.idle, group.down))
            for row in rows
            for group in row.out.node_groups
        ],
        y_format=lambda value: t.number(value),
        y_label=t("admin.clusters.gpus"),
        empty_message=t("admin.clusters.none"),
        description=t("admin.clusters.chart_description"),
        chart_id="cluster-gpus",
    )
    totals = {
        part: sum(getattr(group, part) for row in rows for group in row.out.node_groups)
        for part in ("total", "allocated", "idle", "down")
    }
    return render(
        viewer,
        "admin_clusters.html",
        status=422 if error or budget_error else 200,
        rows=rows,
        chart=chart,
        totals=totals,
        flavors=records.flavors,
        programs=records.programs,
        owners=records.owners,
        backends=list(BackendKind),
        sites=list(SiteKind),
        tenancies=list(Tenancy),
        draft=draft or {},
        error=error,
        budget_draft=budget_draft or {},
        budget_error=budget_error,
    )


@router.get("/admin/clusters")
def clusters_page(request: Request, portal: PortalDep) -> HTMLResponse:
    viewer = signed_in(request, portal)
    return _clusters(portal, viewer)


@router.post("/admin/clusters")
def add_cluster(
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    name: Text = "",
    backend: Text = "",
    site: Text = "",
    address: Text = "",
    price_multiplier: Text = "",
    tenancy: Text = "",
    dedicated_to: Text = "",
    provisioning_deadline_seconds: Text = "",
    provisioning_class: Text = "",
    inventory_flavor: Texts = None,
    inventory_nodes: Texts = None,
    inventory_gpus_per_node: Texts = None,
    budget_program: Texts = None,
    budget_credits: Texts = None,
) -> Response:
    """Declare a cluster as ``POST /api/v1/clusters`` does: a node group per flavor row whose
    nodes or GPUs per node are filled in, a burst budget per program row given credits."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    single = {
        "name": name,
        "backend": backend,
        "site": site,
        "address": address,
        "price_multiplier": price_multiplier,
        "tenancy": tenancy,
        "dedicated_to": dedicated_to,
        "provisioning_deadline_seconds": provisioning_deadline_seconds,
        "provisioning_class": provisioning_class,
    }
    draft: dict[str, Any] = {**single, "inventory": {}, "budgets": {}}
    try:
        groups = _triples(inventory_flavor, inventory_nodes, inventory_gpus_per_node)
        budgets = _pairs(budget_program, budget_credits)
        draft["inventory"] = {flavor: (nodes, gpus) for flavor, nodes, gpus in groups}
        draft["budgets"] = dict(budgets)
        fields: dict[str, Any] = _given(single)
        fields["inventory"] = [
            {"flavor": flavor, "nodes": nodes.strip(), "gpus_per_node": gpus.strip()}
            for flavor, nodes, gpus in groups
            if nodes.strip() or gpus.strip()
        ]
        fields["burst_budgets"] = {
            program: credits.strip() for program, credits in budgets if credits.strip()
        }
        body = _valid(NewCluster, fields)
        price = _rate(body.price_multiplier, "price_multiplier")
        deadline = body.provisioning_deadline_seconds
        with portal.books() as books:
            catalog.add_cluster(
                books,
                viewer.principal,
                body.name,
                backend=body.backend,
                site=body.site,
                inventory=tuple(
                    Inventory(item.flavor, item.nodes, item.gpus_per_node)
                    for item in body.inventory
                ),
                address=body.address,
                price_multiplier_milli=price.milli_per_gpu_hour,
                tenancy=body.tenancy,
                dedicated_to=body.dedicated_to,
                provisioning_class=body.provisioning_class,
                burst_budgets=tuple(
                    (program, _credits(text, f"burst_budgets.{program}"))
                    for program, text in sorted(body.burst_budgets.items())
                ),
                **({} if deadline is None else {"provisioning_deadline_seconds": deadline}),
            )
    except BooksError as error:
        return _clusters(portal, viewer, draft, _refused(error))
    return see_other("/admin/clusters")


@router.post("/admin/clusters/{name}/burst-budgets")
def set_burst_budget(
    name: Segment,
    request: Request,
    portal: PortalDep,
    csrf: Csrf,
    program: Annotated[str, Form(max_length=200)] = "",
    credits: Text = "",
) -> Response:
    """Set ``program``'s burst budget at ``name`` as ``PUT /api/v1/clusters/{name}/burst-budgets/
    {program}`` does; empty credits lift the cap."""
    viewer = signed_in(request, portal)
    check_form(request, csrf)
    draft = {"cluster": name, "program": program, "credits": credits}
    try:
        body = _valid(BurstBudgetChange, {"credits": credits.strip() or None})
        budget = _credits(body.credits, "credits") if body.credits is not None else None
        with portal.books() as books:
            catalog.set_burst_budget(books, viewer.principal, name, program, budget)
    except BooksError as error:
        return _clusters(portal, viewer, budget_draft=draft, budget_error=_refused(error))
    return see_other(f"/admin/clusters#cluster-{name}")
