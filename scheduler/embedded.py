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

Only the dashboard (the Jobs API) is bound to ``host`` (loopback by default). Ray's gRPC servers
(GCS, raylet, agents) listen on every interface whatever ``ray start`` is told, and token
authentication is off: the embedded cluster is for a single trusted machine. A shared or
production deployment points gpupool at a real, secured Ray cluster instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

# Ray puts unix sockets under ``<temp dir>/session_<date>_<time>_<micros>_<pid>/sockets/...``;
# a socket path may not exceed 107 bytes, which leaves about 40 for the temp dir itself.
MAX_TEMP_DIR_LENGTH = 40
# Ports that must never be handed to Ray here: Ray's own defaults and the services these
# machines run (Redis, PostgreSQL, MariaDB, RabbitMQ, NATS, Mosquitto).
RESERVED_PORTS = frozenset(
    {6379, 8265, 10001, 10002, 52365, 44217, 44227, 5432, 3306, 5672, 4222, 1883}
)


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


class EmbeddedRayCluster:
    """A local single-node Ray head with a declared logical GPU inventory.

    ``inventory`` maps each flavor's Ray resource name to its GPU count; the node gets that many
    units of each custom resource and their sum as ``--num-gpus``. Use as a context manager, or
    call ``start()`` and ``stop()``.
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
        self._base_env = dict(os.environ if env is None else env)
        self._ports: ClusterPorts | None = None
        self._temp_dir: Path | None = None
        self._session_id: int | None = None

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
    def temp_dir(self) -> Path:
        if self._temp_dir is None:
            raise EmbeddedClusterError("the cluster has not been started")
        return self._temp_dir

    @property
    def running(self) -> bool:
        return self._session_id is not None

    @property
    def num_gpus(self) -> int:
        return sum(self.inventory.values())

    def pids(self) -> dict[int, str]:
        """The cluster's live processes (``pid -> command name``); empty when stopped."""
        if self._session_id is None:
            return {}
        return session_process_tree(self._session_id)

    # -- start --------------------------------------------------------------------------------

    def _bin_dir(self) -> Path:
        return Path(sys.executable).parent

    def _environment(self, ports: ClusterPorts) -> dict[str, str]:
        env = dict(self._base_env)
        env["AUTOSCALER_METRIC_PORT"] = str(ports.autoscaler_metrics)
        env["DASHBOARD_METRIC_PORT"] = str(ports.dashboard_metrics)
        env["PATH"] = os.pathsep.join([str(self._bin_dir()), env.get("PATH", os.defpath)])
        env["RAY_AUTH_MODE"] = "disabled"
        env["RAY_USAGE_STATS_ENABLED"] = "0"
        # The legacy autoscaler refreshes each node's used/available resources, which the
        # dashboard serves, every 5 s by default; once a second keeps capacity reads fresh.
        env.setdefault("AUTOSCALER_UPDATE_INTERVAL_S", "1")
        env.pop("RAY_ADDRESS", None)
        return env

    def _make_temp_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
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
        """Start the head and wait until its dashboard answers ``GET /api/version``."""
        if self._session_id is not None:
            return
        self._ports = choose_ports()
        self._temp_dir = self._make_temp_dir()
        deadline = time.monotonic() + self.start_timeout
        starter = subprocess.Popen(  # noqa: S603 - a fixed command line, no shell
            self._command(self._ports, self._temp_dir),
            env=self._environment(self._ports),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
        )
        self._session_id = starter.pid
        try:
            output, _ = starter.communicate(timeout=self.start_timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise EmbeddedClusterError("`ray start` did not finish in time") from None
        if starter.returncode != 0:
            self.stop()
            raise EmbeddedClusterError(
                f"`ray start` failed with exit code {starter.returncode}:\n{output[-4000:]}"
            )
        try:
            self._wait_for_dashboard(deadline)
        except EmbeddedClusterError:
            self.stop()
            raise

    def _wait_for_dashboard(self, deadline: float) -> None:
        url = f"{self.address}/api/version"
        with httpx.Client(timeout=2.0) as client:
            while True:
                try:
                    if client.get(url).status_code == httpx.codes.OK:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise EmbeddedClusterError(f"the Ray dashboard never answered at {url}")
                time.sleep(0.2)

    # -- stop ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop this cluster's processes, and only them; a no-op if it is not running.

        Like ``ray stop``: SIGTERM to the raylet first (its workers follow it), then to the
        other processes, then to the GCS, within one grace period; SIGKILL to what is left.
        """
        if self._session_id is None:
            return
        session_id = self._session_id
        deadline = time.monotonic() + self.stop_grace_period
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
        self._session_id = None

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


def address_file(data_dir: Path) -> Path:
    """Where ``gpupool serve`` leaves the embedded Ray cluster's address for readers of logs."""
    return data_dir / "ray" / "address"


def embedded_address(data_dir: Path) -> str | None:
    found = address_file(data_dir)
    return found.read_text().strip() if found.exists() else None
