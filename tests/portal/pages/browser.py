"""The browser-test harness: the real gpupool in a thread, headless Chromium, axe-core, screenshots.

``live_portal`` serves the real portal app (``portal.app.create_app``) under uvicorn on a free
port of 127.0.0.1, with the real scheduler loop (``scheduler.loop.run_scheduler``, on a
``SchedulerThread`` of its own as ``gpupool serve`` runs it) beside it, over a freshly migrated
database seeded with the demo pool (as ``gpupool serve --demo`` seeds it) and the bootstrap admin.
The demo's two national Ray clusters are declared at no address, which ``serve`` fills with the
embedded cluster it starts; here their place is taken by one Ray cluster, ``national-daejeon``,
that is the test session's real Ray cluster (``ray_cluster``: 4 ``h100-80g`` and 4 ``a100-80g``
logical GPUs), declared at its address with its token, so jobs submitted in the demo pool really
run and their logs can be read. The demo's Kubernetes NPU cluster stays declared but is not
reachable (no kubeconfig context): its jobs wait, as on a fresh ``make run`` without one.

Chromium is Debian's (``/usr/bin/chromium``), driven by Playwright's Python package; nothing is
downloaded. Without it the browser tests skip, except in CI (``CI=true``), where they fail.
Playwright's sync API keeps an event loop running on the test's thread while a browser is open:
a browser test cannot call ``asyncio.run`` (use ``in_thread``).

``check_accessibility`` runs axe-core (the copy axe-playwright-python ships) in the page as it is
served, under its own Content-Security-Policy (Playwright's ``evaluate`` is not script the page
loads, so ``script-src 'self'`` does not stop it), and fails on "serious" or "critical"
violations. ``screenshot`` keeps a full-page PNG under ``<repo>/test-artifacts/screenshots/``
(``$GPUPOOL_TEST_ARTIFACTS/screenshots/`` when that is set).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.resources
import os
import re
import threading
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, ViewportSize, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from pydantic import SecretStr
from sqlalchemy import Engine

from jobs.model import Job
from jobs.repository import JobRepository
from portal.app import create_app
from portal.server import QuietServer
from portal.settings import PortalSettings
from quotas.access import Scope
from quotas.admission import SiteKind
from quotas.cases.invitations import invite
from quotas.clock import utc_now
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import DemoPool, demo_pool
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.seed import seed_demo
from quotas.service import Books
from quotas.tokens import ADMIN_USER, ensure_admin, issue
from scheduler.backends.ray import RayBackend
from scheduler.embedded import RayEndpoint, free_port
from scheduler.loop import SchedulerThread
from tests.conftest import INVENTORY

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[3]
PHONE = ViewportSize(width=390, height=844)
DESKTOP = ViewportSize(width=1280, height=800)
VIEWPORTS: dict[str, ViewportSize] = {"phone": PHONE, "desktop": DESKTOP}
Viewport = str | ViewportSize
"""``"phone"`` (390x844), ``"desktop"`` (1280x800), or a size."""
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
"""axe-core impacts that fail a page; "minor" and "moderate" ones are only returned."""
RAY_CLUSTER = "national-daejeon"
"""The demo's Ray cluster that the session's real Ray cluster stands for."""

T = TypeVar("T")


# -- Chromium -----------------------------------------------------------------------------------


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_chromium() -> Path:
    """Debian's chromium; skip the test without it, or fail it in CI (``CI=true``)."""
    if CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    reason = (
        f"no {CHROMIUM}: the browser tests drive Debian's chromium "
        "(`apt-get install chromium`; .ci/run installs it as root)"
    )
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so this fails instead of skipping", pytrace=False)
    pytest.skip(reason)


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium under Playwright, closed afterwards."""
    executable = require_chromium()
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # Chromium's sandbox refuses root
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=args
        )
        try:
            yield browser
        finally:
            browser.close()


def in_thread(work: Coroutine[Any, Any, T], timeout: float = 60) -> T:
    """``asyncio.run(work)`` on a thread of its own: a browser test's thread has Playwright's
    event loop running, where ``asyncio.run`` refuses to start."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, work).result(timeout)


# -- the live portal ----------------------------------------------------------------------------


def browser_demo_pool(now: datetime, ray_address: str) -> DemoPool:
    """The demo pool with its Ray clusters replaced by one at ``ray_address`` whose inventory is
    the session Ray cluster's (the scheduler counts declared GPUs its backend does not report
    as down), and its Kubernetes cluster kept."""
    pool = demo_pool(now)
    ray = ClusterSpec(
        RAY_CLUSTER,
        BackendKind.RAY,
        SiteKind.NATIONAL,
        tuple(Inventory(flavor, 1, gpus) for flavor, gpus in INVENTORY.items()),
        ray_address,
    )
    others = tuple(c for c in pool.clusters if c.backend is not BackendKind.RAY)
    return replace(pool, clusters=(ray, *others))


@dataclass
class LivePortal:
    """gpupool served on ``url`` over ``engine``'s database, running jobs on ``ray``."""

    url: str
    engine: Engine
    admin_token: str
    ray: RayEndpoint
    settings: PortalSettings

    @contextmanager
    def books(self) -> Iterator[Books]:
        """A committed unit of work on the portal's database, to set up or inspect state."""
        with transaction(session_factory(self.engine)) as session:
            yield Books(session)

    def invitation(self, user: str) -> str:
        """A one-time sign-in link for ``user`` (a demo persona, or someone new), issued by the
        bootstrap admin as ``gpupool users invite`` issues it."""
        with self.books() as books:
            admin = books.roles.principal(ADMIN_USER)
            issued = invite(books, admin, user).invitation
        return f"{self.url}/signin?invite={quote(issued.invitation, safe='')}"

    def token(self, user: str, scopes: tuple[Scope, ...] = tuple(Scope)) -> str:
        """A personal access token of ``user``, with every scope unless told otherwise."""
        if user == ADMIN_USER:
            return self.admin_token
        with transaction(session_factory(self.engine)) as session:
            return issue(session, user, "browser test", list(scopes), utc_now()).token

    def headers(self, user: str = ADMIN_USER) -> dict[str, str]:
        """API headers of ``user`` (a new token each call, except the admin's)."""
        return {"Authorization": f"Bearer {self.token(user)}"}

    def job(self, job_id: str) -> Job:
        with transaction(session_factory(self.engine)) as session:
            return JobRepository(session).get(job_id)


@contextmanager
def serve_live_portal(database_url: str, data_dir: Path, ray: RayEndpoint) -> Iterator[LivePortal]:
    """gpupool (portal and scheduler) over the migrated, empty database at ``database_url``,
    seeded here with the demo pool; stopped afterwards, leaving nothing running on ``ray``."""
    port = free_port()
    settings = PortalSettings(
        data_dir=data_dir,
        database_url=database_url,
        host="127.0.0.1",
        port=port,  # base_url is the browser's origin: the log WebSocket checks it
        cycle_seconds=0.5,
        wake_seconds=0.05,
        charge_interval_seconds=1,
        ray_auth_tokens={ray.address: SecretStr(ray.auth_token)} if ray.auth_token else {},
        access_log=False,
    )
    engine = make_engine(database_url)
    with transaction(session_factory(engine)) as session:
        books = Books(session)
        seed_demo(books, browser_demo_pool(utc_now(), ray.address))
        ensure_admin(books, data_dir / "admin.token")
        clusters, flavors = books.clusters.all(), books.flavors.all()
    admin_token = (data_dir / "admin.token").read_text().strip()
    scheduler = SchedulerThread.for_clusters(engine, clusters, flavors, None, settings)
    server = QuietServer(
        uvicorn.Config(
            create_app(settings, engine, scheduler_ready=lambda: scheduler.running),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="off",
        )
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        scheduler.start()
        serving = asyncio.create_task(server.serve())
        await stop.wait()
        server.should_exit = True
        await serving
        scheduler.stop()
        await scheduler.join()
        await stop_leftovers(engine, ray)

    thread = threading.Thread(
        target=loop.run_until_complete, args=(serve(),), name="live-portal", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the portal did not start"
        assert time.monotonic() < deadline, "the portal did not start in time"
        time.sleep(0.05)
    try:
        yield LivePortal(f"http://127.0.0.1:{port}", engine, admin_token, ray, settings)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=60)
        loop.close()
        engine.dispose()


async def stop_leftovers(engine: Engine, ray: RayEndpoint) -> None:
    """Stop on Ray whatever the tests left running, so it holds none of the shared cluster's
    GPUs once this portal is gone."""

    def placed() -> list[str]:
        with transaction(session_factory(engine)) as session:
            jobs = JobRepository(session).find()
        return [
            job.submission_id
            for job in jobs
            if not job.state.is_terminal
            and job.placed is not None
            and job.placed.cluster == RAY_CLUSTER
        ]

    leftovers = await asyncio.to_thread(placed)
    if leftovers:
        async with RayBackend(ray.address, auth_token=ray.auth_token) as backend:
            for submission_id in leftovers:
                await backend.cancel(submission_id)


# -- pages --------------------------------------------------------------------------------------


def viewport_size(viewport: Viewport) -> ViewportSize:
    if not isinstance(viewport, str):
        return viewport
    if viewport not in VIEWPORTS:
        raise ValueError(f"no viewport {viewport!r}: {', '.join(VIEWPORTS)} or a ViewportSize")
    return VIEWPORTS[viewport]


def sign_in(page: Page, portal: LivePortal, user: str) -> None:
    """Sign ``page``'s browser in as ``user`` through the real sign-in form: an invitation
    link's button for a person, the token form for the bootstrap admin."""
    if user == ADMIN_USER:
        page.goto(f"{portal.url}/signin")
        page.get_by_label("Personal access token or admin token").fill(portal.admin_token)
        page.get_by_role("button", name="Sign in with a token").click()
    else:
        page.goto(portal.invitation(user))
        page.get_by_role("button", name=f"Sign in as {user}").click()
    try:
        page.wait_for_url(f"{portal.url}/", timeout=15_000)
    except PlaywrightTimeout as error:
        text = page.inner_text("body")[:500]
        raise AssertionError(f"signing in as {user} failed at {page.url}: {text}") from error


AXE_SOURCE = (importlib.resources.files("axe_playwright_python") / "axe.min.js").read_text("utf-8")
"""axe-core as axe-playwright-python ships it (MPL-2.0; its licence header is kept)."""

AXE_RUN = """
async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations;
}
"""


def check_accessibility(page: Page) -> list[dict[str, Any]]:
    """Run axe-core on the page as it is now; fail on any "serious" or "critical" violation,
    listing each readably. Returns every violation found (the lesser ones too)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE_SOURCE)
    violations: list[dict[str, Any]] = page.evaluate(AXE_RUN)
    blocking = [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]
    if blocking:
        pytest.fail(
            f"axe-core found {len(blocking)} serious or critical accessibility violation(s) "
            f"on {page.url}:\n" + "\n".join(describe_violation(v) for v in blocking),
            pytrace=False,
        )
    return violations


def describe_violation(violation: dict[str, Any]) -> str:
    lines = [
        f"- {violation['id']} ({violation.get('impact')}): {violation.get('help')}"
        f" <{violation.get('helpUrl')}>"
    ]
    for node in violation.get("nodes", []):
        target = " ".join(str(t) for t in node.get("target", []))
        lines.append(f"    at {target}: {node.get('html', '')[:200]}")
        summary = str(node.get("failureSummary", "")).replace("\n", "\n      ")
        if summary:
            lines.append(f"      {summary}")
    return "\n".join(lines)


def artifacts_dir() -> Path:
    """Where tests keep artifacts: ``$GPUPOOL_TEST_ARTIFACTS``, else ``<repo>/test-artifacts``."""
    configured = os.environ.get("GPUPOOL_TEST_ARTIFACTS", "").strip()
    return Path(configured) if configured else REPO / "test-artifacts"


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page PNG of ``page`` as ``screenshots/<name>.png`` among the test artifacts;
    its path."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "page"
    path = artifacts_dir() / "screenshots" / f"{safe}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path
