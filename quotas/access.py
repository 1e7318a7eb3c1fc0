"""Who may see and change what: roles, the principal behind a request, and the scoping rules.

Roles come from gpupool's own records, never from the identity provider's say-so: project
memberships (researcher, pi), program managers, and pool-wide grants (admin, auditor).

The rules, one place for every interface (REST, Ray-compatible API, pages, CLI):
- admin and auditor read everything; only admin changes the pool (funders, periods, programs,
  clusters, flavors, rate cards) and nobody writes the ledger except through its operations;
- a program manager reads and manages the accounts inside their programs and reviews their
  requests, as an admin may, but nobody reviews a request they made or whose project they
  belong to (``quotas.allocations.Reviewers``); a pi manages their project's members and
  requests allocations for it; a researcher submits, watches and cancels jobs in their projects;
- a token carries scopes that narrow what its holder may do: ``read`` sees the books (accounts,
  jobs, requests, the catalogue, reports, the ledger, the audit log, users), ``jobs`` submits,
  follows (state and logs) and cancels jobs, ``manage`` changes accounts, members, quotas,
  allocation requests, the catalogue, tokens, users and roles. ``portal/scopes.py`` names the
  scope each operation of the API needs.

A read outside a principal's scope answers "not found", so names do not leak; an action on
something the principal may read but not change answers "forbidden".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from quotas.accounts import AccountKind, AccountTree
from quotas.errors import MissingScope


class Role(StrEnum):
    RESEARCHER = "researcher"
    PI = "pi"
    PROGRAM_MANAGER = "program_manager"
    ADMIN = "admin"
    AUDITOR = "auditor"


POOL_ROLES = frozenset({Role.ADMIN, Role.AUDITOR})
PROJECT_ROLES = frozenset({Role.RESEARCHER, Role.PI})


class Scope(StrEnum):
    """What a token may be used for, whatever its holder's roles allow (see the module doc)."""

    READ = "read"
    JOBS = "jobs"
    MANAGE = "manage"


ALL_SCOPES = frozenset(Scope)


@dataclass(frozen=True, slots=True)
class Principal:
    """The person behind a request, with what gpupool's records let them do."""

    user: str
    pool_roles: frozenset[Role] = frozenset()
    projects: Mapping[str, Role] = field(default_factory=dict)
    """Project -> the person's role in it (researcher or pi)."""
    programs: frozenset[str] = frozenset()
    """Programs the person manages."""
    scopes: frozenset[Scope] = ALL_SCOPES
    """What the credential of this request allows."""
    token_id: int | None = None
    """The gpupool token behind this request: the bearer token, or the one a browser session was
    signed in with. ``None`` for a credential of the identity provider."""
    token_expires_at: datetime | None = None
    """When that token expires; ``None`` when it never does (or there is no token)."""

    @property
    def roles(self) -> frozenset[Role]:
        held = set(self.pool_roles) | set(self.projects.values())
        if self.programs:
            held.add(Role.PROGRAM_MANAGER)
        return frozenset(held)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.pool_roles

    @property
    def reads_everything(self) -> bool:
        return bool(self.pool_roles & POOL_ROLES)

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    def require(self, scope: Scope) -> None:
        """Refuse (``MissingScope``: 403, naming the scope) unless the credential carries it."""
        if scope not in self.scopes:
            raise MissingScope(scope.value)

    def allows_any(self, scopes: Iterable[Scope]) -> bool:
        return not self.scopes.isdisjoint(scopes)

    def manages_program_of(self, tree: AccountTree, account: str) -> bool:
        return any(node.name in self.programs for node in tree.path(account))

    def can_read_account(self, tree: AccountTree, account: str) -> bool:
        if self.reads_everything:
            return True
        if self.manages_program_of(tree, account):
            return True
        return account in self.projects

    def readable_accounts(self, tree: AccountTree) -> list[str]:
        """Names of the accounts this principal may read, in tree order."""
        ordered = [tree.root, *tree.descendants(tree.root.name)]
        return [node.name for node in ordered if self.can_read_account(tree, node.name)]

    def readable_projects(self, tree: AccountTree) -> list[str] | None:
        """Projects whose jobs this principal may read; ``None`` means all of them."""
        if self.reads_everything:
            return None
        return [
            name for name in self.readable_accounts(tree) if tree[name].kind is AccountKind.PROJECT
        ]

    def project_names(self, tree: AccountTree) -> list[str]:
        """The projects this principal may see (every one for admin and auditor), in tree
        order: the only names a refusal may list to them (none in a pool with no accounts)."""
        if not tree.accounts:
            return []
        readable = self.readable_projects(tree)
        if readable is not None:
            return readable
        ordered = [tree.root, *tree.descendants(tree.root.name)]
        return [node.name for node in ordered if node.kind is AccountKind.PROJECT]

    def can_submit_to(self, project: str) -> bool:
        return self.allows(Scope.JOBS) and (self.is_admin or project in self.projects)

    def can_cancel(self, tree: AccountTree, project: str, submitter: str) -> bool:
        if not self.allows(Scope.JOBS):
            return False
        if self.is_admin or self.projects.get(project) is Role.PI:
            return True
        if self.manages_program_of(tree, project):
            return True
        return project in self.projects and submitter == self.user

    def can_request_allocation(self, project: str) -> bool:
        return self.allows(Scope.MANAGE) and (
            self.is_admin or self.projects.get(project) is Role.PI
        )

    def can_manage_account(self, tree: AccountTree, account: str) -> bool:
        """Set shares, budgets, guarantees and borrowing limits: admin anywhere, a program
        manager for the organizations and projects inside their programs."""
        if not self.allows(Scope.MANAGE):
            return False
        if self.is_admin:
            return True
        node = tree[account]
        return node.kind not in (AccountKind.POOL, AccountKind.PROGRAM) and (
            self.manages_program_of(tree, account)
        )

    def can_manage_members(self, tree: AccountTree, project: str) -> bool:
        if not self.allows(Scope.MANAGE):
            return False
        return (
            self.is_admin
            or self.projects.get(project) is Role.PI
            or self.manages_program_of(tree, project)
        )

    def can_administer(self) -> bool:
        """Funders, periods, programs, clusters, flavors, rate cards, role grants."""
        return self.allows(Scope.MANAGE) and self.is_admin


def principal(
    user: str,
    pool_roles: Iterable[Role] = (),
    projects: Mapping[str, Role] | None = None,
    programs: Iterable[str] = (),
    scopes: Iterable[Scope] = ALL_SCOPES,
) -> Principal:
    return Principal(
        user=user,
        pool_roles=frozenset(pool_roles),
        projects=dict(projects or {}),
        programs=frozenset(programs),
        scopes=frozenset(scopes),
    )
