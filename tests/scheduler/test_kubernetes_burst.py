"""Cloud burst to Kubernetes burst targets, end to end: the demo pool, its national h100s busy,
and two cloud clusters scaled to zero (``cloud-seoul``, a domestic cloud at 1.2x, and
``cloud-tokyo``, a foreign one at 1.5x), each a fake API server whose cluster autoscaler the test
plays. Each burst asks the target for nodes with a ProvisioningRequest before anything is placed;
a job runs once they are made and is charged at the target's multiplier; a target that refuses,
or has not provisioned the job by its deadline, is let go (its request withdrawn) and the next is
tried, then the queue."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jobs.cases import submit
from jobs.model import JobSpec, JobState
from quotas.admission import DataClass
from quotas.causes import NoCapacity
from quotas.db.session import make_engine, session_factory, transaction
from quotas.ledger import EntryKind
from quotas.quantities import Credits
from quotas.service import Books
from scheduler.backends.base import Backend
from scheduler.backends.kubernetes import KubernetesBackend, Placement
from scheduler.backends.simulated import Outcome, SimulatedBackend
from scheduler.cycle import Scheduler
from scheduler.settings import SchedulerSettings
from tests.scheduler.kube.fake_apiserver import FakeApiServer
from tests.scheduler.pools import HOUR, Clock, SchedulerPool, seed_with_burst_targets

ATOMIC = "best-effort-atomic-scale-up.autoscaling.x-k8s.io"
WAIT = 600
DEADLINE = 900
NAMESPACE = "gpupool-kaist"


@dataclass
class CloudPool(SchedulerPool):
    clouds: dict[str, FakeApiServer]

    def submit(self, name: str, data_class: DataClass = DataClass.PUBLIC) -> str:
        with transaction(self.factory) as session:
            job, _ = submit(
                Books(session, self.clock),
                JobSpec(
                    project="kaist-nlp",
                    submitter="seoyeon.lee",
                    name=name,
                    entrypoint="python train.py",
                    gpus=8,
                    time_limit_seconds=2 * HOUR,
                    flavors=("h100-80g",),
                    image="nvcr.io/nvidia/pytorch:25.01-py3",
                    data_class=data_class,
                ),
                max_time_limit_seconds=72 * HOUR,
            )
        return job.id

    def requests(self, cloud: str) -> list[dict[str, Any]]:
        return self.clouds[cloud].objects("provisioningrequests", NAMESPACE)

    def launches(self, cloud: str) -> list[dict[str, Any]]:
        return self.clouds[cloud].objects("jobs", NAMESPACE)

    def run_pods(self, cloud: str, job_id: str) -> None:
        server = self.clouds[cloud]
        server.step()
        for pod in server.objects("pods", NAMESPACE):
            if pod["metadata"]["labels"].get("gpupool.io/job") == job_id:
                server.start_pod(NAMESPACE, pod["metadata"]["name"])


@pytest.fixture
def pool(fresh_database_url: str) -> Iterator[CloudPool]:
    engine = make_engine(fresh_database_url)
    factory = session_factory(engine)
    clock = Clock()
    with transaction(factory) as session:
        books = Books(session, clock)
        seed_with_burst_targets(books, DEADLINE, ATOMIC)
    clouds: dict[str, FakeApiServer] = {}
    backends: dict[str, Backend] = {
        "national-daejeon": SimulatedBackend(
            clock, {"h100-80g": (2, 8), "a100-80g": (2, 8)}, lambda _: Outcome(seconds=4 * HOUR)
        )
    }
    for name in ("cloud-seoul", "cloud-tokyo"):
        server = clouds[name] = FakeApiServer()
        server.clock = clock
        server.start()
        server.add_node(f"{name}-system", {"cpu": "8"})  # scaled to zero: no accelerators yet
        backends[name] = KubernetesBackend(
            server.api_client(),
            {"h100-80g": Placement.of("h100-80g", "nvidia.com/gpu")},
            clock=clock,
            watch=False,
            provisioning_class=ATOMIC,
        )
    settings = SchedulerSettings(charge_interval_seconds=60, burst_wait_seconds=WAIT)
    scheduler = Scheduler(factory, backends, settings, clock)
    pool = CloudPool(factory, clock, scheduler, clouds)
    with transaction(factory) as session:  # the national h100s are busy for four hours
        for n in range(2):
            submit(
                Books(session, clock),
                JobSpec(
                    project="snu-medical-imaging",
                    submitter="sungmin.yoon",
                    name=f"national-{n}",
                    entrypoint="python pretrain.py",
                    gpus=8,
                    time_limit_seconds=4 * HOUR,
                    flavors=("h100-80g",),
                ),
                max_time_limit_seconds=72 * HOUR,
            )
    pool.cycle()
    try:
        yield pool
    finally:
        for name, server in clouds.items():
            backend = backends[name]
            assert isinstance(backend, KubernetesBackend)
            asyncio.run(backend.close())
            server.stop()
        engine.dispose()


def test_a_burst_asks_for_nodes_first_runs_once_they_are_made_and_is_charged_the_multiplier(
    pool: CloudPool,
) -> None:
    job_id = pool.submit("llm-sft")
    pool.cycle()
    assert pool.job(job_id).state is JobState.QUEUED  # the burst wait
    assert not pool.requests("cloud-seoul")

    pool.clock.advance(WAIT)
    pool.cycle()
    (request,) = pool.requests("cloud-seoul")
    assert request["spec"]["provisioningClassName"] == ATOMIC
    (launch,) = pool.launches("cloud-seoul")
    assert launch["spec"]["suspend"] is True  # nothing is placed until the nodes exist
    assert pool.job(job_id).state is JobState.STARTING
    assert not pool.launches("cloud-tokyo")

    nodes = pool.clouds["cloud-seoul"].provision(NAMESPACE, request["metadata"]["name"])
    pool.cycle()  # provisioned: the launch is let go
    (launch,) = pool.launches("cloud-seoul")
    assert not launch["spec"].get("suspend")
    pool.run_pods("cloud-seoul", job_id)
    pool.cycle()
    job = pool.job(job_id)
    assert job.state is JobState.RUNNING
    assert job.placed is not None
    assert (job.placed.cluster, job.placed.rate_milli) == ("cloud-seoul", 1200)
    (pod,) = [
        pod
        for pod in pool.clouds["cloud-seoul"].objects("pods", NAMESPACE)
        if pod["metadata"]["labels"].get("gpupool.io/job") == job_id
    ]
    assert pod["spec"]["nodeName"] in nodes

    pool.clock.advance(HOUR)
    pool.clouds["cloud-seoul"].finish_pod(NAMESPACE, pod["metadata"]["name"], 0)
    pool.clouds["cloud-seoul"].step()
    pool.cycle()
    assert pool.job(job_id).state is JobState.SUCCEEDED
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of("9.6").milli  # 8 x 1 h x 1.2


def test_sensitive_data_bursts_only_to_the_domestic_cloud(pool: CloudPool) -> None:
    job_id = pool.submit("patients-derived", data_class=DataClass.SENSITIVE)
    pool.clock.advance(WAIT)
    pool.cycle()
    (request,) = pool.requests("cloud-seoul")
    pool.clouds["cloud-seoul"].refuse_provisioning(NAMESPACE, request["metadata"]["name"])
    pool.cycle()  # refused: requeued
    pool.cycle()  # the foreign cloud is not for sensitive data: it waits

    job = pool.job(job_id)
    assert job.state is JobState.QUEUED
    assert isinstance(job.cause, NoCapacity)
    assert job.cause.unprovisioned == ("cloud-seoul",)
    assert not pool.launches("cloud-tokyo")
    assert not pool.requests("cloud-tokyo")


def test_a_target_past_its_deadline_is_let_go_then_the_next_refuses_and_the_job_waits(
    pool: CloudPool,
) -> None:
    job_id = pool.submit("llm-sft")
    pool.clock.advance(WAIT)
    pool.cycle()
    assert len(pool.requests("cloud-seoul")) == 1

    pool.clock.advance(DEADLINE)  # the autoscaler never answers
    pool.cycle()
    assert pool.job(job_id).state is JobState.QUEUED
    assert "not provisioned within 15m" in pool.job(job_id).reason
    assert not pool.requests("cloud-seoul")  # withdrawn: nothing left holding cloud quota
    assert not [
        launch for launch in pool.launches("cloud-seoul") if not launch["spec"].get("suspend")
    ]

    pool.cycle()  # the next target
    (request,) = pool.requests("cloud-tokyo")
    pool.clouds["cloud-tokyo"].refuse_provisioning(
        NAMESPACE, request["metadata"]["name"], "OutOfStock", "no H100 capacity in the zone"
    )
    pool.cycle()  # refused: requeued
    pool.cycle()  # decided again: only the national pool is left

    job = pool.job(job_id)
    assert job.state is JobState.QUEUED
    assert isinstance(job.cause, NoCapacity)
    assert job.cause.unprovisioned == ("cloud-seoul", "cloud-tokyo")
    assert pool.entries(job_id, EntryKind.CHARGE) == 0
    assert pool.entries(job_id, EntryKind.HOLD) == pool.entries(job_id, EntryKind.RELEASE)
    assert not pool.requests("cloud-tokyo")
