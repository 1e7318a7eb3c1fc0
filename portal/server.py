"""``gpupool serve``: the portal, the scheduler loop and (embedded default) a local Ray cluster,
in one process, stopped together by Ctrl-C or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import multiprocessing
import multiprocessing.process
import os
import pwd
import signal
import socket
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any

import anyio.to_thread
import uvicorn
from starlette.types import ASGIApp

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
    # a portal-only process (no scheduler) runs no jobs and starts no cluster
    inventory = embedded_inventory(clusters, flavors) if settings.run_scheduler else {}
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
        _run(_serve(settings, clusters, flavors, embedded.endpoint if embedded else None))
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


def _run(main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop (uvicorn's own choice of event loop, and a cheaper one per
    request than asyncio's), or asyncio's loop where uvloop is not installed."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


def limit_request_threads(threads: int) -> None:
    """Work on at most ``threads`` requests of this event loop at once (FastAPI runs blocking
    routes in anyio's worker threads); the rest wait their turn without holding a thread or a
    database connection."""
    anyio.to_thread.current_default_thread_limiter().total_tokens = threads


def listening_socket(host: str, port: int, shared: bool = False) -> socket.socket:
    """A TCP socket listening on ``host``:``port``. ``shared``: other processes may listen on
    the same port (``SO_REUSEPORT``) and the kernel spreads new connections over them, so
    each portal process gets its share of the keep-alive connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say so
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if shared:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    return listener


def _portal_server(settings: PortalSettings, app: ASGIApp) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="info", access_log=settings.access_log, lifespan="off")
    return QuietServer(config)


class PortalWorkers:
    """The portal processes beside the first (``workers`` - 1 of them), each listening on the
    same port; one that dies is started again. They serve the API only: the scheduler runs in
    the first process, and their readiness reports whether it runs."""

    def __init__(self, settings: PortalSettings, port: int, scheduler_ready: Callable[[], bool]):
        self.settings = settings.model_copy(update={"port": port})
        self.scheduler_ready = scheduler_ready
        self.context = multiprocessing.get_context("spawn")
        self.scheduler_running = self.context.Value("b", scheduler_ready())
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.listening: list[Any] = []  # one Event per process: set once it accepts

    def _start_one(self, number: int) -> tuple[multiprocessing.process.BaseProcess, Any]:
        listening = self.context.Event()
        process = self.context.Process(
            target=_run_worker,
            args=(self.settings, self.scheduler_running, listening),
            name=f"gpupool-portal-{number}",
        )
        process.start()
        return process, listening

    def start(self) -> None:
        started = [self._start_one(n) for n in range(2, self.settings.workers + 1)]
        self.processes = [process for process, _ in started]
        self.listening = [listening for _, listening in started]

    async def ready(self, seconds: float = 60.0) -> bool:
        """Wait until every process listens (False: some did not within ``seconds``)."""
        deadline = time.monotonic() + seconds
        while not all(listening.is_set() for listening in self.listening):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def watch(self) -> None:
        """Until cancelled: tell the workers whether the scheduler runs, and restart any that
        died."""
        while True:
            self.scheduler_running.value = self.scheduler_ready()
            for index, process in enumerate(self.processes):
                if not process.is_alive():
                    log.warning(
                        "%s exited (code %s); starting it again", process.name, process.exitcode
                    )
                    self.processes[index], self.listening[index] = self._start_one(index + 2)
            await asyncio.sleep(1.0)

    def stop(self, grace: float = 10.0) -> None:
        for process in self.processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests it has
        deadline = time.monotonic() + grace
        for process in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def _run_worker(settings: PortalSettings, scheduler_running: Any, listening: Any) -> None:
    """A portal process beside the first: the API on a socket of its own on the same port."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _run(_worker(settings, lambda: bool(scheduler_running.value), listening.set))


async def _worker(
    settings: PortalSettings, scheduler_ready: Callable[[], bool], listening: Callable[[], None]
) -> None:
    limit_request_threads(settings.request_threads)
    engine = make_engine(settings.database, connections=settings.request_threads)
    listener = listening_socket(settings.host, settings.port, shared=True)
    app = create_app(settings, engine, scheduler_ready=scheduler_ready)
    gc.freeze()  # what start-up made lives on: later collections need not scan it
    server = _portal_server(settings, app)
    # the first process stops it (SIGTERM); Ctrl-C in a terminal reaches that one too
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGTERM, lambda: setattr(server, "should_exit", True)
    )
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        listening()
        await serving
    finally:
        listener.close()
        engine.dispose()


async def _serve(
    settings: PortalSettings,
    clusters: Sequence[ClusterSpec],
    flavors: Mapping[str, Flavor],
    embedded: RayEndpoint | None,
) -> None:
    try:
        listener = listening_socket(settings.host, settings.port, shared=settings.workers > 1)
    except OSError as error:
        raise SystemExit(
            f"the portal could not listen on {settings.host}:{settings.port}: {error.strerror}"
        ) from error
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    limit_request_threads(settings.request_threads)
    # the request threads, the scheduler's own connections, and /readyz's
    engine = make_engine(settings.database, connections=settings.request_threads + 2)
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
    gc.freeze()  # what start-up made lives on: later collections need not scan it
    server = _portal_server(settings, app)
    api = asyncio.create_task(server.serve(sockets=[listener]))
    workers: PortalWorkers | None = None
    watching: asyncio.Task[None] | None = None
    try:
        # announce the portal once it listens (uvicorn raises a flag, it sets no event)
        while not server.started and not api.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if api.done():
            await api  # it could not start: uvicorn logged why
            raise SystemExit(f"the portal could not start on {settings.host}:{settings.port}")
        if settings.workers > 1:
            workers = PortalWorkers(settings, listener.getsockname()[1], scheduler_ready)
            workers.start()
            if not await workers.ready():
                log.warning("not every portal process listens yet; serving with those that do")
            watching = asyncio.create_task(workers.watch())
        processes = f"{settings.workers} portal processes; " if settings.workers > 1 else ""
        print(
            f"gpupool portal: {settings.base_url} (API docs {settings.base_url}/docs); "
            f"{processes}{scheduling}; Ctrl-C stops",
            flush=True,
        )
        await asyncio.wait(
            [asyncio.create_task(stop.wait()), api], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        stop.set()
        server.should_exit = True
        if watching is not None:
            watching.cancel()
        if workers is not None:
            await asyncio.to_thread(workers.stop)
        if scheduler is not None:
            scheduler.stop()
        await asyncio.gather(api, return_exceptions=True)
        if watcher is not None:
            await watcher
        listener.close()
        engine.dispose()
