"""The reports pages (being built)."""

from __future__ import annotations

from fastapi import APIRouter

from portal.scopes import Operation
from quotas.access import Scope

router = APIRouter(include_in_schema=False)

SCOPES: dict[Operation, frozenset[Scope]] = {}
