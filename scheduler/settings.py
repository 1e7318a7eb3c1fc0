"""Settings of the scheduling loop (env prefix ``GPUPOOL_``), on top of the books' settings."""

from __future__ import annotations

from pydantic import Field

from quotas.settings import Settings


class SchedulerSettings(Settings):
    cycle_seconds: float = Field(default=2.0, gt=0, description="Pause between cycles.")
    wake_seconds: float = Field(
        default=0.1, gt=0, description="How often a pausing scheduler looks for new work."
    )
    charge_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often running jobs are charged for what they used."
    )
    dispatch_retry_seconds: float = Field(default=2.0, gt=0)
    dispatch_max_failures: int = Field(default=8, gt=0)
    max_time_limit_hours: float = Field(default=72.0, gt=0)
    preempt_after_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="How long an under-served job waits for capacity before it may preempt.",
    )
    min_runtime_seconds: float = Field(
        default=600.0, ge=0, description="A job runs at least this long before it is preempted."
    )
