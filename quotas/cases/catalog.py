"""Use cases of the pool's catalogue: flavors, rate cards, periods and funders.

Everyone signed in reads the catalogue; only an admin, with the ``manage`` scope, adds to it.
Each addition goes through ``Books``, which writes its audit entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from quotas.access import Principal
from quotas.cases import require_admin
from quotas.errors import InvalidInput, NotFound
from quotas.flavors import Flavor, RateCard
from quotas.funding import Funder, Period
from quotas.quantities import Rate
from quotas.service import Books


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
