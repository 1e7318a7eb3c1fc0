"""Priority grants: who may run work above ``normal``, and the rule every submission passes.

Anyone in a project may submit ``normal`` or ``opportunistic`` work. A class above ``normal``
(``urgent``: it jumps the queue and is never preempted) needs a **priority grant** held by the
project: made by a program manager of the project's program, or an admin, and lapsing at its
``expires_at`` when one is set. The rule is checked when a job is submitted, whichever interface
it comes through, before anything is written; a job already queued keeps the class it was
accepted with. Who used a granted class is counted in the fair-share report.

Pure: the service reads the grant and the tree, these functions decide.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from quotas.access import Principal, Scope
from quotas.accounts import AccountKind, AccountTree
from quotas.admission import PriorityClass
from quotas.errors import InvalidInput, PriorityNotGranted

GRANTED_CLASSES: tuple[PriorityClass, ...] = tuple(
    each for each in PriorityClass if each.order < PriorityClass.NORMAL.order
)
"""The classes above ``normal``, which need a grant: ``urgent``."""


def needs_grant(priority: PriorityClass) -> bool:
    return priority in GRANTED_CLASSES


@dataclass(frozen=True, slots=True)
class PriorityGrant:
    """A project may submit work of ``priority`` (a class above ``normal``)."""

    project: str
    priority: PriorityClass
    granted_by: str
    granted_at: datetime
    expires_at: datetime | None = None
    """When the grant lapses; ``None``: until it is revoked."""

    def __post_init__(self) -> None:
        if not needs_grant(self.priority):
            raise InvalidInput(
                f"{self.priority} work needs no grant; only "
                + ", ".join(each.value for each in GRANTED_CLASSES)
                + " is granted"
            )
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise InvalidInput("a grant's expiry needs a time zone (e.g. 2026-12-31T00:00:00Z)")
        if self.expires_at is not None and self.expires_at <= self.granted_at:
            raise InvalidInput(
                f"a grant must expire after it is made ({self.granted_at.isoformat()}); "
                f"got {self.expires_at.isoformat()}"
            )

    def in_force(self, at: datetime) -> bool:
        return self.expires_at is None or at < self.expires_at


def program_of(tree: AccountTree, project: str) -> str:
    """The program whose managers grant ``project`` its priority classes."""
    return next(node.name for node in tree.path(project) if node.kind is AccountKind.PROGRAM)


def may_grant(principal: Principal, tree: AccountTree, project: str) -> bool:
    """Grant or revoke a priority class: an admin, or a program manager of the project's
    program, with a token that carries the ``manage`` scope. A pi or a researcher never may,
    not even for their own project."""
    if not principal.allows(Scope.MANAGE):
        return False
    return principal.is_admin or principal.manages_program_of(tree, project)


def check_priority(
    tree: AccountTree,
    project: str,
    priority: PriorityClass,
    grant: PriorityGrant | None,
    at: datetime,
) -> None:
    """Refuse work of ``priority`` in ``project`` at ``at`` unless ``grant`` (the project's
    grant of that class, if any) is in force; ``normal`` and below always pass."""
    if not needs_grant(priority):
        return
    ask = (
        f"ask a program manager of {program_of(tree, project)} for a grant, or submit it as normal"
    )
    if grant is None:
        why = f"{priority} work in {project} needs a priority grant, and {project} holds none"
    elif not grant.in_force(at):
        expired = grant.expires_at.isoformat() if grant.expires_at is not None else ""
        why = f"{project}'s grant of {priority} work lapsed at {expired}"
    else:
        return
    raise PriorityNotGranted(project, priority.value, f"{why}; {ask}")
