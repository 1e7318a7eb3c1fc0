"""The Ray Jobs-compatible API: Ray's own client and CLI against a running gpupool.

The portal runs under uvicorn on a free port with the scheduler loop beside it (as ``gpupool
serve`` runs them), over a seeded demo pool plus one cluster, ``ray-test``, that is the session's
real Ray cluster (4 h100-80g and 4 a100-80g logical GPUs); only it has a backend. Jobs really
run on Ray. Users (see tests/portal/conftest.py): dohyun.choi is in one project
(hanbit-robot-policy), jiwoo.jung in two (kaist-nlp, hanbit-robot-policy), eunji.han in neither.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
import uvicorn
from pydantic import SecretStr
from ray._private.runtime_env.packaging import get_uri_for_directory
from ray.exceptions import AuthenticationError
from ray.job_submission import JobDetails, JobStatus, JobSubmissionClient
from sqlalchemy import Engine

from jobs.model import Job, JobSpec, JobState, Placed
from jobs.repository import JobRepository
from portal.app import create_app
from portal.problems import Problem
from portal.rayjobs import exit_code, gpu_count, job_details, own_job_id, ray_status
from portal.server import QuietServer
from quotas.admission import DataClass, PriorityClass, SiteKind
from quotas.causes import (
    Ended,
    NoCapacity,
    NoFlavor,
    Outcome,
    StopCause,
    Stopping,
)
from quotas.db.access import PackageRepository
from quotas.db.session import session_factory, transaction
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.packages import content_addressed_uri
from quotas.quantities import Credits
from quotas.service import Books
from scheduler.backends.ray import RayBackend
from scheduler.backends.registry import Reachable, build_backends, close_backends
from scheduler.embedded import EmbeddedRayCluster, RayEndpoint, free_port
from scheduler.loop import run_scheduler
from tests.conftest import new_database
from tests.portal.conftest import seed_portal

PYTHON = sys.executable
RAY_CLI = str(Path(sys.executable).parent / "ray")
SOLO = "dohyun.choi"  # one project: hanbit-robot-policy
TWO_PROJECTS = "jiwoo.jung"  # kaist-nlp and hanbit-robot-policy
OUTSIDER = "eunji.han"  # postech-materials only
UPLOADS_CHARGED_TO = {TWO_PROJECTS: "kaist-nlp"}


def python(code: str) -> str:
    return f"{PYTHON} -c {json.dumps(code)}"


@dataclass
class Gateway:
    url: str
    engine: Engine
    tokens: dict[str, str]
    ray: RayEndpoint

    def headers(self, user: str) -> dict[str, str]:
        """The user's token, and for someone in several projects the project their uploads
        are charged to (Ray's client sends the same headers with every request)."""
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        if user in UPLOADS_CHARGED_TO:
            headers["X-Gpupool-Project"] = UPLOADS_CHARGED_TO[user]
        return headers

    def client(self, user: str) -> JobSubmissionClient:
        return JobSubmissionClient(self.url, headers=self.headers(user))

    def job(self, job_id: str) -> Job:
        with transaction(session_factory(self.engine)) as session:
            return JobRepository(session).get(job_id)

    def count_jobs(self) -> int:
        with transaction(session_factory(self.engine)) as session:
            return len(JobRepository(session).find())

    def package_named(self, user: str, uri: str) -> str:
        """The content-addressed name of the package ``user`` uploaded as ``uri``."""
        with transaction(session_factory(self.engine)) as session:
            digest = PackageRepository(session).digest(user, uri)
        assert digest is not None, f"{user} uploaded no {uri}"
        return content_addressed_uri(digest)

    def on_ray(self, uri: str) -> bool:
        async def ask() -> bool:
            async with RayBackend(self.ray.address, auth_token=self.ray.auth_token) as ray:
                return await ray.has_package(uri)

        return asyncio.run(ask())

    def ray_cli(
        self, user: str, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_JOB_HEADERS")}
        command = [RAY_CLI, "job", args[0], "--address", self.url]
        command += ["--headers", json.dumps(self.headers(user)), *args[1:]]
        return subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, check=False
        )


def wait_for(
    client: JobSubmissionClient,
    job_id: str,
    done: Callable[[JobDetails], bool],
    timeout: float = 45,
) -> JobDetails:
    deadline = time.monotonic() + timeout
    while True:
        info = client.get_job_info(job_id)
        if done(info):
            return info
        assert time.monotonic() < deadline, f"gave up waiting; last seen {info}"
        time.sleep(0.2)


def status_is(*statuses: JobStatus) -> Callable[[JobDetails], bool]:
    return lambda info: info.status in statuses


@pytest.fixture(scope="module")
def gateway(
    backend: str, ray_cluster: EmbeddedRayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    data_dir = tmp_path_factory.mktemp("rayjobs")
    with new_database(backend, data_dir) as url:
        settings, engine, _, tokens = seed_portal(url, data_dir)
        settings = settings.model_copy(
            update={
                "cycle_seconds": 0.5,
                "wake_seconds": 0.05,
                "charge_interval_seconds": 1,
                "ray_auth_tokens": {ray_cluster.address: SecretStr(ray_cluster.auth_token)},
            }
        )
        with transaction(session_factory(engine)) as session:
            books = Books(session)
            books.clusters.add(
                ClusterSpec(
                    "ray-test",
                    BackendKind.RAY,
                    SiteKind.NATIONAL,
                    (Inventory("h100-80g", 1, 4), Inventory("a100-80g", 1, 4)),
                    ray_cluster.address,
                )
            )
            clusters, flavors = books.clusters.all(), books.flavors.all()
        port = free_port()
        server = QuietServer(
            uvicorn.Config(
                create_app(settings, engine),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="off",
            )
        )
        loop = asyncio.new_event_loop()
        stop = asyncio.Event()

        async def serve() -> None:
            backends = build_backends(
                clusters, flavors, Reachable(ray_tokens=settings.ray_tokens())
            )
            scheduler = asyncio.create_task(run_scheduler(engine, backends, settings, stop=stop))
            serving = asyncio.create_task(server.serve())
            await stop.wait()
            server.should_exit = True
            await asyncio.gather(scheduler, serving)
            await close_backends(backends)

        thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
        thread.start()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive(), "the portal did not start"
            assert time.monotonic() < deadline, "the portal did not start in time"
            time.sleep(0.05)
        try:
            yield Gateway(base, engine, tokens, ray_cluster.endpoint)
        finally:
            loop.call_soon_threadsafe(stop.set)
            thread.join(timeout=20)
            loop.close()
            engine.dispose()


# -- Ray's client against gpupool ---------------------------------------------------------------


def test_the_ray_client_submits_a_job_that_runs_and_logs(gateway: Gateway) -> None:
    client = gateway.client(SOLO)
    job_id = client.submit_job(
        entrypoint=python(
            "import os; print('hello from gpupool', os.environ['CUDA_VISIBLE_DEVICES'])"
        ),
        entrypoint_num_gpus=2,
        entrypoint_resources={"h100-80g": 2},
        metadata={"name": "hello", "time_limit": "10m"},
    )

    info = wait_for(client, job_id, status_is(JobStatus.SUCCEEDED, JobStatus.FAILED))
    assert info.status == JobStatus.SUCCEEDED, info.message
    assert info.submission_id == job_id
    assert info.driver_exit_code == 0
    assert info.metadata == {"name": "hello", "time_limit": "10m"}
    assert info.start_time is not None
    assert info.end_time is not None
    assert info.start_time <= info.end_time
    logs = client.get_job_logs(job_id)
    assert "hello from gpupool" in logs
    assert len(logs.split("hello from gpupool ")[1].split()[0].split(",")) == 2  # 2 GPUs
    assert job_id in [job.submission_id for job in client.list_jobs()]

    job = gateway.job(job_id)  # a gpupool job, charged to the caller's only project
    assert (job.spec.project, job.spec.gpus, job.spec.flavors) == (
        "hanbit-robot-policy",
        2,
        ("h100-80g",),
    )
    assert job.spec.time_limit_seconds == 600
    assert job.spec.submitter == SOLO


def test_metadata_sets_priority_data_class_and_preemptible(gateway: Gateway) -> None:
    client = gateway.client(SOLO)
    metadata = {
        "time_limit": "5m",
        "priority": "opportunistic",
        "data_class": "Restricted",  # any case
        "preemptible": "true",
    }
    job_id = client.submit_job(entrypoint=python("print('scheduled as asked')"), metadata=metadata)

    spec = gateway.job(job_id).spec
    assert spec.priority is PriorityClass.OPPORTUNISTIC
    assert spec.data_class is DataClass.RESTRICTED  # ray-test is national: it may run there
    assert spec.preemptible is True
    assert client.get_job_info(job_id).metadata == metadata
    assert wait_for(client, job_id, status_is(JobStatus.SUCCEEDED, JobStatus.FAILED)).status == (
        JobStatus.SUCCEEDED
    )
    plain = gateway.job(client.submit_job(entrypoint="true", metadata={"time_limit": "5m"})).spec
    assert (plain.priority, plain.data_class, plain.preemptible) == (
        PriorityClass.NORMAL,
        DataClass.PUBLIC,
        False,
    )


def test_a_pending_job_says_why_it_waits_and_a_stopped_one_is_stopped(gateway: Gateway) -> None:
    client = gateway.client(TWO_PROJECTS)
    where = {"project": "kaist-nlp", "time_limit": "10m"}
    long = client.submit_job(
        entrypoint=python("import time; time.sleep(60)"),
        entrypoint_num_gpus=4,
        entrypoint_resources={"h100-80g": 4},
        metadata=where,
    )
    wait_for(client, long, status_is(JobStatus.RUNNING))
    short = client.submit_job(
        entrypoint=python("print('my turn')"),
        entrypoint_resources={"h100-80g": 1},
        metadata=where,
    )

    waiting = wait_for(client, short, lambda info: "position" in (info.message or ""))
    assert waiting.status == JobStatus.PENDING
    assert "no h100-80g free" in (waiting.message or "")
    assert "position 1 in the queue" in (waiting.message or "")

    with pytest.raises(RuntimeError, match="404"):
        gateway.client(OUTSIDER).stop_job(long)  # another project's job does not exist for them
    assert client.stop_job(long) is True
    stopped = wait_for(client, long, status_is(JobStatus.STOPPED, JobStatus.FAILED))
    assert stopped.status == JobStatus.STOPPED
    assert client.stop_job(long) is False  # already over
    ran = wait_for(client, short, status_is(JobStatus.SUCCEEDED, JobStatus.FAILED))
    assert ran.status == JobStatus.SUCCEEDED


def test_deleting_hides_a_finished_job_from_ray_but_not_from_the_books(gateway: Gateway) -> None:
    client = gateway.client(SOLO)
    job_id = client.submit_job(entrypoint=python("print(1)"), metadata={"time_limit": "5m"})
    with pytest.raises(RuntimeError, match="stop it before deleting it"):
        client.delete_job(job_id)
    wait_for(client, job_id, status_is(JobStatus.SUCCEEDED))

    assert client.delete_job(job_id) is True
    with pytest.raises(RuntimeError, match="404"):
        client.get_job_info(job_id)
    assert job_id not in [job.submission_id for job in client.list_jobs()]
    kept = httpx.get(f"{gateway.url}/api/v1/jobs/{job_id}", headers=gateway.headers(SOLO))
    assert kept.status_code == 200
    with pytest.raises(RuntimeError, match="409"):
        client.submit_job(entrypoint="true", submission_id=job_id)  # its id stays taken


# -- refusals -------------------------------------------------------------------------------------


def test_refused_requests_say_why_and_write_nothing(gateway: Gateway) -> None:
    before = gateway.count_jobs()
    client = gateway.client(TWO_PROJECTS)

    with pytest.raises(RuntimeError, match=r"400.*whole number of GPUs"):
        client.submit_job(entrypoint="true", entrypoint_num_gpus=0.5)
    with pytest.raises(RuntimeError, match=r"400.*names no flavor: tpu-v5.*h100-80g"):
        client.submit_job(
            entrypoint="true", entrypoint_resources={"tpu-v5": 1}, metadata={"project": "kaist-nlp"}
        )
    with pytest.raises(RuntimeError, match=r"400.*which project.*hanbit-robot-policy, kaist-nlp"):
        client.submit_job(entrypoint="true")
    with pytest.raises(RuntimeError, match=r"400.*time_limit"):
        client.submit_job(entrypoint="true", metadata={"project": "kaist-nlp", "time_limit": "4"})
    with pytest.raises(RuntimeError, match=r"400.*entrypoint_num_cpus"):
        client.submit_job(
            entrypoint="true", entrypoint_num_cpus=2, metadata={"project": "kaist-nlp"}
        )
    with pytest.raises(RuntimeError, match=r"400.*gcs://_ray_pkg_0123\.zip.*never uploaded"):
        client.submit_job(
            entrypoint="true",
            runtime_env={"working_dir": "gcs://_ray_pkg_0123.zip"},
            metadata={"project": "kaist-nlp"},
        )
    with pytest.raises(RuntimeError, match=r"400.*mylib-0\.1-py3-none-any\.whl.*zips only"):
        client.submit_job(
            entrypoint="true",
            runtime_env={"py_modules": ["gcs://mylib-0.1-py3-none-any.whl"]},
            metadata={"project": "kaist-nlp"},
        )
    for key, bad, why in (
        ("priority", "high", "urgent, normal, opportunistic; got 'high'"),
        ("data_class", "secret", "public, sensitive, restricted; got 'secret'"),
        ("preemptible", "yes", "true, false; got 'yes'"),
    ):
        with pytest.raises(RuntimeError, match=f"400.*metadata {key} must be one of {why}"):
            client.submit_job(entrypoint="true", metadata={"project": "kaist-nlp", key: bad})
    with pytest.raises(RuntimeError, match="404"):
        gateway.client(OUTSIDER).submit_job(entrypoint="true", metadata={"project": "kaist-nlp"})

    assert gateway.count_jobs() == before


def test_a_wrong_or_missing_token_is_refused(gateway: Gateway) -> None:
    version = httpx.get(f"{gateway.url}/api/version").json()  # public, as Ray's client needs it
    assert version["version"] == "4"
    assert version["session_name"] == "gpupool"

    # Ray's client reports a 401 as an AuthenticationError: gpupool's reason, then Ray's advice
    for headers, why in (
        ({}, "send 'Authorization: Bearer <token>'"),
        ({"Authorization": "Bearer gpp_not-a-token"}, "token"),
    ):
        client = JobSubmissionClient(gateway.url, headers=headers)
        with pytest.raises(AuthenticationError, match=f"Authentication required.*{why}"):
            client.list_jobs()
        with pytest.raises(AuthenticationError, match="Authentication required"):
            client.submit_job(entrypoint="true")

    async def tail() -> None:
        async for _ in JobSubmissionClient(gateway.url).tail_job_logs("anything"):
            pass

    with pytest.raises(aiohttp.WSServerHandshakeError):
        asyncio.run(tail())


def test_another_projects_job_does_not_exist_for_you(gateway: Gateway) -> None:
    mine = gateway.client(SOLO).submit_job(entrypoint="true", metadata={"time_limit": "5m"})
    outsider = gateway.client(OUTSIDER)

    for call in (outsider.get_job_info, outsider.get_job_logs, outsider.delete_job):
        with pytest.raises(RuntimeError, match="404"):
            call(mine)
    assert mine not in [job.submission_id for job in outsider.list_jobs()]


def a_zip(**files: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_packages_belong_to_their_uploader_and_must_be_zips(gateway: Gateway) -> None:
    name = f"_ray_pkg_{uuid.uuid4().hex[:16]}.zip"
    url = f"{gateway.url}/api/packages/gcs/{name}"
    first = a_zip(**{"main.py": "print('first')"})
    second = a_zip(**{"main.py": "print('second')"})
    mine, theirs = gateway.headers(TWO_PROJECTS), gateway.headers(OUTSIDER)

    assert httpx.get(url, headers=mine).status_code == 404
    assert httpx.get(url).status_code == 401
    assert httpx.put(url, content=first).status_code == 401
    refused = httpx.put(url, content=b"not a zip", headers=mine)
    assert refused.status_code == 400
    assert "not a zip archive" in refused.json()["detail"]
    assert httpx.get(url, headers=mine).status_code == 404
    assert httpx.put(url, content=first, headers=mine).status_code == 200
    assert httpx.get(url, headers=mine).status_code == 200
    assert httpx.get(url, headers=theirs).status_code == 404  # mine is not theirs
    assert httpx.put(url, content=second, headers=theirs).status_code == 200
    assert httpx.get(url, headers=theirs).status_code == 200
    assert httpx.put(url, content=second, headers=mine).status_code == 200  # mine is kept
    assert gateway.package_named(TWO_PROJECTS, f"gcs://{name}") == content_addressed_uri(
        hashlib.sha256(first).hexdigest()
    )
    assert gateway.package_named(OUTSIDER, f"gcs://{name}") == content_addressed_uri(
        hashlib.sha256(second).hexdigest()
    )
    wrong = httpx.get(f"{gateway.url}/api/packages/s3/{name}", headers=mine)
    assert wrong.status_code == 400


# -- the ray CLI, with a working_dir uploaded to gpupool and forwarded to the cluster --------------


def test_ray_job_submit_with_a_working_dir(gateway: Gateway, tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_text("forwarded with the working_dir\n")
    (tmp_path / "script.py").write_text("print(open('data.txt').read().strip())\n")
    job_id = f"cli-{uuid.uuid4().hex[:8]}"

    submitted = gateway.ray_cli(
        TWO_PROJECTS,
        "submit",
        "--submission-id",
        job_id,
        "--working-dir",
        str(tmp_path),
        "--entrypoint-num-gpus",
        "1",
        "--metadata-json",
        json.dumps({"project": "kaist-nlp", "time_limit": "10m"}),
        "--",
        "python",
        "script.py",
    )

    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "forwarded with the working_dir" in submitted.stdout  # tailed over the WebSocket
    status = gateway.ray_cli(TWO_PROJECTS, "status", job_id)
    assert f"Job '{job_id}' succeeded" in status.stdout
    logs = gateway.ray_cli(TWO_PROJECTS, "logs", job_id)
    assert "forwarded with the working_dir" in logs.stdout
    uploaded = get_uri_for_directory(str(tmp_path), include_gitignore=True)
    named = gateway.package_named(TWO_PROJECTS, uploaded)  # by the sha256 of the zip
    # the submitter's own name for the job, kept in their namespace
    assert gateway.job(own_job_id(TWO_PROJECTS, job_id)).spec.runtime_env["working_dir"] == named
    assert gateway.on_ray(named)
    assert not gateway.on_ray(uploaded)  # the client's name never reaches the cluster


def test_a_package_planted_under_your_directorys_name_never_runs_in_your_job(
    gateway: Gateway, tmp_path: Path
) -> None:
    secret = f"the victim's own data {uuid.uuid4().hex}"
    (tmp_path / "data.txt").write_text(secret + "\n")
    (tmp_path / "script.py").write_text("print(open('data.txt').read().strip())\n")
    uploaded = get_uri_for_directory(str(tmp_path), include_gitignore=True)
    planted = a_zip(**{"data.txt": "planted", "script.py": "print('planted by another user')"})
    url = f"{gateway.url}/api/packages/{uploaded.replace('://', '/')}"
    assert httpx.put(url, content=planted, headers=gateway.headers(OUTSIDER)).status_code == 200
    assert httpx.get(url, headers=gateway.headers(TWO_PROJECTS)).status_code == 404
    job_id = f"victim-{uuid.uuid4().hex[:8]}"

    submitted = gateway.ray_cli(
        TWO_PROJECTS,
        "submit",
        "--submission-id",
        job_id,
        "--working-dir",
        str(tmp_path),
        "--metadata-json",
        json.dumps({"project": "kaist-nlp", "time_limit": "10m"}),
        "--",
        "python",
        "script.py",
    )

    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert secret in submitted.stdout
    assert "planted" not in submitted.stdout
    named = gateway.package_named(TWO_PROJECTS, uploaded)  # the victim's client uploaded its own
    # the submitter's own name for the job, kept in their namespace
    assert gateway.job(own_job_id(TWO_PROJECTS, job_id)).spec.runtime_env["working_dir"] == named
    assert named != gateway.package_named(OUTSIDER, uploaded)
    # nor can the other user run the victim's bytes by naming them
    with pytest.raises(RuntimeError, match=r"400.*never uploaded"):
        gateway.client(OUTSIDER).submit_job(
            entrypoint="python script.py",
            runtime_env={"working_dir": named},
            metadata={"project": "postech-materials", "time_limit": "5m"},
        )


def test_identical_working_dirs_from_two_users_share_one_package(
    gateway: Gateway, tmp_path: Path
) -> None:
    (tmp_path / "script.py").write_text(f"print('shared {uuid.uuid4().hex}')\n")
    runtime_env = {"working_dir": str(tmp_path)}
    jobs = {
        user: gateway.client(user).submit_job(
            entrypoint="python script.py", runtime_env=runtime_env, metadata=metadata
        )
        for user, metadata in (
            (SOLO, {"time_limit": "5m"}),
            (TWO_PROJECTS, {"project": "kaist-nlp", "time_limit": "5m"}),
        )
    }

    uploaded = get_uri_for_directory(str(tmp_path), include_gitignore=True)
    named = gateway.package_named(SOLO, uploaded)
    assert gateway.package_named(TWO_PROJECTS, uploaded) == named  # the same bytes
    for user, job_id in jobs.items():
        client = gateway.client(user)
        info = wait_for(client, job_id, status_is(JobStatus.SUCCEEDED, JobStatus.FAILED))
        assert info.status == JobStatus.SUCCEEDED, info.message
        assert info.runtime_env == {"working_dir": named}
        assert "shared" in client.get_job_logs(job_id)


def test_ray_job_stop(gateway: Gateway) -> None:
    submitted = gateway.ray_cli(
        SOLO,
        "submit",
        "--no-wait",
        "--metadata-json",
        json.dumps({"time_limit": "10m"}),
        "--",
        PYTHON,
        "-c",
        "import time; time.sleep(60)",
    )
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.split("Job '")[1].split("'")[0]
    wait_for(gateway.client(SOLO), job_id, status_is(JobStatus.RUNNING))

    stopped = gateway.ray_cli(SOLO, "stop", job_id)

    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert gateway.client(SOLO).get_job_status(job_id) == JobStatus.STOPPED
    assert gateway.job(job_id).state is JobState.CANCELLED


# -- how gpupool's states read in Ray's terms -----------------------------------------------------

NOW = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
PLACED = Placed("national-daejeon", "h100-80g", 1000, 1, "2025Q1", 4000)


def a_job(state: JobState, **fields: Any) -> Job:
    spec = JobSpec(
        project="kaist-nlp",
        submitter="jiwoo.jung",
        name="train",
        entrypoint="python train.py",
        gpus=2,
        time_limit_seconds=3600,
        metadata={"project": "kaist-nlp"},
        runtime_env={"pip": ["torch"]},
    )
    job = Job("gp-1", spec, state, NOW)
    if "cause" in fields:
        job = job.because(fields.pop("cause"))
    return replace(job, **fields)


@pytest.mark.parametrize(
    ("job", "status", "message", "error_type"),
    [
        (a_job(JobState.QUEUED), "PENDING", "waiting in gpupool's queue", None),
        (
            a_job(
                JobState.QUEUED,
                cause=NoCapacity(("h100-80g",), 2, 4),
                position=3,
                eta=NOW + timedelta(hours=2),
            ),
            "PENDING",
            "waiting in gpupool's queue: no h100-80g free for 2 GPUs; 4 GPUs ahead of you; "
            "position 3 in the queue; estimated start 2025-03-01 11:00 UTC",
            None,
        ),
        (
            a_job(JobState.ADMITTED, placed=PLACED),
            "PENDING",
            "admitted on national-daejeon (h100-80g); launching",
            None,
        ),
        (
            a_job(JobState.PREEMPTED, reason="preempted for an urgent job"),
            "PENDING",
            "preempted (preempted for an urgent job); it will be queued again",
            None,
        ),
        (a_job(JobState.STARTING, placed=PLACED), "RUNNING", "starting on national-daejeon", None),
        (
            a_job(JobState.RUNNING, placed=PLACED, cancel_requested=True),
            "RUNNING",
            "running on national-daejeon (h100-80g); stop requested",
            None,
        ),
        (
            a_job(
                JobState.RUNNING,
                placed=PLACED,
                cancel_requested=True,
                cause=Stopping.requested(StopCause.CANCEL),
            ),
            "RUNNING",
            "running on national-daejeon (h100-80g); stopping: cancel requested",
            None,
        ),
        (a_job(JobState.SUCCEEDED, placed=PLACED), "SUCCEEDED", "succeeded on national", None),
        (
            a_job(JobState.CANCELLED, reason="cancelled by jiwoo.jung"),
            "STOPPED",
            "cancelled by",
            None,
        ),
        (
            a_job(
                JobState.FAILED,
                cause=Ended(Outcome.FAILED, 3, "Job entrypoint command failed"),
            ),
            "FAILED",
            "failed (exit code 3)",
            "FAILED",
        ),
        (
            a_job(
                JobState.FAILED,
                cause=Ended(Outcome.SYSTEM_FAULT, None, "node died", Credits.of("1.2")),
            ),
            "FAILED",
            "system fault: node died",
            "SYSTEM_FAULT",
        ),
        (
            a_job(
                JobState.TIMED_OUT,
                cause=Ended(Outcome.TIME_LIMIT, detail="reached its time limit of 1h"),
            ),
            "FAILED",
            "timed out: reached its time limit of 1h",
            "TIMED_OUT",
        ),
        (
            a_job(JobState.REJECTED, cause=NoFlavor(min_memory_gb=200)),
            "FAILED",
            "rejected: no flavor with at least 200 GB in the pool",
            "REJECTED",
        ),
    ],
)
def test_gpupool_states_read_as_ray_statuses(
    job: Job, status: str, message: str, error_type: str | None
) -> None:
    got_status, got_message, got_error_type = ray_status(job)
    assert (got_status, got_error_type) == (status, error_type)
    assert got_message.startswith(message)
    assert got_message.count("stop") <= 1


@pytest.mark.parametrize(
    ("asked", "why"),
    [
        (0.5, "whole number of GPUs, got 0.5"),
        (0, "at least 1, got 0"),
        (float("inf"), "at most 100000, got inf"),
        (1e9, "at most 100000"),
    ],
)
def test_gpu_counts_are_whole_and_bounded(asked: float, why: str) -> None:
    with pytest.raises(Problem, match=why) as refused:
        gpu_count(asked)
    assert refused.value.status == 400
    assert gpu_count(None) == 1  # Ray's client sends none: one GPU
    assert gpu_count(2.0) == 2


def test_job_details_carry_times_in_unix_ms_and_the_exit_code() -> None:
    ended = a_job(
        JobState.FAILED,
        placed=PLACED,
        cause=Ended(Outcome.FAILED, 3, "boom"),
        ended_at=NOW + timedelta(seconds=90),
    )
    details = job_details(ended)
    assert details.type == "SUBMISSION"
    assert (details.job_id, details.submission_id) == ("gp-1", "gp-1")
    assert details.start_time == int(NOW.timestamp() * 1000)
    assert details.end_time == details.start_time + 90_000
    assert details.driver_exit_code == 3
    assert details.metadata == {"project": "kaist-nlp"}
    assert details.runtime_env == {"pip": ["torch"]}
    assert exit_code(a_job(JobState.SUCCEEDED)) == 0
    assert exit_code(a_job(JobState.RUNNING)) is None
    # the sentence is for people: a reason that reads like an exit code is not one
    assert exit_code(a_job(JobState.FAILED, reason="failed (exit code 3)")) is None
    stopped_by_hand = a_job(JobState.FAILED, reason="system fault: node died")
    assert ray_status(stopped_by_hand)[2] == "FAILED"
    JobDetails(**details.model_dump())  # Ray's own model reads it
