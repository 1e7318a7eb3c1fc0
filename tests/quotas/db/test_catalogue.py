"""The catalogue a process shares between requests: reused while nothing changed, read afresh
the moment a change is made through the books, and never shared from a unit of work that is
itself changing it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from jobs.cases import submit, submit_as
from jobs.model import Job, JobSpec, JobState
from jobs.repository import JobRepository
from quotas.access import Role, principal
from quotas.accounts import Account, AccountKind
from quotas.admission import SiteKind
from quotas.db.migrate import upgrade
from quotas.db.session import make_engine, session_factory, transaction
from quotas.errors import NotFound
from quotas.flavors import Flavor
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.quantities import Rate
from quotas.service import Books
from tests.quotas.db.conftest import NOW, set_up_small_pool


@pytest.fixture
def factory(fresh_database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(fresh_database_url)
    upgrade(engine)
    factory = session_factory(engine)
    with transaction(factory) as session:
        set_up_small_pool(Books(session, lambda: NOW))
    yield factory
    engine.dispose()


def books(session: Session) -> Books:
    return Books(session, lambda: NOW)


def test_an_unchanged_catalogue_is_read_once_and_shared(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        first = books(session).catalogue()
    with transaction(factory) as session:
        again = books(session).catalogue()
    assert again is first
    assert "kaist-nlp" in first.tree
    assert set(first.flavors) == {"h100-80g"}


def test_a_change_through_the_books_is_seen_by_the_next_request(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        before = books(session).catalogue()
    with transaction(factory) as session:
        books(session).add_account(Account("kaist-vision", AccountKind.PROJECT, "kaist"))
        books(session).add_flavor(Flavor("a100-80g", 80, 0.8))
    with transaction(factory) as session:
        after = books(session).catalogue()
    assert after is not before
    assert "kaist-vision" in after.tree
    assert "a100-80g" in after.flavors


def test_a_unit_of_work_sees_its_own_changes_and_does_not_share_them(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        shared = books(session).catalogue()
    session = factory()
    try:
        changing = books(session)
        changing.add_account(Account("kaist-vision", AccountKind.PROJECT, "kaist"))
        assert "kaist-vision" in changing.catalogue().tree
        assert "kaist-vision" in changing.tree()
        session.rollback()  # the change never happened
    finally:
        session.close()
    with transaction(factory) as session:
        seen = books(session).catalogue()
    assert "kaist-vision" not in seen.tree
    assert seen is shared


# -- a writer that checks the catalogue in the statement that writes (a submission) -------------


def a_job(job_id: str) -> Job:
    spec = JobSpec(
        project="kaist-nlp",
        submitter="seoyeon.lee",
        name="sft",
        entrypoint="python train.py",
        gpus=1,
        time_limit_seconds=3600,
    )
    return Job(id=job_id, spec=spec, state=JobState.QUEUED, submitted_at=NOW)


def test_a_job_is_written_only_while_the_catalogue_it_was_checked_against_is_current(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        stamp = books(session).audit.last_id()
    with transaction(factory) as session:
        assert JobRepository(session).add(a_job("gp-current"), at_catalogue=stamp)
    with transaction(factory) as session:
        books(session).add_flavor(Flavor("a100-80g", 80, 0.8))  # an audited change lands
    with transaction(factory) as session:
        assert not JobRepository(session).add(a_job("gp-stale"), at_catalogue=stamp)
    with transaction(factory) as session:
        jobs = JobRepository(session)
        assert jobs.exists("gp-current")
        assert not jobs.exists("gp-stale")
        assert [event.to_state for event in jobs.events("gp-current")] == [JobState.QUEUED]
        assert not jobs.events("gp-stale")


def test_a_submission_trusting_a_stale_catalogue_is_checked_again_against_the_new_one(
    factory: sessionmaker[Session],
) -> None:
    with transaction(factory) as session:
        reading = books(session)
        reading.clusters.add(
            ClusterSpec(
                "daejeon", BackendKind.RAY, SiteKind.NATIONAL, (Inventory("h100-80g", 1, 8),)
            )
        )
        reading.catalogue()  # this process caches it
    with transaction(factory) as session:  # another process publishes a new rate card
        books(session).publish_rate_card(
            {"h100-80g": Rate.of(2)}, NOW - timedelta(minutes=1), "admin"
        )
    with transaction(factory) as session:
        trusting = Books(session, lambda: NOW, trust_cached_catalogue=True)
        job, lines = submit(trusting, a_job("gp-priced").spec, 72 * 3600)

    assert [line.rate for line in lines] == [Rate.of(2)]  # the new card, not the cached one
    with transaction(factory) as session:
        assert JobRepository(session).exists(job.id)


def test_a_project_made_a_moment_ago_elsewhere_takes_submissions_at_once(
    factory: sessionmaker[Session],
) -> None:
    """The cached catalogue, taken on trust, lacks the new project: the refusal it would give
    is checked against the current catalogue first."""
    with transaction(factory) as session:
        reading = books(session)
        reading.clusters.add(
            ClusterSpec(
                "daejeon", BackendKind.RAY, SiteKind.NATIONAL, (Inventory("h100-80g", 1, 8),)
            )
        )
        reading.catalogue()  # this process caches it
    with transaction(factory) as session:  # another process adds a project
        books(session).add_account(Account("kaist-vision", AccountKind.PROJECT, "kaist"))
    researcher = principal("seoyeon.lee", projects={"kaist-vision": Role.RESEARCHER})
    spec = replace(a_job("gp-new").spec, project="kaist-vision")
    with transaction(factory) as session:
        trusting = Books(session, lambda: NOW, trust_cached_catalogue=True)
        job, _ = submit_as(trusting, researcher, spec, 72 * 3600)

    with transaction(factory) as session:
        assert JobRepository(session).get(job.id).spec.project == "kaist-vision"


def test_a_refusal_from_a_current_catalogue_stands(factory: sessionmaker[Session]) -> None:
    with transaction(factory) as session:
        books(session).catalogue()
    researcher = principal("seoyeon.lee", projects={"kaist-nlp": Role.RESEARCHER})
    spec = replace(a_job("gp-nowhere").spec, project="no-such-project")
    with transaction(factory) as session:
        trusting = Books(session, lambda: NOW, trust_cached_catalogue=True)
        with pytest.raises(NotFound):
            submit_as(trusting, researcher, spec, 72 * 3600)
