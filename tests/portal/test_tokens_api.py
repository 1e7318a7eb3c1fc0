"""Who am I, personal access tokens, and (admin) users, pool-wide roles and identity links."""

from __future__ import annotations

from typing import Any

import pytest

from quotas.access import Scope
from quotas.db.access import IdentityLinkRepository
from tests.portal.conftest import Demo

API = "/api/v1"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def audited(demo: Demo, action: str) -> list[Any]:
    with demo.books() as books:
        return books.audit.search(action=action)[0]


def audit_total(demo: Demo) -> int:
    with demo.books() as books:
        return books.audit.search(limit=1)[1]


def test_me_says_who_you_are_and_what_this_token_allows(demo: Demo) -> None:
    pi = demo.client.get(f"{API}/me", headers=demo.headers("seoyeon.lee")).json()
    narrow = demo.client.get(
        f"{API}/me", headers=bearer(demo.token("minji.park", [Scope.READ]))
    ).json()

    assert pi == {
        "user": "seoyeon.lee",
        "roles": ["pi"],
        "projects": {"kaist-nlp": "pi", "kaist-protein": "pi"},
        "programs": [],
        "scopes": ["jobs", "manage", "read"],
    }
    assert narrow["roles"] == ["program_manager"]
    assert narrow["programs"] == ["startups"]
    assert narrow["scopes"] == ["read"]


def test_a_token_is_shown_once_works_and_can_be_revoked(demo: Demo) -> None:
    made = demo.client.post(
        f"{API}/tokens",
        json={"name": "laptop", "scopes": ["read", "jobs"], "expires_in_days": 30},
        headers=demo.headers("jiwoo.jung"),
    )
    token = made.json()["token"]
    me = demo.client.get(f"{API}/me", headers=bearer(token))
    listed = demo.client.get(f"{API}/tokens", headers=demo.headers("jiwoo.jung")).json()
    revoked = demo.client.delete(
        f"{API}/tokens/{made.json()['id']}", headers=demo.headers("jiwoo.jung")
    )
    refused = demo.client.get(f"{API}/me", headers=bearer(token))
    after = demo.client.get(f"{API}/tokens", headers=demo.headers("jiwoo.jung")).json()

    assert made.status_code == 201, made.text
    assert token.startswith("gpp_")
    assert made.json()["scopes"] == ["jobs", "read"]
    assert made.json()["expires_at"] is not None
    assert me.json()["scopes"] == ["jobs", "read"]
    assert "laptop" in [each["name"] for each in listed]
    assert all("token" not in each for each in listed)
    assert revoked.status_code == 204
    assert refused.status_code == 401
    assert "laptop" not in [each["name"] for each in after]
    issued, gone = audited(demo, "token.issue")[0], audited(demo, "token.revoke")[0]
    assert issued.actor == "jiwoo.jung"
    assert issued.after["scopes"] == ["jobs", "read"]
    assert gone.before == {"id": made.json()["id"], "name": "laptop"}


def test_a_token_carries_no_scope_its_maker_lacks(demo: Demo) -> None:
    read_only = bearer(demo.token("jiwoo.jung", [Scope.READ]))
    manage_only = bearer(demo.token("jiwoo.jung", [Scope.READ, Scope.MANAGE]))
    before = audit_total(demo)

    from_read = demo.client.post(
        f"{API}/tokens", json={"name": "x", "scopes": ["read"]}, headers=read_only
    )
    escalate = demo.client.post(
        f"{API}/tokens", json={"name": "x", "scopes": ["read", "jobs"]}, headers=manage_only
    )
    narrower = demo.client.post(
        f"{API}/tokens", json={"name": "x", "scopes": ["read"]}, headers=manage_only
    )

    assert from_read.status_code == 403
    assert escalate.status_code == 403
    assert "jobs" in escalate.json()["detail"]
    assert narrower.status_code == 201
    assert audit_total(demo) == before + 1


@pytest.mark.parametrize(
    "body",
    [
        {"name": "x", "scopes": ["root"]},
        {"name": "x", "scopes": []},
        {"name": "  ", "scopes": ["read"]},
        {"name": "x" * 101, "scopes": ["read"]},
        {"name": "x", "scopes": ["read"], "expires_in_days": 0},
        {"name": "x", "scopes": ["read"], "expires_in_days": 100_000},
        {"name": "x", "scopes": ["read"], "owner": "admin"},
    ],
)
def test_bad_tokens_are_refused_and_nothing_is_written(demo: Demo, body: dict[str, Any]) -> None:
    before = audit_total(demo)
    tokens = len(demo.client.get(f"{API}/tokens", headers=demo.headers("jiwoo.jung")).json())

    response = demo.client.post(f"{API}/tokens", json=body, headers=demo.headers("jiwoo.jung"))

    assert response.status_code == 422, response.text
    assert audit_total(demo) == before
    assert (
        len(demo.client.get(f"{API}/tokens", headers=demo.headers("jiwoo.jung")).json()) == tokens
    )


def test_only_the_owner_or_an_admin_revokes_a_token(demo: Demo) -> None:
    [mine] = demo.client.get(f"{API}/tokens", headers=demo.headers("jiwoo.jung")).json()

    by_other = demo.client.delete(f"{API}/tokens/{mine['id']}", headers=demo.headers("minji.park"))
    unknown = demo.client.delete(f"{API}/tokens/99999", headers=demo.headers())
    huge = demo.client.delete(f"{API}/tokens/{10**20}", headers=demo.headers())
    by_admin = demo.client.delete(f"{API}/tokens/{mine['id']}", headers=demo.headers())
    still = demo.client.get(f"{API}/me", headers=demo.headers("jiwoo.jung"))

    assert by_other.status_code == 404
    assert unknown.status_code == 404
    assert huge.status_code == 422
    assert by_admin.status_code == 204
    assert still.status_code == 401
    assert audited(demo, "token.revoke")[0].target == "user/jiwoo.jung"


def test_admins_add_users_and_auditors_list_them(demo: Demo) -> None:
    added = demo.client.post(
        f"{API}/users",
        json={"name": "nari.oh", "display_name": "Oh Na-ri", "email": "nari@example.kr"},
        headers=demo.headers(),
    )
    listed = demo.client.get(
        f"{API}/users", params={"limit": 100}, headers=demo.headers("auditor.kim")
    )
    by_researcher = demo.client.get(f"{API}/users", headers=demo.headers("jiwoo.jung"))

    assert added.status_code == 201, added.text
    users = {user["name"]: user for user in listed.json()["items"]}
    assert users["nari.oh"] == {
        "name": "nari.oh",
        "display_name": "Oh Na-ri",
        "email": "nari@example.kr",
        "roles": [],
    }
    assert users["admin"]["roles"] == ["admin"]
    assert users["auditor.kim"]["roles"] == ["auditor"]
    assert listed.json()["total"] == 12
    assert by_researcher.status_code == 403
    assert audited(demo, "user.add")[0].after["name"] == "nari.oh"


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("minji.park", {"name": "nari.oh"}, 403),
        ("auditor.kim", {"name": "nari.oh"}, 403),
        ("admin", {"name": "jiwoo.jung"}, 409),  # taken
        ("admin", {"name": "Nari Oh"}, 422),
        ("admin", {"name": "x" * 65}, 422),
        ("admin", {"name": "nari.oh", "email": "not an email"}, 422),
        ("admin", {"name": "nari.oh", "roles": ["admin"]}, 422),
    ],
)
def test_bad_users_are_refused(demo: Demo, user: str, body: dict[str, Any], status: int) -> None:
    before = audit_total(demo)

    response = demo.client.post(f"{API}/users", json=body, headers=demo.headers(user))

    assert response.status_code == status, response.text
    assert audit_total(demo) == before


def test_pool_roles_are_granted_and_revoked_with_audit(demo: Demo) -> None:
    granted = demo.client.post(
        f"{API}/users/jiwoo.jung/roles", json={"role": "auditor"}, headers=demo.headers()
    )
    twice = demo.client.post(
        f"{API}/users/jiwoo.jung/roles", json={"role": "auditor"}, headers=demo.headers()
    )
    reads_audit = demo.client.get(f"{API}/audit", headers=demo.headers("jiwoo.jung"))
    revoked = demo.client.delete(f"{API}/users/jiwoo.jung/roles/auditor", headers=demo.headers())
    again = demo.client.delete(f"{API}/users/jiwoo.jung/roles/auditor", headers=demo.headers())

    assert granted.status_code == 200, granted.text
    assert granted.json()["roles"] == ["auditor"]
    assert twice.json()["roles"] == ["auditor"]
    assert reads_audit.status_code == 200
    assert revoked.status_code == 204
    assert again.status_code == 404
    grants = [entry for entry in audited(demo, "role.grant") if entry.target == "user/jiwoo.jung"]
    assert len(grants) == 1
    assert audited(demo, "role.revoke")[0].before == {"role": "auditor"}


@pytest.mark.parametrize(
    ("user", "method", "path", "body", "status"),
    [
        ("minji.park", "POST", "/users/jiwoo.jung/roles", {"role": "admin"}, 403),
        ("auditor.kim", "POST", "/users/jiwoo.jung/roles", {"role": "auditor"}, 403),
        ("admin", "POST", "/users/jiwoo.jung/roles", {"role": "pi"}, 422),
        ("admin", "POST", "/users/nobody/roles", {"role": "auditor"}, 404),
        ("admin", "DELETE", "/users/admin/roles/admin", None, 422),  # the last admin stays
        ("admin", "DELETE", "/users/admin/roles/pi", None, 422),
        ("jiwoo.jung", "DELETE", "/users/auditor.kim/roles/auditor", None, 403),
    ],
)
def test_who_may_change_roles(
    demo: Demo, user: str, method: str, path: str, body: Any, status: int
) -> None:
    before = audit_total(demo)

    response = demo.client.request(method, API + path, json=body, headers=demo.headers(user))

    assert response.status_code == status, response.text
    assert audit_total(demo) == before


def test_identity_links_map_subjects_and_groups(demo: Demo) -> None:
    subject = demo.client.post(
        f"{API}/identity-links",
        json={
            "issuer": "https://id.example.kr",
            "claim": "sub",
            "value": "u-1",
            "user": "jiwoo.jung",
        },
        headers=demo.headers(),
    )
    group = demo.client.post(
        f"{API}/identity-links",
        json={
            "issuer": "https://id.example.kr",
            "claim": "group",
            "value": "kaist-nlp-pis",
            "role": "pi",
            "account": "kaist-nlp",
        },
        headers=demo.headers(),
    )

    assert subject.status_code == 201, subject.text
    assert group.status_code == 201, group.text
    assert group.json()["role"] == "pi"
    assert group.json()["user"] is None
    with demo.books() as books:
        links = IdentityLinkRepository(books.session)
        assert links.user_for_subject("https://id.example.kr", "u-1") == "jiwoo.jung"
        grants = links.group_grants("https://id.example.kr", ["kaist-nlp-pis"])
    assert [(str(role), account) for role, account in grants] == [("pi", "kaist-nlp")]
    entries = audited(demo, "identity.link")
    assert [entry.target for entry in entries] == ["account/kaist-nlp", "user/jiwoo.jung"]


@pytest.mark.parametrize(
    ("user", "body", "status"),
    [
        ("jaehyun.kim", {"claim": "group", "role": "pi", "account": "kaist-nlp"}, 403),
        ("admin", {"claim": "sub"}, 422),  # names no user
        ("admin", {"claim": "sub", "user": "nobody"}, 404),
        ("admin", {"claim": "sub", "user": "jiwoo.jung", "role": "pi"}, 422),
        ("admin", {"claim": "group", "role": "pi"}, 422),  # a pi of what?
        ("admin", {"claim": "group", "role": "admin", "account": "kaist-nlp"}, 422),
        ("admin", {"claim": "group", "role": "program_manager", "account": "kaist-nlp"}, 422),
        ("admin", {"claim": "group", "role": "pi", "account": "kaist"}, 422),
        ("admin", {"claim": "group", "role": "pi", "account": "nowhere"}, 404),
        ("admin", {"claim": "email", "user": "jiwoo.jung"}, 422),
        ("admin", {"claim": "sub", "user": "jiwoo.jung", "issuer": ""}, 422),
    ],
)
def test_bad_identity_links_are_refused(
    demo: Demo, user: str, body: dict[str, Any], status: int
) -> None:
    before = audit_total(demo)
    base = {"issuer": "https://id.example.kr", "value": "v"}

    response = demo.client.post(
        f"{API}/identity-links", json=base | body, headers=demo.headers(user)
    )

    assert response.status_code == status, response.text
    assert audit_total(demo) == before


def test_a_subject_links_to_one_user_only(demo: Demo) -> None:
    body = {"issuer": "https://id.example.kr", "claim": "sub", "value": "u-1"}
    first = demo.client.post(
        f"{API}/identity-links", json=body | {"user": "jiwoo.jung"}, headers=demo.headers()
    )
    second = demo.client.post(
        f"{API}/identity-links", json=body | {"user": "minji.park"}, headers=demo.headers()
    )

    assert first.status_code == 201
    assert second.status_code == 409
    assert "already linked" in second.json()["detail"]


def test_an_identity_link_is_listed_and_removed_with_an_audit_entry(demo: Demo) -> None:
    created = demo.client.post(
        f"{API}/identity-links",
        json={
            "issuer": "https://id.example.kr",
            "claim": "sub",
            "value": "u-9",
            "user": "jiwoo.jung",
        },
        headers=demo.headers(),
    ).json()

    listed = demo.client.get(f"{API}/identity-links", headers=demo.headers("auditor.kim")).json()
    removed = demo.client.delete(f"{API}/identity-links/{created['id']}", headers=demo.headers())
    again = demo.client.delete(f"{API}/identity-links/{created['id']}", headers=demo.headers())

    assert [link["value"] for link in listed] == ["u-9"]
    assert removed.status_code == 204
    assert again.status_code == 404
    with demo.books() as books:
        assert (
            IdentityLinkRepository(books.session).user_for_subject("https://id.example.kr", "u-9")
            is None
        )
    (entry,) = audited(demo, "identity.unlink")
    assert entry.target == "user/jiwoo.jung"
    assert entry.before is not None
    assert entry.before["value"] == "u-9"
    assert entry.after is None
