"""The pool's catalogue: flavors, rate cards, clusters, periods, funders and their
contributions, the pool's funds, and quotes.

Everyone signed in may read the catalogue and ask for a quote; only an admin (with the
``manage`` scope) adds flavors, clusters, periods and funders, sets burst budgets or publishes
a rate card: the use cases' rule (``quotas.cases.catalog``). Each addition goes through
``Books``, which writes its audit entry. A cluster's address is shown to admins only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import AwareDatetime, Field, model_validator

from jobs.model import JobState, check_time_limit
from jobs.repository import JobRepository
from portal.api.accounts import (
    BalancesOut,
    CreditsText,
    PeriodQuery,
    balances_out,
    credits_of,
)
from portal.api.common import (
    CSV_ANSWER,
    NO_NUL,
    Format,
    ReportFormat,
    Segment,
    Strict,
    csv_response,
    flat_cells,
)
from portal.api.jobs import QuoteLineOut, quote_out
from portal.api.ledger import EntryOut, entry_out
from portal.deps import PortalDep, PrincipalDep
from portal.problems import Problem
from quotas.admission import SiteKind
from quotas.cases import catalog
from quotas.cases.catalog import ClusterView, in_utc, job_quote, rate_card_in_force
from quotas.errors import InvalidInput, NotFound
from quotas.flavors import Flavor, RateCard
from quotas.funding import Funder, FunderKind, Period
from quotas.inventory import BackendKind, Inventory, Tenancy
from quotas.quantities import Credits, Rate, parse_duration

router = APIRouter(tags=["catalog"])

ALLOCATED_STATES = (JobState.STARTING, JobState.RUNNING)
"""A rate card may take effect a little before it arrives (clock skew), never further back."""
Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9.-]*$")]


# -- flavors and rate cards --------------------------------------------------------------------


NAMED_ONLY = (
    "Only jobs that name this flavor run on it (a domestic NPU with its vendor's software "
    "stack, not CUDA's): a job that accepts any flavor is never placed there"
)


class FlavorOut(Strict):
    name: str
    memory_gb: int
    relative_throughput: float = Field(description="Training throughput against the reference")
    ray_resource: str
    kubernetes_resource: str
    named_only: bool = Field(description=NAMED_ONLY)
    rate: str | None = Field(description="Credits per GPU-hour on the rate card in force")


class NewFlavor(Strict):
    name: Name
    memory_gb: int = Field(ge=1, le=100_000)
    relative_throughput: float = Field(gt=0, le=1000, allow_inf_nan=False)
    ray_resource: str = Field(default="", max_length=64)
    kubernetes_resource: str = Field(default="nvidia.com/gpu", min_length=1, max_length=128)
    throughput_source: str = Field(default="", max_length=2000)
    named_only: bool = Field(default=False, description=NAMED_ONLY)


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
        named_only=flavor.named_only,
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
        body.named_only,
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
    down: int = Field(
        description="GPUs on nodes out of service now (cordoned, NotReady), as the scheduler's "
        "last health check found them"
    )
    idle: int = Field(description="total - allocated - down (never below 0): free for new work")


BURST_TARGET = "a burst target's (a cluster at a domestic_cloud or foreign_cloud site)"
MultiplierText = Annotated[
    str,
    Field(
        pattern=r"^\d{1,6}(\.\d{1,3})?$",
        max_length=10,
        description='Credits there cost this many times more, e.g. "1.5"',
        examples=["1.5"],
    ),
]


class ClusterOut(Strict):
    name: str
    backend: BackendKind
    site: SiteKind
    address: str | None = Field(
        description="The Ray address or kubeconfig context that reaches it (empty: the embedded "
        "Ray cluster, or the kubeconfig's current context); shown to admins only, null to others"
    )
    price_multiplier: str = Field(description='Credits there cost this many times more, e.g. "1.5"')
    tenancy: Tenancy = Field(
        description="shared: every tenant's jobs run side by side and can see each other; "
        "dedicated: only jobs of `dedicated_to`; per_job: a fresh cluster per job"
    )
    dedicated_to: str | None = None
    provisioning_deadline_seconds: int | None = Field(
        description=f"{BURST_TARGET.capitalize()}: how long its capacity may take to be "
        "provisioned for a job before the job is taken off it; null for a national cluster"
    )
    provisioning_class: str | None = Field(
        description=f"{BURST_TARGET.capitalize()}: the ProvisioningRequest class its cluster "
        "autoscaler serves, asked before a job is placed there; null when it has none"
    )
    burst_budgets: dict[str, str] = Field(
        description=f"{BURST_TARGET.capitalize()}: program -> the most credits its jobs may hold "
        "and spend there in a period (a program not named has no cap there); only the programs "
        "you may see; empty for a national cluster"
    )
    node_groups: list[NodeGroupOut]


class InventoryIn(Strict):
    flavor: Annotated[str, Field(min_length=1, max_length=64)]
    nodes: int = Field(ge=1, le=100_000)
    gpus_per_node: int = Field(ge=1, le=1024)


class NewCluster(Strict):
    name: Name
    backend: BackendKind
    site: SiteKind
    inventory: list[InventoryIn] = Field(
        min_length=1,
        max_length=64,
        description="Nodes of each flavor; a burst target's: the most it scales to",
    )
    address: str = Field(
        default="",
        max_length=500,
        pattern=r"^[!-~]*$",
        description="The Ray address (e.g. http://head:8265) or kubeconfig context (in-cluster: "
        "the cluster gpupool runs in) that reaches it; empty: the embedded Ray cluster, or the "
        "kubeconfig's current context",
    )
    price_multiplier: MultiplierText = "1.0"
    tenancy: Tenancy = Tenancy.SHARED
    dedicated_to: str = Field(
        default="",
        max_length=64,
        description="The organization or program a dedicated cluster belongs to",
    )
    provisioning_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=7 * 86_400,
        description=f"{BURST_TARGET.capitalize()}: how long its capacity may take to be "
        "provisioned for a job before the job is placed elsewhere (default 900)",
    )
    provisioning_class: str = Field(
        default="",
        max_length=253,
        pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?)?$",
        description=f"{BURST_TARGET.capitalize()}: the ProvisioningRequest class its cluster "
        "autoscaler serves (e.g. best-effort-atomic-scale-up.autoscaling.x-k8s.io); empty: none",
    )
    burst_budgets: dict[Name, CreditsText] = Field(
        default_factory=dict,
        max_length=256,
        description=f"{BURST_TARGET.capitalize()}: program -> the most credits its jobs may hold "
        "and spend there in a period",
    )

    @model_validator(mode="after")
    def deadline_of_a_burst_target(self) -> NewCluster:
        if self.provisioning_deadline_seconds is not None and self.site is SiteKind.NATIONAL:
            raise ValueError(
                "only a burst target (a cluster at a domestic_cloud or foreign_cloud site) has "
                "a provisioning deadline"
            )
        return self


class BurstBudgetChange(Strict):
    credits: CreditsText | None = Field(description="None: lift the cap")


def multiplier(milli: int) -> str:
    return str(Rate(milli))


def cluster_out(
    view: ClusterView,
    in_use: Mapping[tuple[str, str], int],
    down: Mapping[tuple[str, str], int] | None = None,
) -> ClusterOut:
    cluster = view.cluster
    groups = []
    for item in cluster.inventory:
        allocated = in_use.get((cluster.name, item.flavor), 0)
        out = min((down or {}).get((cluster.name, item.flavor), 0), item.gpus)
        groups.append(
            NodeGroupOut(
                flavor=item.flavor,
                nodes=item.nodes,
                gpus_per_node=item.gpus_per_node,
                total=item.gpus,
                allocated=allocated,
                down=out,
                idle=max(item.gpus - allocated - out, 0),
            )
        )
    burst = cluster.site is not SiteKind.NATIONAL
    return ClusterOut(
        name=cluster.name,
        backend=cluster.backend,
        site=cluster.site,
        address=view.address,
        price_multiplier=multiplier(cluster.price_multiplier_milli),
        tenancy=cluster.tenancy,
        dedicated_to=cluster.dedicated_to or None,
        provisioning_deadline_seconds=cluster.provisioning_deadline_seconds if burst else None,
        provisioning_class=cluster.provisioning_class or None,
        burst_budgets={program: str(each) for program, each in view.burst_budgets.items()},
        node_groups=groups,
    )


CLUSTER_CSV = [
    *(name for name in ClusterOut.model_fields if name != "node_groups"),
    *NodeGroupOut.model_fields,
]
"""A cluster's CSV columns: one line per cluster and flavor, the cluster's fields first."""


@router.get(
    "/clusters",
    summary="Clusters with their inventory per flavor: allocated, down and idle",
    response_model=list[ClusterOut],
    responses=CSV_ANSWER,
)
def list_clusters(
    portal: PortalDep, principal: PrincipalDep, form: Format = ReportFormat.JSON
) -> list[ClusterOut] | Response:
    """With ``?format=csv``, one line per cluster and flavor (its node group)."""
    with portal.books() as books:
        views = catalog.visible_clusters(books, principal)
        in_use = JobRepository(books.session).gpus_in_use(ALLOCATED_STATES) if views else {}
        down = catalog.gpus_down_now(books) if views else {}
    clusters = [cluster_out(view, in_use, down) for view in views]
    if form is ReportFormat.JSON:
        return clusters
    lines = []
    for cluster in clusters:
        cells = flat_cells(cluster.model_dump(mode="json", exclude={"node_groups"}))
        for group in cluster.node_groups:
            lines.append({**cells, **group.model_dump(mode="json")})
    return csv_response(
        CLUSTER_CSV, ([line.get(name) for name in CLUSTER_CSV] for line in lines), "clusters.csv"
    )


@router.post(
    "/clusters",
    status_code=201,
    summary="Declare a cluster: a Ray or Kubernetes cluster of the pool, or a cloud burst target",
    description="The cluster joins the books at once, and every scheduling cycle reads it; the "
    "scheduler builds the backends that reach clusters (Ray and Kubernetes clients) when it "
    "starts, so **a new cluster's backend is built when the scheduler next starts**. Until "
    "then the cluster is in each cycle with nothing free: a job only it could run waits. A "
    "cluster at a domestic_cloud or foreign_cloud site is a burst target: its inventory is the "
    "most it scales to, its credits cost its price multiplier, and only projects that may burst "
    "go there, within their program's burst budget there, if it has one.",
)
def add_cluster(body: NewCluster, portal: PortalDep, principal: PrincipalDep) -> ClusterOut:
    try:
        price = Rate.of(body.price_multiplier)
    except ValueError as error:
        raise Problem(422, f"price_multiplier: {error}") from error
    budgets = tuple(
        (program, credits_of(text, f"burst_budgets.{program}"))
        for program, text in sorted(body.burst_budgets.items())
    )
    deadline = body.provisioning_deadline_seconds
    with portal.books() as books:
        view = catalog.add_cluster(
            books,
            principal,
            body.name,
            backend=body.backend,
            site=body.site,
            inventory=tuple(
                Inventory(item.flavor, item.nodes, item.gpus_per_node) for item in body.inventory
            ),
            address=body.address,
            price_multiplier_milli=price.milli_per_gpu_hour,
            tenancy=body.tenancy,
            dedicated_to=body.dedicated_to,
            provisioning_class=body.provisioning_class,
            burst_budgets=budgets,
            **({} if deadline is None else {"provisioning_deadline_seconds": deadline}),
        )
    return cluster_out(view, {})


@router.put(
    "/clusters/{name}/burst-budgets/{program}",
    summary="Set or lift a program's burst budget at a burst target",
    description="The most credits the program's jobs may hold and spend at this burst target "
    "in a period; null lifts the cap (they burst there within their own credits). A cap below "
    "what the program already holds or spent there stops new bursts; nothing running stops.",
)
def set_burst_budget(
    name: Segment,
    program: Segment,
    body: BurstBudgetChange,
    portal: PortalDep,
    principal: PrincipalDep,
) -> ClusterOut:
    budget = credits_of(body.credits, "credits") if body.credits is not None else None
    with portal.books() as books:
        view = catalog.set_burst_budget(books, principal, name, program, budget)
        in_use = JobRepository(books.session).gpus_in_use(ALLOCATED_STATES)
    return cluster_out(view, in_use)


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


# -- the pool's funds: contributions and appropriations -------------------------------------


class NewContribution(Strict):
    period: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    credits: CreditsText
    reason: str = Field(
        min_length=1, max_length=2000, description="Why: kept with the ledger entry"
    )


class NewAppropriation(Strict):
    period: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    credits: CreditsText
    reason: str = Field(
        min_length=1, max_length=2000, description="Why: kept with the ledger entries"
    )
    funder: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=NO_NUL,
        description="Draw only this funder's credits (default: funder by funder, by name)",
    )


class PostedOut(Strict):
    period: str
    credits: str = Field(description="The credits moved in all")
    entries: list[EntryOut] = Field(
        description="The ledger entries written: one per funder whose credits moved"
    )


class FunderFundsOut(Strict):
    name: str
    contributed: str = Field(description="Credits it contributed in the period, net of reversals")
    unappropriated: str = Field(description="Of those, what the pool holds for appropriation")


class ProgramFundsOut(Strict):
    name: str
    display_name: str
    appropriated: str = Field(description="Credits appropriated to it, net of reversals")
    by_funder: dict[str, str] = Field(description="Funder -> credits appropriated from it")
    balances: BalancesOut = Field(description="Its whole subtree's balances in the period")


class FundsOut(Strict):
    period: str
    unappropriated: str = Field(description="Credits the pool holds for appropriation")
    funders: list[FunderFundsOut]
    programs: list[ProgramFundsOut]


def posted_out(posted: catalog.Posted) -> PostedOut:
    return PostedOut(
        period=posted.period,
        credits=str(posted.amount),
        entries=[entry_out(entry) for entry in posted.entries],
    )


@router.get(
    "/funds",
    summary="The pool's funds in a period: contributed and unappropriated per funder, "
    "appropriated per program (admin and auditor)",
)
def pool_funds(portal: PortalDep, principal: PrincipalDep, period: PeriodQuery = None) -> FundsOut:
    """Default period: the one running now, else the latest."""
    with portal.books() as books:
        funds = catalog.pool_funds(books, principal, period)
        if funds is None:
            raise NotFound("the pool has no period or no accounts yet")
        records = catalog.funder_records(books, principal)
    return FundsOut(
        period=funds.period,
        unappropriated=str(funds.total_unappropriated),
        funders=[
            FunderFundsOut(
                name=record.funder.name,
                contributed=str(record.contributed.get(funds.period, Credits.zero())),
                unappropriated=str(funds.unappropriated.get(record.funder.name, Credits.zero())),
            )
            for record in records
        ],
        programs=[
            ProgramFundsOut(
                name=program.program,
                display_name=program.display_name,
                appropriated=str(program.total),
                by_funder={funder: str(each) for funder, each in program.appropriated.items()},
                balances=balances_out(program.balances),
            )
            for program in funds.programs
        ],
    )


@router.post(
    "/funders/{name}/contributions",
    status_code=201,
    summary="Record a funder's contribution to the pool in a period (admin)",
    description="The pool's unappropriated credits grow by the amount; appropriate them to "
    "programs next. A period whose books are closed takes no contribution (409).",
)
def contribute(
    name: Segment, body: NewContribution, portal: PortalDep, principal: PrincipalDep
) -> PostedOut:
    amount = credits_of(body.credits, "credits")
    with portal.books() as books:
        posted = catalog.contribute(books, principal, name, body.period, amount, body.reason)
        return posted_out(posted)


@router.post(
    "/accounts/{program}/appropriations",
    status_code=201,
    tags=["accounts"],
    summary="Appropriate the pool's credits to a program in a period (admin)",
    description="The pool's unappropriated credits move to the program, funder by funder (by "
    "name) unless `funder` names one. More than the pool (or that funder) holds unappropriated "
    "is refused (409); so is an account that is not a program (422).",
)
def appropriate(
    program: Segment, body: NewAppropriation, portal: PortalDep, principal: PrincipalDep
) -> PostedOut:
    amount = credits_of(body.credits, "credits")
    with portal.books() as books:
        posted = catalog.appropriate(
            books, principal, program, body.period, amount, body.reason, body.funder
        )
        return posted_out(posted)


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
        card, lines = job_quote(books, body.gpus, seconds, body.flavors, body.min_memory_gb)
    return QuoteOut(rate_card_version=card.version, lines=[quote_out(line) for line in lines])
