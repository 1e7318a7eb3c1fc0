"""The books' use cases: each operation a person may ask of the books, checking everything itself.

Every function takes the books and the ``Principal`` asking, and checks in one place what the
REST routes, the CLI and the web pages would otherwise each check, in this order: that the thing
named is the principal's to see (else ``NotFound``, so names do not leak), the token's scope
(``MissingScope``), the role (``Forbidden``), then the business rule. Callers only translate.
The use cases that read job tables live in ``jobs`` (``jobs.cases``, ``jobs.reports``).
"""

from __future__ import annotations

from quotas.access import Principal, Scope
from quotas.errors import Forbidden


def require(principal: Principal, allowed: bool, what: str) -> None:
    """Refuse (``Forbidden``, saying what the principal may not do) unless ``allowed``."""
    if not allowed:
        raise Forbidden(f"{principal.user} may not {what}")


def require_admin(principal: Principal, what: str) -> None:
    """Refuse unless the principal is an admin whose credential carries the ``manage`` scope:
    the pool's own records (catalogue, users, roles, identity links) are an admin's."""
    principal.require(Scope.MANAGE)
    require(principal, principal.can_administer(), what)
