"""Use cases of the pool's catalogue: flavors, rate cards, clusters, periods and funders.

Everyone signed in reads the catalogue; only an admin, with the ``manage`` scope, adds to it.
Each addition goes through ``Books``, which writes its audit entry. A cluster is read as its
reader may see it (``ClusterView``): where it is reached is an admin's to know.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from quotas.access import Principal
from quotas.accounts import AccountTree
from quotas.cases import require_admin
from quotas.errors import InvalidInput, NotFound
from quotas.flavors import Flavor, RateCard
from quotas.funding import Funder, Period
from quotas.inventory import ClusterSpec
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
