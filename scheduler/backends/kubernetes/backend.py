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

On a cloud burst target (``provisioning_class`` set) nodes are made on demand, and a launch
asks for them first, as Kueue's provisioning admission check does: it is made suspended and
labelled ``waiting``, with its pods annotated as consuming a ``ProvisioningRequest``
(autoscaling.x-k8s.io/v1, the cluster autoscaler's API) of the same name, which counts every
pod of the launch through a ``PodTemplate`` per pod shape; request and templates are owned by
the launch. Its namespace's quota counts it from the start. Reading statuses follows the
request: once it is ``Provisioned`` the launch is let start (unsuspended, labelled
``provisioned``); until then it is pending, "waiting for cloud capacity"; if the autoscaler
gives up (``Failed``, or ``BookingExpired``/``CapacityRevoked`` before the launch started) it
is stopped with ``capacity_refused`` and deleted with its request and templates, so nothing
of it holds capacity or quota. Cancelling a launch that asked for capacity deletes its request
and templates too.

The client is blocking: every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
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
    PROVISIONED,
    PROVISIONING_API,
    PROVISIONING_LABEL,
    RAYJOB_API,
    WAITING,
    Images,
    Manifest,
    Placement,
)
from scheduler.backends.kubernetes.mirror import Mirror

log = logging.getLogger(__name__)

T = TypeVar("T")
M = TypeVar("M", bound=Any)

POD_ENDED = ("Succeeded", "Failed")
SYSTEM_FAULT_REASONS = frozenset(
    {"NodeLost", "Evicted", "Shutdown", "Terminated", "UnexpectedAdmissionError", "Preempting"}
)
"""A pod that ended for one of these reasons was ended by the cluster, not by the job."""


@dataclass(frozen=True, slots=True)
class Launch:
    """One launch as the cluster holds it: its Job or RayJob, the pods it made and, on a burst
    target, the ProvisioningRequest that asked nodes for them."""

    kind: str
    """``Job`` or ``RayJob``."""
    manifest: Manifest
    pods: tuple[Manifest, ...] = ()
    request: Manifest | None = None
    """The ProvisioningRequest that asked capacity for it, if any."""

    @property
    def namespace(self) -> str:
        return str(self.manifest["metadata"]["namespace"])

    @property
    def name(self) -> str:
        return str(self.manifest["metadata"]["name"])

    @property
    def uid(self) -> str:
        return str(self.manifest["metadata"].get("uid", ""))

    @property
    def label(self) -> str:
        """The job label gpupool gave it (its object name)."""
        return str((self.manifest["metadata"].get("labels") or {}).get(JOB_LABEL, ""))

    @property
    def suspended(self) -> bool:
        return bool(self.manifest.get("spec", {}).get("suspend"))

    @property
    def provisioning(self) -> str:
        """``waiting`` or ``provisioned`` for a launch that asked for capacity, else empty."""
        return _labels(self.manifest).get(PROVISIONING_LABEL, "")

    @property
    def waiting(self) -> bool:
        """Suspended until its ProvisioningRequest is provisioned (not stopped)."""
        return self.suspended and self.provisioning == WAITING

    @property
    def live(self) -> bool:
        """Not asked to stop, and not ended: it holds, or will hold, its accelerators."""
        return (self.waiting or not self.suspended) and run_status(self).state in _LIVE


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
        provisioning_class: str | None = None,
    ) -> None:
        if provisioning_class is not None and not manifests.is_dns_subdomain(provisioning_class):
            raise ValueError(f"{provisioning_class!r} is not a provisioning class name")
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
        self.provisioning_class = provisioning_class
        """Set on a cloud burst target: each launch first asks the cluster autoscaler for its
        nodes with a ProvisioningRequest of this class (``best-effort-atomic-scale-up`` or
        ``check-capacity.autoscaling.x-k8s.io``, or a cloud's own)."""
        self._refused: dict[str, RunStatus] = {}
        """Launches deleted because their capacity was refused, by job id: their status still
        reads so until submitted again or ``keep_ended_seconds`` after."""

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
        if self.provisioning_class is not None:
            wanted = manifests.awaiting_capacity(wanted, self.provisioning_class)
        async with self._submitting:
            await _call(self._submit, spec, namespace, wanted)
        self._refused.pop(spec.job_id, None)

    async def status(self, job_id: str) -> RunStatus:
        name = manifests.object_name(job_id)
        if self.mirror is not None and self.mirror.synced:
            launches = [launch for launch in self._mirrored() if launch.label == name]
        else:
            launches = await _call(self._launches, f"{JOB_LABEL}={name}")
        if not launches:
            return self._refused.get(job_id, RunStatus(RunState.NOT_FOUND))
        status = run_status(launches[0])
        await _call(self._follow_provisioning, launches[:1])
        return status

    async def statuses(self) -> Mapping[str, RunStatus]:
        if self.mirror is None and self.watch:
            self.mirror = self._mirror()
            self.mirror.start()
        if self.mirror is not None and self.mirror.synced:
            launches = self._mirrored()
        else:
            launches = await _call(self._launches, MANAGED_SELECTOR)
        statuses = {_job_id(launch): run_status(launch) for launch in launches}
        await _call(self._follow_provisioning, launches)
        await _call(self._forget_ended, launches)
        cutoff = self.clock() - timedelta(seconds=self.keep_ended_seconds)
        for job_id, refused in list(self._refused.items()):
            if refused.ended_at is not None and refused.ended_at < cutoff:
                del self._refused[job_id]
            else:
                statuses.setdefault(job_id, refused)
        return statuses

    async def cancel(self, job_id: str) -> None:
        selector = f"{JOB_LABEL}={manifests.object_name(job_id)}"
        for launch in await _call(self._launches, selector, False):
            if launch.live or launch.waiting:  # (waiting, though refused: stopped now)
                await _call(self._suspend, launch)
            if launch.provisioning:  # what asked for its capacity goes: it holds nodes no more
                await _call(self._withdraw_request, launch)

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

        def requests(**options: Any) -> Any:
            return self.custom.list_cluster_custom_object(*PROVISIONING_API, **options)

        sources = {"jobs": jobs, "rayjobs": rayjobs, "pods": pods}
        if self.provisioning_class is not None:
            sources["requests"] = requests
        return Mirror(sources, MANAGED_SELECTOR, resync_seconds=self.resync_seconds)

    def _mirrored(self) -> list[Launch]:
        assert self.mirror is not None
        requests = self.mirror.objects("requests") if "requests" in self.mirror.sources else []
        return _assemble(
            self.mirror.objects("jobs"),
            self.mirror.objects("rayjobs"),
            self.mirror.objects("pods"),
            requests,
        )

    # -- submitting ------------------------------------------------------------------------

    def _submit(self, spec: LaunchSpec, namespace: str, wanted: Manifest) -> None:
        self._prepare(namespace, spec)
        found = self._launches(f"{JOB_LABEL}={manifests.object_name(spec.job_id)}", False)
        for launch in found:  # launched before: submitting is idempotent
            if launch.waiting and launch.request is None:  # cut short before it asked
                self._ask_capacity(wanted, launch.uid)
        if found:
            return
        placement = self.placements[spec.flavor]
        held = self._accelerators_held(namespace)
        held[placement.resource] = held.get(placement.resource, 0) + spec.gpus
        self._apply_quota(namespace, held)
        try:
            if wanted["kind"] == "Job":
                made = self.batch.create_namespaced_job(namespace, _model(k8s.V1Job, wanted))
                assert made.metadata is not None
                assert made.metadata.uid
                uid = made.metadata.uid
                if spec.nodes > 1:  # the gang's pods find each other by name through it
                    service = manifests.gang_service(spec, namespace, uid)
                    _create(
                        lambda: self.core.create_namespaced_service(
                            namespace, _model(k8s.V1Service, service)
                        )
                    )
            else:
                made_ray: Any = self.custom.create_namespaced_custom_object(
                    *_rayjobs(namespace), wanted
                )
                uid = str(made_ray["metadata"]["uid"])
        except ApiException as error:
            if error.status != 409:  # 409: it exists, which is what was asked
                raise
            return  # another submission made it (and asks for its capacity)
        if self.provisioning_class is not None:
            self._ask_capacity(wanted, uid)

    def _ask_capacity(self, launch: Manifest, uid: str) -> None:
        """The PodTemplates and the ProvisioningRequest for a launch made to wait (``uid``:
        the launch's, which owns them), unless made already."""
        assert self.provisioning_class is not None
        namespace = str(launch["metadata"]["namespace"])
        for made in manifests.capacity_request(launch, uid, self.provisioning_class):
            if made["kind"] == "PodTemplate":
                template = _model(k8s.V1PodTemplate, made)
                _create(self.core.create_namespaced_pod_template, namespace, template)
            else:
                _create(self.custom.create_namespaced_custom_object, *_provreqs(namespace), made)

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
        """gpupool's Jobs and RayJobs matching ``selector``, with their pods and, on a burst
        target, their ProvisioningRequests."""
        requests: list[Manifest] = []
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
            if self.provisioning_class is not None:
                requests = _items(
                    self.custom.list_cluster_custom_object,
                    *PROVISIONING_API,
                    label_selector=selector,
                )
        else:
            jobs = _items(self.batch.list_namespaced_job, namespace, label_selector=selector)
            rayjobs = _items(
                self.custom.list_namespaced_custom_object,
                *_rayjobs(namespace),
                label_selector=selector,
            )
            pods = []
            if self.provisioning_class is not None:
                requests = _items(
                    self.custom.list_namespaced_custom_object,
                    *_provreqs(namespace),
                    label_selector=selector,
                )
        return _assemble(jobs, rayjobs, pods, requests)

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
        patch: Manifest = {"spec": {"suspend": True}}
        if launch.waiting:  # stopped, not waiting any more
            patch["metadata"] = {"labels": {PROVISIONING_LABEL: None}}
        self._patch(launch, patch)

    def _patch(self, launch: Launch, patch: Manifest) -> None:
        """Patch a launch's Job or RayJob, unless it is gone (nothing runs) or changed since
        ``patch`` was made from it (409: it is read again, and followed then)."""
        try:
            if launch.kind == "Job":
                self.batch.patch_namespaced_job(launch.name, launch.namespace, patch)
            else:
                self.custom.patch_namespaced_custom_object(
                    *_rayjobs(launch.namespace), launch.name, patch
                )
        except ApiException as error:
            if error.status not in (404, 409):
                raise

    def _forget_ended(self, launches: Iterable[Launch]) -> None:
        """Delete, with their pods, launches that ended over ``keep_ended_seconds`` ago."""
        cutoff = self.clock() - timedelta(seconds=self.keep_ended_seconds)
        for launch in launches:
            status = run_status(launch)
            if status.state in _LIVE or status.ended_at is None or status.ended_at > cutoff:
                continue
            self._delete(launch)

    def _delete(self, launch: Launch) -> None:
        """Delete a launch with its pods and what asked for its capacity."""
        options = k8s.V1DeleteOptions(propagation_policy="Background")
        if launch.provisioning:
            self._withdraw_request(launch)
        if launch.kind == "Job":
            _gone(self.batch.delete_namespaced_job, launch.name, launch.namespace, body=options)
        else:
            _gone(
                self.custom.delete_namespaced_custom_object,
                *_rayjobs(launch.namespace),
                launch.name,
                body=options,
            )

    def _withdraw_request(self, launch: Launch) -> None:
        """Delete a launch's ProvisioningRequest and PodTemplates (its owner's deletion would
        too, but later, and a stopped launch is kept a while)."""
        for name in manifests.pod_template_names(launch.manifest):
            _gone(self.core.delete_namespaced_pod_template, name, launch.namespace)
        _gone(
            self.custom.delete_namespaced_custom_object, *_provreqs(launch.namespace), launch.name
        )

    def _follow_provisioning(self, launches: Iterable[Launch]) -> None:
        """Let launches whose capacity is provisioned start; delete those whose capacity was
        refused, remembering why."""
        for launch in launches:
            if not launch.provisioning:
                continue
            status = run_status(launch)
            if status.capacity_refused:
                log.info("%s: cloud capacity refused: %s", launch.name, status.message)
                self._delete(launch)
                self._refused[_job_id(launch)] = replace(
                    status, ended_at=status.ended_at or self.clock()
                )
            elif launch.waiting and "Provisioned" in _conditions(launch.request or {}):
                self._resume(launch)

    def _resume(self, launch: Launch) -> None:
        """Unsuspend a launch whose nodes are made, unless it changed since it was read (a
        cancel may have come first)."""
        version = launch.manifest["metadata"]["resourceVersion"]
        labels = {PROVISIONING_LABEL: PROVISIONED}
        self._patch(
            launch,
            {
                "metadata": {"labels": labels, "resourceVersion": version},
                "spec": {"suspend": False},
            },
        )


_LIVE = (RunState.PENDING, RunState.RUNNING)
LAUNCH_APIS = {"Job": "batch/v1", "RayJob": "/".join(RAYJOB_API[:2])}


def _assemble(
    jobs: Iterable[Manifest],
    rayjobs: Iterable[Manifest],
    pods: Iterable[Manifest],
    requests: Iterable[Manifest] = (),
) -> list[Launch]:
    """Launches from their Jobs and RayJobs, each with the pods and the ProvisioningRequest of
    the same job label."""
    by_job: dict[tuple[str, str], list[Manifest]] = {}
    for pod in pods:
        by_job.setdefault(_job_key(pod), []).append(pod)
    by_request = {_job_key(request): request for request in requests}

    def launch(kind: str, manifest: Manifest) -> Launch:
        key = _job_key(manifest)
        # list items of built-in kinds come without their kind: say it, as a manifest does
        typed = {**manifest, "apiVersion": LAUNCH_APIS[kind], "kind": kind}
        return Launch(kind, typed, tuple(by_job.get(key, ())), by_request.get(key))

    return [launch("Job", job) for job in jobs] + [launch("RayJob", item) for item in rayjobs]


def _job_key(manifest: Manifest) -> tuple[str, str]:
    """(namespace, job label): what ties a launch's objects together."""
    metadata = manifest["metadata"]
    return metadata["namespace"], (metadata.get("labels") or {}).get(JOB_LABEL, "")


# -- what a launch's objects say ----------------------------------------------------------------


REFUSALS = ("Failed", "CapacityRevoked", "BookingExpired")
"""ProvisioningRequest conditions that, True while a launch waits, mean it gets no nodes. A
launch let start ignores an expired booking (its pods have the nodes, as Kueue has it) but not
revoked capacity, unless it runs already."""
WAITING_FOR = "waiting for cloud capacity"


def run_status(launch: Launch) -> RunStatus:
    """Where a launch stands, from its Job or RayJob, its pods and its ProvisioningRequest."""
    if launch.waiting:
        return _waiting_status(launch)
    status = _job_status(launch) if launch.kind == "Job" else _rayjob_status(launch)
    revoked = _conditions(launch.request or {}).get("CapacityRevoked")
    if revoked and status.state is RunState.PENDING and launch.provisioning == PROVISIONED:
        return _refused(revoked)
    return status


def _waiting_status(launch: Launch) -> RunStatus:
    """A launch waiting for its nodes: pending, or refused them."""
    if launch.request is None:  # (a submission cut short; submitting again asks)
        return RunStatus(RunState.PENDING, f"{WAITING_FOR}: asking the cluster autoscaler")
    held = _conditions(launch.request)
    for refusal in REFUSALS:
        if refusal in held:
            return _refused(held[refusal])
    said = {
        str(condition.get("type")): str(condition.get("message") or "")
        for condition in launch.request.get("status", {}).get("conditions") or []
    }  # (whatever their status: "Provisioned" False tells how long it may take)
    message = said.get("Provisioned") or said.get("Accepted") or "not answered yet"
    return RunStatus(RunState.PENDING, f"{WAITING_FOR}: {message}")


def _refused(condition: Manifest) -> RunStatus:
    why = str(condition.get("message") or condition.get("reason") or "no capacity")
    ended = _time(condition.get("lastTransitionTime"))
    return RunStatus(RunState.STOPPED, why, ended_at=ended, capacity_refused=True)


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
            return _deadline(started, ended)
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


def _deadline(started: datetime | None, ended: datetime | None) -> RunStatus:
    """Kubernetes ended it at its ``activeDeadlineSeconds``: the job's time limit."""
    return RunStatus(
        RunState.STOPPED, "time limit reached", started, ended, time_limit_reached=True
    )


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
            return _deadline(started, ended)
        return RunStatus(RunState.FAILED, message or "the Ray cluster failed", started, ended)
    # a RayJob made suspended reads Suspended until KubeRay sees it let start
    resuming = launch.provisioning == PROVISIONED and not launch.suspended
    stopping = launch.suspended or (deployment in ("Suspending", "Suspended") and not resuming)
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
    asked: dict[str, int] = {}
    for _, template, count in manifests.pod_sets(manifest):
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


def _provreqs(namespace: str) -> tuple[str, str, str, str]:
    group, version, plural = PROVISIONING_API
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


def _create(create: Callable[..., Any], *args: Any) -> None:
    """Create something (``create(*args)``) unless it exists."""
    try:
        create(*args)
    except ApiException as error:
        if error.status != 409:
            raise


def _gone(delete: Callable[..., Any], *args: Any, **options: Any) -> None:
    """Delete something (``delete(*args, **options)``) unless it is gone."""
    try:
        delete(*args, **options)
    except ApiException as error:
        if error.status != 404:
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
