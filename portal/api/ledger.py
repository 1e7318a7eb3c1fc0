"""The ledger and the audit log, read-only: where every credit went, and who changed what.

Nobody writes the ledger here; entries come only from the books' operations (contributions,
appropriations, awards through allocation reviews and tranche releases, holds and charges by
the scheduler). Ledger reads are scoped (``quotas.cases.ledger``): admin and auditor see every
entry, a program manager the entries of their programs' accounts, a pi or researcher those of
their projects. The audit log is for admin and auditor only. Both answer ``?format=csv``
with the page's rows (``portal.api.common.page_csv``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from portal.api.common import (
    CSV_ANSWER,
    NO_NUL,
    Format,
    Limit,
    Offset,
    Page,
    ReportFormat,
    Strict,
    page_csv,
)
from portal.deps import PortalDep, PrincipalDep
from quotas.cases.ledger import audit_entries, visible_entries
from quotas.db.access import AuditEntry
from quotas.db.repositories import Entry
from quotas.ledger import Bucket, EntryKind, Pocket

router = APIRouter(tags=["ledger"])

Filter = Annotated[str | None, Query(max_length=200, pattern=NO_NUL)]
Since = Annotated[
    datetime | None, Query(description="Made at or after this time (ISO 8601; UTC if no offset)")
]
Until = Annotated[
    datetime | None, Query(description="Made before this time (ISO 8601; UTC if no offset)")
]


class PocketOut(Strict):
    bucket: Bucket
    account: str | None
    job: str | None


class EntryOut(Strict):
    id: int
    at: datetime
    kind: EntryKind
    period: str
    funder: str = Field(description="The funder these credits trace back to")
    source: PocketOut
    target: PocketOut
    amount: str
    actor: str
    reason: str
    allocation: int | None = Field(description="The allocation request of an award")
    reverses: int | None = Field(description="The entry a reversal undoes")


class AuditEntryOut(Strict):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


def pocket_out(pocket: Pocket) -> PocketOut:
    return PocketOut(bucket=pocket.bucket, account=pocket.account, job=pocket.job)


def entry_out(entry: Entry) -> EntryOut:
    posting = entry.posting
    return EntryOut(
        id=entry.id,
        at=entry.at,
        kind=posting.kind,
        period=posting.period,
        funder=posting.funder,
        source=pocket_out(posting.source),
        target=pocket_out(posting.target),
        amount=str(posting.amount),
        actor=posting.actor,
        reason=posting.reason,
        allocation=posting.allocation,
        reverses=posting.reverses,
    )


def audit_out(entry: AuditEntry) -> AuditEntryOut:
    return AuditEntryOut(
        id=entry.id,
        at=entry.at,
        actor=entry.actor,
        action=entry.action,
        target=entry.target,
        before=dict(entry.before) if entry.before is not None else None,
        after=dict(entry.after) if entry.after is not None else None,
    )


@router.get(
    "/ledger",
    summary="Ledger entries you may see, newest first",
    response_model=Page[EntryOut],
    responses=CSV_ANSWER,
)
def list_entries(
    portal: PortalDep,
    principal: PrincipalDep,
    limit: Limit = 50,
    offset: Offset = 0,
    account: Annotated[
        str | None,
        Query(max_length=64, pattern=NO_NUL, description="Entries into or out of this account"),
    ] = None,
    job: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    kind: Annotated[list[EntryKind] | None, Query()] = None,
    period: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    funder: Annotated[str | None, Query(max_length=64, pattern=NO_NUL)] = None,
    since: Since = None,
    until: Until = None,
    form: Format = ReportFormat.JSON,
) -> BaseModel | Response:
    with portal.books() as books:
        entries, total = visible_entries(
            books,
            principal,
            account=account,
            job=job,
            kinds=kind or (),
            period=period,
            funder=funder,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    items = [entry_out(entry) for entry in entries]
    if form is ReportFormat.CSV:
        return page_csv(EntryOut, items, "ledger.csv", total)
    return Page[EntryOut](items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/audit",
    summary="The audit log, newest first (admin and auditor)",
    response_model=Page[AuditEntryOut],
    responses=CSV_ANSWER,
)
def list_audit(
    portal: PortalDep,
    principal: PrincipalDep,
    limit: Limit = 50,
    offset: Offset = 0,
    actor: Filter = None,
    action: Annotated[
        str | None, Query(max_length=64, pattern=NO_NUL, examples=["budget.set"])
    ] = None,
    target: Annotated[
        str | None, Query(max_length=200, pattern=NO_NUL, examples=["account/kaist-nlp"])
    ] = None,
    since: Since = None,
    until: Until = None,
    form: Format = ReportFormat.JSON,
) -> BaseModel | Response:
    with portal.books() as books:
        entries, total = audit_entries(
            books,
            principal,
            actor=actor,
            action=action,
            target=target,
            since=since,
            until=until,
            limit=limit,
            offset=offset,
        )
    items = [audit_out(entry) for entry in entries]
    if form is ReportFormat.CSV:
        return page_csv(AuditEntryOut, items, "audit.csv", total)
    return Page[AuditEntryOut](items=items, total=total, limit=limit, offset=offset)
