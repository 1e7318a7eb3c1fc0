"""The invitation use cases: an admin invites anyone, a pi or program manager invites people
new to gpupool into a project whose members they manage; an invitation is redeemed once, for a
token of the invited person, and refused once used, revoked or expired."""

from __future__ import annotations

from datetime import timedelta

import pytest

from quotas.access import Principal, Role, Scope
from quotas.cases.invitations import invite, pending_invitations, redeem, revoke_invitation
from quotas.errors import Forbidden, InvalidInput, MissingScope, NotFound
from quotas.invitations import InvalidInvitation
from quotas.service import Books
from quotas.tokens import verify
from tests.quotas.cases.conftest import ROLES, matrix, narrowed, outcome

DAY = timedelta(days=1)


def test_an_admin_invites_a_new_person_who_signs_in_once(
    pool: Books, cast: dict[str, Principal]
) -> None:
    invited = invite(pool, cast["admin"], "nari.oh", display_name="Oh Na-ri", email="n@x.kr")

    assert invited.created
    assert invited.project is None
    assert pool.people.user("nari.oh") == ("nari.oh", "Oh Na-ri", "n@x.kr")
    assert invited.invitation.expires_at == pool.clock() + timedelta(days=7)
    assert invited.invitation.invitation.startswith("gpi_")
    redeemed = redeem(pool, invited.invitation.invitation, "laptop", [Scope.READ], 30 * DAY)
    assert redeemed.user == "nari.oh"
    _, principal = verify(pool.session, redeemed.token.token, pool.clock())
    assert principal.user == "nari.oh"
    assert principal.scopes == frozenset({Scope.READ})
    with pytest.raises(InvalidInvitation, match=r"^this invitation was already used"):
        redeem(pool, invited.invitation.invitation, "again", [Scope.READ], DAY)
    actions = [entry.action for entry in pool.audit.entries(target="user/nari.oh")]
    assert actions[:3] == ["invitation.use", "invitation.issue", "user.add"]


def test_a_pi_or_program_manager_invites_new_people_into_their_project(
    pool: Books, cast: dict[str, Principal]
) -> None:
    invited = {
        role: outcome(invite, pool, cast[role], f"new.{role}", project="kaist-nlp")
        for role in ROLES
    }

    assert invited == matrix(
        "admin=ok auditor=Forbidden pm=ok other_pm=NotFound "
        "pi=ok researcher=Forbidden outsider=NotFound"
    )
    members = {m.user: m.role for m in pool.people.members_of("kaist-nlp")}
    assert members["new.pi"] == members["new.pm"] == "researcher"
    assert not pool.people.has_user("new.researcher")
    as_pi = invite(pool, cast["pi"], "new.lead", project="kaist-nlp", role=Role.PI)
    assert as_pi.role is Role.PI
    with pytest.raises(Forbidden, match=r"^jaehyun.kim may not invite people outside a project"):
        invite(pool, cast["pm"], "new.loose")
    with pytest.raises(MissingScope):
        invite(pool, narrowed(cast["admin"], Scope.READ), "new.reader")


def test_only_an_admin_invites_someone_who_has_an_account(
    pool: Books, cast: dict[str, Principal]
) -> None:
    for existing in ("admin", "jiwoo.jung", "minji.park"):
        with pytest.raises(Forbidden, match=rf"^{existing} already has a gpupool account"):
            invite(pool, cast["pm"], existing, project="kaist-nlp")
    assert pending_invitations(pool, cast["admin"]) == []

    again = invite(pool, cast["admin"], "jiwoo.jung", project="kaist-nlp")

    assert not again.created
    assert again.role is Role.RESEARCHER


def test_invitations_are_listed_and_revoked_by_whoever_issued_them_or_an_admin(
    pool: Books, cast: dict[str, Principal]
) -> None:
    by_pi = invite(pool, cast["pi"], "new.one", project="kaist-nlp").invitation
    by_admin = invite(pool, cast["admin"], "new.two").invitation

    assert [each.id for each in pending_invitations(pool, cast["auditor"])] == [
        by_pi.id,
        by_admin.id,
    ]
    assert [each.id for each in pending_invitations(pool, cast["pi"])] == [by_pi.id]
    assert pending_invitations(pool, cast["pm"]) == []
    with pytest.raises(NotFound, match=rf"^no invitation {by_admin.id}$"):
        revoke_invitation(pool, cast["pi"], by_admin.id)
    revoke_invitation(pool, cast["pi"], by_pi.id)
    revoke_invitation(pool, cast["admin"], by_admin.id)
    revoke_invitation(pool, cast["admin"], by_admin.id)  # again: nothing changes

    assert pending_invitations(pool, cast["admin"]) == []
    assert pool.audit.search(action="invitation.revoke")[1] == 2
    with pytest.raises(InvalidInvitation, match=r"^this invitation was revoked"):
        redeem(pool, by_pi.invitation, "x", [Scope.READ], DAY)


def test_an_invitation_expires(pool: Books, cast: dict[str, Principal]) -> None:
    issued = invite(pool, cast["admin"], "new.late", lifetime=2 * DAY).invitation
    later = replace_clock(pool, 2 * DAY)

    with pytest.raises(InvalidInvitation, match=r"^this invitation has expired"):
        redeem(later, issued.invitation, "x", [Scope.READ], DAY)
    assert pending_invitations(later, cast["admin"]) == []
    with pytest.raises(InvalidInput, match="within 30 days"):
        invite(pool, cast["admin"], "new.long", lifetime=31 * DAY)
    with pytest.raises(InvalidInput, match="at most 90 days"):
        redeem(pool, issued.invitation, "x", [Scope.READ], 91 * DAY)


def replace_clock(books: Books, ahead: timedelta) -> Books:
    """The same books on the same session, ``ahead`` of now."""
    now = books.clock()
    return Books(books.session, clock=lambda: now + ahead)


def test_a_refused_redemption_uses_nothing_up(pool: Books, cast: dict[str, Principal]) -> None:
    issued = invite(pool, cast["admin"], "new.careful").invitation

    with pytest.raises(InvalidInput, match="at least one scope"):
        redeem(pool, issued.invitation, "x", [], DAY)
    with pytest.raises(InvalidInvitation, match=r"^this invitation is unknown"):
        redeem(pool, issued.invitation[:-4] + "AAAA", "x", [Scope.READ], DAY)

    assert redeem(pool, issued.invitation, "x", [Scope.JOBS], DAY).user == "new.careful"
