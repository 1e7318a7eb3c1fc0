"""``KubernetesBackend``: gpupool's jobs on one Kubernetes cluster, through the official client.

Each launch is a Job or a RayJob (``manifests``) named after its submission id, so submitting
twice creates it once. Each organization's jobs run in a namespace of their own, made on first
use with a NetworkPolicy that refuses traffic from other namespaces and a ResourceQuota that
allows no more accelerators than gpupool launched there: a pod someone starts around the books
finds no accelerators left.

Where every launch stands is kept by watches (``mirror``: gpupool's Jobs, RayJobs and their
pods, listed once, then watched, listed again every 5 minutes), so a cycle, and the scheduler's
quick look at a job it just launched, ask the API server nothing; until the watches have
listed everything, a cycle reads it in three list calls.

Cancelling, or preempting, suspends the Job or RayJob (``spec.suspend``), as Kueue does:
Kubernetes stops its pods with SIGTERM and their grace period, and the object stays to say it
was stopped, until ``keep_ended_seconds`` after it ended, when it is deleted with its pods.
Capacity is what Ready, schedulable nodes can allocate of each flavor's resource, less what
pods there request; cordoned and NotReady nodes count as down.

The client is blocking: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from kubernetes import client as k8s
from kubernetes import config as kubeconfig
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from jobs.lifecycle import RunState, RunStatus
from quotas.clock import Clock, utc_now
from scheduler.backends.base import (
    FlavorCapacity,
    LaunchSpec,
    PermanentBackendError,
    TransientBackendError,
)
from scheduler.backends.kubernetes import manifests
from scheduler.backends.kubernetes.manifests import (
    JOB_LABEL,
    MANAGED_SELECTOR,
    RAYJOB_API,
    Images,
    Manifest,
    Placement,
)
from scheduler.backends.kubernetes.mirror import Mirror

T = TypeVar("T")
M = TypeVar("M", bound=Any)

POD_ENDED = ("Succeeded", "Failed")
SYSTEM_FAULT_REASONS = frozenset(
    {"NodeLost", "Evicted", "Shutdown", "Terminated", "UnexpectedAdmissionError", "Preempting"}
)
"""A pod that ended for one of these reasons was ended by the cluster, not by the job."""


@dataclass(frozen=True, slots=True)
class Launch:
    """One launch as the cluster holds it: its Job or RayJob, and the pods it made."""

    kind: str
    """``Job`` or ``RayJob``."""
    manifest: Manifest
    pods: tuple[Manifest, ...] = ()

    @property
    def namespace(self) -> str:
        return str(self.manifest["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def label(self) -> str:
        """The job label gpupool gave it (its object name)."""
        return str((self.manifest["metadata"].get("labels") or {}).get(JOB_LABEL, ""))

    @property
    def suspended(self) -> bool:
        return bool(self.manifest.get("spec", {}).get("suspend"))

    @property
    def live(self) -> bool:
        """Not asked to stop, and not ended: it holds, or will hold, its accelerators."""
        return not self.suspended and run_status(self).state in _LIVE


class KubernetesBackend:
    """Runs gpupool jobs on one Kubernetes cluster.

    ``placements`` says, for each flavor this cluster has, which resource its accelerators are
    and on which nodes they are (``manifests.Placement``).
    """

    def __init__(
        self,
        api: k8s.ApiClient,
        placements: Mapping[str, Placement],
        *,
        images: Images = manifests.DEFAULT_IMAGES,
        grace_seconds: int = 30,
        namespace_prefix: str = "gpupool-",
        keep_ended_seconds: int = 6 * 3600,
        clock: Clock = utc_now,
        resync_seconds: float = 300.0,
        watch: bool = True,
    ) -> None:
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.batch = k8s.BatchV1Api(api)
        self.networking = k8s.NetworkingV1Api(api)
        self.scheduling = k8s.SchedulingV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self.placements = dict(placements)
        self.images = images
        self.grace_seconds = grace_seconds
        self.namespace_prefix = namespace_prefix
        self.keep_ended_seconds = keep_ended_seconds
        self.clock = clock
        self._prepared: set[str] = set()
        """Namespaces and priority classes this process made or found."""
        self._submitting = asyncio.Lock()
        """Submissions one at a time: each sets its namespace's quota from the ones before."""
        self.resync_seconds = resync_seconds
        self.watch = watch
        """Keep statuses by watches (``mirror``); without, every read asks the server."""
        self.mirror: Mirror | None = None
        """Started by the first read of statuses."""

    @classmethod
    def from_kubeconfig(
        cls, context: str, placements: Mapping[str, Placement], **options: Any
    ) -> KubernetesBackend:
        """A backend for the cluster of kubeconfig ``context`` (``KUBECONFIG``, else
        ~/.kube/config; empty: its current context), or ``in-cluster``: the one gpupool runs in,
        through its service account."""
        if context == "in-cluster":
            kubeconfig.load_incluster_config()  # type: ignore[no-untyped-call]
            return cls(k8s.ApiClient(), placements, **options)
        files = os.environ.get("KUBECONFIG") or os.path.expanduser("~/.kube/config")
        api = kubeconfig.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=files, context=context or None
        )
        return cls(api, placements, **options)

    # -- the protocol ----------------------------------------------------------------------

    async def submit(self, spec: LaunchSpec) -> None:
        placement = self.placements.get(spec.flavor)
        if placement is None:
            raise PermanentBackendError(f"this cluster has no flavor {spec.flavor}")
        namespace = manifests.namespace_name(spec.organization, self.namespace_prefix)
        wanted = manifests.launch(spec, namespace, placement, self.grace_seconds, self.images)
        async with self._submitting:
            await _call(self._submit, spec, namespace, wanted)

    async def status(self, job_id: str) -> RunStatus:
        name = manifests.object_name(job_id)
        if self.mirror is not None and self.mirror.synced:
            launches = [launch for launch in self._mirrored() if launch.label == name]
        else:
            launches = await _call(self._launches, f"{JOB_LABEL}={name}")
        if not launches:
            return RunStatus(RunState.NOT_FOUND)
        return run_status(launches[0])

    async def statuses(self) -> Mapping[str, RunStatus]:
        if self.mirror is None and self.watch:
            self.mirror = self._mirror()
            self.mirror.start()
        if self.mirror is not None and self.mirror.synced:
            launches = self._mirrored()
        else:
            launches = await _call(self._launches, MANAGED_SELECTOR)
        await _call(self._forget_ended, launches)
        return {_job_id(launch): run_status(launch) for launch in launches}

    async def cancel(self, job_id: str) -> None:
        selector = f"{JOB_LABEL}={manifests.object_name(job_id)}"
        for launch in await _call(self._launches, selector, False):
            if launch.live:
                await _call(self._suspend, launch)

    async def logs(self, job_id: str) -> str:
        selector = f"{JOB_LABEL}={manifests.object_name(job_id)}"
        return await _call(self._logs, selector)

    async def capacity(self) -> Mapping[str, FlavorCapacity]:
        return await _call(self._capacity)

    async def close(self) -> None:
        if self.mirror is not None:
            await asyncio.to_thread(self.mirror.stop)
        await asyncio.to_thread(self.api.close)

    # -- the mirror --------------------------------------------------------------------------

    def _mirror(self) -> Mirror:
        def jobs(**options: Any) -> Any:
            return self.batch.list_job_for_all_namespaces(**options)

        def rayjobs(**options: Any) -> Any:
            return self.custom.list_cluster_custom_object(*RAYJOB_API, **options)

        def pods(**options: Any) -> Any:
            return self.core.list_pod_for_all_namespaces(**options)

        return Mirror(
            {"jobs": jobs, "rayjobs": rayjobs, "pods": pods},
            MANAGED_SELECTOR,
            resync_seconds=self.resync_seconds,
        )

    def _mirrored(self) -> list[Launch]:
        assert self.mirror is not None
        return _assemble(
            self.mirror.objects("jobs"), self.mirror.objects("rayjobs"), self.mirror.objects("pods")
        )

    # -- submitting ------------------------------------------------------------------------

    def _submit(self, spec: LaunchSpec, namespace: str, wanted: Manifest) -> None:
        self._prepare(namespace, spec)
        if self._launches(f"{JOB_LABEL}={manifests.object_name(spec.job_id)}", False):
            return  # launched before: submitting is idempotent
        placement = self.placements[spec.flavor]
        held = self._accelerators_held(namespace)
        held[placement.resource] = held.get(placement.resource, 0) + spec.gpus
        self._apply_quota(namespace, held)
        try:
            if wanted["kind"] == "Job":
                made = self.batch.create_namespaced_job(namespace, _model(k8s.V1Job, wanted))
                if spec.nodes > 1:  # the gang's pods find each other by name through it
                    assert made.metadata is not None
                    assert made.metadata.uid
                    service = manifests.gang_service(spec, namespace, made.metadata.uid)
                    _create(
                        lambda: self.core.create_namespaced_service(
                            namespace, _model(k8s.V1Service, service)
                        )
                    )
            else:
                self.custom.create_namespaced_custom_object(*_rayjobs(namespace), wanted)
        except ApiException as error:
            if error.status != 409:  # 409: it exists, which is what was asked
                raise

    def _prepare(self, namespace: str, spec: LaunchSpec) -> None:
        """The namespace with its guards, and the priority class, unless made already."""
        if namespace not in self._prepared:
            _create(
                lambda: self.core.create_namespace(
                    _model(k8s.V1Namespace, manifests.namespace(namespace, spec.organization))
                )
            )
            _create(
                lambda: self.networking.create_namespaced_network_policy(
                    namespace, _model(k8s.V1NetworkPolicy, manifests.network_policy(namespace))
                )
            )
            self._prepared.add(namespace)
        priority = manifests.priority_class_name(spec.priority)
        if priority not in self._prepared:
            _create(
                lambda: self.scheduling.create_priority_class(
                    _model(k8s.V1PriorityClass, manifests.priority_class(spec.priority))
                )
            )
            self._prepared.add(priority)

    def _accelerators_held(self, namespace: str) -> dict[str, int]:
        """Accelerators per resource that gpupool's live launches in ``namespace`` asked for."""
        held: dict[str, int] = {}
        for launch in self._launches(MANAGED_SELECTOR, False, namespace):
            if not launch.live:
                continue
            for resource, count in _requested(launch.manifest).items():
                held[resource] = held.get(resource, 0) + count
        return held

    def _apply_quota(self, namespace: str, accelerators: Mapping[str, int]) -> None:
        body = _model(k8s.V1ResourceQuota, manifests.resource_quota(namespace, accelerators))
        try:
            self.core.replace_namespaced_resource_quota(manifests.QUOTA_NAME, namespace, body)
        except ApiException as error:
            if error.status != 404:
                raise
            self.core.create_namespaced_resource_quota(namespace, body)

    # -- reading ---------------------------------------------------------------------------

    def _launches(
        self, selector: str, with_pods: bool = True, namespace: str | None = None
    ) -> list[Launch]:
        """gpupool's Jobs and RayJobs matching ``selector``, with their pods."""
        if namespace is None:
            jobs = _items(self.batch.list_job_for_all_namespaces, label_selector=selector)
            rayjobs = _items(
                self.custom.list_cluster_custom_object, *RAYJOB_API, label_selector=selector
            )
            pods = (
                _items(self.core.list_pod_for_all_namespaces, label_selector=selector)
                if with_pods
                else []
            )
        else:
            jobs = _items(self.batch.list_namespaced_job, namespace, label_selector=selector)
            rayjobs = _items(
                self.custom.list_namespaced_custom_object,
                *_rayjobs(namespace),
                label_selector=selector,
            )
            pods = []
        return _assemble(jobs, rayjobs, pods)

    def _logs(self, selector: str) -> str:
        pods = _items(self.core.list_pod_for_all_namespaces, label_selector=selector)
        if not pods:
            return ""
        # a RayJob's output is on its head (the driver runs there); a Job's on its one pod
        pods.sort(key=lambda pod: _labels(pod).get("ray.io/node-type") != "head")
        pod = pods[0]["metadata"]
        try:
            answer: Any = self.core.read_namespaced_pod_log(
                pod["name"], pod["namespace"], _preload_content=False
            )
        except ApiException as error:
            if error.status in (400, 404):  # not started yet, or gone
                return ""
            raise
        return bytes(answer.data).decode("utf-8", "replace")

    def _capacity(self) -> dict[str, FlavorCapacity]:
        nodes = _items(self.core.list_node)
        pods = [
            pod
            for pod in _items(self.core.list_pod_for_all_namespaces)
            if pod.get("status", {}).get("phase") not in POD_ENDED
            and pod.get("spec", {}).get("nodeName")
        ]
        requested: dict[str, dict[str, int]] = {}
        for pod in pods:
            on_node = requested.setdefault(pod["spec"]["nodeName"], {})
            for resource, count in _pod_requests(pod).items():
                on_node[resource] = on_node.get(resource, 0) + count
        capacity: dict[str, FlavorCapacity] = {}
        for flavor, placement in self.placements.items():
            per_node = 0
            free: list[int] = []
            for node in nodes:
                if not _matches(node, placement):
                    continue
                allocatable = _quantity(node["status"].get("allocatable", {}), placement.resource)
                if allocatable <= 0:
                    continue
                per_node = max(per_node, allocatable)
                if _up(node):
                    used = requested.get(node["metadata"]["name"], {}).get(placement.resource, 0)
                    free.append(max(0, allocatable - used))
            if per_node:
                capacity[flavor] = FlavorCapacity(flavor, per_node, tuple(free))
        return capacity

    # -- stopping and forgetting -----------------------------------------------------------

    def _suspend(self, launch: Launch) -> None:
        patch = {"spec": {"suspend": True}}
        try:
            if launch.kind == "Job":
                self.batch.patch_namespaced_job(launch.name, launch.namespace, patch)
            else:
                self.custom.patch_namespaced_custom_object(
                    *_rayjobs(launch.namespace), launch.name, patch
                )
        except ApiException as error:
            if error.status != 404:  # gone already: nothing runs
                raise

    def _forget_ended(self, launches: Iterable[Launch]) -> None:
        """Delete, with their pods, launches that ended over ``keep_ended_seconds`` ago."""
        cutoff = self.clock() - timedelta(seconds=self.keep_ended_seconds)
        for launch in launches:
            status = run_status(launch)
            if status.state in _LIVE or status.ended_at is None or status.ended_at > cutoff:
                continue
            options = k8s.V1DeleteOptions(propagation_policy="Background")
            try:
                if launch.kind == "Job":
                    self.batch.delete_namespaced_job(launch.name, launch.namespace, body=options)
                else:
                    self.custom.delete_namespaced_custom_object(
                        *_rayjobs(launch.namespace), launch.name, body=options
                    )
            except ApiException as error:
                if error.status != 404:
                    raise


_LIVE = (RunState.PENDING, RunState.RUNNING)
LAUNCH_APIS = {"Job": "batch/v1", "RayJob": "/".join(RAYJOB_API[:2])}


def _assemble(
    jobs: Iterable[Manifest], rayjobs: Iterable[Manifest], pods: Iterable[Manifest]
) -> list[Launch]:
    """Launches from their Jobs and RayJobs, each with the pods of the same job label."""
    by_job: dict[tuple[str, str], list[Manifest]] = {}
    for pod in pods:
        metadata = pod["metadata"]
        key = (metadata["namespace"], (metadata.get("labels") or {}).get(JOB_LABEL, ""))
        by_job.setdefault(key, []).append(pod)

    def launch(kind: str, manifest: Manifest) -> Launch:
        metadata = manifest["metadata"]
        key = (metadata["namespace"], (metadata.get("labels") or {}).get(JOB_LABEL, ""))
        # list items of built-in kinds come without their kind: say it, as a manifest does
        typed = {**manifest, "apiVersion": LAUNCH_APIS[kind], "kind": kind}
        return Launch(kind, typed, tuple(by_job.get(key, ())))

    return [launch("Job", job) for job in jobs] + [launch("RayJob", item) for item in rayjobs]


# -- what a launch's objects say ----------------------------------------------------------------


def run_status(launch: Launch) -> RunStatus:
    """Where a launch stands, from its Job or RayJob and its pods."""
    if launch.kind == "Job":
        return _job_status(launch)
    return _rayjob_status(launch)


def _conditions(manifest: Manifest) -> dict[str, Manifest]:
    return {
        str(condition.get("type")): condition
        for condition in manifest.get("status", {}).get("conditions") or []
        if condition.get("status") == "True"
    }


def _job_status(launch: Launch) -> RunStatus:
    status = launch.manifest.get("status", {})
    started = _time(status.get("startTime"))
    conditions = _conditions(launch.manifest)
    if "Complete" in conditions:
        ended = _time(status.get("completionTime")) or _time(
            conditions["Complete"].get("lastTransitionTime")
        )
        return RunStatus(RunState.SUCCEEDED, "", started, ended, 0)
    if "Failed" in conditions:
        failed = conditions["Failed"]
        ended = _time(failed.get("lastTransitionTime"))
        reason = str(failed.get("reason", ""))
        if reason == "DeadlineExceeded":
            return RunStatus(RunState.FAILED, "time limit reached", started, ended)
        code, fault, message = _pod_end(launch.pods)
        detail = message or str(failed.get("message", "")) or reason
        return RunStatus(RunState.FAILED, detail, started, ended, code, system_fault=fault)
    if launch.suspended:
        ended = _time(conditions.get("Suspended", {}).get("lastTransitionTime"))
        if not any(_pod_phase(pod) == "Running" for pod in launch.pods):
            return RunStatus(RunState.STOPPED, "stopped", started, ended)
    if any(_pod_phase(pod) == "Running" for pod in launch.pods) or status.get("ready"):
        return RunStatus(RunState.RUNNING, "", started)
    return RunStatus(RunState.PENDING, _pending_reason(launch.pods), started)


RAY_JOB_STATES = {
    "PENDING": RunState.PENDING,
    "RUNNING": RunState.RUNNING,
    "SUCCEEDED": RunState.SUCCEEDED,
    "FAILED": RunState.FAILED,
    "STOPPED": RunState.STOPPED,
}


def _rayjob_status(launch: Launch) -> RunStatus:
    status = launch.manifest.get("status", {})
    started = _time(status.get("startTime"))
    ended = _time(status.get("endTime"))
    deployment = str(status.get("jobDeploymentStatus", ""))
    state = RAY_JOB_STATES.get(str(status.get("jobStatus", "")), RunState.PENDING)
    message = str(status.get("message", ""))
    if state.is_terminal:
        code, fault, pod_message = _pod_end(launch.pods)
        if state is RunState.SUCCEEDED:
            return RunStatus(state, message, started, ended, 0)
        return RunStatus(state, message or pod_message, started, ended, code, system_fault=fault)
    if deployment == "Failed":
        if status.get("reason") == "DeadlineExceeded":
            return RunStatus(RunState.FAILED, "time limit reached", started, ended)
        return RunStatus(RunState.FAILED, message or "the Ray cluster failed", started, ended)
    stopping = launch.suspended or deployment in ("Suspending", "Suspended")
    if stopping and (
        deployment == "Suspended" or not any(_pod_phase(pod) == "Running" for pod in launch.pods)
    ):
        return RunStatus(RunState.STOPPED, "stopped", started, ended)
    if state is RunState.RUNNING:
        return RunStatus(RunState.RUNNING, message, started)
    return RunStatus(RunState.PENDING, message or _pending_reason(launch.pods), started)


def _pod_phase(pod: Manifest) -> str:
    return str(pod.get("status", {}).get("phase", ""))


def _pod_end(pods: Iterable[Manifest]) -> tuple[int | None, bool, str]:
    """The exit code, whether the cluster ended it, and a message, from a launch's pods."""
    for pod in pods:
        status = pod.get("status", {})
        if status.get("phase") != "Failed":
            continue
        if status.get("reason") in SYSTEM_FAULT_REASONS:
            return None, True, str(status.get("message") or status["reason"])
        for container in status.get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated")
            if terminated and terminated.get("exitCode", 0) != 0:
                code = int(terminated["exitCode"])
                reason = str(terminated.get("reason") or "")
                return code, False, f"exit code {code}" + (f" ({reason})" if reason else "")
    return None, False, ""


def _pending_reason(pods: Iterable[Manifest]) -> str:
    for pod in pods:
        for condition in pod.get("status", {}).get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                return str(condition.get("message") or condition.get("reason") or "")
    return ""


def _job_id(launch: Launch) -> str:
    metadata = launch.manifest["metadata"]
    return str(metadata.get("annotations", {}).get(manifests.JOB_ID_ANNOTATION, metadata["name"]))


def _requested(manifest: Manifest) -> dict[str, int]:
    """Accelerators a Job's or RayJob's pods ask for, per resource."""
    spec = manifest.get("spec", {})
    templates: list[tuple[Manifest, int]] = []
    if manifest.get("kind") == "Job":
        templates.append((spec.get("template", {}), int(spec.get("parallelism", 1))))
    else:
        cluster = spec.get("rayClusterSpec", {})
        templates.append((cluster.get("headGroupSpec", {}).get("template", {}), 1))
        for group in cluster.get("workerGroupSpecs") or []:
            templates.append((group.get("template", {}), int(group.get("replicas", 1))))
    asked: dict[str, int] = {}
    for template, count in templates:
        for resource, each in _pod_requests(template).items():
            if "/" in resource:  # extended resources: accelerators
                asked[resource] = asked.get(resource, 0) + each * count
    return asked


def _pod_requests(pod: Manifest) -> dict[str, int]:
    asked: dict[str, int] = {}
    for container in pod.get("spec", {}).get("containers") or []:
        resources = container.get("resources") or {}
        for source in (resources.get("limits") or {}, resources.get("requests") or {}):
            for resource in source:
                asked[resource] = max(asked.get(resource, 0), _quantity(source, resource))
    return asked


def _quantity(values: Mapping[str, Any], resource: str) -> int:
    """A whole-number quantity (accelerators are counted whole); 0 if missing or fractional."""
    try:
        return int(str(values.get(resource, "0")))
    except ValueError:
        return 0


def _matches(node: Manifest, placement: Placement) -> bool:
    labels = node["metadata"].get("labels") or {}
    return all(labels.get(key) == value for key, value in placement.node_selector.items())


def _up(node: Manifest) -> bool:
    """Ready and schedulable: a cordoned or NotReady node is down."""
    if node.get("spec", {}).get("unschedulable"):
        return False
    return any(
        condition.get("type") == "Ready" and condition.get("status") == "True"
        for condition in node.get("status", {}).get("conditions") or []
    )


def _time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _rayjobs(namespace: str) -> tuple[str, str, str, str]:
    group, version, plural = RAYJOB_API
    return group, version, namespace, plural


def _items(list_call: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Manifest]:
    """The items of a list call, as the API server sent them (dicts, camelCase)."""
    answer = list_call(*args, _preload_content=False, **kwargs)
    items: list[Manifest] = json.loads(answer.data).get("items") or []
    return items


def _model(kind: type[M], manifest: Manifest) -> M:
    """``manifest`` as the client's model of its kind (the client checks bodies itself)."""
    made: M = kind.from_dict(manifest)
    assert made is not None
    return made


def _labels(manifest: Manifest) -> dict[str, str]:
    labels: dict[str, str] = manifest["metadata"].get("labels") or {}
    return labels


def _create(create: Callable[[], Any]) -> None:
    """Create something unless it exists."""
    try:
        create()
    except ApiException as error:
        if error.status != 409:
            raise


async def _call(function: Callable[..., T], *args: Any) -> T:
    """Run a blocking client call in a worker thread; its failures as backend errors."""
    try:
        return await asyncio.to_thread(function, *args)
    except ApiException as error:
        if error.status in (400, 404, 409, 422):  # asked wrongly: asking again will not help
            raise PermanentBackendError(_problem(error)) from error
        raise TransientBackendError(_problem(error)) from error
    except (HTTPError, OSError) as error:
        raise TransientBackendError(f"the cluster did not answer: {error}") from error


def _problem(error: ApiException) -> str:
    try:
        message = json.loads(error.body or "{}").get("message")
    except ValueError:
        message = None
    return f"Kubernetes answered {error.status}: {message or error.reason}"
