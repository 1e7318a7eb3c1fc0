"""The demo pool on a real database with its cast: a principal per role, read from the books'
own records: the cast of ``tests/portal/test_roles.py`` over the same pool, without the
anonymous caller (a use case always has a principal).

======================  ===========  ====================================================
role                    user         why
======================  ===========  ====================================================
admin                   admin        runs the pool
auditor                 auditor.kim  reads everything, changes nothing
pm                      jaehyun.kim  program manager of ``universities`` (kaist-nlp's)
other_pm                minji.park   program manager of ``startups``: kaist-nlp is not theirs
pi                      seoyeon.lee  pi of kaist-nlp and kaist-protein
researcher              jiwoo.jung   researcher in kaist-nlp and hanbit-robot-policy
outsider                eunji.han    pi of postech-materials: kaist-nlp is not theirs
======================  ===========  ====================================================
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from quotas.access import Principal, Role, Scope
from quotas.errors import BooksError
from quotas.service import Books
from tests.portal.test_roles import USERS
from tests.quotas.db.conftest import books, demo  # noqa: F401 - fixtures

CAST = {role: user for role, user in USERS.items() if user is not None}
ROLES = list(CAST)


def matrix(text: str) -> dict[str, str]:
    """Each role's expected outcome, from ``"admin=ok auditor=Forbidden ..."``."""
    found = dict(item.split("=") for item in text.split())
    assert list(found) == ROLES
    return found


READ_KAIST_NLP = matrix(
    "admin=ok auditor=ok pm=ok other_pm=NotFound pi=ok researcher=ok outsider=NotFound"
)
"""Who may see kaist-nlp and what is in it; to anyone else it is not found."""


@pytest.fixture
def pool(demo: Books) -> Books:  # noqa: F811 - the fixture imported above
    """The demo pool with its admin and an auditor."""
    demo.add_user("admin", "Pool Admin")
    demo.grant_role("admin", Role.ADMIN)
    demo.add_user("auditor.kim", "Kim Audit")
    demo.grant_role("auditor.kim", Role.AUDITOR)
    return demo


@pytest.fixture
def cast(pool: Books) -> dict[str, Principal]:
    """Each role's principal as the books' records make it, with every scope."""
    return {role: pool.roles.principal(user) for role, user in CAST.items()}


def narrowed(principal: Principal, *scopes: Scope) -> Principal:
    """The same person behind a token that carries only ``scopes``."""
    return replace(principal, scopes=frozenset(scopes))


def outcome(use_case: Callable[..., object], *args: Any, **kwargs: Any) -> str:
    """``"ok"``, or the name of the domain error the use case raised (any other error fails)."""
    try:
        use_case(*args, **kwargs)
    except BooksError as error:
        return type(error).__name__
    return "ok"
