"""Health, readiness and Prometheus metrics.

Metrics are read from the database at scrape time, so every portal replica reports the same
numbers and nothing is lost on restart: queue depth per program and flavor, admissions, the
wait-time histogram, GPUs in use per cluster and flavor, and credits charged.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select, text

from portal.deps import Portal, PortalDep
from quotas.accounts import AccountKind
from quotas.db.models import AccountRow, JobEventRow, JobRow, LedgerEntryRow
from quotas.db.session import transaction
from quotas.jobs import JobState
from quotas.ledger import EntryKind
from quotas.service import Books

router = APIRouter(tags=["health"])

WAIT_BUCKETS = (10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database answers and the scheduler runs")
def readyz(portal: PortalDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with portal.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
    checks["scheduler"] = "ok" if portal.scheduler_ready() else "not running"
    ready = all(value == "ok" for value in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks},
        status_code=200 if ready else 503,
    )


class BooksCollector(Collector):
    def __init__(self, portal: Portal) -> None:
        self.portal = portal

    def collect(self) -> Iterator[Metric]:
        with transaction(self.portal.sessions) as session:
            tree = Books(session).tree()
            names = {
                row[0]: row[1] for row in session.execute(select(AccountRow.id, AccountRow.name))
            }

            def program(project_id: int) -> str:
                name = names.get(project_id, "")
                path = tree.path(name) if name in tree else []
                return next((a.name for a in path if a.kind is AccountKind.PROGRAM), "")

            depth: Counter[tuple[str, str]] = Counter()
            queued = session.execute(
                select(JobRow.project_id, JobRow.flavors).where(
                    JobRow.state == JobState.QUEUED.value
                )
            )
            for project_id, flavors in queued:
                flavor = flavors[0] if len(flavors) == 1 else ("any" if not flavors else "several")
                depth[(program(project_id), flavor)] += 1
            queue = GaugeMetricFamily(
                "gpupool_queue_depth",
                "Jobs waiting in the queue, per program and flavor asked for",
                labels=["program", "flavor"],
            )
            for (program_name, flavor), count in sorted(depth.items()):
                queue.add_metric([program_name, flavor], count)
            yield queue

            admissions = CounterMetricFamily(
                "gpupool_admissions", "Jobs admitted by the scheduler (every attempt)"
            )
            admitted = session.scalar(
                select(func.count(JobEventRow.id)).where(
                    JobEventRow.to_state == JobState.ADMITTED.value
                )
            )
            admissions.add_metric([], admitted or 0)
            yield admissions

            waits = sorted(
                (admitted_at - submitted_at).total_seconds()
                for submitted_at, admitted_at in session.execute(
                    select(JobRow.submitted_at, JobRow.admitted_at).where(
                        JobRow.admitted_at.is_not(None)
                    )
                )
                if admitted_at is not None
            )
            buckets: list[tuple[str, float]] = []
            for bound in WAIT_BUCKETS:
                buckets.append((str(bound), float(sum(1 for w in waits if w <= bound))))
            buckets.append(("+Inf", float(len(waits))))
            histogram = HistogramMetricFamily(
                "gpupool_wait_seconds", "Time from submission to admission", unit=""
            )
            histogram.add_metric([], buckets, sum_value=sum(waits))
            yield histogram

            in_use = GaugeMetricFamily(
                "gpupool_gpus_in_use",
                "GPUs held by starting or running jobs, per cluster and flavor",
                labels=["cluster", "flavor"],
            )
            rows = session.execute(
                select(JobRow.cluster, JobRow.flavor, func.sum(JobRow.gpus))
                .where(JobRow.state.in_([JobState.STARTING.value, JobState.RUNNING.value]))
                .group_by(JobRow.cluster, JobRow.flavor)
            )
            for cluster, used_flavor, gpus in rows:
                in_use.add_metric([cluster or "", used_flavor or ""], float(gpus or 0))
            yield in_use

            charged = CounterMetricFamily(
                "gpupool_credits_charged", "Credits charged for GPU time, net of refunds"
            )
            total = {
                kind: milli or 0
                for kind, milli in session.execute(
                    select(LedgerEntryRow.kind, func.sum(LedgerEntryRow.amount_milli))
                    .where(
                        LedgerEntryRow.kind.in_([EntryKind.CHARGE.value, EntryKind.REFUND.value])
                    )
                    .group_by(LedgerEntryRow.kind)
                )
            }
            charged.add_metric(
                [],
                (total.get(EntryKind.CHARGE.value, 0) - total.get(EntryKind.REFUND.value, 0))
                / 1000,
            )
            yield charged


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(portal: PortalDep) -> PlainTextResponse:
    registry = CollectorRegistry()
    registry.register(BooksCollector(portal))
    return PlainTextResponse(
        generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
