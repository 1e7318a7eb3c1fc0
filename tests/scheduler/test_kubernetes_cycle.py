"""The scheduling cycle with a Kubernetes cluster: the demo pool with a national Kubernetes
cluster, ``kube-daejeon`` (2 nodes of 8 H100s), served by a ``KubernetesBackend`` against the
fake API server (``tests.scheduler.kube``), whose clock is the scheduler's; the demo's Ray
clusters get no backend here, so everything runs on it. A job is admitted with its hold,
launched as a Job in its organization's namespace, seen running, settled at its end and
charged what it used; a cancelled one is suspended on the cluster and charged only for what
ran; one larger than a node runs as a gang over whole nodes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from jobs.cases import request_cancel, submit
from jobs.model import JobSpec, JobState
from quotas.admission import SiteKind
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.ledger import EntryKind
from quotas.quantities import Credits
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.kubernetes import KubernetesBackend, Placement
from scheduler.cycle import Scheduler
from scheduler.settings import SchedulerSettings
from tests.scheduler.kube.fake_apiserver import FakeApiServer
from tests.scheduler.pools import HOUR, START, Clock, SchedulerPool


@dataclass
class KubePool(SchedulerPool):
    cluster: FakeApiServer

    def submit(self, name: str, gpus: int = 8, hours: float = 2) -> str:
        with transaction(self.factory) as session:
            job, _ = submit(
                Books(session, self.clock),
                JobSpec(
                    project="kaist-nlp",
                    submitter="seoyeon.lee",
                    name=name,
                    entrypoint="python train.py",
                    gpus=gpus,
                    time_limit_seconds=int(hours * HOUR),
                    flavors=("h100-80g",),
                    image="nvcr.io/nvidia/pytorch:25.01-py3",
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


@pytest.fixture
def pool(fresh_database_url: str) -> Iterator[KubePool]:
    engine = make_engine(fresh_database_url)
    factory = session_factory(engine)
    clock = Clock()
    with transaction(factory) as session:
        books = Books(session, clock)
        seed_demo(books, demo_pool(START))
        books.clusters.add(
            ClusterSpec(
                "kube-daejeon",
                BackendKind.KUBERNETES,
                SiteKind.NATIONAL,
                (Inventory("h100-80g", 2, 8),),
            )
        )
    cluster = FakeApiServer()
    cluster.clock = clock
    cluster.start()
    for number in (1, 2):
        cluster.add_node(
            f"h100-80g-{number}", {"nvidia.com/gpu": "8"}, labels={"gpupool.io/flavor": "h100-80g"}
        )
    placements = {"h100-80g": Placement.of("h100-80g", "nvidia.com/gpu")}
    # no watches: each cycle reads the cluster as it is now (the watches are tested beside the
    # backend), so a test's step is seen by the very next cycle
    backend = KubernetesBackend(cluster.api_client(), placements, clock=clock, watch=False)
    settings = SchedulerSettings(charge_interval_seconds=60)
    scheduler = Scheduler(factory, {"kube-daejeon": backend}, settings, clock)
    try:
        yield KubePool(factory, clock, scheduler, cluster)
    finally:
        asyncio.run(backend.close())
        cluster.stop()
        engine.dispose()


def test_a_job_runs_on_kubernetes_to_success_and_is_charged_what_it_used(pool: KubePool) -> None:
    job_id = pool.submit("llm-sft")
    pool.cycle()  # admitted and launched
    (launched,) = pool.cluster.objects("jobs")
    assert launched["metadata"]["name"] == job_id
    assert launched["metadata"]["namespace"] == "gpupool-kaist"
    assert launched["metadata"]["labels"]["gpupool.io/program"] == "universities"
    assert pool.job(job_id).state is JobState.STARTING

    pool.cluster.step()  # the Job controller makes its pod
    (pod,) = pool.pods(job_id)
    pool.cluster.start_pod("gpupool-kaist", pod["metadata"]["name"])
    pool.cycle()
    assert pool.job(job_id).state is JobState.RUNNING

    pool.clock.advance(30 * 60)
    pool.cluster.finish_pod("gpupool-kaist", pod["metadata"]["name"], 0)
    pool.cluster.step()
    pool.cycle()

    job = pool.job(job_id)
    assert job.state is JobState.SUCCEEDED
    assert pool.entries(job_id, EntryKind.HOLD) == Credits.of(16).milli  # 8 GPUs x 2 h
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of(4).milli  # 8 GPUs x 0.5 h


def test_a_cancelled_job_is_suspended_on_the_cluster_and_charged_for_what_ran(
    pool: KubePool,
) -> None:
    job_id = pool.submit("to-cancel")
    pool.cycle()
    pool.cluster.step()
    (pod,) = pool.pods(job_id)
    pool.cluster.start_pod("gpupool-kaist", pod["metadata"]["name"])
    pool.cycle()
    pool.clock.advance(15 * 60)
    with transaction(pool.factory) as session:
        request_cancel(Books(session, pool.clock), job_id, "seoyeon.lee")
    pool.cycle()  # asks the cluster to stop it
    (launched,) = pool.cluster.objects("jobs")
    assert launched["spec"]["suspend"] is True
    pool.cluster.step()  # the Job controller stops its pod
    pool.cycle()

    job = pool.job(job_id)
    assert job.state is JobState.CANCELLED
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of(2).milli  # 8 GPUs x 0.25 h


def test_a_job_larger_than_a_node_is_launched_as_a_gang_over_whole_nodes(pool: KubePool) -> None:
    job_id = pool.submit("pretrain", gpus=16)
    pool.cycle()
    (launched,) = pool.cluster.objects("jobs")
    assert (launched["spec"]["parallelism"], launched["spec"]["completionMode"]) == (2, "Indexed")
    pool.cluster.step()
    for pod in pool.pods(job_id):
        pool.cluster.start_pod("gpupool-kaist", pod["metadata"]["name"])
    pool.cycle()
    assert pool.job(job_id).state is JobState.RUNNING
    assert sorted(pod["spec"]["nodeName"] for pod in pool.pods(job_id)) == [
        "h100-80g-1",
        "h100-80g-2",
    ]
