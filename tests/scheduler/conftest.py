"""The scheduler tests' Ray cluster is the session's ``ray_cluster`` (``tests/conftest.py``),
shared with the portal's Ray Jobs API tests; its logical inventory is re-exported here."""

from __future__ import annotations

from tests.conftest import INVENTORY

__all__ = ["INVENTORY"]
