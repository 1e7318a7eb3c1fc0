"""``gpupool serve``: the portal, the scheduler loop and (embedded default) a local Ray cluster,
in one process, stopped together by Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pwd
import signal
from collections.abc import Iterator, Mapping, Sequence

import uvicorn

from portal.app import create_app
from portal.settings import PortalSettings
from quotas.db.session import make_engine
from quotas.flavors import Flavor
from quotas.inventory import BackendKind, ClusterSpec, Tenancy
from scheduler.embedded import EmbeddedRayCluster, RayEndpoint, embedded_inventory
from scheduler.loop import SchedulerThread

log = logging.getLogger(__name__)


class QuietServer(uvicorn.Server):
    """uvicorn without its own signal handlers: ``serve`` stops API and scheduler together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def run_service(
    settings: PortalSettings, clusters: Sequence[ClusterSpec], flavors: Mapping[str, Flavor]
) -> None:
    """Serve until Ctrl-C or SIGTERM, with the embedded Ray cluster when a cluster needs it.

    A cluster a killed server left running on this data dir is adopted, so its jobs run on.
    """
    inventory = embedded_inventory(clusters, flavors)
    embedded = None
    if inventory:
        embedded = EmbeddedRayCluster(inventory, settings.data_dir / "ray")
        log.info(
            "starting a local Ray cluster with %d logical GPUs (%s) ...",
            sum(inventory.values()),
            ", ".join(f"{n} {r}" for r, n in inventory.items()),
        )
        embedded.start()
        served = [c.name for c in clusters if c.backend is BackendKind.RAY and not c.address]
        adopted = " (adopted: it outlived the last server; its jobs ran on)"
        print(f"Ray cluster: {embedded.address}{adopted if embedded.adopted else ''}", flush=True)
        print(_tenancy_line(served, clusters, embedded.user), flush=True)
    try:
        asyncio.run(_serve(settings, clusters, flavors, embedded.endpoint if embedded else None))
    finally:
        if embedded is not None:
            print("stopping the local Ray cluster ...", flush=True)
            embedded.stop()


def _tenancy_line(served: Sequence[str], clusters: Sequence[ClusterSpec], user: str) -> str:
    """One line on who shares the embedded cluster and whose credentials its jobs have."""
    shared = [c.name for c in clusters if c.name in served and c.tenancy is Tenancy.SHARED]
    tenancy = (
        f"tenancy: shared ({', '.join(shared)}): every tenant's jobs run side by side and can "
        "see each other's env_vars and logs; dedicate clusters or run one per job for tenants "
        "who do not trust each other"
        if shared
        else "tenancy: dedicated"
    )
    if user == pwd.getpwuid(os.geteuid()).pw_name:
        return (
            f"{tenancy}; jobs run as {user}, this service's own user, and can read its data "
            "dir: run gpupool serve as root to run them as an unprivileged user"
        )
    return f"{tenancy}; jobs run as the unprivileged user {user}"


async def _serve(
    settings: PortalSettings,
    clusters: Sequence[ClusterSpec],
    flavors: Mapping[str, Flavor],
    embedded: RayEndpoint | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    engine = make_engine(settings.database)
    scheduler: SchedulerThread | None = None
    watcher: asyncio.Task[None] | None = None
    scheduling = "no scheduler"
    if settings.run_scheduler:
        scheduler = SchedulerThread.for_clusters(engine, clusters, flavors, embedded, settings)
        scheduling = f"scheduler: {scheduler.clusters} clusters"
        scheduler.start()
        # the thread's end wakes this loop, as Ctrl-C does
        watcher = asyncio.create_task(scheduler.join())
        watcher.add_done_callback(lambda _: stop.set())

    def scheduler_ready() -> bool:
        return scheduler is not None and scheduler.running

    app = create_app(settings, engine, scheduler_ready=scheduler_ready)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="info", lifespan="off"
    )
    server = QuietServer(config)
    api = asyncio.create_task(server.serve())
    try:
        # announce the portal once it listens (uvicorn raises a flag, it sets no event)
        while not server.started and not api.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if api.done():
            await api  # it could not start (e.g. the port is taken): uvicorn logged why
            raise SystemExit(f"the portal could not listen on {settings.host}:{settings.port}")
        print(
            f"gpupool portal: {settings.base_url} (API docs {settings.base_url}/docs); "
            f"{scheduling}; Ctrl-C stops",
            flush=True,
        )
        await asyncio.wait(
            [asyncio.create_task(stop.wait()), api], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stop.set()
        server.should_exit = True
        if scheduler is not None:
            scheduler.stop()
        await asyncio.gather(api, return_exceptions=True)
        if watcher is not None:
            await watcher
        engine.dispose()
