"""Reading a job's output from the cluster it runs on: the one reader both APIs use.

Reading only: logs live with the job on its cluster, as Ray's own dashboard serves them;
starting and stopping jobs stays with the scheduler. ``follow`` streams a job's output until it
ends, across relaunches: a job preempted and admitted again runs under a new submission id, and
its output starts over from that launch.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from jobs.model import Job
from quotas.db.session import transaction
from quotas.flavors import Flavor
from quotas.inventory import ClusterSpec
from quotas.service import Books
from scheduler.backends.base import BackendError
from scheduler.backends.registry import Reachable, build_backends, close_backends
from scheduler.embedded import embedded_endpoint


class LogsUnavailable(Exception):
    """The cluster the job ran on cannot be reached, or no longer has the job."""


@dataclass(frozen=True)
class LogReader:
    """Reads jobs' output through the backends of the clusters the books declare: configured
    Ray clusters with ``ray_tokens``, and the embedded cluster ``gpupool serve`` keeps in
    ``data_dir`` (looked up at each read, since it may have been restarted)."""

    factory: sessionmaker[Session]
    data_dir: Path
    ray_tokens: Mapping[str, str]

    def _catalogue(self) -> tuple[list[ClusterSpec], dict[str, Flavor]]:
        with transaction(self.factory) as session:
            books = Books(session)
            return books.clusters.all(), books.flavors.all()

    async def read(self, job: Job) -> str:
        """The output of the job's current launch so far; empty if it has not been placed."""
        if job.placed is None:
            return ""
        cluster = job.placed.cluster
        clusters, flavors = await asyncio.to_thread(self._catalogue)
        reachable = Reachable(embedded_endpoint(self.data_dir), self.ray_tokens)
        backends = build_backends([c for c in clusters if c.name == cluster], flavors, reachable)
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

    async def follow(
        self,
        job: Job,
        refresh: Callable[[Job], Awaitable[Job]],
        poll_seconds: float,
        stopped: Callable[[], bool] = lambda: False,
    ) -> AsyncIterator[str]:
        """The job's output as it is written, until it ends (or ``stopped()``).

        ``refresh`` reads the job again (and may refuse, if the reader lost access). Each
        launch's output is streamed from its start: after a relaunch the new output follows
        what the earlier launch wrote. A cluster that cannot be reached for a while yields
        nothing until it can.
        """
        sent = 0
        launch = job.submission_id
        while not stopped():
            if job.submission_id != launch:
                sent, launch = 0, job.submission_id
            try:
                text = await self.read(job)
            except LogsUnavailable:
                text = ""
            if len(text) > sent:
                yield text[sent:]
                sent = len(text)
            if job.state.is_terminal:
                return
            await asyncio.sleep(poll_seconds)
            job = await refresh(job)
