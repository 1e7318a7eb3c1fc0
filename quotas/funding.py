"""Where the money comes from and when it may be spent: funders and allocation periods."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from quotas.accounts import check_name
from quotas.errors import InvalidInput


class FunderKind(StrEnum):
    MINISTRY = "ministry"
    LOCAL_GOVERNMENT = "local_government"
    PUBLIC_CORPORATION = "public_corporation"


@dataclass(frozen=True, slots=True)
class Funder:
    """A ministry, local government or public corporation contributing money to the pool."""

    name: str
    display_name: str
    kind: FunderKind
    krw_per_credit: int = 0
    """What one credit costs this funder in won, for spend reports."""

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.krw_per_credit < 0:
            raise InvalidInput("a price per credit cannot be negative")


@dataclass(frozen=True, slots=True)
class Period:
    """An allocation period (e.g. a fiscal quarter); budgets and awards are per period."""

    name: str
    starts_at: datetime
    ends_at: datetime

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.ends_at <= self.starts_at:
            raise InvalidInput(f"period {self.name} must end after it starts")

    def contains(self, at: datetime) -> bool:
        return self.starts_at <= at < self.ends_at
