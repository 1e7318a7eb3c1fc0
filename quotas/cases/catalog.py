"""Use cases of the pool's catalogue: flavors, rate cards, clusters, periods and funders.

Everyone signed in reads the catalogue; only an admin, with the ``manage`` scope, adds to it.
Each addition goes through ``Books``, which writes its audit entry. A cluster is read as its
reader may see it (``ClusterView``): where it is reached is an admin's to know. The catalogue
as its keepers read it (``*_records``: what each funder contributed, when each period's books
closed, every rate card's publisher) is for admin and auditor only. The pool's funds move here
too: an admin records a funder's contribution to the pool and appropriates the pool's credits
to a program (``contribute``, ``appropriate``), each a ledger movement with its reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quotas.access import Principal
from quotas.accounts import AccountKind, AccountTree, with_article
from quotas.cases import require, require_admin
from quotas.db.repositories import Entry
from quotas.errors import InvalidInput, NotFound
from quotas.flavors import Flavor, RateCard
from quotas.funding import Funder, Period
from quotas.inventory import ClusterSpec
from quotas.ledger import AccountBalances, Bucket, EntryKind, Pocket
from quotas.quantities import Credits, Rate
from quotas.quote import QuoteLine, quote
from quotas.service import Books


@dataclass(frozen=True, slots=True)
class ClusterView:
    """A cluster as one principal may see it."""

    cluster: ClusterSpec
    address: str | None
    """The kubeconfig context or Ray address that reaches it: infrastructure, an admin's only
    (``None`` for everyone else)."""
    burst_budgets: Mapping[str, Credits]
    """The burst budgets of the programs the principal may see: every program for an admin or
    an auditor, else those they manage or whose projects they belong to."""


def in_utc(moment: datetime, what: str) -> datetime:
    """The same moment in UTC, as the books store every time; one outside the calendar there is
    refused, naming ``what``."""
    try:
        return moment.astimezone(UTC)
    except OverflowError as error:
        raise InvalidInput(f"{what}: out of range") from error


def rate_card_in_force(books: Books) -> RateCard:
    """The rate card in force now; "not found" before the first one takes effect."""
    try:
        return books.rate_card()
    except InvalidInput as error:
        raise NotFound(str(error)) from error


def job_quote(
    books: Books,
    gpus: int,
    seconds: int,
    flavors: Sequence[str],
    min_memory_gb: int | None = None,
) -> tuple[RateCard, list[QuoteLine]]:
    """What a job of ``gpus`` for ``seconds`` would hold on each flavor it accepts, on the rate
    card in force (most training per credit first); anyone signed in may ask."""
    card = books.rate_card()
    priced = {name: each for name, each in books.flavors.all().items() if name in card.rates}
    return card, quote(priced, card, gpus, seconds, flavors, min_memory_gb)


def add_flavor(books: Books, principal: Principal, flavor: Flavor, throughput_source: str) -> None:
    """Add a flavor (priced on a later rate card); ``throughput_source`` says where its relative
    throughput was measured."""
    require_admin(principal, "add flavors")
    books.add_flavor(flavor, throughput_source, actor=principal.user)


def publish_rate_card(
    books: Books,
    principal: Principal,
    rates: Mapping[str, Rate],
    effective_from: datetime | None = None,
    note: str = "",
) -> RateCard:
    """Publish a new rate card taking effect at ``effective_from`` (default: now); jobs admitted
    before it keep their recorded rate."""
    require_admin(principal, "publish rate cards")
    start = in_utc(effective_from, "effective_from") if effective_from else books.clock()
    return books.publish_rate_card(rates, start, principal.user, note)


def add_period(books: Books, principal: Principal, period: Period) -> None:
    """Add an allocation period."""
    require_admin(principal, "add periods")
    books.add_period(period, actor=principal.user)


def add_funder(books: Books, principal: Principal, funder: Funder) -> None:
    """Add a funder contributing to the pool."""
    require_admin(principal, "add funders")
    books.add_funder(funder, actor=principal.user)


def cluster_view(principal: Principal, tree: AccountTree, cluster: ClusterSpec) -> ClusterView:
    """``cluster`` as ``principal`` may see it."""
    if principal.reads_everything:
        budgets = dict(cluster.burst_budgets)
    else:
        programs = set(principal.programs) | {
            tree.path(project)[1].name
            for project in principal.projects
            if project in tree and len(tree.path(project)) > 1
        }
        budgets = {name: each for name, each in cluster.burst_budgets if name in programs}
    return ClusterView(cluster, cluster.address if principal.is_admin else None, budgets)


def visible_clusters(books: Books, principal: Principal) -> list[ClusterView]:
    """Every cluster, as the principal may see it, by name."""
    tree = books.tree()
    return [cluster_view(principal, tree, cluster) for cluster in books.clusters.all()]


def add_cluster(books: Books, principal: Principal, name: str, **settings: Any) -> ClusterView:
    """Declare the cluster ``name``; ``settings`` are its other fields (``ClusterSpec``'s),
    checked only once the principal may add clusters. The scheduler places work on it once it
    has a backend for it."""
    require_admin(principal, "add clusters")
    cluster = ClusterSpec(name=name, **settings)
    books.add_cluster(cluster, actor=principal.user)
    return cluster_view(principal, books.tree(), cluster)


def set_burst_budget(
    books: Books, principal: Principal, cluster: str, program: str, budget: Credits | None
) -> ClusterView:
    """Cap what ``program`` holds and spends at the burst target ``cluster`` in a period
    (``None`` lifts the cap)."""
    require_admin(principal, "set burst budgets")
    changed = books.set_burst_budget(cluster, program, budget, actor=principal.user)
    return cluster_view(principal, books.tree(), changed)


# -- the catalogue as its admins and auditors read it ------------------------------------------


@dataclass(frozen=True, slots=True)
class FunderRecord:
    """A funder with the credits it put into the pool in each period, net of reversals."""

    funder: Funder
    contributed: Mapping[str, Credits]
    """Period -> credits contributed there (only the periods it contributed in)."""


@dataclass(frozen=True, slots=True)
class PeriodRecord:
    period: Period
    current: bool
    expired_at: datetime | None
    """When its books were closed; ``None`` while they are open."""


@dataclass(frozen=True, slots=True)
class FlavorRecords:
    """The flavors and every version of the rate card, oldest first."""

    flavors: list[Flavor]
    rate_cards: list[RateCard]
    notes: Mapping[int, tuple[str, str]]
    """Version -> (who published it, their note)."""
    in_force: int | None
    """The version in force now; ``None`` before the first takes effect."""


@dataclass(frozen=True, slots=True)
class ClusterRecords:
    """Every cluster as its reader may see it, the GPUs down now, and the names a change of
    the clusters may use."""

    clusters: list[ClusterView]
    down: Mapping[tuple[str, str], int]
    """GPUs out of service now per (cluster, flavor) (``gpus_down_now``)."""
    flavors: list[str]
    programs: list[str]
    """Programs: who may hold a burst budget."""
    owners: list[str]
    """Organizations and programs: whom a cluster may be dedicated to."""


@dataclass(frozen=True, slots=True)
class CatalogueCounts:
    funders: int
    periods: int
    current_period: str | None
    flavors: int
    rate_cards: int
    rate_card_in_force: int | None
    clusters: int
    gpus: int
    down: int


def gpus_down_now(books: Books) -> dict[tuple[str, str], int]:
    """GPUs out of service now per (cluster, flavor): the open node outages, the nodes the
    scheduler's last health check did not find up. Pool-wide, like the inventory."""
    down: dict[tuple[str, str], int] = {}
    for outage in books.outages.open():
        down[outage.key] = down.get(outage.key, 0) + outage.gpus
    return down


def _require_pool_reader(principal: Principal, what: str) -> None:
    """The whole catalogue, with who funds what, is for admin and auditor."""
    require(principal, principal.reads_everything, what)


def funder_records(books: Books, principal: Principal) -> list[FunderRecord]:
    """Every funder, by name, with what it contributed in each period; admin and auditor."""
    _require_pool_reader(principal, "see the funders' contributions")
    sums: dict[str, dict[str, int]] = {}
    after, page_size = 0, 1000
    while True:
        entries = books.ledger.entries(
            kinds=(EntryKind.CONTRIBUTION, EntryKind.REVERSAL), after_id=after, limit=page_size
        )
        for entry in entries:
            posting = entry.posting
            if posting.source.bucket is Bucket.FUNDER:
                change = posting.amount.milli
            elif posting.target.bucket is Bucket.FUNDER:
                change = -posting.amount.milli
            else:
                continue
            by_period = sums.setdefault(posting.funder, {})
            by_period[posting.period] = by_period.get(posting.period, 0) + change
        if len(entries) < page_size:
            break
        after = entries[-1].id
    return [
        FunderRecord(
            funder,
            {
                period: Credits(milli)
                for period, milli in sorted(sums.get(funder.name, {}).items())
                if milli
            },
        )
        for funder in sorted(books.funding.funders(), key=lambda each: each.name)
    ]


def period_records(books: Books, principal: Principal) -> list[PeriodRecord]:
    """Every allocation period, oldest first, with whether it runs now and when its books were
    closed; admin and auditor."""
    _require_pool_reader(principal, "see the pool's periods as its admin does")
    now = books.clock()
    return [
        PeriodRecord(period, period.contains(now), books.funding.expired_at(period.name))
        for period in books.funding.periods()
    ]


def flavor_records(books: Books, principal: Principal) -> FlavorRecords:
    """The flavors and the versioned rate card; admin and auditor."""
    _require_pool_reader(principal, "see the pool's flavors and rate cards as its admin does")
    try:
        in_force: int | None = books.rate_card().version
    except InvalidInput:
        in_force = None
    return FlavorRecords(
        sorted(books.flavors.all().values(), key=lambda flavor: flavor.name),
        books.flavors.rate_cards(),
        books.flavors.rate_card_notes(),
        in_force,
    )


def cluster_records(books: Books, principal: Principal) -> ClusterRecords:
    """Every cluster with its burst budgets and address, the GPUs down now, and the flavors,
    programs and owners a new cluster or burst budget may name; admin and auditor."""
    _require_pool_reader(principal, "see the pool's clusters as its admin does")
    tree = books.tree()
    return ClusterRecords(
        visible_clusters(books, principal),
        gpus_down_now(books),
        sorted(books.flavors.all()),
        sorted(name for name, each in tree.accounts.items() if each.kind is AccountKind.PROGRAM),
        sorted(
            name
            for name, each in tree.accounts.items()
            if each.kind in (AccountKind.ORGANIZATION, AccountKind.PROGRAM)
        ),
    )


def catalogue_counts(books: Books, principal: Principal) -> CatalogueCounts:
    """How much the catalogue holds, for its overview; admin and auditor."""
    _require_pool_reader(principal, "see the pool's catalogue as its admin does")
    now = books.clock()
    periods = books.funding.periods()
    clusters = books.clusters.all()
    down = gpus_down_now(books)
    try:
        in_force: int | None = books.rate_card().version
    except InvalidInput:
        in_force = None
    return CatalogueCounts(
        funders=len(books.funding.funders()),
        periods=len(periods),
        current_period=next((each.name for each in periods if each.contains(now)), None),
        flavors=len(books.flavors.all()),
        rate_cards=books.flavors.next_rate_card_version() - 1,
        rate_card_in_force=in_force,
        clusters=len(clusters),
        gpus=sum(item.gpus for cluster in clusters for item in cluster.inventory),
        down=sum(
            min(down.get((cluster.name, item.flavor), 0), item.gpus)
            for cluster in clusters
            for item in cluster.inventory
        ),
    )


# -- the pool's funds: contributions and appropriations -------------------------------------

MOST_CREDITS_MOVED = Credits.of(10**12)
"""One contribution or appropriation moves less than this (the API's credits take 12 digits)."""


@dataclass(frozen=True, slots=True)
class Posted:
    """What one contribution or appropriation wrote to the ledger: an entry per funder whose
    credits moved (an appropriation draws funder by funder unless it names one)."""

    period: str
    amount: Credits
    entries: list[Entry]


@dataclass(frozen=True, slots=True)
class ProgramFunds:
    """A program's funds in a period."""

    program: str
    display_name: str
    appropriated: Mapping[str, Credits]
    """Funder -> credits the pool appropriated to the program, net of reversals (only the
    funders it received credits from)."""
    balances: AccountBalances
    """Spent, held and available credits of the program's whole subtree."""

    @property
    def total(self) -> Credits:
        return Credits(sum(each.milli for each in self.appropriated.values()))


@dataclass(frozen=True, slots=True)
class PoolFunds:
    """Where the pool's credits of a period went: what it still holds for appropriation, per
    funder, and what each program received."""

    period: str
    unappropriated: Mapping[str, Credits]
    """Funder -> credits contributed and not yet appropriated (the pool's own available)."""
    programs: list[ProgramFunds]
    """Every program of the tree, by name."""

    @property
    def total_unappropriated(self) -> Credits:
        return Credits(sum(each.milli for each in self.unappropriated.values()))


def _movement(amount: Credits, reason: str, what: str) -> str:
    """The reason, once ``amount`` is one the books may move and a reason is given."""
    if amount.milli <= 0:
        raise InvalidInput(f"{what} must be positive, got {amount}")
    if not amount < MOST_CREDITS_MOVED:
        raise InvalidInput(f"{what} must be less than {MOST_CREDITS_MOVED} credits, got {amount}")
    if not reason.strip():
        raise InvalidInput(f"{what} needs a reason: the ledger keeps it with the entry")
    return reason.strip()


def _known_funder(books: Books, funder: str) -> None:
    names = sorted(each.name for each in books.funding.funders())
    if funder not in names:
        known = ", ".join(names) or "none yet"
        raise NotFound(f"unknown funder {funder!r}; the funders are: {known}")


def _posted(books: Books, period: str, amount: Credits, ids: Sequence[int]) -> Posted:
    return Posted(period, amount, [books.ledger.get(each) for each in ids])


def program_names(tree: AccountTree) -> list[str]:
    """The tree's programs, by name: where appropriations go."""
    return sorted(name for name, each in tree.accounts.items() if each.kind is AccountKind.PROGRAM)


def contribute(
    books: Books, principal: Principal, funder: str, period: str, amount: Credits, reason: str
) -> Posted:
    """``funder`` puts ``amount`` credits into the pool in ``period`` (the pool's available
    credits grow; nothing reaches a program until it is appropriated). An admin's, with the
    ``manage`` scope; a period whose books are closed takes no more."""
    require_admin(principal, "record contributions")
    why = _movement(amount, reason, "a contribution")
    _known_funder(books, funder)
    books.funding.period(period)
    ids = books.contribute(funder, period, amount, principal.user, why)
    return _posted(books, period, amount, ids)


def appropriate(
    books: Books,
    principal: Principal,
    program: str,
    period: str,
    amount: Credits,
    reason: str,
    funder: str | None = None,
) -> Posted:
    """Move ``amount`` of the pool's available credits in ``period`` to ``program``, funder by
    funder (or only ``funder``'s). An admin's, with the ``manage`` scope; more than the pool (or
    that funder) holds unappropriated is refused (``InsufficientCredits``)."""
    require_admin(principal, "appropriate credits to programs")
    why = _movement(amount, reason, "an appropriation")
    books.funding.period(period)
    if funder is not None:
        _known_funder(books, funder)
    tree = books.tree(period)
    programs = ", ".join(program_names(tree)) or "none yet"
    if program not in tree:
        raise NotFound(f"no account {program}; the programs are: {programs}")
    if tree[program].kind is not AccountKind.PROGRAM:
        raise InvalidInput(
            f"{program} is {with_article(tree[program].kind)}, not a program: appropriations "
            f"go to a program ({programs})"
        )
    ids = books.appropriate(program, period, amount, principal.user, why, funder)
    return _posted(books, period, amount, ids)


def pool_funds(books: Books, principal: Principal, period: str | None = None) -> PoolFunds | None:
    """The pool's funds in ``period`` (default: the one running now, else the latest): what it
    holds unappropriated per funder and what each program received; admin and auditor. ``None``
    when the pool has no period or no accounts yet."""
    _require_pool_reader(principal, "see the pool's appropriations")
    if period is None:
        periods = books.funding.periods()
        now = books.clock()
        running = [each.name for each in periods if each.contains(now)]
        if not periods:
            return None
        period = running[0] if running else periods[-1].name
    else:
        books.funding.period(period)
    tree = books.tree(period)
    if not tree.accounts:
        return None
    root = tree.root.name
    programs = program_names(tree)
    sums: dict[str, dict[str, int]] = {}
    after, page_size = 0, 1000
    while True:
        entries = books.ledger.entries(
            period=period,
            kinds=(EntryKind.APPROPRIATION, EntryKind.REVERSAL),
            after_id=after,
            limit=page_size,
        )
        for entry in entries:
            posting = entry.posting
            source, target = posting.source, posting.target
            if source.bucket is not Bucket.AVAILABLE or target.bucket is not Bucket.AVAILABLE:
                continue
            if source.account == root and target.account in programs:
                program, change = target.account, posting.amount.milli
            elif target.account == root and source.account in programs:
                program, change = source.account, -posting.amount.milli
            else:
                continue
            by_funder = sums.setdefault(program, {})
            by_funder[posting.funder] = by_funder.get(posting.funder, 0) + change
        if len(entries) < page_size:
            break
        after = entries[-1].id
    balances = books.balances_of(programs, period)
    pool_pocket = books.ledger.balances(period, [root]).by_funder(
        period, Pocket(Bucket.AVAILABLE, root)
    )
    return PoolFunds(
        period,
        {funder: Credits(milli) for funder, milli in pool_pocket.items()},
        [
            ProgramFunds(
                name,
                tree[name].display_name,
                {
                    funder: Credits(milli)
                    for funder, milli in sorted(sums.get(name, {}).items())
                    if milli
                },
                balances[name],
            )
            for name in programs
        ],
    )
