"""The scheduling cycle with a Kubernetes cluster: the demo pool with a national Kubernetes
cluster, ``kube-daejeon`` (2 nodes of 8 H100s), served by a ``KubernetesBackend`` against the
fake API server (``tests.scheduler.kube``), whose clock is the scheduler's; the demo's Ray
clusters get no backend here, so everything runs on it. A job is admitted with its hold,
launched as a Job in its organization's namespace, seen running, settled at its end and
charged what it used; a cancelled one is suspended on the cluster and charged only for what
ran; one larger than a node runs as a gang over whole nodes, as a Job or, on a cluster of a
Ray cluster per job, as a RayJob.

What a cluster does to running work: a preempted job is suspended with its pods given their
grace period, charged for what ran and requeued, and the job it made room for placed once its
pods are gone; a job whose node went NotReady and whose pod the node lifecycle controller
failed ends as a system fault, refunded, and nothing is placed on the down node; a job past
its time limit is stopped and charged exactly its limit. What the scheduler does to itself: one
restarted (a new process, a new client) adopts what runs and what it had launched without
recording it, launching nothing twice. And with two clusters, each launch lands on its own API
server, and each job's status and settlement come from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client as k8s

from jobs.cases import request_cancel, submit
from jobs.model import JobSpec, JobState
from jobs.repository import JobRepository
from quotas.admission import PriorityClass, SiteKind
from quotas.causes import Ended, Outcome
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.inventory import BackendKind, ClusterSpec, Inventory, Tenancy
from quotas.ledger import EntryKind
from quotas.quantities import Credits
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.kubernetes import KubernetesBackend, Placement
from scheduler.cycle import Scheduler
from scheduler.settings import SchedulerSettings
from tests.scheduler.kube.fake_apiserver import FakeApiServer
from tests.scheduler.pools import HOUR, START, Clock, SchedulerPool

IMAGE = "nvcr.io/nvidia/pytorch:25.01-py3"
GRACE_SECONDS = 45
"""The backend's grace period here: not its default, so a test sees it is the backend's own."""
NAMESPACE = "gpupool-kaist"
"""Where kaist-nlp's jobs run (its organization's namespace)."""
SETTINGS = SchedulerSettings(charge_interval_seconds=60)


@contextmanager
def kube_cluster(clock: Clock, nodes: int = 2) -> Iterator[FakeApiServer]:
    """A fake API server on ``clock`` with ``nodes`` nodes of 8 H100s, served while in use."""
    with FakeApiServer() as cluster:
        cluster.clock = clock
        for number in range(1, nodes + 1):
            cluster.add_node(
                f"h100-80g-{number}",
                {"nvidia.com/gpu": "8"},
                labels={"gpupool.io/flavor": "h100-80g"},
            )
        yield cluster


def kube_backend(cluster: FakeApiServer, clock: Clock) -> KubernetesBackend:
    """A backend for ``cluster`` with a client of its own, as a scheduler process makes one."""
    placements = {"h100-80g": Placement.of("h100-80g", "nvidia.com/gpu")}
    # no watches: each cycle reads the cluster as it is now (the watches are tested beside the
    # backend), so a test's step is seen by the very next cycle
    return KubernetesBackend(
        cluster.api_client(), placements, clock=clock, grace_seconds=GRACE_SECONDS, watch=False
    )


def close(backend: KubernetesBackend) -> None:
    asyncio.run(backend.close())


@dataclass
class KubePool(SchedulerPool):
    cluster: FakeApiServer
    backend: KubernetesBackend
    retired: list[KubernetesBackend] = field(default_factory=list)
    """Backends of schedulers that were restarted, closed at the end."""

    def submit(
        self,
        name: str,
        gpus: int = 8,
        hours: float = 2,
        project: str = "kaist-nlp",
        image: str | None = IMAGE,
        priority: PriorityClass = PriorityClass.NORMAL,
    ) -> str:
        with transaction(self.factory) as session:
            job, _ = submit(
                Books(session, self.clock),
                JobSpec(
                    project=project,
                    submitter="seoyeon.lee",
                    name=name,
                    entrypoint="python train.py",
                    gpus=gpus,
                    time_limit_seconds=int(hours * HOUR),
                    flavors=("h100-80g",),
                    image=image,
                    priority=priority,
                ),
                max_time_limit_seconds=72 * HOUR,
            )
        return job.id

    def pods(self, job_id: str, cluster: FakeApiServer | None = None) -> list[dict[str, Any]]:
        return [
            pod
            for pod in (cluster or self.cluster).objects("pods")
            if pod["metadata"].get("labels", {}).get("gpupool.io/job") == job_id
        ]

    def launches(self, cluster: FakeApiServer | None = None) -> list[str]:
        """The names of the Jobs and RayJobs on ``cluster`` (this pool's own by default)."""
        on = cluster or self.cluster
        return sorted(
            item["metadata"]["name"] for kind in ("jobs", "rayjobs") for item in on.objects(kind)
        )

    def launched(self, job_id: str, cluster: FakeApiServer | None = None) -> dict[str, Any]:
        """The job's Job or RayJob on ``cluster`` (this pool's own by default)."""
        on = cluster or self.cluster
        (found,) = [
            item
            for kind in ("jobs", "rayjobs")
            for item in on.objects(kind)
            if item["metadata"]["name"] == job_id
        ]
        return found

    def run_pods(self, job_id: str, cluster: FakeApiServer | None = None) -> None:
        """The controllers make the job's pods, and the kubelets run them."""
        on = cluster or self.cluster
        on.step()
        for pod in self.pods(job_id, on):
            on.start_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
        on.step()

    def finish(self, job_id: str, exit_code: int = 0, cluster: FakeApiServer | None = None) -> None:
        """Every pod of the job exits with ``exit_code``, and the controllers see it."""
        on = cluster or self.cluster
        for pod in self.pods(job_id, on):
            on.finish_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], exit_code)
        on.step()

    def placed_on(self, job_id: str) -> str:
        """The cluster the job was placed on."""
        placed = self.job(job_id).placed
        assert placed is not None
        return placed.cluster

    def moves(self, job_id: str) -> list[tuple[str | None, str]]:
        """The job's history, as (from, to) states."""
        with transaction(self.factory) as session:
            return [(e.from_state, e.to_state) for e in JobRepository(session).events(job_id)]

    def held(self, account: str) -> Credits:
        """What ``account``'s subtree holds now, in the current period."""
        with transaction(self.factory) as session:
            books = Books(session, self.clock)
            return books.balances(account, books.current_period().name).held

    def restart(self) -> None:
        """The scheduler process is replaced: a new ``Scheduler`` and a new backend with a
        fresh client, over the same books and cluster; the old ones are never used again."""
        self.retired.append(self.backend)
        self.backend = kube_backend(self.cluster, self.clock)
        self.scheduler = Scheduler(
            self.factory, {"kube-daejeon": self.backend}, SETTINGS, self.clock
        )


@contextmanager
def kube_pool(database_url: str, tenancy: Tenancy = Tenancy.SHARED) -> Iterator[KubePool]:
    engine = make_engine(database_url)
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
                tenancy=tenancy,
            )
        )
    with kube_cluster(clock) as cluster:
        backend = kube_backend(cluster, clock)
        scheduler = Scheduler(factory, {"kube-daejeon": backend}, SETTINGS, clock)
        pool = KubePool(factory, clock, scheduler, cluster, backend)
        try:
            yield pool
        finally:
            for each in (*pool.retired, pool.backend):
                close(each)
            engine.dispose()


@pytest.fixture
def pool(fresh_database_url: str) -> Iterator[KubePool]:
    with kube_pool(fresh_database_url) as made:
        yield made


@pytest.fixture
def per_job_pool(fresh_database_url: str) -> Iterator[KubePool]:
    """The pool with ``kube-daejeon`` a cluster of a Ray cluster per job (KubeRay's RayJob)."""
    with kube_pool(fresh_database_url, Tenancy.PER_JOB) as made:
        yield made


@pytest.fixture
def busan(pool: KubePool) -> Iterator[FakeApiServer]:
    """A second national Kubernetes cluster in the books, ``kube-busan`` (one node of 8 H100s),
    with an API server and a backend of its own, beside ``kube-daejeon``."""
    with transaction(pool.factory) as session:
        Books(session, pool.clock).clusters.add(
            ClusterSpec(
                "kube-busan",
                BackendKind.KUBERNETES,
                SiteKind.NATIONAL,
                (Inventory("h100-80g", 1, 8),),
            )
        )
    with kube_cluster(pool.clock, nodes=1) as cluster:
        backend = kube_backend(cluster, pool.clock)
        pool.scheduler.backends = {**pool.scheduler.backends, "kube-busan": backend}
        try:
            yield cluster
        finally:
            close(backend)


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


def test_a_ray_gang_runs_as_a_rayjob_with_a_cluster_of_its_own(per_job_pool: KubePool) -> None:
    """On a cluster of a Ray cluster per job, a 16-GPU job without an image is a RayJob with a
    head and a worker per node, run to success and charged for all 16 GPUs."""
    pool = per_job_pool
    job_id = pool.submit("ray-pretrain", gpus=16, hours=4, image=None)
    pool.cycle()
    assert pool.launches() == [job_id]
    (rayjob,) = pool.cluster.objects("rayjobs")
    assert rayjob["metadata"]["namespace"] == NAMESPACE
    (workers,) = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    assert (workers["replicas"], workers["rayStartParams"]["num-gpus"]) == (2, "8")

    pool.run_pods(job_id)  # KubeRay makes the head and the workers; all run
    pool.cycle()
    assert pool.job(job_id).state is JobState.RUNNING
    pods = pool.pods(job_id)
    assert sorted(
        (pod["metadata"]["labels"]["ray.io/node-type"], pod["spec"]["nodeName"]) for pod in pods
    ) == [("head", "h100-80g-1"), ("worker", "h100-80g-1"), ("worker", "h100-80g-2")]

    pool.clock.advance(HOUR)
    (head,) = [pod for pod in pods if pod["metadata"]["labels"]["ray.io/node-type"] == "head"]
    pool.cluster.finish_pod(NAMESPACE, head["metadata"]["name"], 0)  # the driver exits
    pool.cluster.step()
    pool.cycle()

    assert pool.job(job_id).state is JobState.SUCCEEDED
    assert pool.entries(job_id, EntryKind.HOLD) == Credits.of(64).milli  # 16 GPUs x 4 h
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of(16).milli  # 16 GPUs x 1 h
    assert pool.held("kaist-nlp") == Credits.zero()


def test_a_preempted_job_is_suspended_with_its_grace_and_requeued(pool: KubePool) -> None:
    """Opportunistic work filling the cluster is preempted for a job that waited past the bound:
    its Job is suspended, its pods get the backend's grace period, it is charged for what ran
    and requeued, and the waiting job is placed only once its pods are gone."""
    scavengers = [
        pool.submit(
            f"scavenger-{n}",
            project="hanbit-robot-policy",
            hours=10,
            priority=PriorityClass.OPPORTUNISTIC,
        )
        for n in range(2)
    ]
    pool.cycle()
    for job_id in scavengers:
        pool.run_pods(job_id)
    thesis = pool.submit("thesis")
    pool.cycle()
    assert all(pool.job(job_id).state is JobState.RUNNING for job_id in scavengers)
    assert pool.job(thesis).state is JobState.QUEUED

    pool.clock.advance(31 * 60)  # past the 30 min bound; the scavengers ran past 10 min
    pool.cycle()  # chooses a victim and suspends its Job
    (victim,) = [job_id for job_id in scavengers if pool.job(job_id).stop_cause is not None]
    launched = pool.launched(victim)
    assert launched["spec"]["suspend"] is True
    template = launched["spec"]["template"]["spec"]
    assert template["terminationGracePeriodSeconds"] == pool.backend.grace_seconds
    (pod,) = pool.pods(victim)
    assert pod["spec"]["terminationGracePeriodSeconds"] == GRACE_SECONDS
    freed = pod["spec"]["nodeName"]

    pool.cycle()  # its pods still run (within their grace): nothing is placed on its GPUs
    assert pool.job(victim).state is JobState.RUNNING
    assert pool.job(thesis).state is JobState.QUEUED

    pool.cluster.step()  # the Job controller stops its pods
    assert pool.pods(victim) == []
    pool.cycle()  # sees it stopped: charged for what ran, requeued
    job = pool.job(victim)
    assert job.state is JobState.QUEUED
    assert ("running", "preempted") in pool.moves(victim)
    assert pool.entries(victim, EntryKind.CHARGE) == Credits.of("4.134").milli  # 8 x 31 min
    assert pool.entries(victim, EntryKind.HOLD) == pool.entries(
        victim, EntryKind.CHARGE
    ) + pool.entries(victim, EntryKind.RELEASE)

    pool.cycle()  # the waiting job takes the freed node
    assert pool.job(thesis).state is JobState.STARTING
    assert pool.job(victim).state is JobState.QUEUED  # opportunistic: behind it, and no room
    pool.run_pods(thesis)
    pool.cycle()
    assert pool.job(thesis).state is JobState.RUNNING
    assert [pod["spec"]["nodeName"] for pod in pool.pods(thesis)] == [freed]


def node_lifecycle_controller_fails_pods_on(cluster: FakeApiServer, node: str) -> None:
    """What Kubernetes' node lifecycle controller does to the pods of a node that stopped
    answering, once their tolerance of it ran out: each is failed, reason ``NodeLost``, through
    the API server, as the controller writes it."""
    core = k8s.CoreV1Api(cluster.api_client())
    for pod in cluster.objects("pods"):
        if pod["spec"].get("nodeName") != node:
            continue
        name, namespace = pod["metadata"]["name"], pod["metadata"]["namespace"]
        lost = f"Node {node} which was running pod {name} is unresponsive"
        core.patch_namespaced_pod_status(
            name, namespace, {"status": {"phase": "Failed", "reason": "NodeLost", "message": lost}}
        )


def test_a_job_on_a_node_gone_not_ready_is_a_refunded_system_fault(pool: KubePool) -> None:
    """A job's node goes NotReady and the node lifecycle controller fails its pod: the job ends
    a system fault, everything it was charged refunded and nothing held; while the node is down
    nothing new is placed on it."""
    job_id = pool.submit("unlucky")
    pool.cycle()
    pool.cluster.step()
    (pod,) = pool.pods(job_id)
    pool.cluster.start_pod(NAMESPACE, pod["metadata"]["name"], node="h100-80g-1")
    pool.cycle()
    pool.clock.advance(20 * 60)
    pool.cycle()
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of("2.667").milli  # 8 x 20 min

    pool.cluster.set_node_ready("h100-80g-1", False)
    pool.clock.advance(5 * 60)  # the pods' tolerance of a NotReady node runs out
    pool.cycle()  # the node is seen down; the pod still reads Running
    assert pool.job(job_id).state is JobState.RUNNING
    with transaction(pool.factory) as session:
        (down,) = Books(session).outages.open()
    assert (down.cluster, down.nodes, down.since) == ("kube-daejeon", 1, pool.clock())
    node_lifecycle_controller_fails_pods_on(pool.cluster, "h100-80g-1")
    pool.cluster.step()  # the Job controller: its only pod failed, so the Job did
    pool.cycle()

    job = pool.job(job_id)
    assert job.state is JobState.FAILED
    assert isinstance(job.cause, Ended)
    assert job.cause.outcome is Outcome.SYSTEM_FAULT
    assert "h100-80g-1" in job.reason
    charged = pool.entries(job_id, EntryKind.CHARGE)
    assert charged == Credits.of("3.334").milli  # 8 x 25 min, until the Job failed
    assert pool.entries(job_id, EntryKind.REFUND) == charged == job.cause.refunded.milli
    assert pool.entries(job_id, EntryKind.HOLD) == charged + pool.entries(job_id, EntryKind.RELEASE)
    assert pool.held("kaist-nlp") == Credits.zero()

    after = [pool.submit(f"after-{n}") for n in range(2)]
    pool.cycle()
    placed = [job_id for job_id in after if pool.job(job_id).state is JobState.STARTING]
    (waiting,) = set(after) - set(placed)
    assert "no h100-80g free" in pool.job(waiting).reason
    assert pool.launches() == sorted([job_id, *placed])
    pool.run_pods(placed[0])
    assert [pod["spec"]["nodeName"] for pod in pool.pods(placed[0])] == ["h100-80g-2"]


@pytest.mark.parametrize("name", ["llm-sft", "ray-sft"])
def test_a_job_past_its_time_limit_is_stopped_and_charged_exactly_its_limit(
    pool: KubePool, name: str
) -> None:
    """The cycle comes to a job past its time limit before Kubernetes' deadline does: it
    suspends the Job (or RayJob); the job ends timed out, charged its limit and not the seconds
    after."""
    job_id = pool.submit(name, hours=1, image=None if name.startswith("ray") else IMAGE)
    pool.cycle()
    pool.run_pods(job_id)
    pool.cycle()
    assert pool.job(job_id).state is JobState.RUNNING

    pool.clock.advance(HOUR + 5)
    pool.cycle()  # past the limit: asks the cluster to stop it
    assert pool.launched(job_id)["spec"]["suspend"] is True
    pool.cluster.step()
    pool.cluster.step()  # (KubeRay suspends in two steps)
    pool.cycle()

    job = pool.job(job_id)
    assert job.state is JobState.TIMED_OUT
    assert job.reason == "reached its time limit of 1h"
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of(8).milli  # 8 GPUs x 1 h
    assert pool.held("kaist-nlp") == Credits.zero()


@pytest.mark.parametrize("name", ["llm-sft", "ray-sft"])
def test_a_job_kubernetes_ended_at_its_deadline_is_timed_out(pool: KubePool, name: str) -> None:
    """Kubernetes sees the time limit first: the Job's activeDeadlineSeconds (or the RayJob's)
    passes and it fails with ``DeadlineExceeded``; the job ends timed out all the same, charged
    exactly its limit."""
    job_id = pool.submit(name, hours=1, image=None if name.startswith("ray") else IMAGE)
    pool.cycle()
    pool.run_pods(job_id)
    pool.cycle()
    spec = pool.launched(job_id)["spec"]
    assert spec["activeDeadlineSeconds"] == HOUR

    pool.clock.advance(HOUR + 5)
    pool.cluster.step()  # the controller ends it at its deadline, before the next cycle
    pool.cycle()

    job = pool.job(job_id)
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of(8).milli  # 8 GPUs x 1 h
    assert pool.held("kaist-nlp") == Credits.zero()
    assert (job.state, job.reason) == (JobState.TIMED_OUT, "reached its time limit of 1h")


def test_a_restarted_scheduler_adopts_a_running_job_without_launching_it_again(
    pool: KubePool,
) -> None:
    """The scheduler restarts (a new process: a new backend with a fresh client) while a job
    runs: the job is adopted, still running as the same launch, with one Job and one pod on the
    cluster, and settled and charged for its whole run when it ends."""
    job_id = pool.submit("long-run")
    pool.cycle()
    pool.run_pods(job_id)
    pool.cycle()
    pool.clock.advance(20 * 60)
    pool.cycle()
    before = pool.job(job_id)

    pool.restart()
    pool.clock.advance(10 * 60)  # the scheduler was down a while
    pool.cycle()

    job = pool.job(job_id)
    assert (job.state, job.attempt, job.submission_id) == (JobState.RUNNING, 1, job_id)
    assert job.started_at == before.started_at
    assert pool.launches() == [job_id]
    assert len(pool.pods(job_id)) == 1
    assert pool.moves(job_id).count(("starting", "running")) == 1

    # the restarted backend counts the adopted launch in its namespace's quota
    second = pool.submit("beside-it")
    pool.cycle()
    pool.run_pods(second)
    pool.cycle()
    assert pool.job(second).state is JobState.RUNNING
    (quota,) = pool.cluster.objects("resourcequotas", NAMESPACE)
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "16"}

    pool.clock.advance(30 * 60)
    pool.finish(job_id)
    pool.cycle()

    assert pool.job(job_id).state is JobState.SUCCEEDED
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of(8).milli  # 8 GPUs x 1 h
    assert pool.entries(job_id, EntryKind.HOLD) == Credits.of(8).milli + pool.entries(
        job_id, EntryKind.RELEASE
    )


class Crashed(Exception):
    """The scheduler process died at a step: nothing after it ran."""


def crash_at(step: str) -> Callable[[str], None]:
    def on_step(reached: str) -> None:
        if reached == step:
            raise Crashed(step)

    return on_step


@pytest.mark.parametrize("step", ["admitted", "dispatched"])
def test_a_job_admitted_before_a_restart_is_launched_once(pool: KubePool, step: str) -> None:
    """The scheduler dies after admitting a job (``admitted``: before launching it;
    ``dispatched``: after the cluster made its Job, before the books said so); the restarted
    one launches it (submitting again finds the Job of the same name), once, and it runs to its
    end and is charged for what it used."""
    job_id = pool.submit("interrupted")
    pool.scheduler.on_step = crash_at(step)
    with pytest.raises(Crashed):
        pool.cycle()
    assert pool.job(job_id).state is JobState.ADMITTED
    assert pool.launches() == ([job_id] if step == "dispatched" else [])

    pool.restart()
    pool.cycle()

    job = pool.job(job_id)
    assert (job.state, job.attempt) == (JobState.STARTING, 1)
    assert pool.launches() == [job_id]
    pool.run_pods(job_id)
    assert len(pool.pods(job_id)) == 1
    pool.cycle()
    assert pool.job(job_id).state is JobState.RUNNING
    pool.clock.advance(45 * 60)
    pool.finish(job_id)
    pool.cycle()

    assert pool.job(job_id).state is JobState.SUCCEEDED
    assert pool.entries(job_id, EntryKind.CHARGE) == Credits.of(6).milli  # 8 GPUs x 45 min
    assert pool.held("kaist-nlp") == Credits.zero()


def test_with_two_clusters_each_launch_lands_on_its_own(
    pool: KubePool, busan: FakeApiServer
) -> None:
    """A gang fills kube-daejeon, so the next job is placed on kube-busan: each launch is made
    on its own cluster's API server only, and each job is seen running, ended and settled from
    there."""
    gang = pool.submit("pretrain", gpus=16)
    pool.cycle()
    other = pool.submit("finetune")
    pool.cycle()
    assert (pool.placed_on(gang), pool.placed_on(other)) == ("kube-daejeon", "kube-busan")
    assert (pool.launches(), pool.launches(busan)) == ([gang], [other])

    pool.run_pods(gang)
    pool.run_pods(other, busan)
    pool.cycle()
    assert {pool.job(gang).state, pool.job(other).state} == {JobState.RUNNING}

    pool.clock.advance(30 * 60)
    pool.finish(other, 3, busan)  # fails, on busan only
    pool.cycle()
    assert pool.job(other).state is JobState.FAILED
    assert "exit code 3" in pool.job(other).reason
    assert pool.job(gang).state is JobState.RUNNING

    pool.clock.advance(30 * 60)
    pool.finish(gang)
    pool.cycle()

    assert pool.job(gang).state is JobState.SUCCEEDED
    assert pool.entries(gang, EntryKind.CHARGE) == Credits.of(16).milli  # 16 GPUs x 1 h
    assert pool.entries(other, EntryKind.CHARGE) == Credits.of(4).milli  # 8 GPUs x 30 min
    assert pool.entries(other, EntryKind.REFUND) == 0  # its own failure
    assert pool.held("kaist-nlp") == Credits.zero()
    assert (pool.launches(), pool.launches(busan)) == ([gang], [other])
