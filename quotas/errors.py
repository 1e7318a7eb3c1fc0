"""Domain errors, named in the words of the books.

Each error says what is wrong in a sentence a person can act on. The portal maps them to HTTP in
one place; the CLI prints them. An operation that raises one has changed nothing.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BooksError(Exception):
    """Base of every error the quota engine raises on bad input or a forbidden operation."""


class InvalidInput(BooksError):
    """A value is out of range or malformed (negative share, zero GPUs, time limit <= 0, ...)."""


class Unspecified(BooksError):
    """The request leaves out, or names wrongly, something the books cannot choose for the
    caller (the project an upload is charged to); the message says how to name it (400)."""


class NotFound(BooksError):
    """Something named does not exist."""


class Conflict(BooksError):
    """The request contradicts what the books already hold; asking again will not help."""


class AlreadyExists(Conflict):
    """Something with that name (or id) is already there."""


class PeriodClosed(Conflict):
    """The funding period has expired: its books are closed to new movements."""


class AlreadyDone(Conflict):
    """The operation was already carried out (a ledger entry reversed twice, ...)."""


SHOWN_NAMES = 20
"""A refusal of a mistyped name lists at most this many of the names that would do."""


def names_to_use(name: str, known: Iterable[str], what: str) -> str:
    """What to say after a mistyped ``name``: the closest of ``known`` (a name that starts
    with it, else the most alike by ``difflib``), and the names ``what`` may be, sorted (the
    first ``SHOWN_NAMES``); "" when none are known. Only names the reader may see belong in
    ``known``."""
    names = sorted(set(known))
    if not names:
        return ""
    started = [each for each in names if each.lower().startswith(name.lower())]
    close = started[:1] or difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    shown = ", ".join(names[:SHOWN_NAMES])
    if len(names) > SHOWN_NAMES:
        shown += f" and {len(names) - SHOWN_NAMES} more"
    hint = f" (did you mean {close[0]}?)" if close else ""
    return f"{hint}; {what}: {shown}"


class NoSuchFlavor(NotFound):
    def __init__(self, name: str, known: Iterable[str] = ()) -> None:
        super().__init__(f"unknown flavor {name!r}{names_to_use(name, known, 'flavors')}")
        self.name = name


class NoSuchProject(NotFound):
    """A project that does not exist, or that the caller may not see: the same answer, so a
    name never tells them whether it exists; ``known`` names only projects they may see."""

    def __init__(self, name: str, known: Iterable[str] = (), what: str = "your projects") -> None:
        super().__init__(f"no project {name}{names_to_use(name, known, what)}")
        self.name = name


class NoSuchAccount(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown account {name!r}")
        self.name = name


class TreeError(BooksError):
    """The account tree would become invalid (a cycle, a wrong parent kind, a duplicate name)."""


class InsufficientCredits(BooksError):
    """A movement would take more credits than an account holds."""


class BudgetExhausted(InsufficientCredits):
    """A hold would spend past a budget cap of the project or one of its ancestors."""


class InvalidTransition(BooksError):
    """A state machine was asked for a move its transition table does not allow."""


class InvalidRuntimeEnv(BooksError):
    """A job's runtime_env asks for something a tenant may not set, or in a form that names a
    path or an option (``quotas.runtime_env``); the message never quotes the value."""


class StorageFull(BooksError):
    """An uploaded package does not fit the storage left for packages (``quotas.packages``)."""


class ProjectStorageFull(StorageFull):
    """The upload would take the project it is charged to past its package storage quota."""


class PoolStorageFull(StorageFull):
    """The upload would take the pool's package storage past its total."""


class Forbidden(BooksError):
    """The actor may not do this (e.g. reviewing a request outside their program)."""


class MissingScope(Forbidden):
    """The credential lacks the scope the operation needs (a narrowed token)."""

    def __init__(self, scope: str) -> None:
        super().__init__(f"this token lacks the '{scope}' scope")
        self.scope = scope


class ConflictOfInterest(Forbidden):
    """A person reviews (or releases tranches of) an allocation request they made or whose
    project they belong to; the review goes to another manager of the program or to an admin."""


class PriorityNotGranted(Forbidden):
    """Work of a priority class above ``normal`` was submitted to a project without a grant in
    force for that class (see ``quotas.priorities``)."""

    def __init__(self, project: str, priority: str, why: str) -> None:
        super().__init__(why)
        self.project = project
        self.priority = priority
