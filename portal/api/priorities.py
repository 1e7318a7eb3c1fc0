"""Priority grants: which projects may submit work above ``normal`` (``urgent``).

Whoever may read a project sees its grants; a program manager of the project's program, or an
admin, grants and revokes them (``quotas.priorities``). ``Books`` checks who may, and writes the
audit entry with the grant before and after; a submission of ``urgent`` work to a project
without a grant in force is refused by the queue itself, whichever API it came through.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Path, Response
from pydantic import AwareDatetime, Field

from portal.api.common import Segment, Strict
from portal.deps import PortalDep, PrincipalDep
from quotas.admission import PriorityClass
from quotas.priorities import PriorityGrant

router = APIRouter(tags=["accounts"])

GrantedClass = Annotated[
    PriorityClass, Path(description="A priority class above normal: urgent (normal needs none)")
]


class GrantIn(Strict):
    expires_at: AwareDatetime | None = Field(
        default=None,
        description="When the grant lapses (ISO 8601 with an offset); null: until revoked",
    )


class GrantOut(Strict):
    project: str
    priority: PriorityClass
    granted_by: str = Field(description="The program manager or admin who granted it")
    granted_at: datetime
    expires_at: datetime | None = Field(description="When it lapses; null: until revoked")
    in_force: bool = Field(description="Whether the project may submit work of this class now")


def grant_out(grant: PriorityGrant, now: datetime) -> GrantOut:
    return GrantOut(
        project=grant.project,
        priority=grant.priority,
        granted_by=grant.granted_by,
        granted_at=grant.granted_at,
        expires_at=grant.expires_at,
        in_force=grant.in_force(now),
    )


@router.get(
    "/accounts/{project}/priority-grants",
    summary="A project's priority grants: the classes above normal it may submit",
)
def list_grants(project: Segment, portal: PortalDep, principal: PrincipalDep) -> list[GrantOut]:
    with portal.books() as books:
        grants = books.priority_grants(project, principal)
        now = books.clock()
    return [grant_out(grant, now) for grant in grants]


@router.put(
    "/accounts/{project}/priority-grants/{priority}",
    summary="Grant a project a priority class above normal (its program's manager, or an admin)",
)
def grant_priority(
    project: Segment,
    priority: GrantedClass,
    portal: PortalDep,
    principal: PrincipalDep,
    body: Annotated[GrantIn | None, Body()] = None,
) -> GrantOut:
    """Creates the grant, or replaces the project's grant of that class (a new expiry)."""
    expires_at = body.expires_at if body is not None else None
    with portal.books() as books:
        grant = books.grant_priority(project, priority, principal, expires_at)
        now = books.clock()
    return grant_out(grant, now)


@router.delete(
    "/accounts/{project}/priority-grants/{priority}",
    status_code=204,
    response_class=Response,
    summary="Revoke a project's priority grant (its program's manager, or an admin)",
)
def revoke_priority(
    project: Segment, priority: GrantedClass, portal: PortalDep, principal: PrincipalDep
) -> Response:
    """Later submissions of that class are refused; jobs already queued keep theirs."""
    with portal.books() as books:
        books.revoke_priority(project, priority, principal)
    return Response(status_code=204)
