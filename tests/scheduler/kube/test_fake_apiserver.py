"""The fake kube-apiserver, driven only through the official ``kubernetes`` client over HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeAlias

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.scheduler.kube.fake_apiserver import FakeApiServer

Obj = dict[str, Any]
NS = "team-a"
RAY = ("ray.io", "v1")
PROVREQ = ("autoscaling.x-k8s.io", "v1")
# The client's generated signatures want model objects and make every field Optional; the tests,
# like a backend, send dicts and read fields they know are set, so they hold the APIs untyped.
Core: TypeAlias = Any  # kubernetes.client.CoreV1Api
Batch: TypeAlias = Any  # kubernetes.client.BatchV1Api
Custom: TypeAlias = Any  # kubernetes.client.CustomObjectsApi
Client: TypeAlias = Any  # kubernetes.client.ApiClient
Watch: Callable[[], Any] = watch.Watch  # untyped


@pytest.fixture
def api(fake_apiserver: FakeApiServer) -> Client:
    fake_apiserver.add_namespace(NS)
    return fake_apiserver.api_client()


@pytest.fixture
def core(api: Client) -> Core:
    return client.CoreV1Api(api)


@pytest.fixture
def batch(api: Client) -> Batch:
    return client.BatchV1Api(api)


@pytest.fixture
def custom(api: Client) -> Custom:
    return client.CustomObjectsApi(api)


def container(gpus: int = 0) -> Obj:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {"name": "main", "image": "busybox", "resources": resources}


def pod_body(name: str, labels: dict[str, str] | None = None, gpus: int = 0) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"containers": [container(gpus)]},
    }


def job_body(name: str, **spec: Any) -> Obj:
    template = {
        "metadata": {"labels": {"app": "train"}},
        "spec": {"restartPolicy": "Never", "containers": [container(gpus=1)]},
    }
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": template, **spec},
    }


def rayjob_body(name: str, workers: int = 2, **spec: Any) -> Obj:
    template = {"metadata": {"labels": {"team": "a"}}, "spec": {"containers": [container()]}}
    return {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": name},
        "spec": {
            "entrypoint": "python train.py",
            "rayClusterSpec": {
                "headGroupSpec": {"rayStartParams": {}, "template": template},
                "workerGroupSpecs": [
                    {"groupName": "gpu", "replicas": workers, "template": template},
                ],
            },
            **spec,
        },
    }


def pod_template_body(name: str, gpus: int = 8, flavor: str = "h100-80g") -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": name},
        "template": {
            "metadata": {"labels": {"app": "train"}},
            "spec": {
                "nodeSelector": {"gpupool.io/flavor": flavor},
                "containers": [container(gpus)],
            },
        },
    }


def request_body(name: str, *counts: tuple[str, int]) -> Obj:
    """A ProvisioningRequest for ``count`` pods of each named PodTemplate."""
    return {
        "apiVersion": "autoscaling.x-k8s.io/v1",
        "kind": "ProvisioningRequest",
        "metadata": {"name": name, "labels": {"team": "a"}},
        "spec": {
            "provisioningClassName": "best-effort-atomic-scale-up.autoscaling.x-k8s.io",
            "podSets": [
                {"podTemplateRef": {"name": template}, "count": count} for template, count in counts
            ],
        },
    }


def error(call: Callable[[], object]) -> tuple[int, Obj]:
    """The HTTP code and the Status body of a call that must fail."""
    with pytest.raises(ApiException) as caught:
        call()
    return caught.value.status, json.loads(caught.value.body or "{}")


def events(
    func: Callable[..., Any], *args: Any, count: int = 0, **kwargs: Any
) -> list[tuple[str, Obj]]:
    """(type, raw object) of the events of a watch, until its timeoutSeconds or, with ``count``,
    the count-th event."""
    seen, stream = [], Watch()
    for event in stream.stream(func, *args, **kwargs):
        seen.append((event["type"], event["raw_object"]))
        if len(seen) == count:
            stream.stop()
    return seen


def job_condition(batch: Batch, name: str, type_: str) -> Any:
    job = batch.read_namespaced_job(name, NS)
    return next((c for c in job.status.conditions or [] if c.type == type_), None)


def job_pods(core: Core, job: str) -> list[Any]:
    return list(core.list_namespaced_pod(NS, label_selector=f"job-name={job}").items)


# --- the server and discovery ----------------------------------------------------------------


def test_starts_fast_and_stops() -> None:
    server = FakeApiServer()
    began = time.perf_counter()
    server.start()
    assert time.perf_counter() - began < 0.1
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert client.VersionApi(server.api_client()).get_code().git_version == "v1.33.0"
    finally:
        server.stop()


def test_discovery(api: Client, fake_apiserver: FakeApiServer) -> None:
    assert client.CoreApi(api).get_api_versions().versions == ["v1"]
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"batch", "networking.k8s.io", "scheduling.k8s.io", "ray.io"} <= groups
    assert "autoscaling.x-k8s.io" in groups
    resources = client.BatchV1Api(api).get_api_resources().resources
    assert {r.name for r in resources} == {"jobs", "jobs/status"}
    core = {r.name: r for r in client.CoreV1Api(api).get_api_resources().resources}
    assert core["podtemplates"].namespaced
    assert "watch" in core["podtemplates"].verbs
    assert "podtemplates/status" not in core
    autoscaling = client.CustomObjectsApi(api).get_api_resources("autoscaling.x-k8s.io", "v1")
    assert {r.name: r.kind for r in autoscaling.resources} == {
        "provisioningrequests": "ProvisioningRequest",
        "provisioningrequests/status": "ProvisioningRequest",
    }
    assert ("GET", "/apis/batch/v1/") in fake_apiserver.requests


# --- create, get, list, delete of every kind ---------------------------------------------------

CRUD: dict[str, tuple[Obj, Callable[[client.ApiClient], tuple[Any, ...]]]] = {
    "pods": (
        pod_body("p"),
        lambda a: (
            lambda b: client.CoreV1Api(a).create_namespaced_pod(NS, b),
            lambda: client.CoreV1Api(a).read_namespaced_pod("p", NS),
            lambda: client.CoreV1Api(a).list_namespaced_pod(NS),
            lambda: client.CoreV1Api(a).delete_namespaced_pod("p", NS),
        ),
    ),
    "resourcequotas": (
        {"metadata": {"name": "q"}, "spec": {"hard": {"requests.nvidia.com/gpu": "4"}}},
        lambda a: (
            lambda b: client.CoreV1Api(a).create_namespaced_resource_quota(NS, b),
            lambda: client.CoreV1Api(a).read_namespaced_resource_quota("q", NS),
            lambda: client.CoreV1Api(a).list_namespaced_resource_quota(NS),
            lambda: client.CoreV1Api(a).delete_namespaced_resource_quota("q", NS),
        ),
    ),
    "serviceaccounts": (
        {"metadata": {"name": "runner"}},
        lambda a: (
            lambda b: client.CoreV1Api(a).create_namespaced_service_account(NS, b),
            lambda: client.CoreV1Api(a).read_namespaced_service_account("runner", NS),
            lambda: client.CoreV1Api(a).list_namespaced_service_account(NS),
            lambda: client.CoreV1Api(a).delete_namespaced_service_account("runner", NS),
        ),
    ),
    "nodes": (
        {"metadata": {"name": "gpu-1"}, "status": {"allocatable": {"nvidia.com/gpu": "8"}}},
        lambda a: (
            lambda b: client.CoreV1Api(a).create_node(b),
            lambda: client.CoreV1Api(a).read_node("gpu-1"),
            lambda: client.CoreV1Api(a).list_node(),
            lambda: client.CoreV1Api(a).delete_node("gpu-1"),
        ),
    ),
    "jobs": (
        job_body("train"),
        lambda a: (
            lambda b: client.BatchV1Api(a).create_namespaced_job(NS, b),
            lambda: client.BatchV1Api(a).read_namespaced_job("train", NS),
            lambda: client.BatchV1Api(a).list_namespaced_job(NS),
            lambda: client.BatchV1Api(a).delete_namespaced_job("train", NS),
        ),
    ),
    "networkpolicies": (
        {"metadata": {"name": "deny"}, "spec": {"podSelector": {}, "policyTypes": ["Egress"]}},
        lambda a: (
            lambda b: client.NetworkingV1Api(a).create_namespaced_network_policy(NS, b),
            lambda: client.NetworkingV1Api(a).read_namespaced_network_policy("deny", NS),
            lambda: client.NetworkingV1Api(a).list_namespaced_network_policy(NS),
            lambda: client.NetworkingV1Api(a).delete_namespaced_network_policy("deny", NS),
        ),
    ),
    "priorityclasses": (
        {"metadata": {"name": "urgent"}, "value": 1000, "preemptionPolicy": "Never"},
        lambda a: (
            lambda b: client.SchedulingV1Api(a).create_priority_class(b),
            lambda: client.SchedulingV1Api(a).read_priority_class("urgent"),
            lambda: client.SchedulingV1Api(a).list_priority_class(),
            lambda: client.SchedulingV1Api(a).delete_priority_class("urgent"),
        ),
    ),
    "rayjobs": (
        rayjob_body("ray"),
        lambda a: (
            lambda b: client.CustomObjectsApi(a).create_namespaced_custom_object(
                *RAY, NS, "rayjobs", b
            ),
            lambda: client.CustomObjectsApi(a).get_namespaced_custom_object(
                *RAY, NS, "rayjobs", "ray"
            ),
            lambda: client.CustomObjectsApi(a).list_namespaced_custom_object(*RAY, NS, "rayjobs"),
            lambda: client.CustomObjectsApi(a).delete_namespaced_custom_object(
                *RAY, NS, "rayjobs", "ray"
            ),
        ),
    ),
    "podtemplates": (
        pod_template_body("pt"),
        lambda a: (
            lambda b: client.CoreV1Api(a).create_namespaced_pod_template(NS, b),
            lambda: client.CoreV1Api(a).read_namespaced_pod_template("pt", NS),
            lambda: client.CoreV1Api(a).list_namespaced_pod_template(NS),
            lambda: client.CoreV1Api(a).delete_namespaced_pod_template("pt", NS),
        ),
    ),
    "provisioningrequests": (
        request_body("pr", ("pt", 1)),
        lambda a: (
            lambda b: client.CustomObjectsApi(a).create_namespaced_custom_object(
                *PROVREQ, NS, "provisioningrequests", b
            ),
            lambda: client.CustomObjectsApi(a).get_namespaced_custom_object(
                *PROVREQ, NS, "provisioningrequests", "pr"
            ),
            lambda: client.CustomObjectsApi(a).list_namespaced_custom_object(
                *PROVREQ, NS, "provisioningrequests"
            ),
            lambda: client.CustomObjectsApi(a).delete_namespaced_custom_object(
                *PROVREQ, NS, "provisioningrequests", "pr"
            ),
        ),
    ),
}


def _name(obj: Any) -> str:
    return str(obj["metadata"]["name"] if isinstance(obj, dict) else obj.metadata.name)


@pytest.mark.parametrize("plural", sorted(CRUD))
def test_create_get_list_delete(
    plural: str, api: Client, core: Core, fake_apiserver: FakeApiServer
) -> None:
    body, calls = CRUD[plural]
    create, read, list_, delete = calls(api)
    created = create(body)
    name = _name(created)
    assert _name(read()) == name
    assert [
        _name(o)
        for o in (
            list_()["items"] if plural in ("rayjobs", "provisioningrequests") else list_().items
        )
    ] == [name]
    code, status = error(lambda: create(body))
    assert (code, status["reason"], status["kind"]) == (409, "AlreadyExists", "Status")
    delete()
    assert fake_apiserver.objects(plural) == []
    code, status = error(read)
    assert (code, status["reason"], status["details"]["name"]) == (404, "NotFound", name)


def test_namespaces(core: Core, fake_apiserver: FakeApiServer) -> None:
    names = [n.metadata.name for n in core.list_namespace().items]
    assert names == ["default", NS]
    assert core.read_namespace(NS).status.phase == "Active"
    core.create_namespaced_pod(NS, pod_body("p"))
    core.delete_namespace(NS)
    assert fake_apiserver.objects("pods") == []
    assert error(lambda: core.read_namespace(NS))[0] == 404
    code, status = error(lambda: core.create_namespaced_pod(NS, pod_body("p")))
    assert (code, status["details"]["kind"]) == (404, "namespaces")


def test_create_assigns_metadata(core: Core, fake_apiserver: FakeApiServer) -> None:
    first = core.create_namespaced_pod(NS, pod_body("a"))
    second = core.create_namespaced_pod(
        NS, {"metadata": {"generateName": "worker-"}, "spec": {"containers": [container()]}}
    )
    assert first.metadata.namespace == NS
    assert first.metadata.generation == 1
    assert first.metadata.uid
    assert first.metadata.uid != second.metadata.uid
    assert first.metadata.creation_timestamp is not None
    assert int(second.metadata.resource_version) > int(first.metadata.resource_version)
    assert second.metadata.name.startswith("worker-")
    assert len(second.metadata.name) == 12
    assert first.status.phase == "Pending"
    stored = fake_apiserver.get_object("pods", NS, "a")
    assert stored is not None
    assert stored["metadata"]["uid"] == first.metadata.uid


def test_create_rejects_bad_bodies(core: Core, batch: Batch) -> None:
    wrong_kind = {**job_body("j"), "kind": "Pod"}
    assert error(lambda: batch.create_namespaced_job(NS, wrong_kind))[0] == 400
    wrong_version = {**job_body("j"), "apiVersion": "batch/v2"}
    assert error(lambda: batch.create_namespaced_job(NS, wrong_version))[0] == 400
    assert error(lambda: core.create_namespaced_pod(NS, pod_body("Bad_Name")))[0] == 422
    other_ns = {**pod_body("p"), "metadata": {"name": "p", "namespace": "elsewhere"}}
    assert error(lambda: core.create_namespaced_pod(NS, other_ns))[0] == 400


def test_not_found_is_a_status(batch: Batch) -> None:
    code, status = error(lambda: batch.read_namespaced_job("nope", "default"))
    assert code == 404
    assert status == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'jobs.batch "nope" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "nope", "group": "batch", "kind": "jobs"},
    }


# --- list filters ------------------------------------------------------------------------------


def test_label_selectors(core: Core) -> None:
    for name, labels in {
        "a": {"tier": "gpu", "team": "x"},
        "b": {"tier": "cpu", "team": "y"},
        "c": {"tier": "gpu"},
        "d": {},
    }.items():
        core.create_namespaced_pod(NS, pod_body(name, labels))

    def names(selector: str) -> list[str]:
        return [
            p.metadata.name for p in core.list_namespaced_pod(NS, label_selector=selector).items
        ]

    assert names("tier=gpu") == ["a", "c"]
    assert names("tier==gpu,team=x") == ["a"]
    assert names("tier!=gpu") == ["b", "d"]
    assert names("team") == ["a", "b"]
    assert names("!team") == ["c", "d"]
    assert names("team in (x, y),tier in (cpu)") == ["b"]
    assert names("tier notin (gpu)") == ["b", "d"]
    assert names("") == ["a", "b", "c", "d"]
    assert error(lambda: names("tier in gpu"))[0] == 400


def test_field_selectors_and_all_namespaces(core: Core, fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.add_node("node-1", {"cpu": "8"})
    for name in ("a", "b"):
        core.create_namespaced_pod(NS, pod_body(name))
    core.create_namespaced_pod("default", pod_body("c"))
    fake_apiserver.start_pod(NS, "a")

    def names(selector: str) -> list[str]:
        return [
            p.metadata.name for p in core.list_pod_for_all_namespaces(field_selector=selector).items
        ]

    assert names("") == ["c", "a", "b"]  # sorted by namespace, then name
    assert names("status.phase=Running") == ["a"]
    assert names("spec.nodeName=node-1") == ["a"]
    assert names("status.phase!=Running,metadata.namespace==team-a") == ["b"]
    assert names("metadata.name=c") == ["c"]
    assert error(lambda: names("spec.priority=3"))[0] == 400


def test_limit_and_continue(core: Core) -> None:
    for name in "abcde":
        core.create_namespaced_pod(NS, pod_body(name))
    page = core.list_namespaced_pod(NS, limit=2)
    seen = [p.metadata.name for p in page.items]
    while page.metadata._continue:
        page = core.list_namespaced_pod(NS, limit=2, _continue=page.metadata._continue)
        seen += [p.metadata.name for p in page.items]
    assert seen == list("abcde")


# --- updates -----------------------------------------------------------------------------------


def test_replace_checks_the_resource_version(batch: Batch, core: Core) -> None:
    job = batch.create_namespaced_job(NS, job_body("train")).to_dict()
    stale = job["metadata"]["resource_version"]
    job = batch.read_namespaced_job("train", NS)
    job.metadata.labels = {"a": "b"}
    relabelled = batch.replace_namespaced_job("train", NS, job)
    assert relabelled.metadata.labels == {"a": "b"}
    assert relabelled.metadata.generation == 1
    assert int(relabelled.metadata.resource_version) > int(stale)
    relabelled.spec.parallelism = 3
    respecced = batch.replace_namespaced_job("train", NS, relabelled)
    assert respecced.metadata.generation == 2
    assert respecced.spec.parallelism == 3
    relabelled.metadata.labels = {"c": "d"}
    code, status = error(lambda: batch.replace_namespaced_job("train", NS, relabelled))
    assert (code, status["reason"]) == (409, "Conflict")


def test_patches(core: Core) -> None:
    core.create_namespaced_pod(NS, pod_body("p", {"a": "1", "b": "2"}))
    merged = core.patch_namespaced_pod("p", NS, {"metadata": {"labels": {"a": None, "c": "3"}}})
    assert merged.metadata.labels == {"b": "2", "c": "3"}
    ops = [
        {"op": "add", "path": "/metadata/annotations", "value": {"x/y": "z"}},
        {"op": "replace", "path": "/metadata/labels/b", "value": "two"},
        {"op": "remove", "path": "/metadata/labels/c"},
        {"op": "test", "path": "/metadata/annotations/x~1y", "value": "z"},
    ]
    patched = core.patch_namespaced_pod("p", NS, ops)
    assert patched.metadata.labels == {"b": "two"}
    assert patched.metadata.annotations == {"x/y": "z"}
    bad = [{"op": "replace", "path": "/metadata/labels/missing", "value": "v"}]
    assert error(lambda: core.patch_namespaced_pod("p", NS, bad))[0] == 422
    stale = {"metadata": {"resourceVersion": "1", "labels": {"x": "y"}}}
    assert error(lambda: core.patch_namespaced_pod("p", NS, stale))[0] == 409


def test_status_subresource(batch: Batch, custom: Custom, core: Core) -> None:
    batch.create_namespaced_job(NS, job_body("train"))
    batch.patch_namespaced_job(
        "train", NS, {"status": {"active": 5}, "metadata": {"labels": {"a": "b"}}}
    )
    job = batch.read_namespaced_job("train", NS)
    assert job.status.active is None
    assert job.metadata.labels == {"a": "b"}
    job = batch.patch_namespaced_job_status(
        "train", NS, {"status": {"active": 5}, "spec": {"parallelism": 9}}
    )
    assert job.status.active == 5
    assert job.spec.parallelism == 1
    custom.create_namespaced_custom_object(*RAY, NS, "rayjobs", rayjob_body("ray"))
    patched = custom.patch_namespaced_custom_object_status(
        *RAY, NS, "rayjobs", "ray", {"status": {"jobStatus": "RUNNING"}}
    )
    assert patched["status"] == {"jobStatus": "RUNNING"}
    assert custom.get_namespaced_custom_object_status(*RAY, NS, "rayjobs", "ray")["status"] == {
        "jobStatus": "RUNNING"
    }
    ignored = custom.patch_namespaced_custom_object(
        *RAY, NS, "rayjobs", "ray", {"status": {"jobStatus": "X"}}
    )
    assert ignored["status"] == {"jobStatus": "RUNNING"}
    code, _ = error(
        lambda: custom.patch_namespaced_custom_object(
            *RAY,
            NS,
            "rayjobs",
            "ray",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    )
    assert code == 415


def test_finalizers_hold_a_deletion(core: Core, fake_apiserver: FakeApiServer) -> None:
    core.create_namespaced_config_map(NS, {"metadata": {"name": "cm", "finalizers": ["x/hold"]}})
    core.delete_namespaced_config_map("cm", NS)
    held = core.read_namespaced_config_map("cm", NS)
    assert held.metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("cm", NS, {"metadata": {"finalizers": None}})
    assert fake_apiserver.get_object("configmaps", NS, "cm") is None


# --- watches -----------------------------------------------------------------------------------


def test_watch_replays_from_a_resource_version_and_ends_at_its_timeout(
    batch: Batch,
) -> None:
    since = batch.list_namespaced_job(NS).metadata.resource_version
    batch.create_namespaced_job(NS, job_body("train"))
    batch.patch_namespaced_job("train", NS, {"metadata": {"labels": {"a": "b"}}})
    batch.delete_namespaced_job("train", NS)
    batch.create_namespaced_job("default", job_body("elsewhere"))
    began = time.monotonic()
    seen = events(batch.list_namespaced_job, NS, resource_version=since, timeout_seconds=1)
    assert 0.9 < time.monotonic() - began < 2
    assert [t for t, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
    versions = [int(o["metadata"]["resourceVersion"]) for _, o in seen]
    assert versions == sorted(versions)
    assert versions[0] > int(since)
    assert seen[1][1]["metadata"]["labels"] == {"a": "b"}


def test_watch_without_a_version_lists_first_then_streams(
    core: Core, fake_apiserver: FakeApiServer
) -> None:
    core.create_namespaced_pod(NS, pod_body("old"))
    received: list[tuple[str, str]] = []
    stream = Watch()

    def change_later() -> None:
        time.sleep(0.1)
        core.create_namespaced_pod(NS, pod_body("new"))

    threading.Thread(target=change_later).start()
    for event in stream.stream(core.list_namespaced_pod, NS, timeout_seconds=5):
        received.append((event["type"], event["object"].metadata.name))
        if len(received) == 2:
            stream.stop()
    assert received == [("ADDED", "old"), ("ADDED", "new")]


def test_watch_selectors_turn_changes_into_adds_and_deletes(core: Core) -> None:
    since = core.create_namespaced_pod(NS, pod_body("p", {"tier": "cpu"})).metadata.resource_version
    core.patch_namespaced_pod("p", NS, {"metadata": {"labels": {"tier": "gpu"}}})
    core.patch_namespaced_pod("p", NS, {"metadata": {"labels": {"tier": "gpu", "x": "y"}}})
    core.patch_namespaced_pod("p", NS, {"metadata": {"labels": {"tier": "cpu"}}})
    seen = events(
        core.list_namespaced_pod,
        NS,
        label_selector="tier=gpu",
        resource_version=since,
        timeout_seconds=5,
        count=3,
    )
    assert [t for t, _ in seen] == ["ADDED", "MODIFIED", "DELETED"]
    by_name = events(
        core.list_namespaced_pod,
        NS,
        field_selector="metadata.name=p",
        resource_version=since,
        timeout_seconds=5,
        count=3,
    )
    assert [t for t, _ in by_name] == ["MODIFIED"] * 3


def test_watch_of_an_expired_version_gets_410(batch: Batch, fake_apiserver: FakeApiServer) -> None:
    since = batch.create_namespaced_job(NS, job_body("a")).metadata.resource_version
    batch.create_namespaced_job(NS, job_body("b"))
    fake_apiserver.compact()
    with pytest.raises(ApiException) as caught:
        events(batch.list_namespaced_job, NS, resource_version=since, timeout_seconds=1)
    assert caught.value.status == 410
    assert "Expired" in str(caught.value.reason)


def test_watch_with_initial_events(batch: Batch) -> None:
    batch.create_namespaced_job(NS, job_body("a"))
    seen = events(
        batch.list_namespaced_job,
        NS,
        send_initial_events=True,
        resource_version_match="NotOlderThan",
        allow_watch_bookmarks=True,
        timeout_seconds=5,
        count=2,
    )
    assert [t for t, _ in seen] == ["ADDED", "BOOKMARK"]
    annotations = seen[1][1]["metadata"]["annotations"]
    assert annotations == {"k8s.io/initial-events-end": "true"}


def test_watch_bookmarks(batch: Batch) -> None:
    batch.create_namespaced_job(NS, job_body("a"))
    seen = events(batch.list_namespaced_job, NS, allow_watch_bookmarks=True, timeout_seconds=1)
    assert [t for t, _ in seen] == ["ADDED", "BOOKMARK"]
    assert (
        seen[1][1]["metadata"]["resourceVersion"]
        == batch.list_namespaced_job(NS).metadata.resource_version
    )


def test_watch_custom_objects(custom: Custom, core: Core) -> None:
    custom.create_namespaced_custom_object(*RAY, NS, "rayjobs", rayjob_body("a"))
    since = custom.list_namespaced_custom_object(*RAY, NS, "rayjobs")["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(*RAY, "default", "rayjobs", rayjob_body("b"))
    custom.delete_namespaced_custom_object(*RAY, NS, "rayjobs", "a")
    namespaced = events(
        custom.list_namespaced_custom_object,
        *RAY,
        NS,
        "rayjobs",
        resource_version=since,
        timeout_seconds=5,
        count=1,
    )
    assert [(t, o["metadata"]["name"]) for t, o in namespaced] == [("DELETED", "a")]
    cluster = events(custom.list_cluster_custom_object, *RAY, "rayjobs", timeout_seconds=5, count=1)
    assert [(t, o["metadata"]["name"]) for t, o in cluster] == [("ADDED", "b")]


# --- the Job controller ------------------------------------------------------------------------


def test_job_runs_to_completion(batch: Batch, core: Core, fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.add_node("gpu-1", {"nvidia.com/gpu": "8"})
    job = batch.create_namespaced_job(NS, job_body("train", parallelism=2, completions=2))
    fake_apiserver.step()
    pods = job_pods(core, "train")
    assert len(pods) == 2
    assert {p.status.phase for p in pods} == {"Pending"}
    pod = pods[0]
    assert pod.metadata.name.startswith("train-")
    assert len(pod.metadata.name) == len("train-") + 5
    assert pod.metadata.labels["batch.kubernetes.io/job-name"] == "train"
    assert pod.metadata.labels["app"] == "train"
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Job",
        "train",
        job.metadata.uid,
        True,
    )
    assert batch.read_namespaced_job("train", NS).status.active == 2
    for p in pods:
        fake_apiserver.start_pod(NS, p.metadata.name)
    fake_apiserver.step()
    status = batch.read_namespaced_job("train", NS).status
    assert (status.active, status.ready, status.start_time is not None) == (2, 2, True)
    fake_apiserver.finish_pod(NS, pods[0].metadata.name, 0)
    fake_apiserver.step()
    assert job_condition(batch, "train", "Complete") is None
    fake_apiserver.finish_pod(NS, pods[1].metadata.name, 0)
    fake_apiserver.step()
    status = batch.read_namespaced_job("train", NS).status
    assert (status.active, status.succeeded) == (None, 2)
    complete = job_condition(batch, "train", "Complete")
    assert complete is not None
    assert complete.status == "True"
    assert [p.spec.node_name for p in job_pods(core, "train")] == ["gpu-1", "gpu-1"]
    assert len(fake_apiserver.objects("pods", NS)) == 2  # no more pods after completion
    fake_apiserver.step()
    assert len(fake_apiserver.objects("pods", NS)) == 2


def test_job_fails_after_its_backoff_limit(
    batch: Batch, core: Core, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.add_node("gpu-1", {"nvidia.com/gpu": "8"})
    batch.create_namespaced_job(NS, job_body("retry", backoffLimit=1))
    batch.create_namespaced_job(NS, job_body("once", backoffLimit=0))
    fake_apiserver.step()
    for job in ("retry", "once"):
        fake_apiserver.finish_pod(NS, job_pods(core, job)[0].metadata.name, 1)
    fake_apiserver.step()
    failed = job_condition(batch, "once", "Failed")
    assert failed is not None
    assert failed.reason == "BackoffLimitExceeded"
    assert job_condition(batch, "retry", "Failed") is None
    retry = [p for p in job_pods(core, "retry") if p.status.phase == "Pending"]
    assert len(retry) == 1  # a replacement
    fake_apiserver.finish_pod(NS, retry[0].metadata.name, 2)
    fake_apiserver.step()
    failed = job_condition(batch, "retry", "Failed")
    assert failed is not None
    assert failed.reason == "BackoffLimitExceeded"
    assert batch.read_namespaced_job("retry", NS).status.failed == 2
    terminated = job_pods(core, "retry")[0].status.container_statuses[0].state.terminated
    assert terminated.exit_code in (1, 2)


def test_job_deadline(batch: Batch, core: Core, fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.add_node("gpu-1", {"nvidia.com/gpu": "8"})
    batch.create_namespaced_job(NS, job_body("slow", activeDeadlineSeconds=60))
    fake_apiserver.step()
    fake_apiserver.start_pod(NS, job_pods(core, "slow")[0].metadata.name)
    fake_apiserver.advance(59)
    fake_apiserver.step()
    assert job_condition(batch, "slow", "Failed") is None
    fake_apiserver.advance(2)
    fake_apiserver.step()
    failed = job_condition(batch, "slow", "Failed")
    assert failed is not None
    assert failed.reason == "DeadlineExceeded"
    assert job_pods(core, "slow") == []  # its running pod is killed


def test_suspended_job_gets_no_pods(
    batch: Batch, core: Core, fake_apiserver: FakeApiServer
) -> None:
    batch.create_namespaced_job(NS, job_body("held", suspend=True))
    fake_apiserver.step()
    assert job_pods(core, "held") == []
    suspended = job_condition(batch, "held", "Suspended")
    assert suspended is not None
    assert suspended.status == "True"
    batch.patch_namespaced_job("held", NS, {"spec": {"suspend": False}})
    fake_apiserver.step()
    assert len(job_pods(core, "held")) == 1


def test_finished_job_is_deleted_after_its_ttl(
    batch: Batch, core: Core, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.add_node("gpu-1", {"nvidia.com/gpu": "8"})
    before = fake_apiserver.clock()
    batch.create_namespaced_job(NS, job_body("train", ttlSecondsAfterFinished=100))
    fake_apiserver.step()
    fake_apiserver.finish_pod(NS, job_pods(core, "train")[0].metadata.name, 0)
    since = core.list_namespaced_pod(NS).metadata.resource_version
    fake_apiserver.step()
    fake_apiserver.advance(100)
    assert (fake_apiserver.clock() - before).total_seconds() >= 100
    fake_apiserver.step()
    assert batch.list_namespaced_job(NS).items == []
    seen = events(core.list_namespaced_pod, NS, resource_version=since, timeout_seconds=5, count=1)
    assert [t for t, _ in seen] == ["DELETED"]  # its pod went with it


# --- the RayJob controller ---------------------------------------------------------------------


def rayjob_status(custom: Custom, name: str) -> Obj:
    status: Obj = custom.get_namespaced_custom_object_status(*RAY, NS, "rayjobs", name).get(
        "status", {}
    )
    return status


def test_rayjob_runs_and_shuts_down(
    custom: Custom, core: Core, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.add_node("gpu-1", {"cpu": "64"})
    custom.create_namespaced_custom_object(
        *RAY, NS, "rayjobs", rayjob_body("ray", shutdownAfterJobFinishes=True)
    )
    fake_apiserver.step()
    assert rayjob_status(custom, "ray")["jobDeploymentStatus"] == "Initializing"
    assert rayjob_status(custom, "ray")["jobStatus"] == "PENDING"
    pods = core.list_namespaced_pod(NS, label_selector="ray.io/cluster=ray").items
    kinds = sorted(p.metadata.labels["ray.io/node-type"] for p in pods)
    assert kinds == ["head", "worker", "worker"]
    assert all(
        p.metadata.labels["team"] == "a" and p.metadata.owner_references[0].kind == "RayJob"
        for p in pods
    )
    for p in pods[:2]:
        fake_apiserver.start_pod(NS, p.metadata.name)
    fake_apiserver.step()
    assert rayjob_status(custom, "ray")["jobDeploymentStatus"] == "Initializing"
    fake_apiserver.start_pod(NS, pods[2].metadata.name)
    fake_apiserver.step()
    status = rayjob_status(custom, "ray")
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Running", "RUNNING")
    head = next(p for p in pods if p.metadata.labels["ray.io/node-type"] == "head")
    fake_apiserver.finish_pod(NS, head.metadata.name, 0, log="done\n")
    fake_apiserver.step()
    status = rayjob_status(custom, "ray")
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Complete", "SUCCEEDED")
    assert "endTime" in status
    assert core.list_namespaced_pod(NS).items == []


def test_rayjob_failure_ttl_and_deadline(
    custom: Custom, core: Core, fake_apiserver: FakeApiServer
) -> None:
    fake_apiserver.add_node("gpu-1", {"cpu": "64"})
    body = rayjob_body("bad", workers=0, shutdownAfterJobFinishes=True, ttlSecondsAfterFinished=30)
    custom.create_namespaced_custom_object(*RAY, NS, "rayjobs", body)
    custom.create_namespaced_custom_object(
        *RAY, NS, "rayjobs", rayjob_body("slow", activeDeadlineSeconds=10)
    )
    fake_apiserver.step()
    head = core.list_namespaced_pod(NS, label_selector="ray.io/cluster=bad").items[0]
    fake_apiserver.finish_pod(NS, head.metadata.name, 1)
    fake_apiserver.step()
    status = rayjob_status(custom, "bad")
    assert (status["jobDeploymentStatus"], status["jobStatus"]) == ("Failed", "FAILED")
    assert len(core.list_namespaced_pod(NS, label_selector="ray.io/cluster=bad").items) == 1
    fake_apiserver.advance(31)
    fake_apiserver.step()
    assert core.list_namespaced_pod(NS, label_selector="ray.io/cluster=bad").items == []
    status = rayjob_status(custom, "slow")
    assert (status["jobDeploymentStatus"], status["reason"]) == ("Failed", "DeadlineExceeded")


def test_rayjob_suspension(custom: Custom, core: Core, fake_apiserver: FakeApiServer) -> None:
    custom.create_namespaced_custom_object(*RAY, NS, "rayjobs", rayjob_body("ray", suspend=True))
    fake_apiserver.step()
    assert rayjob_status(custom, "ray")["jobDeploymentStatus"] == "Suspended"
    assert core.list_namespaced_pod(NS).items == []
    custom.patch_namespaced_custom_object(*RAY, NS, "rayjobs", "ray", {"spec": {"suspend": False}})
    fake_apiserver.step()
    assert rayjob_status(custom, "ray")["jobDeploymentStatus"] == "Initializing"
    assert len(core.list_namespaced_pod(NS).items) == 3
    custom.patch_namespaced_custom_object(*RAY, NS, "rayjobs", "ray", {"spec": {"suspend": True}})
    fake_apiserver.step()
    assert rayjob_status(custom, "ray")["jobDeploymentStatus"] == "Suspending"
    assert core.list_namespaced_pod(NS).items == []
    fake_apiserver.step()
    assert rayjob_status(custom, "ray")["jobDeploymentStatus"] == "Suspended"


# --- deletion ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "pods_left"), [("Background", 0), ("Foreground", 0), ("Orphan", 1), (None, 1)]
)
def test_deleting_a_job_propagates(
    policy: str | None,
    pods_left: int,
    batch: Batch,
    core: Core,
    fake_apiserver: FakeApiServer,
) -> None:
    batch.create_namespaced_job(NS, job_body("train"))
    fake_apiserver.step()
    kwargs = {"propagation_policy": policy} if policy else {}
    batch.delete_namespaced_job("train", NS, **kwargs)
    left = core.list_namespaced_pod(NS).items
    assert len(left) == pods_left
    assert all(not p.metadata.owner_references for p in left)  # orphans lose their owner


def test_deleting_a_rayjob_deletes_its_pods(
    custom: Custom, core: Core, fake_apiserver: FakeApiServer
) -> None:
    custom.create_namespaced_custom_object(*RAY, NS, "rayjobs", rayjob_body("ray"))
    fake_apiserver.step()
    assert len(core.list_namespaced_pod(NS).items) == 3
    custom.delete_namespaced_custom_object(
        *RAY, NS, "rayjobs", "ray", propagation_policy="Foreground"
    )
    assert core.list_namespaced_pod(NS).items == []


def test_delete_collection_and_preconditions(core: Core) -> None:
    for name, tier in (("a", "gpu"), ("b", "gpu"), ("c", "cpu")):
        core.create_namespaced_pod(NS, pod_body(name, {"tier": tier}))
    core.delete_collection_namespaced_pod(NS, label_selector="tier=gpu")
    assert [p.metadata.name for p in core.list_namespaced_pod(NS).items] == ["c"]
    options = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid="other"))
    assert error(lambda: core.delete_namespaced_pod("c", NS, body=options))[0] == 409
    deleted = core.delete_namespaced_pod("c", NS, grace_period_seconds=0)
    assert deleted.metadata.name == "c"


# --- nodes, scheduling, logs, quota ------------------------------------------------------------


def test_node_readiness_and_cordon(core: Core, fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.add_node("gpu-1", {"nvidia.com/gpu": "8"}, labels={"pool": "h100"})
    node = core.read_node("gpu-1")
    assert node.status.allocatable == {
        "nvidia.com/gpu": "8",
        "cpu": "128",
        "memory": "1Ti",
        "pods": "110",
        "ephemeral-storage": "1Ti",
    }
    assert node.metadata.labels["pool"] == "h100"
    assert [(c.type, c.status) for c in node.status.conditions] == [("Ready", "True")]
    fake_apiserver.set_node_ready("gpu-1", False)
    node = core.read_node("gpu-1")
    assert node.status.conditions[0].status == "False"
    assert [t.key for t in node.spec.taints] == ["node.kubernetes.io/not-ready"]
    fake_apiserver.set_node_ready("gpu-1", True)
    fake_apiserver.cordon("gpu-1")
    node = core.read_node("gpu-1")
    assert node.spec.unschedulable is True
    assert node.status.conditions[0].status == "True"
    fake_apiserver.cordon("gpu-1", cordoned=False)
    assert not core.read_node("gpu-1").spec.unschedulable


def test_start_pod_schedules_by_free_resources(core: Core, fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.add_node("a", {"nvidia.com/gpu": "4"})
    fake_apiserver.add_node("b", {"nvidia.com/gpu": "4"})
    fake_apiserver.add_node(
        "c", {"nvidia.com/gpu": "8"}, taints=[{"key": "reserved", "effect": "NoSchedule"}]
    )
    fake_apiserver.add_node("d", {"nvidia.com/gpu": "8"}, ready=False)
    for name in ("p1", "p2", "p3"):
        core.create_namespaced_pod(NS, pod_body(name, gpus=3))
        fake_apiserver.start_pod(NS, name)
    assert [core.read_namespaced_pod(n, NS).spec.node_name for n in ("p1", "p2")] == ["a", "b"]
    p3 = core.read_namespaced_pod("p3", NS)
    assert p3.status.phase == "Pending"
    assert p3.spec.node_name is None
    scheduled = p3.status.conditions[0]
    assert (scheduled.type, scheduled.status, scheduled.reason) == (
        "PodScheduled",
        "False",
        "Unschedulable",
    )
    assert scheduled.message.startswith("0/4 nodes are available:")
    assert "2 Insufficient nvidia.com/gpu" in scheduled.message
    fake_apiserver.finish_pod(NS, "p1", 0)
    fake_apiserver.start_pod(NS, "p3")
    running = core.read_namespaced_pod("p3", NS)
    assert (running.status.phase, running.spec.node_name) == ("Running", "a")
    assert running.status.container_statuses[0].state.running is not None
    core.create_namespaced_pod(NS, pod_body("pinned"))
    fake_apiserver.start_pod(NS, "pinned", node="c")
    assert core.read_namespaced_pod("pinned", NS).spec.node_name == "c"
    fake_apiserver.start_pod(NS, "pinned")  # already running: nothing changes
    assert core.read_namespaced_pod("pinned", NS).spec.node_name == "c"
    with pytest.raises(RuntimeError):
        fake_apiserver.start_pod(NS, "p1")  # it has ended
    with pytest.raises(KeyError):
        fake_apiserver.start_pod(NS, "missing")


def test_pod_logs(core: Core, fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.add_node("n", {"cpu": "4"})
    core.create_namespaced_pod(NS, pod_body("p"))
    code, status = error(lambda: core.read_namespaced_pod_log("p", NS))
    assert code == 400
    assert "waiting to start" in status["message"]
    fake_apiserver.start_pod(NS, "p")
    fake_apiserver.append_log(NS, "p", "one\ntwo\n")
    fake_apiserver.finish_pod(NS, "p", 0, log="three\n")
    assert core.read_namespaced_pod_log("p", NS) == "one\ntwo\nthree\n"
    assert core.read_namespaced_pod_log("p", NS, tail_lines=2, container="main") == "two\nthree\n"
    assert error(lambda: core.read_namespaced_pod_log("p", NS, container="other"))[0] == 400


def test_resource_quota_refuses_pods(
    batch: Batch, core: Core, fake_apiserver: FakeApiServer
) -> None:
    core.create_namespaced_resource_quota(
        NS,
        {
            "metadata": {"name": "gpus"},
            "spec": {"hard": {"requests.nvidia.com/gpu": "2", "pods": "10"}},
        },
    )
    core.create_namespaced_pod(NS, pod_body("a", gpus=2))
    code, status = error(lambda: core.create_namespaced_pod(NS, pod_body("b", gpus=1)))
    assert (code, status["reason"]) == (403, "Forbidden")
    assert status["message"] == (
        'pods "b" is forbidden: exceeded quota: gpus, requested: requests.nvidia.com/gpu=1, '
        "used: requests.nvidia.com/gpu=2, limited: requests.nvidia.com/gpu=2"
    )
    batch.create_namespaced_job(NS, job_body("train"))
    fake_apiserver.step()
    assert job_pods(core, "train") == []
    failed = core.list_namespaced_event(NS, field_selector="involvedObject.name=train").items
    assert [e.reason for e in failed] == ["FailedCreate"]
    assert "exceeded quota" in failed[0].message
    quota = core.read_namespaced_resource_quota("gpus", NS)
    assert quota.status.used == {"requests.nvidia.com/gpu": "2", "pods": "1"}
    core.delete_namespaced_pod("a", NS)
    fake_apiserver.step()
    assert len(job_pods(core, "train")) == 1  # the controller retries


def test_priority_class_admission(core: Core) -> None:
    scheduling: Any = client.SchedulingV1Api(core.api_client)
    scheduling.create_priority_class({"metadata": {"name": "high"}, "value": 100})
    body = pod_body("p")
    body["spec"]["priorityClassName"] = "high"
    assert core.create_namespaced_pod(NS, body).spec.priority == 100
    body = pod_body("q")
    body["spec"]["priorityClassName"] = "missing"
    assert error(lambda: core.create_namespaced_pod(NS, body))[0] == 403


def test_requests_are_recorded(core: Core, fake_apiserver: FakeApiServer) -> None:
    fake_apiserver.requests.clear()
    core.list_namespaced_pod(NS)
    core.create_namespaced_pod(NS, pod_body("p"))
    assert fake_apiserver.requests == [
        ("GET", f"/api/v1/namespaces/{NS}/pods"),
        ("POST", f"/api/v1/namespaces/{NS}/pods"),
    ]


@pytest.fixture
def two_servers() -> Iterator[tuple[FakeApiServer, FakeApiServer]]:
    first, second = FakeApiServer(), FakeApiServer()
    first.start()
    second.start()
    yield first, second
    first.stop()
    second.stop()


def test_servers_are_independent(two_servers: tuple[FakeApiServer, FakeApiServer]) -> None:
    first, second = two_servers
    core: Core = client.CoreV1Api(first.api_client())
    core.create_namespace({"metadata": {"name": "only-here"}})
    assert second.get_object("namespaces", None, "only-here") is None
    assert first.url != second.url


# --- the cluster autoscaler --------------------------------------------------------------------


def request_conditions(custom: Custom, name: str) -> dict[str, Obj]:
    request = custom.get_namespaced_custom_object(*PROVREQ, NS, "provisioningrequests", name)
    return {c["type"]: c for c in request.get("status", {}).get("conditions") or []}


def test_provisioning_adds_a_node_per_pod_and_says_provisioned(
    core: Core, custom: Custom, fake_apiserver: FakeApiServer
) -> None:
    core.create_namespaced_pod_template(NS, pod_template_body("workers", gpus=8))
    core.create_namespaced_pod_template(NS, pod_template_body("head", gpus=0))
    body = request_body("train", ("head", 1), ("workers", 2))
    custom.create_namespaced_custom_object(*PROVREQ, NS, "provisioningrequests", body)
    assert request_conditions(custom, "train") == {}  # nothing until the autoscaler answers
    assert core.list_node().items == []

    made = fake_apiserver.provision(NS, "train")

    nodes = {node.metadata.name: node for node in core.list_node().items}
    assert sorted(nodes) == sorted(made)
    assert len(made) == 3
    gpus = sorted(node.status.allocatable.get("nvidia.com/gpu", "0") for node in nodes.values())
    assert gpus == ["0", "8", "8"]
    for node in nodes.values():
        assert node.metadata.labels["gpupool.io/flavor"] == "h100-80g"
        assert [c.status for c in node.status.conditions if c.type == "Ready"] == ["True"]
    conditions = request_conditions(custom, "train")
    assert {kind: c["status"] for kind, c in conditions.items()} == {
        "Accepted": "True",
        "Provisioned": "True",
    }
    for each in conditions.values():  # metav1.Condition: all of these, always
        assert {"type", "status", "reason", "message", "lastTransitionTime"} <= set(each)
        assert each["observedGeneration"] == 1

    # a pod like the template's now runs on a new node
    core.create_namespaced_pod(NS, pod_body("worker-0", gpus=8))
    fake_apiserver.start_pod(NS, "worker-0")
    assert core.read_namespaced_pod("worker-0", NS).spec.node_name in made


def test_provisioning_needs_the_templates_it_names(
    custom: Custom, fake_apiserver: FakeApiServer
) -> None:
    body = request_body("train", ("missing", 1))
    custom.create_namespaced_custom_object(*PROVREQ, NS, "provisioningrequests", body)
    with pytest.raises(KeyError, match="missing"):
        fake_apiserver.provision(NS, "train")


def test_refused_provisioning_fails_the_request_and_adds_no_nodes(
    core: Core, custom: Custom, fake_apiserver: FakeApiServer
) -> None:
    core.create_namespaced_pod_template(NS, pod_template_body("workers"))
    body = request_body("train", ("workers", 2))
    custom.create_namespaced_custom_object(*PROVREQ, NS, "provisioningrequests", body)
    fake_apiserver.refuse_provisioning(NS, "train", "OutOfStock", "no H100 in ap-northeast-2")
    conditions = request_conditions(custom, "train")
    assert conditions["Failed"]["status"] == "True"
    assert conditions["Failed"]["reason"] == "OutOfStock"
    assert conditions["Failed"]["message"] == "no H100 in ap-northeast-2"
    assert conditions["Provisioned"]["status"] == "False"
    assert core.list_node().items == []


def test_a_condition_keeps_its_transition_time_until_its_status_changes(
    core: Core, custom: Custom, fake_apiserver: FakeApiServer
) -> None:
    custom.create_namespaced_custom_object(
        *PROVREQ, NS, "provisioningrequests", request_body("train", ("workers", 1))
    )
    fake_apiserver.provisioning_condition(NS, "train", "Provisioned", False, "Waiting", "ETA 5m")
    first = request_conditions(custom, "train")["Provisioned"]
    fake_apiserver.advance(60)
    fake_apiserver.provisioning_condition(NS, "train", "Provisioned", False, "Waiting", "ETA 4m")
    again = request_conditions(custom, "train")["Provisioned"]
    assert again["message"] == "ETA 4m"
    assert again["lastTransitionTime"] == first["lastTransitionTime"]
    fake_apiserver.advance(60)
    fake_apiserver.provisioning_condition(NS, "train", "Provisioned", True, "Provisioned")
    done = request_conditions(custom, "train")["Provisioned"]
    assert done["lastTransitionTime"] > first["lastTransitionTime"]


def test_a_provisioning_requests_spec_is_immutable_and_its_status_a_subresource(
    custom: Custom,
) -> None:
    api = (*PROVREQ, NS, "provisioningrequests")
    custom.create_namespaced_custom_object(*api, request_body("train", ("workers", 1)))
    grown = {"spec": {"podSets": [{"podTemplateRef": {"name": "workers"}, "count": 2}]}}
    code, status = error(lambda: custom.patch_namespaced_custom_object(*api, "train", grown))
    assert (code, status["reason"]) == (422, "Invalid")
    assert "spec.podSets: Invalid value: Value is immutable" in status["message"]
    # labels may change; a status sent to the main resource is dropped
    forged = {
        "metadata": {"labels": {"team": "b"}},
        "status": {"conditions": [{"type": "Provisioned", "status": "True"}]},
    }
    changed = custom.patch_namespaced_custom_object(*api, "train", forged)
    assert changed["metadata"]["labels"] == {"team": "b"}
    assert "status" not in changed


def test_watch_provisioning_requests_and_pod_templates(
    core: Core, custom: Custom, fake_apiserver: FakeApiServer
) -> None:
    since = custom.list_cluster_custom_object(*PROVREQ, "provisioningrequests")["metadata"][
        "resourceVersion"
    ]
    core.create_namespaced_pod_template(NS, pod_template_body("workers"))
    body = request_body("train", ("workers", 1))
    created = custom.create_namespaced_custom_object(*PROVREQ, NS, "provisioningrequests", body)
    fake_apiserver.provision(NS, "train")
    custom.delete_namespaced_custom_object(*PROVREQ, NS, "provisioningrequests", "train")
    core.delete_namespaced_pod_template("workers", NS)
    seen = events(
        custom.list_cluster_custom_object,
        *PROVREQ,
        "provisioningrequests",
        resource_version=since,
        timeout_seconds=5,
        count=4,
    )
    assert [
        (kind, [c["type"] for c in o.get("status", {}).get("conditions", [])]) for kind, o in seen
    ] == [
        ("ADDED", []),
        ("MODIFIED", ["Accepted"]),
        ("MODIFIED", ["Accepted", "Provisioned"]),
        ("DELETED", ["Accepted", "Provisioned"]),
    ]
    versions = [int(o["metadata"]["resourceVersion"]) for _, o in seen]
    assert versions[0] == int(created["metadata"]["resourceVersion"])
    assert versions == sorted(versions)
    templates = events(
        core.list_namespaced_pod_template, NS, resource_version=since, timeout_seconds=5, count=2
    )
    assert [kind for kind, _ in templates] == ["ADDED", "DELETED"]


def test_deleting_an_owner_deletes_its_pod_templates_and_requests(
    batch: Batch, core: Core, custom: Custom, fake_apiserver: FakeApiServer
) -> None:
    job = batch.create_namespaced_job(NS, job_body("train", suspend=True))
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "train",
        "uid": job.metadata.uid,
        "controller": False,
        "blockOwnerDeletion": False,
    }
    template = pod_template_body("workers")
    template["metadata"]["ownerReferences"] = [owner]
    core.create_namespaced_pod_template(NS, template)
    request = request_body("train", ("workers", 1))
    request["metadata"]["ownerReferences"] = [owner]
    custom.create_namespaced_custom_object(*PROVREQ, NS, "provisioningrequests", request)
    batch.delete_namespaced_job("train", NS, propagation_policy="Background")
    assert fake_apiserver.objects("podtemplates") == []
    assert fake_apiserver.objects("provisioningrequests") == []
