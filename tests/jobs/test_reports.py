"""The use cases of the reports that read jobs: fair-share rows for the accounts the principal
may read, with the GPUs their jobs hold and ask for, and wait times of their projects only."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from jobs.cases import submit
from jobs.model import JobEvent, JobSpec, JobState
from jobs.reports import fair_share_report, wait_times_report
from jobs.repository import JobRepository
from quotas.access import Principal
from quotas.service import Books
from tests.quotas.cases.conftest import ROLES, cast, pool  # noqa: F401 - fixtures
from tests.quotas.db.conftest import NOW, books, demo  # noqa: F401 - fixtures

HALF_LIFE_HOURS = 168.0


def admitted_job(books: Books, project: str, submitter: str, waited: timedelta) -> str:  # noqa: F811
    """A job submitted an hour ago and admitted after ``waited``."""
    earlier = Books(books.session, clock=lambda: NOW - timedelta(hours=1))
    spec = JobSpec(project, submitter, "train", "python train.py", 2, 3600)
    job, _ = submit(earlier, spec, 72 * 3600)
    at = job.submitted_at + waited
    JobRepository(books.session).save(
        replace(job, state=JobState.ADMITTED),
        JobEvent(at, JobState.QUEUED, JobState.ADMITTED, "admitted"),
    )
    return job.id


def test_fair_share_rows_are_the_accounts_the_principal_may_read(
    pool: Books,  # noqa: F811
    cast: dict[str, Principal],  # noqa: F811
) -> None:
    submit(pool, JobSpec("kaist-nlp", "jiwoo.jung", "big", "python big.py", 4, 3600), 72 * 3600)

    for role in ROLES:
        report = fair_share_report(pool, cast[role], HALF_LIFE_HOURS)
        names = [row.name for row, _ in report.rows]
        assert names == cast[role].readable_accounts(pool.tree(report.period)), role
    report = fair_share_report(pool, cast["researcher"], HALF_LIFE_HOURS)
    rows = {row.name: row for row, _ in report.rows}
    assert (report.period, report.at) == (pool.current_period().name, NOW)
    assert rows["kaist-nlp"].pending_gpus == 4
    assert rows["hanbit-robot-policy"].pending_gpus == 0


def test_wait_times_count_only_the_projects_the_principal_may_read(
    pool: Books,  # noqa: F811
    cast: dict[str, Principal],  # noqa: F811
) -> None:
    admitted_job(pool, "kaist-nlp", "jiwoo.jung", timedelta(minutes=10))
    admitted_job(pool, "postech-materials", "eunji.han", timedelta(minutes=20))

    def waits(role: str) -> dict[str, tuple[int, float]]:
        report = wait_times_report(pool, cast[role])
        assert report.until == NOW
        return {row.program: (row.jobs, dict(row.percentiles)[50]) for row in report.rows}

    assert waits("admin") == {"universities": (2, 600.0)}  # nearest rank: the shorter wait
    assert waits("pi") == {"universities": (1, 600.0)}
    assert waits("outsider") == {"universities": (1, 1200.0)}
    assert waits("other_pm") == {}
