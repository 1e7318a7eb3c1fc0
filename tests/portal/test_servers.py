"""The CLI finds a ``gpupool serve`` started on another port or data dir (``portal.servers``).

``serve`` records where it listens in its data dir (beside ``admin.token``) and in the user's
``servers.json``; a client with no URL takes it from there, with that server's admin token. A
record left by a server that stopped makes a clear error naming what was tried.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from portal.cli import app
from portal.servers import REGISTRY_FILE, SERVER_FILE, ServerRecord
from scheduler.embedded import free_port

START_SECONDS = 60


class Served:
    def __init__(self, process: subprocess.Popen[str], data_dir: Path, config: Path, port: int):
        self.process = process
        self.data_dir = data_dir
        self.config = config
        self.port = port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """``gpupool serve`` (the portal alone: no scheduler, so no Ray) on a free port, with its
    data dir and the user's config dir in ``tmp_path``. A port found free can be taken before
    the portal binds it (by another test worker's Ray processes): then another port is tried."""
    data_dir, config = tmp_path / "pool", tmp_path / "config"
    for _ in range(3):
        port = free_port()
        process, lines = start_serving(tmp_path, data_dir, config, port)
        if process is not None:
            break
        assert "Address already in use" in "".join(lines), "serve exited early:\n" + "".join(lines)
    assert process is not None, "no free port stayed free:\n" + "".join(lines)
    try:
        deadline = time.monotonic() + START_SECONDS
        while not (data_dir / SERVER_FILE).exists():  # written just after it says so
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        yield Served(process, data_dir, config, port)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()


def start_serving(
    tmp_path: Path, data_dir: Path, config: Path, port: int
) -> tuple[subprocess.Popen[str] | None, list[str]]:
    """The serving process once it says it listens, or None (and what it said) if it exited."""
    gpupool = Path(sys.executable).parent / "gpupool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")} | {
        "GPUPOOL_RUN_SCHEDULER": "false",
        "GPUPOOL_CONFIG_DIR": str(config),
    }
    process = subprocess.Popen(
        [str(gpupool), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + START_SECONDS
    lines: list[str] = []
    while not any(line.startswith("gpupool portal:") for line in lines):
        if time.monotonic() >= deadline:
            process.kill()
            raise AssertionError("".join(lines))
        line = process.stdout.readline()
        if not line:
            process.wait()
            return None, lines
        lines.append(line)
    return process, lines


def gpupool(*args: str, cwd: Path, **env: str | None) -> Result:
    """The CLI over the network, as a user in ``cwd`` with no GPUPOOL_ setting but ``env``."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("GPUPOOL_")}
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        return CliRunner().invoke(app, list(args), env=unset | env)
    finally:
        os.chdir(previous)


def test_a_plain_command_finds_the_server_started_last(served: Served, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    found = gpupool("whoami", cwd=elsewhere, GPUPOOL_CONFIG_DIR=str(served.config))
    by_data_dir = gpupool(
        "--data-dir", str(served.data_dir), "whoami", cwd=elsewhere, GPUPOOL_CONFIG_DIR=None
    )
    by_env = gpupool("jobs", cwd=elsewhere, GPUPOOL_DATA_DIR=str(served.data_dir))

    assert found.exit_code == 0, found.output
    assert found.output.startswith("user: admin")
    assert by_data_dir.exit_code == 0, by_data_dir.output
    assert by_data_dir.output.startswith("user: admin")
    assert by_env.exit_code == 0, by_env.output
    record = json.loads((served.data_dir / SERVER_FILE).read_text())
    assert record["url"] == f"http://127.0.0.1:{served.port}"
    assert record["pid"] == served.process.pid
    for path in (served.data_dir / SERVER_FILE, served.config / REGISTRY_FILE):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_server_that_stops_takes_its_records_away(served: Served) -> None:
    served.process.send_signal(signal.SIGINT)
    served.process.communicate(timeout=30)

    assert not (served.data_dir / SERVER_FILE).exists()
    assert json.loads((served.config / REGISTRY_FILE).read_text()) == []


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def killed_server(data_dir: Path, config: Path) -> ServerRecord:
    """The records a killed server left behind: they name a process that is gone."""
    data_dir.mkdir(parents=True)
    (data_dir / "admin.token").write_text("gpp_000000000000_admin\n")
    url = f"http://127.0.0.1:{free_port()}"
    record = ServerRecord(url, str(data_dir), dead_pid(), "2026-12-01T09:00:00+00:00")
    (data_dir / SERVER_FILE).write_text(json.dumps(asdict(record)))
    config.mkdir(parents=True)
    (config / REGISTRY_FILE).write_text(json.dumps([asdict(record)]))
    return record


def test_a_stale_record_in_the_data_dir_is_a_clear_error(tmp_path: Path) -> None:
    stale = killed_server(tmp_path / "pool", tmp_path / "config")

    result = gpupool("--data-dir", str(tmp_path / "pool"), "jobs", cwd=tmp_path)

    assert result.exit_code == 4, result.output
    assert f"cannot reach the portal at {stale.url}" in result.output
    assert f"{tmp_path / 'pool' / SERVER_FILE}, written by gpupool serve (pid {stale.pid})" in (
        result.output.replace("\n", "")
    )
    assert "no longer running" in result.output
    assert "Traceback" not in result.output


def test_only_stale_servers_in_the_registry_are_named_as_tried(tmp_path: Path) -> None:
    stale = killed_server(tmp_path / "pool", tmp_path / "config")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    result = gpupool("jobs", cwd=elsewhere, GPUPOOL_CONFIG_DIR=str(tmp_path / "config"))

    output = " ".join(result.output.split())
    assert result.exit_code == 3, result.output
    assert "not signed in: run `gpupool login`" in output
    assert f"{stale.url} (data dir {stale.data_dir}, pid {stale.pid}" in output
    assert "no longer running" in output
