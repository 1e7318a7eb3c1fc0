"""Uploaded packages: which project an upload is charged to, the quota it must fit, and usage.

``PUT /api/packages/gcs/<name>`` (the Ray Jobs API, ``portal.rayjobs``) keeps a
``working_dir`` zip for its uploader and charges its bytes to **one project** the uploader may
submit jobs to: the project the ``X-Gpupool-Project`` header names, or, without the header,
the uploader's only project. Someone in several projects names one, e.g. ``ray job submit
--headers '{"Authorization": "Bearer <token>", "X-Gpupool-Project": "kaist-nlp"}'`` (Ray's
client sends the same headers with every request). An upload that would take the project past
``package_quota_bytes``, or the pool past ``package_pool_bytes``, is refused whole (413, or 507
when the pool is full) and nothing of it is kept. The scheduler removes packages no job needs
any more (``scheduler.package_cleanup``), which gives their bytes back.

``GET /api/v1/accounts/{project}/packages`` shows a project's use of its quota and the
packages charged to it, to anyone who may read the project. These rules are the use cases'
(``quotas.cases.packages``); this module names the header and shapes the answer.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from pydantic import Field

from portal.api.common import Limit, Offset, Page, Segment, Strict
from portal.deps import PortalDep, PrincipalDep
from quotas.access import Principal
from quotas.cases import packages
from quotas.packages import StoredPackage
from quotas.service import Books

router = APIRouter(tags=["packages"])

__all__ = ["PROJECT_HEADER", "charged_project", "router"]

PROJECT_HEADER = "X-Gpupool-Project"
"""Names the project an upload is charged to (needed by someone in several projects)."""


HOW_TO_NAME_THE_PROJECT = (
    f"say which project the upload is charged to with the header {PROJECT_HEADER}: "
    f'<project> (e.g. ray job submit --headers \'{{"Authorization": "Bearer ...", '
    f'"{PROJECT_HEADER}": "<project>"}}\')'
)


def charged_project(books: Books, principal: Principal, named: str | None) -> str:
    """The project an upload is charged to (``quotas.cases.packages.charged_project``), told
    how to name one in the header."""
    return packages.charged_project(books, principal, named, HOW_TO_NAME_THE_PROJECT)


class PackageOut(Strict):
    uri: str = Field(description="The name the uploader's client gave it (gcs://...)")
    sha256: str = Field(
        description="The sha256 of its bytes: jobs name it gcs://_ray_pkg_<sha256>.zip"
    )
    size_bytes: int
    uploaded_by: str
    uploaded_at: datetime


class PackageStorage(Strict):
    project: str
    used_bytes: int = Field(description="Bytes of the packages charged to the project")
    quota_bytes: int = Field(description="Bytes of packages the project may keep in all")
    packages: Page[PackageOut] = Field(description="The packages charged to it, newest first")


def package_out(package: StoredPackage) -> PackageOut:
    return PackageOut(
        uri=package.uri,
        sha256=package.sha256,
        size_bytes=package.size,
        uploaded_by=package.uploaded_by,
        uploaded_at=package.uploaded_at,
    )


@router.get(
    "/accounts/{project}/packages",
    summary="A project's uploaded packages and how much of its storage quota they use",
)
def project_packages(
    project: Segment,
    portal: PortalDep,
    principal: PrincipalDep,
    limit: Limit = 50,
    offset: Offset = 0,
) -> PackageStorage:
    with portal.books() as books:
        found = packages.project_packages(books, principal, project, limit=limit, offset=offset)
    return PackageStorage(
        project=project,
        used_bytes=found.used_bytes,
        quota_bytes=portal.settings.package_quota_bytes,
        packages=Page[PackageOut](
            items=[package_out(package) for package in found.packages],
            total=found.total,
            limit=limit,
            offset=offset,
        ),
    )
