"""The embedded Ray cluster: a local Ray head that ``gpupool serve`` starts when no cluster is set.

It declares a *logical* GPU inventory (flavor resource name -> GPUs), so the whole system runs on a
laptop or a CPU-only CI box: Ray hands out ``CUDA_VISIBLE_DEVICES`` and the flavor's custom
resource exactly as it would on real GPUs. The head is started with ``ray start --head`` from this
interpreter's virtualenv (so ``python`` in an entrypoint is the project's interpreter), with
authentication explicitly disabled (``RAY_AUTH_MODE=disabled``: a stray ``~/.ray/auth_token``
must not silently turn token auth on) and with every port chosen here, never Ray's defaults
(6379 is Redis on these machines, 10002 upwards is Ray's default worker range). Workers bind
OS-assigned ports (``--min-worker-port=0 --max-worker-port=0``), so two clusters never fight over
a worker range.

``ray stop`` stops *every* Ray process on the machine, and has no option to pick one cluster, so
``stop()`` does not use it. ``ray start`` is run in a new session; every process of the cluster
(GCS, raylet, dashboard, agents, log monitor, workers) inherits that session id, and job drivers,
which Ray starts in sessions of their own, are children of those processes. ``stop()`` signals
exactly that process tree, in the order ``ray stop`` uses (raylet first, GCS last): SIGTERM, a
grace period, then SIGKILL. This reads ``/proc`` and therefore works on Linux only, as Ray's own
process handling largely does.

Isolation (issue "multi-tenant safety"):

* Jobs never run as the service's user. When gpupool runs as root, the cluster (and so every job)
  runs as the unprivileged system user ``gpupool-jobs``, created on first use, with a Ray temp dir
  of its own outside the data dir; the data dir (database, admin token, session key) is 0700 and
  owned by the service, so a job cannot read it. When gpupool does not run as root it cannot
  change users, and ``gpupool serve`` says so.
* The cluster gets an allow-listed environment: none of the service's variables (database URL,
  secrets, identity-provider settings) reach a job.
* Ray's token authentication is on (``RAY_AUTH_MODE=token``) with a fresh random token per
  cluster, so nothing that lacks the token (another user on the machine, a job's own HTTP calls
  without it, anything on the network) can use the dashboard, the Jobs API, the GCS or the
  raylet. The node's address is loopback and the dashboard listens on loopback; Ray 2.60 still
  binds its GCS, raylet, object manager and dashboard agent gRPC servers and its metrics exporter
  on every interface, whatever ``ray start`` is told: all but the metrics exporter check the
  token. A job itself holds the token (Ray's workers need it), so a job on a ``shared`` cluster
  can reach Ray's control plane: the scheduler stops any Ray job the books do not know
  (``scheduler.cycle``), and ``shared`` is for mutually trusting tenants only.
* The cluster's state (address, token, process session, temp dir, inventory) is kept in
  ``<data dir>/cluster.json`` (0600). A server killed with SIGKILL leaves the cluster running;
  the next ``start()`` on the same data dir adopts it, so its jobs run on and are not run twice.
  A recorded cluster that does not answer, or declares another inventory, is stopped for certain
  (every process of its session) before a new one starts; the scheduler then settles its jobs
  as lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from quotas.flavors import Flavor
from quotas.inventory import BackendKind, ClusterSpec
from quotas.settings import write_private

# Ray puts unix sockets under ``<temp dir>/session_<date>_<time>_<micros>_<pid>/sockets/...``;
# a socket path may not exceed 107 bytes, which leaves about 40 for the temp dir itself.
MAX_TEMP_DIR_LENGTH = 40
# Ports that must never be handed to Ray here: Ray's own defaults and the services these
# machines run (Redis, PostgreSQL, MariaDB, RabbitMQ, NATS, Mosquitto).
RESERVED_PORTS = frozenset(
    {6379, 8265, 10001, 10002, 52365, 44217, 44227, 5432, 3306, 5672, 4222, 1883}
)
JOB_USER = "gpupool-jobs"
"""The unprivileged user the embedded cluster, and so every job, runs as when gpupool is root."""
STATE_FILE = "cluster.json"
# The only variables of the service's environment a cluster (and so a job) inherits.
INHERITED_ENV = frozenset({"LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR"})
INHERITED_ENV_PREFIXES = ("LC_",)


class EmbeddedClusterError(RuntimeError):
    """The embedded Ray cluster could not be started."""


@dataclass(frozen=True, slots=True)
class ClusterPorts:
    """The ports one embedded cluster listens on; all chosen free, none of them Ray's defaults."""

    gcs: int
    dashboard: int
    ray_client_server: int
    node_manager: int
    object_manager: int
    dashboard_agent_listen: int
    dashboard_agent_grpc: int
    metrics_export: int
    runtime_env_agent: int
    autoscaler_metrics: int
    """Set through ``AUTOSCALER_METRIC_PORT`` (Ray's default: a fixed 44217)."""
    dashboard_metrics: int
    """Set through ``DASHBOARD_METRIC_PORT`` (Ray's default: a fixed 44227)."""

    def all(self) -> tuple[int, ...]:
        return tuple(int(getattr(self, each.name)) for each in fields(self))


def free_port(taken: frozenset[int] = frozenset()) -> int:
    """A port the OS says is free now on every interface, neither reserved nor in ``taken``."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("0.0.0.0", 0))  # noqa: S104 - only probing; Ray's servers bind all
            port = int(probe.getsockname()[1])
        if port not in RESERVED_PORTS and port not in taken:
            return port


def choose_ports() -> ClusterPorts:
    """Distinct free ports for one cluster."""
    chosen: list[int] = []
    for _ in fields(ClusterPorts):
        chosen.append(free_port(frozenset(chosen)))
    return ClusterPorts(*chosen)


def _proc_table() -> dict[int, tuple[int, int, str]]:
    """Every live process as ``pid -> (parent pid, session id, command name)``, from ``/proc``."""
    table: dict[int, tuple[int, int, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        # ``pid (comm) state ppid pgrp session ...``; comm may hold spaces and parentheses.
        name = raw[raw.index("(") + 1 : raw.rindex(")")]
        stat = raw[raw.rindex(")") + 2 :].split()
        if stat[0] == "Z":
            continue
        table[int(entry)] = (int(stat[1]), int(stat[3]), name)
    return table


def session_process_tree(session_id: int) -> dict[int, str]:
    """The processes of a session and all their descendants, as ``pid -> command name``."""
    table = _proc_table()
    members = {pid for pid, (_, sid, _) in table.items() if sid == session_id}
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    pending = list(members)
    while pending:
        for child in children.get(pending.pop(), []):
            if child not in members:
                members.add(child)
                pending.append(child)
    members.discard(os.getpid())
    return {pid: table[pid][2] for pid in members}


@dataclass(frozen=True, slots=True)
class RayEndpoint:
    """How to reach a Ray cluster's dashboard: its HTTP address and its auth token, if any."""

    address: str
    auth_token: str | None = None


@dataclass(frozen=True, slots=True)
class JobUser:
    """The account a cluster's processes run as."""

    name: str
    uid: int
    gid: int


def job_user(name: str = JOB_USER) -> JobUser | None:
    """The unprivileged user jobs run as, created if missing; ``None`` unless this is root.

    Only root can start processes as another user. The user is a system user with no home, no
    login shell and a group of its own, so it can read nothing of the service's.
    """
    if os.geteuid() != 0:
        return None
    try:
        found = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        created = subprocess.run(  # noqa: S603 - a fixed command line, no shell
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=False,  # another process may create it at the same moment: look again
            capture_output=True,
        )
        try:
            found = pwd.getpwnam(name)
        except KeyError:
            raise EmbeddedClusterError(
                f"could not create the user {name} to run jobs as: "
                f"{created.stderr.decode(errors='replace').strip()}"
            ) from None
    if found.pw_uid == 0:
        raise EmbeddedClusterError(f"user {name} is root: jobs must not run as root")
    return JobUser(name, found.pw_uid, found.pw_gid)


@dataclass(frozen=True, slots=True)
class ClusterState:
    """What a running cluster leaves in its data dir, so a restarted server can adopt it."""

    host: str
    ports: ClusterPorts
    temp_dir: str
    session_id: int
    auth_token: str
    inventory: dict[str, int]
    user: str | None

    @property
    def endpoint(self) -> RayEndpoint:
        return RayEndpoint(f"http://{self.host}:{self.ports.dashboard}", self.auth_token)

    def save(self, path: Path) -> None:
        write_private(path, json.dumps(asdict(self)))

    @classmethod
    def load(cls, path: Path) -> ClusterState | None:
        """The recorded state, or ``None`` when there is none or it cannot be read."""
        try:
            raw = json.loads(path.read_text())
            return cls(
                host=str(raw["host"]),
                ports=ClusterPorts(**{k: int(v) for k, v in raw["ports"].items()}),
                temp_dir=str(raw["temp_dir"]),
                session_id=int(raw["session_id"]),
                auth_token=str(raw["auth_token"]),
                inventory={str(k): int(v) for k, v in raw["inventory"].items()},
                user=None if raw["user"] is None else str(raw["user"]),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None


class EmbeddedRayCluster:
    """A local single-node Ray head with a declared logical GPU inventory.

    ``inventory`` maps each flavor's Ray resource name to its GPU count; the node gets that many
    units of each custom resource and their sum as ``--num-gpus``. ``run_as`` is the user the
    cluster runs as (default: ``gpupool-jobs`` when this process is root, else this process's
    user). Use as a context manager, or call ``start()`` and ``stop()``.
    """

    def __init__(
        self,
        inventory: Mapping[str, int],
        data_dir: Path,
        *,
        num_cpus: int = 4,
        object_store_memory: int = 200 * 1024 * 1024,
        host: str = "127.0.0.1",
        start_timeout: float = 90.0,
        stop_grace_period: float = 5.0,
        env: Mapping[str, str] | None = None,
        run_as: str | None = JOB_USER,
    ) -> None:
        if any(count < 0 for count in inventory.values()):
            raise ValueError("a flavor's GPU count cannot be negative")
        self.inventory = dict(inventory)
        self.data_dir = data_dir
        self.num_cpus = num_cpus
        self.object_store_memory = object_store_memory
        self.host = host
        self.start_timeout = start_timeout
        self.stop_grace_period = stop_grace_period
        self._base_env = _inherited(os.environ if env is None else env)
        self._run_as = run_as
        self._user: JobUser | None = None
        self._ports: ClusterPorts | None = None
        self._temp_dir: Path | None = None
        self._session_id: int | None = None
        self._auth_token: str | None = None
        self.adopted = False
        """Whether ``start()`` found this data dir's cluster still running and took it over."""

    # -- what callers read --------------------------------------------------------------------

    @property
    def ports(self) -> ClusterPorts:
        if self._ports is None:
            raise EmbeddedClusterError("the cluster has not been started")
        return self._ports

    @property
    def address(self) -> str:
        """The dashboard's HTTP address: the Ray Jobs API and state API live here."""
        return f"http://{self.host}:{self.ports.dashboard}"

    @property
    def auth_token(self) -> str:
        """The token Ray's token authentication asks of every caller."""
        if self._auth_token is None:
            raise EmbeddedClusterError("the cluster has not been started")
        return self._auth_token

    @property
    def endpoint(self) -> RayEndpoint:
        return RayEndpoint(self.address, self.auth_token)

    @property
    def temp_dir(self) -> Path:
        if self._temp_dir is None:
            raise EmbeddedClusterError("the cluster has not been started")
        return self._temp_dir

    @property
    def user(self) -> str:
        """The user the cluster's processes, and so its jobs, run as."""
        if self._user is not None:
            return self._user.name
        return pwd.getpwuid(os.geteuid()).pw_name

    @property
    def running(self) -> bool:
        return self._session_id is not None

    @property
    def num_gpus(self) -> int:
        return sum(self.inventory.values())

    @property
    def state_file(self) -> Path:
        return self.data_dir / STATE_FILE

    def pids(self) -> dict[int, str]:
        """The cluster's live processes (``pid -> command name``); empty when stopped."""
        if self._session_id is None:
            return {}
        return session_process_tree(self._session_id)

    # -- start --------------------------------------------------------------------------------

    def _bin_dir(self) -> Path:
        return Path(sys.executable).parent

    def _environment(self, ports: ClusterPorts, temp_dir: Path, token: str) -> dict[str, str]:
        env = dict(self._base_env)
        env["AUTOSCALER_METRIC_PORT"] = str(ports.autoscaler_metrics)
        env["DASHBOARD_METRIC_PORT"] = str(ports.dashboard_metrics)
        env["PATH"] = os.pathsep.join([str(self._bin_dir()), os.defpath])
        env["HOME"] = str(temp_dir)
        env["RAY_AUTH_MODE"] = "token"
        env["RAY_AUTH_TOKEN"] = token
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        # The legacy autoscaler refreshes each node's used/available resources, which the
        # dashboard serves, every 5 s by default; once a second keeps capacity reads fresh.
        env["AUTOSCALER_UPDATE_INTERVAL_S"] = "1"
        return env

    def _make_temp_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if self._user is not None:
            # The data dir is the service's alone: the cluster's user gets a directory elsewhere.
            own = Path(tempfile.mkdtemp(prefix="gpr-", dir="/tmp")).resolve()
            os.chown(own, self._user.uid, self._user.gid)
            return own
        candidate = Path(tempfile.mkdtemp(prefix="ray-", dir=self.data_dir)).resolve()
        if len(str(candidate)) <= MAX_TEMP_DIR_LENGTH:
            return candidate
        # Too long for Ray's unix sockets: use a short directory and point to it from data_dir.
        candidate.rmdir()
        short = Path(tempfile.mkdtemp(prefix="gpr-", dir="/tmp")).resolve()
        link = self.data_dir / f"ray-{short.name}"
        link.symlink_to(short, target_is_directory=True)
        return short

    def _command(self, ports: ClusterPorts, temp_dir: Path) -> list[str]:
        ray = shutil.which("ray", path=str(self._bin_dir())) or str(self._bin_dir() / "ray")
        return [
            ray,
            "start",
            "--head",
            f"--node-ip-address={self.host}",
            f"--port={ports.gcs}",
            "--include-dashboard=true",
            f"--dashboard-host={self.host}",
            f"--dashboard-port={ports.dashboard}",
            f"--ray-client-server-port={ports.ray_client_server}",
            f"--node-manager-port={ports.node_manager}",
            f"--object-manager-port={ports.object_manager}",
            f"--dashboard-agent-listen-port={ports.dashboard_agent_listen}",
            f"--dashboard-agent-grpc-port={ports.dashboard_agent_grpc}",
            f"--metrics-export-port={ports.metrics_export}",
            f"--runtime-env-agent-port={ports.runtime_env_agent}",
            "--min-worker-port=0",
            "--max-worker-port=0",
            f"--num-cpus={self.num_cpus}",
            f"--num-gpus={self.num_gpus}",
            f"--resources={json.dumps(self.inventory)}",
            f"--object-store-memory={self.object_store_memory}",
            f"--temp-dir={temp_dir}",
            "--disable-usage-stats",
            "--log-style=record",
            "--log-color=false",
        ]

    def start(self) -> None:
        """Adopt this data dir's running cluster, or start a new head and wait for its dashboard.

        A recorded cluster that cannot be adopted is stopped first, every process of it.
        """
        if self._session_id is not None:
            return
        self._user = job_user(self._run_as) if self._run_as else None
        if not self._adopt_or_clear():
            self._start_new()

    def _adopt_or_clear(self) -> bool:
        """Adopt the cluster recorded in the data dir; else stop whatever is left of it."""
        recorded = ClusterState.load(self.state_file)
        if recorded is not None and self._adopt(recorded):
            return True
        if recorded is not None:
            _stop_session(recorded.session_id, self.stop_grace_period)
            shutil.rmtree(recorded.temp_dir, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        return False

    def _adopt(self, recorded: ClusterState) -> bool:
        """Take over ``recorded`` if it is this cluster, still whole and answering its token."""
        names = set(session_process_tree(recorded.session_id).values())
        if (
            recorded.inventory != self.inventory
            or recorded.host != self.host
            or recorded.user != (self._user.name if self._user else None)
            or not {"gcs_server", "raylet"} <= names
        ):
            return False
        if not _answers(recorded.endpoint, time.monotonic() + 10.0):
            return False
        self._ports = recorded.ports
        self._temp_dir = Path(recorded.temp_dir)
        self._session_id = recorded.session_id
        self._auth_token = recorded.auth_token
        self.adopted = True
        return True

    def _start_new(self) -> None:
        self._ports = choose_ports()
        self._temp_dir = self._make_temp_dir()
        self._auth_token = secrets.token_hex(32)
        self.adopted = False
        deadline = time.monotonic() + self.start_timeout
        user = self._user
        try:
            starter = subprocess.Popen(  # noqa: S603 - a fixed command line, no shell
                self._command(self._ports, self._temp_dir),
                env=self._environment(self._ports, self._temp_dir, self._auth_token),
                cwd=self._temp_dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                text=True,
                user=user.uid if user else None,
                group=user.gid if user else None,
                extra_groups=[] if user else None,
                umask=0o077,
            )
        except OSError as error:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._ports = self._temp_dir = self._auth_token = None
            raise EmbeddedClusterError(
                f"`ray start` could not be run: {error}{self._hint('Permission denied')}"
            ) from error
        self._session_id = starter.pid
        ClusterState(
            host=self.host,
            ports=self._ports,
            temp_dir=str(self._temp_dir),
            session_id=starter.pid,
            auth_token=self._auth_token,
            inventory=self.inventory,
            user=user.name if user else None,
        ).save(self.state_file)
        try:
            output, _ = starter.communicate(timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise EmbeddedClusterError("`ray start` did not finish in time") from None
        if starter.returncode != 0:
            self.stop()
            raise EmbeddedClusterError(
                f"`ray start` failed with exit code {starter.returncode}"
                f"{self._hint(output)}:\n{output[-4000:]}"
            )
        if not _answers(self.endpoint, deadline):
            self.stop()
            raise EmbeddedClusterError(f"the Ray dashboard never answered at {self.address}")

    def _hint(self, output: str) -> str:
        if self._user is not None and ("Permission denied" in output or "not found" in output):
            return (
                f" (it runs as the unprivileged user {self._user.name}, who must be able to "
                f"read and run {sys.executable} and the project's files)"
            )
        return ""

    # -- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop this cluster's processes, and only them, and forget its state; a no-op if it is
        not running.
        """
        if self._session_id is None:
            return
        _stop_session(self._session_id, self.stop_grace_period)
        self._session_id = None
        self.state_file.unlink(missing_ok=True)
        if self._user is not None and self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)

    # -- context manager ----------------------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def _inherited(env: Mapping[str, str]) -> dict[str, str]:
    """The part of an environment a cluster may see: locale and time zone, nothing else."""
    return {
        name: value
        for name, value in env.items()
        if name in INHERITED_ENV or name.startswith(INHERITED_ENV_PREFIXES)
    }


def _answers(endpoint: RayEndpoint, deadline: float) -> bool:
    """Whether the dashboard answers ``GET /api/version`` with its token before ``deadline``."""
    headers = {"Authorization": f"Bearer {endpoint.auth_token}"} if endpoint.auth_token else {}
    with httpx.Client(timeout=2.0, headers=headers) as client:
        while True:
            try:
                if client.get(f"{endpoint.address}/api/version").status_code == httpx.codes.OK:
                    return True
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)


def _stop_session(session_id: int, grace_period: float) -> None:
    """Stop every process of a cluster's session, in the order ``ray stop`` uses: SIGTERM to the
    raylet first (its workers follow it), then to the other processes, then to the GCS, within
    one grace period; SIGKILL to what is left.
    """
    deadline = time.monotonic() + grace_period
    for wave in (_is_raylet, _is_not_gcs, _is_anything):
        chosen = [pid for pid, name in session_process_tree(session_id).items() if wave(name)]
        _signal_all(chosen, signal.SIGTERM)
        _wait_gone(chosen, deadline)
    for _ in range(10):
        leftover = list(session_process_tree(session_id))
        if not leftover:
            break
        _signal_all(leftover, signal.SIGKILL)
        _wait_gone(leftover, time.monotonic() + 1.0)


def _is_raylet(name: str) -> bool:
    return name == "raylet"


def _is_not_gcs(name: str) -> bool:
    return name != "gcs_server"


def _is_anything(name: str) -> bool:
    return True


def _signal_all(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(pids: list[int], deadline: float) -> None:
    remaining = set(pids)
    while remaining and time.monotonic() < deadline:
        remaining = {pid for pid in remaining if _alive(pid)}
        if remaining:
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        state = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return False
    return state[state.rindex(")") + 2] != "Z"


def embedded_endpoint(data_dir: Path) -> RayEndpoint | None:
    """The endpoint of the embedded cluster ``gpupool serve`` runs from ``data_dir``, if any."""
    state = ClusterState.load(data_dir / "ray" / STATE_FILE)
    return None if state is None else state.endpoint


def embedded_inventory(
    clusters: Iterable[ClusterSpec], flavors: Mapping[str, Flavor]
) -> dict[str, int]:
    """Logical GPUs per Ray flavor resource for the clusters the embedded Ray cluster serves:
    the Ray clusters the books declare without an address."""
    inventory: dict[str, int] = {}
    for cluster in clusters:
        if cluster.backend is BackendKind.RAY and not cluster.address:
            for item in cluster.inventory:
                resource = flavors[item.flavor].ray_resource
                inventory[resource] = inventory.get(resource, 0) + item.gpus
    return inventory
