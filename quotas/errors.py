"""Domain errors, named in the words of the books.

Each error says what is wrong in a sentence a person can act on. The portal maps them to HTTP in
one place; the CLI prints them. An operation that raises one has changed nothing.
"""

from __future__ import annotations


class BooksError(Exception):
    """Base of every error the quota engine raises on bad input or a forbidden operation."""


class InvalidInput(BooksError):
    """A value is out of range or malformed (negative share, zero GPUs, time limit <= 0, ...)."""


class NotFound(BooksError):
    """Something named does not exist."""


class NoSuchFlavor(NotFound):
    def __init__(self, name: str) -> None:
        super().__init__(f"unknown flavor {name!r}")
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


class Forbidden(BooksError):
    """The actor may not do this (e.g. reviewing a request outside their program)."""
