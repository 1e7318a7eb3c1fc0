"""``gpupool serve --demo`` (what ``make run`` runs): one command gives a working portal.

It starts the portal, the scheduler and a local Ray cluster, prints the admin token once and
keeps it in ``<data dir>/admin.token`` (0600); a job submitted over HTTP runs on Ray; Ctrl-C
stops everything, the Ray cluster included.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx

from scheduler.embedded import STATE_FILE, free_port
from tests.waiting import eventually

START_SECONDS = 120


def _serve_demo(
    data_dir: Path, port: int, **settings: str
) -> tuple[subprocess.Popen[str], list[str]]:
    """``gpupool serve --demo`` with ``settings`` (and no other GPUPOOL_ variable), once it
    announced the portal; the lines it printed until then."""
    gpupool = Path(sys.executable).parent / "gpupool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")} | settings
    process = subprocess.Popen(
        [str(gpupool), "serve", "--demo", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + START_SECONDS
    try:
        while not any(line.startswith("gpupool portal:") for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = process.stdout.readline()
            assert line, "serve exited early:\n" + "".join(lines)
            lines.append(line)
    except BaseException:
        process.kill()
        process.communicate()
        raise
    return process, lines


def test_serve_demo_gives_a_working_portal_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    process, lines = _serve_demo(tmp_path, port)
    deadline = time.monotonic() + START_SECONDS
    try:
        token_lines = [line for line in lines if line.startswith("Admin token: ")]
        token = token_lines[0].split(": ", 1)[1].strip()
        token_file = tmp_path / "admin.token"
        base = f"http://127.0.0.1:{port}"
        headers = {"Authorization": f"Bearer {token}"}

        ready = httpx.get(f"{base}/readyz", timeout=10)
        submitted = httpx.post(
            f"{base}/api/v1/jobs",
            json={"project": "kaist-nlp", "entrypoint": "echo from-gpupool", "gpus": 1},
            headers=headers,
            timeout=10,
        )
        job_id = submitted.json()["job"]["id"]
        state = "queued"
        while state not in ("succeeded", "failed") and time.monotonic() < deadline:
            time.sleep(0.5)
            state = httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=headers, timeout=10).json()[
                "state"
            ]
        logs = httpx.get(f"{base}/api/v1/jobs/{job_id}/logs", headers=headers, timeout=10).text

        assert len(token_lines) == 1
        assert token_file.read_text().strip() == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert ready.status_code == 200, ready.text
        assert submitted.status_code == 201, submitted.text
        assert state == "succeeded"
        assert "from-gpupool" in logs
        assert (tmp_path / "ray" / STATE_FILE).exists()
        assert any(line.startswith("tenancy: shared") for line in lines)
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert "stopping the local Ray cluster" in rest
    assert not (tmp_path / "ray" / STATE_FILE).exists()


def _listeners(port: int) -> int:
    """Sockets listening on ``port`` (IPv4), from /proc/net/tcp."""
    return len(_sockets(port, "0A"))


def _sockets(port: int, state: str) -> set[str]:
    """The inodes of IPv4 sockets on local ``port`` in ``state`` (0A listening, 01 open)."""
    found: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
            found.add(fields[9])
    return found


def _held_by(pid: int, inodes: set[str]) -> int:
    """How many of the sockets ``inodes`` process ``pid`` holds."""
    held = 0
    for descriptor in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


def _portal_children(parent: int) -> set[int]:
    """The spawned portal processes of ``parent`` (not multiprocessing's resource tracker)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        ppid = int(stat_line[stat_line.rindex(")") + 2 :].split()[1])
        if ppid == parent and b"spawn_main" in command and b"resource_tracker" not in command:
            found.add(int(entry.name))
    return found


def test_serve_with_workers_deals_connections_in_turn_restarts_a_dead_one_and_stops_all(
    tmp_path: Path,
) -> None:
    port = free_port()
    process, lines = _serve_demo(
        tmp_path,
        port,
        GPUPOOL_WORKERS="3",
        GPUPOOL_RUN_SCHEDULER="false",
        GPUPOOL_ACCESS_LOG="false",
    )
    try:
        token = next(line for line in lines if line.startswith("Admin token: ")).split(": ")[1]
        headers = {"Authorization": f"Bearer {token.strip()}"}
        assert "3 portal processes" in lines[-1]
        assert _listeners(port) == 1
        workers = _portal_children(process.pid)
        assert len(workers) == 2

        # a portal-only process is ready with its database: it runs no scheduler to wait for
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"] == {"database": "ok"}

        # 24 keep-alive connections, dealt out in turn: every process holds 8 and answers
        clients = [
            httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=10)
            for _ in range(24)
        ]
        try:
            for client in clients:
                assert client.get("/api/v1/me").status_code == 200
            open_here = _sockets(port, "01")
            held = sorted(_held_by(pid, open_here) for pid in {process.pid, *workers})
            assert held == [8, 8, 8]
            for client in clients:  # and each goes on answering on its connection
                assert client.get("/api/v1/me").status_code == 200
        finally:
            for client in clients:
                client.close()

        killed = min(workers)
        os.kill(killed, signal.SIGKILL)
        eventually(
            "the dead portal process to be started again",
            lambda: len(_portal_children(process.pid) - {killed}) == 2,
            60,
        )
        for _ in range(6):  # its turns are served, before and after it is back
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
                assert client.get("/api/v1/me", timeout=10).status_code == 200
        workers |= _portal_children(process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=60)
    assert process.returncode == 0, rest
    assert "exited (code -9); starting it again" in rest
    assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]  # none orphaned
    assert _listeners(port) == 0
