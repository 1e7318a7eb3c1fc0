"""Package storage decisions: whether an upload fits its project's quota and the pool's total,
and which uploaded packages no job needs any more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from quotas.errors import PoolStorageFull, ProjectStorageFull, StorageFull
from quotas.packages import (
    GIB,
    MIB,
    PackageUse,
    Retention,
    StorageQuota,
    StorageUse,
    StoredPackage,
    check_upload,
    size_text,
    unneeded,
)

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
QUOTA = StorageQuota(project_bytes=100, pool_bytes=250)
RETENTION = Retention(after_last_job=timedelta(days=7), grace=timedelta(days=1))


@pytest.mark.parametrize(
    ("project_used", "pool_used", "size", "refused"),
    [
        (0, 0, 100, None),  # exactly the quota fits
        (60, 200, 40, None),
        (60, 60, 41, ProjectStorageFull),
        (0, 0, 101, ProjectStorageFull),  # bigger than the whole quota
        (10, 200, 51, PoolStorageFull),  # the project has room, the pool does not
        (100, 250, 1, ProjectStorageFull),  # the project's own limit is named first
    ],
)
def test_an_upload_fits_both_the_projects_quota_and_the_pools_total(
    project_used: int, pool_used: int, size: int, refused: type[StorageFull] | None
) -> None:
    used = StorageUse(project_bytes=project_used, pool_bytes=pool_used)
    if refused is None:
        check_upload("kaist-nlp", size, used, QUOTA)
        return
    with pytest.raises(refused) as error:
        check_upload("kaist-nlp", size, used, QUOTA)
    assert ("kaist-nlp" in str(error.value)) == (refused is ProjectStorageFull)


def test_sizes_read_as_people_say_them() -> None:
    assert size_text(512) == "512 B"
    assert size_text(3 * MIB + MIB // 5) == "3.2 MiB"
    assert size_text(GIB) == "1.0 GiB"


def a_package(
    digest: str = "a", age: timedelta = timedelta(days=30), name: str | None = None
) -> StoredPackage:
    """jiwoo.jung's package of bytes ``digest``, uploaded ``age`` ago."""
    uri = f"gcs://{name or f'_ray_pkg_{digest}.zip'}"
    return StoredPackage("jiwoo.jung", uri, digest, 10, "kaist-nlp", NOW - age)


def ended(days_ago: float, owner: str = "jiwoo.jung", digest: str = "a") -> PackageUse:
    return PackageUse(owner, digest, NOW - timedelta(days=days_ago))


def waiting(owner: str = "jiwoo.jung", digest: str = "a") -> PackageUse:
    return PackageUse(owner, digest, None)


@pytest.mark.parametrize(
    ("uses", "age", "removed"),
    [
        ([], timedelta(days=30), True),  # never used, long uploaded
        ([], timedelta(hours=23), False),  # never used, but within the grace period
        ([waiting()], timedelta(days=30), False),  # a queued or running job names it
        ([ended(8)], timedelta(days=30), True),  # its last job ended past the retention
        ([ended(6)], timedelta(days=30), False),  # its last job ended within the retention
        ([ended(30), ended(2)], timedelta(days=30), False),  # the newest job counts
        ([ended(8), waiting()], timedelta(days=30), False),
        ([ended(1, owner="eunji.han")], timedelta(days=30), True),  # another's job: not a use
        ([ended(1, digest="b")], timedelta(days=30), True),  # other bytes: not a use
        ([ended(8)], timedelta(hours=1), False),  # uploaded again since: the grace period holds
    ],
)
def test_a_package_goes_once_no_job_needs_it(
    uses: list[PackageUse], age: timedelta, removed: bool
) -> None:
    package = a_package(age=age)
    assert unneeded([package], uses, NOW, RETENTION) == ([package] if removed else [])


def test_a_job_keeps_each_of_its_submitters_packages_with_those_bytes() -> None:
    same_bytes = [a_package(digest="a"), a_package(digest="a", name="_ray_pkg_other_name.zip")]
    unused = a_package(digest="c")

    assert unneeded([*same_bytes, unused], [waiting(digest="a")], NOW, RETENTION) == [unused]
