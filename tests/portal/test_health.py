"""/metrics: each number read from the books at scrape time, the same on every replica."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families

from quotas.clock import utc_now
from quotas.db.session import session_factory
from scheduler.backends.simulated import SimulatedBackend
from scheduler.cycle import CycleReport, Scheduler
from scheduler.settings import SchedulerSettings
from tests.portal.conftest import Demo


def _submit(demo: Demo, gpus: int, flavors: list[str] | None = None) -> str:
    body = {
        "project": "kaist-nlp",
        "entrypoint": "python train.py",
        "gpus": gpus,
        "time_limit": "1h",
    }
    if flavors is not None:
        body["flavors"] = flavors
    response = demo.client.post("/api/v1/jobs", json=body, headers=demo.headers("jiwoo.jung"))
    assert response.status_code == 201, response.text
    return str(response.json()["job"]["id"])


def _samples(demo: Demo) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = demo.client.get("/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_count_the_queue_admissions_waits_gpus_and_credits(demo: Demo) -> None:
    for _ in range(2):
        _submit(demo, 8, ["h100-80g"])  # both fit the two 8-GPU nodes
    _submit(demo, 8, ["h100-80g"])  # waits
    _submit(demo, 1)  # any flavor
    backends = {"national-daejeon": SimulatedBackend(utc_now, {"h100-80g": (2, 8)})}
    scheduler = Scheduler(session_factory(demo.engine), backends, SchedulerSettings())
    report = CycleReport()
    scheduler.admit(report)
    asyncio.run(scheduler.dispatch(report))
    asyncio.run(scheduler.reconcile(report))
    with demo.books() as books:  # charges net of refunds, as the ledger holds them
        net = sum(
            milli for _, _, milli in books.ledger.usage_charges(datetime(2000, 1, 1, tzinfo=UTC))
        )

    samples = _samples(demo)

    admitted = len(report.admitted)
    assert admitted >= 2
    queue = {
        labels: value for (name, labels), value in samples.items() if name == "gpupool_queue_depth"
    }
    assert sum(queue.values()) == 4 - admitted
    assert samples[("gpupool_admissions_total", ())] == admitted
    assert samples[("gpupool_wait_seconds_count", ())] == admitted
    assert samples[("gpupool_wait_seconds_bucket", (("le", "10.0"),))] == admitted
    assert samples[("gpupool_wait_seconds_bucket", (("le", "+Inf"),))] == admitted
    in_use = samples[
        ("gpupool_gpus_in_use", (("cluster", "national-daejeon"), ("flavor", "h100-80g")))
    ]
    assert in_use == 16
    assert samples[("gpupool_credits_charged_total", ())] * 1000 == net
