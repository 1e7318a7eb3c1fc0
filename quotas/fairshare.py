"""Hierarchical fair share: who goes next for contended GPUs, in the spirit of Slurm's Fair Tree.

Usage is measured in credits: GPU-hours already multiplied by the exchange rate of the flavor
they ran on, so usage is normalised across GPU generations (an hour on a v100-32g at 0.25
counts a quarter of an hour on the reference h100-80g). Usage decays exponentially with a
half-life ``T`` (default 7 days): a charge of ``m`` milli-credits made at time ``t`` counts
``m / 1000 * 0.5 ** ((now - t) / T)`` credits at ``now`` (a charge in the future counts fully).
This is the exact form of Slurm's per-second factor ``d = 1 - 0.693 / T``. Decayed usage only
orders work; budgets are capped by the non-decaying ledger.

At every level of the account tree, for the children ``i`` of one node::

    S_i  = share_i / sum(share_j for siblings j)          (0 when every sibling has share 0)
    U_i  = usage_i / sum(usage_j for siblings j)          (0 when no sibling has usage)
    LF_i = S_i / U_i                                      (inf when U_i == 0 and S_i > 0;
                                                           0 when S_i == 0)

where a node's usage is the decayed usage of every project in its subtree. The pool itself has
``S = 1`` and ``U = 1`` (0 when nothing was used). The tree is walked depth-first from the pool,
visiting the children of each node in order of decreasing ``LF``, ties broken by larger raw share,
then by name. Projects are ranked in walk order, so every project under a higher-LF subtree ranks
before every project under a lower-LF sibling: heavy use inside one subtree never lets its members
pass an idle sibling's. A project's fair-share factor is ``(n - rank) / n`` for ``n`` projects,
1.0 for the most deserving. Everything is computed in one bottom-up and one top-down pass.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from quotas.accounts import AccountKind, AccountTree
from quotas.errors import InvalidInput, NoSuchAccount
from quotas.quantities import MILLI

DEFAULT_HALF_LIFE_SECONDS = 7 * 24 * 3600


def decay_factor(elapsed_seconds: float, half_life_seconds: float) -> float:
    """``0.5 ** (elapsed / half_life)``: the weight left on usage that is ``elapsed`` seconds old.

    A half-life of ``math.inf`` means no decay (factor 1.0).
    """
    if math.isnan(elapsed_seconds) or elapsed_seconds < 0:
        raise InvalidInput(f"elapsed time must be zero or more seconds, got {elapsed_seconds}")
    if math.isnan(half_life_seconds) or half_life_seconds <= 0:
        raise InvalidInput(f"the usage half-life must be positive, got {half_life_seconds}")
    if math.isinf(half_life_seconds):
        return 1.0
    return math.pow(0.5, elapsed_seconds / half_life_seconds)


def decayed_usage(
    charges: Iterable[tuple[datetime, int]], now: datetime, half_life_seconds: float
) -> float:
    """Decayed usage in credits of ``(time, milli-credits)`` charges (refunds are negative).

    Each charge counts ``milli / 1000 * decay_factor(now - time)``; a charge dated after ``now``
    counts fully.
    """
    terms: list[float] = []
    for when, milli in charges:
        try:
            elapsed = (now - when).total_seconds()
        except TypeError:
            raise InvalidInput(
                "charge times and now must all be timezone-aware or all be naive"
            ) from None
        terms.append(milli / MILLI * decay_factor(max(elapsed, 0.0), half_life_seconds))
    return math.fsum(terms)


@dataclass(frozen=True, slots=True)
class NodeFairShare:
    """Why one account sits where it does: the columns of a fair-share report (like ``sshare``)."""

    name: str
    kind: AccountKind
    share: int
    """Raw share weight."""
    norm_share: float
    """``share / sum of sibling shares`` (the pool: 1.0)."""
    usage: float
    """Decayed, exchange-rate-normalised usage in credits of the whole subtree."""
    norm_usage: float
    """``usage / sum of sibling usage``; 0.0 when the siblings have no usage."""
    level_fs: float
    """``norm_share / norm_usage``; ``math.inf`` when unused with a share; 0.0 with no share."""
    rank: int
    """Projects: place in the ranking (0 = most deserving). Others: place among siblings."""


@dataclass(frozen=True)
class FairShare:
    """The result of one fair-share computation: every node's explanation and the project order."""

    nodes: Mapping[str, NodeFairShare]
    ranking: tuple[str, ...]
    """Project names, most deserving first."""

    def explain(self, name: str) -> NodeFairShare:
        try:
            return self.nodes[name]
        except KeyError:
            raise NoSuchAccount(name) from None

    def rank(self, project: str) -> int:
        """Position of ``project`` in the ranking, 0 for the most deserving."""
        node = self.explain(project)
        if node.kind is not AccountKind.PROJECT:
            raise InvalidInput(f"{project} is {node.kind.value}, not a project: it has no rank")
        return node.rank

    def factor(self, project: str) -> float:
        """Fair-share factor in (0, 1]: ``(n - rank) / n``, 1.0 for the most deserving project."""
        total = len(self.ranking)
        return (total - self.rank(project)) / total


def fair_share(tree: AccountTree, usage: Mapping[str, float]) -> FairShare:
    """Rank every project of ``tree`` by Fair Tree, given decayed usage in credits per project.

    Projects missing from ``usage`` have used nothing. A name not in the tree raises
    ``NoSuchAccount``; usage given for a non-project, or negative or non-finite usage, raises
    ``InvalidInput``.
    """
    for name, amount in usage.items():
        kind = tree[name].kind
        if kind is not AccountKind.PROJECT:
            raise InvalidInput(f"usage is counted per project; {name} is {kind.value}")
        if not math.isfinite(amount) or amount < 0:
            raise InvalidInput(f"usage of {name} must be a finite, non-negative number: {amount}")
    if not tree.accounts:
        return FairShare(MappingProxyType({}), ())
    shape = _shape(tree)
    children, shares = shape.children, shape.shares

    # Bottom-up: subtree usage, children before parents (reverse of a pre-order walk).
    subtree_usage: dict[str, float] = {}
    fsum = math.fsum
    for name in reversed(shape.preorder):
        kids = children[name]
        subtree_usage[name] = usage.get(name, 0.0) + (
            fsum([subtree_usage[kid] for kid in kids]) if kids else 0.0
        )

    # Per level: normalised share and usage, level fair share, and sibling order.
    root = shape.root
    root_usage = subtree_usage[root]
    root_norm_usage = 1.0 if root_usage > 0 else 0.0
    level: dict[str, tuple[float, float, float]] = {
        root: (1.0, root_norm_usage, _level_fs(1.0, root_norm_usage))
    }
    order: dict[str, list[str]] = {}
    sibling_rank: dict[str, int] = {root: 0}
    for parent, kids in children.items():
        if not kids:
            order[parent] = []
            continue
        share_sum = shape.share_sums[parent]
        usage_sum = fsum([subtree_usage[kid] for kid in kids])
        for kid in kids:
            norm_share = shares[kid] / share_sum if share_sum else 0.0
            norm_usage = subtree_usage[kid] / usage_sum if usage_sum else 0.0
            level[kid] = (norm_share, norm_usage, _level_fs(norm_share, norm_usage))
        if len(kids) == 1:
            ordered = list(kids)
        else:
            ranked = sorted([(-level[kid][2], -shares[kid], kid) for kid in kids])
            ordered = [kid for _, _, kid in ranked]
        order[parent] = ordered
        for position, kid in enumerate(ordered):
            sibling_rank[kid] = position

    # Top-down: depth-first walk, highest level fair share first; projects ranked in walk order.
    ranking: list[str] = []
    projects = shape.projects
    stack = [root]
    while stack:
        name = stack.pop()
        if name in projects:
            ranking.append(name)
        stack.extend(reversed(order[name]))
    nodes = _Nodes(tree, shape, subtree_usage, level, sibling_rank, ranking)
    return FairShare(nodes, tuple(ranking))


@dataclass(frozen=True)
class _Shape:
    """What fair share reads of a tree's shape, worked out once per tree (trees are values)."""

    root: str
    preorder: tuple[str, ...]
    children: Mapping[str, tuple[str, ...]]
    shares: Mapping[str, int]
    share_sums: Mapping[str, int]
    projects: frozenset[str]


_SHAPES: dict[int, tuple[AccountTree, _Shape]] = {}
"""The shapes of the trees ranked lately, by the tree's identity (the tree is kept with its
shape, so an identity is never reused while its entry stands)."""


def _shape(tree: AccountTree) -> _Shape:
    found = _SHAPES.get(id(tree))
    if found is not None and found[0] is tree:
        return found[1]
    children = {
        account.name: tuple(c.name for c in tree.children(account.name)) for account in tree
    }
    root = tree.root.name
    preorder: list[str] = []
    stack = [root]
    while stack:
        name = stack.pop()
        preorder.append(name)
        stack.extend(children[name])
    shares = {account.name: account.share for account in tree}
    shape = _Shape(
        root=root,
        preorder=tuple(preorder),
        children=children,
        shares=shares,
        share_sums={name: sum(shares[kid] for kid in kids) for name, kids in children.items()},
        projects=frozenset(a.name for a in tree if a.kind is AccountKind.PROJECT),
    )
    if len(_SHAPES) >= 16:
        _SHAPES.pop(next(iter(_SHAPES)))
    _SHAPES[id(tree)] = (tree, shape)
    return shape


class _Nodes(Mapping[str, NodeFairShare]):
    """Every account's ``NodeFairShare``, made when first asked for: a cycle asks for few."""

    def __init__(
        self,
        tree: AccountTree,
        shape: _Shape,
        usage: Mapping[str, float],
        level: Mapping[str, tuple[float, float, float]],
        sibling_rank: Mapping[str, int],
        ranking: list[str],
    ) -> None:
        self._tree = tree
        self._shape = shape
        self._usage = usage
        self._level = level
        self._sibling_rank = sibling_rank
        self._ranking = ranking
        self._project_rank: dict[str, int] | None = None
        self._made: dict[str, NodeFairShare] = {}

    def __getitem__(self, name: str) -> NodeFairShare:
        made = self._made.get(name)
        if made is not None:
            return made
        account = self._tree.accounts[name]
        if self._project_rank is None:
            self._project_rank = {project: i for i, project in enumerate(self._ranking)}
        norm_share, norm_usage, level_fs = self._level[name]
        made = self._made[name] = NodeFairShare(
            name=name,
            kind=account.kind,
            share=account.share,
            norm_share=norm_share,
            usage=self._usage[name],
            norm_usage=norm_usage,
            level_fs=level_fs,
            rank=self._project_rank.get(name, self._sibling_rank[name]),
        )
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._shape.preorder)

    def __len__(self) -> int:
        return len(self._shape.preorder)


def _level_fs(norm_share: float, norm_usage: float) -> float:
    if norm_share == 0:
        return 0.0
    if norm_usage == 0:
        return math.inf
    return norm_share / norm_usage
