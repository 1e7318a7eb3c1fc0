"""The account tree: pool -> program -> organization -> project.

Each node has a share (its weight against its siblings in fair share), and optionally a credit
budget per period (a hard cap on what its subtree may spend), a guaranteed GPU count and a
borrowing limit (GPUs it may use beyond its guarantee when others leave capacity idle). The tree
is an immutable value: changes build a new tree and are validated as a whole, so a bad change
(negative share, a cycle, a project under a program) is refused before anything is stored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from quotas.errors import InvalidInput, NoSuchAccount, TreeError
from quotas.quantities import Credits

NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")


class AccountKind(StrEnum):
    POOL = "pool"
    PROGRAM = "program"
    ORGANIZATION = "organization"
    PROJECT = "project"

    @property
    def parent_kind(self) -> AccountKind | None:
        order = list(AccountKind)
        index = order.index(self)
        return order[index - 1] if index else None


@dataclass(frozen=True, slots=True)
class Account:
    """One node of the tree."""

    name: str
    kind: AccountKind
    parent: str | None = None
    share: int = 1
    budget: Credits | None = None
    """Credit cap for the current period over the whole subtree; ``None`` means no cap."""
    guaranteed_gpus: int = 0
    borrowing_limit_gpus: int | None = None
    """GPUs usable beyond the guarantee; ``None`` means no limit (work conserving)."""
    display_name: str = ""
    may_burst: bool = False
    """A project's: whether its jobs may burst to cloud capacity (a cluster at a domestic or
    foreign cloud site) when the pooled clusters cannot start them in time."""

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.share < 0:
            raise InvalidInput(f"account {self.name}: share must not be negative, got {self.share}")
        if self.budget is not None and self.budget.milli < 0:
            raise InvalidInput(f"account {self.name}: budget must not be negative")
        if self.guaranteed_gpus < 0:
            raise InvalidInput(f"account {self.name}: guaranteed GPUs must not be negative")
        if self.borrowing_limit_gpus is not None and self.borrowing_limit_gpus < 0:
            raise InvalidInput(f"account {self.name}: borrowing limit must not be negative")
        if self.may_burst and self.kind is not AccountKind.PROJECT:
            raise InvalidInput(
                f"account {self.name}: only a project's jobs burst to cloud capacity; "
                f"may_burst is a project's setting, and {self.name} is {with_article(self.kind)}"
            )


def with_article(kind: AccountKind | None) -> str:
    """ "an organization", "a project": a kind as a sentence names it."""
    return f"an {kind}" if kind is AccountKind.ORGANIZATION else f"a {kind}"


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise InvalidInput(
            f"{name!r} is not a valid name: use 1-64 lower-case letters, digits and inner dashes"
        )
    return name


@dataclass(frozen=True)
class AccountTree:
    """A validated tree of accounts, indexed by name."""

    accounts: Mapping[str, Account]
    _children: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        children: dict[str, list[str]] = {name: [] for name in self.accounts}
        roots = [account for account in self.accounts.values() if account.parent is None]
        if len(self.accounts) and len(roots) != 1:
            raise TreeError(f"the tree needs exactly one pool at its root, found {len(roots)}")
        for account in self.accounts.values():
            if account.parent is None:
                if account.kind is not AccountKind.POOL:
                    raise TreeError(f"{account.name}: only the pool may have no parent")
                continue
            if account.kind is AccountKind.POOL:
                raise TreeError(f"{account.name}: the pool sits at the root and has no parent")
            parent = self.accounts.get(account.parent)
            if parent is None:
                raise TreeError(f"{account.name}: parent {account.parent!r} does not exist")
            if account.kind.parent_kind is not parent.kind:
                raise TreeError(
                    f"{account.name}: {with_article(account.kind)} must sit under "
                    f"{with_article(account.kind.parent_kind)}, "
                    f"not under {parent.kind} {parent.name}"
                )
            children[parent.name].append(account.name)
        # Kinds strictly nest (pool > program > organization > project), so no cycle can close;
        # the walk below still checks, as a guard against a corrupted store.
        for name in self.accounts:
            self._path_names(name)
        object.__setattr__(
            self, "_children", {name: tuple(sorted(kids)) for name, kids in children.items()}
        )

    @classmethod
    def of(cls, accounts: Iterable[Account]) -> AccountTree:
        index: dict[str, Account] = {}
        for account in accounts:
            if account.name in index:
                raise TreeError(f"two accounts are named {account.name!r}")
            index[account.name] = account
        return cls(index)

    def _path_names(self, name: str) -> list[str]:
        path: list[str] = []
        seen: set[str] = set()
        current: str | None = name
        while current is not None:
            if current in seen:
                raise TreeError(f"the tree has a cycle through {current!r}")
            seen.add(current)
            path.append(current)
            current = self.accounts[current].parent
        return path[::-1]

    def __getitem__(self, name: str) -> Account:
        try:
            return self.accounts[name]
        except KeyError:
            raise NoSuchAccount(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self.accounts

    def __iter__(self) -> Iterator[Account]:
        return iter(self.accounts.values())

    @property
    def root(self) -> Account:
        return next(account for account in self.accounts.values() if account.parent is None)

    def children(self, name: str) -> list[Account]:
        self[name]
        return [self.accounts[child] for child in self._children[name]]

    def path(self, name: str) -> list[Account]:
        """The accounts from the pool down to ``name``, both included."""
        self[name]
        return [self.accounts[step] for step in self._path_names(name)]

    def ancestors(self, name: str) -> list[Account]:
        """The accounts above ``name``, nearest first."""
        return self.path(name)[-2::-1]

    def is_ancestor(self, ancestor: str, name: str) -> bool:
        return ancestor != name and any(step.name == ancestor for step in self.path(name))

    def descendants(self, name: str) -> Iterator[Account]:
        for child in self.children(name):
            yield child
            yield from self.descendants(child.name)

    def projects(self, under: str | None = None) -> list[Account]:
        scope = self.descendants(under) if under else iter(self)
        return [account for account in scope if account.kind is AccountKind.PROJECT]

    def with_account(self, account: Account) -> AccountTree:
        """A new tree with ``account`` added or replaced, validated as a whole."""
        if account.parent is not None and account.parent not in self.accounts:
            raise TreeError(f"{account.name}: parent {account.parent!r} does not exist")
        if account.parent is not None and account.parent == account.name:
            raise TreeError(f"{account.name} cannot be its own parent")
        if (
            account.name in self.accounts
            and account.parent is not None
            and self.is_ancestor(account.name, account.parent)
        ):
            raise TreeError(f"moving {account.name} under {account.parent} makes a cycle")
        return AccountTree({**self.accounts, account.name: account})
