"""Benchmark: job submissions through the REST API, on PostgreSQL, with two portal workers.

A fresh PostgreSQL schema gets the demo pool and a personal access token for each researcher.
``gpupool serve`` serves it with ``--workers`` portal processes of ``--threads`` request threads
each (``GPUPOOL_WORKERS``, ``GPUPOOL_REQUEST_THREADS``), and no scheduler
(``GPUPOOL_RUN_SCHEDULER=false``: this measures the front door). A load generator keeps
``--concurrency`` requests in flight, each on a keep-alive connection of its own, each a
``POST /api/v1/jobs`` by a researcher into one of their projects with a 1-3 flavor choice, and
times every request from send to answer. After a warm-up, ``--submissions`` requests are timed.
Every answer must be 201; anything else is counted and printed.

Run from the repository root (``make bench`` does it)::

    python -m bench.submissions [--submissions 3000] [--concurrency 4]
                                [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/test]

It prints ``BENCH submissions_per_second=...``, ``BENCH submit_p50_ms=...``,
``BENCH submit_p99_ms=...``, and the CPU time per submission of the portal's processes
(``submit_portal_cpu_ms``), of the load generator (``submit_load_generator_cpu_ms``) and of
PostgreSQL's (``submit_postgres_cpu_ms``). All three share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.cycle import postgres_database
from quotas.access import Scope
from quotas.clock import utc_now
from quotas.db.migrate import upgrade
from quotas.db.session import make_engine, session_factory, transaction
from quotas.demo import demo_pool
from quotas.seed import seed_demo
from quotas.service import Books
from quotas.tokens import issue
from scheduler.embedded import free_port

DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
FLAVOR_CHOICES = (["h100-80g"], ["h100-80g", "a100-80g"], ["a100-80g", "v100-32g", "h100-80g"])


def seed(url: str) -> list[tuple[str, str]]:
    """The demo pool; returns (token, project) for each researcher membership."""
    engine = make_engine(url)
    upgrade(engine)
    pairs: list[tuple[str, str]] = []
    with transaction(session_factory(engine)) as session:
        books = Books(session)
        pool = demo_pool(utc_now())
        seed_demo(books, pool)
        for user, project, _ in pool.members:
            token = issue(session, user, "bench", [Scope.READ, Scope.JOBS], utc_now()).token
            pairs.append((token, project))
    engine.dispose()
    return pairs


async def load(
    port: int, pairs: list[tuple[str, str]], count: int, concurrency: int
) -> tuple[list[float], dict[int, int], float]:
    """Keep ``concurrency`` submissions in flight, each on a keep-alive connection of its own,
    until ``count`` are answered. Requests are written and answers read as plain HTTP/1.1 (like
    ``wrk``): a full HTTP client costs more CPU per request than the portal's own work, and on
    a 2-core machine it would measure itself."""
    latencies: list[float] = []
    failures: dict[int, int] = {}
    remaining = count

    async def worker(seed: int) -> None:
        nonlocal remaining
        rng = random.Random(seed)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while remaining > 0:
                remaining -= 1
                token, project = rng.choice(pairs)
                body = json.dumps(
                    {
                        "project": project,
                        "entrypoint": "python train.py --epochs 3",
                        "gpus": rng.choice((1, 2, 4, 8)),
                        "time_limit": rng.choice(("30m", "2h", "8h")),
                        "flavors": rng.choice(FLAVOR_CHOICES),
                    }
                ).encode()
                head = (
                    f"POST /api/v1/jobs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                started = time.perf_counter()
                writer.write(head + body)
                status = await read_answer(reader)
                latencies.append(time.perf_counter() - started)
                if status != 201:
                    failures[status] = failures.get(status, 0) + 1
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return latencies, failures, time.perf_counter() - began


async def read_answer(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 answer with a Content-Length body; return its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


def cpu_seconds(root: int | None = None, command: str | None = None) -> float:
    """CPU time (user + system) used so far by ``root`` and its descendants, or by every
    process whose command is ``command``; read from /proc (0 where there is none)."""
    ticks = os.sysconf("SC_CLK_TCK")
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    names: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        parents[pid], names[pid] = int(fields[1]), name
        # its own time and that of its children it has reaped (exited backends, for one)
        used[pid] = sum(int(value) for value in fields[11:15]) / ticks
    if command is not None:
        return sum(seconds for pid, seconds in used.items() if names[pid] == command)
    tree = {root}
    for pid in sorted(parents):
        ancestor = parents[pid]
        while ancestor not in tree and ancestor in parents and ancestor > 1:
            ancestor = parents[ancestor]
        if ancestor in tree:
            tree.add(pid)
    return sum(used.get(pid, 0.0) for pid in tree)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wait_ready(base: str, process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit("the portal exited during start-up")
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit("the portal did not start")


@contextmanager
def database(url: str, directory: Path) -> Iterator[str]:
    """A fresh SQLite file (``sqlite``), or a fresh schema on the PostgreSQL server at ``url``."""
    if url == "sqlite":
        yield f"sqlite:///{directory / 'submissions.db'}"
        return
    with postgres_database(url) as schema_url:
        yield schema_url


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.submissions", description=__doc__)
    parser.add_argument("--submissions", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="portal processes")
    parser.add_argument("--threads", type=int, default=4, help="request threads per process")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("GPUPOOL_BENCH_DATABASE_URL", DEFAULT_DATABASE),
        help="a PostgreSQL server to make a schema in, or 'sqlite' for a file of its own",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as data, database(args.database_url, Path(data)) as url:
        pairs = seed(url)
        port = free_port()
        env = {
            **os.environ,
            "GPUPOOL_DATABASE_URL": url,
            "GPUPOOL_DATA_DIR": data,
            "GPUPOOL_SESSION_SECRET": "bench",
            "GPUPOOL_PORT": str(port),
            "GPUPOOL_WORKERS": str(args.workers),
            "GPUPOOL_REQUEST_THREADS": str(args.threads),
            "GPUPOOL_RUN_SCHEDULER": "false",
            "GPUPOOL_ACCESS_LOG": "false",
        }
        portal = subprocess.Popen(
            [sys.executable, "-c", "from portal.cli import app; app()", "serve"],
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
            stdout=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_ready(base, portal)
            asyncio.run(load(port, pairs, args.warmup, args.concurrency))
            portal_before, database_before = cpu_seconds(portal.pid), cpu_seconds(None, "postgres")
            load_before = time.process_time()
            latencies, failures, elapsed = asyncio.run(
                load(port, pairs, args.submissions, args.concurrency)
            )
            load_cpu = time.process_time() - load_before
            portal_cpu = cpu_seconds(portal.pid) - portal_before
            database_cpu = cpu_seconds(None, "postgres") - database_before
        finally:
            portal.send_signal(signal.SIGINT)
            portal.wait(timeout=30)
    print(
        f"{args.submissions} submissions, {args.concurrency} in flight, {args.workers} portal "
        f"processes x {args.threads} request threads, "
        f"{'SQLite' if args.database_url == 'sqlite' else 'PostgreSQL'}; "
        f"failures: {failures or 'none'}"
    )
    print(f"BENCH submissions_per_second={len(latencies) / elapsed:.0f} 1/s")
    print(f"BENCH submit_p50_ms={percentile(latencies, 0.50) * 1000:.1f} ms")
    print(f"BENCH submit_p99_ms={percentile(latencies, 0.99) * 1000:.1f} ms")
    print(f"BENCH submit_portal_cpu_ms={portal_cpu * 1000 / len(latencies):.2f} ms")
    print(f"BENCH submit_load_generator_cpu_ms={load_cpu * 1000 / len(latencies):.2f} ms")
    if args.database_url != "sqlite":
        # every postgres process on the machine: other work beside the bench counts too
        print(f"BENCH submit_postgres_cpu_ms={database_cpu * 1000 / len(latencies):.2f} ms")


if __name__ == "__main__":
    main()
