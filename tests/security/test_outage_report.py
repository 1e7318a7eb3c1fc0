"""The down GPU-hours of the utilisation report tell a tenant nothing about another.

The report is pool-wide and open to everyone signed in (it says how busy the pool is, not who
used it): outages are recorded per cluster and flavor, from what the backends say of their
nodes, never per account or job. So every reader gets the same rows, with no field naming an
account, a project or a job, and nobody signed out gets any.
"""

from __future__ import annotations

from datetime import timedelta

from portal.api.reports import UtilisationRowOut
from quotas.clock import utc_now
from quotas.outages import NodeOutage
from tests.portal.conftest import Demo

PATH = "/api/v1/reports/utilisation"


def test_every_reader_gets_the_same_down_figures_and_nothing_about_tenants(demo: Demo) -> None:
    now = utc_now()
    with demo.books() as books:
        books.outages.start(
            [NodeOutage("national-daejeon", "h100-80g", 1, 8, now - timedelta(hours=2))]
        )
    window = {"since": (now - timedelta(hours=3)).isoformat(), "until": now.isoformat()}

    answers = {
        user: demo.client.get(PATH, params=window, headers=demo.headers(user))
        for user in ("admin", "seoyeon.lee", "hyejin.kang", "sungmin.yoon")
    }

    assert {answer.status_code for answer in answers.values()} == {200}
    rows = answers["admin"].json()["rows"]
    assert all(answer.json()["rows"] == rows for answer in answers.values())
    (h100,) = [
        row for row in rows if (row["cluster"], row["flavor"]) == ("national-daejeon", "h100-80g")
    ]
    assert h100["down_gpu_hours"] == 16.0
    assert all(set(row) == set(UtilisationRowOut.model_fields) for row in rows)
    assert not set(UtilisationRowOut.model_fields) & {
        "account",
        "project",
        "program",
        "job",
        "user",
    }
    assert demo.client.get(PATH, params=window).status_code == 401
