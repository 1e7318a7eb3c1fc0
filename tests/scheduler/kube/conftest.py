"""``fake_apiserver``: a fresh fake kube-apiserver on 127.0.0.1 for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scheduler.kube.fake_apiserver import FakeApiServer


@pytest.fixture
def fake_apiserver() -> Iterator[FakeApiServer]:
    with FakeApiServer() as server:
        yield server
