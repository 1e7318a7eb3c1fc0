"""The use cases of the reports that read only the books: spend counts only the projects the
principal may read, spend by funder is for admin and auditor only, and cluster utilisation is
the pool's, for everyone."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from quotas.access import Principal
from quotas.cases.reports import in_utc, report_window, spend_report, utilisation_report
from quotas.errors import Forbidden, InvalidInput
from quotas.outages import NodeOutage
from quotas.quantities import Credits
from quotas.reports import DEFAULT_WINDOW, SpendBy
from quotas.service import Books
from tests.quotas.cases.conftest import ROLES, outcome
from tests.quotas.db.conftest import NOW


def charge(books: Books, project: str, job: str, credits: int) -> None:
    period = books.current_period().name
    books.hold(project, job, Credits.of(credits), "scheduler", "admitted", period)
    books.charge(project, job, Credits.of(credits), "scheduler", "ran", period)


@pytest.fixture
def spent(pool: Books) -> Books:
    """Charges to jobs of kaist-nlp (3 credits), kaist-protein (2) and postech-materials (5)."""
    charge(pool, "kaist-nlp", "gp-nlp", 3)
    charge(pool, "kaist-protein", "gp-fold", 2)
    charge(pool, "postech-materials", "gp-gnn", 5)
    return pool


def by_project(books: Books, principal: Principal) -> dict[str | None, Credits]:
    return {row.key: row.credits for row in spend_report(books, principal, SpendBy.PROJECT).rows}


def test_spend_counts_only_the_projects_the_principal_may_read(
    spent: Books, cast: dict[str, Principal]
) -> None:
    everything = {
        "kaist-nlp": Credits.of(3),
        "kaist-protein": Credits.of(2),
        "postech-materials": Credits.of(5),
    }

    assert by_project(spent, cast["admin"]) == everything
    assert by_project(spent, cast["auditor"]) == everything
    assert by_project(spent, cast["pm"]) == everything  # all three are universities' projects
    assert by_project(spent, cast["other_pm"]) == {}
    assert by_project(spent, cast["pi"]) == {
        "kaist-nlp": Credits.of(3),
        "kaist-protein": Credits.of(2),
    }
    assert by_project(spent, cast["researcher"]) == {"kaist-nlp": Credits.of(3)}
    assert by_project(spent, cast["outsider"]) == {"postech-materials": Credits.of(5)}
    assert spend_report(spent, cast["pi"], SpendBy.PROJECT).period == spent.current_period().name


def test_spend_by_funder_is_for_admin_and_auditor_only(
    spent: Books, cast: dict[str, Principal]
) -> None:
    shown = {role: outcome(spend_report, spent, cast[role], SpendBy.FUNDER) for role in ROLES}

    assert shown == {role: "ok" if role in ("admin", "auditor") else "Forbidden" for role in ROLES}
    with pytest.raises(Forbidden, match=r"^jaehyun.kim may not see spend by funder$"):
        spend_report(spent, cast["pm"], SpendBy.FUNDER)
    total = sum(
        (row.credits for row in spend_report(spent, cast["auditor"], SpendBy.FUNDER).rows),
        Credits.zero(),
    )
    assert total == Credits.of(10)


def test_utilisation_covers_every_cluster_s_inventory(pool: Books) -> None:
    found = utilisation_report(pool)

    assert (found.since, found.until) == (NOW - DEFAULT_WINDOW, NOW)
    assert {row.cluster for row in found.rows} == {
        "kube-pangyo",
        "national-daejeon",
        "national-gwangju",
    }
    assert all(row.allocated == 0 for row in found.rows)


def test_a_report_window_is_in_utc_and_never_ends_after_now(pool: Books) -> None:
    seoul = timezone(timedelta(hours=9))

    since, until = report_window(pool, datetime(2026, 11, 1, 9, tzinfo=seoul), NOW + DEFAULT_WINDOW)

    assert (since, until) == (datetime(2026, 11, 1, tzinfo=UTC), NOW)
    assert in_utc(datetime(2026, 11, 1)) == datetime(2026, 11, 1, tzinfo=UTC)  # noqa: DTZ001
    with pytest.raises(InvalidInput, match="outside the calendar in UTC"):
        in_utc(datetime.min.replace(tzinfo=timezone(timedelta(hours=1))))


def declared(books: Books, at: datetime) -> None:
    """The pool's clusters as if declared at ``at`` (the fixture seeds them at ``NOW``)."""
    for cluster in books.clusters.all():
        books.audit.record(at, "test", "cluster.add", f"cluster/{cluster.name}", None, None)


def test_utilisation_counts_a_cluster_from_when_it_was_declared(pool: Books) -> None:
    two_hours_later = Books(pool.session, clock=lambda: NOW + timedelta(hours=2))

    report = utilisation_report(two_hours_later)  # the default window: the last 7 days

    assert report.since == NOW + timedelta(hours=2) - DEFAULT_WINDOW
    gpus = {
        (cluster.name, item.flavor): item.gpus
        for cluster in pool.clusters.all()
        for item in cluster.inventory
    }
    assert {(row.cluster, row.flavor): row.total for row in report.rows} == {
        key: count * 2 * 3600 for key, count in gpus.items()
    }


def test_utilisation_counts_the_node_outages_in_the_window_as_down(pool: Books) -> None:
    hour = timedelta(hours=1)
    declared(pool, NOW - 24 * hour)
    ended, _resized, lasting = pool.outages.start(
        [
            NodeOutage("national-daejeon", "h100-80g", 1, 8, NOW - 3 * hour),
            NodeOutage("national-daejeon", "h100-80g", 2, 16, NOW - hour, until=NOW - hour / 2),
            NodeOutage("national-gwangju", "v100-32g", 1, 8, NOW - hour / 4),
        ]
    )
    pool.outages.end([ended.id], NOW - hour)

    rows = {row.flavor: row for row in utilisation_report(pool, NOW - 2 * hour, NOW).rows}

    # h100: 8 GPUs for the window's first hour (the outage began before it), 16 for 30 minutes
    assert rows["h100-80g"].down == (8 * 3600 + 16 * 1800)
    assert rows["h100-80g"].idle == rows["h100-80g"].total - rows["h100-80g"].down
    # v100: still down, counted to the window's end: 8 GPUs x 15 minutes
    assert lasting.until is None
    assert rows["v100-32g"].down == 8 * 900
    assert rows["v100-32g"].utilisation == 0
    assert rows["a100-80g"].down == 0
