"""Attacks from inside a job, and from beside the cluster, on the embedded Ray cluster.

A tenant's job is arbitrary code on the cluster. It must not read the service's secrets (the
admin token, the session key, the database), see the service's environment, or get work onto
the GPUs around the books; and nothing outside the cluster may use Ray's APIs without the
cluster's token. Each test performs the attack on the session's real Ray cluster.
"""

from __future__ import annotations

import os
import shlex
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from jobs.lifecycle import RunState
from jobs.model import JobState
from portal.app import session_secret
from portal.cli import app as cli
from portal.settings import PortalSettings
from quotas.db.session import make_engine, session_factory, transaction
from quotas.service import Books
from quotas.tokens import ensure_admin
from scheduler.backends.base import LaunchSpec
from scheduler.cycle import CycleReport
from scheduler.embedded import JOB_USER, EmbeddedRayCluster
from tests.scheduler.test_ray_cycle import RayPool

AS_ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(
    not AS_ROOT, reason="only root can run the cluster's jobs as another user"
)


def auth(cluster: EmbeddedRayCluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.auth_token}"}


def run_on_ray(cluster: EmbeddedRayCluster, code: str, timeout: float = 60) -> str:
    """Run ``code`` as a job straight on the cluster; its output."""
    job_id = f"attack-{uuid.uuid4().hex[:8]}"
    entrypoint = f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"
    with httpx.Client(base_url=cluster.address, headers=auth(cluster), timeout=10) as client:
        client.post("/api/jobs/", json={"submission_id": job_id, "entrypoint": entrypoint})
        deadline = time.monotonic() + timeout
        while client.get(f"/api/jobs/{job_id}").json()["status"] not in ("SUCCEEDED", "FAILED"):
            assert time.monotonic() < deadline, "the job never finished"
            time.sleep(0.2)
        return str(client.get(f"/api/jobs/{job_id}/logs").json()["logs"])


@pytest.fixture
def service_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir as ``gpupool serve`` leaves it: database, admin token and session key."""
    data_dir = tmp_path_factory.mktemp("service") / "data"
    result = CliRunner().invoke(cli, ["init", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    settings = PortalSettings(data_dir=data_dir, database_url=None, session_secret=None)
    engine = make_engine(settings.database)
    with transaction(session_factory(engine)) as session:
        assert ensure_admin(Books(session), data_dir / "admin.token")
    engine.dispose()
    session_secret(settings)
    return data_dir


def test_the_data_dir_is_the_services_alone(service_data_dir: Path) -> None:
    assert (service_data_dir.stat().st_mode & 0o777) == 0o700
    for secret in ("admin.token", "session.key"):
        assert ((service_data_dir / secret).stat().st_mode & 0o077) == 0, secret


@needs_root
def test_a_job_cannot_read_the_services_secrets_or_database(
    ray_cluster: EmbeddedRayCluster, service_data_dir: Path
) -> None:
    token = (service_data_dir / "admin.token").read_text().strip()
    key = (service_data_dir / "session.key").read_text().strip()
    names = ["admin.token", "session.key", "gpupool.db"]
    paths = [str(service_data_dir / name) for name in names] + [str(service_data_dir)]
    code = (
        "import os, pwd\n"
        "print('user=' + pwd.getpwuid(os.geteuid()).pw_name)\n"
        f"for path in {paths!r}:\n"
        "    try:\n"
        # Markers are built at run time: Ray's log repeats the entrypoint itself.
        "        if os.path.isfile(path):\n"
        "            print(path, 'READ' + '-OK', open(path, 'rb').read()[:200])\n"
        "        else:\n"
        "            print(path, 'LISTED' + '-OK', os.listdir(path))\n"
        "    except OSError as error:\n"
        "        print(path, 'REFUSED', type(error).__name__)\n"
    )

    logs = run_on_ray(ray_cluster, code)

    assert f"user={JOB_USER}" in logs
    for path in paths:
        assert f"{path} REFUSED PermissionError" in logs, logs
    assert "READ-OK" not in logs
    assert "LISTED-OK" not in logs
    assert token not in logs
    assert key not in logs


def test_a_job_sees_none_of_the_services_environment(
    ray_cluster: EmbeddedRayCluster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The service's own settings and secrets live in its environment (GPUPOOL_DATABASE_URL,
    # GPUPOOL_SESSION_SECRET, an identity provider's client secret ...).
    monkeypatch.setenv("GPUPOOL_SESSION_SECRET", "never-seen-by-a-job")
    monkeypatch.setenv("GPUPOOL_DATABASE_URL", "postgresql://gpupool:hunter2@db/gpupool")
    fresh = EmbeddedRayCluster({"h100-80g": 1}, tmp_path)  # never started
    env = fresh._environment(ray_cluster.ports, Path("/nonexistent"), "token")
    assert not [name for name in env if name.startswith("GPUPOOL_")]

    logs = run_on_ray(ray_cluster, "import os; print(sorted(os.environ))")

    assert "GPUPOOL_" not in logs
    assert "hunter2" not in logs


def test_the_dashboard_refuses_anyone_without_the_clusters_token(
    ray_cluster: EmbeddedRayCluster,
) -> None:
    marker = f"uncharged-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=ray_cluster.address, timeout=10) as anonymous:
        listed = anonymous.get("/api/jobs/")
        submitted = anonymous.post("/api/jobs/", json={"entrypoint": f"echo {marker}"})
        forged = anonymous.post(
            "/api/jobs/",
            json={"entrypoint": f"echo {marker}"},
            headers={"Authorization": "Bearer " + "0" * 64},
        )
        nodes = anonymous.get("/api/v0/nodes")
    with httpx.Client(base_url=ray_cluster.address, headers=auth(ray_cluster)) as owner:
        jobs = owner.get("/api/jobs/", timeout=10).json()

    assert listed.status_code == 401
    assert submitted.status_code == 401
    assert forged.status_code == 403
    assert nodes.status_code == 401
    assert not [job for job in jobs if marker in str(job.get("entrypoint"))]


def test_the_dashboard_listens_on_loopback_only(ray_cluster: EmbeddedRayCluster) -> None:
    port = f"{ray_cluster.ports.dashboard:04X}"
    bound = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A" and local.endswith(f":{port}"):  # 0A: LISTEN
                bound.add(local)
    assert bound == {f"0100007F:{port}"}  # 127.0.0.1, nothing else


def test_a_job_submitted_around_the_books_is_stopped(ray_pool: RayPool) -> None:
    """A tenant's job holds the cluster's token (Ray's workers need it) and submits straight
    to Ray: nobody would be charged. The scheduler stops it; the books' own job runs on."""
    sleeper = f"{shlex.quote(sys.executable)} -c 'import time; time.sleep(60)'"
    ours = ray_pool.submit("ours", sleeper)
    stray = f"stray-{uuid.uuid4().hex[:8]}"
    ray_pool.run(ray_pool.scheduler.run_once())  # admits and dispatches ours
    ray_pool.run(
        ray_pool.backend.submit(
            LaunchSpec(
                job_id=stray,
                entrypoint=sleeper,
                gpus=1,
                flavor="h100-80g",
                project="nobody",
                time_limit_seconds=600,
            )
        )
    )
    try:
        report = CycleReport()
        ray_pool.scheduler._next_stray_check = 0.0
        ray_pool.run(ray_pool.scheduler.stop_strays(report))

        # (a job another test's books started on the session's cluster is a stray here too)
        assert stray in report.strays_stopped
        assert ray_pool.job(ours).submission_id not in report.strays_stopped
        ray_pool.run_until(lambda: ray_pool.run(ray_pool.backend.status(stray)).state.is_terminal)
        assert ray_pool.run(ray_pool.backend.status(stray)).state is RunState.STOPPED
        assert ray_pool.job(ours).state in (JobState.STARTING, JobState.RUNNING)
        assert not ray_pool.run(ray_pool.backend.status(ours)).state.is_terminal
    finally:
        ray_pool.run(ray_pool.backend.cancel(ours))
