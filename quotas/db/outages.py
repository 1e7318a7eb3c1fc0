"""The node outages repository: stretches of time nodes of a cluster's flavor were down.

Bound to a session, taking and returning ``quotas.outages.NodeOutage``; never commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from quotas.db.models import NodeOutageRow
from quotas.db.repositories import as_utc, maybe_utc
from quotas.outages import NodeOutage


class NodeOutageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def open(self) -> list[NodeOutage]:
        """The outages that last still, by cluster and flavor."""
        query = (
            select(NodeOutageRow)
            .where(NodeOutageRow.until.is_(None))
            .order_by(NodeOutageRow.cluster, NodeOutageRow.flavor, NodeOutageRow.id)
        )
        return [_outage(row) for row in self.session.scalars(query)]

    def open_ids(self) -> frozenset[int]:
        """The numbers of the outages that last still: opening, closing or resizing one
        changes them (read by each cycle to know whether capacity changed)."""
        query = select(NodeOutageRow.id).where(NodeOutageRow.until.is_(None))
        return frozenset(self.session.scalars(query))

    def overlapping(self, since: datetime, until: datetime) -> list[NodeOutage]:
        """The outages that began before ``until`` and had not ended by ``since``."""
        query = (
            select(NodeOutageRow)
            .where(
                NodeOutageRow.since < until,
                NodeOutageRow.until.is_(None) | (NodeOutageRow.until > since),
            )
            .order_by(NodeOutageRow.since, NodeOutageRow.id)
        )
        return [_outage(row) for row in self.session.scalars(query)]

    def start(self, outages: Iterable[NodeOutage]) -> list[NodeOutage]:
        """Record each outage; they come back with their numbers."""
        rows = [
            NodeOutageRow(
                cluster=outage.cluster,
                flavor=outage.flavor,
                nodes=outage.nodes,
                gpus=outage.gpus,
                since=outage.since,
                until=outage.until,
            )
            for outage in outages
        ]
        self.session.add_all(rows)
        self.session.flush()
        return [_outage(row) for row in rows]

    def end(self, ids: Iterable[int], at: datetime) -> None:
        """End the open outages numbered ``ids`` at ``at``; one already ended is left be."""
        wanted = sorted(set(ids))
        if not wanted:
            return
        self.session.execute(
            update(NodeOutageRow)
            .where(NodeOutageRow.id.in_(wanted), NodeOutageRow.until.is_(None))
            .values(until=at)
        )


def _outage(row: NodeOutageRow) -> NodeOutage:
    return NodeOutage(
        cluster=row.cluster,
        flavor=row.flavor,
        nodes=row.nodes,
        gpus=row.gpus,
        since=as_utc(row.since),
        until=maybe_utc(row.until),
        id=row.id,
    )
