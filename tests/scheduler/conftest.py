"""Shared fixtures for the scheduler: one real local Ray cluster for the whole test session.

The cluster is gpupool's own embedded one (``scheduler.embedded.EmbeddedRayCluster``) with a
logical inventory of 4 ``h100-80g`` and 4 ``a100-80g`` GPUs (8 GPUs, no real ones needed). It is
started once, lazily, by the first test that asks for it, and stopped at the end of the session;
its temporary directory sits directly under the system temp dir, since Ray's unix socket paths
must stay short.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.embedded import EmbeddedRayCluster

INVENTORY = {"h100-80g": 4, "a100-80g": 4}


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
