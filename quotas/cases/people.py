"""Use cases of people: users, their pool-wide roles, and identity-provider links.

Admin and auditor read the users and the identity links; only an admin, with the ``manage``
scope, adds users, grants and revokes roles and links identities. The pool always keeps an
admin: the last one's role cannot be revoked. Every change is written to the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from quotas.access import Principal, Role
from quotas.accounts import AccountKind
from quotas.cases import require, require_admin
from quotas.db.access import IdentityLink, IdentityLinkRepository
from quotas.errors import InvalidInput, NotFound
from quotas.service import Books


@dataclass(frozen=True, slots=True)
class User:
    name: str
    display_name: str
    email: str
    roles: list[Role]
    """Pool-wide roles: admin, auditor."""


def _user(books: Books, name: str) -> User:
    user, display, email = books.people.user(name)
    return User(user, display, email, books.roles.pool_roles_of([user]).get(user, []))


def users(
    books: Books, principal: Principal, *, limit: int = 50, offset: int = 0
) -> tuple[list[User], int]:
    """A page of the users by name with their pool-wide roles, and how many there are."""
    require(principal, principal.reads_everything, "list users")
    found, total = books.people.search_users(limit=limit, offset=offset)
    roles = books.roles.pool_roles_of([name for name, _, _ in found])
    return [
        User(name, display, email, roles.get(name, [])) for name, display, email in found
    ], total


def add_user(
    books: Books, principal: Principal, name: str, display_name: str = "", email: str = ""
) -> User:
    """Add a user, who holds no role until granted one."""
    require_admin(principal, "add users")
    books.add_user(name, display_name, email, actor=principal.user)
    return User(name, display_name, email, [])


def grant_role(books: Books, principal: Principal, user: str, role: Role) -> User:
    """Grant ``user`` a pool-wide role (admin or auditor); granting one held changes nothing."""
    require_admin(principal, "grant roles")
    if role not in books.roles.principal(user).pool_roles:
        books.grant_role(user, role, actor=principal.user)
    return _user(books, user)


def revoke_role(books: Books, principal: Principal, user: str, role: Role) -> None:
    """Revoke a pool-wide role ``user`` holds; never the last admin's."""
    require_admin(principal, "revoke roles")
    if role not in books.roles.principal(user).pool_roles:
        raise NotFound(f"{user} does not hold the {role} role")
    if role is Role.ADMIN and books.roles.holders(Role.ADMIN) == [user]:
        raise InvalidInput(f"{user} is the last admin; grant another admin first")
    books.revoke_role(user, role, actor=principal.user)


def identity_links(books: Books, principal: Principal) -> list[IdentityLink]:
    """How the identity providers' subjects and groups map onto users and roles."""
    require(principal, principal.reads_everything, "read identity links")
    return IdentityLinkRepository(books.session).all()


def link_subject(books: Books, principal: Principal, issuer: str, subject: str, user: str) -> int:
    """Sign-in as ``subject`` from ``issuer`` acts as ``user``; answers the link's id."""
    require_admin(principal, "link identities")
    return books.link_subject(issuer, subject, user, actor=principal.user)


def link_group(
    books: Books, principal: Principal, issuer: str, group: str, role: Role, account: str | None
) -> int:
    """Members of ``group`` at ``issuer`` hold ``role`` (in ``account``, for the roles held in
    one); answers the link's id."""
    require_admin(principal, "link identities")
    return books.link_group(issuer, group, role, account, actor=principal.user)


def unlink_identity(books: Books, principal: Principal, link_id: int) -> None:
    """Remove an identity link; sign-ins it mapped no longer act as its user or role."""
    require_admin(principal, "remove identity links")
    books.unlink(link_id, actor=principal.user)


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a user holds beyond the pool-wide roles."""

    projects: dict[str, Role]
    """Project -> their role in it (researcher or pi)."""
    programs: list[str]
    """Programs they manage."""


def holdings(books: Books, principal: Principal, names: Sequence[str]) -> dict[str, Holdings]:
    """The project memberships and managed programs of each of ``names`` (admin and auditor),
    as the users list shows them beside the pool-wide roles."""
    require(principal, principal.reads_everything, "read users' roles")
    wanted = set(names)
    found: dict[str, Holdings] = {name: Holdings({}, []) for name in names}
    for member in books.people.members():
        if member.user in wanted:
            found[member.user].projects[member.project] = Role(member.role)
    for account in books.tree():
        if account.kind is AccountKind.PROGRAM:
            for manager in books.people.program_managers(account.name):
                if manager in wanted:
                    found[manager].programs.append(account.name)
    for each in found.values():
        each.programs.sort()
    return found
