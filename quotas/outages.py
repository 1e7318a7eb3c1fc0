"""Node outages: nodes of a cluster's flavor that its backend did not report up (cordoned,
NotReady, dead), and for how long.

The scheduler keeps them (``scheduler.outages``): one record per stretch of time with the same
number of nodes down, so a record's GPUs x its duration is exactly the GPU-time lost. The cycle
places no job on the nodes of an open outage (``jobs.capacity``), and the utilisation report
counts their GPU-time as down (``quotas.reports``). Pure values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from quotas.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class NodeOutage:
    """``nodes`` nodes of ``flavor`` in ``cluster``, with ``gpus`` GPUs on them, down from
    ``since`` until ``until`` (``None`` while it lasts)."""

    cluster: str
    flavor: str
    nodes: int
    gpus: int
    since: datetime
    until: datetime | None = None
    id: int = 0
    """The record's number once stored; 0 before."""

    def __post_init__(self) -> None:
        if self.nodes <= 0 or self.gpus <= 0:
            raise InvalidInput(f"an outage takes down at least one node and GPU: {self}")
        if self.until is not None and self.until < self.since:
            raise InvalidInput(f"an outage cannot end before it began: {self}")

    @property
    def key(self) -> tuple[str, str]:
        return (self.cluster, self.flavor)

    @property
    def open(self) -> bool:
        return self.until is None
