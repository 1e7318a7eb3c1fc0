"""The account use cases against every role: who sees an account (else "not found"), who
changes its quota, budget and members (else "forbidden"), and a token without ``manage``."""

from __future__ import annotations

import pytest

from quotas.access import Principal, Role, Scope
from quotas.accounts import Account, AccountKind
from quotas.cases.accounts import (
    NO_BALANCES,
    account_view,
    add_account,
    add_member,
    add_program_manager,
    change_account,
    members,
    program_managers,
    remove_member,
    remove_program_manager,
    set_budget,
    set_member_role,
    visible_accounts,
)
from quotas.errors import Forbidden, InvalidInput, MissingScope, NotFound
from quotas.quantities import Credits
from quotas.service import Books
from tests.quotas.cases.conftest import READ_KAIST_NLP, ROLES, matrix, narrowed, outcome

MANAGERS_OF_KAIST_NLP = matrix(
    "admin=ok auditor=Forbidden pm=ok other_pm=NotFound "
    "pi=Forbidden researcher=Forbidden outsider=NotFound"
)


def test_an_account_is_seen_by_its_readers_and_not_found_by_anyone_else(
    pool: Books, cast: dict[str, Principal]
) -> None:
    seen = {role: outcome(account_view, pool, cast[role], "kaist-nlp") for role in ROLES}

    assert seen == READ_KAIST_NLP
    view = account_view(pool, cast["pi"], "kaist-nlp")
    assert view.account.name == "kaist-nlp"
    assert view.balances.available == Credits.of(24_000)


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        ("pi", ["kaist-nlp", "kaist-protein"]),
        ("researcher", ["hanbit-robot-policy", "kaist-nlp"]),
        ("outsider", ["postech-materials"]),
        ("pm", ["kaist", "kaist-nlp", "kaist-protein", "postech", "postech-materials", "snu"]),
    ],
)
def test_the_accounts_listed_are_those_the_principal_may_read(
    pool: Books, cast: dict[str, Principal], role: str, expected: list[str]
) -> None:
    period, views = visible_accounts(pool, cast[role])

    names = sorted(view.account.name for view in views)
    assert period == pool.current_period().name
    if role == "pm":
        assert names == sorted([*expected, "snu-medical-imaging", "universities"])
    else:
        assert names == expected


def test_admin_and_auditor_list_every_account(pool: Books, cast: dict[str, Principal]) -> None:
    everything = {account.name for account in pool.tree()}

    for role in ("admin", "auditor"):
        _, views = visible_accounts(pool, cast[role])
        assert {view.account.name for view in views} == everything


def test_an_unknown_period_is_not_found(pool: Books, cast: dict[str, Principal]) -> None:
    with pytest.raises(NotFound):
        visible_accounts(pool, cast["admin"], "1999-q1")


def test_only_an_admin_or_the_program_manager_changes_an_account(
    pool: Books, cast: dict[str, Principal]
) -> None:
    changed = {
        role: outcome(change_account, pool, cast[role], "kaist-nlp", {"share": 7}) for role in ROLES
    }

    assert changed == MANAGERS_OF_KAIST_NLP
    assert pool.tree()["kaist-nlp"].share == 7
    # the pi may not read the program: its managers are not named to them
    with pytest.raises(
        Forbidden,
        match=r"^seoyeon.lee may not change account kaist-nlp: the managers of its program "
        r"or an admin may$",
    ):
        change_account(pool, cast["pi"], "kaist-nlp", {"share": 3})


def test_a_program_manager_does_not_change_the_program_itself(
    pool: Books, cast: dict[str, Principal]
) -> None:
    with pytest.raises(
        Forbidden,
        match=r"^jaehyun.kim may not change account universities: programs and the pool are "
        r"changed by admins \(admin\)$",
    ):
        change_account(pool, cast["pm"], "universities", {"share": 9})

    view = change_account(pool, cast["admin"], "universities", {"share": 9})
    assert view.account.share == 9


def test_a_token_without_manage_changes_nothing_it_could_otherwise(
    pool: Books, cast: dict[str, Principal]
) -> None:
    reader = narrowed(cast["pm"], Scope.READ, Scope.JOBS)

    with pytest.raises(MissingScope, match=r"'manage'"):
        change_account(pool, reader, "kaist-nlp", {"share": 5})
    with pytest.raises(MissingScope):
        set_budget(pool, reader, "kaist", pool.current_period().name, Credits.of(1))
    # visibility comes first: a name outside the principal's scope is not found, whatever the token
    with pytest.raises(NotFound):
        change_account(pool, narrowed(cast["outsider"], Scope.READ), "kaist-nlp", {"share": 5})
    assert pool.tree()["kaist-nlp"].share != 5


def test_a_budget_is_set_by_whoever_may_manage_the_account(
    pool: Books, cast: dict[str, Principal]
) -> None:
    period = pool.current_period().name

    outcomes = {
        role: outcome(set_budget, pool, cast[role], "kaist-nlp", period, Credits.of(900))
        for role in ROLES
    }

    assert outcomes == MANAGERS_OF_KAIST_NLP
    view = set_budget(pool, cast["pm"], "kaist-nlp", period, None)
    assert view.account.budget is None
    assert set_budget(pool, cast["pm"], "kaist", period, Credits.of(500)).account.budget == (
        Credits.of(500)
    )


def test_a_program_manager_adds_organizations_and_projects_inside_their_program(
    pool: Books, cast: dict[str, Principal]
) -> None:
    project = add_account(pool, cast["pm"], "kaist-vision", AccountKind.PROJECT, "kaist", share=3)

    assert project == Account("kaist-vision", AccountKind.PROJECT, "kaist", share=3)
    assert pool.tree()["kaist-vision"] == project
    with pytest.raises(Forbidden, match=r"may not add program physics under universities"):
        add_account(pool, cast["pm"], "physics", AccountKind.PROGRAM, "universities")
    with pytest.raises(NotFound, match=r"no account kaist"):
        add_account(pool, cast["other_pm"], "x", AccountKind.PROJECT, "kaist")
    with pytest.raises(Forbidden):
        add_account(pool, cast["auditor"], "y", AccountKind.PROJECT, "kaist")
    with pytest.raises(MissingScope):
        add_account(pool, narrowed(cast["admin"], Scope.READ), "z", AccountKind.PROJECT, "kaist")


def test_an_account_s_settings_are_checked_only_once_the_principal_may_add_it(
    pool: Books, cast: dict[str, Principal]
) -> None:
    with pytest.raises(NotFound):
        add_account(pool, cast["other_pm"], "bad name", AccountKind.PROJECT, "kaist", share=-1)
    with pytest.raises(InvalidInput, match=r"share must not be negative"):
        add_account(pool, cast["pm"], "negative", AccountKind.PROJECT, "kaist", share=-1)


def test_only_an_admin_adds_a_root(pool: Books, cast: dict[str, Principal]) -> None:
    with pytest.raises(Forbidden, match=r"may not add pool other under None"):
        add_account(pool, cast["pm"], "other", AccountKind.POOL, None)


def test_members_are_listed_for_readers_of_a_project_and_nothing_else_has_members(
    pool: Books, cast: dict[str, Principal]
) -> None:
    listed = {role: outcome(members, pool, cast[role], "kaist-nlp") for role in ROLES}

    assert listed == READ_KAIST_NLP
    assert {(m.user, m.role) for m in members(pool, cast["researcher"], "kaist-nlp")} == {
        ("seoyeon.lee", "pi"),
        ("jiwoo.jung", "researcher"),
    }
    with pytest.raises(InvalidInput, match=r"^kaist is an organization; only projects have"):
        members(pool, cast["admin"], "kaist")


def test_the_pi_the_program_manager_and_an_admin_manage_members(
    pool: Books, cast: dict[str, Principal]
) -> None:
    newcomer = {
        "admin": "dohyun.choi",
        "pm": "hyejin.kang",
        "pi": "sungmin.yoon",
    }

    added = {
        role: outcome(
            add_member,
            pool,
            cast[role],
            "kaist-nlp",
            newcomer.get(role, "minji.park"),
            Role.RESEARCHER,
        )
        for role in ROLES
    }

    assert added == matrix(
        "admin=ok auditor=Forbidden pm=ok other_pm=NotFound "
        "pi=ok researcher=Forbidden outsider=NotFound"
    )
    names = {member.user for member in pool.people.members_of("kaist-nlp")}
    assert set(newcomer.values()) <= names
    assert "minji.park" not in names


def test_removing_a_member_is_on_the_same_terms(pool: Books, cast: dict[str, Principal]) -> None:
    with pytest.raises(
        Forbidden,
        match=r"^jiwoo.jung may not manage the members of kaist-nlp: its pi \(seoyeon.lee\), "
        r"the managers of its program or an admin may$",
    ):
        remove_member(pool, cast["researcher"], "kaist-nlp", "seoyeon.lee")
    with pytest.raises(MissingScope):
        remove_member(pool, narrowed(cast["pi"], Scope.READ), "kaist-nlp", "jiwoo.jung")

    remove_member(pool, cast["pi"], "kaist-nlp", "jiwoo.jung")

    assert [member.user for member in pool.people.members_of("kaist-nlp")] == ["seoyeon.lee"]


def test_an_account_just_added_holds_nothing(pool: Books, cast: dict[str, Principal]) -> None:
    project = add_account(pool, cast["admin"], "new", AccountKind.PROJECT, "snu")

    view = account_view(pool, cast["admin"], project.name)

    assert view.balances == NO_BALANCES


def test_whoever_manages_members_makes_a_member_pi_or_researcher(
    pool: Books, cast: dict[str, Principal]
) -> None:
    made = {
        role: outcome(set_member_role, pool, cast[role], "kaist-nlp", "jiwoo.jung", Role.PI)
        for role in ROLES
    }

    assert made == matrix(
        "admin=ok auditor=Forbidden pm=ok other_pm=NotFound "
        "pi=ok researcher=Forbidden outsider=NotFound"
    )
    assert {m.user: m.role for m in pool.people.members_of("kaist-nlp")}["jiwoo.jung"] == "pi"
    before = set_member_role(pool, cast["pm"], "kaist-nlp", "jiwoo.jung", Role.RESEARCHER)
    assert before is Role.PI
    assert set_member_role(pool, cast["pi"], "kaist-nlp", "minji.park", Role.RESEARCHER) is None
    assert pool.audit.search(action="membership.change", target="account/kaist-nlp")[1] == 2
    # the auditor may read the program, so the refusal names its managers
    with pytest.raises(
        Forbidden,
        match=r"^auditor.kim may not manage the members of kaist-nlp: its pi \(seoyeon.lee\), "
        r"the managers of universities \(jaehyun.kim\) or an admin may$",
    ):
        set_member_role(pool, cast["auditor"], "kaist-nlp", "jiwoo.jung", Role.PI)


def test_only_an_admin_appoints_and_removes_program_managers(
    pool: Books, cast: dict[str, Principal]
) -> None:
    appointed = {
        role: outcome(add_program_manager, pool, cast[role], "universities", "eunji.han")
        for role in ROLES
    }

    assert appointed == matrix(
        "admin=ok auditor=Forbidden pm=Forbidden other_pm=NotFound "
        "pi=NotFound researcher=NotFound outsider=NotFound"
    )
    assert program_managers(pool, cast["pm"], "universities") == ["eunji.han", "jaehyun.kim"]
    assert add_program_manager(pool, cast["admin"], "universities", "eunji.han") is False
    assert pool.roles.principal("eunji.han").programs == frozenset({"universities"})
    with pytest.raises(
        Forbidden,
        match=r"^jaehyun.kim may not remove managers of universities: admins appoint program "
        r"managers \(admin\)$",
    ):
        remove_program_manager(pool, cast["pm"], "universities", "eunji.han")
    with pytest.raises(InvalidInput, match="only programs have program managers"):
        add_program_manager(pool, cast["admin"], "kaist-nlp", "eunji.han")

    remove_program_manager(pool, cast["admin"], "universities", "eunji.han")

    assert pool.roles.principal("eunji.han").programs == frozenset()
    with pytest.raises(NotFound, match=r"^eunji.han does not manage universities$"):
        remove_program_manager(pool, cast["admin"], "universities", "eunji.han")
    assert pool.audit.search(action="membership.remove", target="account/universities")[1] == 1
