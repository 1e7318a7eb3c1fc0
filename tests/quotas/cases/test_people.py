"""The people use cases: admin and auditor read users and identity links; only an admin with
the ``manage`` scope adds users, grants and revokes roles, links identities; the pool always
keeps an admin."""

from __future__ import annotations

import pytest

from quotas.access import Principal, Role, Scope
from quotas.cases.people import (
    add_user,
    grant_role,
    identity_links,
    link_group,
    link_subject,
    revoke_role,
    unlink_identity,
    users,
)
from quotas.errors import Forbidden, InvalidInput, MissingScope, NotFound
from quotas.service import Books
from tests.quotas.cases.conftest import ROLES, narrowed, outcome

READS_EVERYTHING = {role: "ok" if role in ("admin", "auditor") else "Forbidden" for role in ROLES}
ONLY_ADMIN = {role: "ok" if role == "admin" else "Forbidden" for role in ROLES}


def test_users_and_identity_links_are_read_by_admin_and_auditor(
    pool: Books, cast: dict[str, Principal]
) -> None:
    assert {role: outcome(users, pool, cast[role]) for role in ROLES} == READS_EVERYTHING
    assert {role: outcome(identity_links, pool, cast[role]) for role in ROLES} == READS_EVERYTHING
    with pytest.raises(Forbidden, match=r"^jaehyun.kim may not list users$"):
        users(pool, cast["pm"])
    found, total = users(pool, cast["auditor"], limit=500)
    assert total == len(found) == 11
    assert {user.name: user.roles for user in found if user.roles} == {
        "admin": [Role.ADMIN],
        "auditor.kim": [Role.AUDITOR],
        "yuna.shin": [Role.AUDITOR],  # the demo pool's auditor
    }


def test_only_an_admin_adds_users(pool: Books, cast: dict[str, Principal]) -> None:
    added = {
        role: outcome(add_user, pool, cast[role], f"new.{role.replace('_', '-')}") for role in ROLES
    }

    assert added == ONLY_ADMIN
    with pytest.raises(MissingScope):
        add_user(pool, narrowed(cast["admin"], Scope.READ), "new.reader")
    assert pool.people.has_user("new.admin")
    assert not pool.people.has_user("new.pm")


def test_an_admin_grants_and_revokes_pool_roles_but_never_the_last_admin(
    pool: Books, cast: dict[str, Principal]
) -> None:
    with pytest.raises(Forbidden, match=r"^auditor.kim may not grant roles$"):
        grant_role(pool, cast["auditor"], "jiwoo.jung", Role.AUDITOR)

    granted = grant_role(pool, cast["admin"], "jiwoo.jung", Role.AUDITOR)
    again = grant_role(pool, cast["admin"], "jiwoo.jung", Role.AUDITOR)

    assert granted == again
    assert granted.roles == [Role.AUDITOR]
    assert pool.audit.search(action="role.grant", target="user/jiwoo.jung")[1] == 1
    with pytest.raises(InvalidInput, match=r"^admin is the last admin; grant another admin first$"):
        revoke_role(pool, cast["admin"], "admin", Role.ADMIN)
    with pytest.raises(NotFound, match=r"^jiwoo.jung does not hold the admin role$"):
        revoke_role(pool, cast["admin"], "jiwoo.jung", Role.ADMIN)
    with pytest.raises(MissingScope):
        revoke_role(pool, narrowed(cast["admin"], Scope.READ), "jiwoo.jung", Role.AUDITOR)
    revoke_role(pool, cast["admin"], "jiwoo.jung", Role.AUDITOR)
    assert pool.roles.principal("jiwoo.jung").pool_roles == frozenset()


def test_only_an_admin_links_and_unlinks_identities(
    pool: Books, cast: dict[str, Principal]
) -> None:
    issuer = "https://sso.example.kr"

    with pytest.raises(Forbidden, match=r"^jaehyun.kim may not link identities$"):
        link_subject(pool, cast["pm"], issuer, "sub-1", "jiwoo.jung")
    with pytest.raises(Forbidden):
        link_group(pool, cast["auditor"], issuer, "nlp", Role.RESEARCHER, "kaist-nlp")
    subject = link_subject(pool, cast["admin"], issuer, "sub-1", "jiwoo.jung")
    group = link_group(pool, cast["admin"], issuer, "nlp", Role.RESEARCHER, "kaist-nlp")

    links = {link.id: link for link in identity_links(pool, cast["auditor"])}
    assert links[subject].user == "jiwoo.jung"
    assert (links[group].role, links[group].account) == (Role.RESEARCHER, "kaist-nlp")
    with pytest.raises(Forbidden, match=r"^seoyeon.lee may not remove identity links$"):
        unlink_identity(pool, cast["pi"], group)
    unlink_identity(pool, cast["admin"], group)
    assert [link.id for link in identity_links(pool, cast["admin"])] == [subject]
