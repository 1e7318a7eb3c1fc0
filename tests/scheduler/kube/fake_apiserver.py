"""A stateful fake kube-apiserver that the official ``kubernetes`` client drives over real HTTP.

One generic object store, keyed by (group, version, plural, namespace, name), serves every kind in
``KINDS``; what differs between kinds is data (namespaced or not, a ``/status`` subresource, what
DELETE answers), plus a few admission rules (pod quota and priority, Job defaults). Every write
takes the next value of one global resourceVersion counter and lands in an event log that watches
replay from.

Nothing happens in the background: the state changes only through HTTP requests and the test hooks,
which play the kubelet and the scheduler (``start_pod``, ``finish_pod``), the cluster admin
(``add_node``, ``cordon``), the controllers (``step`` runs the Job, RayJob and quota controllers
once) and the cluster autoscaler answering ProvisioningRequests (``provision`` adds nodes for a
request's pods and says Provisioned, ``refuse_provisioning`` says Failed,
``provisioning_condition`` sets any other), so tests are deterministic. ``clock``/``advance`` give
the controllers a time the test moves.

As the real server and controllers do: list items of built-in kinds carry no kind/apiVersion; a
no-op update keeps the resourceVersion; batch/v1 Jobs orphan their pods when DELETE names no
propagationPolicy; custom resources refuse strategic merge patches (415); objects with finalizers
only get a deletionTimestamp; a Job's startTime is set when the controller first syncs it (not when
a pod runs); nodes get taints for not-ready and cordoned.

Not modelled: authentication and RBAC, validation of custom resources against their CRD's schema
(only a ProvisioningRequest's immutable spec is enforced), server-side apply, dryRun (400),
protobuf/CBOR/YAML, graceful pod termination (pods go at once), strategic merge by list keys (lists
are replaced), admission that demands requests for quota'd cpu/memory, LimitRanges, what a Service
routes (they are stored only), the RayCluster and submitter Job that KubeRay makes, the index of an
Indexed Job's pods (they are made, counted and completed as any), pod failure policies, container
restarts (``finish_pod`` ends the pod whatever its restartPolicy), preemption and eviction.
"""

from __future__ import annotations

import base64
import bisect
import contextlib
import copy
import json
import random
import re
import socket
import socketserver
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import kubernetes.client

Obj = dict[str, Any]
Key = tuple[
    str, str, str, str, str
]  # group, version, plural, namespace ("" if cluster-scoped), name
Selector = Callable[[Obj], bool]

VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.0",
    "gitCommit": "60a317eadfcb839692a5ab70e5d8fb2f2e9b1a35",
    "gitTreeState": "clean",
    "buildDate": "2025-04-23T13:00:00Z",
    "goVersion": "go1.24.2",
    "compiler": "gc",
    "platform": "linux/amd64",
}
TERMINAL = ("Succeeded", "Failed")
NODE_DEFAULTS = {"cpu": "128", "memory": "1Ti", "pods": "110", "ephemeral-storage": "1Ti"}
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes' generated name suffixes
BUILTIN_PRIORITIES = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}


@dataclass(frozen=True)
class Kind:
    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status: bool = False  # a /status subresource: the main resource never changes .status
    returns_object: bool = False  # DELETE answers with the object, not a Status
    custom: bool = False  # a CRD: no strategic merge patch; list items keep kind and apiVersion

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def resource(self) -> str:
        """The name the real server uses in messages: ``pods``, ``jobs.batch``."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


KINDS = (
    Kind("", "v1", "namespaces", "Namespace", namespaced=False, status=True, returns_object=True),
    Kind("", "v1", "nodes", "Node", namespaced=False, status=True),
    Kind("", "v1", "pods", "Pod", status=True, returns_object=True),
    Kind("", "v1", "resourcequotas", "ResourceQuota", status=True, returns_object=True),
    Kind("", "v1", "serviceaccounts", "ServiceAccount", returns_object=True),
    Kind("", "v1", "configmaps", "ConfigMap"),
    Kind("", "v1", "secrets", "Secret"),
    Kind("", "v1", "events", "Event"),
    Kind("", "v1", "services", "Service", status=True, returns_object=True),
    Kind("", "v1", "podtemplates", "PodTemplate", returns_object=True),
    Kind("batch", "v1", "jobs", "Job", status=True),
    Kind("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy"),
    Kind("scheduling.k8s.io", "v1", "priorityclasses", "PriorityClass", namespaced=False),
    Kind("ray.io", "v1", "rayjobs", "RayJob", status=True, returns_object=True, custom=True),
    Kind(
        "autoscaling.x-k8s.io",
        "v1",
        "provisioningrequests",
        "ProvisioningRequest",
        status=True,
        returns_object=True,
        custom=True,
    ),
)
BY_PATH = {(k.group, k.version, k.plural): k for k in KINDS}
BY_PLURAL = {k.plural: k for k in KINDS}
NAMESPACES, NODES, PODS, QUOTAS = (
    BY_PLURAL[p] for p in ("namespaces", "nodes", "pods", "resourcequotas")
)
EVENTS, JOBS, PRIORITY_CLASSES, RAYJOBS = (
    BY_PLURAL[p] for p in ("events", "jobs", "priorityclasses", "rayjobs")
)
POD_TEMPLATES, PROVISIONING_REQUESTS = (
    BY_PLURAL[p] for p in ("podtemplates", "provisioningrequests")
)
IMMUTABLE_REQUEST = ("podSets", "provisioningClassName", "parameters")
"""A ProvisioningRequest's spec fields its CRD declares immutable (``self == oldSelf``)."""
FIELDS = {  # field selectors the real server accepts beyond metadata.name and metadata.namespace
    "pods": {"status.phase", "spec.nodeName", "spec.restartPolicy", "spec.schedulerName"}
    | {"spec.serviceAccountName", "status.podIP", "status.nominatedNodeName"},
    "nodes": {"spec.unschedulable"},
    "namespaces": {"status.phase"},
    "events": {"reason", "type", "reportingComponent"}
    | {f"involvedObject.{f}" for f in ("kind", "namespace", "name", "uid", "apiVersion")},
}


class ApiError(Exception):
    """An answer other than 2xx: the real server's ``Status`` object."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        body.update(message=self.message, reason=self.reason, code=self.code)
        if self.details is not None:
            body["details"] = self.details
        return body


def _details(kind: Kind, name: str) -> Obj:
    return {"name": name, "group": kind.group, "kind": kind.plural}


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.resource} "{name}" not found', _details(kind, name))


def bad_request(message: str) -> ApiError:
    return ApiError(400, "BadRequest", message)


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


# --- patches -----------------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _tokens(pointer: str) -> list[str]:
    if pointer and not pointer.startswith("/"):
        raise ApiError(422, "Invalid", f"invalid JSON pointer {pointer!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _step_into(node: Any, token: str) -> Any:
    try:
        return node[int(token)] if isinstance(node, list) else node[token]
    except (KeyError, IndexError, ValueError, TypeError):
        raise ApiError(422, "Invalid", f"path element {token!r} does not exist") from None


def _resolve(doc: Any, pointer: str) -> tuple[Any, str]:
    tokens = _tokens(pointer)
    node = doc
    for token in tokens[:-1]:
        node = _step_into(node, token)
    return node, tokens[-1]


def json_patch(doc: Any, operations: Any) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy and test."""
    if not isinstance(operations, list):
        raise bad_request("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        verb, path = op.get("op"), op.get("path", "")
        if verb in ("move", "copy"):
            value = copy.deepcopy(_step_into(*_resolve(doc, op["from"])))
            if verb == "move":
                doc = json_patch(doc, [{"op": "remove", "path": op["from"]}])
            doc = json_patch(doc, [{"op": "add", "path": path, "value": value}])
            continue
        if path == "":
            if verb == "test" and doc != op.get("value"):
                raise ApiError(422, "Invalid", "test operation failed")
            doc = copy.deepcopy(op.get("value")) if verb in ("add", "replace") else doc
            continue
        parent, last = _resolve(doc, path)
        if verb == "test":
            if _step_into(parent, last) != op.get("value"):
                raise ApiError(422, "Invalid", f"test operation failed at {path}")
        elif verb in ("remove", "replace"):
            _step_into(parent, last)  # must exist
            if verb == "replace":
                parent[int(last) if isinstance(parent, list) else last] = op.get("value")
            elif isinstance(parent, list):
                parent.pop(int(last))
            else:
                del parent[last]
        elif verb == "add" and isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if not 0 <= index <= len(parent):
                raise ApiError(422, "Invalid", f"index {index} out of range at {path}")
            parent.insert(index, op.get("value"))
        elif verb == "add" and isinstance(parent, dict):
            parent[last] = op.get("value")
        else:
            raise ApiError(422, "Invalid", f"cannot apply {verb!r} at {path}")
    return doc


# --- selectors ---------------------------------------------------------------------------------

_REQUIREMENT = re.compile(
    r"^\s*(?P<bang>!)?\s*(?P<key>[A-Za-z0-9][-A-Za-z0-9_./]*)\s*"
    r"(?:(?P<op>==|=|!=)\s*(?P<value>[-A-Za-z0-9_.]*)|\s(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?\s*$"
)
_FIELD_REQUIREMENT = re.compile(r"^\s*(?P<key>[A-Za-z.]+)\s*(?P<op>==|=|!=)\s*(?P<value>.*?)\s*$")


def _split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [p for p in [*parts, current] if p.strip()]


def label_selector(text: str) -> Selector:
    requirements: list[tuple[str, str, set[str]]] = []  # key, in/notin/exists/!exists, values
    for part in _split_top_level(text):
        match = _REQUIREMENT.match(part)
        if not match or (match["bang"] and (match["op"] or match["setop"])):
            raise bad_request(f"unable to parse requirement: {part!r}")
        op = match["op"] or match["setop"] or ("!exists" if match["bang"] else "exists")
        values = {v.strip() for v in (match["set"] or "").split(",") if v.strip()}
        if match["op"]:
            op, values = ("notin" if op == "!=" else "in"), {match["value"]}
        requirements.append((match["key"], op, values))

    def matches(obj: Obj) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        for key, op, values in requirements:
            held = {"exists": key in labels, "!exists": key not in labels}.get(op)
            if held is None:
                held = (labels.get(key) in values) == (op == "in")
            if not held:
                return False
        return True

    return matches


def field_value(obj: Obj, path: str) -> str:
    node: Any = obj
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, bool):
        return "true" if node else "false"
    return "" if node is None else str(node)


def field_selector(kind: Kind, text: str) -> Selector:
    requirements: list[tuple[str, str, bool]] = []  # path, value, negated
    allowed = {"metadata.name", "metadata.namespace"} | FIELDS.get(kind.plural, set())
    for part in (p for p in text.split(",") if p.strip()):
        match = _FIELD_REQUIREMENT.match(part)
        if not match:
            raise bad_request(f"invalid field selector: {part!r}")
        if match["key"] not in allowed:
            raise bad_request(f"field label not supported: {match['key']}")
        requirements.append((match["key"], match["value"], match["op"] == "!="))
    return lambda obj: all((field_value(obj, k) == v) != n for k, v, n in requirements)


# --- quantities, scheduling, quota -------------------------------------------------------------


_QUANTITY = re.compile(r"([+-]?(?:\d+\.?\d*|\.\d+))(?:[eE]([+-]?\d+)|([KMGTPE]i|[numkMGTPE]))?")
_SUFFIXES = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def quantity(text: Any) -> Decimal:
    """A Kubernetes quantity ("500m", "80Gi", "1e3", 2) as a number."""
    match = _QUANTITY.fullmatch(str(text).strip())
    if not match:
        raise ApiError(422, "Invalid", f"quantities must match the regular expression: {text!r}")
    number, exponent, suffix = Decimal(match[1]), match[2], match[3] or ""
    if exponent:
        return number.scaleb(int(exponent))
    if suffix.endswith("i"):
        return number * Decimal(1024 ** ("KMGTPE".index(suffix[0]) + 1))
    return number.scaleb(_SUFFIXES.get(suffix, 0))


def show(amount: Decimal) -> str:
    return str(int(amount)) if amount == amount.to_integral_value() else str(amount.normalize())


def add(*amounts: dict[str, Decimal]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for each in amounts:
        for name, amount in each.items():
            total[name] = total.get(name, Decimal(0)) + amount
    return total


def pod_requests(pod: Obj) -> dict[str, Decimal]:
    """What a pod asks the scheduler for: per container requests, limits standing in for them."""
    return add(
        *(
            {name: quantity(amount) for name, amount in _resources(container).items()}
            for container in (pod.get("spec") or {}).get("containers") or []
        )
    )


def _resources(container: Obj, key: str = "") -> dict[str, Any]:
    resources = container.get("resources") or {}
    if key:
        return dict(resources.get(key) or {})
    return {**(resources.get("limits") or {}), **(resources.get("requests") or {})}


def quota_usage(pod: Obj) -> dict[str, Decimal]:
    """What a pod counts against a ResourceQuota, under every name a quota may use."""
    usage = {"pods": Decimal(1), "count/pods": Decimal(1)}
    for container in (pod.get("spec") or {}).get("containers") or []:
        requests = {n: quantity(a) for n, a in _resources(container).items()}
        limits = {n: quantity(a) for n, a in _resources(container, "limits").items()}
        usage = add(
            usage,
            {f"requests.{n}": a for n, a in requests.items()},
            {n: a for n, a in requests.items() if n in ("cpu", "memory", "ephemeral-storage")},
            {f"limits.{n}": a for n, a in limits.items()},
        )
    return usage


def tolerates(pod: Obj, taint: Obj) -> bool:
    if taint.get("effect") not in ("NoSchedule", "NoExecute"):
        return True
    for toleration in (pod.get("spec") or {}).get("tolerations") or []:
        if toleration.get("effect") not in (None, "", taint.get("effect")):
            continue
        if toleration.get("operator") == "Exists":
            if toleration.get("key") in (None, "", taint.get("key")):
                return True
        elif toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get(
            "value", ""
        ):
            return True
    return False


def matches_node(pod: Obj, node: Obj) -> bool:
    """nodeSelector and required node affinity (In, NotIn, Exists, DoesNotExist)."""
    labels = node["metadata"].get("labels") or {}
    spec = pod.get("spec") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []

    def holds(expr: Obj) -> bool:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        return {
            "In": labels.get(key) in values,
            "NotIn": labels.get(key) not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }.get(op, False)

    return not terms or any(all(holds(e) for e in t.get("matchExpressions") or []) for t in terms)


def condition(type_: str, status: bool, reason: str = "", message: str = "", now: str = "") -> Obj:
    result: Obj = {"type": type_, "status": "True" if status else "False"}
    if reason:
        result["reason"] = reason
    if message:
        result["message"] = message
    if now:
        result["lastTransitionTime"] = now
    return result


def owner_reference(owner: Obj) -> Obj:
    meta = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_by(obj: Obj, uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


@dataclass(frozen=True)
class _Event:
    rv: int
    type: str  # ADDED, MODIFIED or DELETED
    kind: Kind
    obj: Obj  # the object after the change (never mutated)
    old: Obj | None  # before a MODIFIED one, to turn it into ADDED/DELETED for a filtered watch


@dataclass(frozen=True)
class _Watch:
    kind: Kind
    namespace: str | None
    query: dict[str, str]


@dataclass(frozen=True)
class _Reply:
    code: int
    body: Obj | str


# --- the server --------------------------------------------------------------------------------


class FakeApiServer:
    """The fake kube-apiserver; see the module's docstring."""

    max_events = 10_000  # the event log keeps about this many; watches from before get 410 Gone

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._store: dict[Key, Obj] = {}
        self._log: list[_Event] = []
        self._floor = 0  # events up to this resourceVersion are forgotten
        self._rv = 0
        self._rng = random.Random(0)
        self._logs: dict[tuple[str, str], str] = {}
        self._counted: dict[str, dict[str, str]] = {}  # Job uid -> pod uid -> terminal phase
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._clients: list[Any] = []  # kubernetes.client.ApiClient
        self._stopping = False
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        self.requests: list[tuple[str, str]] = []
        """Every request but watches, as (method, path)."""
        self.watches: list[str] = []
        """The path of every watch opened."""
        with self._lock:
            self._create(NAMESPACES, None, {"metadata": {"name": "default"}})

    # --- lifecycle ---

    def start(self) -> None:
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._changed.notify_all()
        for client in self._clients:
            client.close()
        if self._server is not None:
            self._server.shutdown()
            for connection in list(self._connections):
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeApiServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake apiserver is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def configuration(self) -> kubernetes.client.Configuration:
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return configuration

    def api_client(self) -> kubernetes.client.ApiClient:
        client = kubernetes.client.ApiClient(self.configuration())
        self._clients.append(client)
        return client

    # --- clock ---

    def now(self) -> datetime:
        return self.clock()

    def advance(self, seconds: float) -> None:
        """Move ``clock`` (whichever it is) forward."""
        base, delta = self.clock, timedelta(seconds=seconds)
        self.clock = lambda: base() + delta

    # --- test hooks: inspection ---

    def objects(self, kind_plural: str, namespace: str | None = None) -> list[Obj]:
        kind = BY_PLURAL[kind_plural]
        with self._lock:
            return [copy.deepcopy(o) for o in self._select(kind, namespace)]

    def get_object(self, kind_plural: str, namespace: str | None, name: str) -> Obj | None:
        with self._lock:
            obj = self._store.get(self._key(BY_PLURAL[kind_plural], namespace, name))
            return copy.deepcopy(obj)

    def compact(self) -> None:
        """Forget the event log, as etcd compaction does: older watches then get 410 Gone."""
        with self._lock:
            self._log.clear()
            self._floor = self._rv

    # --- test hooks: the cluster admin ---

    def add_namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        with self._lock:
            self._create(NAMESPACES, None, {"metadata": {"name": name, "labels": labels or {}}})

    def add_node(
        self,
        name: str,
        allocatable: dict[str, str],
        labels: dict[str, str] | None = None,
        taints: list[Obj] | None = None,
        ready: bool = True,
    ) -> None:
        """A node; the resources every kubelet reports (cpu, memory, pods, ephemeral-storage)
        get roomy defaults when ``allocatable`` leaves them out."""
        allocatable = {**NODE_DEFAULTS, **allocatable}
        node: Obj = {
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, **(labels or {})},
            },
            "spec": {"taints": list(taints or [])},
            "status": {"capacity": dict(allocatable), "allocatable": dict(allocatable)},
        }
        with self._lock:
            self._set_node_ready(node, ready)
            self._create(NODES, None, node)

    def set_node_ready(self, name: str, ready: bool) -> None:
        with self._lock:
            node = self._required(NODES, None, name)
            self._set_node_ready(node, ready)
            self._update(NODES, node, "all")

    def cordon(self, name: str, cordoned: bool = True) -> None:
        with self._lock:
            node = self._required(NODES, None, name)
            spec = node.setdefault("spec", {})
            spec["taints"] = [
                t
                for t in spec.get("taints") or []
                if t["key"] != "node.kubernetes.io/unschedulable"
            ]
            if cordoned:
                spec["unschedulable"] = True
                spec["taints"].append(
                    {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
                )
            else:
                spec.pop("unschedulable", None)
            self._update(NODES, node)

    def _set_node_ready(self, node: Obj, ready: bool) -> None:
        now = rfc3339(self.now())
        reason, message = (
            ("KubeletReady", "kubelet is posting ready status")
            if ready
            else ("KubeletNotReady", "container runtime is down")
        )
        ready_condition = condition("Ready", ready, reason, message, now)
        ready_condition["lastHeartbeatTime"] = now
        node["status"]["conditions"] = [ready_condition]
        taints = [
            t
            for t in node["spec"].get("taints") or []
            if t["key"] != "node.kubernetes.io/not-ready"
        ]
        if not ready:
            taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
        node["spec"]["taints"] = taints

    # --- test hooks: the cluster autoscaler ---

    def provision(
        self, namespace: str, name: str, allocatable: dict[str, str] | None = None
    ) -> list[str]:
        """Provision the ProvisioningRequest ``namespace/name``, as the cluster autoscaler does
        when its scale-up succeeds: a Ready node for each pod its podSets count, labelled
        with the pod template's nodeSelector and able to allocate what the pod asks for
        (``allocatable`` instead, when given), then Accepted and Provisioned True. Returns
        the new nodes' names; KeyError when the request or a PodTemplate it names is missing."""
        with self._lock:
            request = self._required(PROVISIONING_REQUESTS, namespace, name)
            made = []
            for pod_set in (request.get("spec") or {}).get("podSets") or []:
                template_name = pod_set["podTemplateRef"]["name"]
                template = self._required(POD_TEMPLATES, namespace, template_name)["template"]
                wanted = {
                    resource: show(max(amount, quantity(NODE_DEFAULTS.get(resource, 0))))
                    for resource, amount in pod_requests(template).items()
                }
                selector = (template.get("spec") or {}).get("nodeSelector") or {}
                for _ in range(int(pod_set["count"])):
                    node = self._fresh_name(NODES, None, "burst-")
                    self.add_node(node, allocatable or wanted, labels=dict(selector))
                    made.append(node)
            self.provisioning_condition(namespace, name, "Accepted", True, "Accepted")
            self.provisioning_condition(
                namespace,
                name,
                "Provisioned",
                True,
                "Provisioned",
                "Provisioning Request was successfully provisioned.",
            )
            return made

    def refuse_provisioning(
        self, namespace: str, name: str, reason: str = "FailedToCreateNodes", message: str = ""
    ) -> None:
        """The cluster autoscaler gives up on the request: Provisioned False and Failed True,
        both with ``reason`` and ``message``."""
        message = message or "the cloud provider has no capacity for the request"
        with self._lock:
            self.provisioning_condition(namespace, name, "Accepted", True, "Accepted")
            self.provisioning_condition(namespace, name, "Provisioned", False, reason, message)
            self.provisioning_condition(namespace, name, "Failed", True, reason, message)

    def provisioning_condition(
        self, namespace: str, name: str, type_: str, status: bool, reason: str, message: str = ""
    ) -> None:
        """Set one condition of a ProvisioningRequest's status (a metav1.Condition: reason and
        message always there, lastTransitionTime moved only when its status changes)."""
        with self._lock:
            request = self._required(PROVISIONING_REQUESTS, namespace, name)
            state = copy.deepcopy(request.get("status") or {})
            conditions: list[Obj] = state.setdefault("conditions", [])
            now = condition(type_, status, reason, message, rfc3339(self.now()))
            now.update(message=message, observedGeneration=request["metadata"]["generation"])
            for index, before in enumerate(conditions):
                if before["type"] == type_:
                    if before["status"] == now["status"]:
                        now["lastTransitionTime"] = before["lastTransitionTime"]
                    conditions[index] = now
                    break
            else:
                conditions.append(now)
            self._write_status(PROVISIONING_REQUESTS, request, state)

    # --- test hooks: the scheduler and the kubelet ---

    def start_pod(self, namespace: str, name: str, node: str | None = None) -> None:
        """Schedule the pod (on ``node``, else the first node that fits) and run it; a pod that
        fits nowhere stays Pending with PodScheduled=False, reason Unschedulable. A running pod
        is left alone; an ended one cannot start again (RuntimeError)."""
        with self._lock:
            pod = self._required(PODS, namespace, name)
            phase = pod["status"].get("phase")
            if phase == "Running":
                return
            if phase in TERMINAL:
                raise RuntimeError(f"pod {namespace}/{name} has ended: {phase}")
            now = rfc3339(self.now())
            if node is not None:
                self._required(NODES, None, node)
            else:
                node, message = self._schedule(pod)
                if node is None:
                    pod["status"]["conditions"] = [
                        condition("PodScheduled", False, "Unschedulable", message, now)
                    ]
                    self._update(PODS, pod, "all")
                    return
            pod["spec"]["nodeName"] = node
            containers = pod["spec"].get("containers") or []
            pod["status"] = {
                "phase": "Running",
                "hostIP": "10.0.0.1",
                "podIP": f"10.244.{self._rng.randrange(256)}.{self._rng.randrange(1, 255)}",
                "startTime": now,
                "conditions": [
                    condition("PodScheduled", True, now=now),
                    *(
                        condition(t, True, now=now)
                        for t in (
                            "PodReadyToStartContainers",
                            "Initialized",
                            "Ready",
                            "ContainersReady",
                        )
                    ),
                ],
                "containerStatuses": [
                    {
                        "name": c.get("name", ""),
                        "image": c.get("image", ""),
                        "imageID": "",
                        "containerID": f"containerd://{self._rng.getrandbits(64):016x}",
                        "ready": True,
                        "started": True,
                        "restartCount": 0,
                        "state": {"running": {"startedAt": now}},
                    }
                    for c in containers
                ],
            }
            self._update(PODS, pod, "all")

    def finish_pod(self, namespace: str, name: str, exit_code: int, log: str = "") -> None:
        """The pod's containers exit with ``exit_code``: Succeeded if 0, else Failed. A pod not yet
        running is started first; one that cannot be scheduled, or has ended, is a RuntimeError."""
        with self._lock:
            self.start_pod(namespace, name)
            pod = self._required(PODS, namespace, name)
            if pod["status"].get("phase") != "Running":
                raise RuntimeError(f"pod {namespace}/{name} is not running")
            now = rfc3339(self.now())
            status = pod["status"]
            status["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            for c in status["conditions"]:
                if c["type"] in ("Ready", "ContainersReady"):
                    c.update(status="False", reason="PodCompleted", lastTransitionTime=now)
            for c in status.get("containerStatuses") or []:
                started = (c["state"].get("running") or {}).get("startedAt", now)
                c.update(ready=False, started=False)
                c["state"] = {
                    "terminated": {
                        "exitCode": exit_code,
                        "reason": "Completed" if exit_code == 0 else "Error",
                        "startedAt": started,
                        "finishedAt": now,
                        "containerID": c.get("containerID", ""),
                    }
                }
            self._update(PODS, pod, "all")
            if log:
                self.append_log(namespace, name, log)

    def append_log(self, namespace: str, pod: str, text: str) -> None:
        with self._lock:
            self._logs[(namespace, pod)] = self._logs.get((namespace, pod), "") + text

    def _schedule(self, pod: Obj) -> tuple[str | None, str]:
        wanted = pod_requests(pod)
        nodes = self._select(NODES, None)
        reasons: Counter[str] = Counter()
        for node in nodes:
            if node["spec"].get("unschedulable"):
                reasons["node(s) were unschedulable"] += 1
                continue
            untolerated = [t for t in node["spec"].get("taints") or [] if not tolerates(pod, t)]
            if untolerated:
                t = untolerated[0]
                reasons[f"node(s) had untolerated taint {{{t['key']}: {t.get('value', '')}}}"] += 1
                continue
            conditions = node["status"].get("conditions") or []
            if not any(c["type"] == "Ready" and c["status"] == "True" for c in conditions):
                reasons["node(s) were not ready"] += 1
                continue
            if not matches_node(pod, node):
                reasons["node(s) didn't match Pod's node affinity/selector"] += 1
                continue
            allocatable = {r: quantity(a) for r, a in node["status"]["allocatable"].items()}
            on_node = [
                p
                for p in self._select(PODS, None)
                if p["spec"].get("nodeName") == node["metadata"]["name"]
                and p["status"].get("phase") not in TERMINAL
            ]
            used = add(*(pod_requests(p) for p in on_node), {"pods": Decimal(len(on_node))})
            wanted_here = {**wanted, "pods": Decimal(1)} if "pods" in allocatable else wanted
            short = sorted(
                r for r, a in wanted_here.items() if a > allocatable.get(r, 0) - used.get(r, 0)
            )
            if short:
                reasons.update(f"Insufficient {r}" for r in short)
                continue
            return node["metadata"]["name"], ""
        summary = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        return None, f"0/{len(nodes)} nodes are available: {summary}."

    # --- the store ---

    @staticmethod
    def _key(kind: Kind, namespace: str | None, name: str) -> Key:
        return (kind.group, kind.version, kind.plural, namespace or "", name)

    def _select(self, kind: Kind, namespace: str | None) -> list[Obj]:
        keys = sorted(
            k
            for k in self._store
            if k[:3] == (kind.group, kind.version, kind.plural) and namespace in (None, k[3])
        )
        return [self._store[k] for k in keys]

    def _required(self, kind: Kind, namespace: str | None, name: str) -> Obj:
        """A copy of the object, to change and write back; KeyError when missing (hooks only)."""
        obj = self._store.get(self._key(kind, namespace, name))
        if obj is None:
            raise KeyError(f"no {kind.resource} {namespace}/{name}")
        return copy.deepcopy(obj)

    def _write(self, kind: Kind, obj: Obj, type_: str, old: Obj | None) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        key = self._key(kind, obj["metadata"].get("namespace"), obj["metadata"]["name"])
        if type_ == "DELETED":
            del self._store[key]
        else:
            self._store[key] = obj
        self._log.append(_Event(self._rv, type_, kind, obj, old))
        if len(self._log) > self.max_events:
            dropped = self._log[: len(self._log) // 2]
            del self._log[: len(dropped)]
            self._floor = dropped[-1].rv
        self._changed.notify_all()
        return obj

    def _check_type(self, kind: Kind, body: Any) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object")
        if body.get("apiVersion") not in (None, kind.api_version):
            raise bad_request(
                f"the API version in the data ({body['apiVersion']}) does not match the expected "
                f"API version ({kind.api_version})"
            )
        if body.get("kind") not in (None, kind.kind):
            raise bad_request(
                f"the kind in the data ({body['kind']}) does not match the expected kind "
                f"({kind.kind})"
            )
        obj: Obj = copy.deepcopy(body)
        obj.update(apiVersion=kind.api_version, kind=kind.kind)
        if not isinstance(obj.get("metadata"), dict):
            obj["metadata"] = {}
        return obj

    def _create(self, kind: Kind, namespace: str | None, body: Any) -> Obj:
        obj = self._check_type(kind, body)
        meta = obj["metadata"]
        if kind.namespaced:
            if meta.get("namespace") not in (None, "", namespace):
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            if self._key(NAMESPACES, None, namespace or "") not in self._store:
                raise not_found(NAMESPACES, namespace or "")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(
                    422, "Invalid", f"{kind.kind} is invalid: name or generateName is required"
                )
            meta["name"] = self._fresh_name(kind, namespace, meta["generateName"])
        name = meta["name"]
        label = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
        pattern = label if kind is NAMESPACES else rf"{label}(\.{label})*"
        if not re.fullmatch(pattern, name) or len(name) > (63 if kind is NAMESPACES else 253):
            raise ApiError(
                422,
                "Invalid",
                f'{kind.kind} "{name}" is invalid: metadata.name: Invalid value: '
                f'"{name}": a lowercase RFC 1123 name must consist of lower case alphanumeric '
                "characters, '-' or '.'",
                _details(kind, name),
            )
        if self._key(kind, namespace, name) in self._store:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{kind.resource} "{name}" already exists',
                _details(kind, name),
            )
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds"):
            meta.pop(field, None)
        meta.update(
            uid=str(uuid.UUID(int=self._rng.getrandbits(128), version=4)),
            creationTimestamp=rfc3339(self.now()),
            generation=1,
        )
        if kind.status and kind is not NODES:
            obj.pop("status", None)
        self._admit(kind, obj)
        return self._write(kind, obj, "ADDED", None)

    def _fresh_name(self, kind: Kind, namespace: str | None, prefix: str) -> str:
        while True:
            name = prefix + "".join(self._rng.choice(NAME_CHARS) for _ in range(5))
            if self._key(kind, namespace, name) not in self._store:
                return name

    def _admit(self, kind: Kind, obj: Obj) -> None:
        """Defaults and admission checks of a new object."""
        meta, spec = obj["metadata"], obj.setdefault("spec", {}) if kind.status else {}
        if kind is NAMESPACES:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
            spec.setdefault("finalizers", ["kubernetes"])
            obj["status"] = {"phase": "Active"}
        elif kind is PODS:
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("serviceAccountName", "default")
            priority_class = spec.get("priorityClassName")
            if priority_class:
                found = self._store.get(self._key(PRIORITY_CLASSES, None, priority_class))
                if found is None and priority_class not in BUILTIN_PRIORITIES:
                    raise ApiError(
                        403,
                        "Forbidden",
                        f'pods "{meta["name"]}" is forbidden: no PriorityClass '
                        f"with name {priority_class} was found",
                        _details(PODS, meta["name"]),
                    )
                spec["priority"] = found["value"] if found else BUILTIN_PRIORITIES[priority_class]
            self._admit_quota(obj)
            obj["status"] = {"phase": "Pending"}
        elif kind is JOBS:
            if spec.get("parallelism") is None:
                spec["parallelism"] = 1
                spec.setdefault("completions", 1)
            spec.setdefault("backoffLimit", 6)
            spec.setdefault("suspend", False)
            spec.setdefault("completionMode", "NonIndexed")
            uid = meta["uid"]
            selector = {"batch.kubernetes.io/controller-uid": uid}
            spec.setdefault("selector", {"matchLabels": selector})
            template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
            template_meta["labels"] = {
                **(template_meta.get("labels") or {}),
                **selector,
                "controller-uid": uid,
                "job-name": meta["name"],
                "batch.kubernetes.io/job-name": meta["name"],
            }
            obj["status"] = {}

    def _admit_quota(self, pod: Obj) -> None:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        wanted = quota_usage(pod)
        pods = [
            p for p in self._select(PODS, namespace) if p["status"].get("phase") not in TERMINAL
        ]
        used = add(*(quota_usage(p) for p in pods))
        for quota in self._select(QUOTAS, namespace):
            hard = {
                r: quantity(a) for r, a in ((quota.get("spec") or {}).get("hard") or {}).items()
            }
            over = sorted(
                r for r, limit in hard.items() if r in wanted and used.get(r, 0) + wanted[r] > limit
            )
            if over:
                listed = [
                    ", ".join(f"{r}={show(amounts[r])}" for r in over)
                    for amounts in (wanted, {r: used.get(r, Decimal(0)) for r in over}, hard)
                ]
                raise ApiError(
                    403,
                    "Forbidden",
                    f'pods "{name}" is forbidden: exceeded quota: {quota["metadata"]["name"]}, '
                    f"requested: {listed[0]}, used: {listed[1]}, limited: {listed[2]}",
                    _details(PODS, name),
                )

    def _update(self, kind: Kind, new: Obj, part: str = "main") -> Obj:
        """Write a changed copy of a stored object. ``part`` says what may change for a kind with
        a status subresource: "main" (all but .status), "status" (only .status) or "all" (the
        hooks). Metadata the server owns is kept; no change means no write."""
        meta = new["metadata"]
        old = self._store.get(self._key(kind, meta.get("namespace"), meta["name"]))
        if old is None:
            raise not_found(kind, meta["name"])
        if kind.status and part != "all":
            if part == "status":
                new = {**copy.deepcopy(old), "status": new.get("status")}
            else:
                new = {k: v for k, v in new.items() if k != "status"}
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
        meta = new["metadata"]
        for field in ("uid", "creationTimestamp", "generation", "deletionTimestamp", "namespace"):
            if field in old["metadata"]:
                meta[field] = old["metadata"][field]
            else:
                meta.pop(field, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        if new == old:
            return old
        if kind is PROVISIONING_REQUESTS:
            before, after = old.get("spec") or {}, new.get("spec") or {}
            for field in IMMUTABLE_REQUEST:
                if before.get(field) != after.get(field):
                    raise ApiError(
                        422,
                        "Invalid",
                        f'{kind.kind}.{kind.group} "{meta["name"]}" is invalid: spec.{field}: '
                        "Invalid value: Value is immutable",
                        _details(kind, meta["name"]),
                    )
        changed = {k for k in {*new, *old} if new.get(k) != old.get(k)} - {"metadata", "status"}
        if part == "main" and changed:
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            return self._write(kind, new, "DELETED", None)
        return self._write(kind, new, "MODIFIED", old)

    def _delete(self, kind: Kind, obj: Obj, policy: str | None = None) -> Obj:
        """Delete a stored object: its dependents by ``policy``, a namespace's contents; an
        object with finalizers only gets a deletionTimestamp."""
        meta = obj["metadata"]
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return obj
            marked = copy.deepcopy(obj)
            marked["metadata"]["deletionTimestamp"] = rfc3339(self.now())
            marked["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._write(kind, marked, "MODIFIED", obj)
        if policy is None:  # batch/v1 Jobs orphan their pods unless told otherwise
            policy = "Orphan" if kind is JOBS else "Background"
        if policy not in ("Orphan", "Background", "Foreground"):
            raise ApiError(422, "Invalid", f"Unsupported propagation policy: {policy!r}")
        for key in list(self._store):
            other = self._store.get(key)
            if other is None:
                continue
            other_kind = BY_PATH[key[:3]]
            if kind is NAMESPACES and key[3] == meta["name"]:
                self._delete(other_kind, other, "Background")
            elif owned_by(other, meta["uid"]):
                if policy == "Orphan":
                    orphan = copy.deepcopy(other)
                    orphan["metadata"]["ownerReferences"] = [
                        r
                        for r in orphan["metadata"]["ownerReferences"]
                        if r.get("uid") != meta["uid"]
                    ]
                    self._update(other_kind, orphan)
                else:
                    self._delete(other_kind, other, "Background")
        gone = copy.deepcopy(obj)
        if kind is NAMESPACES:
            gone["metadata"]["deletionTimestamp"] = rfc3339(self.now())
            gone["status"] = {"phase": "Terminating"}
        if kind is PODS:
            self._logs.pop((meta["namespace"], meta["name"]), None)
        if kind is JOBS:
            self._counted.pop(meta["uid"], None)
        return self._write(kind, gone, "DELETED", None)

    # --- the HTTP API ---

    def _handle(
        self, method: str, path: str, query: dict[str, str], raw: bytes, content_type: str
    ) -> _Reply | _Watch:
        segments = [s for s in path.split("/") if s]
        discovery = self._discovery(segments)
        if discovery is not None:
            if method != "GET":
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            return _Reply(200, discovery)
        if segments[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segments[2:]
        elif segments[:1] == ["apis"] and len(segments) >= 3:
            group, version, rest = segments[1], segments[2], segments[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace: str | None = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            nested = BY_PATH.get((group, version, rest[2]))
            if nested is not None and nested.namespaced:
                namespace, rest = rest[1], rest[2:]
        kind = BY_PATH.get((group, version, rest[0])) if rest else None
        if (
            kind is None
            or len(rest) > 3
            or (kind.namespaced and namespace is None and len(rest) > 1)
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub not in (None, "status", "log") or (sub == "status" and not kind.status):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub == "log" and (kind is not PODS or method != "GET"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if query.get("dryRun"):
            raise bad_request("dryRun is not supported by the fake apiserver")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                raise bad_request("the request body is not JSON") from None
        with self._lock:
            if name is None:
                if method == "GET" and query.get("watch", "").lower() in ("true", "1"):
                    label_selector(query.get("labelSelector", ""))  # 400 before the stream starts
                    field_selector(kind, query.get("fieldSelector", ""))
                    return _Watch(kind, namespace, query)
                if method == "GET":
                    return _Reply(200, self._list(kind, namespace, query))
                if method == "POST" and (namespace is not None or not kind.namespaced):
                    return _Reply(201, self._create(kind, namespace, body))
                if method == "DELETE" and (namespace is not None or not kind.namespaced):
                    selected = self._filter(kind, namespace, query)
                    for obj in selected:
                        self._delete(kind, obj, query.get("propagationPolicy"))
                    return _Reply(200, self._list_object(kind, selected))
                raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")
            stored = self._store.get(self._key(kind, namespace, name))
            if stored is None:
                raise not_found(kind, name)
            if method == "GET" and sub == "log":
                return _Reply(200, self._pod_log(stored, query))
            if method == "GET":
                return _Reply(200, stored)
            if method == "PUT":
                new = self._check_type(kind, body)
                if new["metadata"].get("name", name) != name:
                    raise bad_request("the name of the object does not match the name on the URL")
                self._check_version(kind, stored, new)
                new["metadata"].update(name=name, namespace=namespace)
                return _Reply(200, self._update(kind, new, "status" if sub == "status" else "main"))
            if method == "PATCH":
                patched = self._patch(kind, stored, body, content_type)
                self._check_version(kind, stored, patched)
                return _Reply(
                    200, self._update(kind, patched, "status" if sub == "status" else "main")
                )
            if method == "DELETE" and sub is None:
                return _Reply(200, self._delete_request(kind, stored, query, body))
        raise ApiError(405, "MethodNotAllowed", "the server does not allow this method")

    def _patch(self, kind: Kind, stored: Obj, patch: Any, content_type: str) -> Obj:
        media = content_type.split(";")[0].strip()
        if media == "application/json-patch+json":
            patched = json_patch(stored, patch)
        elif media == "application/merge-patch+json" or (
            media == "application/strategic-merge-patch+json" and not kind.custom
        ):
            if not isinstance(patch, dict):
                raise bad_request("a merge patch must be a JSON object")
            patched = merge_patch(stored, patch)
        else:
            accepted = ["application/json-patch+json", "application/merge-patch+json"]
            accepted += [] if kind.custom else ["application/strategic-merge-patch+json"]
            raise ApiError(
                415,
                "UnsupportedMediaType",
                f"the body of the request was in an unknown format - accepted media types "
                f"include: {', '.join(accepted)}",
            )
        if not isinstance(patched, dict) or not isinstance(patched.get("metadata"), dict):
            raise ApiError(422, "Invalid", "the patch removed the object's metadata")
        meta = patched["metadata"]
        if (meta.get("name"), meta.get("namespace")) != (
            stored["metadata"]["name"],
            stored["metadata"].get("namespace"),
        ):
            raise bad_request("a patch may not change the object's name or namespace")
        return self._check_type(kind, patched)

    def _check_version(self, kind: Kind, stored: Obj, new: Obj) -> None:
        version = new["metadata"].get("resourceVersion")
        if version and version != stored["metadata"]["resourceVersion"]:
            name = stored["metadata"]["name"]
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {kind.resource} "{name}": the object has been '
                "modified; please apply your changes to the latest version and try again",
                _details(kind, name),
            )

    def _delete_request(self, kind: Kind, stored: Obj, query: dict[str, str], body: Any) -> Obj:
        options = body if isinstance(body, dict) else {}
        preconditions = options.get("preconditions") or {}
        meta = stored["metadata"]
        for field in ("uid", "resourceVersion"):
            if preconditions.get(field) and preconditions[field] != meta[field]:
                raise ApiError(
                    409,
                    "Conflict",
                    f"Precondition failed: {field} in precondition: {preconditions[field]}, "
                    f"{field} in object meta: {meta[field]}",
                    _details(kind, meta["name"]),
                )
        policy = options.get("propagationPolicy") or query.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        gone = self._delete(kind, stored, policy)
        if (
            kind.returns_object
            or self._key(kind, meta.get("namespace"), meta["name"]) in self._store
        ):
            return gone  # (an object that finalizers keep is returned, with its deletionTimestamp)
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {**_details(kind, meta["name"]), "uid": meta["uid"]},
        }

    def _filter(self, kind: Kind, namespace: str | None, query: dict[str, str]) -> list[Obj]:
        labels = label_selector(query.get("labelSelector", ""))
        fields = field_selector(kind, query.get("fieldSelector", ""))
        return [o for o in self._select(kind, namespace) if labels(o) and fields(o)]

    def _list_object(self, kind: Kind, items: list[Obj]) -> Obj:
        if not kind.custom:  # built-in kinds' list items carry no kind and apiVersion
            items = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
        return {
            "kind": f"{kind.kind}List",
            "apiVersion": kind.api_version,
            "metadata": {"resourceVersion": str(self._rv)},
            "items": items,
        }

    def _list(self, kind: Kind, namespace: str | None, query: dict[str, str]) -> Obj:
        items = self._filter(kind, namespace, query)
        token = query.get("continue")
        if token:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token)))
            except ValueError:
                raise ApiError(410, "Expired", "the continue token is not valid") from None
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > after
            ]
        limit = int(query.get("limit") or 0)
        result = self._list_object(kind, items[:limit] if limit else items)
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            result["metadata"]["continue"] = base64.urlsafe_b64encode(
                json.dumps([last.get("namespace", ""), last["name"]]).encode()
            ).decode()
            result["metadata"]["remainingItemCount"] = len(items) - limit
        return result

    def _pod_log(self, pod: Obj, query: dict[str, str]) -> str:
        name = pod["metadata"]["name"]
        containers = [c.get("name") for c in pod["spec"].get("containers") or []]
        container = query.get("container") or (containers[0] if containers else "")
        if container not in containers:
            raise bad_request(f"container {container} is not valid for pod {name}")
        if pod["status"].get("phase") == "Pending":
            raise bad_request(
                f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating'
            )
        text = self._logs.get((pod["metadata"]["namespace"], name), "")
        if query.get("tailLines"):
            lines = text.splitlines(keepends=True)
            tail = int(query["tailLines"])
            text = "".join(lines[-tail:]) if tail > 0 else ""
        return text

    def _discovery(self, segments: list[str]) -> Obj | None:
        groups = sorted({k.group for k in KINDS if k.group})

        def group(name: str) -> Obj:
            version = {"groupVersion": f"{name}/v1", "version": "v1"}
            return {"name": name, "versions": [version], "preferredVersion": version}

        def resources(group_version: str, kinds: Iterable[Kind]) -> Obj:
            listed = []
            for k in kinds:
                verbs = [
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ]
                listed.append(
                    {"name": k.plural, "singularName": k.kind.lower(), "namespaced": k.namespaced}
                    | {"kind": k.kind, "verbs": verbs}
                )
                for sub in ("status",) * k.status + ("log",) * (k is PODS):
                    listed.append(
                        {"name": f"{k.plural}/{sub}", "singularName": "", "kind": k.kind}
                        | {"namespaced": k.namespaced, "verbs": ["get", "patch", "update"]}
                    )
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
            } | {"resources": listed}

        if segments == ["version"]:
            return VERSION
        if segments == ["api"]:
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if segments == ["apis"]:
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [group(g) for g in groups],
            }
        if len(segments) == 2 and segments[0] == "apis" and segments[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **group(segments[1])}
        if segments == ["api", "v1"]:
            return resources("v1", (k for k in KINDS if not k.group))
        if (
            len(segments) == 3
            and segments[0] == "apis"
            and segments[1] in groups
            and segments[2] == "v1"
        ):
            return resources(f"{segments[1]}/v1", (k for k in KINDS if k.group == segments[1]))
        return None

    # --- watches ---

    def _watch_events(self, watch: _Watch, events: list[_Event], selector: Selector) -> list[Obj]:
        """The events a watch sees: a MODIFIED one that moves an object into or out of its
        selection becomes ADDED or DELETED, as with the real server."""
        out = []
        for event in events:
            if event.kind is not watch.kind:
                continue
            if (
                watch.namespace is not None
                and event.obj["metadata"].get("namespace") != watch.namespace
            ):
                continue
            now, before = selector(event.obj), event.old is not None and selector(event.old)
            type_ = event.type
            if type_ == "MODIFIED" and now != before:
                type_ = "ADDED" if now else "DELETED"
            elif not now:
                continue
            out.append({"type": type_, "object": event.obj})
        return out

    def _stream(self, handler: _Handler, watch: _Watch) -> None:
        query = watch.query
        labels = label_selector(query.get("labelSelector", ""))
        fields = field_selector(watch.kind, query.get("fieldSelector", ""))

        def selector(obj: Obj) -> bool:
            return labels(obj) and fields(obj)

        timeout = query.get("timeoutSeconds")
        deadline = time.monotonic() + float(timeout) if timeout else None
        bookmarks = query.get("allowWatchBookmarks", "").lower() in ("true", "1")
        version = query.get("resourceVersion", "")
        initial = query.get("sendInitialEvents", "").lower() == "true"
        with self._lock:
            if version in ("", "0") or initial:
                since = self._rv
                pending = [
                    {"type": "ADDED", "object": o}
                    for o in self._select(watch.kind, watch.namespace)
                    if selector(o)
                ]
                if initial and bookmarks:
                    pending.append(
                        self._bookmark(watch.kind, {"k8s.io/initial-events-end": "true"})
                    )
            else:
                try:
                    since = int(version)
                except ValueError:
                    raise bad_request(f"invalid resource version: {version!r}") from None
                pending = []
        handler.start_chunked()
        try:
            while True:
                with self._lock:
                    if since < self._floor:
                        pending.append(self._expired(since))
                        since = -1
                    else:
                        start = bisect.bisect_right(self._log, since, key=lambda e: e.rv)
                        new = self._log[start:]
                        since = self._rv
                        pending += self._watch_events(watch, new, selector)
                if pending:
                    handler.write_chunk(b"".join(json.dumps(e).encode() + b"\n" for e in pending))
                    pending = []
                if since < 0:
                    break
                with self._lock:
                    while self._rv == since and not self._stopping:
                        remaining = None if deadline is None else deadline - time.monotonic()
                        if remaining is not None and remaining <= 0:
                            break
                        self._changed.wait(remaining)
                    if self._rv == since:  # timed out, or the server stops
                        if bookmarks and not self._stopping:
                            pending.append(self._bookmark(watch.kind, {}))
                        break
            if pending:
                handler.write_chunk(b"".join(json.dumps(e).encode() + b"\n" for e in pending))
            handler.write_chunk(b"")
        except OSError:
            handler.close_connection = True

    def _bookmark(self, kind: Kind, annotations: dict[str, str]) -> Obj:
        meta: Obj = {"resourceVersion": str(self._rv)}
        if annotations:
            meta["annotations"] = annotations
        return {
            "type": "BOOKMARK",
            "object": {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": meta},
        }

    def _expired(self, since: int) -> Obj:
        error = ApiError(410, "Expired", f"too old resource version: {since} ({self._floor + 1})")
        return {"type": "ERROR", "object": error.status()}

    # --- controllers ---

    def step(self) -> None:
        """Run the controllers once: Jobs, RayJobs, then the ResourceQuota status."""
        with self._lock:
            for job in self._select(JOBS, None):
                self._sync_job(job)
            for rayjob in self._select(RAYJOBS, None):
                self._sync_rayjob(rayjob)
            for quota in self._select(QUOTAS, None):
                self._sync_quota(quota)

    def _owned_pods(self, owner: Obj) -> list[Obj]:
        namespace, uid = owner["metadata"]["namespace"], owner["metadata"]["uid"]
        return [p for p in self._select(PODS, namespace) if owned_by(p, uid)]

    def _create_owned_pod(
        self, owner: Obj, name: str, template: Obj, labels: dict[str, str]
    ) -> bool:
        """Create a pod from a template for a controller; False (and a FailedCreate event) when
        the API refuses it, e.g. over quota."""
        template_meta = template.get("metadata") or {}
        pod = {
            "metadata": {
                "name": name,
                "labels": {**(template_meta.get("labels") or {}), **labels},
                "annotations": dict(template_meta.get("annotations") or {}),
                "ownerReferences": [owner_reference(owner)],
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
        }
        try:
            self._create(PODS, owner["metadata"]["namespace"], pod)
        except ApiError as error:
            self._record_event(owner, "FailedCreate", f"Error creating: {error.message}")
            return False
        return True

    def _record_event(self, obj: Obj, reason: str, message: str) -> None:
        meta = obj["metadata"]
        for event in self._select(EVENTS, meta["namespace"]):
            if (event["involvedObject"].get("uid"), event["reason"], event["message"]) == (
                meta["uid"],
                reason,
                message,
            ):
                return
        now = rfc3339(self.now())
        component = "job-controller" if obj["kind"] == "Job" else "rayjob-controller"
        event = {
            "metadata": {"name": f"{meta['name']}.{self._rng.getrandbits(64):016x}"},
            "involvedObject": {
                "apiVersion": obj["apiVersion"],
                "kind": obj["kind"],
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        self._create(EVENTS, meta["namespace"], event)

    def _write_status(self, kind: Kind, obj: Obj, status: Obj) -> None:
        if status != obj.get("status"):
            self._update(kind, {**obj, "status": status}, "status")

    def _sync_job(self, job: Obj) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        status = copy.deepcopy(job.get("status") or {})
        conditions: list[Obj] = status.setdefault("conditions", [])
        now = self.now()
        stamp = rfc3339(now)
        finished = [
            c for c in conditions if c["type"] in ("Complete", "Failed") and c["status"] == "True"
        ]
        if finished:
            ttl = spec.get("ttlSecondsAfterFinished")
            done = parse_time(finished[0].get("lastTransitionTime", stamp))
            if ttl is not None and now >= done + timedelta(seconds=ttl):
                self._delete(JOBS, job, "Background")
            return
        pods = self._owned_pods(job)
        counted = self._counted.setdefault(meta["uid"], {})
        for pod in pods:
            if pod["status"].get("phase") in TERMINAL:
                counted[pod["metadata"]["uid"]] = pod["status"]["phase"]
        active = [p for p in pods if p["status"].get("phase") not in TERMINAL]
        succeeded = sum(1 for phase in counted.values() if phase == "Succeeded")
        failed = len(counted) - succeeded

        def set_condition(type_: str, state: bool, reason: str, message: str) -> None:
            for c in conditions:
                if c["type"] == type_:
                    if c["status"] != ("True" if state else "False"):
                        c.update(condition(type_, state, reason, message, stamp))
                    return
            conditions.append(
                condition(type_, state, reason, message, stamp) | {"lastProbeTime": stamp}
            )

        def kill_active() -> None:
            for pod in active:
                self._delete(PODS, pod, "Background")
            active.clear()

        if spec.get("suspend"):
            kill_active()
            status.pop("startTime", None)
            set_condition("Suspended", True, "JobSuspended", "Job suspended")
        else:
            if any(c["type"] == "Suspended" for c in conditions):
                set_condition("Suspended", False, "JobResumed", "Job resumed")
            status.setdefault("startTime", stamp)
            completions, parallelism = spec.get("completions"), spec.get("parallelism", 1)
            deadline = spec.get("activeDeadlineSeconds")
            started = parse_time(status["startTime"])
            failure = None
            if failed > spec.get("backoffLimit", 6):
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            elif deadline is not None and now - started >= timedelta(seconds=deadline):
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            if failure is not None:
                kill_active()
                set_condition("FailureTarget", True, *failure)
                set_condition("Failed", True, *failure)
            elif succeeded >= (completions if completions is not None else 1) and (
                completions is not None or not active
            ):
                kill_active()
                set_condition(
                    "SuccessCriteriaMet",
                    True,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
                set_condition(
                    "Complete",
                    True,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
                status["completionTime"] = stamp
            else:
                wanted = (
                    parallelism
                    if completions is None
                    else min(parallelism, completions - succeeded)
                )
                for _ in range(wanted - len(active)):
                    name = self._fresh_name(PODS, meta["namespace"], f"{meta['name']}-")
                    if not self._create_owned_pod(job, name, spec.get("template") or {}, {}):
                        break
                active = [
                    p for p in self._owned_pods(job) if p["status"].get("phase") not in TERMINAL
                ]
        for field, count in (("active", len(active)), ("succeeded", succeeded), ("failed", failed)):
            if count:
                status[field] = count
            else:
                status.pop(field, None)
        status["ready"] = sum(
            1
            for p in active
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []
            )
        )
        if not conditions:
            del status["conditions"]
        self._write_status(JOBS, job, status)

    def _sync_rayjob(self, rayjob: Obj) -> None:
        meta, spec = rayjob["metadata"], rayjob.get("spec") or {}
        status = copy.deepcopy(rayjob.get("status") or {})
        name, now = meta["name"], self.now()
        stamp = rfc3339(now)
        pods = self._owned_pods(rayjob)
        deployment = status.get("jobDeploymentStatus", "")
        if deployment in ("Complete", "Failed"):
            self._shut_down_rayjob(rayjob, status, pods)
            return
        if spec.get("suspend"):  # KubeRay: Suspending (the cluster goes), then Suspended
            for pod in pods:
                self._delete(PODS, pod, "Background")
            running = deployment in ("Initializing", "Running")
            status["jobDeploymentStatus"] = "Suspending" if running else "Suspended"
            self._write_status(RAYJOBS, rayjob, status)
            return
        if deployment in ("", "New", "Suspending", "Suspended"):
            status.update(
                jobDeploymentStatus="Initializing",
                jobStatus="PENDING",
                startTime=stamp,
                rayClusterName=name,
                jobId=spec.get("jobId") or f"{name}-{self._rng.getrandbits(32):08x}",
            )
        deadline = spec.get("activeDeadlineSeconds")
        if deadline is not None and now - parse_time(status["startTime"]) >= timedelta(
            seconds=deadline
        ):
            status.update(
                jobDeploymentStatus="Failed",
                reason="DeadlineExceeded",
                message=f"The RayJob has passed the activeDeadlineSeconds. StartTime: "
                f"{status['startTime']}. ActiveDeadlineSeconds: {deadline}",
                endTime=stamp,
            )
            self._write_status(RAYJOBS, rayjob, status)
            self._shut_down_rayjob(rayjob, status, pods)
            return
        cluster = spec.get("rayClusterSpec") or {}
        groups = [
            ("headgroup", "head", 1, (cluster.get("headGroupSpec") or {}).get("template") or {})
        ]
        for worker in cluster.get("workerGroupSpecs") or []:
            replicas = worker.get("replicas", worker.get("minReplicas", 1)) * worker.get(
                "numOfHosts", 1
            )
            groups.append((worker["groupName"], "worker", replicas, worker.get("template") or {}))
        for group, node_type, replicas, template in groups:
            have = sum(1 for p in pods if p["metadata"]["labels"].get("ray.io/group") == group)
            labels = {
                "ray.io/node-type": node_type,
                "ray.io/cluster": name,
                "ray.io/group": group,
                "ray.io/is-ray-node": "yes",
                "app.kubernetes.io/created-by": "kuberay-operator",
            }
            prefix = f"{name}-head-" if node_type == "head" else f"{name}-{group}-worker-"
            for _ in range(replicas - have):
                pod_name = self._fresh_name(PODS, meta["namespace"], prefix)
                if not self._create_owned_pod(rayjob, pod_name, template, labels):
                    break
        pods = self._owned_pods(rayjob)
        head = [p for p in pods if p["metadata"]["labels"].get("ray.io/node-type") == "head"]
        head_phase = head[0]["status"].get("phase") if head else None
        expected = sum(replicas for _, _, replicas, _ in groups)
        if head_phase in TERMINAL:
            succeeded = head_phase == "Succeeded"
            status.update(
                jobStatus="SUCCEEDED" if succeeded else "FAILED",
                jobDeploymentStatus="Complete" if succeeded else "Failed",
                endTime=stamp,
            )
            if not succeeded:
                status.update(reason="AppFailed", message="the Ray job failed")
        elif len(pods) == expected and all(p["status"].get("phase") == "Running" for p in pods):
            status.update(jobDeploymentStatus="Running", jobStatus="RUNNING")
        self._write_status(RAYJOBS, rayjob, status)
        if head_phase in TERMINAL:
            self._shut_down_rayjob(rayjob, status, pods)

    def _shut_down_rayjob(self, rayjob: Obj, status: Obj, pods: list[Obj]) -> None:
        spec = rayjob.get("spec") or {}
        if not spec.get("shutdownAfterJobFinishes") or not pods:
            return
        ttl = timedelta(seconds=spec.get("ttlSecondsAfterFinished", 0))
        if self.now() >= parse_time(status["endTime"]) + ttl:
            for pod in pods:
                if (
                    self._key(PODS, pod["metadata"]["namespace"], pod["metadata"]["name"])
                    in self._store
                ):
                    self._delete(PODS, pod, "Background")

    def _sync_quota(self, quota: Obj) -> None:
        hard = (quota.get("spec") or {}).get("hard") or {}
        pods = [
            p
            for p in self._select(PODS, quota["metadata"]["namespace"])
            if p["status"].get("phase") not in TERMINAL
        ]
        used = add(*(quota_usage(p) for p in pods))
        status = {"hard": dict(hard), "used": {r: show(used.get(r, Decimal(0))) for r in hard}}
        self._write_status(QUOTAS, quota, status)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeApiServer) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def server_bind(self) -> None:  # HTTPServer's would look up the host's name: slow
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms stalls
        self._fake()._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self._fake()._connections.discard(self.connection)

    def _fake(self) -> FakeApiServer:
        return cast(_Server, self.server).fake

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        fake = self._fake()
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        if method == "GET" and query.get("watch") in ("true", "1"):
            fake.watches.append(url.path)
        else:
            fake.requests.append((method, url.path))
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            reply = fake._handle(method, url.path, query, raw, self.headers.get("Content-Type", ""))
            if isinstance(reply, _Watch):
                fake._stream(self, reply)
                return
        except ApiError as error:
            reply = _Reply(error.code, error.status())
        except Exception as error:  # a bug of the fake, or a body it cannot digest
            reply = _Reply(500, ApiError(500, "InternalError", repr(error)).status())
        if isinstance(reply.body, str):
            data, content_type = reply.body.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(reply.body).encode(), "application/json"
        self.send_response(reply.code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
