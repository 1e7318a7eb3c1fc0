"""Fair share: decay, the Fair Tree ranking, its explanation data and its convergence to shares."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotas.accounts import Account, AccountKind, AccountTree
from quotas.errors import InvalidInput, NoSuchAccount
from quotas.fairshare import (
    DEFAULT_HALF_LIFE_SECONDS,
    FairShare,
    decay_factor,
    decayed_usage,
    fair_share,
)

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
DAY = 24 * 3600


@dataclass
class TreeBuilder:
    """Builds an account tree that reads top-down: ``a_pool().program("research", share=3)...``."""

    accounts: list[Account] = field(default_factory=lambda: [Account("pool", AccountKind.POOL)])
    program_name: str = ""
    organization_name: str = ""

    def program(self, name: str, share: int = 1) -> TreeBuilder:
        self.accounts.append(Account(name, AccountKind.PROGRAM, "pool", share))
        self.program_name = name
        return self

    def organization(self, name: str, share: int = 1) -> TreeBuilder:
        self.accounts.append(Account(name, AccountKind.ORGANIZATION, self.program_name, share))
        self.organization_name = name
        return self

    def project(self, name: str, share: int = 1) -> TreeBuilder:
        self.accounts.append(Account(name, AccountKind.PROJECT, self.organization_name, share))
        return self

    def build(self) -> AccountTree:
        return AccountTree.of(self.accounts)


def a_pool() -> TreeBuilder:
    return TreeBuilder()


def projects_under(tree: AccountTree, name: str) -> list[str]:
    if tree[name].kind is AccountKind.PROJECT:
        return [name]
    return [project.name for project in tree.projects(under=name)]


# --- 1. convergence under sustained demand ------------------------------------------------------


def converge(
    tree: AccountTree, steps: int, half_life_steps: float | None
) -> tuple[dict[str, float], dict[str, int]]:
    """Every step the top-ranked project gets one credit; returns (decayed usage, units won)."""
    usage = {project.name: 0.0 for project in tree.projects()}
    won = dict.fromkeys(usage, 0)
    step_factor = 1.0 if half_life_steps is None else decay_factor(1, half_life_steps)
    for _ in range(steps):
        winner = fair_share(tree, usage).ranking[0]
        usage = {name: amount * step_factor for name, amount in usage.items()}
        usage[winner] += 1.0
        won[winner] += 1
    return usage, won


@pytest.mark.parametrize("half_life_steps", [None, 500.0])
def test_sibling_programs_with_shares_3_to_1_converge_to_3_to_1_of_usage(
    half_life_steps: float | None,
) -> None:
    tree = (
        a_pool()
        .program("research", share=3)
        .organization("kaist")
        .project("nlp")
        .project("vision")
        .program("startup", share=1)
        .organization("acme")
        .project("chat")
        .build()
    )

    usage, won = converge(tree, steps=2_000, half_life_steps=half_life_steps)

    research = usage["nlp"] + usage["vision"]
    assert research / usage["chat"] == pytest.approx(3.0, rel=0.02)
    assert (won["nlp"] + won["vision"]) / won["chat"] == pytest.approx(3.0, rel=0.02)
    # Inside research, two equal-share projects split its part evenly.
    assert usage["nlp"] / usage["vision"] == pytest.approx(1.0, rel=0.02)


def test_sibling_projects_with_shares_3_to_1_converge_to_3_to_1_of_usage() -> None:
    tree = (
        a_pool()
        .program("research")
        .organization("kaist")
        .project("big", share=3)
        .project("small", share=1)
        .build()
    )

    usage, _ = converge(tree, steps=2_000, half_life_steps=None)

    assert usage["big"] / usage["small"] == pytest.approx(3.0, rel=0.02)


# --- 2. the Fair Tree property on random trees ---------------------------------------------------

usage_amounts = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.001, max_value=1e6, allow_nan=False, allow_infinity=False),
)


@st.composite
def trees_with_usage(draw: st.DrawFn) -> tuple[AccountTree, dict[str, float]]:
    shares = st.integers(min_value=1, max_value=10)
    builder = a_pool()
    usage: dict[str, float] = {}
    programs = draw(st.integers(1, 4))
    for p in range(programs):
        builder.program(f"g{p}", share=draw(shares))
        for o in range(draw(st.integers(1, 3))):
            builder.organization(f"g{p}-o{o}", share=draw(shares))
            for j in range(draw(st.integers(0, 3))):
                name = f"g{p}-o{o}-j{j}"
                builder.project(name, share=draw(shares))
                usage[name] = draw(usage_amounts)
    # Sometimes make one whole subtree idle, next to busy siblings.
    idle_program = draw(st.none() | st.sampled_from([f"g{p}" for p in range(programs)]))
    if idle_program is not None:
        for name in usage:
            if name.startswith(f"{idle_program}-"):
                usage[name] = 0.0
    return builder.build(), usage


def project_ranks(tree: AccountTree, result: FairShare, name: str) -> list[int]:
    return [result.rank(project) for project in projects_under(tree, name)]


@settings(max_examples=200, deadline=None)
@given(trees_with_usage())
def test_a_higher_level_fair_share_subtree_ranks_all_its_projects_first(
    case: tuple[AccountTree, dict[str, float]],
) -> None:
    tree, usage = case
    result = fair_share(tree, usage)

    assert sorted(result.ranking) == sorted(project.name for project in tree.projects())
    assert [result.rank(name) for name in result.ranking] == list(range(len(result.ranking)))
    for parent in tree:
        siblings = tree.children(parent.name)
        for a in siblings:
            for b in siblings:
                fs_a, fs_b = result.explain(a.name), result.explain(b.name)
                ranks_a = project_ranks(tree, result, a.name)
                ranks_b = project_ranks(tree, result, b.name)
                if fs_a.level_fs > fs_b.level_fs:
                    assert fs_a.rank < fs_b.rank
                    if ranks_a and ranks_b:
                        assert max(ranks_a) < min(ranks_b), (a.name, b.name)
                if fs_a.usage == 0 and a.share > 0 and fs_b.usage > 0:
                    assert fs_a.level_fs == math.inf
                    if ranks_a and ranks_b:
                        assert max(ranks_a) < min(ranks_b), (a.name, b.name)


@settings(max_examples=200, deadline=None)
@given(trees_with_usage())
def test_ranking_is_the_order_of_level_fair_share_along_each_path(
    case: tuple[AccountTree, dict[str, float]],
) -> None:
    """An independent oracle: sort projects by their path of (-LF, -share, name) keys."""
    tree, usage = case
    result = fair_share(tree, usage)

    def path_key(project: str) -> list[tuple[float, int, str]]:
        return [
            (-result.explain(step.name).level_fs, -step.share, step.name)
            for step in tree.path(project)[1:]
        ]

    expected = sorted((project.name for project in tree.projects()), key=path_key)
    assert list(result.ranking) == expected


def test_heavy_usage_inside_a_subtree_never_passes_an_idle_sibling() -> None:
    tree = (
        a_pool()
        .program("busy", share=100)
        .organization("busy-org")
        .project("busy-idle-project", share=100)
        .project("busy-heavy-project", share=1)
        .program("quiet", share=1)
        .organization("quiet-org")
        .project("quiet-project")
        .build()
    )

    result = fair_share(tree, {"busy-heavy-project": 1e9, "quiet-project": 0.0})

    assert result.ranking == ("quiet-project", "busy-idle-project", "busy-heavy-project")


def test_ties_go_to_the_larger_share_then_the_name_and_a_zero_share_goes_last() -> None:
    tree = (
        a_pool()
        .program("research")
        .organization("kaist")
        .project("zero", share=0)
        .project("busy", share=5)
        .project("b-idle", share=1)
        .project("a-idle", share=1)
        .project("big-idle", share=2)
        .build()
    )

    result = fair_share(tree, {"busy": 1e6})

    assert result.ranking == ("big-idle", "a-idle", "b-idle", "busy", "zero")
    assert result.explain("zero").level_fs == 0.0
    assert result.factor("big-idle") == 1.0
    assert result.factor("zero") == pytest.approx(0.2)


# --- 3. decay ------------------------------------------------------------------------------------


def test_decay_halves_usage_every_half_life() -> None:
    half_life = 3 * DAY

    def one_charge(age: timedelta) -> float:
        return decayed_usage([(NOW - age, 4_000)], NOW, half_life)

    assert one_charge(timedelta(0)) == 4.0
    assert one_charge(timedelta(days=3)) == pytest.approx(2.0)
    assert one_charge(timedelta(days=6)) == pytest.approx(1.0)
    assert decay_factor(half_life, half_life) == pytest.approx(0.5)
    assert decay_factor(2 * half_life, half_life) == pytest.approx(0.25)
    assert DEFAULT_HALF_LIFE_SECONDS == 7 * DAY


def test_decayed_usage_sums_charges_counts_refunds_and_future_charges_fully() -> None:
    charges = [
        (NOW - timedelta(days=7), 2_000),  # half of 2 credits
        (NOW - timedelta(days=7), -500),  # a refund of the same age: half of -0.5
        (NOW, 250),
        (NOW + timedelta(hours=1), 1_000),  # clock skew: counts fully, never grows
    ]

    total = decayed_usage(charges, NOW, DEFAULT_HALF_LIFE_SECONDS)

    assert total == pytest.approx(1.0 - 0.25 + 0.25 + 1.0)
    assert decayed_usage([], NOW, DEFAULT_HALF_LIFE_SECONDS) == 0.0


def test_an_infinite_half_life_means_no_decay() -> None:
    assert decay_factor(365 * DAY, math.inf) == 1.0


@pytest.mark.parametrize(
    ("elapsed", "half_life"),
    [(-1.0, DAY), (math.nan, DAY), (0.0, 0.0), (10.0, -DAY), (10.0, math.nan)],
)
def test_decay_factor_refuses_bad_input(elapsed: float, half_life: float) -> None:
    with pytest.raises(InvalidInput):
        decay_factor(elapsed, half_life)


def test_decayed_usage_refuses_a_bad_half_life_and_mixed_time_zones() -> None:
    with pytest.raises(InvalidInput):
        decayed_usage([(NOW, 1_000)], NOW, 0)
    with pytest.raises(InvalidInput):
        decayed_usage([(datetime(2025, 1, 1), 1_000)], NOW, DAY)  # noqa: DTZ001 - naive on purpose


# --- 4. explanation data -------------------------------------------------------------------------


def small_national_tree() -> AccountTree:
    return (
        a_pool()
        .program("research", share=3)
        .organization("kaist")
        .project("nlp", share=2)
        .project("vision", share=2)
        .project("speech", share=4)
        .program("startup", share=1)
        .organization("acme")
        .project("chat")
        .project("archive", share=0)
        .build()
    )


SMALL_USAGE: Mapping[str, float] = {"nlp": 30.0, "vision": 10.0, "chat": 60.0}


def test_explanation_shows_normalised_share_usage_and_level_fair_share() -> None:
    result = fair_share(small_national_tree(), SMALL_USAGE)

    def row(name: str) -> tuple[float, float, float, float]:
        node = result.explain(name)
        return (node.usage, node.norm_share, node.norm_usage, node.level_fs)

    exact = pytest.approx
    assert row("pool") == (100.0, 1.0, 1.0, 1.0)
    assert row("research") == exact((40.0, 0.75, 0.4, 0.75 / 0.4))
    assert row("startup") == exact((60.0, 0.25, 0.6, 0.25 / 0.6))
    assert row("kaist") == (40.0, 1.0, 1.0, 1.0)
    assert row("acme") == (60.0, 1.0, 1.0, 1.0)
    assert row("nlp") == exact((30.0, 0.25, 0.75, 1 / 3))
    assert row("vision") == exact((10.0, 0.25, 0.25, 1.0))
    assert row("speech") == (0.0, 0.5, 0.0, math.inf)
    assert row("chat") == (60.0, 1.0, 1.0, 1.0)
    assert row("archive") == (0.0, 0.0, 0.0, 0.0)

    assert result.ranking == ("speech", "vision", "nlp", "chat", "archive")
    assert [result.explain(name).rank for name in ("research", "startup", "kaist", "acme")] == [
        0,
        1,
        0,
        0,
    ]
    assert [result.rank(name) for name in result.ranking] == [0, 1, 2, 3, 4]
    assert [result.factor(name) for name in result.ranking] == exact([1.0, 0.8, 0.6, 0.4, 0.2])
    node = result.explain("nlp")
    assert (node.name, node.kind, node.share) == ("nlp", AccountKind.PROJECT, 2)


def test_interior_usage_is_the_sum_of_its_subtree() -> None:
    tree = small_national_tree()
    result = fair_share(tree, SMALL_USAGE)

    for account in tree:
        expected = sum(SMALL_USAGE.get(name, 0.0) for name in projects_under(tree, account.name))
        assert result.explain(account.name).usage == pytest.approx(expected)


def test_no_usage_at_all_ranks_by_share_then_name() -> None:
    result = fair_share(small_national_tree(), {})

    assert result.ranking == ("speech", "nlp", "vision", "chat", "archive")
    assert result.explain("pool").norm_usage == 0.0
    assert result.explain("research").norm_usage == 0.0


def test_an_empty_tree_ranks_nothing() -> None:
    result = fair_share(AccountTree.of([]), {})

    assert result.ranking == ()


# --- 5. bad input --------------------------------------------------------------------------------


def test_usage_for_an_unknown_project_is_refused() -> None:
    with pytest.raises(NoSuchAccount):
        fair_share(small_national_tree(), {"nobody": 1.0})


@pytest.mark.parametrize("amount", [-0.001, math.nan, math.inf])
def test_negative_or_non_finite_usage_is_refused(amount: float) -> None:
    with pytest.raises(InvalidInput):
        fair_share(small_national_tree(), {"nlp": amount})


def test_usage_is_given_per_project_not_per_interior_node() -> None:
    with pytest.raises(InvalidInput):
        fair_share(small_national_tree(), {"kaist": 1.0})


def test_asking_about_an_unknown_account_or_the_rank_of_a_non_project_is_refused() -> None:
    result = fair_share(small_national_tree(), SMALL_USAGE)

    with pytest.raises(NoSuchAccount):
        result.explain("nobody")
    with pytest.raises(NoSuchAccount):
        result.rank("nobody")
    with pytest.raises(NoSuchAccount):
        result.factor("nobody")
    with pytest.raises(InvalidInput):
        result.rank("kaist")
