"""The account tree: pool -> program -> organization -> project, validated as a whole.

An admin who mistypes a share, nests a project straight under a program or moves an account
under its own descendant must be refused before anything is stored; reports walk the tree by
path, ancestors and descendants, and an unknown name is a clear "no such account".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from quotas.accounts import Account, AccountKind, AccountTree, check_name
from quotas.errors import InvalidInput, NoSuchAccount, TreeError
from quotas.quantities import Credits

POOL, PROGRAM, ORGANIZATION, PROJECT = AccountKind


def demo_accounts() -> list[Account]:
    return [
        Account("national", POOL),
        Account("startups", PROGRAM, "national", share=2),
        Account("universities", PROGRAM, "national", share=3),
        Account("hanbit", ORGANIZATION, "startups"),
        Account("kaist", ORGANIZATION, "universities", share=2),
        Account("snu", ORGANIZATION, "universities"),
        Account("hanbit-robot", PROJECT, "hanbit"),
        Account("kaist-nlp", PROJECT, "kaist"),
        Account("kaist-vision", PROJECT, "kaist"),
        Account("snu-bio", PROJECT, "snu"),
    ]


@pytest.fixture
def tree() -> AccountTree:
    return AccountTree.of(demo_accounts())


def names(accounts: Iterable[Account]) -> list[str]:
    return [account.name for account in accounts]


# --- one account ---------------------------------------------------------------------------------


def test_an_account_defaults_to_share_one_no_budget_no_guarantee_no_borrowing_cap() -> None:
    account = Account("kaist", ORGANIZATION, "universities")
    assert account.share == 1
    assert account.budget is None
    assert account.guaranteed_gpus == 0
    assert account.borrowing_limit_gpus is None


def test_zero_share_budget_guarantee_and_borrowing_are_allowed() -> None:
    account = Account(
        "kaist",
        ORGANIZATION,
        "universities",
        share=0,
        budget=Credits.zero(),
        guaranteed_gpus=0,
        borrowing_limit_gpus=0,
    )
    assert account.share == 0
    assert account.budget == Credits.zero()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("share", -1, "share must not be negative"),
        ("budget", Credits(-1), "budget must not be negative"),
        ("guaranteed_gpus", -8, "guaranteed GPUs must not be negative"),
        ("borrowing_limit_gpus", -1, "borrowing limit must not be negative"),
    ],
)
def test_negative_quotas_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Account("kaist", ORGANIZATION, "universities", **{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name",
    ["a", "kaist", "kaist-nlp", "0", "a1-b2-c3", "x" * 64, "a" + "-" * 62 + "b", "2025-q1"],
)
def test_valid_names(name: str) -> None:
    assert check_name(name) == name
    assert Account(name, POOL).name == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "KAIST",
        "Kaist",
        "kaist_nlp",
        "kaist nlp",
        "-kaist",
        "kaist-",
        "-",
        "kaist.nlp",
        "x" * 65,
        "kaist/nlp",
        "카이스트",
        " kaist",
    ],
)
def test_invalid_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="not a valid name"):
        Account(name, POOL)


def test_a_name_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(InvalidInput, match="not a valid name"):
        check_name("kaist\n")


@given(st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?", fullmatch=True))
def test_every_well_formed_name_is_accepted(name: str) -> None:
    assert check_name(name) == name


# --- validating a tree ---------------------------------------------------------------------------


def test_the_demo_tree_is_valid(tree: AccountTree) -> None:
    assert tree.root.name == "national"
    assert len(list(tree)) == 10
    assert "kaist-nlp" in tree
    assert "nowhere" not in tree


def test_an_empty_tree_is_allowed() -> None:
    assert list(AccountTree.of([])) == []


def test_two_roots_are_refused() -> None:
    with pytest.raises(TreeError, match="exactly one pool at its root, found 2"):
        AccountTree.of([Account("national", POOL), Account("regional", POOL)])


def test_a_root_that_is_not_a_pool_is_refused() -> None:
    with pytest.raises(TreeError, match="only the pool may have no parent"):
        AccountTree.of([Account("startups", PROGRAM)])


def test_a_tree_without_any_root_is_refused() -> None:
    with pytest.raises(TreeError, match="found 0"):
        AccountTree.of([Account("national", POOL, "national")])


@pytest.mark.parametrize(
    ("account", "message"),
    [
        (Account("stray-nlp", PROJECT, "universities"), "a project must sit under an organization"),
        (
            Account("stray-org", ORGANIZATION, "national"),
            "an organization must sit under a program",
        ),
        (Account("stray-nlp", PROJECT, "national"), "must sit under"),
        (Account("research", PROGRAM, "startups"), "a program must sit under a pool"),
        (Account("deep", PROJECT, "kaist-nlp"), "must sit under"),
        (Account("regional", POOL, "national"), "sits at the root"),
    ],
)
def test_kinds_must_nest_pool_program_organization_project(account: Account, message: str) -> None:
    with pytest.raises(TreeError, match=message):
        AccountTree.of([*demo_accounts(), account])


def test_an_unknown_parent_is_refused() -> None:
    with pytest.raises(TreeError, match="parent 'nowhere' does not exist"):
        AccountTree.of([*demo_accounts(), Account("lost", PROJECT, "nowhere")])


def test_two_accounts_with_one_name_are_refused() -> None:
    with pytest.raises(TreeError, match="two accounts are named 'kaist'"):
        AccountTree.of([*demo_accounts(), Account("kaist", ORGANIZATION, "startups")])


# --- changing a tree -----------------------------------------------------------------------------


def test_with_account_adds_an_account_and_leaves_the_old_tree_alone(tree: AccountTree) -> None:
    bigger = tree.with_account(Account("snu-robotics", PROJECT, "snu"))
    assert "snu-robotics" in bigger
    assert "snu-robotics" not in tree
    assert names(bigger.children("snu")) == ["snu-bio", "snu-robotics"]
    assert names(tree.children("snu")) == ["snu-bio"]


def test_with_account_moves_an_organization_to_another_program(tree: AccountTree) -> None:
    moved = tree.with_account(Account("kaist", ORGANIZATION, "startups", share=2))
    assert names(moved.path("kaist-nlp")) == ["national", "startups", "kaist", "kaist-nlp"]
    assert names(moved.projects("startups")) == ["hanbit-robot", "kaist-nlp", "kaist-vision"]
    assert names(moved.projects("universities")) == ["snu-bio"]


def test_with_account_replaces_a_share(tree: AccountTree) -> None:
    changed = tree.with_account(Account("universities", PROGRAM, "national", share=7))
    assert changed["universities"].share == 7
    assert tree["universities"].share == 3


@pytest.mark.parametrize(
    ("account", "descendant"),
    [
        (Account("universities", PROGRAM, "kaist"), "kaist"),
        (Account("universities", PROGRAM, "kaist-nlp"), "kaist-nlp"),
        (Account("kaist", ORGANIZATION, "kaist-nlp"), "kaist-nlp"),
        (Account("national", POOL, "snu-bio"), "snu-bio"),
    ],
)
def test_moving_an_account_under_its_own_descendant_is_refused(
    tree: AccountTree, account: Account, descendant: str
) -> None:
    with pytest.raises(TreeError, match=f"moving {account.name} under {descendant} makes a cycle"):
        tree.with_account(account)


@pytest.mark.parametrize(
    "account",
    [Account("kaist", ORGANIZATION, "kaist"), Account("newbie", ORGANIZATION, "newbie")],
)
def test_an_account_cannot_be_its_own_parent(tree: AccountTree, account: Account) -> None:
    with pytest.raises(TreeError):
        tree.with_account(account)


def test_an_existing_account_named_as_its_own_parent_says_so(tree: AccountTree) -> None:
    with pytest.raises(TreeError, match="kaist cannot be its own parent"):
        tree.with_account(Account("kaist", ORGANIZATION, "kaist"))


def test_with_account_refuses_an_unknown_parent(tree: AccountTree) -> None:
    with pytest.raises(TreeError, match="parent 'nowhere' does not exist"):
        tree.with_account(Account("lost", PROJECT, "nowhere"))


def test_with_account_refuses_a_wrong_kind_move(tree: AccountTree) -> None:
    with pytest.raises(TreeError, match="must sit under"):
        tree.with_account(Account("kaist-nlp", PROJECT, "universities"))


def test_with_account_refuses_a_second_root(tree: AccountTree) -> None:
    with pytest.raises(TreeError, match="exactly one pool"):
        tree.with_account(Account("regional", POOL))


# --- walking a tree ------------------------------------------------------------------------------


def test_path_runs_from_the_pool_down_to_the_account(tree: AccountTree) -> None:
    assert names(tree.path("kaist-nlp")) == ["national", "universities", "kaist", "kaist-nlp"]
    assert names(tree.path("national")) == ["national"]


def test_ancestors_are_nearest_first(tree: AccountTree) -> None:
    assert names(tree.ancestors("kaist-nlp")) == ["kaist", "universities", "national"]
    assert names(tree.ancestors("startups")) == ["national"]
    assert tree.ancestors("national") == []


def test_children_are_sorted_by_name(tree: AccountTree) -> None:
    assert names(tree.children("national")) == ["startups", "universities"]
    assert names(tree.children("kaist")) == ["kaist-nlp", "kaist-vision"]
    assert tree.children("kaist-nlp") == []


def test_descendants_are_every_account_below_depth_first(tree: AccountTree) -> None:
    assert names(tree.descendants("universities")) == [
        "kaist",
        "kaist-nlp",
        "kaist-vision",
        "snu",
        "snu-bio",
    ]
    assert list(tree.descendants("snu-bio")) == []
    assert len(list(tree.descendants("national"))) == 9


def test_projects_in_the_whole_tree_and_under_an_account(tree: AccountTree) -> None:
    assert sorted(names(tree.projects())) == [
        "hanbit-robot",
        "kaist-nlp",
        "kaist-vision",
        "snu-bio",
    ]
    assert names(tree.projects("universities")) == ["kaist-nlp", "kaist-vision", "snu-bio"]
    assert names(tree.projects("startups")) == ["hanbit-robot"]
    assert names(tree.projects("kaist")) == ["kaist-nlp", "kaist-vision"]
    assert tree.projects("kaist-nlp") == []  # a project is not below itself


@pytest.mark.parametrize(
    ("ancestor", "name", "expected"),
    [
        ("national", "kaist-nlp", True),
        ("universities", "kaist-nlp", True),
        ("kaist", "kaist-nlp", True),
        ("national", "startups", True),
        ("startups", "kaist-nlp", False),
        ("snu", "kaist-nlp", False),
        ("kaist-nlp", "kaist", False),  # a descendant is not an ancestor
        ("kaist", "kaist", False),  # nor is an account its own ancestor
        ("kaist-vision", "kaist-nlp", False),  # nor a sibling
        ("nowhere", "kaist-nlp", False),
    ],
)
def test_is_ancestor(tree: AccountTree, ancestor: str, name: str, expected: bool) -> None:
    assert tree.is_ancestor(ancestor, name) is expected


def test_lookup_by_name(tree: AccountTree) -> None:
    kaist = tree["kaist"]
    assert kaist.kind is ORGANIZATION
    assert kaist.parent == "universities"
    assert kaist.share == 2


@pytest.mark.parametrize(
    "look_up",
    [
        lambda t: t["nowhere"],
        lambda t: t.children("nowhere"),
        lambda t: t.path("nowhere"),
        lambda t: t.ancestors("nowhere"),
        lambda t: list(t.descendants("nowhere")),
        lambda t: t.projects("nowhere"),
        lambda t: t.is_ancestor("national", "nowhere"),
    ],
    ids=["getitem", "children", "path", "ancestors", "descendants", "projects", "is_ancestor"],
)
def test_an_unknown_name_is_no_such_account(
    tree: AccountTree, look_up: Callable[[AccountTree], object]
) -> None:
    with pytest.raises(NoSuchAccount, match="unknown account 'nowhere'") as caught:
        look_up(tree)
    assert caught.value.name == "nowhere"
