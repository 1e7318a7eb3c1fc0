"""What gpupool sends to Kubernetes is valid there, and holds tenants apart.

Every manifest is checked against Kubernetes' own schemas (``schemas.validate``), strictly.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from scheduler.backends.base import LaunchSpec
from scheduler.backends.kubernetes import manifests
from scheduler.backends.kubernetes.manifests import Placement
from tests.scheduler.backends.kubernetes.schemas import custom_schema, undeclared, validate

GPU = Placement.of("h100-80g", "nvidia.com/gpu")
NPU = Placement.of("rngd-48g", "furiosa.ai/rngd")


def spec(**changes: Any) -> LaunchSpec:
    fields: dict[str, Any] = {
        "job_id": "gp-0123456789ab",
        "project": "kaist-nlp",
        "entrypoint": "python train.py --epochs 3",
        "gpus": 4,
        "flavor": "h100-80g",
        "time_limit_seconds": 7200,
        "organization": "kaist",
        "program": "universities",
        "priority": "normal",
    }
    return LaunchSpec(**(fields | changes))


def pod_specs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod template a Job or RayJob holds."""
    if manifest["kind"] == "Job":
        return [manifest["spec"]["template"]["spec"]]
    cluster = manifest["spec"]["rayClusterSpec"]
    return [
        manifest["spec"]["submitterPodTemplate"]["spec"],
        cluster["headGroupSpec"]["template"]["spec"],
        *(group["template"]["spec"] for group in cluster["workerGroupSpecs"]),
    ]


LAUNCHES = {
    "job": lambda: manifests.launch(spec(image="nvcr.io/nvidia/pytorch:25.01-py3"), "ns", GPU, 30),
    "rayjob": lambda: manifests.launch(spec(), "ns", GPU, 30),
    "rayjob-npu": lambda: manifests.launch(spec(flavor="rngd-48g", gpus=2), "ns", NPU, 30),
    "rayjob-env": lambda: manifests.launch(
        spec(runtime_env={"pip": ["torch"], "env_vars": {"EPOCHS": "3"}}), "ns", GPU, 30
    ),
}


@pytest.mark.parametrize("name", sorted(LAUNCHES))
def test_every_launch_is_valid_where_it_is_sent(name: str) -> None:
    validate(LAUNCHES[name]())


def test_the_namespace_and_its_guards_are_valid() -> None:
    validate(manifests.namespace("gpupool-kaist", "kaist"))
    validate(manifests.network_policy("gpupool-kaist"))
    validate(manifests.resource_quota("gpupool-kaist", {"nvidia.com/gpu": 8, "furiosa.ai/rngd": 2}))
    for priority in manifests.PRIORITY_VALUES:
        validate(manifests.priority_class(priority))


def test_strict_checking_catches_a_misspelled_rayjob_field() -> None:
    rayjob = manifests.launch(spec(), "ns", GPU, 30)
    rayjob["spec"]["shutdownAfterJobFinish"] = True
    assert undeclared(rayjob, custom_schema("RayJob")) == [".spec.shutdownAfterJobFinish"]


@pytest.mark.parametrize("name", sorted(LAUNCHES))
def test_pods_run_unprivileged_without_a_service_account_token(name: str) -> None:
    for pod in pod_specs(LAUNCHES[name]()):
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["priorityClassName"] == "gpupool-normal"
        assert "hostNetwork" not in pod
        assert "volumes" not in pod
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["privileged"] is False
            assert security["capabilities"] == {"drop": ["ALL"]}


def test_a_job_asks_for_its_accelerators_where_its_flavor_is_and_ends_at_its_time_limit() -> None:
    job = manifests.launch(spec(image="busybox"), "ns", GPU, 30)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    assert job["spec"]["backoffLimit"] == 0  # a retry would run unbooked
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "4"}
    assert pod["nodeSelector"] == {"gpupool.io/flavor": "h100-80g"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["containers"][0]["command"] == ["/bin/sh", "-c", "python train.py --epochs 3"]


def test_a_rayjob_gets_a_cluster_of_its_own_sized_to_the_job_and_torn_down_after() -> None:
    rayjob = manifests.launch(spec(flavor="rngd-48g", gpus=2), "ns", NPU, 30)
    body = rayjob["spec"]
    worker = body["rayClusterSpec"]["workerGroupSpecs"][0]
    assert body["shutdownAfterJobFinishes"] is True
    assert body["activeDeadlineSeconds"] == 7200
    assert worker["replicas"] == 1
    assert worker["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "furiosa.ai/rngd": "2"
    }
    assert worker["rayStartParams"]["resources"] == '"{\\"rngd-48g\\": 2}"'
    assert body["entrypointResources"] == '{"rngd-48g": 2}'
    head = body["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "furiosa.ai/rngd" not in head["resources"]["limits"]


def test_runtime_env_reaches_ray_as_yaml_and_env_vars_reach_the_containers() -> None:
    rayjob = LAUNCHES["rayjob-env"]()
    assert yaml.safe_load(rayjob["spec"]["runtimeEnvYAML"]) == {
        "env_vars": {"EPOCHS": "3"},
        "pip": ["torch"],
    }
    worker = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    assert worker["containers"][0]["env"] == [{"name": "EPOCHS", "value": "3"}]


def test_labels_name_the_job_project_organization_and_program() -> None:
    job = manifests.launch(spec(image="busybox"), "ns", GPU, 30)
    assert job["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "gpupool",
        "gpupool.io/job": "gp-0123456789ab",
        "gpupool.io/project": "kaist-nlp",
        "gpupool.io/organization": "kaist",
        "gpupool.io/program": "universities",
    }
    assert job["metadata"]["annotations"] == {"gpupool.io/job-id": "gp-0123456789ab"}
    assert job["spec"]["template"]["metadata"]["labels"] == job["metadata"]["labels"]


DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


@given(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=200))
def test_any_job_id_makes_a_valid_name_and_two_ids_never_share_one(a: str, b: str) -> None:
    for job_id in (a, b):
        name = manifests.object_name(job_id)
        assert DNS_LABEL.fullmatch(name)
        assert len(name) <= manifests.RAY_NAME_LIMIT
    if a != b:
        assert manifests.object_name(a) != manifests.object_name(b)


@given(st.text(max_size=300))
def test_any_text_makes_a_valid_label_value(text: str) -> None:
    value = manifests.label_value(text)
    assert LABEL_VALUE.fullmatch(value)
    assert len(value) <= 63


def test_a_submission_id_that_is_a_name_already_is_kept() -> None:
    assert manifests.object_name("gp-0123456789ab-a2") == "gp-0123456789ab-a2"
    assert manifests.namespace_name("kaist") == "gpupool-kaist"


def test_a_gang_job_is_an_indexed_job_of_one_pod_per_node_that_find_each_other() -> None:
    gang = spec(image="busybox", gpus=16, nodes=2)
    job = manifests.launch(gang, "gpupool-kaist", GPU, 30)
    validate(job)
    body = job["spec"]
    pod = body["template"]["spec"]
    assert (body["completionMode"], body["completions"], body["parallelism"]) == ("Indexed", 2, 2)
    assert pod["subdomain"] == "gp-0123456789ab"
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "8"}
    env = {item["name"]: item["value"] for item in pod["containers"][0]["env"]}
    assert env["MASTER_ADDR"] == "gp-0123456789ab-0.gp-0123456789ab.gpupool-kaist.svc"
    assert env["GPUPOOL_NODES"] == "2"
    service = manifests.gang_service(gang, "gpupool-kaist", "0b6f-uid")
    validate(service)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == {"gpupool.io/job": "gp-0123456789ab"}
    assert service["metadata"]["ownerReferences"][0]["uid"] == "0b6f-uid"


def test_a_gang_rayjob_has_a_worker_per_node_and_its_driver_on_the_head() -> None:
    rayjob = manifests.launch(spec(gpus=12, nodes=2), "ns", GPU, 30)
    validate(rayjob)
    worker = rayjob["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]
    assert worker["replicas"] == 2
    assert worker["template"]["spec"]["containers"][0]["resources"]["limits"] == {
        "nvidia.com/gpu": "6"
    }
    assert "entrypointResources" not in rayjob["spec"]


def test_a_launch_cannot_span_more_nodes_than_it_has_gpus() -> None:
    with pytest.raises(ValueError, match="cannot span"):
        spec(gpus=2, nodes=3)


# -- capacity asked of the cluster autoscaler ----------------------------------------------------

ATOMIC = "best-effort-atomic-scale-up.autoscaling.x-k8s.io"
BURSTS = {
    "job": (spec(image="busybox", gpus=1), [("pods", 1)]),
    "gang-job": (spec(image="busybox", gpus=16, nodes=2), [("pods", 2)]),
    "rayjob": (spec(), [("head", 1), ("accelerators", 1)]),
    "gang-rayjob": (spec(gpus=16, nodes=2), [("head", 1), ("accelerators", 2)]),
}


def burst(name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A launch made to wait for capacity, and what asks for it (owned by uid ``0b6f``)."""
    waiting = manifests.awaiting_capacity(manifests.launch(BURSTS[name][0], "ns", GPU, 30), ATOMIC)
    return waiting, manifests.capacity_request(waiting, "0b6f", ATOMIC)


@pytest.mark.parametrize("name", sorted(BURSTS))
def test_a_launch_waiting_for_capacity_and_its_request_are_valid_where_they_are_sent(
    name: str,
) -> None:
    waiting, asked = burst(name)
    for made in (waiting, *asked):
        validate(made)
    assert [made["kind"] for made in asked][-1] == "ProvisioningRequest"


@pytest.mark.parametrize("name", sorted(BURSTS))
def test_the_request_counts_every_pod_of_the_launch_by_shape(name: str) -> None:
    waiting, (*templates, request) = burst(name)
    shapes = BURSTS[name][1]
    assert request["metadata"]["name"] == "gp-0123456789ab"
    assert request["spec"] == {
        "provisioningClassName": ATOMIC,
        "podSets": [
            {"podTemplateRef": {"name": f"gp-0123456789ab-{shape}"}, "count": count}
            for shape, count in shapes
        ],
    }
    # each template is the pods' own: the autoscaler makes nodes for what they ask and select
    sent = [template for _, template, _ in manifests.pod_sets(waiting)]
    assert [template["template"] for template in templates] == sent
    for made in (*templates, request):
        assert made["metadata"]["namespace"] == "ns"
        assert made["metadata"]["labels"]["gpupool.io/job"] == "gp-0123456789ab"
        assert "gpupool.io/provisioning" not in made["metadata"]["labels"]
        assert made["metadata"]["ownerReferences"] == [
            {
                "apiVersion": waiting["apiVersion"],
                "kind": waiting["kind"],
                "name": "gp-0123456789ab",
                "uid": "0b6f",
                "controller": False,
                "blockOwnerDeletion": False,
            }
        ]


@pytest.mark.parametrize("name", sorted(BURSTS))
def test_a_launch_waiting_for_capacity_is_suspended_and_its_pods_consume_the_request(
    name: str,
) -> None:
    waiting, _ = burst(name)
    assert waiting["spec"]["suspend"] is True
    assert waiting["metadata"]["labels"]["gpupool.io/provisioning"] == "waiting"
    for _, template, _ in manifests.pod_sets(waiting):
        assert template["metadata"]["annotations"] == {
            "autoscaling.x-k8s.io/consume-provisioning-request": "gp-0123456789ab",
            "autoscaling.x-k8s.io/provisioning-class-name": ATOMIC,
        }
        assert template["metadata"]["labels"]["gpupool.io/job"] == "gp-0123456789ab"
    if waiting["kind"] == "RayJob":  # the submitter asks for no nodes: the autoscaler's own
        submitter = waiting["spec"]["submitterPodTemplate"]["metadata"]
        assert "annotations" not in submitter


def test_a_launch_is_not_changed_by_making_it_wait() -> None:
    launch = manifests.launch(spec(), "ns", GPU, 30)
    before = yaml.safe_dump(launch)
    manifests.awaiting_capacity(launch, ATOMIC)
    assert yaml.safe_dump(launch) == before


def test_strict_checking_catches_a_misspelled_provisioning_request_field() -> None:
    _, (*_, request) = burst("job")
    request["spec"]["podSets"][0]["podTemplate"] = request["spec"]["podSets"][0]["podTemplateRef"]
    assert undeclared(request, custom_schema("ProvisioningRequest")) == [
        ".spec.podSets[0].podTemplate"
    ]
