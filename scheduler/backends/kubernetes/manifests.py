"""The Kubernetes objects gpupool makes, as plain dicts: one namespace per organization with its
guards, and the Job or RayJob that runs one launch.

Nothing here talks to a cluster; ``scheduler.backends.kubernetes.backend`` sends what this
builds. Nothing a tenant sends reaches a pod's spec except the job's image, entrypoint and
environment: names and labels are derived and sanitised here, pods run as a non-root user with
no service-account token, no privilege escalation and no capabilities, and every namespace
refuses traffic from the others.

A job with an ``image`` runs as a ``batch/v1`` Job (the entrypoint through ``/bin/sh -c``);
one without runs as a KubeRay ``RayJob`` (ray.io/v1) whose Ray cluster is made for it alone and
deleted when it ends: Ray has no access control between the jobs of one cluster.

On a cluster whose nodes are made on demand (a cloud burst target) a launch first waits for
them: it is made suspended (``awaiting_capacity``), and ``capacity_request`` builds the cluster
autoscaler's ``ProvisioningRequest`` (autoscaling.x-k8s.io/v1) for its pods, with a
``PodTemplate`` per pod shape, both owned by the launch.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from scheduler.backends.base import LaunchSpec

Manifest = dict[str, Any]

GROUP = "gpupool.io"
JOB_LABEL = f"{GROUP}/job"
PROJECT_LABEL = f"{GROUP}/project"
ORGANIZATION_LABEL = f"{GROUP}/organization"
PROGRAM_LABEL = f"{GROUP}/program"
FLAVOR_LABEL = f"{GROUP}/flavor"
"""Nodes carry the flavor of their accelerators under this label (the default node selector)."""
JOB_ID_ANNOTATION = f"{GROUP}/job-id"
MANAGED_BY = {"app.kubernetes.io/managed-by": "gpupool"}
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=gpupool"

RAYJOB_API = ("ray.io", "v1", "rayjobs")
PROVISIONING_API = ("autoscaling.x-k8s.io", "v1", "provisioningrequests")
"""The cluster autoscaler's ProvisioningRequest (kubernetes/autoscaler, cluster-autoscaler/apis)."""
CONSUME_ANNOTATION = "autoscaling.x-k8s.io/consume-provisioning-request"
PROVISIONING_CLASS_ANNOTATION = "autoscaling.x-k8s.io/provisioning-class-name"
"""Pods carrying both are the ones a ProvisioningRequest asked nodes for: the autoscaler makes
no further nodes for them (the autoscaler wants both, or it ignores them)."""
PROVISIONING_LABEL = f"{GROUP}/provisioning"
"""On a launch that asked for capacity: ``waiting`` while suspended until its request is
provisioned, ``provisioned`` once gpupool let it start."""
WAITING = "waiting"
PROVISIONED = "provisioned"
RAY_NAME_LIMIT = 47
"""KubeRay refuses RayJob names longer than this (it derives the Ray cluster's names from it)."""

PRIORITY_VALUES = {"urgent": 1000, "normal": 500, "opportunistic": 100}
"""PriorityClass values per gpupool priority class. Kubernetes never preempts for them
(``preemptionPolicy: Never``): gpupool decides preemption with the books."""

_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NON_ROOT_USER = 1000


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def dns_label(text: str, limit: int = 63) -> str:
    """``text`` as a DNS-1123 label of at most ``limit`` characters: kept when it is one,
    else lower-cased, cleaned and suffixed with a digest of the original (so two ids never
    share a name)."""
    if _DNS_LABEL.fullmatch(text) and len(text) <= limit:
        return text
    stem = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[: limit - 11].strip("-")
    return f"{stem}-{_digest(text)}" if stem else f"x-{_digest(text)}"


def is_dns_subdomain(text: str) -> bool:
    """Whether ``text`` is a DNS-1123 subdomain (what names most things, a provisioning class
    among them)."""
    return len(text) <= 253 and _DNS_SUBDOMAIN.fullmatch(text) is not None


def label_value(text: str) -> str:
    """``text`` as a label value (63 characters of ``[A-Za-z0-9_.-]``, alphanumeric ends)."""
    if text == "" or _LABEL_VALUE.fullmatch(text):
        return text
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-_.")[:52].strip("-_.")
    return f"{stem}-{_digest(text)}" if stem else _digest(text)


def object_name(job_id: str) -> str:
    """The name of a launch's Job or RayJob: the gpupool submission id where Kubernetes and
    KubeRay accept it as a name."""
    return dns_label(job_id, RAY_NAME_LIMIT)


def namespace_name(organization: str, prefix: str = "gpupool-") -> str:
    """The namespace an organization's jobs run in."""
    return dns_label(f"{prefix}{organization or 'unassigned'}")


def priority_class_name(priority: str) -> str:
    return f"gpupool-{priority}"


@dataclass(frozen=True, slots=True)
class Placement:
    """How one flavor's accelerators are asked for on a cluster."""

    resource: str
    """The extended resource the device plugin advertises (``nvidia.com/gpu``, an NPU's)."""
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, str], ...] = ()
    ray_resource: str = ""
    """The Ray resource that pins a Ray job to this flavor (KubeRay's worker advertises it)."""

    @classmethod
    def of(cls, flavor: str, resource: str, ray_resource: str = "") -> Placement:
        """The default: nodes labelled with the flavor, tolerating the resource's taint."""
        return cls(
            resource,
            {FLAVOR_LABEL: flavor},
            ({"key": resource, "operator": "Exists", "effect": "NoSchedule"},),
            ray_resource or flavor,
        )


@dataclass(frozen=True, slots=True)
class Images:
    ray: str = "rayproject/ray:2.49.0"
    """The image of a RayJob's head and workers when the job names none."""
    ray_version: str = "2.49.0"


DEFAULT_IMAGES = Images()


def labels(spec: LaunchSpec) -> dict[str, str]:
    return {
        **MANAGED_BY,
        JOB_LABEL: object_name(spec.job_id),
        PROJECT_LABEL: label_value(spec.project),
        ORGANIZATION_LABEL: label_value(spec.organization),
        PROGRAM_LABEL: label_value(spec.program),
    }


def _metadata(spec: LaunchSpec, namespace: str) -> Manifest:
    return {
        "name": object_name(spec.job_id),
        "namespace": namespace,
        "labels": labels(spec),
        "annotations": {JOB_ID_ANNOTATION: spec.job_id},
    }


# -- the namespace and its guards ------------------------------------------------------------


def namespace(name: str, organization: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                **MANAGED_BY,
                ORGANIZATION_LABEL: label_value(organization),
                # pods here may not ask for privileges (Pod Security Admission, where enabled)
                "pod-security.kubernetes.io/enforce": "restricted",
            },
        },
    }


QUOTA_NAME = "gpupool-accelerators"
ISOLATION_NAME = "gpupool-isolation"


def resource_quota(namespace: str, accelerators: Mapping[str, int]) -> Manifest:
    """A second guard behind the books: the namespace may request no more accelerators of each
    resource than gpupool launched there."""
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": QUOTA_NAME, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "hard": {
                f"requests.{resource}": str(count)
                for resource, count in sorted(accelerators.items())
            }
        },
    }


def network_policy(namespace: str) -> Manifest:
    """Pods here take traffic from pods of this namespace only."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": ISOLATION_NAME, "namespace": namespace, "labels": dict(MANAGED_BY)},
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"podSelector": {}}]}],
        },
    }


def priority_class(priority: str) -> Manifest:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": priority_class_name(priority), "labels": dict(MANAGED_BY)},
        "value": PRIORITY_VALUES[priority],
        "preemptionPolicy": "Never",
        "globalDefault": False,
        "description": f"gpupool jobs of priority class {priority}",
    }


# -- pods --------------------------------------------------------------------------------------


def _pod_security() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": NON_ROOT_USER,
        "runAsGroup": NON_ROOT_USER,
        "fsGroup": NON_ROOT_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _container_security() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
    }


def _env(spec: LaunchSpec) -> list[Manifest]:
    variables = spec.runtime_env.get("env_vars", {})
    if not isinstance(variables, Mapping):
        return []
    return [{"name": str(name), "value": str(value)} for name, value in sorted(variables.items())]


def _pod_spec(
    spec: LaunchSpec,
    containers: list[Manifest],
    placement: Placement | None,
    grace_seconds: int,
    restart: str | None = "Never",
) -> Manifest:
    pod: Manifest = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "priorityClassName": priority_class_name(spec.priority),
        "securityContext": _pod_security(),
        "terminationGracePeriodSeconds": grace_seconds,
        "containers": containers,
    }
    if restart is not None:
        pod["restartPolicy"] = restart
    if placement is not None:
        if placement.node_selector:
            pod["nodeSelector"] = dict(placement.node_selector)
        if placement.tolerations:
            pod["tolerations"] = [dict(item) for item in placement.tolerations]
    return pod


def _accelerators(placement: Placement, count: int) -> Manifest:
    return {
        "limits": {placement.resource: str(count)},
        "requests": {placement.resource: str(count)},
    }


# -- what runs a launch --------------------------------------------------------------------------


RENDEZVOUS_PORT = 29500
"""Where a gang's first pod listens for the others (``MASTER_PORT``, as torchrun expects)."""


def batch_job(
    spec: LaunchSpec, namespace: str, placement: Placement, grace_seconds: int
) -> Manifest:
    """A ``batch/v1`` Job that runs the job's image once, never retried (a retry would run
    unbooked), ended by Kubernetes at the time limit.

    A gang of ``spec.nodes`` is an Indexed Job of that many pods, each with its share of the
    GPUs, reachable by name through ``gang_service``: each pod is told the gang's size, where
    its first pod listens (``MASTER_ADDR``, ``MASTER_PORT``) and, by Kubernetes, its own index
    (``JOB_COMPLETION_INDEX``)."""
    assert spec.image is not None
    name = object_name(spec.job_id)
    env = _env(spec)
    if spec.nodes > 1:
        env += [
            {"name": "GPUPOOL_NODES", "value": str(spec.nodes)},
            {"name": "MASTER_ADDR", "value": f"{name}-0.{name}.{namespace}.svc"},
            {"name": "MASTER_PORT", "value": str(RENDEZVOUS_PORT)},
        ]
    container: Manifest = {
        "name": "job",
        "image": spec.image,
        "command": ["/bin/sh", "-c", spec.entrypoint],
        "env": env,
        "resources": _accelerators(placement, spec.gpus_per_node),
        "securityContext": _container_security(),
    }
    pod = _pod_spec(spec, [container], placement, grace_seconds)
    body: Manifest = {
        "backoffLimit": 0,
        "completions": spec.nodes,
        "parallelism": spec.nodes,
        "activeDeadlineSeconds": spec.time_limit_seconds,
        "suspend": False,
        "template": {"metadata": {"labels": labels(spec)}, "spec": pod},
    }
    if spec.nodes > 1:
        body["completionMode"] = "Indexed"
        pod["subdomain"] = name
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(spec, namespace),
        "spec": body,
    }


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> Manifest:
    """What makes an object go when the launch that owns it does. Neither controller nor
    blocking the owner's deletion: blocking would need rights on the owner's finalizers."""
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": False,
        "blockOwnerDeletion": False,
    }


def gang_service(spec: LaunchSpec, namespace: str, owner_uid: str) -> Manifest:
    """The headless Service that names a gang Job's pods (``<job>-<index>.<job>``), owned by
    the Job so it goes when the Job does."""
    name = object_name(spec.job_id)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels(spec),
            "ownerReferences": [owner_reference("batch/v1", "Job", name, owner_uid)],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {JOB_LABEL: name},
            "publishNotReadyAddresses": True,
            "ports": [{"name": "rendezvous", "port": RENDEZVOUS_PORT}],
        },
    }


def ray_job(
    spec: LaunchSpec,
    namespace: str,
    placement: Placement,
    grace_seconds: int,
    images: Images = DEFAULT_IMAGES,
    keep_seconds: int = 300,
) -> Manifest:
    """A KubeRay ``RayJob`` with a Ray cluster of its own: a head without accelerators and a
    worker per node holding that node's share of the job's, deleted ``keep_seconds`` after the
    job ends. A one-node job's entrypoint is pinned to its worker's accelerators, as on
    gpupool's own Ray clusters; a gang's runs on the head and spreads its work over the
    workers (Ray Train, or tasks asking for the flavor's resource)."""
    image = spec.image or images.ray
    share = spec.gpus_per_node
    worker_start = {
        "num-gpus": str(share) if placement.resource == "nvidia.com/gpu" else "0",
        # as KubeRay's documentation writes custom resources: a quoted JSON object
        "resources": json.dumps(json.dumps({placement.ray_resource: share})),
    }
    head = {
        "name": "ray-head",
        "image": image,
        "resources": {
            "limits": {"cpu": "1", "memory": "2Gi"},
            "requests": {"cpu": "1", "memory": "2Gi"},
        },
        "securityContext": _container_security(),
    }
    worker = {
        "name": "ray-worker",
        "image": image,
        "env": _env(spec),
        "resources": _accelerators(placement, share),
        "securityContext": _container_security(),
    }
    template_metadata = {"labels": labels(spec)}
    rayjob: Manifest = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": _metadata(spec, namespace),
        "spec": {
            "entrypoint": spec.entrypoint,
            "activeDeadlineSeconds": spec.time_limit_seconds,
            "backoffLimit": 0,
            "shutdownAfterJobFinishes": True,
            "ttlSecondsAfterFinished": keep_seconds,
            "submissionMode": "K8sJobMode",
            "suspend": False,
            "submitterPodTemplate": {
                "metadata": template_metadata,
                "spec": _pod_spec(
                    spec,
                    [
                        {
                            "name": "ray-job-submitter",
                            "image": image,
                            "securityContext": _container_security(),
                        }
                    ],
                    None,
                    grace_seconds,
                ),
            },
            "rayClusterSpec": {
                "rayVersion": images.ray_version,
                "headGroupSpec": {
                    "rayStartParams": {"num-gpus": "0"},
                    "template": {
                        "metadata": template_metadata,
                        "spec": _pod_spec(spec, [head], None, grace_seconds, restart=None),
                    },
                },
                "workerGroupSpecs": [
                    {
                        "groupName": "accelerators",
                        "replicas": spec.nodes,
                        "minReplicas": spec.nodes,
                        "maxReplicas": spec.nodes,
                        "rayStartParams": worker_start,
                        "template": {
                            "metadata": template_metadata,
                            "spec": _pod_spec(
                                spec, [worker], placement, grace_seconds, restart=None
                            ),
                        },
                    }
                ],
            },
        },
    }
    if spec.nodes == 1:  # the driver on the worker, holding its GPUs, as on a shared cluster
        rayjob["spec"]["entrypointResources"] = json.dumps({placement.ray_resource: spec.gpus})
    if spec.runtime_env:
        rayjob["spec"]["runtimeEnvYAML"] = yaml.safe_dump(dict(spec.runtime_env), sort_keys=True)
    return rayjob


def launch(
    spec: LaunchSpec,
    namespace: str,
    placement: Placement,
    grace_seconds: int,
    images: Images = DEFAULT_IMAGES,
) -> Manifest:
    """What runs ``spec``: a Job when it names an image and has no runtime_env for Ray, else a
    RayJob."""
    if spec.image and not spec.runtime_env:
        return batch_job(spec, namespace, placement, grace_seconds)
    return ray_job(spec, namespace, placement, grace_seconds, images)


# -- capacity asked of the cluster autoscaler ---------------------------------------------------


def pod_sets(manifest: Manifest) -> list[tuple[str, Manifest, int]]:
    """The pods a Job or RayJob (as built here, or as the API server returns it) makes, by
    shape: (the shape's name, its pod template, how many). A RayJob's submitter pod is left
    out: it asks for no accelerators and fits on any node."""
    spec = manifest.get("spec") or {}
    if manifest.get("kind") == "Job":
        return [("pods", spec.get("template") or {}, int(spec.get("parallelism", 1)))]
    cluster = spec.get("rayClusterSpec") or {}
    sets = [("head", (cluster.get("headGroupSpec") or {}).get("template") or {}, 1)]
    for group in cluster.get("workerGroupSpecs") or []:
        sets.append(
            (
                str(group.get("groupName")),
                group.get("template") or {},
                int(group.get("replicas", 1)),
            )
        )
    return sets


def pod_template_names(manifest: Manifest) -> list[str]:
    """The PodTemplates ``capacity_request`` makes for a launch, one per pod shape."""
    name = str(manifest["metadata"]["name"])
    return [f"{name}-{shape}" for shape, _, _ in pod_sets(manifest)]


def awaiting_capacity(manifest: Manifest, provisioning_class: str) -> Manifest:
    """``manifest`` (a Job or RayJob) made to wait for the nodes its ProvisioningRequest asks
    for: suspended, labelled ``waiting``, its pods annotated as consuming the request (named
    as the launch) so the autoscaler makes no other nodes for them."""
    waiting = copy.deepcopy(manifest)
    metadata = waiting["metadata"]
    metadata["labels"] = {**metadata["labels"], PROVISIONING_LABEL: WAITING}
    waiting["spec"]["suspend"] = True
    consume = {
        CONSUME_ANNOTATION: str(metadata["name"]),
        PROVISIONING_CLASS_ANNOTATION: provisioning_class,
    }
    for _, template, _ in pod_sets(waiting):
        # a new dict: a RayJob's templates share one metadata dict with its submitter's
        template_metadata = template.get("metadata") or {}
        template["metadata"] = {
            **template_metadata,
            "annotations": {**(template_metadata.get("annotations") or {}), **consume},
        }
    return waiting


def capacity_request(launch: Manifest, owner_uid: str, provisioning_class: str) -> list[Manifest]:
    """The PodTemplates of a launch's pods, then the ProvisioningRequest asking the cluster
    autoscaler for nodes for all of them at once, each owned by the launch (``owner_uid``)."""
    metadata = launch["metadata"]
    name, namespace = str(metadata["name"]), str(metadata["namespace"])
    tags = {key: value for key, value in metadata["labels"].items() if key != PROVISIONING_LABEL}
    owners = [owner_reference(launch["apiVersion"], launch["kind"], name, owner_uid)]
    sets = pod_sets(launch)
    templates: list[Manifest] = [
        {
            "apiVersion": "v1",
            "kind": "PodTemplate",
            "metadata": {
                "name": template_name,
                "namespace": namespace,
                "labels": dict(tags),
                "ownerReferences": owners,
            },
            "template": copy.deepcopy(template),
        }
        for template_name, (_, template, _) in zip(pod_template_names(launch), sets, strict=True)
    ]
    request: Manifest = {
        "apiVersion": "/".join(PROVISIONING_API[:2]),
        "kind": "ProvisioningRequest",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": dict(tags),
            "annotations": {JOB_ID_ANNOTATION: metadata["annotations"][JOB_ID_ANNOTATION]},
            "ownerReferences": owners,
        },
        "spec": {
            "provisioningClassName": provisioning_class,
            "podSets": [
                {"podTemplateRef": {"name": template["metadata"]["name"]}, "count": count}
                for template, (_, _, count) in zip(templates, sets, strict=True)
            ],
        },
    }
    return [*templates, request]
