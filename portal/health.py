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
from sqlalchemy import text

from jobs.metrics import MetricsRepository
from jobs.model import JobState
from jobs.repository import JobRepository
from portal.deps import Portal, PortalDep
from quotas.accounts import AccountKind
from quotas.db.session import transaction
from quotas.service import Books

router = APIRouter(tags=["health"])

WAIT_BUCKETS = (10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 24 * 3600.0)


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz", summary="The database answers, and the scheduler runs where this process runs it"
)
def readyz(portal: PortalDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with portal.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"unreachable: {type(error).__name__}"
    if portal.settings.run_scheduler:  # a portal-only process is ready without one
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
            metrics = MetricsRepository(session)
            queued = metrics.queued_flavors()
            admitted = metrics.admissions()
            within, waited, total_wait = metrics.waits(WAIT_BUCKETS)
            in_use = JobRepository(session).gpus_in_use([JobState.STARTING, JobState.RUNNING])
            charged_milli = metrics.charged_milli()

        depth: Counter[tuple[str, str]] = Counter()
        for project, flavors, count in queued:
            path = tree.path(project) if project in tree else []
            program = next((a.name for a in path if a.kind is AccountKind.PROGRAM), "")
            flavor = flavors[0] if len(flavors) == 1 else ("any" if not flavors else "several")
            depth[(program, flavor)] += count
        queue = GaugeMetricFamily(
            "gpupool_queue_depth",
            "Jobs waiting in the queue, per program and flavor asked for",
            labels=["program", "flavor"],
        )
        for (program, flavor), count in sorted(depth.items()):
            queue.add_metric([program, flavor], count)
        yield queue

        admissions = CounterMetricFamily(
            "gpupool_admissions", "Jobs admitted by the scheduler (every attempt)"
        )
        admissions.add_metric([], admitted)
        yield admissions

        buckets = [
            (str(bound), float(count)) for bound, count in zip(WAIT_BUCKETS, within, strict=True)
        ]
        buckets.append(("+Inf", float(waited)))
        histogram = HistogramMetricFamily(
            "gpupool_wait_seconds", "Time from submission to admission", unit=""
        )
        histogram.add_metric([], buckets, sum_value=total_wait)
        yield histogram

        gpus = GaugeMetricFamily(
            "gpupool_gpus_in_use",
            "GPUs held by starting or running jobs, per cluster and flavor",
            labels=["cluster", "flavor"],
        )
        for (cluster, flavor), count in sorted(in_use.items()):
            gpus.add_metric([cluster, flavor], float(count))
        yield gpus

        charged = CounterMetricFamily(
            "gpupool_credits_charged", "Credits charged for GPU time, net of refunds"
        )
        charged.add_metric([], charged_milli / 1000)
        yield charged


@router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
def metrics(portal: PortalDep) -> PlainTextResponse:
    registry = CollectorRegistry()
    registry.register(BooksCollector(portal))
    return PlainTextResponse(
        generate_latest(registry), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
