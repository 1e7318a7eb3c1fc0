"""A domestic NPU on equal terms: the demo pool's ``kube-pangyo`` Kubernetes cluster of
FuriosaAI RNGD cards (``rngd-48g``, the device plugin's ``furiosa.ai/rngd`` resource), served by
a ``KubernetesBackend`` against the fake API server. A job that names the NPU runs there, on
nodes of that flavor, asking for the vendor's resource, and is charged at the NPU's rate; a job
that accepts any flavor never lands on it (its SDK is not CUDA); and where no backend reaches
the cluster (``make run`` on a laptop), a job that names the NPU waits for it, not refused."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jobs.cases import submit
from jobs.model import JobSpec, JobState
from quotas.causes import NoCapacity
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.ledger import EntryKind
from quotas.quantities import Credits
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.base import Backend
from scheduler.backends.kubernetes import KubernetesBackend, Placement
from scheduler.backends.simulated import SimulatedBackend
from scheduler.cycle import Scheduler
from scheduler.settings import SchedulerSettings
from tests.scheduler.kube.fake_apiserver import FakeApiServer
from tests.scheduler.pools import HOUR, START, Clock, SchedulerPool

NPU = "rngd-48g"
RESOURCE = "furiosa.ai/rngd"


@dataclass
class NpuPool(SchedulerPool):
    cluster: FakeApiServer

    def submit(self, name: str, flavors: tuple[str, ...], gpus: int = 4) -> str:
        with transaction(self.factory) as session:
            job, _ = submit(
                Books(session, self.clock),
                JobSpec(
                    project="kaist-nlp",
                    submitter="seoyeon.lee",
                    name=name,
                    entrypoint="python serve_eval.py",
                    gpus=gpus,
                    time_limit_seconds=2 * HOUR,
                    flavors=flavors,
                    image="registry.example/furiosa-sdk:2025.2",
                ),
                max_time_limit_seconds=72 * HOUR,
            )
        return job.id

    def pods(self, job_id: str) -> list[dict[str, Any]]:
        return [
            pod
            for pod in self.cluster.objects("pods")
            if pod["metadata"].get("labels", {}).get("gpupool.io/job") == job_id
        ]


def make_pool(database_url: str, *, reachable: bool) -> Iterator[NpuPool]:
    engine = make_engine(database_url)
    factory = session_factory(engine)
    clock = Clock()
    with transaction(factory) as session:
        seed_demo(Books(session, clock), demo_pool(START))
    cluster = FakeApiServer()
    cluster.clock = clock
    cluster.start()
    for number in (1, 2):
        cluster.add_node(f"rngd-{number}", {RESOURCE: "8"}, labels={"gpupool.io/flavor": NPU})
    kube = KubernetesBackend(
        cluster.api_client(), {NPU: Placement.of(NPU, RESOURCE)}, clock=clock, watch=False
    )
    # the national h100s are busy with someone else's work for the next ten hours
    daejeon = SimulatedBackend(clock, {"h100-80g": (2, 8), "a100-80g": (2, 8)})
    backends: dict[str, Backend] = {"national-daejeon": daejeon}
    if reachable:
        backends["kube-pangyo"] = kube
    settings = SchedulerSettings(charge_interval_seconds=60)
    scheduler = Scheduler(factory, backends, settings, clock)
    try:
        yield NpuPool(factory, clock, scheduler, cluster)
    finally:
        asyncio.run(kube.close())
        cluster.stop()
        engine.dispose()


@pytest.fixture
def pool(fresh_database_url: str) -> Iterator[NpuPool]:
    yield from make_pool(fresh_database_url, reachable=True)


@pytest.fixture
def laptop(fresh_database_url: str) -> Iterator[NpuPool]:
    yield from make_pool(fresh_database_url, reachable=False)


def test_a_job_naming_the_npu_runs_on_its_nodes_and_is_charged_at_its_rate(
    pool: NpuPool,
) -> None:
    job_id = pool.submit("rngd-eval", flavors=(NPU,))
    pool.cycle()
    (launched,) = pool.cluster.objects("jobs")
    container = launched["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["limits"][RESOURCE] == "4"
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    assert launched["spec"]["template"]["spec"]["nodeSelector"] == {"gpupool.io/flavor": NPU}

    pool.cluster.step()
    (pod,) = pool.pods(job_id)
    pool.cluster.start_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
    pool.cycle()
    job = pool.job(job_id)
    assert job.state is JobState.RUNNING
    assert job.placed is not None
    assert (job.placed.cluster, job.placed.flavor, job.placed.rate_milli) == (
        "kube-pangyo",
        NPU,
        260,
    )
    assert pool.pods(job_id)[0]["spec"]["nodeName"].startswith("rngd-")

    pool.clock.advance(HOUR)
    pool.cluster.finish_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], 0)
    pool.cluster.step()
    pool.cycle()

    assert pool.job(job_id).state is JobState.SUCCEEDED
    assert pool.entries(job_id, EntryKind.HOLD) == Credits.of("2.08").milli  # 4 x 2 h x 0.26
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of("1.04").milli  # 4 x 1 h x 0.26


def test_a_job_that_accepts_any_flavor_never_lands_on_the_npu(pool: NpuPool) -> None:
    for n in range(4):  # every national GPU is taken
        pool.submit(f"cuda-{n}", flavors=("h100-80g", "a100-80g"), gpus=8)
    pool.cycle()
    anything = pool.submit("cuda-any", flavors=(), gpus=8)
    pool.cycle()

    job = pool.job(anything)
    assert job.state is JobState.QUEUED
    assert isinstance(job.cause, NoCapacity)
    assert NPU not in job.cause.flavors
    assert not pool.cluster.objects("jobs")


def test_where_no_backend_reaches_the_npu_cluster_a_job_naming_it_waits(laptop: NpuPool) -> None:
    job_id = laptop.submit("rngd-eval", flavors=(NPU,))
    laptop.cycle()

    job = laptop.job(job_id)
    assert job.state is JobState.QUEUED
    assert isinstance(job.cause, NoCapacity)
    assert job.cause.flavors == (NPU,)
    assert not laptop.cluster.objects("jobs")
