"""Records behind sign-in and the audit trail: role grants, identity links, personal access
tokens, invitations, the audit log, and uploaded ``working_dir`` packages."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.orm import Session

from quotas.access import POOL_ROLES, Principal, Role, Scope, principal
from quotas.db.models import (
    AccountRow,
    ApiTokenRow,
    AuditEntryRow,
    IdentityLinkRow,
    InvitationRow,
    JobRow,
    MembershipRow,
    PackageRow,
    ProgramManagerRow,
    RoleGrantRow,
    UserRow,
)
from quotas.db.repositories import AccountRepository, as_utc, maybe_utc
from quotas.errors import InvalidInput, NotFound
from quotas.packages import StorageUse, StoredPackage

PACKAGE_STORAGE_LOCK_KEY = 0x677075706B67  # "gpupkg": one advisory lock key for package uploads


def user_id(session: Session, name: str) -> int:
    found = session.scalar(select(UserRow.id).where(UserRow.name == name))
    if found is None:
        raise NotFound(f"unknown user {name!r}")
    return found


class RoleRepository:
    """What each user may do, from gpupool's own records."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def grant(self, user: str, role: Role) -> None:
        if role not in POOL_ROLES:
            raise InvalidInput(f"{role} is held in a project or program, not pool-wide")
        uid = user_id(self.session, user)
        if self.session.get(RoleGrantRow, (uid, role.value)) is None:
            self.session.add(RoleGrantRow(user_id=uid, role=role.value))
            self.session.flush()

    def revoke(self, user: str, role: Role) -> None:
        row = self.session.get(RoleGrantRow, (user_id(self.session, user), role.value))
        if row is not None:
            self.session.delete(row)
            self.session.flush()

    def principal(self, user: str, scopes: Sequence[Scope] | None = None) -> Principal:
        uid = user_id(self.session, user)
        pool_roles = self.session.scalars(
            select(RoleGrantRow.role).where(RoleGrantRow.user_id == uid)
        )
        projects = self.session.execute(
            select(AccountRow.name, MembershipRow.role)
            .join(AccountRow, AccountRow.id == MembershipRow.project_id)
            .where(MembershipRow.user_id == uid)
        )
        programs = self.session.scalars(
            select(AccountRow.name)
            .join(ProgramManagerRow, ProgramManagerRow.program_id == AccountRow.id)
            .where(ProgramManagerRow.user_id == uid)
        )
        return principal(
            user,
            pool_roles=[Role(role) for role in pool_roles],
            projects={project: Role(role) for project, role in projects},
            programs=list(programs),
            scopes=scopes if scopes is not None else list(Scope),
        )

    def pool_roles_of(self, users: Sequence[str]) -> dict[str, list[Role]]:
        """The pool-wide roles (admin, auditor) each of ``users`` holds; none if not listed."""
        if not users:
            return {}
        rows = self.session.execute(
            select(UserRow.name, RoleGrantRow.role)
            .join(RoleGrantRow, RoleGrantRow.user_id == UserRow.id)
            .where(UserRow.name.in_(list(users)))
            .order_by(UserRow.name, RoleGrantRow.role)
        )
        held: dict[str, list[Role]] = {user: [] for user in users}
        for user, role in rows:
            held[user].append(Role(role))
        return held

    def holders(self, role: Role) -> list[str]:
        """Users holding a pool-wide role, by name."""
        return list(
            self.session.scalars(
                select(UserRow.name)
                .join(RoleGrantRow, RoleGrantRow.user_id == UserRow.id)
                .where(RoleGrantRow.role == role.value)
                .order_by(UserRow.name)
            )
        )


@dataclass(frozen=True, slots=True)
class IdentityLink:
    id: int
    issuer: str
    claim: str
    value: str
    user: str | None
    role: Role | None
    account: str | None


class IdentityLinkRepository:
    """How an identity provider's subjects and groups map onto users and roles."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def link_subject(self, issuer: str, subject: str, user: str) -> int:
        row = IdentityLinkRow(
            issuer=issuer, claim="sub", value=subject, user_id=user_id(self.session, user)
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def link_group(self, issuer: str, group: str, role: Role, account: str | None = None) -> int:
        if (role in POOL_ROLES) != (account is None):
            raise InvalidInput(
                "a group grants admin or auditor pool-wide, or another role in one account"
            )
        account_id = None
        if account is not None:
            account_id = self.session.scalar(
                select(AccountRow.id).where(AccountRow.name == account)
            )
            if account_id is None:
                raise NotFound(f"no account {account}")
        row = IdentityLinkRow(
            issuer=issuer, claim="group", value=group, role=role.value, account_id=account_id
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def all(self) -> list[IdentityLink]:
        rows = self.session.execute(
            select(IdentityLinkRow, UserRow.name, AccountRow.name)
            .outerjoin(UserRow, UserRow.id == IdentityLinkRow.user_id)
            .outerjoin(AccountRow, AccountRow.id == IdentityLinkRow.account_id)
            .order_by(IdentityLinkRow.id)
        )
        return [
            IdentityLink(
                id=row.id,
                issuer=row.issuer,
                claim=row.claim,
                value=row.value,
                user=user,
                role=Role(row.role) if row.role is not None else None,
                account=account,
            )
            for row, user, account in rows
        ]

    def get(self, link_id: int) -> IdentityLink:
        for link in self.all():
            if link.id == link_id:
                return link
        raise NotFound(f"no identity link {link_id}")

    def remove(self, link_id: int) -> None:
        row = self.session.get(IdentityLinkRow, link_id)
        if row is None:
            raise NotFound(f"no identity link {link_id}")
        self.session.delete(row)
        self.session.flush()

    def user_for_subject(self, issuer: str, subject: str) -> str | None:
        return self.session.scalar(
            select(UserRow.name)
            .join(IdentityLinkRow, IdentityLinkRow.user_id == UserRow.id)
            .where(
                IdentityLinkRow.issuer == issuer,
                IdentityLinkRow.claim == "sub",
                IdentityLinkRow.value == subject,
            )
        )

    def group_grants(self, issuer: str, groups: Sequence[str]) -> list[tuple[Role, str | None]]:
        if not groups:
            return []
        rows = self.session.execute(
            select(IdentityLinkRow.role, AccountRow.name)
            .outerjoin(AccountRow, AccountRow.id == IdentityLinkRow.account_id)
            .where(
                IdentityLinkRow.issuer == issuer,
                IdentityLinkRow.claim == "group",
                IdentityLinkRow.value.in_(list(groups)),
            )
        )
        return [(Role(role), account) for role, account in rows if role is not None]


@dataclass(frozen=True, slots=True)
class ApiToken:
    id: int
    lookup: str
    secret_sha256: str
    user: str
    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiTokenRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        lookup: str,
        secret_sha256: str,
        user: str,
        name: str,
        scopes: Sequence[Scope],
        created_at: datetime,
        expires_at: datetime | None,
    ) -> int:
        row = ApiTokenRow(
            lookup=lookup,
            secret_sha256=secret_sha256,
            user_id=user_id(self.session, user),
            name=name,
            scopes=[scope.value for scope in scopes],
            created_at=created_at,
            expires_at=expires_at,
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def _token(self, row: ApiTokenRow, user: str) -> ApiToken:
        return ApiToken(
            id=row.id,
            lookup=row.lookup,
            secret_sha256=row.secret_sha256,
            user=user,
            name=row.name,
            scopes=tuple(Scope(scope) for scope in row.scopes),
            created_at=as_utc(row.created_at),
            expires_at=maybe_utc(row.expires_at),
            revoked_at=maybe_utc(row.revoked_at),
            last_used_at=maybe_utc(row.last_used_at),
        )

    def by_lookup(self, lookup: str) -> ApiToken | None:
        found = self.session.execute(
            select(ApiTokenRow, UserRow.name)
            .join(UserRow, UserRow.id == ApiTokenRow.user_id)
            .where(ApiTokenRow.lookup == lookup)
        ).first()
        return self._token(found[0], found[1]) if found else None

    def of_user(self, user: str) -> list[ApiToken]:
        rows = self.session.execute(
            select(ApiTokenRow, UserRow.name)
            .join(UserRow, UserRow.id == ApiTokenRow.user_id)
            .where(UserRow.name == user)
            .order_by(ApiTokenRow.id)
        )
        return [self._token(row, name) for row, name in rows]

    def get(self, token_id: int) -> ApiToken:
        row = self.session.get(ApiTokenRow, token_id)
        if row is None:
            raise NotFound(f"no token {token_id}")
        name = self.session.scalar(select(UserRow.name).where(UserRow.id == row.user_id))
        assert name is not None
        return self._token(row, name)

    def revoke(self, token_id: int, at: datetime) -> None:
        row = self.session.get(ApiTokenRow, token_id)
        if row is None:
            raise NotFound(f"no token {token_id}")
        if row.revoked_at is None:
            row.revoked_at = at
            self.session.flush()

    def touch(self, token_id: int, at: datetime) -> None:
        row = self.session.get(ApiTokenRow, token_id)
        if row is not None:
            row.last_used_at = at
            self.session.flush()


@dataclass(frozen=True, slots=True)
class Invitation:
    id: int
    lookup: str
    secret_sha256: str
    user: str
    invited_by: str
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None
    revoked_at: datetime | None

    def pending(self, now: datetime) -> bool:
        """Neither used nor revoked, and not expired."""
        return self.used_at is None and self.revoked_at is None and self.expires_at > now


class InvitationRepository:
    """One-time sign-ins for named users (``quotas.invitations``)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(
        self,
        lookup: str,
        secret_sha256: str,
        user: str,
        invited_by: str,
        created_at: datetime,
        expires_at: datetime,
    ) -> int:
        row = InvitationRow(
            lookup=lookup,
            secret_sha256=secret_sha256,
            user_id=user_id(self.session, user),
            invited_by=invited_by,
            created_at=created_at,
            expires_at=expires_at,
        )
        self.session.add(row)
        self.session.flush()
        return row.id

    def _query(self) -> Any:
        return (
            select(InvitationRow, UserRow.name)
            .join(UserRow, UserRow.id == InvitationRow.user_id)
            .execution_options(populate_existing=True)
        )

    @staticmethod
    def _invitation(row: InvitationRow, user: str) -> Invitation:
        return Invitation(
            id=row.id,
            lookup=row.lookup,
            secret_sha256=row.secret_sha256,
            user=user,
            invited_by=row.invited_by,
            created_at=as_utc(row.created_at),
            expires_at=as_utc(row.expires_at),
            used_at=maybe_utc(row.used_at),
            revoked_at=maybe_utc(row.revoked_at),
        )

    def by_lookup(self, lookup: str) -> Invitation | None:
        found = self.session.execute(self._query().where(InvitationRow.lookup == lookup)).first()
        return self._invitation(found[0], found[1]) if found else None

    def get(self, invitation_id: int) -> Invitation:
        found = self.session.execute(self._query().where(InvitationRow.id == invitation_id)).first()
        if found is None:
            raise NotFound(f"no invitation {invitation_id}")
        return self._invitation(found[0], found[1])

    def pending(self, now: datetime, invited_by: str | None = None) -> list[Invitation]:
        """Invitations neither used, revoked nor expired, oldest first; only those
        ``invited_by`` issued when it is given."""
        query = self._query().where(
            InvitationRow.used_at.is_(None),
            InvitationRow.revoked_at.is_(None),
            InvitationRow.expires_at > now,
        )
        if invited_by is not None:
            query = query.where(InvitationRow.invited_by == invited_by)
        rows = self.session.execute(query.order_by(InvitationRow.id))
        return [self._invitation(row, user) for row, user in rows]

    def use(self, invitation_id: int, at: datetime) -> bool:
        """Mark a pending invitation used; whether this call did (two redeeming the same
        invitation at once: one wins)."""
        done = self.session.execute(
            update(InvitationRow)
            .where(
                InvitationRow.id == invitation_id,
                InvitationRow.used_at.is_(None),
                InvitationRow.revoked_at.is_(None),
                InvitationRow.expires_at > at,
            )
            .values(used_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0) == 1)

    def revoke(self, invitation_id: int, at: datetime) -> None:
        row = self.session.get(InvitationRow, invitation_id)
        if row is None:
            raise NotFound(f"no invitation {invitation_id}")
        if row.revoked_at is None and row.used_at is None:
            row.revoked_at = at
            self.session.flush()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None


_NEWEST_AUDIT_ENTRY = select(func.max(AuditEntryRow.id))
"""Built once: every submission asks it (``Books.catalogue``)."""


class AuditRepository:
    """Every change of quota, allocation, rate and membership: who, when, before, after."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def last_id(self) -> int:
        """The id of the newest entry (0 with none): every change to the tree, a budget, the
        catalogue or a grant writes one."""
        return int(self.session.scalar(_NEWEST_AUDIT_ENTRY) or 0)

    def record(
        self,
        at: datetime,
        actor: str,
        action: str,
        target: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
    ) -> None:
        self.session.add(
            AuditEntryRow(
                at=at,
                actor=actor,
                action=action,
                target=target,
                before=dict(before) if before is not None else None,
                after=dict(after) if after is not None else None,
            )
        )
        self.session.flush()

    def entries(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """Newest first; page with ``before_id`` (the smallest id of the previous page)."""
        query = select(AuditEntryRow).order_by(AuditEntryRow.id.desc()).limit(limit)
        if actor is not None:
            query = query.where(AuditEntryRow.actor == actor)
        if action is not None:
            query = query.where(AuditEntryRow.action == action)
        if target is not None:
            query = query.where(AuditEntryRow.target == target)
        if since is not None:
            query = query.where(AuditEntryRow.at >= since)
        if until is not None:
            query = query.where(AuditEntryRow.at < until)
        if before_id is not None:
            query = query.where(AuditEntryRow.id < before_id)
        return [
            AuditEntry(
                id=row.id,
                at=as_utc(row.at),
                actor=row.actor,
                action=row.action,
                target=row.target,
                before=row.before,
                after=row.after,
            )
            for row in self.session.scalars(query)
        ]

    def count(self) -> int:
        return self.session.scalar(select(func.count(AuditEntryRow.id))) or 0

    def search(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        target: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[AuditEntry], int]:
        """A page of entries, newest first, and how many match in all; ``since`` and ``until``
        (UTC) keep those made in ``[since, until)``."""
        query = select(AuditEntryRow)
        if actor is not None:
            query = query.where(AuditEntryRow.actor == actor)
        if action is not None:
            query = query.where(AuditEntryRow.action == action)
        if target is not None:
            query = query.where(AuditEntryRow.target == target)
        if since is not None:
            query = query.where(AuditEntryRow.at >= since)
        if until is not None:
            query = query.where(AuditEntryRow.at < until)
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(AuditEntryRow.id.desc()).offset(offset).limit(limit)
        found = [
            AuditEntry(
                id=row.id,
                at=as_utc(row.at),
                actor=row.actor,
                action=row.action,
                target=row.target,
                before=row.before,
                after=row.after,
            )
            for row in self.session.scalars(page)
        ]
        return found, total


class PackageRepository:
    """``working_dir`` and ``py_modules`` zips uploaded through the Ray-compatible API.

    Each is kept for its uploader under the name their client gave it (``gcs://<name>``); the
    same name uploaded by two users is two packages, since a name is easy to forge. A package is
    found again by its uploader and the sha256 of its bytes, which is how a job names it. Each
    is charged to a project's storage quota (``quotas.packages``); the bytes themselves are read
    only by ``content``.

    ``digest`` and ``has_content`` lock the package they find against removal until the
    transaction ends (PostgreSQL; SQLite serialises writers anyway), so a job submitted naming a
    package is seen by a cleanup that would otherwise remove it.
    """

    def __init__(self, session: Session) -> None:
        self.session = session

    def exists(self, owner: str, uri: str) -> bool:
        found = self.session.scalar(
            select(PackageRow.sha256).where(PackageRow.uploaded_by == owner, PackageRow.uri == uri)
        )
        return found is not None

    def digest(self, owner: str, uri: str) -> str | None:
        """The sha256 (hex) of ``owner``'s package named ``uri``; None if they uploaded none."""
        return self.session.scalar(
            select(PackageRow.sha256)
            .where(PackageRow.uploaded_by == owner, PackageRow.uri == uri)
            .with_for_update(read=True)
        )

    def add(
        self, owner: str, uri: str, content: bytes, at: datetime, project: str | None = None
    ) -> bool:
        """Keep ``owner``'s package named ``uri``, charged to ``project``, unless they have one
        so named already: it is kept as it is, never overwritten. Whether this one was stored.
        Checking the quota is the caller's (``quotas.packages.check_upload``)."""
        if self.exists(owner, uri):
            return False
        project_id = None if project is None else AccountRepository(self.session).id_of(project)
        self.session.add(
            PackageRow(
                uploaded_by=owner,
                uri=uri,
                sha256=hashlib.sha256(content).hexdigest(),
                content=content,
                size=len(content),
                uploaded_at=at,
                project_id=project_id,
            )
        )
        self.session.flush()
        return True

    def has_content(self, owner: str, sha256: str) -> bool:
        """Whether ``owner`` uploaded bytes whose sha256 (hex) is ``sha256``."""
        found = self.session.scalar(
            select(PackageRow.uri)
            .where(PackageRow.uploaded_by == owner, PackageRow.sha256 == sha256)
            .limit(1)
            .with_for_update(read=True)
        )
        return found is not None

    def content(self, owner: str, sha256: str) -> bytes:
        """The bytes ``owner`` uploaded whose sha256 (hex) is ``sha256``, under whichever name."""
        found = self.session.scalar(
            select(PackageRow.content)
            .where(PackageRow.uploaded_by == owner, PackageRow.sha256 == sha256)
            .limit(1)
        )
        if found is None:
            raise NotFound(f"{owner} uploaded no package with sha256 {sha256}")
        return found

    # -- storage quotas ---------------------------------------------------------------------

    def lock_storage(self) -> None:
        """Serialise uploads until this transaction ends, so that two never both fit the room
        left for one (PostgreSQL; SQLite already serialises writers)."""
        if self.session.get_bind().dialect.name == "postgresql":
            self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": PACKAGE_STORAGE_LOCK_KEY}
            )

    def use(self, project: str) -> StorageUse:
        """Bytes kept now for packages charged to ``project``, and for all packages."""
        charged = self.session.scalar(
            select(func.coalesce(func.sum(PackageRow.size), 0))
            .join(AccountRow, AccountRow.id == PackageRow.project_id)
            .where(AccountRow.name == project)
        )
        pool = self.session.scalar(select(func.coalesce(func.sum(PackageRow.size), 0)))
        return StorageUse(project_bytes=int(charged or 0), pool_bytes=int(pool or 0))

    def of_project(
        self, project: str, limit: int = 50, offset: int = 0
    ) -> tuple[list[StoredPackage], int]:
        """A page of the packages charged to ``project``, newest first, and how many in all."""
        query = (
            select(*self._columns())
            .join(AccountRow, AccountRow.id == PackageRow.project_id)
            .where(AccountRow.name == project)
        )
        total = self.session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(PackageRow.uploaded_at.desc(), PackageRow.uploaded_by, PackageRow.uri)
        rows = self.session.execute(page.offset(offset).limit(limit))
        return [self._stored(row) for row in rows], total

    # -- cleanup ----------------------------------------------------------------------------

    def uploaded_before(
        self, cutoff: datetime, after: tuple[datetime, str, str] | None = None, limit: int = 500
    ) -> list[StoredPackage]:
        """Up to ``limit`` packages uploaded before ``cutoff``, oldest first, from just after
        ``after`` (the ``uploaded_at, uploaded_by, uri`` of the last one of the previous page);
        each is locked for removal until the transaction ends."""
        query = select(*self._columns()).outerjoin(
            AccountRow, AccountRow.id == PackageRow.project_id
        )
        query = query.where(PackageRow.uploaded_at < cutoff)
        if after is not None:
            at, owner, uri = after
            query = query.where(
                (PackageRow.uploaded_at > at)
                | (
                    (PackageRow.uploaded_at == at)
                    & (
                        (PackageRow.uploaded_by > owner)
                        | ((PackageRow.uploaded_by == owner) & (PackageRow.uri > uri))
                    )
                )
            )
        query = query.order_by(PackageRow.uploaded_at, PackageRow.uploaded_by, PackageRow.uri)
        locked = query.limit(limit).with_for_update(of=PackageRow)
        return [self._stored(row) for row in self.session.execute(locked)]

    def runtime_envs(
        self, submitters: Iterable[str], ended_after: datetime, live_states: Iterable[str]
    ) -> list[tuple[str, Mapping[str, Any], datetime | None]]:
        """``(submitter, runtime_env, ended_at)`` of each job by one of ``submitters`` that is
        in one of ``live_states`` (``ended_at`` None) or ended after ``ended_after``: the jobs
        that may still need a package they uploaded."""
        names = sorted(set(submitters))
        if not names:
            return []
        waiting = [str(state) for state in live_states]
        rows = self.session.execute(
            select(
                JobRow.submitter,
                JobRow.runtime_env,
                JobRow.state,
                JobRow.ended_at,
                JobRow.submitted_at,
            )
            .where(JobRow.submitter.in_(names))
            .where(JobRow.state.in_(waiting) | (JobRow.ended_at > ended_after))
        )
        found: list[tuple[str, Mapping[str, Any], datetime | None]] = []
        for submitter, runtime_env, state, ended_at, submitted_at in rows:
            if state in waiting:
                found.append((submitter, runtime_env, None))
            else:
                found.append((submitter, runtime_env, as_utc(ended_at or submitted_at)))
        return found

    def remove(self, packages: Iterable[StoredPackage]) -> None:
        for package in packages:
            self.session.execute(
                delete(PackageRow).where(
                    PackageRow.uploaded_by == package.uploaded_by, PackageRow.uri == package.uri
                )
            )
        self.session.flush()

    @staticmethod
    def _columns() -> tuple[Any, ...]:
        return (
            PackageRow.uploaded_by,
            PackageRow.uri,
            PackageRow.sha256,
            PackageRow.size,
            AccountRow.name,
            PackageRow.uploaded_at,
        )

    @staticmethod
    def _stored(row: Any) -> StoredPackage:
        uploaded_by, uri, sha256, size, project, uploaded_at = row
        return StoredPackage(uploaded_by, uri, sha256, size, project, as_utc(uploaded_at))
