"""A killed server must not leave its Ray cluster behind, nor run any job twice.

``gpupool serve`` runs the portal, the scheduler and the embedded Ray cluster. Killed with
SIGKILL while jobs run, its cluster (in a process session of its own) lives on; started again on
the same data dir, the server adopts that cluster, so the jobs finish where they run, once, and
are charged once. The test does exactly that with the real ``gpupool serve`` and real Ray.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from scheduler.embedded import STATE_FILE, ClusterState, free_port, session_process_tree
from tests.waiting import eventually

START_SECONDS = 180
JOBS = 3


class Served:
    """One ``gpupool serve`` process and what it printed."""

    def __init__(self, data_dir: Path, port: int) -> None:
        gpupool = Path(sys.executable).parent / "gpupool"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
        env["GPUPOOL_CYCLE_SECONDS"] = "0.5"
        self.process = subprocess.Popen(
            [str(gpupool), "serve", "--demo", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        assert self.process.stdout is not None
        deadline = time.monotonic() + START_SECONDS
        while not any(line.startswith("gpupool portal:") for line in self.lines):
            assert time.monotonic() < deadline, "".join(self.lines)
            line = self.process.stdout.readline()
            assert line, "serve exited early:\n" + "".join(self.lines)
            self.lines.append(line)

    def printed(self, start: str) -> list[str]:
        return [line for line in self.lines if line.startswith(start)]


def states(base: str, headers: dict[str, str], ids: list[str]) -> dict[str, str]:
    return {
        job_id: httpx.get(f"{base}/api/v1/jobs/{job_id}", headers=headers, timeout=10).json()[
            "state"
        ]
        for job_id in ids
    }


def test_a_killed_server_adopts_its_cluster_and_runs_no_job_twice(
    tmp_path: Path, job_dir: Path
) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    first = Served(data_dir, port)
    second: Served | None = None
    try:
        [token_line] = first.printed("Admin token: ")
        headers = {"Authorization": f"Bearer {token_line.split(': ', 1)[1].strip()}"}
        assert first.printed("tenancy: shared")  # said once, at start
        markers = [job_dir / f"run-{uuid.uuid4().hex[:8]}" for _ in range(JOBS)]
        ids = []
        for marker in markers:
            code = (
                f"import time; open({str(marker)!r}, 'a').write('start\\n'); time.sleep(10); "
                f"open({str(marker)!r}, 'a').write('done\\n')"
            )
            submitted = httpx.post(
                f"{base}/api/v1/jobs",
                json={
                    "project": "kaist-nlp",
                    "entrypoint": f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}",
                    "gpus": 1,
                    "time_limit": "10m",
                },
                headers=headers,
                timeout=10,
            )
            assert submitted.status_code == 201, submitted.text
            ids.append(submitted.json()["job"]["id"])
        eventually("every job to start", lambda: all(m.exists() for m in markers), 120, 0.5)
        cluster = ClusterState.load(data_dir / "ray" / STATE_FILE)
        assert cluster is not None
        pids = set(session_process_tree(cluster.session_id))

        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=30)
        assert set(session_process_tree(cluster.session_id)) & pids  # the orphan lives on

        second = Served(data_dir, port)
        assert second.printed("Ray cluster: ")[0].rstrip().endswith("its jobs ran on)")
        eventually(
            "every job to succeed",
            lambda: set(states(base, headers, ids).values()) == {"succeeded"},
            120,
            0.5,
        )
        runs = {marker.name: marker.read_text().split() for marker in markers}
        assert runs == {marker.name: ["start", "done"] for marker in markers}
    finally:
        for served in (first, second):
            if served is not None and served.process.poll() is None:
                served.process.send_signal(signal.SIGINT)
                served.process.communicate(timeout=60)
    assert second is not None
    assert second.process.returncode == 0
    assert not (data_dir / "ray" / STATE_FILE).exists()
    assert not session_process_tree(cluster.session_id)  # stopped, every process of it
