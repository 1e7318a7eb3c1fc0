"""The jobs' limits are a settings group of their own, read from the same flat GPUPOOL_ names
by every process that takes them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobs.settings import JobSettings
from portal.settings import PortalSettings
from scheduler.settings import SchedulerSettings


def test_the_time_limit_cap_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GPUPOOL_MAX_TIME_LIMIT_HOURS", "12")
    monkeypatch.setenv("GPUPOOL_DEFAULT_TIME_LIMIT", "90m")
    for settings in (JobSettings(), SchedulerSettings(), PortalSettings()):
        assert isinstance(settings, JobSettings)
        assert settings.max_time_limit_seconds == 12 * 3600
        assert settings.default_time_limit == "90m"


def test_a_default_time_limit_that_is_no_duration_is_refused() -> None:
    with pytest.raises(ValidationError, match="default_time_limit"):
        JobSettings(default_time_limit="soon")


def test_each_process_takes_only_the_groups_it_needs() -> None:
    scheduler = SchedulerSettings()
    assert not hasattr(scheduler, "oidc_issuer")  # sign-in is the portal's
    assert not hasattr(scheduler, "max_package_bytes")
    portal = PortalSettings(cycle_seconds=5)
    assert portal.cycle_seconds == 5  # serve runs the loop too
