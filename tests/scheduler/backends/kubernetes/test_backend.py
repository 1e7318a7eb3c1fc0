"""``KubernetesBackend`` driven through the official client against a stateful fake API server
(``tests.scheduler.kube.fake_apiserver``), which plays the Job and RayJob controllers and the
kubelet when a test says so. Every object the backend creates is validated against Kubernetes'
own schemas."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest

from jobs.lifecycle import RunState
from scheduler.backends.base import Backend, LaunchSpec, PermanentBackendError, StatusListing
from scheduler.backends.kubernetes import KubernetesBackend, Placement
from tests.scheduler.backends.kubernetes.schemas import validate
from tests.scheduler.kube.fake_apiserver import FakeApiServer
from tests.waiting import eventually

T = TypeVar("T")

PLACEMENTS = {
    "h100-80g": Placement.of("h100-80g", "nvidia.com/gpu"),
    "rngd-48g": Placement.of("rngd-48g", "furiosa.ai/rngd"),
}
NAMESPACE = "gpupool-kaist"
JOB = "gp-000000000001"


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def spec(job_id: str = "gp-000000000001", **changes: Any) -> LaunchSpec:
    fields: dict[str, Any] = {
        "job_id": job_id,
        "project": "kaist-nlp",
        "entrypoint": "python train.py",
        "gpus": 1,
        "flavor": "h100-80g",
        "time_limit_seconds": 3600,
        "image": "nvcr.io/nvidia/pytorch:25.01-py3",
        "organization": "kaist",
        "program": "universities",
    }
    return LaunchSpec(**(fields | changes))


@pytest.fixture
def cluster() -> Iterator[FakeApiServer]:
    """A fake cluster: two H100 nodes of 8 and an NPU node of 4, labelled with their flavors."""
    with FakeApiServer() as server:
        for name in ("h100-a", "h100-b"):
            server.add_node(
                name,
                {"nvidia.com/gpu": "8", "cpu": "64"},
                labels={"gpupool.io/flavor": "h100-80g"},
            )
        server.add_node(
            "npu-a",
            {"furiosa.ai/rngd": "4", "cpu": "32"},
            labels={"gpupool.io/flavor": "rngd-48g"},
        )
        yield server


@pytest.fixture
def backend(cluster: FakeApiServer) -> Iterator[KubernetesBackend]:
    """The backend as production builds it: statuses kept by watches once it is read."""
    made = KubernetesBackend(cluster.api_client(), PLACEMENTS, clock=cluster.now)
    yield made
    run(made.close())


def pods_of(cluster: FakeApiServer, job: str) -> list[dict[str, Any]]:
    return [
        pod
        for pod in cluster.objects("pods", NAMESPACE)
        if pod["metadata"].get("labels", {}).get("gpupool.io/job") == job
    ]


def start_all(cluster: FakeApiServer, job: str) -> None:
    cluster.step()
    for pod in pods_of(cluster, job):
        cluster.start_pod(NAMESPACE, pod["metadata"]["name"])
    cluster.step()


def test_it_is_a_backend_that_lists_statuses_in_one_go(backend: KubernetesBackend) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(backend, StatusListing)


def test_a_single_gpu_job_runs_to_success_in_its_organizations_guarded_namespace(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))

    namespace = cluster.get_object("namespaces", None, NAMESPACE)
    assert namespace is not None
    assert namespace["metadata"]["labels"]["gpupool.io/organization"] == "kaist"
    (policy,) = cluster.objects("networkpolicies", NAMESPACE)
    (quota,) = cluster.objects("resourcequotas", NAMESPACE)
    (job,) = cluster.objects("jobs", NAMESPACE)
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "1"}
    assert job["metadata"]["name"] == "gp-000000000001"
    for made in (namespace, policy, quota, job, *cluster.objects("priorityclasses")):
        validate(_sent(made))
    assert run(backend.status("gp-000000000001")).state is RunState.PENDING

    start_all(cluster, "gp-000000000001")
    running = run(backend.status("gp-000000000001"))
    assert running.state is RunState.RUNNING
    assert running.started_at is not None

    (pod,) = pods_of(cluster, "gp-000000000001")
    cluster.finish_pod(NAMESPACE, pod["metadata"]["name"], 0, log="epoch 3 done\n")
    cluster.step()
    ended = run(backend.status("gp-000000000001"))
    assert ended.state is RunState.SUCCEEDED
    assert ended.exit_code == 0
    assert "epoch 3 done" in run(backend.logs("gp-000000000001"))


def test_submitting_twice_launches_once(backend: KubernetesBackend, cluster: FakeApiServer) -> None:
    run(backend.submit(spec()))
    run(backend.submit(spec()))
    assert len(cluster.objects("jobs", NAMESPACE)) == 1
    (quota,) = cluster.objects("resourcequotas", NAMESPACE)
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "1"}


def test_a_job_that_exits_non_zero_fails_by_its_own_fault(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    start_all(cluster, "gp-000000000001")
    (pod,) = pods_of(cluster, "gp-000000000001")
    cluster.finish_pod(NAMESPACE, pod["metadata"]["name"], 3)
    cluster.step()
    ended = run(backend.status("gp-000000000001"))
    assert ended.state is RunState.FAILED
    assert ended.exit_code == 3
    assert ended.system_fault is False


def test_a_job_past_its_time_limit_is_ended_by_kubernetes(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec(time_limit_seconds=600)))
    start_all(cluster, "gp-000000000001")
    cluster.advance(601)
    cluster.step()
    ended = run(backend.status("gp-000000000001"))
    assert ended.state is RunState.STOPPED
    assert ended.time_limit_reached
    assert ended.message == "time limit reached"


def test_cancel_suspends_the_job_its_pods_stop_and_it_reads_stopped(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    start_all(cluster, "gp-000000000001")
    run(backend.cancel("gp-000000000001"))
    cluster.step()
    (job,) = cluster.objects("jobs", NAMESPACE)
    assert job["spec"]["suspend"] is True
    assert [p for p in pods_of(cluster, "gp-000000000001") if _phase(p) == "Running"] == []
    assert run(backend.status("gp-000000000001")).state is RunState.STOPPED
    run(backend.cancel("gp-000000000001"))  # again: a no-op
    run(backend.cancel("gp-never-launched"))  # never launched: a no-op


def test_a_job_without_an_image_runs_as_a_rayjob_with_a_cluster_of_its_own(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec(image=None, runtime_env={"pip": ["torch"]})))
    (rayjob,) = cluster.objects("rayjobs", NAMESPACE)
    validate(_sent(rayjob))
    start_all(cluster, "gp-000000000001")
    assert run(backend.status("gp-000000000001")).state is RunState.RUNNING

    head = next(
        pod
        for pod in pods_of(cluster, "gp-000000000001")
        if pod["metadata"]["labels"].get("ray.io/node-type") == "head"
    )
    cluster.append_log(NAMESPACE, head["metadata"]["name"], "loss 0.12\n")
    assert "loss 0.12" in run(backend.logs("gp-000000000001"))
    cluster.finish_pod(NAMESPACE, head["metadata"]["name"], 0)
    cluster.step()
    assert run(backend.status("gp-000000000001")).state is RunState.SUCCEEDED


def test_an_npu_job_asks_for_the_npu_resource_and_the_quota_counts_it(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec("gp-000000000002", flavor="rngd-48g", gpus=2, image=None)))
    run(backend.submit(spec("gp-000000000003")))
    (quota,) = cluster.objects("resourcequotas", NAMESPACE)
    assert quota["spec"]["hard"] == {
        "requests.furiosa.ai/rngd": "2",
        "requests.nvidia.com/gpu": "1",
    }
    start_all(cluster, "gp-000000000002")
    worker = next(
        pod
        for pod in pods_of(cluster, "gp-000000000002")
        if pod["metadata"]["labels"].get("ray.io/node-type") == "worker"
    )
    assert worker["spec"]["nodeName"] == "npu-a"


def test_a_flavor_the_cluster_does_not_have_is_refused(backend: KubernetesBackend) -> None:
    with pytest.raises(PermanentBackendError, match="no flavor a100-80g"):
        run(backend.submit(spec(flavor="a100-80g")))


def test_capacity_is_what_ready_schedulable_nodes_have_left(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec(gpus=4)))
    start_all(cluster, "gp-000000000001")
    free = run(backend.capacity())
    assert free["h100-80g"].gpus_per_node == 8
    assert sorted(free["h100-80g"].free) == [4, 8]
    assert free["rngd-48g"].free == (4,)

    cluster.cordon("h100-b")
    cluster.set_node_ready("npu-a", False)
    free = run(backend.capacity())
    assert free["h100-80g"].free == (4,)  # h100-b is cordoned: down
    assert free["rngd-48g"].free == ()  # NotReady: down


def test_statuses_come_from_watches_once_they_have_listed_everything(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    for number in range(1, 7):
        run(backend.submit(spec(f"gp-00000000000{number}")))
    first = run(backend.statuses())  # read with list calls; the watches start
    assert {status.state for status in first.values()} == {RunState.PENDING}
    assert backend.mirror is not None
    eventually("the watches to list everything", synced(backend), 10, 0.05)

    asked = len(cluster.requests)
    start_all(cluster, "gp-000000000001")  # the test's own steps are no API calls
    eventually(
        "the watch to tell of the running pod", running(backend, "gp-000000000001"), 10, 0.05
    )
    assert run(backend.status("gp-000000000002")).state is RunState.PENDING
    assert len(cluster.requests) == asked  # nothing asked of the API server (a watch that is
    # opened again as the last kind finishes listing, or after its timeout, asks nothing)


def test_watches_that_fall_behind_the_server_list_again(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    run(backend.statuses())
    eventually("the watches to list everything", synced(backend), 10, 0.05)
    cluster.compact()  # the server forgets its events: resuming from them answers 410
    start_all(cluster, "gp-000000000001")
    eventually(
        "a new list to tell of the running pod", running(backend, "gp-000000000001"), 10, 0.05
    )


def test_a_restarted_scheduler_finds_its_launches_and_does_not_launch_them_again(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    start_all(cluster, "gp-000000000001")
    again = KubernetesBackend(cluster.api_client(), PLACEMENTS, clock=cluster.now)
    try:
        assert run(again.statuses())["gp-000000000001"].state is RunState.RUNNING
        run(again.submit(spec()))
    finally:
        run(again.close())
    assert len(cluster.objects("jobs", NAMESPACE)) == 1


def test_launches_that_ended_long_ago_are_deleted_with_their_pods(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec()))
    start_all(cluster, "gp-000000000001")
    (pod,) = pods_of(cluster, "gp-000000000001")
    cluster.finish_pod(NAMESPACE, pod["metadata"]["name"], 0)
    cluster.step()
    run(backend.statuses())
    assert len(cluster.objects("jobs", NAMESPACE)) == 1  # kept a while: it says how it ended
    cluster.advance(backend.keep_ended_seconds + 1)
    run(backend.statuses())
    cluster.step()
    assert cluster.objects("jobs", NAMESPACE) == []
    assert pods_of(cluster, "gp-000000000001") == []


def synced(backend: KubernetesBackend) -> Callable[[], bool]:
    return lambda: backend.mirror is not None and backend.mirror.synced


def running(backend: KubernetesBackend, job_id: str) -> Callable[[], bool]:
    return lambda: run(backend.statuses())[job_id].state is RunState.RUNNING


def _phase(pod: dict[str, Any]) -> str:
    return str(pod.get("status", {}).get("phase", ""))


def _sent(stored: dict[str, Any]) -> dict[str, Any]:
    """An object as it was sent: without what the API server adds."""
    metadata = {
        key: value
        for key, value in stored["metadata"].items()
        if key in ("name", "namespace", "labels", "annotations")
    }
    return {key: value for key, value in stored.items() if key != "status"} | {"metadata": metadata}


def test_a_gang_runs_one_pod_per_node_named_through_its_service(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec(gpus=16, nodes=2)))
    (job,) = cluster.objects("jobs", NAMESPACE)
    (service,) = cluster.objects("services", NAMESPACE)
    assert service["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
    (quota,) = cluster.objects("resourcequotas", NAMESPACE)
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "16"}

    start_all(cluster, "gp-000000000001")
    pods = pods_of(cluster, "gp-000000000001")
    assert sorted(pod["spec"]["nodeName"] for pod in pods) == ["h100-a", "h100-b"]
    assert run(backend.status("gp-000000000001")).state is RunState.RUNNING
    for pod in pods:
        cluster.finish_pod(NAMESPACE, pod["metadata"]["name"], 0)
    cluster.step()
    assert run(backend.status("gp-000000000001")).state is RunState.SUCCEEDED


def test_the_quota_counts_every_live_launch_of_the_namespace(
    backend: KubernetesBackend, cluster: FakeApiServer
) -> None:
    run(backend.submit(spec("gp-000000000001", gpus=4)))
    run(backend.submit(spec("gp-000000000002", gpus=2)))
    run(backend.submit(spec("gp-000000000003", gpus=1, image=None)))
    (quota,) = cluster.objects("resourcequotas", NAMESPACE)
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "7"}
    run(backend.cancel("gp-000000000001"))
    run(backend.submit(spec("gp-000000000004", gpus=1)))
    (quota,) = cluster.objects("resourcequotas", NAMESPACE)
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "4"}
