"""``KubernetesBackend`` on a cloud burst target: each launch asks the cluster autoscaler for its
nodes with a ProvisioningRequest and waits, suspended, until they are made; driven through the
official client against the fake API server, which plays the autoscaler when a test says so
(``provision``, ``refuse_provisioning``, ``provisioning_condition``). The cluster starts with
no accelerator nodes at all, as a burst target scaled to zero does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s

from jobs.lifecycle import RunState, RunStatus
from scheduler.backends.kubernetes import KubernetesBackend, Launch, run_status
from tests.scheduler.backends.kubernetes.schemas import validate
from tests.scheduler.backends.kubernetes.test_backend import (
    NAMESPACE,
    PLACEMENTS,
    _sent,
    pods_of,
    run,
    spec,
    start_all,
    synced,
)
from tests.scheduler.kube.fake_apiserver import FakeApiServer
from tests.waiting import eventually

ATOMIC = "best-effort-atomic-scale-up.autoscaling.x-k8s.io"
JOB = "gp-000000000001"
CONSUMES = "autoscaling.x-k8s.io/consume-provisioning-request"


@pytest.fixture
def cluster() -> Iterator[FakeApiServer]:
    """A burst target scaled to zero: no node has an accelerator until the autoscaler adds it."""
    with FakeApiServer() as server:
        server.add_node("system-a", {"cpu": "8"})
        yield server


@pytest.fixture
def backend(cluster: FakeApiServer) -> Iterator[KubernetesBackend]:
    """A burst target's backend reading the server each time (``watched`` keeps watches)."""
    made = burst_backend(cluster, watch=False)
    yield made
    run(made.close())


@pytest.fixture
def watched(cluster: FakeApiServer) -> Iterator[KubernetesBackend]:
    made = burst_backend(cluster)
    yield made
    run(made.close())


def burst_backend(cluster: FakeApiServer, watch: bool = True) -> KubernetesBackend:
    return KubernetesBackend(
        cluster.api_client(), PLACEMENTS, clock=cluster.now, provisioning_class=ATOMIC, watch=watch
    )


def launched(cluster: FakeApiServer, kind: str = "jobs") -> dict[str, Any]:
    (found,) = cluster.objects(kind, NAMESPACE)
    return found


def request(cluster: FakeApiServer, name: str = JOB) -> dict[str, Any] | None:
    return cluster.get_object("provisioningrequests", NAMESPACE, name)


def pod_sets(cluster: FakeApiServer, name: str = JOB) -> list[tuple[str, int]]:
    asked = request(cluster, name)
    assert asked is not None
    return [(s["podTemplateRef"]["name"], s["count"]) for s in asked["spec"]["podSets"]]


def left_behind(cluster: FakeApiServer) -> dict[str, int]:
    """What of gpupool's launches is in the namespace, by kind."""
    kinds = ("jobs", "rayjobs", "pods", "podtemplates", "provisioningrequests")
    return {kind: n for kind in kinds if (n := len(cluster.objects(kind, NAMESPACE)))}


def quota(cluster: FakeApiServer) -> dict[str, str]:
    (found,) = cluster.objects("resourcequotas", NAMESPACE)
    return dict(found["spec"]["hard"])


def test_a_single_gpu_job_waits_for_its_node_then_runs_there(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))

    job = launched(cluster)
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["labels"]["gpupool.io/provisioning"] == "waiting"
    assert job["spec"]["template"]["metadata"]["annotations"][CONSUMES] == JOB
    assert pod_sets(cluster) == [(f"{JOB}-pods", 1)]
    (template,) = cluster.objects("podtemplates", NAMESPACE)
    asked = request(cluster)
    assert asked is not None
    for made in (job, template, asked):
        validate(_sent(made))
        assert made["metadata"]["labels"]["gpupool.io/job"] == JOB
    assert quota(cluster) == {"requests.nvidia.com/gpu": "1"}  # it will hold its GPU

    cluster.step()
    assert pods_of(cluster, JOB) == []  # suspended: no pod asks for a node that is not there
    assert run(backend.status(JOB)) == RunStatus(
        RunState.PENDING, "waiting for cloud capacity: not answered yet"
    )
    cluster.provisioning_condition(
        NAMESPACE, JOB, "Provisioned", False, "Waiting", "estimated to be ready in 4 minutes"
    )
    assert run(backend.status(JOB)) == RunStatus(
        RunState.PENDING, "waiting for cloud capacity: estimated to be ready in 4 minutes"
    )

    (node,) = cluster.provision(NAMESPACE, JOB)
    assert run(backend.status(JOB)).state is RunState.PENDING  # let start on this read
    job = launched(cluster)
    assert job["spec"]["suspend"] is False
    assert job["metadata"]["labels"]["gpupool.io/provisioning"] == "provisioned"

    start_all(cluster, JOB)
    (pod,) = pods_of(cluster, JOB)
    assert pod["spec"]["nodeName"] == node
    assert pod["metadata"]["annotations"][CONSUMES] == JOB
    assert run(backend.status(JOB)).state is RunState.RUNNING


def test_a_gang_asks_for_a_node_per_pod_and_runs_on_the_new_nodes(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec(gpus=16, nodes=2)))
    assert pod_sets(cluster) == [(f"{JOB}-pods", 2)]
    assert quota(cluster) == {"requests.nvidia.com/gpu": "16"}
    assert run(backend.statuses())[JOB].state is RunState.PENDING

    nodes = cluster.provision(NAMESPACE, JOB)
    assert len(nodes) == 2
    run(backend.statuses())  # sees Provisioned: lets the gang start
    start_all(cluster, JOB)
    assert sorted(pod["spec"]["nodeName"] for pod in pods_of(cluster, JOB)) == sorted(nodes)
    assert run(backend.status(JOB)).state is RunState.RUNNING


def test_a_rayjob_asks_for_its_head_and_its_workers(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec(image=None, gpus=16, nodes=2)))
    rayjob = launched(cluster, "rayjobs")
    assert rayjob["spec"]["suspend"] is True
    assert pod_sets(cluster) == [(f"{JOB}-head", 1), (f"{JOB}-accelerators", 2)]
    for template in cluster.objects("podtemplates", NAMESPACE):
        validate(_sent(template))
    cluster.step()  # KubeRay: a RayJob made suspended reads Suspended
    assert launched(cluster, "rayjobs")["status"]["jobDeploymentStatus"] == "Suspended"
    waiting = run(backend.status(JOB))
    assert waiting.state is RunState.PENDING
    assert waiting.message.startswith("waiting for cloud capacity")

    nodes = cluster.provision(NAMESPACE, JOB)
    run(backend.status(JOB))  # let start
    # until KubeRay sees it let start, it still reads Suspended: that is no stop
    assert run(backend.status(JOB)).state is RunState.PENDING
    start_all(cluster, JOB)
    assert run(backend.status(JOB)).state is RunState.RUNNING
    workers = [
        pod["spec"]["nodeName"]
        for pod in pods_of(cluster, JOB)
        if pod["metadata"]["labels"].get("ray.io/node-type") == "worker"
    ]
    assert sorted(workers) == sorted(node for node in nodes if node in workers)
    assert len(set(workers)) == 2


@pytest.mark.parametrize("image", ["busybox", None], ids=["job", "rayjob"])
def test_refused_capacity_stops_the_job_as_refused_and_leaves_nothing_behind(
    image: str | None, backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec(image=image, gpus=16, nodes=2)))
    cluster.step()
    cluster.refuse_provisioning(NAMESPACE, JOB, "OutOfStock", "no H100 left in the region")

    refused = run(backend.statuses())[JOB]
    assert refused.state is RunState.STOPPED
    assert refused.capacity_refused is True
    assert refused.message == "no H100 left in the region"
    assert refused.started_at is None
    assert refused.ended_at is not None
    cluster.step()
    assert left_behind(cluster) == {}
    # it still reads so, though gone, until it is submitted again
    assert run(backend.status(JOB)) == refused
    assert run(backend.statuses())[JOB] == refused
    run(backend.submit(spec(image=image, gpus=16, nodes=2)))
    assert run(backend.status(JOB)).state is RunState.PENDING


@pytest.mark.parametrize("condition", ["BookingExpired", "CapacityRevoked"])
def test_capacity_lost_before_the_launch_started_is_refused(
    condition: str, backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    """A booking can expire before gpupool lets the launch start (it was down a while), and
    the cloud can take nodes back; either way the launch never gets them."""
    run(backend.submit(spec()))
    cluster.provision(NAMESPACE, JOB)
    cluster.provisioning_condition(NAMESPACE, JOB, condition, True, condition, "nodes went")
    refused = run(backend.status(JOB))
    assert (refused.state, refused.capacity_refused, refused.message) == (
        RunState.STOPPED,
        True,
        "nodes went",
    )
    assert left_behind(cluster) == {}


@pytest.mark.parametrize(
    ("runs", "condition", "refused"),
    [
        (False, "CapacityRevoked", True),  # its pods are made, not run: the nodes are gone
        (False, "BookingExpired", False),  # the autoscaler books for 10 minutes; it has them
        (True, "CapacityRevoked", False),  # it runs: a node lost ends it as any would
        (True, "BookingExpired", False),
    ],
)
def test_capacity_lost_after_the_launch_was_let_start(
    runs: bool, condition: str, refused: bool, backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    cluster.provision(NAMESPACE, JOB)
    run(backend.status(JOB))  # let start
    if runs:
        start_all(cluster, JOB)
    else:
        cluster.step()
    cluster.provisioning_condition(NAMESPACE, JOB, condition, True, condition, "nodes went")
    status = run(backend.status(JOB))
    assert status.capacity_refused is refused
    if refused:
        assert (status.state, status.message) == (RunState.STOPPED, "nodes went")
        assert left_behind(cluster) == {}
    else:
        assert status.state is (RunState.RUNNING if runs else RunState.PENDING)
        assert launched(cluster)["spec"]["suspend"] is False


def test_cancel_while_waiting_deletes_the_request_and_the_job_reads_stopped(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    run(backend.cancel(JOB))
    job = launched(cluster)
    assert job["spec"]["suspend"] is True
    assert "gpupool.io/provisioning" not in job["metadata"]["labels"]
    assert left_behind(cluster) == {"jobs": 1}  # kept a while, to say it was stopped
    stopped = run(backend.status(JOB))
    assert (stopped.state, stopped.message, stopped.capacity_refused) == (
        RunState.STOPPED,
        "stopped",
        False,
    )
    run(backend.statuses())  # nothing to let start
    assert launched(cluster)["spec"]["suspend"] is True
    run(backend.cancel(JOB))  # again: a no-op


def test_cancel_after_the_capacity_was_refused_stops_the_job(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    cluster.refuse_provisioning(NAMESPACE, JOB)
    run(backend.cancel(JOB))  # before any read saw the refusal
    assert left_behind(cluster) == {"jobs": 1}
    assert run(backend.status(JOB)).message == "stopped"


def test_cancel_after_the_start_deletes_the_request_too(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec(image=None)))
    cluster.provision(NAMESPACE, JOB)
    run(backend.status(JOB))
    start_all(cluster, JOB)
    run(backend.cancel(JOB))
    cluster.step()
    assert run(backend.status(JOB)).state is RunState.STOPPED
    assert left_behind(cluster) == {"rayjobs": 1}


def test_the_quota_counts_launches_waiting_for_capacity_and_not_cancelled_ones(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec("gp-000000000001", gpus=4)))
    run(backend.submit(spec("gp-000000000002", gpus=2)))
    assert quota(cluster) == {"requests.nvidia.com/gpu": "6"}
    run(backend.cancel("gp-000000000001"))
    run(backend.submit(spec("gp-000000000003", gpus=1)))
    assert quota(cluster) == {"requests.nvidia.com/gpu": "3"}


def test_submitting_twice_asks_once_and_a_submit_cut_short_asks_again(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec(gpus=16, nodes=2)))
    run(backend.submit(spec(gpus=16, nodes=2)))
    assert left_behind(cluster) == {"jobs": 1, "podtemplates": 1, "provisioningrequests": 1}
    assert quota(cluster) == {"requests.nvidia.com/gpu": "16"}
    # as if the scheduler stopped between making the Job and asking for its capacity
    _delete_request(cluster)
    assert left_behind(cluster) == {"jobs": 1}
    run(backend.submit(spec(gpus=16, nodes=2)))
    assert left_behind(cluster) == {"jobs": 1, "podtemplates": 1, "provisioningrequests": 1}
    assert pod_sets(cluster) == [(f"{JOB}-pods", 2)]


def test_a_launch_that_ended_long_ago_goes_with_its_request(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    cluster.provision(NAMESPACE, JOB)
    run(backend.status(JOB))
    start_all(cluster, JOB)
    (pod,) = pods_of(cluster, JOB)
    cluster.finish_pod(NAMESPACE, pod["metadata"]["name"], 0)
    cluster.step()
    assert run(backend.statuses())[JOB].state is RunState.SUCCEEDED
    cluster.advance(backend.keep_ended_seconds + 1)
    run(backend.statuses())
    cluster.step()
    assert left_behind(cluster) == {}


def test_the_watches_see_the_request_provisioned_and_the_launch_starts(
    watched: KubernetesBackend, cluster: FakeApiServer
) -> None:
    backend = watched
    run(backend.submit(spec()))
    run(backend.statuses())  # the watches start, provisioning requests among them
    assert backend.mirror is not None
    assert "requests" in backend.mirror.sources
    eventually("the watches to list everything", synced(backend), 10, 0.05)

    asked = len(cluster.requests)
    cluster.provision(NAMESPACE, JOB)
    eventually("the launch to be let start", lambda: _let_start(backend, cluster), 10, 0.05)
    # one patch, to let it start: reading asked the API server nothing
    assert [call for call in cluster.requests[asked:] if call[0] != "PATCH"] == []
    start_all(cluster, JOB)
    eventually(
        "the watch to tell of the running pod",
        lambda: run(backend.statuses())[JOB].state is RunState.RUNNING,
        10,
        0.05,
    )


def test_a_restarted_scheduler_follows_a_launch_that_waits(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    cluster.provision(NAMESPACE, JOB)
    again = burst_backend(cluster)
    try:
        assert run(again.statuses())[JOB].state is RunState.PENDING
        run(again.submit(spec()))
    finally:
        run(again.close())
    assert launched(cluster)["spec"]["suspend"] is False
    assert left_behind(cluster) == {"jobs": 1, "podtemplates": 1, "provisioningrequests": 1}


def test_without_a_provisioning_class_nothing_asks_for_capacity(cluster: FakeApiServer) -> None:
    plain = KubernetesBackend(cluster.api_client(), PLACEMENTS, clock=cluster.now, watch=False)
    try:
        run(plain.submit(spec()))
        run(plain.statuses())
        run(plain.cancel(JOB))
    finally:
        run(plain.close())
    job = launched(cluster)
    assert "gpupool.io/provisioning" not in job["metadata"]["labels"]
    assert "annotations" not in job["spec"]["template"]["metadata"]
    assert left_behind(cluster) == {"jobs": 1}
    assert not [path for _, path in cluster.requests if "provisioningrequests" in path]
    assert not [path for _, path in cluster.requests if "podtemplates" in path]


def test_a_provisioning_class_must_be_a_name(cluster: FakeApiServer) -> None:
    with pytest.raises(ValueError, match="not a provisioning class"):
        KubernetesBackend(cluster.api_client(), PLACEMENTS, provisioning_class="Check Capacity")


# -- what a launch's objects say, without a cluster ----------------------------------------------


def a_launch(suspend: bool, provisioning: str | None, *conditions: str) -> Launch:
    labels = {"gpupool.io/job": JOB}
    if provisioning is not None:
        labels["gpupool.io/provisioning"] = provisioning
    job = {
        "kind": "Job",
        "metadata": {"name": JOB, "namespace": NAMESPACE, "labels": labels},
        "spec": {"suspend": suspend, "parallelism": 1},
        "status": {},
    }
    asked = {
        "metadata": {"name": JOB, "namespace": NAMESPACE, "labels": labels},
        "status": {
            "conditions": [
                {"type": kind, "status": "True", "reason": kind, "message": f"{kind}!"}
                for kind in conditions
            ]
        },
    }
    return Launch("Job", job, (), asked if provisioning else None)


@pytest.mark.parametrize(
    ("launch", "state", "message", "live"),
    [
        (a_launch(True, "waiting"), RunState.PENDING, "waiting for cloud capacity", True),
        (a_launch(True, "waiting", "Accepted"), RunState.PENDING, "Accepted!", True),
        (a_launch(True, "waiting", "Failed"), RunState.STOPPED, "Failed!", False),
        (a_launch(True, "waiting", "Provisioned", "BookingExpired"), RunState.STOPPED, "", False),
        (a_launch(True, None), RunState.STOPPED, "stopped", False),  # cancelled
        (a_launch(True, "provisioned"), RunState.STOPPED, "stopped", False),  # preempted
        (a_launch(False, "provisioned", "Provisioned"), RunState.PENDING, "", True),
        (a_launch(False, "provisioned", "BookingExpired"), RunState.PENDING, "", True),
        (a_launch(False, "provisioned", "CapacityRevoked"), RunState.STOPPED, "", False),
        (a_launch(False, None), RunState.PENDING, "", True),
    ],
)
def test_a_suspended_launch_waits_for_capacity_or_is_stopped(
    launch: Launch, state: RunState, message: str, live: bool
) -> None:
    status = run_status(launch)
    assert status.state is state
    assert message in status.message
    assert status.capacity_refused is (state is RunState.STOPPED and message != "stopped")
    assert launch.live is live


def _let_start(backend: KubernetesBackend, cluster: FakeApiServer) -> bool:
    run(backend.statuses())
    return launched(cluster)["spec"]["suspend"] is False


def _delete_request(cluster: FakeApiServer) -> None:
    api = cluster.api_client()
    k8s.CustomObjectsApi(api).delete_namespaced_custom_object(
        "autoscaling.x-k8s.io", "v1", NAMESPACE, "provisioningrequests", JOB
    )
    k8s.CoreV1Api(api).delete_namespaced_pod_template(f"{JOB}-pods", NAMESPACE)
