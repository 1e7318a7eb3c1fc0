"""The pool's catalogue: flavors, rate cards, clusters, periods, funders, and quotes.

Everyone signed in may read the catalogue and ask for a quote; only an admin (with the
``manage`` scope) adds flavors, periods and funders or publishes a rate card: the use cases'
rule (``quotas.cases.catalog``). Each addition goes through ``Books``, which writes its audit
entry.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import AwareDatetime, Field

from jobs.model import JobState, check_time_limit
from jobs.repository import JobRepository
from portal.api.accounts import CreditsText
from portal.api.common import Strict
from portal.api.jobs import QuoteLineOut, quote_out
from portal.deps import PortalDep, PrincipalDep
from portal.problems import Problem
from quotas.admission import SiteKind
from quotas.cases import catalog
from quotas.cases.catalog import in_utc, rate_card_in_force
from quotas.errors import InvalidInput
from quotas.flavors import Flavor, RateCard
from quotas.funding import Funder, FunderKind, Period
from quotas.inventory import BackendKind, Tenancy
from quotas.quantities import Rate, parse_duration
from quotas.quote import quote

router = APIRouter(tags=["catalog"])

ALLOCATED_STATES = (JobState.STARTING, JobState.RUNNING)
"""A rate card may take effect a little before it arrives (clock skew), never further back."""
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$")]


# -- flavors and rate cards --------------------------------------------------------------------


class FlavorOut(Strict):
    name: str
    memory_gb: int
    relative_throughput: float = Field(description="Training throughput against the reference")
    ray_resource: str
    kubernetes_resource: str
    rate: str | None = Field(description="Credits per GPU-hour on the rate card in force")


class NewFlavor(Strict):
    name: Name
    memory_gb: int = Field(ge=1, le=100_000)
    relative_throughput: float = Field(gt=0, le=1000, allow_inf_nan=False)
    ray_resource: str = Field(default="", max_length=64)
    kubernetes_resource: str = Field(default="nvidia.com/gpu", min_length=1, max_length=128)
    throughput_source: str = Field(default="", max_length=2000)


class RateCardOut(Strict):
    version: int
    effective_from: datetime
    rates: dict[str, str] = Field(description="Credits per GPU-hour of each flavor")
    created_by: str
    note: str


class NewRateCard(Strict):
    effective_from: AwareDatetime | None = Field(default=None, description="Default: now")
    rates: dict[Annotated[str, Field(max_length=64)], CreditsText] = Field(max_length=256)
    note: str = Field(default="", max_length=2000)


def flavor_out(flavor: Flavor, card: RateCard | None) -> FlavorOut:
    rate = card.rates.get(flavor.name) if card is not None else None
    return FlavorOut(
        name=flavor.name,
        memory_gb=flavor.memory_gb,
        relative_throughput=flavor.relative_throughput,
        ray_resource=flavor.ray_resource,
        kubernetes_resource=flavor.kubernetes_resource,
        rate=str(rate) if rate is not None else None,
    )


def rate_card_out(card: RateCard, notes: dict[int, tuple[str, str]]) -> RateCardOut:
    created_by, note = notes.get(card.version, ("", ""))
    return RateCardOut(
        version=card.version,
        effective_from=card.effective_from,
        rates={flavor: str(rate) for flavor, rate in sorted(card.rates.items())},
        created_by=created_by,
        note=note,
    )


@router.get("/flavors", summary="Flavors of accelerator in the pool, with their rates now")
def list_flavors(portal: PortalDep, principal: PrincipalDep) -> list[FlavorOut]:
    with portal.books() as books:
        flavors = books.flavors.all()
        try:
            card: RateCard | None = books.rate_card()
        except InvalidInput:
            card = None
    return [flavor_out(flavor, card) for flavor in flavors.values()]


@router.post("/flavors", status_code=201, summary="Add a flavor (price it on a new rate card)")
def add_flavor(body: NewFlavor, portal: PortalDep, principal: PrincipalDep) -> FlavorOut:
    flavor = Flavor(
        body.name,
        body.memory_gb,
        body.relative_throughput,
        body.ray_resource,
        body.kubernetes_resource,
    )
    with portal.books() as books:
        catalog.add_flavor(books, principal, flavor, body.throughput_source)
    return flavor_out(flavor, None)


@router.get("/rate-cards", summary="Every version of the rate card, oldest first")
def list_rate_cards(portal: PortalDep, principal: PrincipalDep) -> list[RateCardOut]:
    with portal.books() as books:
        cards = books.flavors.rate_cards()
        notes = books.flavors.rate_card_notes()
    return [rate_card_out(card, notes) for card in cards]


@router.get("/rate-cards/current", summary="The rate card in force now")
def current_rate_card(portal: PortalDep, principal: PrincipalDep) -> RateCardOut:
    with portal.books() as books:
        card = rate_card_in_force(books)
        return rate_card_out(card, books.flavors.rate_card_notes())


@router.post(
    "/rate-cards",
    status_code=201,
    summary="Publish a new rate card; jobs admitted before it keep their recorded rate",
)
def publish_rate_card(body: NewRateCard, portal: PortalDep, principal: PrincipalDep) -> RateCardOut:
    rates: dict[str, Rate] = {}
    for flavor, text in body.rates.items():
        try:
            rates[flavor] = Rate.of(text)
        except ValueError as error:
            raise Problem(422, f"rates.{flavor}: {error}") from error
    with portal.books() as books:
        card = catalog.publish_rate_card(books, principal, rates, body.effective_from, body.note)
        return rate_card_out(card, books.flavors.rate_card_notes())


# -- clusters ------------------------------------------------------------------------------


class NodeGroupOut(Strict):
    flavor: str
    nodes: int
    gpus_per_node: int
    total: int
    allocated: int = Field(description="GPUs held by starting or running jobs")
    idle: int = Field(description="total - allocated")


class ClusterOut(Strict):
    name: str
    backend: BackendKind
    site: SiteKind
    price_multiplier: str = Field(description='Credits there cost this many times more, e.g. "1.5"')
    tenancy: Tenancy = Field(
        description="shared: every tenant's jobs run side by side and can see each other; "
        "dedicated: only jobs of `dedicated_to`; per_job: a fresh cluster per job"
    )
    dedicated_to: str | None = None
    node_groups: list[NodeGroupOut]


def multiplier(milli: int) -> str:
    return str(Rate(milli))


@router.get("/clusters", summary="Clusters with their inventory per flavor, allocated and idle")
def list_clusters(portal: PortalDep, principal: PrincipalDep) -> list[ClusterOut]:
    with portal.books() as books:
        clusters = books.clusters.all()
        in_use = JobRepository(books.session).gpus_in_use(ALLOCATED_STATES) if clusters else {}
    answer = []
    for cluster in clusters:
        groups = []
        for item in cluster.inventory:
            allocated = in_use.get((cluster.name, item.flavor), 0)
            groups.append(
                NodeGroupOut(
                    flavor=item.flavor,
                    nodes=item.nodes,
                    gpus_per_node=item.gpus_per_node,
                    total=item.gpus,
                    allocated=allocated,
                    idle=max(item.gpus - allocated, 0),
                )
            )
        answer.append(
            ClusterOut(
                name=cluster.name,
                backend=cluster.backend,
                site=cluster.site,
                price_multiplier=multiplier(cluster.price_multiplier_milli),
                tenancy=cluster.tenancy,
                dedicated_to=cluster.dedicated_to or None,
                node_groups=groups,
            )
        )
    return answer


# -- periods and funders --------------------------------------------------------------------


class PeriodOut(Strict):
    name: str
    starts_at: datetime
    ends_at: datetime
    current: bool
    expired_at: datetime | None = Field(description="When its books were closed")


class NewPeriod(Strict):
    name: Name
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class FunderOut(Strict):
    name: str
    display_name: str
    kind: FunderKind
    krw_per_credit: int


class NewFunder(Strict):
    name: Name
    display_name: str = Field(min_length=1, max_length=200)
    kind: FunderKind
    krw_per_credit: int = Field(default=0, ge=0, le=10**12)


def funder_out(funder: Funder) -> FunderOut:
    return FunderOut(
        name=funder.name,
        display_name=funder.display_name,
        kind=funder.kind,
        krw_per_credit=funder.krw_per_credit,
    )


@router.get("/periods", summary="Allocation periods, oldest first")
def list_periods(portal: PortalDep, principal: PrincipalDep) -> list[PeriodOut]:
    with portal.books() as books:
        now = books.clock()
        return [
            PeriodOut(
                name=period.name,
                starts_at=period.starts_at,
                ends_at=period.ends_at,
                current=period.contains(now),
                expired_at=books.funding.expired_at(period.name),
            )
            for period in books.funding.periods()
        ]


@router.post("/periods", status_code=201, summary="Add an allocation period")
def add_period(body: NewPeriod, portal: PortalDep, principal: PrincipalDep) -> PeriodOut:
    period = Period(body.name, in_utc(body.starts_at, "starts_at"), in_utc(body.ends_at, "ends_at"))
    with portal.books() as books:
        catalog.add_period(books, principal, period)
        current = period.contains(books.clock())
    return PeriodOut(
        name=period.name,
        starts_at=period.starts_at,
        ends_at=period.ends_at,
        current=current,
        expired_at=None,
    )


@router.get("/funders", summary="Funders contributing to the pool")
def list_funders(portal: PortalDep, principal: PrincipalDep) -> list[FunderOut]:
    with portal.books() as books:
        return [funder_out(funder) for funder in books.funding.funders()]


@router.post("/funders", status_code=201, summary="Add a funder")
def add_funder(body: NewFunder, portal: PortalDep, principal: PrincipalDep) -> FunderOut:
    funder = Funder(body.name, body.display_name, body.kind, body.krw_per_credit)
    with portal.books() as books:
        catalog.add_funder(books, principal, funder)
    return funder_out(funder)


# -- quotes ------------------------------------------------------------------------------------


class QuoteRequest(Strict):
    gpus: int = Field(default=1, ge=1, le=100_000)
    time_limit: str = Field(default="1h", max_length=32, description="e.g. 4h, 90m, 2d")
    flavors: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=32)
    min_memory_gb: int | None = Field(default=None, ge=1, le=100_000)


class QuoteOut(Strict):
    rate_card_version: int
    lines: list[QuoteLineOut] = Field(description="Most training per credit first")


@router.post("/quote", summary="What a job would hold on each flavor it accepts")
def quote_job(body: QuoteRequest, portal: PortalDep, principal: PrincipalDep) -> QuoteOut:
    try:
        seconds = parse_duration(body.time_limit)
    except ValueError as error:
        raise Problem(422, f"time_limit: {error}") from error
    check_time_limit(seconds, portal.settings.max_time_limit_seconds)
    with portal.books() as books:
        card = books.rate_card()
        priced = {name: each for name, each in books.flavors.all().items() if name in card.rates}
        lines = quote(priced, card, body.gpus, seconds, body.flavors, body.min_memory_gb)
    return QuoteOut(rate_card_version=card.version, lines=[quote_out(line) for line in lines])
