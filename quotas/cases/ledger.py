"""Use cases of the ledger and the audit log, read-only: where every credit went, who changed what.

Ledger reads are scoped: admin and auditor see every entry, a program manager the entries of
their programs' accounts, a pi or researcher those of their projects; an account outside the
principal's scope is "not found". The audit log is for admin and auditor only. Nobody writes
the ledger here: entries come only from the books' operations.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from quotas.access import Principal
from quotas.cases import require
from quotas.cases.reports import in_utc
from quotas.db.access import AuditEntry
from quotas.db.repositories import Entry
from quotas.errors import NotFound
from quotas.ledger import EntryKind
from quotas.service import Books


def visible_entries(
    books: Books,
    principal: Principal,
    *,
    account: str | None = None,
    job: str | None = None,
    kinds: Sequence[EntryKind] = (),
    period: str | None = None,
    funder: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[Entry], int]:
    """A page of the ledger entries the principal may see, newest first, and how many match in
    all; ``account`` keeps those moving credits into or out of that account, ``since`` and
    ``until`` those made in ``[since, until)`` (a time without an offset is UTC)."""
    tree = books.tree()
    if account is not None and (
        account not in tree or not principal.can_read_account(tree, account)
    ):
        raise NotFound(f"no account {account}")
    if period is not None:
        books.funding.period(period)
    if funder is not None and funder not in {each.name for each in books.funding.funders()}:
        raise NotFound(f"unknown funder {funder!r}")
    within = None
    if not principal.reads_everything:
        within = principal.readable_accounts(tree) if tree.accounts else []
    return books.ledger.search(
        within=within,
        account=account,
        job=job,
        kinds=kinds,
        period=period,
        funder=funder,
        since=in_utc(since),
        until=in_utc(until),
        limit=limit,
        offset=offset,
    )


def audit_entries(
    books: Books,
    principal: Principal,
    *,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AuditEntry], int]:
    """A page of the audit log, newest first, for admin and auditor only; ``since`` and
    ``until`` keep the entries made in ``[since, until)`` (a time without an offset is UTC)."""
    require(principal, principal.reads_everything, "read the audit log")
    return books.audit.search(
        actor=actor,
        action=action,
        target=target,
        since=in_utc(since),
        until=in_utc(until),
        limit=limit,
        offset=offset,
    )
