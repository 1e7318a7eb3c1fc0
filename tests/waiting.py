"""Waiting in tests for something another process or thread will make true."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest


def eventually(
    what: str, done: Callable[[], bool], timeout: float = 30.0, every: float = 0.2
) -> None:
    """Return once ``done()`` holds; fail the test, naming ``what``, after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:g} s waiting for {what}")
        time.sleep(every)
