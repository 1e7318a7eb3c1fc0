"""Attacks on gpupool as a hostile tenant would make them; each test fails if its hole reopens.

The portal fixtures (``demo``: a seeded demo pool with a token per demo user) come from
``tests/portal/conftest.py``; ``ray_pool`` (the scheduler on the session's real Ray cluster)
from ``tests/scheduler/test_ray_cycle.py``.
"""

from tests.portal.conftest import *  # noqa: F403 - the demo portal fixtures
from tests.scheduler.test_ray_cycle import ray_pool  # noqa: F401 - a fixture
