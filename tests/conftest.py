"""Shared fixtures: databases for the books on SQLite and, when configured, PostgreSQL.

``GPUPOOL_TEST_DATABASE_URL`` (set by ``.ci/run``) adds PostgreSQL: every database test then runs
on both backends. Each test gets a session inside an outer transaction that is rolled back, so
tests never see each other's rows; tests that must commit for real (races, the CLI) ask for
``fresh_database_url``: a new SQLite file, or a new PostgreSQL schema dropped afterwards.

``ray_cluster`` is one real local Ray cluster for the whole test session, shared by the scheduler
and portal tests: gpupool's own embedded one (``scheduler.embedded.EmbeddedRayCluster``) with a
logical inventory of 4 ``h100-80g`` and 4 ``a100-80g`` GPUs (8 GPUs, no real ones needed). It is
started once, lazily, by the first test that asks for it, and stopped at the end of the session;
its temporary directory sits directly under the system temp dir, since Ray's unix socket paths
must stay short.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from quotas.db.migrate import upgrade
from quotas.db.session import make_engine
from scheduler.embedded import EmbeddedRayCluster

POSTGRES_URL = os.environ.get("GPUPOOL_TEST_DATABASE_URL")
BACKENDS = ["sqlite", *(["postgresql"] if POSTGRES_URL else [])]
INVENTORY = {"h100-80g": 4, "a100-80g": 4}


def with_schema(url: str, schema: str) -> str:
    """A PostgreSQL URL whose connections use ``schema`` first."""
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def new_database(backend: str, directory: Path) -> Iterator[str]:
    """A new, migrated, empty database; removed afterwards."""
    if backend == "sqlite":
        url = f"sqlite:///{directory / f'books-{uuid.uuid4().hex[:8]}.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    assert POSTGRES_URL is not None
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = make_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    url = with_schema(POSTGRES_URL, schema)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture(params=BACKENDS, scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def engine(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with new_database(backend, tmp_path_factory.mktemp("db")) as url:
        shared = make_engine(url)
        yield shared
        shared.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session whose every commit is a savepoint inside a transaction rolled back at the end."""
    connection = engine.connect()
    outer = connection.begin()
    db = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield db
    finally:
        db.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def fresh_database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with new_database(backend, tmp_path) as url:
        yield url


@pytest.fixture
def job_dir() -> Iterator[Path]:
    """A directory the jobs of the session's Ray cluster can read and write.

    When the tests run as root the cluster's jobs run as the unprivileged ``gpupool-jobs``, who
    cannot enter pytest's own temporary directories (0700, root's).
    """
    path = Path(tempfile.mkdtemp(prefix="gpupool-job-"))
    path.chmod(0o777)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[EmbeddedRayCluster]:
    data_dir = Path(tempfile.mkdtemp(prefix="gpr"))
    cluster = EmbeddedRayCluster(INVENTORY, data_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
