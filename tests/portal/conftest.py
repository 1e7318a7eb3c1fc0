"""A portal over a seeded demo pool: the app, its admin token, and a token per demo user.

Users and roles in the demo pool (quotas/demo.py):
- admin: the bootstrap admin (pool-wide admin);
- minji.park: program manager of ``startups``; jaehyun.kim: program manager of ``universities``;
- seoyeon.lee: pi of ``kaist-nlp`` and ``kaist-protein``; jiwoo.jung: researcher in
  ``kaist-nlp`` and ``hanbit-robot-policy``; dohyun.choi: pi of ``hanbit-robot-policy``;
  sungmin.yoon: researcher in ``kaist-protein``, pi of ``snu-medical-imaging``; hyejin.kang:
  pi of ``seoulvision-doc-ocr``; eunji.han: pi of ``postech-materials``;
- auditor.kim: an auditor, added here.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, make_url, text

from portal.app import create_app
from portal.settings import PortalSettings
from quotas.access import Role, Scope
from quotas.clock import utc_now
from quotas.db.migrate import upgrade
from quotas.db.repositories import PeopleRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.seed import seed_demo
from quotas.service import Books
from quotas.tokens import ensure_admin, issue
from tests.conftest import POSTGRES_URL

DEMO_USERS = (
    "minji.park",
    "jaehyun.kim",
    "seoyeon.lee",
    "jiwoo.jung",
    "dohyun.choi",
    "hyejin.kang",
    "sungmin.yoon",
    "eunji.han",
)
AUDITOR = "auditor.kim"


@dataclass
class Demo:
    settings: PortalSettings
    engine: Engine
    client: TestClient
    admin_token: str
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, user: str = "admin") -> dict[str, str]:
        token = self.admin_token if user == "admin" else self.tokens[user]
        return {"Authorization": f"Bearer {token}"}

    @contextmanager
    def books(self) -> Iterator[Books]:
        """A committed unit of work on the portal's database, to set up or inspect state."""
        with transaction(session_factory(self.engine)) as session:
            yield Books(session)

    def token(self, user: str, scopes: list[Scope]) -> str:
        with transaction(session_factory(self.engine)) as session:
            return issue(session, user, "test", scopes, utc_now()).token


def seed_portal(url: str, data_dir: Path) -> tuple[PortalSettings, Engine, str, dict[str, str]]:
    settings = PortalSettings(data_dir=data_dir, database_url=url, session_secret="test-secret")
    engine = make_engine(url)
    tokens: dict[str, str] = {}
    with transaction(session_factory(engine)) as session:
        books = Books(session)
        seed_demo(books, demo_pool(utc_now()))
        admin = ensure_admin(books, data_dir / "admin.token")
        assert admin is not None
        PeopleRepository(session).add_user(AUDITOR, "Kim Audit")
        books.grant_role(AUDITOR, Role.AUDITOR, actor="test")
        for user in (*DEMO_USERS, AUDITOR):
            tokens[user] = issue(session, user, "test", list(Scope), utc_now()).token
    return settings, engine, admin, tokens


@dataclass(frozen=True)
class Template:
    """A demo pool seeded once per test session and backend; each test gets a copy."""

    backend: str
    url: str
    data_dir: Path
    admin_token: str
    tokens: dict[str, str]


@pytest.fixture(scope="session")
def demo_template(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    directory = tmp_path_factory.mktemp("demo-template")
    if backend == "sqlite":
        url = f"sqlite:///{directory / 'template.db'}"
        yield _seeded_template(backend, url, directory)
        return
    assert POSTGRES_URL is not None
    name = f"gpupool_demo_{uuid.uuid4().hex[:12]}"
    server = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield _seeded_template(backend, _database(POSTGRES_URL, name), directory)
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def _database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def _seeded_template(backend: str, url: str, directory: Path) -> Template:
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    _, engine, admin, tokens = seed_portal(url, directory)
    engine.dispose()  # a PostgreSQL template must have no open connections
    return Template(backend, url, directory, admin, tokens)


@contextmanager
def demo_copy(template: Template, data_dir: Path) -> Iterator[str]:
    """A fresh copy of the seeded demo database, removed afterwards; the admin token file too."""
    shutil.copy(template.data_dir / "admin.token", data_dir / "admin.token")
    if template.backend == "sqlite":
        copy = data_dir / f"demo-{uuid.uuid4().hex[:8]}.db"
        shutil.copy(make_url(template.url).database or "", copy)
        yield f"sqlite:///{copy}"
        return
    assert POSTGRES_URL is not None
    name = f"gpupool_test_{uuid.uuid4().hex[:12]}"
    template_name = make_url(template.url).database
    server = make_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_name}"'))
    try:
        yield _database(POSTGRES_URL, name)
    finally:
        with server.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@pytest.fixture
def demo(demo_template: Template, tmp_path: Path) -> Iterator[Demo]:
    with demo_copy(demo_template, tmp_path) as url:
        settings = PortalSettings(data_dir=tmp_path, database_url=url, session_secret="test-secret")
        engine = make_engine(url)
        with TestClient(create_app(settings, engine)) as client:
            yield Demo(
                settings, engine, client, demo_template.admin_token, dict(demo_template.tokens)
            )
        engine.dispose()
