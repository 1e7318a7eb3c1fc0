"""Invitations: a one-time, expiring sign-in for a named person, and redeeming one.

An admin invites anyone (the user is made if the name is new); a pi or program manager invites
people new to gpupool into a project whose members they manage. The invitation is shown once,
with its sign-in link ``<portal>/signin?invite=<invitation>``; gpupool keeps only its hash. It
is used once: a browser signs in with the link, or ``POST /invitations/redeem`` exchanges it
for a personal access token of the invited user (no other credential needed: the invitation is
one). Used, revoked or expired, it is refused with a sentence saying which, and never whose it
is. The rules are the use cases' (``quotas.cases.invitations``); every change is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import Field

from portal.api.common import Strict
from portal.api.tokens import IssuedTokenOut, UserName
from portal.deps import PortalDep, PrincipalDep
from portal.problems import Problem
from quotas.access import Role, Scope
from quotas.cases import invitations
from quotas.db.access import Invitation
from quotas.invitations import DEFAULT_LIFETIME, MAX_LIFETIME, InvalidInvitation

router = APIRouter(tags=["people"])

InvitationId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def signin_link(base_url: str, invitation: str) -> str:
    return f"{base_url}/signin?invite={invitation}"


class NewInvitation(Strict):
    user: UserName
    display_name: str = Field(default="", max_length=200, description="For a new user")
    email: str = Field(
        default="", max_length=254, pattern=r"^$|^[^@\s]+@[^@\s]+$", description="For a new user"
    )
    expires_in_days: int = Field(default=DEFAULT_LIFETIME.days, ge=1, le=MAX_LIFETIME.days)
    project: str | None = Field(
        default=None,
        max_length=64,
        description="Make them a member of this project; needed by anyone but an admin",
    )
    role: Literal["researcher", "pi"] = Field(
        default="researcher", description="Their role in the project"
    )


class IssuedInvitationOut(Strict):
    id: int
    user: str
    invitation: str = Field(description="Shown once; send it to the person, to no one else")
    link: str = Field(description="The sign-in link: the invitation in a URL")
    expires_at: datetime
    created_user: bool = Field(description="Whether the invitation made the user")
    project: str | None
    role: Role | None = Field(description="Their role in the project")


class InvitationOut(Strict):
    id: int
    user: str
    invited_by: str
    created_at: datetime
    expires_at: datetime


class Redemption(Strict):
    invitation: str = Field(min_length=1, max_length=200)
    token_name: str = Field(default="from invitation", min_length=1, max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=3)
    expires_in_days: int = Field(
        default=30, ge=1, le=invitations.MAX_TOKEN_LIFETIME.days, description="The token's life"
    )


class RedeemedOut(IssuedTokenOut):
    user: str


def invitation_out(found: Invitation) -> InvitationOut:
    return InvitationOut(
        id=found.id,
        user=found.user,
        invited_by=found.invited_by,
        created_at=found.created_at,
        expires_at=found.expires_at,
    )


@router.post("/invitations", status_code=201, summary="Invite a person: a one-time sign-in link")
def invite(body: NewInvitation, portal: PortalDep, principal: PrincipalDep) -> IssuedInvitationOut:
    with portal.books() as books:
        invited = invitations.invite(
            books,
            principal,
            body.user,
            display_name=body.display_name,
            email=body.email,
            lifetime=timedelta(days=body.expires_in_days),
            project=body.project,
            role=Role(body.role),
        )
    issued = invited.invitation
    return IssuedInvitationOut(
        id=issued.id,
        user=issued.user,
        invitation=issued.invitation,
        link=signin_link(portal.settings.base_url, issued.invitation),
        expires_at=issued.expires_at,
        created_user=invited.created,
        project=invited.project,
        role=invited.role,
    )


@router.get(
    "/invitations",
    summary="Pending invitations: all for admins and auditors, your own for anyone else",
)
def list_invitations(portal: PortalDep, principal: PrincipalDep) -> list[InvitationOut]:
    with portal.books() as books:
        found = invitations.pending_invitations(books, principal)
    return [invitation_out(each) for each in found]


@router.delete(
    "/invitations/{invitation_id}",
    status_code=204,
    response_class=Response,
    summary="Revoke an invitation: your own, or anyone's as admin",
)
def revoke_invitation(
    invitation_id: InvitationId, portal: PortalDep, principal: PrincipalDep
) -> Response:
    with portal.books() as books:
        invitations.revoke_invitation(books, principal, invitation_id)
    return Response(status_code=204)


@router.post(
    "/invitations/redeem",
    status_code=201,
    summary="Use an invitation up for a personal access token of the invited person",
)
def redeem(body: Redemption, portal: PortalDep) -> RedeemedOut:
    scopes = sorted(set(body.scopes))
    try:
        with portal.books() as books:
            redeemed = invitations.redeem(
                books,
                body.invitation,
                body.token_name,
                scopes,
                timedelta(days=body.expires_in_days),
            )
    except InvalidInvitation as error:
        raise Problem(400, f"{error}") from error
    return RedeemedOut(
        id=redeemed.token.id,
        token=redeemed.token.token,
        name=body.token_name,
        scopes=scopes,
        created_at=redeemed.at,
        expires_at=redeemed.token.expires_at,
        user=redeemed.user,
    )
