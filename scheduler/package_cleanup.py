"""Package cleanup: the scheduler step that removes uploaded packages no job needs any more.

Which packages may go is ``quotas.packages.unneeded``: none that a queued or running job names,
none named by a job that ended within ``package_retention_hours``, and none uploaded within
``package_grace_hours``. A job names a package in its runtime_env by the sha256 of its bytes
(``gcs://_ray_pkg_<sha256>.zip``, see ``scheduler.backends.base``), and only its submitter's
uploads count. Removing one gives its bytes back to its project's quota and the pool's, writes
an audit entry (action ``package.remove``, target ``package/<uploader>/<uri>``) and a log line.

The packages are looked at in pages, oldest first, each page in a transaction of its own that
locks the page's packages before it reads the jobs naming them; a submit naming one of them
locks it too (``PackageRepository.digest``), so a job is never left naming a removed package.
Copies already forwarded to a Ray cluster are that cluster's to collect (Ray removes packages
no job uses).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from jobs.model import JobState
from quotas.clock import Clock, utc_now
from quotas.db.access import AuditRepository, PackageRepository
from quotas.db.session import transaction
from quotas.packages import (
    PackageUse,
    Retention,
    StoredPackage,
    content_digest,
    unneeded,
    uploaded_packages,
)
from scheduler.settings import SchedulerSettings

log = logging.getLogger(__name__)

ACTOR = "scheduler"
REMOVE_ACTION = "package.remove"
PAGE = 500
LIVE_STATES = [state for state in JobState if not state.is_terminal]


def remove_unneeded_packages(
    factory: sessionmaker[Session], retention: Retention, clock: Clock = utc_now
) -> list[StoredPackage]:
    """Remove every package no job needs at ``clock()``; the packages removed."""
    now = clock()
    removed: list[StoredPackage] = []
    after: tuple[datetime, str, str] | None = None
    while True:
        with transaction(factory) as session:
            packages = PackageRepository(session)
            page = packages.uploaded_before(now - retention.grace, after=after, limit=PAGE)
            if not page:
                break
            owners = {package.uploaded_by for package in page}
            envs = packages.runtime_envs(owners, now - retention.after_last_job, LIVE_STATES)
            gone = unneeded(page, uses_of(envs), now, retention)
            packages.remove(gone)
            audit = AuditRepository(session)
            for package in gone:
                audit.record(now, ACTOR, REMOVE_ACTION, target(package), record(package), None)
        for package in gone:
            log.info(
                "removed package %s of %s (%d bytes, charged to %s): no job needs it",
                package.uri,
                package.uploaded_by,
                package.size,
                package.project or "no project",
            )
        removed.extend(gone)
        if len(page) < PAGE:
            break
        last = page[-1]
        after = (last.uploaded_at, last.uploaded_by, last.uri)
    return removed


def uses_of(
    envs: Iterable[tuple[str, Mapping[str, object], datetime | None]],
) -> list[PackageUse]:
    """The packages each job's runtime_env names, by its submitter and the sha256 of the bytes."""
    uses: list[PackageUse] = []
    for submitter, runtime_env, ended_at in envs:
        for uri in uploaded_packages(runtime_env):
            digest = content_digest(uri)
            if digest is not None:
                uses.append(PackageUse(submitter, digest, ended_at))
    return uses


def target(package: StoredPackage) -> str:
    return f"package/{package.uploaded_by}/{package.uri}"


def record(package: StoredPackage) -> dict[str, object]:
    return {
        "sha256": package.sha256,
        "size": package.size,
        "project": package.project,
        "uploaded_at": package.uploaded_at.isoformat(),
    }


class PackageCleanup:
    """Runs ``remove_unneeded_packages`` every ``package_cleanup_seconds`` of the clock, first
    when the scheduler starts; a failure is logged and tried again next time."""

    def __init__(
        self, factory: sessionmaker[Session], settings: SchedulerSettings, clock: Clock = utc_now
    ) -> None:
        self.factory = factory
        self.settings = settings
        self.clock = clock
        self.next_at: datetime | None = None

    def due(self) -> bool:
        return self.next_at is None or self.clock() >= self.next_at

    def run(self) -> list[StoredPackage]:
        """Look for unneeded packages now (whether due or not) and remove them."""
        started = self.clock()
        self.next_at = started + self._interval()
        try:
            return remove_unneeded_packages(
                self.factory, self.settings.package_retention, self.clock
            )
        except Exception:
            log.exception("package cleanup failed; trying again next time")
            return []

    def _interval(self) -> timedelta:
        return timedelta(seconds=self.settings.package_cleanup_seconds)
