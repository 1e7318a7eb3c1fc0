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

START_SECONDS = 120


def test_serve_demo_gives_a_working_portal_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    gpupool = Path(sys.executable).parent / "gpupool"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPOOL_")}
    process = subprocess.Popen(
        [str(gpupool), "serve", "--demo", "--port", str(port), "--data-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + START_SECONDS
        while not any(line.startswith("gpupool portal:") for line in lines):
            assert time.monotonic() < deadline, "".join(lines)
            line = process.stdout.readline()
            assert line, "serve exited early:\n" + "".join(lines)
            lines.append(line)
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
