"""The Ray backend: runs admitted jobs on a Ray cluster through its Jobs REST API.

It speaks plain HTTP JSON to the Ray dashboard (what ``ray.job_submission.JobSubmissionClient``
does), so the scheduler needs no Ray driver connection. The gpupool job id is Ray's
``submission_id``, which makes every call idempotent: Ray rejects a second job with the same
submission id (with HTTP 500, not 409), and ``submit`` then finds the first one and is done.

Endpoints used (checked against Ray 2.60):

* ``POST /api/jobs/``, ``GET /api/jobs/{id}``, ``POST /api/jobs/{id}/stop``,
  ``GET /api/jobs/{id}/logs``, ``GET /api/jobs/``: the Jobs API.
* ``GET /nodes?view=summary``: the dashboard's node summary. Its ``nodeLogicalResources`` holds,
  per alive node, ``"<used>/<total> <resource>"`` lines, the only place the dashboard offers each
  node's *available* logical resources (the state API's nodes carry totals only). On a cluster
  with the legacy autoscaler it lags by up to ``AUTOSCALER_UPDATE_INTERVAL_S`` (5 s by default)
  plus a 2 s response cache: capacity is a hint for placement, never a promise.
* ``GET /api/v0/nodes``, ``/api/v0/actors``, ``/api/v0/tasks``, ``/api/v0/placement_groups``:
  the state API, for alive nodes and for the GPUs each job's tasks, actors and placement groups
  really hold.

Failures are classified for the scheduler: no connection, timeouts, HTTP 5xx, 408 and 429 are
``TransientBackendError``; any other 4xx (a request Ray refuses as malformed) is
``PermanentBackendError``.

What counts as a system fault (``RunStatus.system_fault``) follows Ray's ``error_type`` on a
``FAILED`` job: the job's own fault is ``JOB_ENTRYPOINT_COMMAND_ERROR`` (the entrypoint exited
non-zero, whatever killed it) and ``RUNTIME_ENV_SETUP_FAILURE`` (the runtime_env the job asked for
could not be built: a missing package, a bad ``working_dir``); Ray's fault is every
``JOB_SUPERVISOR_ACTOR_*`` (the actor that runs the job could not be scheduled, did not start in
time, failed or died, e.g. with its node) and ``JOB_ENTRYPOINT_COMMAND_START_ERROR`` (Ray raised
while launching the command; a command that does not exist is the shell exiting 127, the job's
fault). One exception: Ray also reports a runtime_env it refuses as invalid (a ``working_dir``
that is not there) as ``JOB_SUPERVISOR_ACTOR_START_FAILURE``, with the runtime_env named in the
message; that is the job's fault. A ``FAILED`` job without an error type Ray knows of is the
job's fault when its driver exited non-zero, else the system's.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Self, TypeAlias
from urllib.parse import quote

import httpx

from jobs.lifecycle import RunState, RunStatus
from quotas.errors import InvalidRuntimeEnv
from quotas.runtime_env import checked_runtime_env
from scheduler.backends.base import (
    FlavorCapacity,
    LaunchSpec,
    PermanentBackendError,
    TransientBackendError,
)

JOB_STATES: Mapping[str, RunState] = {
    "PENDING": RunState.PENDING,
    "RUNNING": RunState.RUNNING,
    "SUCCEEDED": RunState.SUCCEEDED,
    "FAILED": RunState.FAILED,
    "STOPPED": RunState.STOPPED,
}

JOB_FAULT_ERROR_TYPES = frozenset({"JOB_ENTRYPOINT_COMMAND_ERROR", "RUNTIME_ENV_SETUP_FAILURE"})
SYSTEM_FAULT_ERROR_TYPES = frozenset(
    {
        "JOB_SUPERVISOR_ACTOR_START_TIMEOUT",
        "JOB_SUPERVISOR_ACTOR_START_FAILURE",
        "JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE",
        "JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE",
        "JOB_SUPERVISOR_ACTOR_DIED",
        "JOB_ENTRYPOINT_COMMAND_START_ERROR",
    }
)

# Ray's resources that are never a flavor of their own.
BUILTIN_RESOURCES = frozenset({"CPU", "GPU", "TPU", "memory", "object_store_memory"})
BUILTIN_RESOURCE_PREFIXES = ("node:", "accelerator_type:", "bundle_group_")
# A placement group's resources are named ``<resource>_group_<pg id>`` and
# ``<resource>_group_<bundle index>_<pg id>``; they are counted through the group itself.
PLACEMENT_GROUP_RESOURCE = re.compile(r"_group_(\d+_)?[0-9a-f]+$")
NUMBER = r"[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?"
# One line of a node's usage, as Ray's ``parse_usage`` writes it. Ray subtracts what placement
# groups reserved but do not use from "used"; that reservation is not free for others.
USAGE_LINE = re.compile(
    rf"^\s*(?P<used>{NUMBER})/(?P<total>{NUMBER}) (?P<name>\S+)"
    rf"(?: \((?P<group_used>{NUMBER}) used of (?P<group_total>{NUMBER})"
    r" reserved in placement groups\))?"
)
# The actor that runs a submitted job's entrypoint and holds its entrypoint resources.
SUPERVISOR_ACTOR_PREFIX = "_ray_internal_job_actor_"
SUPERVISOR_ACTOR_CLASS = "JobSupervisor"

# Task states in which a normal task holds its resources (a task blocked in ``ray.get`` gives
# back its CPUs, never its GPUs).
TASK_HOLDING_STATES = frozenset(
    {"SUBMITTED_TO_WORKER", "RUNNING", "RUNNING_IN_RAY_GET", "RUNNING_IN_RAY_WAIT"}
)
STATE_API_LIMIT = 10_000
EPSILON = 1e-9

Json: TypeAlias = dict[str, object]


class RayBackend:
    """Runs gpupool jobs on one Ray cluster, addressed by its dashboard URL.

    ``flavor_resources`` maps each flavor to the Ray custom resource that marks its GPUs; without
    it every custom resource on a node with GPUs is a flavor of the same name. ``auth_token`` is
    the cluster's token when Ray's token authentication is on (sent as a bearer token). ``client``
    (or just ``transport``) may be injected for tests; an injected client is not closed here.
    """

    def __init__(
        self,
        address: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth_token: str | None = None,
        timeout: float = 10.0,
        flavor_resources: Mapping[str, str] | None = None,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.address = address.rstrip("/")
        self.flavor_resources = dict(flavor_resources) if flavor_resources is not None else None
        self._owns_client = client is None
        sent = dict(headers or {})
        if auth_token:
            sent["Authorization"] = f"Bearer {auth_token}"
        self._client = client or httpx.AsyncClient(
            headers=sent,
            timeout=timeout,
            transport=transport,
        )

    # -- lifecycle ----------------------------------------------------------------------------

    async def close(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _resource(self, flavor: str) -> str:
        """The Ray custom resource that marks the flavor's GPUs (its own name unless mapped)."""
        return (self.flavor_resources or {}).get(flavor, flavor)

    # -- HTTP ---------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return f"{self.address}{path}"

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        params: list[tuple[str, str]] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        """One HTTP call; transport failures become ``TransientBackendError``."""
        try:
            return await self._client.request(
                method, self._url(path), json=json, params=tuple(params or ()), content=content
            )
        except httpx.TransportError as error:
            raise TransientBackendError(
                f"Ray at {self.address} unreachable: {type(error).__name__}: {error}"
            ) from error

    def _raise_for_status(self, response: httpx.Response, what: str) -> None:
        """Classify a non-2xx answer; 2xx passes."""
        if response.is_success:
            return
        detail = _excerpt(response.text)
        message = f"{what}: Ray answered HTTP {response.status_code}: {detail}"
        if response.status_code >= 500 or response.status_code in (408, 429):
            raise TransientBackendError(message)
        raise PermanentBackendError(message)

    async def _get_json(
        self, path: str, what: str, params: list[tuple[str, str]] | None = None
    ) -> object:
        response = await self._request("GET", path, params=params)
        self._raise_for_status(response, what)
        return _decode(response, what)

    async def _job_details(self, job_id: str) -> Json | None:
        """Ray's ``JobDetails`` for a submission id, or ``None`` if Ray has no such job."""
        response = await self._request("GET", f"/api/jobs/{quote(job_id, safe='')}")
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        self._raise_for_status(response, f"reading job {job_id}")
        return _as_dict(_decode(response, f"reading job {job_id}"))

    # -- Backend ------------------------------------------------------------------------------

    async def submit(self, spec: LaunchSpec) -> None:
        """Submit the job under its gpupool id; a job already there with that id is left be."""
        if spec.gpus < 0:
            raise PermanentBackendError(f"job {spec.job_id}: a negative GPU count")
        validate_runtime_env(spec.job_id, spec.runtime_env)
        body: Json = {
            "submission_id": spec.job_id,
            "entrypoint": spec.entrypoint,
            "entrypoint_num_gpus": spec.gpus,
            "entrypoint_resources": {self._resource(spec.flavor): spec.gpus} if spec.gpus else {},
            "runtime_env": dict(spec.runtime_env),
            "metadata": {
                **spec.metadata,
                "gpupool_job": spec.job_id,
                "gpupool_project": spec.project,
            },
        }
        response = await self._request("POST", "/api/jobs/", json=body)
        if response.is_success:
            return
        if response.status_code >= 500:
            # A reused submission id answers 500; so does a request the job agent refused as
            # invalid (its 400 wrapped in the head's 500), or a head that is restarting.
            if await self._job_details(spec.job_id) is not None:
                return
            if "status code 400" in response.text:
                raise PermanentBackendError(
                    f"submitting job {spec.job_id}: Ray refused it: {_excerpt(response.text)}"
                )
        self._raise_for_status(response, f"submitting job {spec.job_id}")

    async def status(self, job_id: str) -> RunStatus:
        details = await self._job_details(job_id)
        if details is None:
            return RunStatus(state=RunState.NOT_FOUND, message=f"Ray has no job {job_id}")
        return run_status(details)

    async def cancel(self, job_id: str) -> None:
        response = await self._request("POST", f"/api/jobs/{quote(job_id, safe='')}/stop")
        if response.status_code == httpx.codes.NOT_FOUND:
            return
        self._raise_for_status(response, f"stopping job {job_id}")

    async def logs(self, job_id: str) -> str:
        """The driver's output so far; empty for a job Ray does not know."""
        response = await self._request("GET", f"/api/jobs/{quote(job_id, safe='')}/logs")
        if response.status_code == httpx.codes.NOT_FOUND:
            return ""
        self._raise_for_status(response, f"reading logs of job {job_id}")
        logs = _as_dict(_decode(response, f"reading logs of job {job_id}")).get("logs")
        return logs if isinstance(logs, str) else ""

    # -- PackageStore -------------------------------------------------------------------------

    async def has_package(self, uri: str) -> bool:
        """Whether Ray holds the package (asking also pins it in Ray for a while, as the
        Ray client's own check does, so it is not collected before the job that needs it)."""
        response = await self._request("GET", _package_path(uri))
        if response.status_code == httpx.codes.NOT_FOUND:
            return False
        self._raise_for_status(response, f"looking for package {uri}")
        return True

    async def upload_package(self, uri: str, content: bytes) -> None:
        response = await self._request("PUT", _package_path(uri), content=content)
        self._raise_for_status(response, f"uploading package {uri}")

    async def capacity(self) -> Mapping[str, FlavorCapacity]:
        """Free GPUs per flavor, node by node: ``min(free flavor resource, free GPU)``."""
        alive, summary = await asyncio.gather(
            self._alive_nodes(),
            self._get_json("/nodes", "reading node resources", [("view", "summary")]),
        )
        data = _as_dict(_as_dict(summary).get("data"))
        usage_by_node = _as_dict(data.get("nodeLogicalResources"))
        flavors = self._flavor_map(alive.values())
        per_flavor: dict[str, list[tuple[str, int, int]]] = {flavor: [] for flavor in flavors}
        for node_id in sorted(alive):
            totals = alive[node_id]
            available = available_resources(usage_by_node.get(node_id))
            for flavor, resource in flavors.items():
                total = min(totals.get(resource, 0.0), totals.get("GPU", 0.0))
                if total <= 0:
                    continue
                free = min(available.get(resource, 0.0), available.get("GPU", 0.0))
                per_flavor[flavor].append((node_id, int(total + EPSILON), _whole(free)))
        return {
            flavor: FlavorCapacity(
                flavor=flavor,
                gpus_per_node=max((total for _, total, _ in nodes), default=0),
                free=tuple(free for _, _, free in nodes),
            )
            for flavor, nodes in per_flavor.items()
            if nodes
        }

    # -- JobListing ---------------------------------------------------------------------------

    async def active_jobs(self) -> list[str]:
        """Submission ids of the jobs Ray has not ended, whoever submitted them."""
        listed = await self._listed()
        return [
            submission_id
            for submission_id, details in listed.items()
            if (state := JOB_STATES.get(str(details.get("status")))) is not None
            and not state.is_terminal
        ]

    # -- StatusListing ------------------------------------------------------------------------

    async def statuses(self) -> Mapping[str, RunStatus]:
        """Every job Ray knows (one ``GET /api/jobs/``), by submission id."""
        return {job_id: run_status(details) for job_id, details in (await self._listed()).items()}

    async def _listed(self) -> dict[str, Json]:
        listed = await self._get_json("/api/jobs/", "listing jobs")
        found: dict[str, Json] = {}
        for details in listed if isinstance(listed, list) else []:
            if isinstance(details, dict) and isinstance(details.get("submission_id"), str):
                found[str(details["submission_id"])] = details
        return found

    # -- GpuAccounting ------------------------------------------------------------------------

    async def gpus_in_use(self) -> Mapping[str, float]:
        """GPUs each running job holds: its entrypoint's, plus its tasks', actors' and groups'.

        The entrypoint's GPUs are those of the job's supervisor actor (named
        ``_ray_internal_job_actor_<submission id>``), which holds the entrypoint resources while
        the job runs. Tasks outside placement groups count while they hold a worker; placement
        groups count whole, used or not, for the job that created them. Tasks and actors carry
        Ray's internal job id (the id of the driver that called ``ray.init()``); ``GET
        /api/jobs/`` maps it to the submission id. Ray lists only the latest driver of each
        submission, so GPUs held by an earlier, still running driver of the same job are not
        attributed. Running jobs appear even when they hold no GPU.
        """
        jobs, actors, tasks, groups = await asyncio.gather(
            self._get_json("/api/jobs/", "listing jobs"),
            self._list_state("actors", [("state", "=", "ALIVE")]),
            self._list_state(
                "tasks",
                [
                    ("type", "=", "NORMAL_TASK"),
                    ("state", "!=", "FINISHED"),
                    ("state", "!=", "FAILED"),
                ],
            ),
            self._list_state("placement_groups", [("state", "=", "CREATED")]),
        )
        usage: dict[str, float] = {}
        submission_of: dict[str, str] = {}
        for job in _as_list(jobs):
            details = _as_dict(job)
            submission_id = details.get("submission_id")
            if details.get("type") != "SUBMISSION" or not isinstance(submission_id, str):
                continue
            driver_job = details.get("job_id")
            if isinstance(driver_job, str):
                submission_of[driver_job] = submission_id
            if details.get("status") == "RUNNING":
                usage.setdefault(submission_id, 0.0)

        def charge(ray_job: object, gpus: float) -> None:
            submission_id = submission_of.get(str(ray_job))
            if submission_id is not None and gpus > 0:
                usage[submission_id] = usage.get(submission_id, 0.0) + gpus

        for actor in actors:
            name = actor.get("name")
            if actor.get("class_name") == SUPERVISOR_ACTOR_CLASS and isinstance(name, str):
                # The entrypoint's own reservation; Ray's job list does not show it.
                if name.startswith(SUPERVISOR_ACTOR_PREFIX):
                    submission_id = name.removeprefix(SUPERVISOR_ACTOR_PREFIX)
                    gpus = _gpus(actor.get("required_resources"))
                    usage[submission_id] = usage.get(submission_id, 0.0) + gpus
            elif not actor.get("placement_group_id"):
                charge(actor.get("job_id"), _gpus(actor.get("required_resources")))
        for task in tasks:
            if task.get("state") in TASK_HOLDING_STATES and not task.get("placement_group_id"):
                charge(task.get("job_id"), _gpus(task.get("required_resources")))
        for group in groups:
            bundles = _as_list(group.get("bundles"))
            gpus = sum(_gpus(_as_dict(bundle).get("unit_resources")) for bundle in bundles)
            charge(group.get("creator_job_id"), gpus)
        return usage

    # -- state API ----------------------------------------------------------------------------

    async def _list_state(self, kind: str, filters: list[tuple[str, str, str]]) -> list[Json]:
        params = [("detail", "true"), ("limit", str(STATE_API_LIMIT))]
        for key, predicate, value in filters:
            params += [
                ("filter_keys", key),
                ("filter_predicates", predicate),
                ("filter_values", value),
            ]
        body = _as_dict(await self._get_json(f"/api/v0/{kind}", f"listing {kind}", params))
        result = _as_dict(_as_dict(body.get("data")).get("result"))
        return [_as_dict(item) for item in _as_list(result.get("result"))]

    async def _alive_nodes(self) -> dict[str, dict[str, float]]:
        """Alive nodes' total resources, keyed by node id."""
        nodes = await self._list_state("nodes", [("state", "=", "ALIVE")])
        alive: dict[str, dict[str, float]] = {}
        for node in nodes:
            node_id = node.get("node_id")
            if isinstance(node_id, str) and node.get("state") == "ALIVE":
                totals = _as_dict(node.get("resources_total"))
                alive[node_id] = {name: _number(value) for name, value in totals.items()}
        return alive

    def _flavor_map(self, nodes: Iterable[Mapping[str, float]]) -> dict[str, str]:
        """Flavor -> Ray resource: as configured, else every custom resource beside GPUs."""
        if self.flavor_resources is not None:
            return dict(self.flavor_resources)
        found: set[str] = set()
        for resources in nodes:
            if resources.get("GPU", 0.0) > 0:
                found.update(name for name in resources if _is_flavor_resource(name))
        return {name: name for name in sorted(found)}


# -- mapping Ray's answers --------------------------------------------------------------------


def run_status(details: Mapping[str, object]) -> RunStatus:
    """A ``RunStatus`` from Ray's ``JobDetails``.

    Ray's ``start_time`` is when Ray accepted the job (before its runtime_env is built), so it is
    reported only once the job has left ``PENDING``.
    """
    raw_state = details.get("status")
    state = JOB_STATES.get(str(raw_state))
    if state is None:
        raise TransientBackendError(f"Ray reported an unknown job status {raw_state!r}")
    exit_code = details.get("driver_exit_code")
    code = exit_code if isinstance(exit_code, int) and not isinstance(exit_code, bool) else None
    message = details.get("message")
    return RunStatus(
        state=state,
        message=message if isinstance(message, str) else "",
        started_at=None if state is RunState.PENDING else _from_ms(details.get("start_time")),
        ended_at=_from_ms(details.get("end_time")) if state.is_terminal else None,
        exit_code=code,
        system_fault=state is RunState.FAILED
        and is_system_fault(details.get("error_type"), code, message),
    )


def validate_runtime_env(job_id: str, runtime_env: Mapping[str, object]) -> None:
    """Refuse a runtime_env a tenant may not set, before it reaches the cluster.

    The portal checks every runtime_env at submit with the same rules
    (``quotas.runtime_env``); checking again here keeps one stored before those rules, or
    written past the portal, from reaching Ray, whose own parsing reads the files a runtime_env
    names and quotes them in the job's failure. The check reads nothing and never quotes the
    value, so the job's reason cannot carry anything from the host. A refusal is permanent:
    the job's own fault.
    """
    try:
        checked_runtime_env(runtime_env)
    except InvalidRuntimeEnv as error:
        raise PermanentBackendError(f"job {job_id}: {error}") from error


def is_system_fault(error_type: object, exit_code: int | None, message: object = "") -> bool:
    """Whether Ray, not the job, made a ``FAILED`` job fail (see the module docstring)."""
    if error_type in JOB_FAULT_ERROR_TYPES:
        return False
    if error_type == "JOB_SUPERVISOR_ACTOR_START_FAILURE" and "runtime_env" in str(message):
        return False  # Ray refused the job's runtime_env while creating its supervisor
    if error_type in SYSTEM_FAULT_ERROR_TYPES:
        return True
    return exit_code is None or exit_code == 0


def available_resources(usage: object) -> dict[str, float]:
    """``{resource: total - used}`` from a node's ``"<used>/<total> <resource>"`` lines."""
    if not isinstance(usage, str):
        return {}
    available: dict[str, float] = {}
    for line in usage.splitlines():
        match = USAGE_LINE.match(line)
        if match is None:
            continue
        used, total = float(match["used"]), float(match["total"])
        if match["group_total"] is not None:
            used += float(match["group_total"]) - float(match["group_used"])
        available[match["name"]] = max(total - used, 0.0)
    return available


def _package_path(uri: str) -> str:
    """``gcs://_ray_pkg_<hash>.zip`` -> ``/api/packages/gcs/_ray_pkg_<hash>.zip``."""
    protocol, separator, name = uri.partition("://")
    if not separator or not protocol or not name:
        raise PermanentBackendError(f"{uri!r} is not a package URI such as gcs://<name>.zip")
    return f"/api/packages/{quote(protocol, safe='')}/{quote(name, safe='')}"


def _is_flavor_resource(name: str) -> bool:
    return (
        name not in BUILTIN_RESOURCES
        and not name.startswith(BUILTIN_RESOURCE_PREFIXES)
        and PLACEMENT_GROUP_RESOURCE.search(name) is None
    )


def _gpus(resources: object) -> float:
    return _number(_as_dict(resources).get("GPU"))


def _whole(gpus: float) -> int:
    """Whole free GPUs (a fraction held by someone makes that GPU not free)."""
    return max(int(gpus + EPSILON), 0)


def _from_ms(value: object) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value / 1000, tz=UTC)


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return float(value)


def _as_dict(value: object) -> Json:
    if isinstance(value, dict):
        return {str(key): item for key, item in value.items()}
    return {}


def _as_list(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _decode(response: httpx.Response, what: str) -> object:
    try:
        decoded: object = response.json()
    except ValueError as error:
        raise TransientBackendError(f"{what}: Ray answered something that is not JSON") from error
    return decoded


def _excerpt(text: str, limit: int = 500) -> str:
    """The end of an error body: Ray puts a traceback there, whose last lines say most."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]
