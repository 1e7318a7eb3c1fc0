"""Use cases of uploaded packages: the project an upload is charged to, its quota, its usage.

An upload is charged to one project its uploader may submit jobs to: the one they name, or
their only project. It is kept whole if it fits the project's and the pool's package storage,
or refused whole. A project's packages and storage use are for whoever may read the project.
"""

from __future__ import annotations

from dataclasses import dataclass

from quotas.access import Principal, Scope
from quotas.accounts import AccountKind
from quotas.cases import require
from quotas.db.access import PackageRepository
from quotas.errors import InvalidInput, NotFound, Unspecified
from quotas.packages import StorageQuota, StoredPackage, check_upload
from quotas.service import Books


@dataclass(frozen=True, slots=True)
class ProjectPackages:
    """A page of a project's packages, newest first, with how many there are and their bytes."""

    used_bytes: int
    packages: list[StoredPackage]
    total: int


def check_may_upload(principal: Principal) -> None:
    """Uploads are for those who submit jobs: a token with the jobs scope, of an admin or a
    member of a project. Cheap, so an upload can be refused before its body is read."""
    principal.require(Scope.JOBS)
    require(
        principal,
        principal.is_admin or bool(principal.projects),
        "upload packages: only members of a project submit jobs",
    )


def sole_project(principal: Principal, how_to_name_one: str) -> str:
    """The principal's only project, for a request that names none; else ``Unspecified``,
    saying how to name one and listing their projects."""
    if len(principal.projects) == 1:
        return next(iter(principal.projects))
    mine = ", ".join(sorted(principal.projects)) or "none"
    raise Unspecified(f"{how_to_name_one}; your projects: {mine}")


def charged_project(
    books: Books, principal: Principal, named: str | None, how_to_name_one: str
) -> str:
    """The project an upload by ``principal`` is charged to: ``named``, which must be a project
    they may submit jobs to, or else their only project (``how_to_name_one`` says how to name
    one when they have several)."""
    if not named:
        check_may_upload(principal)
        return sole_project(principal, how_to_name_one)
    tree = books.tree()
    if named not in tree or not principal.can_read_account(tree, named):
        raise NotFound(f"no project {named}")
    principal.require(Scope.JOBS)
    if tree[named].kind is not AccountKind.PROJECT:
        raise Unspecified(f"{named} is not a project; uploads are charged to a project")
    require(principal, principal.can_submit_to(named), f"upload packages charged to {named}")
    return named


def store_package(
    books: Books, owner: str, project: str, uri: str, content: bytes, quota: StorageQuota
) -> bool:
    """Keep ``owner``'s package ``uri`` charged to ``project`` if it fits the quota (else
    ``StorageFull``, nothing kept); one they already have so named is kept as it is, charged
    nothing more. Whether this one was stored."""
    packages = PackageRepository(books.session)
    packages.lock_storage()
    if packages.exists(owner, uri):
        return False
    check_upload(project, len(content), packages.use(project), quota)
    return packages.add(owner, uri, content, books.clock(), project)


def project_packages(
    books: Books, principal: Principal, project: str, *, limit: int = 50, offset: int = 0
) -> ProjectPackages:
    """The packages charged to a project the principal may read, and the bytes they take."""
    tree = books.tree()
    if project not in tree or not principal.can_read_account(tree, project):
        raise NotFound(f"no project {project}")
    if tree[project].kind is not AccountKind.PROJECT:
        raise InvalidInput(f"{project} is not a project; only projects keep packages")
    packages = PackageRepository(books.session)
    used = packages.use(project).project_bytes
    found, total = packages.of_project(project, limit=limit, offset=offset)
    return ProjectPackages(used, found, total)
