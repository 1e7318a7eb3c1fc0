"""The limits a job is held to at submission (env prefix ``GPUPOOL_``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from quotas.quantities import parse_duration
from quotas.settings import Group


def _duration(text: str) -> str:
    parse_duration(text)  # a ValueError says what is wrong with it
    return text


class JobSettings(Group):
    """The time-limit cap, and the limit of a job that names none (Ray's Jobs API)."""

    max_time_limit_hours: float = Field(
        default=72.0, gt=0, description="The longest time limit a job may ask for."
    )
    default_time_limit: Annotated[str, AfterValidator(_duration)] = Field(
        default="1h",
        description="Time limit of a job submitted through the Ray Jobs API without "
        "metadata['time_limit'], e.g. 1h, 90m",
    )

    @property
    def max_time_limit_seconds(self) -> int:
        return int(self.max_time_limit_hours * 3600)
