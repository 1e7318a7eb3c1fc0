"""What a job owes: GPU-time at the rate recorded at its admission, never past its time limit."""

from __future__ import annotations

from datetime import datetime

from quotas.jobs import Job
from quotas.quantities import Rate


def run_seconds(job: Job, until: datetime) -> int:
    """Whole seconds the job has run by ``until``, capped at its time limit."""
    if job.started_at is None:
        return 0
    seconds = int((until - job.started_at).total_seconds())
    return max(0, min(seconds, job.spec.time_limit_seconds))


def owed_milli(job: Job, until: datetime) -> int:
    """Milli-credits the run has cost by ``until`` (rounded up, so it never exceeds the hold)."""
    if job.placed is None:
        return 0
    return Rate(job.placed.rate_milli).cost(job.spec.gpus, run_seconds(job, until)).milli
