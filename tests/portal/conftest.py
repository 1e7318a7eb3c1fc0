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

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from portal.app import create_app
from portal.settings import PortalSettings
from portal.tokens import ensure_admin, issue
from quotas.access import Role, Scope
from quotas.clock import utc_now
from quotas.db.repositories import PeopleRepository
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.seed import seed_demo
from quotas.service import Books

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

    def books(self) -> Iterator[Books]:
        return _books(self.engine)

    def token(self, user: str, scopes: list[Scope]) -> str:
        with transaction(session_factory(self.engine)) as session:
            return issue(session, user, "test", scopes, utc_now()).token


def _books(engine: Engine) -> Iterator[Books]:
    with transaction(session_factory(engine)) as session:
        yield Books(session)


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


@pytest.fixture
def demo(fresh_database_url: str, tmp_path: Path) -> Iterator[Demo]:
    settings, engine, admin, tokens = seed_portal(fresh_database_url, tmp_path)
    with TestClient(create_app(settings, engine)) as client:
        yield Demo(settings, engine, client, admin, tokens)
    engine.dispose()
