"""Attacks on the Kubernetes backend's tenancy, against a stateful fake API server.

A tenant controls a job's image, entrypoint, environment, name and runtime_env, and may get
hold of credentials for its organization's namespace. None of that may put work onto
accelerators around the books, reach another organization's namespace, or give a pod
privileges or the cluster's API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from scheduler.backends.base import LaunchSpec
from scheduler.backends.kubernetes import KubernetesBackend, Placement, manifests
from tests.scheduler.kube.fake_apiserver import FakeApiServer

PLACEMENTS = {"h100-80g": Placement.of("h100-80g", "nvidia.com/gpu")}


@pytest.fixture
def cluster() -> Iterator[FakeApiServer]:
    server = FakeApiServer()
    server.start()
    server.add_node("h100-a", {"nvidia.com/gpu": "8"}, labels={"gpupool.io/flavor": "h100-80g"})
    try:
        yield server
    finally:
        server.stop()


def launch(cluster: FakeApiServer, provisioning_class: str | None = None, **changes: Any) -> None:
    fields: dict[str, Any] = {
        "job_id": "gp-000000000001",
        "project": "kaist-nlp",
        "entrypoint": "python train.py",
        "gpus": 2,
        "flavor": "h100-80g",
        "time_limit_seconds": 3600,
        "image": "busybox",
        "organization": "kaist",
        "program": "universities",
    }
    backend = KubernetesBackend(
        cluster.api_client(), PLACEMENTS, provisioning_class=provisioning_class
    )
    try:
        asyncio.run(backend.submit(LaunchSpec(**(fields | changes))))
    finally:
        asyncio.run(backend.close())


def gpu_pod(name: str, gpus: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [
                {
                    "name": "miner",
                    "image": "busybox",
                    "resources": {
                        "limits": {"nvidia.com/gpu": str(gpus)},
                        "requests": {"nvidia.com/gpu": str(gpus)},
                    },
                }
            ]
        },
    }


def test_a_pod_started_around_the_books_gets_no_accelerators(cluster: FakeApiServer) -> None:
    """With the namespace's credentials a tenant creates a GPU pod of its own: the namespace's
    quota allows what gpupool launched there and nothing more. (Between a launch and its pods'
    creation, moments later, a pod could take that launch's place; the launch's own pod is then
    refused and the launch fails without running, so nothing runs beyond what was booked.)"""
    launch(cluster)
    cluster.step()  # the Job controller makes the launch's pod
    core = k8s.CoreV1Api(cluster.api_client())
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod("gpupool-kaist", gpu_pod("miner", 1))
    assert refused.value.status == 403
    assert "exceeded quota" in str(refused.value.body)


def test_no_job_field_chooses_the_namespace(cluster: FakeApiServer) -> None:
    """The namespace comes from the account tree; a hostile project or job id cannot pick
    another organization's."""
    launch(cluster, project="../gpupool-snu", job_id="gpupool-snu/x")
    (job,) = cluster.objects("jobs", "gpupool-kaist")
    assert cluster.objects("jobs", "gpupool-snu") == []
    labels = job["metadata"]["labels"]
    assert labels["gpupool.io/project"] != "../gpupool-snu"
    assert job["metadata"]["name"] == manifests.object_name("gpupool-snu/x")


def test_every_namespace_refuses_traffic_from_the_others(cluster: FakeApiServer) -> None:
    launch(cluster)
    launch(cluster, organization="snu", job_id="gp-000000000002")
    for namespace in ("gpupool-kaist", "gpupool-snu"):
        (policy,) = cluster.objects("networkpolicies", namespace)
        assert policy["spec"]["podSelector"] == {}
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_a_hostile_environment_gives_no_privileges_and_no_api_token(
    cluster: FakeApiServer,
) -> None:
    launch(
        cluster,
        runtime_env={"env_vars": {"KUBERNETES_SERVICE_HOST": "10.0.0.1", "LD_PRELOAD": "/x.so"}},
        image=None,
    )
    (rayjob,) = cluster.objects("rayjobs", "gpupool-kaist")
    cluster_spec = rayjob["spec"]["rayClusterSpec"]
    pods = [
        rayjob["spec"]["submitterPodTemplate"]["spec"],
        cluster_spec["headGroupSpec"]["template"]["spec"],
        *(group["template"]["spec"] for group in cluster_spec["workerGroupSpecs"]),
    ]
    assert_unprivileged(pods)


def assert_unprivileged(pods: list[dict[str, Any]]) -> None:
    for pod in pods:
        assert pod["automountServiceAccountToken"] is False
        assert "serviceAccountName" not in pod
        assert "hostNetwork" not in pod
        assert "volumes" not in pod
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["containers"]:
            assert container["securityContext"]["privileged"] is False
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert "volumeMounts" not in container


# -- cloud burst: what asks the cluster autoscaler for nodes -------------------------------------

ATOMIC = "best-effort-atomic-scale-up.autoscaling.x-k8s.io"
HOSTILE = {
    "job_id": "autoscaling.x-k8s.io/consume-provisioning-request",
    "project": "kubernetes.io/hostname=evil",
    "organization": "kaist",
    "program": "x-k8s.io/provisioning-class-name: queued",
}


@pytest.mark.parametrize("image", ["busybox", None], ids=["job", "rayjob"])
def test_the_pod_templates_of_a_capacity_request_give_no_privileges_and_no_api_token(
    image: str | None, cluster: FakeApiServer
) -> None:
    """The autoscaler makes nodes for the PodTemplates gpupool sends; they are the launch's own
    pods, so hold to the same guards (and a PodTemplate makes no pod by itself)."""
    launch(cluster, ATOMIC, **(HOSTILE | {"image": image, "gpus": 16, "nodes": 2}))
    templates = cluster.objects("podtemplates", "gpupool-kaist")
    assert templates
    assert_unprivileged([template["template"]["spec"] for template in templates])
    assert cluster.objects("pods") == []  # suspended: nothing runs until the nodes are there


@pytest.mark.parametrize("image", ["busybox", None], ids=["job", "rayjob"])
def test_no_tenant_field_names_an_annotation_or_label_key_of_a_capacity_request(
    image: str | None, cluster: FakeApiServer
) -> None:
    """Annotation and label keys are gpupool's and the autoscaler's own; the request a launch's
    pods consume is the launch's sanitised name, so a job id cannot make them consume another's
    capacity, nor choose the provisioning class."""
    launch(cluster, ATOMIC, **(HOSTILE | {"image": image}))
    name = manifests.object_name(HOSTILE["job_id"])
    (launched,) = cluster.objects("rayjobs" if image is None else "jobs", "gpupool-kaist")
    (request,) = cluster.objects("provisioningrequests", "gpupool-kaist")
    templates = cluster.objects("podtemplates", "gpupool-kaist")
    objects = [launched, request, *templates]
    pod_templates = [t for _, t, _ in manifests.pod_sets(launched)]
    pod_templates += [template["template"] for template in templates]
    allowed = {manifests.JOB_ID_ANNOTATION, manifests.CONSUME_ANNOTATION}
    allowed |= {manifests.PROVISIONING_CLASS_ANNOTATION}
    label_keys = set(manifests.MANAGED_BY) | {manifests.PROVISIONING_LABEL}
    label_keys |= {f"gpupool.io/{key}" for key in ("job", "project", "organization", "program")}
    for made in [*(o["metadata"] for o in objects), *(t["metadata"] for t in pod_templates)]:
        assert set(made.get("annotations") or {}) <= allowed
        assert {key for key in made.get("labels") or {} if "gpupool" in key} <= label_keys
        assert not {key for key in made.get("labels") or {} if "x-k8s.io" in key}
    for template in pod_templates:
        annotations = template["metadata"]["annotations"]
        assert annotations[manifests.CONSUME_ANNOTATION] == name == request["metadata"]["name"]
        assert annotations[manifests.PROVISIONING_CLASS_ANNOTATION] == ATOMIC
    assert request["spec"]["provisioningClassName"] == ATOMIC
    assert all(t["metadata"]["name"].startswith(f"{name}-") for t in templates)
    assert cluster.objects("provisioningrequests", "default") == []
