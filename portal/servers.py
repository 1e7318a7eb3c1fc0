"""Where a running ``gpupool serve`` listens, so that the CLI finds it without being told.

Once the portal listens, ``serve`` writes a record of itself (its URL, data dir, process and
start) in two places, each readable by its owner only (0600):

* ``<data dir>/server.json``, beside ``admin.token``: a client given that data dir
  (``--data-dir``, ``GPUPOOL_DATA_DIR``) takes the URL and the admin token from there;
* ``$GPUPOOL_CONFIG_DIR/servers.json`` (default ``~/.config/gpupool``): every server this user
  started on this machine, newest first, so that a plain ``gpupool jobs`` in any directory
  finds the one started last.

A server that stops takes its records away; one that was killed leaves them behind. Such a
stale record is told by its process no longer running (or another server on its data dir
since), and a client that finds only stale ones says which it tried.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from quotas.settings import write_private

SERVER_FILE = "server.json"
REGISTRY_FILE = "servers.json"
WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}  # noqa: S104 - read, not bound


@dataclass(frozen=True, slots=True)
class ServerRecord:
    """One running ``gpupool serve``: where a client on this machine reaches it."""

    url: str
    data_dir: str
    """Absolute: the record means the same from any working directory."""
    pid: int
    started_at: str

    @property
    def running(self) -> bool:
        """Whether its process still runs (this machine's: the records are per user and host)."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def describe(self) -> str:
        return f"{self.url} (data dir {self.data_dir}, pid {self.pid}, started {self.started_at})"


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine uses for a portal bound to ``host``:``port``."""
    address = WILDCARDS.get(host, host)
    if ":" in address and not address.startswith("["):
        address = f"[{address}]"
    return f"http://{address}:{port}"


def _parse(found: Any) -> ServerRecord | None:
    if not isinstance(found, dict):
        return None
    try:
        return ServerRecord(
            url=str(found["url"]),
            data_dir=str(found["data_dir"]),
            pid=int(found["pid"]),
            started_at=str(found["started_at"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def server_in(data_dir: Path) -> ServerRecord | None:
    """The record a server left in ``data_dir``, if any (stale or not)."""
    return _parse(_read_json(data_dir / SERVER_FILE))


def registered(config_dir: Path) -> list[ServerRecord]:
    """The servers this user started, newest first (stale ones too)."""
    found = _read_json(config_dir / REGISTRY_FILE)
    if not isinstance(found, list):
        return []
    return [record for record in map(_parse, found) if record is not None]


def announce(data_dir: Path, config_dir: Path, url: str, started: datetime) -> ServerRecord:
    """Record that this process serves ``data_dir`` at ``url``: in the data dir, and first in
    the user's registry (which forgets servers no longer running and this data dir's last)."""
    record = ServerRecord(url, str(data_dir.resolve()), os.getpid(), started.isoformat())
    write_private(data_dir / SERVER_FILE, json.dumps(asdict(record)))
    others = [
        each
        for each in registered(config_dir)
        if each.running and each.data_dir != record.data_dir and each.pid != record.pid
    ]
    # a home directory it may not write: the record in the data dir still says
    with contextlib.suppress(OSError):
        _write_registry(config_dir, [record, *others])
    return record


def withdraw(record: ServerRecord, config_dir: Path) -> None:
    """Take away the records ``announce`` made, unless another server has replaced them."""
    data_dir = Path(record.data_dir)
    if server_in(data_dir) == record:
        (data_dir / SERVER_FILE).unlink(missing_ok=True)
    kept = [each for each in registered(config_dir) if each != record]
    with contextlib.suppress(OSError):
        _write_registry(config_dir, kept)


def _write_registry(config_dir: Path, records: list[ServerRecord]) -> None:
    write_private(config_dir / REGISTRY_FILE, json.dumps([asdict(each) for each in records]))
