"""The ledger and audit log's use cases: ledger entries scoped to what the principal may read,
accounts outside it not found, and the audit log for admin and auditor only."""

from __future__ import annotations

import pytest

from quotas.access import Principal
from quotas.cases.ledger import audit_entries, visible_entries
from quotas.errors import Forbidden, NotFound
from quotas.ledger import EntryKind
from quotas.service import Books
from tests.quotas.cases.conftest import READ_KAIST_NLP, ROLES, outcome


def accounts_touched(books: Books, principal: Principal) -> set[str]:
    entries, total = visible_entries(books, principal, limit=500)
    assert len(entries) == total
    touched = set()
    for entry in entries:
        touched |= {entry.posting.source.account, entry.posting.target.account} - {None}
    return {name for name in touched if name is not None}


def test_admin_and_auditor_see_every_entry_others_those_of_their_accounts(
    pool: Books, cast: dict[str, Principal]
) -> None:
    _, everything = visible_entries(pool, cast["admin"])
    _, audited = visible_entries(pool, cast["auditor"])
    _, the_pis = visible_entries(pool, cast["pi"])

    assert everything == audited > the_pis > 0
    for role in ("pi", "researcher", "outsider"):
        readable = set(cast[role].readable_accounts(pool.tree()))
        touched = accounts_touched(pool, cast[role])
        assert touched, role
        # an award moves credits from the program into the project: every entry touches one
        for entry in visible_entries(pool, cast[role], limit=500)[0]:
            sides = {entry.posting.source.account, entry.posting.target.account}
            assert sides & readable, (role, entry)


def test_an_account_outside_the_principal_s_scope_is_not_found(
    pool: Books, cast: dict[str, Principal]
) -> None:
    filtered = {
        role: outcome(visible_entries, pool, cast[role], account="kaist-nlp") for role in ROLES
    }

    assert filtered == READ_KAIST_NLP
    awards, _ = visible_entries(pool, cast["pi"], account="kaist-nlp", kinds=[EntryKind.AWARD])
    assert awards
    assert all(entry.posting.target.account == "kaist-nlp" for entry in awards)


def test_an_unknown_period_or_funder_is_not_found(pool: Books, cast: dict[str, Principal]) -> None:
    with pytest.raises(NotFound, match=r"^unknown funder 'nobody'$"):
        visible_entries(pool, cast["admin"], funder="nobody")
    with pytest.raises(NotFound):
        visible_entries(pool, cast["admin"], period="1999-q1")
    _, total = visible_entries(pool, cast["admin"], funder="msit")
    assert total > 0


def test_the_audit_log_is_for_admin_and_auditor_only(
    pool: Books, cast: dict[str, Principal]
) -> None:
    read = {role: outcome(audit_entries, pool, cast[role]) for role in ROLES}

    assert read == {role: "ok" if role in ("admin", "auditor") else "Forbidden" for role in ROLES}
    with pytest.raises(Forbidden, match=r"^jaehyun.kim may not read the audit log$"):
        audit_entries(pool, cast["pm"])
    entries, total = audit_entries(pool, cast["auditor"], action="role.grant")
    assert total == len(entries) == 3  # the admin, auditor.kim and the demo auditor
