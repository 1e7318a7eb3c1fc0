"""The program pages' query: how a subtree's uncharged credits moved over a period, from the ledger.

Read-only. A subtree's uncharged credits are its accounts' ``available`` and ``held`` pockets
(what a burn rate runs down, ``quotas.reports.NodeCredits.uncharged``). An entry moves them when
exactly one of its two pockets is an uncharged pocket of the subtree: an appropriation or a
refund brings credits in, a charge or an expiry takes them out; an award or a hold inside the
subtree moves credits between two of its own uncharged pockets and changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from quotas.db.models import LedgerEntryRow
from quotas.db.repositories import AccountRepository, as_utc
from quotas.ledger import Bucket

Entries = LedgerEntryRow
UNCHARGED = (Bucket.AVAILABLE.value, Bucket.HELD.value)


class ProgramRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def uncharged_moves(self, period: str, accounts: Iterable[str]) -> list[tuple[datetime, int]]:
        """``(time, milli-credits)`` by which the uncharged credits of ``accounts`` together
        changed in ``period``, one per moment that changed them, oldest first."""
        known = AccountRepository(self.session).ids()
        ids = [known[name] for name in accounts if name in known]
        if not ids:
            return []
        into = (Entries.target_account_id.in_(ids)) & (Entries.target_bucket.in_(UNCHARGED))
        out_of = (Entries.source_account_id.in_(ids)) & (Entries.source_bucket.in_(UNCHARGED))
        change = case((into, Entries.amount_milli), else_=0) - case(
            (out_of, Entries.amount_milli), else_=0
        )
        query = (
            select(Entries.at, func.sum(change))
            .where(
                Entries.period == period,
                Entries.target_account_id.in_(ids) | Entries.source_account_id.in_(ids),
            )
            .group_by(Entries.at)
            .order_by(Entries.at)
        )
        return [(as_utc(at), int(total)) for at, total in self.session.execute(query) if int(total)]
