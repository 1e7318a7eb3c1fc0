"""Fixtures of the browser tests (the harness is ``tests/portal/pages/browser.py``).

- ``live_portal`` (one per module, on SQLite): the real portal and scheduler over the
  demo pool, running jobs on the session's Ray cluster; a ``LivePortal``.
- ``browser`` (one per run of this package): headless Chromium. Package-scoped, not
  session-scoped: while it is open Playwright's event loop runs on the main thread, where the
  rest of the suite calls ``asyncio.run``.
- ``page_as(user, viewport="desktop", locale="en-US")``: a new page in a browser context of its
  own, signed in as ``user`` (a demo persona, ``"admin"``, or ``None`` for nobody) through the
  real sign-in form. Its contexts close at the test's end; if the test failed, each of its pages
  is screenshotted first (``screenshots/FAILED-<test>-<n>.png``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Protocol

import pytest
from playwright.sync_api import Browser, Page
from playwright.sync_api import Error as PlaywrightError

from scheduler.embedded import EmbeddedRayCluster
from tests.conftest import new_database
from tests.portal.pages.browser import (
    LivePortal,
    Viewport,
    chromium,
    screenshot,
    serve_live_portal,
    sign_in,
    viewport_size,
)


class PageAs(Protocol):
    """What ``page_as`` is."""

    def __call__(
        self, user: str | None, viewport: Viewport = "desktop", locale: str = "en-US"
    ) -> Page:
        """A new page in a new browser context (``viewport`` "phone" 390x844, "desktop"
        1280x800, or a size; ``locale`` sets Accept-Language), signed in as ``user``."""
        ...


FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call" and report.failed:
        item.stash[FAILED] = True
    return report


@pytest.fixture(scope="module")
def live_portal(
    ray_cluster: EmbeddedRayCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LivePortal]:
    """On SQLite only: the browser drives the pages, whose reads and writes are the use cases
    the TestClient page tests (``demo``) run on both databases; a second live portal per module
    would cost the suite a minute for no new path."""
    data_dir = tmp_path_factory.mktemp("live-portal")
    with (
        new_database("sqlite", data_dir) as url,
        serve_live_portal(url, data_dir, ray_cluster.endpoint) as portal,
    ):
        yield portal


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with chromium() as opened:
        yield opened


@pytest.fixture
def page_as(
    browser: Browser, live_portal: LivePortal, request: pytest.FixtureRequest
) -> Iterator[PageAs]:
    pages: list[Page] = []

    def open_page(user: str | None, viewport: Viewport = "desktop", locale: str = "en-US") -> Page:
        context = browser.new_context(viewport=viewport_size(viewport), locale=locale)
        page = context.new_page()
        pages.append(page)
        if user is not None:
            sign_in(page, live_portal, user)
        return page

    yield open_page
    failed = request.node.stash.get(FAILED, False)
    for number, page in enumerate(pages, start=1):
        if failed and not page.is_closed():
            with contextlib.suppress(PlaywrightError):  # a page that crashed shows nothing
                screenshot(page, f"FAILED-{request.node.name}-{number}")
        page.context.close()


PAGES = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The page tests run on SQLite only: a page reads and writes through the use cases that
    the books', API and security tests run on both databases, and a second run of every page
    test on PostgreSQL cost the suite minutes for no path of its own."""
    on_postgresql = [
        item
        for item in items
        if item.path.is_relative_to(PAGES)
        and isinstance(item, pytest.Function)
        and hasattr(item, "callspec")
        and item.callspec.params.get("backend") == "postgresql"
    ]
    if on_postgresql:
        config.hook.pytest_deselected(items=on_postgresql)
        chosen = set(map(id, on_postgresql))
        items[:] = [item for item in items if id(item) not in chosen]
