"""One scheduler at a time: a lock held for as long as a scheduler runs.

PostgreSQL: a session-level advisory lock on a dedicated connection (released if the process
dies, since its connection closes), keyed by the schema the books live in, so two pools kept in
two schemas of one database each have their scheduler. SQLite: an exclusive ``flock`` on a file
beside the database (also released by the kernel when the process dies). A second replica waits
or exits.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from sqlalchemy import Connection, Engine, text

SCHEDULER_LOCK_KEY = 0x67707573  # "gpus"


class SchedulerLock:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None
        self._fd: int | None = None

    def _lock_file(self) -> Path:
        database = self.engine.url.database or "gpupool"
        return Path(f"{database}.scheduler.lock")

    def try_acquire(self) -> bool:
        """Take the lock if no other scheduler holds it; never blocks."""
        if self.engine.dialect.name == "postgresql":
            connection = self.engine.connect()
            taken = connection.execute(
                text("SELECT pg_try_advisory_lock(:key, hashtext(current_schema()))"),
                {"key": SCHEDULER_LOCK_KEY},
            ).scalar_one()
            connection.commit()
            if not taken:
                connection.close()
                return False
            self._connection = connection
            return True
        fd = os.open(self._lock_file(), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._connection is not None:
            self._connection.execute(
                text("SELECT pg_advisory_unlock(:key, hashtext(current_schema()))"),
                {"key": SCHEDULER_LOCK_KEY},
            )
            self._connection.close()
            self._connection = None
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
