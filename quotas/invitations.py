"""Invitations: a one-time, expiring sign-in for a named user.

An invitation reads ``gpi_<lookup>_<secret>``, kept like a personal access token
(``quotas.tokens``): ``lookup`` finds the row and only the SHA-256 of the 256-bit secret is
stored, compared in constant time. It is shown once, when it is issued, usually as the link
``<portal>/signin?invite=<invitation>``. It is redeemed once: a browser signs in with it, or a
client exchanges it for a personal access token; either way it is used up. An invitation
expires (``DEFAULT_LIFETIME``, at most ``MAX_LIFETIME``) and can be revoked before it is used.

Refusals say what is wrong with the invitation (unknown, used, revoked, expired) and never
whose it is, so a guessed or stolen-and-spent invitation tells nothing about anyone.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from quotas.db.access import Invitation, InvitationRepository
from quotas.errors import InvalidInput

PREFIX = "gpi_"
DEFAULT_LIFETIME = timedelta(days=7)
MAX_LIFETIME = timedelta(days=30)
MAX_PENDING_PER_USER = 20


class InvalidInvitation(Exception):
    """The invitation is unknown, malformed, used, revoked or expired; the message says which."""


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class IssuedInvitation:
    id: int
    user: str
    invitation: str
    """Shown once; gpupool keeps only its hash."""
    expires_at: datetime


def issue(
    session: Session,
    user: str,
    invited_by: str,
    now: datetime,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> IssuedInvitation:
    """A new invitation for ``user`` (who must exist), expiring after ``lifetime``."""
    if lifetime <= timedelta(0) or lifetime > MAX_LIFETIME:
        raise InvalidInput(
            f"an invitation expires within {MAX_LIFETIME.days} days, and not before it is issued"
        )
    invitations = InvitationRepository(session)
    pending = [each for each in invitations.pending(now) if each.user == user]
    if len(pending) >= MAX_PENDING_PER_USER:
        raise InvalidInput(
            f"{user} already has {MAX_PENDING_PER_USER} pending invitations; revoke some"
        )
    lookup = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    expires_at = now + lifetime
    invitation_id = invitations.add(lookup, _digest(secret), user, invited_by, now, expires_at)
    return IssuedInvitation(invitation_id, user, f"{PREFIX}{lookup}_{secret}", expires_at)


def check(session: Session, invitation: str, now: datetime) -> Invitation:
    """The pending invitation behind ``invitation``, not used up; raises ``InvalidInvitation``."""
    if not invitation.startswith(PREFIX):
        raise InvalidInvitation("this is not a gpupool invitation")
    lookup, _, secret = invitation[len(PREFIX) :].partition("_")
    if len(lookup) != 12 or not secret:
        raise InvalidInvitation("this invitation is malformed; copy the whole link")
    found = InvitationRepository(session).by_lookup(lookup)
    if found is None or not hmac.compare_digest(found.secret_sha256, _digest(secret)):
        raise InvalidInvitation("this invitation is unknown; ask for a new one")
    if found.used_at is not None:
        raise InvalidInvitation("this invitation was already used; ask for a new one")
    if found.revoked_at is not None:
        raise InvalidInvitation("this invitation was revoked; ask for a new one")
    if found.expires_at <= now:
        raise InvalidInvitation("this invitation has expired; ask for a new one")
    return found


def use(session: Session, invitation: str, now: datetime) -> Invitation:
    """Check ``invitation`` and use it up: the next attempt is refused as used."""
    found = check(session, invitation, now)
    if not InvitationRepository(session).use(found.id, now):
        raise InvalidInvitation("this invitation was already used; ask for a new one")
    return found
