"""Use cases of invitations: inviting a named person, listing and revoking invitations, and
redeeming one (``quotas.invitations``).

An admin invites anyone, creating the user when the name is new. A pi or a program manager,
who manage a project's members (``Principal.can_manage_members``), invite people new to
gpupool into such a project: an invitation signs its holder in as the invited user, so
inviting someone who already has an account, whatever roles they hold, is an admin's. Issuing
needs the ``manage`` scope. Admins and auditors list every pending invitation; anyone else the
ones they issued. An invitation is revoked by whoever issued it or an admin; anyone else is told
there is no such invitation.

Redeeming takes no principal: the invitation is the credential. It is used up, and answers a
personal access token of the invited user with the scopes asked for (the browser sign-in asks
for every scope, for the session's life). Each issue, use and revocation is audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from quotas.access import Principal, Role, Scope
from quotas.cases import require
from quotas.cases.accounts import readable_project
from quotas.db.access import Invitation, InvitationRepository
from quotas.errors import Forbidden, InvalidInput, NotFound
from quotas.invitations import DEFAULT_LIFETIME, IssuedInvitation, issue, use
from quotas.service import Books
from quotas.tokens import IssuedToken
from quotas.tokens import issue as issue_token

MAX_TOKEN_LIFETIME = timedelta(days=90)
"""The longest a token made from an invitation lives."""


@dataclass(frozen=True, slots=True)
class Invited:
    invitation: IssuedInvitation
    created: bool
    """Whether the invitation made the user."""
    project: str | None
    role: Role | None
    """The role in ``project`` the person holds (``None`` without a project)."""


def invite(
    books: Books,
    principal: Principal,
    user: str,
    *,
    display_name: str = "",
    email: str = "",
    lifetime: timedelta = DEFAULT_LIFETIME,
    project: str | None = None,
    role: Role = Role.RESEARCHER,
) -> Invited:
    """Invite ``user`` (made if new, with ``display_name`` and ``email``), into ``project`` as
    ``role`` when one is named; answers the invitation, shown once."""
    tree = books.tree()
    if project is not None:
        readable_project(books, principal, project)
    principal.require(Scope.MANAGE)
    if not principal.is_admin:
        if project is None:
            raise Forbidden(
                f"{principal.user} may not invite people outside a project: admins do; a pi or "
                "program manager invites new people into a project whose members they manage"
            )
        require(
            principal,
            principal.can_manage_members(tree, project),
            f"invite people into {project}",
        )
        if books.people.has_user(user):
            raise Forbidden(
                f"{user} already has a gpupool account, and only an admin invites someone who "
                f"has one; to add them to {project}, make them a member instead"
            )
    if role not in (Role.RESEARCHER, Role.PI):
        raise InvalidInput(f"an invitation makes a researcher or a pi of a project, not {role}")
    created = not books.people.has_user(user)
    if created:
        books.add_user(user, display_name, email, actor=principal.user)
    held: Role | None = None
    if project is not None:
        members = {member.user: member.role for member in books.people.members_of(project)}
        if user in members:
            held = Role(members[user])
        else:
            books.add_member(user, project, role, actor=principal.user)
            held = role
    now = books.clock()
    issued = issue(books.session, user, principal.user, now, lifetime)
    books.audit.record(
        now,
        principal.user,
        "invitation.issue",
        f"user/{user}",
        None,
        {
            "id": issued.id,
            "expires_at": issued.expires_at.isoformat(),
            "project": project,
            "role": held.value if held is not None else None,
            "created_user": created,
        },
    )
    return Invited(issued, created, project, held)


def pending_invitations(books: Books, principal: Principal) -> list[Invitation]:
    """Invitations not yet used, revoked or expired: all of them for admins and auditors, the
    ones the principal issued for anyone else; oldest first."""
    invited_by = None if principal.reads_everything else principal.user
    return InvitationRepository(books.session).pending(books.clock(), invited_by)


def revoke_invitation(books: Books, principal: Principal, invitation_id: int) -> None:
    """Revoke an invitation before it is used: one's own, or anyone's as admin; revoking one
    used, revoked or expired changes nothing."""
    invitations = InvitationRepository(books.session)
    found = invitations.get(invitation_id)
    if found.invited_by != principal.user and not principal.is_admin:
        raise NotFound(f"no invitation {invitation_id}")
    principal.require(Scope.MANAGE)
    now = books.clock()
    if not found.pending(now):
        return
    invitations.revoke(invitation_id, now)
    books.audit.record(
        now,
        principal.user,
        "invitation.revoke",
        f"user/{found.user}",
        {"id": found.id, "expires_at": found.expires_at.isoformat()},
        None,
    )


@dataclass(frozen=True, slots=True)
class Redeemed:
    user: str
    token: IssuedToken
    at: datetime


def redeem(
    books: Books,
    invitation: str,
    token_name: str,
    scopes: Sequence[Scope],
    lifetime: timedelta,
) -> Redeemed:
    """Use up ``invitation`` for a personal access token of the invited user carrying
    ``scopes`` and living ``lifetime`` (at most ``MAX_TOKEN_LIFETIME``); raises
    ``quotas.invitations.InvalidInvitation`` for an invitation that cannot be used."""
    if lifetime <= timedelta(0) or lifetime > MAX_TOKEN_LIFETIME:
        raise InvalidInput(
            f"a token made from an invitation lives at most {MAX_TOKEN_LIFETIME.days} days"
        )
    if not scopes:
        raise InvalidInput("a token needs at least one scope")
    now = books.clock()
    found = use(books.session, invitation, now)
    token = issue_token(books.session, found.user, token_name, list(scopes), now, now + lifetime)
    books.audit.record(
        now,
        found.user,
        "invitation.use",
        f"user/{found.user}",
        {"id": found.id, "invited_by": found.invited_by},
        {
            "token_id": token.id,
            "token_name": token_name,
            "scopes": sorted(scope.value for scope in scopes),
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return Redeemed(found.user, token, now)
