"""Settings, read from the environment (prefix ``GPUPOOL_``) or given directly, in groups by
meaning, each defined beside the code it configures: here where the books are kept and how fast
usage decays; the job limits in ``jobs.settings``; the loop, charging, preemption, packages and
clusters in ``scheduler.settings``; sign-in and the web server in ``portal.settings``. A process
takes the groups it needs (``SchedulerSettings``, ``PortalSettings``); every group reads the
same flat ``GPUPOOL_*`` names.

The embedded default keeps everything under one data directory: a SQLite file there unless
``GPUPOOL_DATABASE_URL`` names another database (PostgreSQL in production).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Group(BaseSettings):
    """A group of settings, read from ``GPUPOOL_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="GPUPOOL_", extra="ignore")


class StorageSettings(Group):
    """Where the books and the service's own files are kept."""

    data_dir: Path = Path(".gpupool")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: a SQLite file in the data directory"
    )

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'gpupool.db').resolve()}"


class FairShareSettings(Group):
    """How fast past usage stops counting against an account's fair share."""

    fair_share_half_life_hours: float = Field(
        default=7 * 24, gt=0, description="Usage counts half as much this many hours later."
    )


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600, in a directory made 0700
    if it is new), whole or not at all: a reader never sees half a secret."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
    partial.replace(path)
