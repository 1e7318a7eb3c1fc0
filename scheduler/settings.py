"""Settings of the scheduling loop (env prefix ``GPUPOOL_``), in groups by meaning; the
scheduler takes them with the books' storage and fair share and the jobs' limits."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr

from jobs.settings import JobSettings
from quotas.packages import Retention
from quotas.settings import FairShareSettings, Group, StorageSettings


class LoopSettings(Group):
    """How often the loop runs and wakes, and how it dispatches."""

    cycle_seconds: float = Field(default=2.0, gt=0, description="Pause between cycles.")
    wake_seconds: float = Field(
        default=0.1, gt=0, description="How often a pausing scheduler looks for new work."
    )
    starting_watch_seconds: float = Field(
        default=30.0,
        ge=0,
        description="For how long after its launch a starting job is polled every "
        "wake_seconds, to see it run at once; after that, once a cycle.",
    )
    decide_every_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A queue whose inputs did not change is decided again at least this "
        "often, so estimated starts stay fresh.",
    )
    dispatch_retry_seconds: float = Field(default=2.0, gt=0)
    dispatch_max_failures: int = Field(default=8, gt=0)
    dispatch_concurrency: int = Field(
        default=16, gt=0, description="How many launches a cycle has in flight at once."
    )


class ChargingSettings(Group):
    """How often what runs is charged."""

    charge_interval_seconds: float = Field(
        default=60.0, gt=0, description="How often running jobs are charged for what they used."
    )


class PreemptionSettings(Group):
    """When an under-served job may stop borrowed or opportunistic work."""

    preempt_after_seconds: float = Field(
        default=1800.0,
        gt=0,
        description="How long an under-served job waits for capacity before it may preempt.",
    )
    min_runtime_seconds: float = Field(
        default=600.0, ge=0, description="A job runs at least this long before it is preempted."
    )


class BurstSettings(Group):
    """When a job may burst to a cloud burst target."""

    burst_wait_seconds: int = Field(
        default=600,
        ge=0,
        description="How long a job waits for the pooled (national) clusters to start it "
        "before it may burst to a cloud target, if its project may burst.",
    )


class PackageCleanupSettings(Group):
    """Uploaded packages are removed once no job needs them (``quotas.packages``)."""

    package_cleanup_seconds: float = Field(
        default=3600.0, gt=0, description="How often packages no job needs are looked for."
    )
    package_retention_hours: float = Field(
        default=7 * 24.0,
        ge=0,
        description="How long a package is kept after the newest job that named it ended.",
    )
    package_grace_hours: float = Field(
        default=24.0,
        ge=0,
        description="How long a package is kept after its upload, even if no job names it.",
    )

    @property
    def package_retention(self) -> Retention:
        return Retention(
            after_last_job=timedelta(hours=self.package_retention_hours),
            grace=timedelta(hours=self.package_grace_hours),
        )


class ClusterSettings(Group):
    """How the scheduler reaches and watches the clusters."""

    stray_jobs_check_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often each cluster is searched for jobs the books do not know (jobs "
        "submitted around gpupool), which are stopped.",
    )
    health_check_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often each national cluster's backend is asked which nodes are up; "
        "declared nodes it does not report up (cordoned, NotReady) are recorded as down, nothing "
        "is placed on them, and the utilisation report counts them as down.",
    )
    health_check_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a backend may take to say which nodes are up; one that does not "
        "answer is not taken to be down.",
    )
    ray_auth_tokens: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="Ray's auth token per Ray cluster address (``GPUPOOL_RAY_AUTH_TOKENS`` as a "
        "JSON object), for clusters run with RAY_AUTH_MODE=token; a secret, never stored in the "
        "database. The embedded cluster's own token is kept in the data dir.",
    )

    def ray_tokens(self) -> dict[str, str]:
        """Each configured cluster address's token, in the clear for the backend's client."""
        return {
            address: token.get_secret_value() for address, token in self.ray_auth_tokens.items()
        }


class SchedulerSettings(
    StorageSettings,
    FairShareSettings,
    JobSettings,
    LoopSettings,
    ChargingSettings,
    PreemptionSettings,
    BurstSettings,
    PackageCleanupSettings,
    ClusterSettings,
):
    """What the scheduler takes: the books' storage and fair share, the jobs' limits, and the
    loop's groups."""
