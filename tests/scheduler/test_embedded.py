"""The embedded Ray cluster: it answers where it says, on ports of its own, and stops cleanly.

The session's shared cluster (``ray_cluster``) answers the Jobs API to callers with its token;
one more small cluster is started here to show that a second start on the same data dir adopts
it, and that stopping one cluster stops all of its processes, frees its ports and leaves every
other Ray cluster on the machine running.
"""

from __future__ import annotations

import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest

from scheduler.embedded import (
    MAX_TEMP_DIR_LENGTH,
    RESERVED_PORTS,
    ClusterState,
    EmbeddedClusterError,
    EmbeddedRayCluster,
    choose_ports,
)
from tests.scheduler.conftest import INVENTORY

RAY_DEFAULT_PORTS = {6379, 8265, 10001, 52365}


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def auth(cluster: EmbeddedRayCluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.auth_token}"}


def test_the_cluster_answers_the_jobs_api_on_its_address(ray_cluster: EmbeddedRayCluster) -> None:
    version = httpx.get(
        f"{ray_cluster.address}/api/version", headers=auth(ray_cluster), timeout=5.0
    ).json()
    assert version["ray_version"].startswith("2.")
    assert ray_cluster.address == f"http://127.0.0.1:{ray_cluster.ports.dashboard}"


def test_the_cluster_never_uses_rays_default_ports(ray_cluster: EmbeddedRayCluster) -> None:
    ports = ray_cluster.ports.all()
    assert len(set(ports)) == len(ports)
    assert not set(ports) & (RAY_DEFAULT_PORTS | RESERVED_PORTS)
    assert listening(ray_cluster.ports.gcs)
    assert listening(ray_cluster.ports.dashboard)


def test_the_cluster_declares_its_logical_gpu_inventory(ray_cluster: EmbeddedRayCluster) -> None:
    answer = httpx.get(
        f"{ray_cluster.address}/api/v0/nodes",
        params={"detail": "true"},
        headers=auth(ray_cluster),
        timeout=5.0,
    ).json()
    [node] = answer["data"]["result"]["result"]
    assert node["resources_total"]["GPU"] == sum(INVENTORY.values())
    for flavor, gpus in INVENTORY.items():
        assert node["resources_total"][flavor] == gpus


def test_python_in_an_entrypoint_is_the_projects_interpreter(
    ray_cluster: EmbeddedRayCluster,
) -> None:
    job_id = f"which-python-{uuid.uuid4().hex[:8]}"
    entrypoint = "python -c " + shlex.quote("import sys; print('prefix=' + sys.prefix)")
    with httpx.Client(
        base_url=ray_cluster.address, headers=auth(ray_cluster), timeout=10.0
    ) as client:
        client.post("/api/jobs/", json={"submission_id": job_id, "entrypoint": entrypoint})
        deadline = time.monotonic() + 30
        while client.get(f"/api/jobs/{job_id}").json()["status"] not in ("SUCCEEDED", "FAILED"):
            assert time.monotonic() < deadline, "the job never finished"
            time.sleep(0.2)
        logs = client.get(f"/api/jobs/{job_id}/logs").json()["logs"]
    assert f"prefix={sys.prefix}" in logs


def test_stopping_a_cluster_ends_its_processes_and_frees_its_ports_and_no_others(
    ray_cluster: EmbeddedRayCluster,
) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="gpr"))
    try:
        small = EmbeddedRayCluster({"v100-32g": 1}, data_dir, num_cpus=1)
        small.start()
        pids = small.pids()
        ports = small.ports.all()
        assert {"raylet", "gcs_server"} <= set(pids.values())
        assert listening(small.ports.dashboard)
        assert not set(ports) & set(ray_cluster.ports.all())
        assert not set(pids) & set(ray_cluster.pids())
        assert stat.S_IMODE(small.state_file.stat().st_mode) == 0o600
        # A server killed with SIGKILL never stops its cluster: the next start adopts it.
        with EmbeddedRayCluster({"v100-32g": 1}, data_dir, num_cpus=1) as again:
            assert again.adopted
            assert again.address == small.address
            assert again.auth_token == small.auth_token
            assert set(again.pids()) == set(small.pids())
        assert not again.state_file.exists()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    assert again.pids() == {}
    assert not [pid for pid in pids if _running(pid)]
    assert not [port for port in ports if listening(port)]
    # The session's cluster is untouched.
    assert httpx.get(
        f"{ray_cluster.address}/api/version", headers=auth(ray_cluster), timeout=5.0
    ).is_success
    assert "raylet" in ray_cluster.pids().values()


def test_a_long_data_dir_still_gives_ray_a_short_temp_dir(tmp_path: Path) -> None:
    deep = tmp_path / ("a-very-long-directory-name-" * 3) / "gpupool"
    cluster = EmbeddedRayCluster(INVENTORY, deep)
    temp_dir = cluster._make_temp_dir()
    assert len(str(temp_dir)) <= MAX_TEMP_DIR_LENGTH
    [link] = deep.iterdir()
    assert link.resolve() == temp_dir
    temp_dir.rmdir()


def test_a_cluster_not_started_has_no_address(tmp_path: Path) -> None:
    cluster = EmbeddedRayCluster(INVENTORY, tmp_path)
    with pytest.raises(EmbeddedClusterError):
        _ = cluster.address
    cluster.stop()  # a no-op


def _running(pid: int) -> bool:
    try:
        stat = Path("/proc", str(pid), "stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_a_recorded_cluster_that_cannot_be_adopted_is_stopped_for_certain(tmp_path: Path) -> None:
    """What a killed server left that is no whole cluster any more (its GCS died, say) is not
    adopted: every process of its session is stopped before a new cluster starts."""
    leftover = subprocess.Popen(["sleep", "300"], start_new_session=True)
    temp_dir = tmp_path / "old-ray"
    temp_dir.mkdir()
    cluster = EmbeddedRayCluster(INVENTORY, tmp_path, stop_grace_period=1.0)
    ClusterState(
        host="127.0.0.1",
        ports=choose_ports(),
        temp_dir=str(temp_dir),
        session_id=leftover.pid,
        auth_token="t" * 64,
        inventory=dict(INVENTORY),
        user=None,
    ).save(cluster.state_file)

    assert not cluster._adopt_or_clear()

    assert leftover.wait(timeout=10) == -signal.SIGTERM
    assert not cluster.state_file.exists()
    assert not temp_dir.exists()
