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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio.to_thread
import uvicorn
from starlette.types import ASGIApp

from portal.app import create_app
from portal.client import ClientSettings
from portal.servers import ServerRecord, announce, local_url, withdraw
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


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP named: asyncio turns Nagle off (TCP_NODELAY) only on sockets that say so
    listener = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    return listener


def _protocols(server: uvicorn.Server) -> Callable[[], asyncio.Protocol]:
    """What a started ``server`` makes of each connection it accepts (as its own
    ``startup`` does), for connections it is handed rather than accepts."""
    config = server.config
    loop = asyncio.get_running_loop()

    def protocol() -> asyncio.Protocol:
        made: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
            config=config,
            server_state=server.server_state,
            app_state=server.lifespan.state,
            _loop=loop,
        )
        return made

    return protocol


def _serve_connection(server: uvicorn.Server, connection: socket.socket) -> None:
    connection.setblocking(False)
    loop = asyncio.get_running_loop()
    task = loop.create_task(loop.connect_accepted_socket(_protocols(server), connection))
    _handing.add(task)
    task.add_done_callback(_handing.discard)


_handing: set[asyncio.Task[Any]] = set()
"""Connections being handed to their protocol (kept referenced until they are)."""


def _portal_server(settings: PortalSettings, app: ASGIApp) -> uvicorn.Server:
    config = uvicorn.Config(app, log_level="info", access_log=settings.access_log, lifespan="off")
    return QuietServer(config)


@dataclass
class _Worker:
    process: multiprocessing.process.BaseProcess
    channel: socket.socket
    """Our end of a Unix socket pair: each connection handed to the process goes over it."""
    listening: Any
    """A multiprocessing Event, set once the process serves."""


class PortalWorkers:
    """The portal processes beside the first (``workers`` - 1 of them). The first accepts
    every connection on the port and deals them out in turn, itself included (as Node's
    cluster module does): the kernel's own spreading over ``SO_REUSEPORT`` sockets, by a hash
    of each connection, gave one process 15 of 32 keep-alive connections and another none.
    One that dies is started again. They serve the API only: the scheduler runs in the first
    process, and their readiness reports whether it runs."""

    def __init__(self, settings: PortalSettings, scheduler_ready: Callable[[], bool]):
        self.settings = settings
        self.scheduler_ready = scheduler_ready
        self.context = multiprocessing.get_context("spawn")
        self.scheduler_running = self.context.Value("b", scheduler_ready())
        self.workers: list[_Worker] = []
        self.turn = 0

    def _start_one(self, number: int) -> _Worker:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        listening = self.context.Event()
        process = self.context.Process(
            target=_run_worker,
            args=(self.settings, self.scheduler_running, listening, theirs),
            name=f"gpupool-portal-{number}",
        )
        process.start()
        theirs.close()
        ours.setblocking(False)
        return _Worker(process, ours, listening)

    def start(self) -> None:
        self.workers = [self._start_one(n) for n in range(2, self.settings.workers + 1)]

    @property
    def processes(self) -> list[multiprocessing.process.BaseProcess]:
        return [worker.process for worker in self.workers]

    def deal(self, listener: socket.socket, server: uvicorn.Server) -> None:
        """Accept what waits on ``listener`` and hand each connection to the next process in
        turn; the first process (``server``) keeps its turns, and those of a process not
        serving yet or not taking it."""
        while True:
            try:
                connection, _ = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # out of file descriptors, say: try again on the next
                log.warning("could not accept a connection: %s", error)
                return
            self.turn = (self.turn + 1) % (len(self.workers) + 1)
            if self.turn and self._hand(self.workers[self.turn - 1], connection):
                connection.close()  # the other process holds it now
            else:
                _serve_connection(server, connection)

    @staticmethod
    def _hand(worker: _Worker, connection: socket.socket) -> bool:
        if not worker.listening.is_set():
            return False
        try:
            socket.send_fds(worker.channel, [b"c"], [connection.fileno()])
        except OSError:  # it died or is stuck: its turn is served here
            return False
        return True

    async def ready(self, seconds: float = 60.0) -> bool:
        """Wait until every process listens (False: some did not within ``seconds``)."""
        deadline = time.monotonic() + seconds
        while not all(worker.listening.is_set() for worker in self.workers):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    async def watch(self) -> None:
        """Until cancelled: tell the workers whether the scheduler runs, and restart any that
        died."""
        while True:
            self.scheduler_running.value = self.scheduler_ready()
            for index, worker in enumerate(self.workers):
                if not worker.process.is_alive():
                    log.warning(
                        "%s exited (code %s); starting it again",
                        worker.process.name,
                        worker.process.exitcode,
                    )
                    worker.channel.close()
                    self.workers[index] = self._start_one(index + 2)
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
        for worker in self.workers:
            worker.channel.close()


def _run_worker(
    settings: PortalSettings, scheduler_running: Any, listening: Any, channel: socket.socket
) -> None:
    """A portal process beside the first: the API, on connections the first hands it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _run(_worker(settings, lambda: bool(scheduler_running.value), listening.set, channel))


async def _worker(
    settings: PortalSettings,
    scheduler_ready: Callable[[], bool],
    listening: Callable[[], None],
    channel: socket.socket,
) -> None:
    limit_request_threads(settings.request_threads)
    engine = make_engine(settings.database, connections=settings.request_threads)
    app = create_app(settings, engine, scheduler_ready=scheduler_ready)
    gc.freeze()  # what start-up made lives on: later collections need not scan it
    server = _portal_server(settings, app)
    loop = asyncio.get_running_loop()
    # the first process stops it (SIGTERM); Ctrl-C in a terminal reaches that one too
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    loop.add_signal_handler(signal.SIGTERM, lambda: setattr(server, "should_exit", True))

    def receive() -> None:
        try:
            message, descriptors, _, _ = socket.recv_fds(channel, 16, 16)
        except (BlockingIOError, InterruptedError):
            return
        if not message:  # the first process is gone: so is this one
            loop.remove_reader(channel.fileno())
            server.should_exit = True
            return
        for descriptor in descriptors:
            _serve_connection(server, socket.socket(fileno=descriptor))

    channel.setblocking(False)
    serving = asyncio.create_task(server.serve(sockets=[]))
    try:
        while not server.started and not serving.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        loop.add_reader(channel.fileno(), receive)
        listening()
        await serving
    finally:
        channel.close()
        engine.dispose()


async def _serve(
    settings: PortalSettings,
    clusters: Sequence[ClusterSpec],
    flavors: Mapping[str, Flavor],
    embedded: RayEndpoint | None,
) -> None:
    try:
        listener = listening_socket(settings.host, settings.port)
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
    dealt = settings.workers > 1  # this process accepts and deals connections out itself
    api = asyncio.create_task(server.serve(sockets=[] if dealt else [listener]))
    workers: PortalWorkers | None = None
    watching: asyncio.Task[None] | None = None
    registry = ClientSettings().config_dir
    record: ServerRecord | None = None
    try:
        # announce the portal once it listens (uvicorn raises a flag, it sets no event)
        while not server.started and not api.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if api.done():
            await api  # it could not start: uvicorn logged why
            raise SystemExit(f"the portal could not start on {settings.host}:{settings.port}")
        if dealt:
            workers = PortalWorkers(settings, scheduler_ready)
            workers.start()
            listener.setblocking(False)
            loop.add_reader(listener.fileno(), workers.deal, listener, server)
            if not await workers.ready():
                log.warning("not every portal process serves yet; the first serves their turns")
            watching = asyncio.create_task(workers.watch())
        processes = f"{settings.workers} portal processes; " if settings.workers > 1 else ""
        print(
            f"gpupool portal: {settings.base_url} (API docs {settings.base_url}/docs); "
            f"{processes}{scheduling}; Ctrl-C stops",
            flush=True,
        )
        # where the CLI on this machine finds this server (portal.servers)
        url = local_url(settings.host, listener.getsockname()[1])
        record = announce(settings.data_dir, registry, url, datetime.now(UTC))
        await asyncio.wait(
            [asyncio.create_task(stop.wait()), api], return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        if record is not None:
            withdraw(record, registry)
        stop.set()
        server.should_exit = True
        if dealt:
            loop.remove_reader(listener.fileno())
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
