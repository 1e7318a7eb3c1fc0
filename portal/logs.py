"""Reading a job's output from the cluster it runs on.

This is the one place the portal talks to a cluster, and it only reads: logs live with the
job on its cluster, as Ray's own dashboard serves them. Starting and stopping jobs stays with
the scheduler.
"""

from __future__ import annotations

import asyncio

from portal.deps import Portal
from quotas.flavors import Flavor
from quotas.inventory import ClusterSpec
from quotas.jobs import Job
from scheduler.backends.base import BackendError
from scheduler.backends.registry import build_backends, close_backends
from scheduler.embedded import embedded_endpoint


class LogsUnavailable(Exception):
    """The cluster the job ran on cannot be reached, or no longer has the job."""


async def read_logs(portal: Portal, job: Job) -> str:
    """The job's output so far; empty if it has not started yet."""
    if job.placed is None:
        return ""
    cluster = job.placed.cluster

    def catalogue() -> tuple[list[ClusterSpec], dict[str, Flavor]]:
        with portal.books() as books:
            return books.clusters.all(), books.flavors.all()

    clusters, flavors = await asyncio.to_thread(catalogue)
    backends = build_backends(
        clusters,
        flavors,
        embedded_endpoint(portal.settings.data_dir),
        portal.settings.ray_tokens(),
    )
    try:
        backend = backends.get(cluster)
        if backend is None:
            raise LogsUnavailable(f"cluster {cluster} is not reachable from the portal")
        try:
            return await backend.logs(job.submission_id)
        except BackendError as error:
            raise LogsUnavailable(f"logs of {job.id} are not available: {error}") from error
    finally:
        await close_backends(backends)
