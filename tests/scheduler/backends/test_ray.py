"""The Ray backend against a real local Ray cluster: jobs that really run, fail, stop and log.

Every job is a real Python command run by Ray (``sys.executable``, so the test's own interpreter)
on the session's embedded cluster of 4 ``h100-80g`` and 4 ``a100-80g`` logical GPUs. Only the
classification of HTTP answers Ray would be hard to provoke (a 429, a 503) uses
``httpx.MockTransport``; everything else asks Ray itself.
"""

from __future__ import annotations

import asyncio
import shlex
import socket
import sys
import textwrap
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest

from jobs.lifecycle import RunState, RunStatus
from scheduler.backends.base import (
    Backend,
    FlavorCapacity,
    GpuAccounting,
    LaunchSpec,
    PermanentBackendError,
    TransientBackendError,
)
from scheduler.backends.ray import RayBackend, available_resources, run_status
from scheduler.embedded import EmbeddedRayCluster

H100 = "h100-80g"
A100 = "a100-80g"
T = TypeVar("T")


# -- builders and waiting ---------------------------------------------------------------------


def python(code: str) -> str:
    """An entrypoint running ``code`` with this test's interpreter."""
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(textwrap.dedent(code))}"


def a_job(
    entrypoint: str,
    *,
    gpus: int = 1,
    flavor: str = H100,
    runtime_env: Mapping[str, object] | None = None,
    metadata: Mapping[str, str] | None = None,
) -> LaunchSpec:
    return LaunchSpec(
        job_id=f"test-{uuid.uuid4().hex[:12]}",
        project="kaist-nlp",
        entrypoint=entrypoint,
        gpus=gpus,
        flavor=flavor,
        time_limit_seconds=600,
        runtime_env=runtime_env or {},
        metadata=metadata or {},
    )


async def eventually(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], *, within: float = 30.0
) -> T:
    """Poll ``read`` until ``done`` holds of what it returns; fail with the last value."""
    deadline = time.monotonic() + within
    while True:
        value = await read()
        if done(value):
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting after {within} s; last seen: {value!r}")
        await asyncio.sleep(0.2)


async def settled(ray: RayBackend, job_id: str, *states: RunState) -> RunStatus:
    """The job's status once it is in one of ``states`` (default: any terminal state)."""
    return await eventually(
        lambda: ray.status(job_id),
        lambda status: status.state in states if states else status.state.is_terminal,
    )


def on(cluster: EmbeddedRayCluster, scenario: Callable[[RayBackend], Awaitable[None]]) -> None:
    async def run() -> None:
        async with RayBackend(cluster.address, auth_token=cluster.auth_token) as ray:
            await scenario(ray)

    asyncio.run(run())


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- jobs that run ----------------------------------------------------------------------------


def test_the_backend_is_a_backend_with_gpu_accounting() -> None:
    backend = RayBackend("http://127.0.0.1:1")
    assert isinstance(backend, Backend)
    assert isinstance(backend, GpuAccounting)
    asyncio.run(backend.close())


def test_a_job_that_exits_zero_succeeds_and_keeps_its_output(
    ray_cluster: EmbeddedRayCluster,
) -> None:
    job = a_job(python("print('training done: loss 0.12')"))

    async def scenario(ray: RayBackend) -> None:
        await ray.submit(job)
        status = await settled(ray, job.job_id)
        assert status.state is RunState.SUCCEEDED
        assert status.exit_code == 0
        assert not status.system_fault
        assert status.started_at is not None
        assert status.ended_at is not None
        assert status.started_at.tzinfo is UTC
        assert status.ended_at.tzinfo is UTC
        assert status.started_at <= status.ended_at
        assert "training done: loss 0.12" in await ray.logs(job.job_id)

    on(ray_cluster, scenario)


def test_a_job_that_exits_non_zero_fails_by_its_own_fault(
    ray_cluster: EmbeddedRayCluster,
) -> None:
    job = a_job(python("import sys; print('diverged'); sys.exit(3)"))

    async def scenario(ray: RayBackend) -> None:
        await ray.submit(job)
        status = await settled(ray, job.job_id)
        assert status.state is RunState.FAILED
        assert status.exit_code == 3
        assert not status.system_fault
        assert "exit code 3" in status.message
        assert "diverged" in await ray.logs(job.job_id)

    on(ray_cluster, scenario)


def test_each_job_sees_exactly_the_gpus_it_asked_for(ray_cluster: EmbeddedRayCluster) -> None:
    show = python("import os; print('CUDA_VISIBLE_DEVICES=' + os.environ['CUDA_VISIBLE_DEVICES'])")
    one_a100 = a_job(show, gpus=1, flavor=A100)
    three_h100 = a_job(show, gpus=3, flavor=H100)

    async def devices(ray: RayBackend, job: LaunchSpec) -> list[str]:
        await ray.submit(job)
        assert (await settled(ray, job.job_id)).state is RunState.SUCCEEDED
        logs = await ray.logs(job.job_id)
        line = next(line for line in logs.splitlines() if line.startswith("CUDA_VISIBLE"))
        return line.split("=", 1)[1].split(",")

    async def scenario(ray: RayBackend) -> None:
        seen = await asyncio.gather(devices(ray, one_a100), devices(ray, three_h100))
        for job, visible in zip((one_a100, three_h100), seen, strict=True):
            assert len(visible) == len(set(visible)) == job.gpus
            assert all(device.isdigit() for device in visible)

    on(ray_cluster, scenario)


def test_a_cancelled_job_stops(ray_cluster: EmbeddedRayCluster) -> None:
    job = a_job(python("import time; print('started', flush=True); time.sleep(300)"))

    async def scenario(ray: RayBackend) -> None:
        await ray.submit(job)
        await settled(ray, job.job_id, RunState.RUNNING)
        await ray.cancel(job.job_id)
        status = await settled(ray, job.job_id)
        assert status.state is RunState.STOPPED
        assert not status.system_fault
        await ray.cancel(job.job_id)  # a second cancel is a no-op
        assert (await ray.status(job.job_id)).state is RunState.STOPPED

    on(ray_cluster, scenario)


def test_submitting_a_job_twice_runs_it_once(
    ray_cluster: EmbeddedRayCluster, job_dir: Path
) -> None:
    runs = job_dir / "runs.txt"
    job = a_job(python(f"open({str(runs)!r}, 'a').write('ran\\n')"))

    async def scenario(ray: RayBackend) -> None:
        await asyncio.gather(ray.submit(job), ray.submit(job))  # a retry racing the first try
        assert (await settled(ray, job.job_id)).state is RunState.SUCCEEDED
        await ray.submit(job)  # a retry after it finished
        assert (await ray.status(job.job_id)).state is RunState.SUCCEEDED
        await asyncio.sleep(1.0)
        assert runs.read_text().splitlines() == ["ran"]

    on(ray_cluster, scenario)


def test_a_job_ray_never_saw_is_not_found(ray_cluster: EmbeddedRayCluster) -> None:
    async def scenario(ray: RayBackend) -> None:
        status = await ray.status("never-submitted")
        assert status.state is RunState.NOT_FOUND
        assert not status.state.is_terminal
        assert await ray.logs("never-submitted") == ""
        await ray.cancel("never-submitted")  # a no-op, not an error

    on(ray_cluster, scenario)


# -- capacity and GPU accounting --------------------------------------------------------------


def test_capacity_shows_each_flavor_per_node_and_drops_while_a_job_holds_gpus(
    ray_cluster: EmbeddedRayCluster,
) -> None:
    job = a_job(python("import time; time.sleep(300)"), gpus=3, flavor=H100)

    def free(capacity: Mapping[str, FlavorCapacity]) -> dict[str, tuple[int, ...]]:
        return {flavor: each.free for flavor, each in capacity.items()}

    async def scenario(ray: RayBackend) -> None:
        idle = await eventually(ray.capacity, lambda c: free(c) == {H100: (4,), A100: (4,)})
        assert idle[H100] == FlavorCapacity(flavor=H100, gpus_per_node=4, free=(4,))
        await ray.submit(job)
        await settled(ray, job.job_id, RunState.RUNNING)
        await eventually(ray.capacity, lambda c: free(c) == {H100: (1,), A100: (4,)})
        await ray.cancel(job.job_id)
        await settled(ray, job.job_id)
        await eventually(ray.capacity, lambda c: free(c) == {H100: (4,), A100: (4,)})

    on(ray_cluster, scenario)


def test_capacity_names_flavors_as_configured(ray_cluster: EmbeddedRayCluster) -> None:
    async def scenario() -> None:
        async with RayBackend(
            ray_cluster.address, auth_token=ray_cluster.auth_token, flavor_resources={"h100": H100}
        ) as ray:
            capacity = await ray.capacity()
        assert list(capacity) == ["h100"]
        assert capacity["h100"].gpus_per_node == 4

    asyncio.run(scenario())


HOG = """
import time
import ray

ray.init()

@ray.remote(num_gpus=1)
class Hog:
    def ready(self):
        return True

@ray.remote(num_gpus=1)
def hog():
    time.sleep(300)

hog_actor = Hog.remote()
ray.get(hog_actor.ready.remote())
hog_task = hog.remote()
print("hogging 2 more GPUs than reserved", flush=True)
time.sleep(300)
"""


def test_gpus_in_use_catches_a_job_using_more_than_it_reserved(
    ray_cluster: EmbeddedRayCluster, job_dir: Path
) -> None:
    script = job_dir / "hog.py"
    script.write_text(HOG)
    job = a_job(
        f"{shlex.quote(sys.executable)} {shlex.quote(str(script))}",
        gpus=1,
        flavor=A100,
    )

    async def scenario(ray: RayBackend) -> None:
        await ray.submit(job)
        await settled(ray, job.job_id, RunState.RUNNING)
        # The entrypoint's reserved GPU, its actor's and its task's.
        await eventually(ray.gpus_in_use, lambda use: use.get(job.job_id) == 3.0)
        await ray.cancel(job.job_id)
        await settled(ray, job.job_id)
        await eventually(ray.gpus_in_use, lambda use: use.get(job.job_id, 0.0) == 0.0)

    on(ray_cluster, scenario)


# -- failures, classified ---------------------------------------------------------------------


def test_an_unreachable_cluster_is_a_transient_failure() -> None:
    async def scenario() -> None:
        async with RayBackend(f"http://127.0.0.1:{closed_port()}", timeout=2.0) as ray:
            with pytest.raises(TransientBackendError):
                await ray.submit(a_job("true"))
            with pytest.raises(TransientBackendError):
                await ray.status("any")
            with pytest.raises(TransientBackendError):
                await ray.capacity()
            with pytest.raises(TransientBackendError):
                await ray.gpus_in_use()

    asyncio.run(scenario())


def test_a_malformed_runtime_env_is_a_permanent_failure(ray_cluster: EmbeddedRayCluster) -> None:
    job = a_job("true", runtime_env={"pip": 5})

    async def scenario(ray: RayBackend) -> None:
        with pytest.raises(PermanentBackendError, match="runtime_env"):
            await ray.submit(job)
        assert (await ray.status(job.job_id)).state is RunState.NOT_FOUND

    on(ray_cluster, scenario)


def test_a_request_ray_answers_with_400_is_a_permanent_failure(
    ray_cluster: EmbeddedRayCluster,
) -> None:
    job = a_job("true", metadata=cast(Mapping[str, str], {"epochs": 3}))  # not a string

    async def scenario(ray: RayBackend) -> None:
        with pytest.raises(PermanentBackendError, match="HTTP 400"):
            await ray.submit(job)
        assert (await ray.status(job.job_id)).state is RunState.NOT_FOUND

    on(ray_cluster, scenario)


def answering(submit_code: int, body: str = "", *, job_exists: bool = False) -> RayBackend:
    """A backend whose Ray answers ``POST /api/jobs/`` with ``submit_code`` and ``body``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(submit_code, text=body)
        if job_exists:
            return httpx.Response(200, json={"status": "RUNNING", "submission_id": "j"})
        return httpx.Response(404, text="Job j does not exist")

    return RayBackend("http://ray.test", transport=httpx.MockTransport(handle))


@pytest.mark.parametrize(
    ("code", "body", "job_exists", "expected"),
    [
        (400, "TypeError: metadata values must be strings", False, PermanentBackendError),
        (401, "unauthorized", False, PermanentBackendError),
        (403, "forbidden", False, PermanentBackendError),
        (408, "request timeout", False, TransientBackendError),
        (429, "too many requests", False, TransientBackendError),
        (500, "No available agent to submit job", False, TransientBackendError),
        (503, "restarting", False, TransientBackendError),
        (500, "Request failed with status code 400: ValueError", False, PermanentBackendError),
        (500, "ValueError: Job with submission_id j already exists.", True, None),
    ],
)
def test_submit_classifies_what_ray_answers(
    code: int, body: str, job_exists: bool, expected: type[Exception] | None
) -> None:
    async def scenario() -> None:
        async with answering(code, body, job_exists=job_exists) as ray:
            if expected is None:
                await ray.submit(a_job("true"))
            else:
                with pytest.raises(expected):
                    await ray.submit(a_job("true"))

    asyncio.run(scenario())


def test_a_timeout_is_a_transient_failure() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async def scenario() -> None:
        async with RayBackend("http://ray.test", transport=httpx.MockTransport(handle)) as ray:
            with pytest.raises(TransientBackendError, match="ReadTimeout"):
                await ray.status("j")

    asyncio.run(scenario())


# -- reading Ray's answers --------------------------------------------------------------------


def failed(error_type: str | None, exit_code: int | None = None) -> dict[str, Any]:
    return {
        "status": "FAILED",
        "message": "it failed",
        "error_type": error_type,
        "driver_exit_code": exit_code,
        "start_time": 1_740_992_400_000,
        "end_time": 1_740_996_000_000,
    }


@pytest.mark.parametrize(
    ("details", "system_fault"),
    [
        (failed("JOB_ENTRYPOINT_COMMAND_ERROR", 1), False),
        (failed("JOB_ENTRYPOINT_COMMAND_ERROR", -9), False),
        (failed("RUNTIME_ENV_SETUP_FAILURE"), False),
        (failed("JOB_SUPERVISOR_ACTOR_START_TIMEOUT"), True),
        (failed("JOB_SUPERVISOR_ACTOR_START_FAILURE"), True),
        (failed("JOB_SUPERVISOR_ACTOR_UNSCHEDULABLE"), True),
        (failed("JOB_SUPERVISOR_ACTOR_UNKNOWN_FAILURE"), True),
        (failed("JOB_SUPERVISOR_ACTOR_DIED"), True),
        (failed("JOB_ENTRYPOINT_COMMAND_START_ERROR"), True),
        (failed(None), True),
        (failed("SOME_FUTURE_ERROR", 2), False),
        (failed("SOME_FUTURE_ERROR"), True),
    ],
)
def test_a_failure_is_the_systems_fault_only_when_ray_failed_the_job(
    details: dict[str, Any], system_fault: bool
) -> None:
    status = run_status(details)
    assert status.state is RunState.FAILED
    assert status.system_fault is system_fault
    assert status.ended_at is not None
    assert status.ended_at.isoformat() == "2025-03-03T10:00:00+00:00"


def test_a_pending_job_has_not_started_and_a_running_one_has_not_ended() -> None:
    pending = run_status({"status": "PENDING", "start_time": 1_740_992_400_000})
    running = run_status({"status": "RUNNING", "start_time": 1_740_992_400_000})
    assert pending.state is RunState.PENDING
    assert pending.started_at is None
    assert running.started_at is not None
    assert running.ended_at is None
    assert running.started_at.isoformat() == "2025-03-03T09:00:00+00:00"


def test_gpus_a_placement_group_reserves_are_not_free() -> None:
    usage = (
        "1.0/4.0 CPU (0.0 used of 0.1 reserved in placement groups)\n"
        "3.0/8.0 GPU (0.0 used of 1.0 reserved in placement groups)\n"
        "1.0/4.0 a100-80g\n"
        "0B/22.65GiB memory"
    )
    assert available_resources(usage) == pytest.approx({"CPU": 2.9, "GPU": 4.0, A100: 3.0})
