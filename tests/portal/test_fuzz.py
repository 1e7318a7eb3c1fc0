"""Schemathesis fuzzes every operation in the OpenAPI document (a bounded run): no 5xx, ever.

The schema comes from the app itself; each operation's examples run against a freshly seeded
demo pool as the admin, who reaches the deepest code paths.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.generation.case import Case

from portal.app import create_app
from portal.settings import PortalSettings
from quotas.db.session import make_engine
from tests.portal.conftest import Demo

EXAMPLES_PER_OPERATION = 20
STREAMS = ("/logs/stream", "/logs/tail")


def _openapi() -> dict[str, Any]:
    settings = PortalSettings(data_dir=Path("/nonexistent"), session_secret="schema-only")
    document: dict[str, Any] = create_app(settings, make_engine("sqlite://")).openapi()
    document["paths"] = {
        path: item for path, item in document["paths"].items() if not path.endswith(STREAMS)
    }
    return document


schema = schemathesis.openapi.from_dict(_openapi())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck)
)
def test_no_operation_answers_a_server_error(case: Case, demo: Demo) -> None:
    request: dict[str, Any] = {
        "params": case.query or None,
        "headers": {**(case.headers or {}), **demo.headers("admin")},
    }
    if not isinstance(case.body, NotSet):
        if isinstance(case.body, (bytes, str)):
            request["content"] = case.body
        else:
            request["json"] = case.body
    response = demo.client.request(case.method, case.formatted_path, **request)
    case.validate_response(response, checks=[not_a_server_error])
