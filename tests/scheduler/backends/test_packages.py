"""Uploaded runtime_env packages: the Ray backend stores them, gpupool keeps each for its uploader,
and dispatch forwards each one a job names (by the sha256 of its bytes) to the cluster chosen for
it before submitting the job, only ever bytes the job's own submitter uploaded.

Packages are real zips, as Ray's client makes them, on the session's real Ray cluster; the
"cluster that cannot take packages" is the simulated backend.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import sys
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jobs.cases import submit
from jobs.lifecycle import RunState
from jobs.model import Job, JobSpec, JobState
from jobs.repository import JobRepository
from quotas.admission import SiteKind
from quotas.clock import utc_now
from quotas.db.access import PackageRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.packages import (
    content_addressed_uri,
    content_digest,
    uploaded_packages,
    with_packages_renamed,
)
from quotas.seed import seed_demo
from quotas.service import Books
from scheduler.backends.base import Backend, PackageStore
from scheduler.backends.ray import RayBackend
from scheduler.backends.simulated import SimulatedBackend
from scheduler.cycle import CycleReport, Scheduler
from scheduler.embedded import EmbeddedRayCluster
from scheduler.settings import SchedulerSettings
from tests.scheduler.backends.test_ray import a_job, on, settled

RESEARCHER = "jiwoo.jung"  # kaist-nlp
PI = "seoyeon.lee"  # kaist-nlp too


def a_package(**files: str) -> tuple[str, bytes]:
    """A working_dir zip and a fresh gcs:// URI for it, as a Ray client names one."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr("nonce.txt", uuid.uuid4().hex)  # bytes no other test's cluster has
    return f"gcs://_ray_pkg_{uuid.uuid4().hex[:16]}.zip", buffer.getvalue()


def named_by_content(content: bytes) -> str:
    return content_addressed_uri(hashlib.sha256(content).hexdigest())


def test_the_packages_a_runtime_env_names_are_its_gcs_uris() -> None:
    env = {
        "working_dir": "gcs://_ray_pkg_a.zip",
        "py_modules": ["gcs://_ray_pkg_b.zip", "s3://bucket/c.zip", "gcs://_ray_pkg_a.zip"],
        "pip": ["gcs://not-a-package"],
    }
    assert uploaded_packages(env) == ["gcs://_ray_pkg_a.zip", "gcs://_ray_pkg_b.zip"]
    assert uploaded_packages({"working_dir": "https://example.org/x.zip"}) == []
    assert uploaded_packages({}) == []


def test_a_content_addressed_name_is_the_whole_sha256_of_the_bytes() -> None:
    digest = hashlib.sha256(b"zip bytes").hexdigest()
    uri = content_addressed_uri(digest)
    assert uri == f"gcs://_ray_pkg_{digest}.zip"
    assert content_digest(uri) == digest
    assert content_digest("gcs://_ray_pkg_0123456789abcdef.zip") is None  # a client's name
    assert content_digest(f"s3://_ray_pkg_{digest}.zip") is None
    with pytest.raises(ValueError, match="not a sha256"):
        content_addressed_uri("0123456789abcdef")


def test_renaming_packages_touches_only_the_package_uris() -> None:
    env = {
        "working_dir": "gcs://_ray_pkg_a.zip",
        "py_modules": ["gcs://_ray_pkg_b.zip", "s3://bucket/c.zip", "gcs://_ray_pkg_a.zip"],
        "env_vars": {"working_dir": "gcs://_ray_pkg_a.zip"},
    }
    renamed = with_packages_renamed(env, {"gcs://_ray_pkg_a.zip": "gcs://_ray_pkg_A.zip"})
    assert renamed == {
        "working_dir": "gcs://_ray_pkg_A.zip",
        "py_modules": ["gcs://_ray_pkg_b.zip", "s3://bucket/c.zip", "gcs://_ray_pkg_A.zip"],
        "env_vars": {"working_dir": "gcs://_ray_pkg_a.zip"},
    }
    assert env["working_dir"] == "gcs://_ray_pkg_a.zip"  # the original is left as it was


def test_packages_belong_to_their_uploader(session: Session) -> None:
    packages = PackageRepository(session)
    uri, mine = a_package(**{"main.py": "print('mine')"})
    _, theirs = a_package(**{"main.py": "print('theirs')"})

    assert packages.add("mallory", uri, theirs, utc_now())  # planted under the name first
    assert not packages.exists(RESEARCHER, uri)
    assert packages.digest(RESEARCHER, uri) is None
    assert packages.add(RESEARCHER, uri, mine, utc_now())  # the same name: another package
    assert not packages.add(RESEARCHER, uri, theirs, utc_now())  # never overwritten

    assert packages.digest(RESEARCHER, uri) == hashlib.sha256(mine).hexdigest()
    assert packages.digest("mallory", uri) == hashlib.sha256(theirs).hexdigest()
    assert packages.content(RESEARCHER, hashlib.sha256(mine).hexdigest()) == mine
    assert not packages.has_content(RESEARCHER, hashlib.sha256(theirs).hexdigest())
    assert packages.has_content("mallory", hashlib.sha256(theirs).hexdigest())


def test_ray_keeps_an_uploaded_package_that_a_job_then_runs_in(
    ray_cluster: EmbeddedRayCluster,
) -> None:
    uri, content = a_package(**{"main.py": "print('from the package')"})
    job = a_job(f"{sys.executable} main.py", runtime_env={"working_dir": uri})

    async def scenario(ray: RayBackend) -> None:
        assert isinstance(ray, PackageStore)
        assert not await ray.has_package(uri)
        await ray.upload_package(uri, content)
        await ray.upload_package(uri, content)  # again: harmless
        assert await ray.has_package(uri)
        await ray.submit(job)
        assert (await settled(ray, job.job_id)).state is RunState.SUCCEEDED
        assert "from the package" in await ray.logs(job.job_id)

    on(ray_cluster, scenario)


# -- dispatch ---------------------------------------------------------------------------------


@dataclass
class Pool:
    factory: sessionmaker[Session]
    backends: dict[str, Backend]

    def upload(self, uri: str, content: bytes, by: str = RESEARCHER) -> None:
        with transaction(self.factory) as session:
            PackageRepository(session).add(by, uri, content, utc_now())

    def submit(self, entrypoint: str, working_dir: str, by: str = RESEARCHER) -> str:
        with transaction(self.factory) as session:
            job, _ = submit(
                Books(session),
                JobSpec(
                    project="kaist-nlp",
                    submitter=by,
                    name="packaged",
                    entrypoint=entrypoint,
                    gpus=1,
                    time_limit_seconds=600,
                    flavors=("h100-80g",),
                    runtime_env={"working_dir": working_dir},
                ),
                max_time_limit_seconds=3600,
            )
        return job.id

    def job(self, job_id: str) -> Job:
        with transaction(self.factory) as session:
            return JobRepository(session).get(job_id)

    async def cycle(self) -> CycleReport:
        """Admit and dispatch once."""
        scheduler = Scheduler(self.factory, self.backends, SchedulerSettings())
        report = CycleReport()
        scheduler.admit(report)
        await scheduler.dispatch(report)
        return report


@pytest.fixture
def pool(fresh_database_url: str) -> Iterator[Pool]:
    """The demo pool plus ``ray-test`` (``address`` set by the test), on one real database."""
    engine = make_engine(fresh_database_url)
    factory = session_factory(engine)
    with transaction(factory) as session:
        seed_demo(Books(session), demo_pool(utc_now()))
    yield Pool(factory, {})
    engine.dispose()


def add_cluster(pool: Pool, address: str, backend: Backend) -> None:
    with transaction(pool.factory) as session:
        Books(session).clusters.add(
            ClusterSpec(
                "ray-test",
                BackendKind.RAY,
                SiteKind.NATIONAL,
                (Inventory("h100-80g", 1, 4),),
                address,
            )
        )
    pool.backends["ray-test"] = backend


def test_dispatch_forwards_the_package_to_the_cluster_before_submitting(
    pool: Pool, ray_cluster: EmbeddedRayCluster
) -> None:
    uri, content = a_package(**{"main.py": "print('forwarded at dispatch')"})
    pool.upload(uri, content)
    named = named_by_content(content)
    job_id = pool.submit(f"{sys.executable} main.py", named)

    async def scenario(ray: RayBackend) -> None:
        add_cluster(pool, ray_cluster.address, ray)
        assert not await ray.has_package(named)
        assert (await pool.cycle()).dispatched == [job_id]
        assert pool.job(job_id).state is JobState.STARTING
        assert await ray.has_package(named)
        assert not await ray.has_package(uri)  # the client's name never reaches the cluster
        status = await settled(ray, job_id)
        assert status.state is RunState.SUCCEEDED, status.message
        assert "forwarded at dispatch" in await ray.logs(job_id)

    on(ray_cluster, scenario)


def test_identical_bytes_from_two_users_share_one_package_on_the_cluster(
    pool: Pool, ray_cluster: EmbeddedRayCluster
) -> None:
    _, content = a_package(**{"main.py": "print('the same bytes')"})
    pool.upload("gcs://_ray_pkg_0000000000000001.zip", content, by=RESEARCHER)
    pool.upload("gcs://_ray_pkg_0000000000000002.zip", content, by=PI)
    named = named_by_content(content)
    first = pool.submit(f"{sys.executable} main.py", named, by=RESEARCHER)
    second = pool.submit(f"{sys.executable} main.py", named, by=PI)

    async def scenario(ray: RayBackend) -> None:
        add_cluster(pool, ray_cluster.address, ray)
        assert sorted((await pool.cycle()).dispatched) == sorted([first, second])
        for job_id in (first, second):
            status = await settled(ray, job_id)
            assert status.state is RunState.SUCCEEDED, status.message
            assert "the same bytes" in await ray.logs(job_id)

    on(ray_cluster, scenario)


def test_a_job_never_gets_bytes_its_submitter_did_not_upload(
    pool: Pool, ray_cluster: EmbeddedRayCluster
) -> None:
    """Not even when the cluster already holds them for another user's job."""
    _, content = a_package(**{"main.py": "print('the pi package')"})
    pool.upload("gcs://_ray_pkg_0000000000000003.zip", content, by=PI)
    named = named_by_content(content)
    theirs = pool.submit(f"{sys.executable} main.py", named, by=PI)
    borrowed = pool.submit(f"{sys.executable} main.py", named, by=RESEARCHER)
    client_named = pool.submit(
        f"{sys.executable} main.py", "gcs://_ray_pkg_0000000000000003.zip", by=PI
    )

    async def scenario(ray: RayBackend) -> None:
        add_cluster(pool, ray_cluster.address, ray)
        assert (await pool.cycle()).dispatched == [theirs]
        assert await ray.has_package(named)
        assert (await settled(ray, theirs)).state is RunState.SUCCEEDED

    on(ray_cluster, scenario)
    refused = pool.job(borrowed)
    assert refused.state is JobState.FAILED
    assert f"package {named} was never uploaded to gpupool by {RESEARCHER}" in refused.reason
    unnamed = pool.job(client_named)
    assert unnamed.state is JobState.FAILED
    assert "not a package gpupool keeps by its content" in unnamed.reason


def test_a_package_a_cluster_cannot_take_fails_the_job_and_says_why(pool: Pool) -> None:
    uri, content = a_package(**{"main.py": "print(1)"})
    pool.upload(uri, content)
    named = named_by_content(content)
    add_cluster(pool, "simulated", SimulatedBackend(utc_now, {"h100-80g": (1, 4)}))
    job_id = pool.submit("python main.py", named)

    assert asyncio.run(pool.cycle()).dispatched == []

    job = pool.job(job_id)
    assert job.state is JobState.FAILED
    assert f"ray-test cannot take uploaded packages; the runtime_env names {named}" in job.reason
