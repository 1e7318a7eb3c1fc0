"""Schemathesis fuzzes every operation as each role, with that role's own token.

Whatever a researcher, a pi, a program manager, an auditor or an admin sends: no 5xx, and no
2xx on an operation the role matrix (``tests/portal/test_roles.py``) says the role may not do
at all (403 for it there). Who may do what does not depend on the database, so this runs on
SQLite only; ``tests/portal/test_fuzz.py`` fuzzes every operation on each database as the admin.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.generation.case import Case

from tests.portal.conftest import Demo, Template
from tests.portal.test_fuzz import _openapi
from tests.portal.test_roles import MATRIX, USERS

EXAMPLES_PER_OPERATION = 3
ROLES = ("researcher", "pi", "pm", "auditor", "admin")
# Operations whose 403 in the matrix holds for the one parameter value it sends, not for every
# request: other values are reads scoped to what the role may see.
SCOPED_BY_PARAMETERS = {
    ("GET", "/api/v1/reports/spend"),  # by=funder is pool-wide; by=project is the role's own
}
FORBIDDEN: dict[tuple[str, str], frozenset[str]] = {
    operation: frozenset(role for role in ROLES if expected[role] == 403)
    for operation, (_, expected) in MATRIX.items()
    if operation not in SCOPED_BY_PARAMETERS
}

schema = schemathesis.openapi.from_dict(_openapi())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck)
)
def test_no_role_gets_a_server_error_or_what_it_may_not_do(
    case: Case, demo_template: Template, request: pytest.FixtureRequest
) -> None:
    if demo_template.backend != "sqlite":
        pytest.skip("who may do what does not depend on the database: checked once, on SQLite")
    demo: Demo = request.getfixturevalue("demo")
    forbidden = FORBIDDEN.get((case.method.upper(), case.path), frozenset())
    for role in ROLES:  # each example as every role, with that role's own token
        user = USERS[role]
        assert user is not None
        sent: dict[str, Any] = {
            "params": case.query or None,
            "headers": {**(case.headers or {}), **demo.headers(user)},
        }
        if not isinstance(case.body, NotSet):
            if isinstance(case.body, (bytes, str)):
                sent["content"] = case.body
            else:
                sent["json"] = case.body

        response = demo.client.request(case.method, case.formatted_path, **sent)

        case.validate_response(response, checks=[not_a_server_error])
        if role in forbidden:
            assert not response.is_success, (
                f"{role} got {response.status_code} on {case.method} {case.formatted_path}, "
                "which the role matrix forbids"
            )
