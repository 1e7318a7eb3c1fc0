"""Uploaded packages: the storage an upload is charged to, and when a package may go.

A ``working_dir`` or ``py_modules`` zip uploaded through the Ray Jobs API is kept in gpupool's
database until jobs have run it. Two limits bound that storage: each upload is charged to one
project, whose packages may take at most ``StorageQuota.project_bytes`` in all, and the
packages of the whole pool at most ``StorageQuota.pool_bytes``. An upload that would pass
either is refused whole (``check_upload``); nothing of it is kept.

A package is *needed* while a job names it: a job names a package by its submitter (packages
belong to their uploader) and the sha256 of its bytes. Once no queued or running job names it,
the newest finished job that did ended more than ``Retention.after_last_job`` ago, and it was
uploaded more than ``Retention.grace`` ago (so one uploaded for a job about to be submitted
stays), it is removed (``unneeded``), which gives its bytes back to its project and the pool.

A job names each package by the sha256 of its bytes (``content_addressed_uri``), never by the
name the client chose: on a cluster shared by many tenants, a name then means one content only.

Pure decisions over what the caller read: no database here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from quotas.errors import PoolStorageFull, ProjectStorageFull

UPLOADED_PACKAGE_PREFIX = "gcs://"
"""URIs of packages uploaded through a Ray Jobs API (Ray keeps them in its GCS)."""
CONTENT_ADDRESSED = re.compile(r"gcs://_ray_pkg_([0-9a-f]{64})\.zip")
"""A package named by the sha256 of its bytes, in Ray's own form of package name."""

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30


@dataclass(frozen=True, slots=True)
class StorageQuota:
    """How many bytes of packages one project, and the whole pool, may keep."""

    project_bytes: int
    pool_bytes: int


@dataclass(frozen=True, slots=True)
class StorageUse:
    """Bytes of packages kept now: those charged to one project, and all of the pool's."""

    project_bytes: int
    pool_bytes: int


def check_upload(project: str, size: int, used: StorageUse, quota: StorageQuota) -> None:
    """Refuse an upload of ``size`` bytes charged to ``project`` unless it fits both limits."""
    if used.project_bytes + size > quota.project_bytes:
        left = max(quota.project_bytes - used.project_bytes, 0)
        raise ProjectStorageFull(
            f"project {project}'s package storage is full: {size_text(used.project_bytes)} of "
            f"its {size_text(quota.project_bytes)} quota is used, and this upload of "
            f"{size_text(size)} does not fit in the {size_text(left)} left; packages no job "
            "needs any more are removed over time, or ask an admin for a larger quota"
        )
    if used.pool_bytes + size > quota.pool_bytes:
        raise PoolStorageFull(
            f"gpupool's package storage ({size_text(quota.pool_bytes)} for the whole pool) "
            f"has no room for this upload of {size_text(size)}; packages no job needs any "
            "more are removed over time, so try again later"
        )


def size_text(size: int) -> str:
    """``size`` bytes for people: ``512 B``, ``3.2 MiB``, ``1.0 GiB``."""
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


@dataclass(frozen=True, slots=True)
class StoredPackage:
    """One uploaded package as kept: whose, under which name, which bytes, charged where."""

    uploaded_by: str
    uri: str
    sha256: str
    size: int
    project: str | None
    uploaded_at: datetime


@dataclass(frozen=True, slots=True)
class PackageUse:
    """A job naming a package: its submitter and the sha256 of the bytes it runs.
    ``ended_at`` is None while the job is queued or running."""

    submitter: str
    sha256: str
    ended_at: datetime | None


@dataclass(frozen=True, slots=True)
class Retention:
    """How long an unneeded package is kept: ``after_last_job`` past the end of the newest job
    that named it, and at least ``grace`` past its upload."""

    after_last_job: timedelta
    grace: timedelta


def unneeded(
    packages: Iterable[StoredPackage],
    uses: Iterable[PackageUse],
    now: datetime,
    retention: Retention,
) -> list[StoredPackage]:
    """The packages that may be removed at ``now``, given every job that names any of them and
    is queued, running, or ended after ``now - retention.after_last_job``."""
    running: set[tuple[str, str]] = set()
    last_ended: dict[tuple[str, str], datetime] = {}
    for use in uses:
        key = (use.submitter, use.sha256)
        if use.ended_at is None:
            running.add(key)
        elif key not in last_ended or use.ended_at > last_ended[key]:
            last_ended[key] = use.ended_at
    found: list[StoredPackage] = []
    for package in packages:
        key = (package.uploaded_by, package.sha256)
        if key in running or now - package.uploaded_at < retention.grace:
            continue
        ended = last_ended.get(key)
        if ended is not None and now - ended < retention.after_last_job:
            continue
        found.append(package)
    return found


def uploaded_packages(runtime_env: Mapping[str, object]) -> list[str]:
    """The uploaded packages (``gcs://`` URIs) a runtime_env's ``working_dir`` and
    ``py_modules`` name, in order, each once."""
    named: list[object] = [runtime_env.get("working_dir")]
    modules = runtime_env.get("py_modules")
    if isinstance(modules, Sequence) and not isinstance(modules, str | bytes):
        named.extend(modules)
    found: list[str] = []
    for item in named:
        if isinstance(item, str) and item.startswith(UPLOADED_PACKAGE_PREFIX) and item not in found:
            found.append(item)
    return found


def content_addressed_uri(sha256: str) -> str:
    """The name of the package whose bytes have this sha256 (hex): the whole digest, so two
    different contents never share a name."""
    uri = f"{UPLOADED_PACKAGE_PREFIX}_ray_pkg_{sha256}.zip"
    if not CONTENT_ADDRESSED.fullmatch(uri):
        raise ValueError(f"{sha256!r} is not a sha256 in hex")
    return uri


def content_digest(uri: str) -> str | None:
    """The sha256 a content-addressed package URI names; None for any other URI."""
    found = CONTENT_ADDRESSED.fullmatch(uri)
    return found.group(1) if found else None


def with_packages_renamed(
    runtime_env: Mapping[str, object], names: Mapping[str, str]
) -> dict[str, object]:
    """``runtime_env`` with each package URI in ``working_dir`` and ``py_modules`` that
    ``names`` maps replaced by what it maps to; everything else as it was."""
    renamed = dict(runtime_env)
    working_dir = renamed.get("working_dir")
    if isinstance(working_dir, str) and working_dir in names:
        renamed["working_dir"] = names[working_dir]
    modules = renamed.get("py_modules")
    if isinstance(modules, Sequence) and not isinstance(modules, str | bytes):
        renamed["py_modules"] = [
            names[item] if isinstance(item, str) and item in names else item for item in modules
        ]
    return renamed
