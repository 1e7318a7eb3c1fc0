"""Cluster tenancy: a tenant's job never lands on a cluster dedicated to someone else.

Ray has no access control between the jobs of one cluster, so isolation comes from placement:
a ``dedicated`` cluster takes only the jobs of its organization or program, whatever else is
full; a ``shared`` one says so on every placement there; ``per_job`` needs a backend that starts
a cluster per job.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quotas.admission import Admit, Reject, SiteKind, Wait, decide, decide_queue
from quotas.errors import InvalidInput
from quotas.inventory import BackendKind, ClusterSpec, Inventory, Tenancy
from scheduler.cycle import _tenancy_note
from tests.portal.conftest import Demo
from tests.quotas.builders import H100, a_job, a_pool


def two_universities():  # type: ignore[no-untyped-def]
    """kaist (nlp) and snu (imaging) in the universities program, a startup elsewhere."""
    return (
        a_pool()
        .program("universities")
        .organization("kaist")
        .project("kaist-nlp", credits=10_000)
        .organization("snu")
        .project("snu-imaging", credits=10_000)
        .program("startups")
        .organization("hanbit")
        .project("hanbit-robots", credits=10_000)
    )


def test_a_cluster_dedicated_to_another_organization_is_never_used() -> None:
    snapshot = two_universities().cluster("snu-only", h100=(1, 8)).dedicated("snu-only", "snu")
    job = a_job().project("kaist-nlp").gpus(1, H100).hours(1).build()

    decision = decide(snapshot.snapshot(), job)

    assert isinstance(decision, Reject)
    assert decision.reason == f"no cluster open to kaist-nlp has {H100}"


def test_the_owner_runs_on_its_dedicated_cluster_and_others_wait_for_the_shared_one() -> None:
    snapshot = (
        two_universities()
        .cluster("snu-only", h100=(1, 8))
        .dedicated("snu-only", "snu")
        .cluster("shared", h100=(1, 8))
        .full("shared")
        .snapshot()
    )
    theirs = a_job("theirs").project("snu-imaging").gpus(2, H100).hours(1).build()
    mine = a_job("mine").project("kaist-nlp").gpus(2, H100).hours(1).build()

    decisions = {d.job: d for d in decide_queue(snapshot, [mine, theirs])}

    assert isinstance(decisions["theirs"], Admit)
    assert decisions["theirs"].placement.cluster == "snu-only"
    assert isinstance(decisions["mine"], Wait)


def test_a_cluster_dedicated_to_a_program_takes_every_organization_under_it() -> None:
    snapshot = (
        two_universities()
        .cluster("universities-only", h100=(1, 8))
        .dedicated("universities-only", "universities")
        .snapshot()
    )
    kaist = a_job("kaist").project("kaist-nlp").gpus(1, H100).hours(1).build()
    snu = a_job("snu").project("snu-imaging").gpus(1, H100).hours(1).build()
    startup = a_job("startup").project("hanbit-robots").gpus(1, H100).hours(1).build()

    decisions = {d.job: d for d in decide_queue(snapshot, [kaist, snu, startup])}

    assert isinstance(decisions["kaist"], Admit)
    assert isinstance(decisions["snu"], Admit)
    assert isinstance(decisions["startup"], Reject)


@settings(max_examples=60, deadline=None)
@given(
    owners=st.lists(
        st.sampled_from([None, "kaist", "snu", "universities", "startups"]), min_size=1, max_size=4
    ),
    jobs=st.lists(
        st.tuples(
            st.sampled_from(["kaist-nlp", "snu-imaging", "hanbit-robots"]), st.integers(1, 8)
        ),
        min_size=1,
        max_size=12,
    ),
)
def test_no_admission_ever_lands_on_someone_elses_dedicated_cluster(
    owners: list[str | None], jobs: list[tuple[str, int]]
) -> None:
    pool = two_universities()
    for index, owner in enumerate(owners):
        pool.cluster(f"c{index}", h100=(2, 8))
        if owner is not None:
            pool.dedicated(f"c{index}", owner)
    snapshot = pool.snapshot()
    requests = [
        a_job(f"j{index}").project(project).gpus(gpus, H100).hours(1).build()
        for index, (project, gpus) in enumerate(jobs)
    ]
    project_of = {request.id: request.project for request in requests}
    owner_of = {f"c{index}": owner for index, owner in enumerate(owners)}

    decisions = decide_queue(snapshot, requests)
    if None in owners:  # a shared cluster with 16 GPUs: the first job fits there at least
        assert any(isinstance(decision, Admit) for decision in decisions)
    for decision in decisions:
        if not isinstance(decision, Admit):
            continue
        path = {account.name for account in snapshot.tree.path(project_of[decision.job])}
        for placement in decision.placements:
            owner = owner_of[placement.cluster]
            assert owner is None or owner in path


def test_tenancy_is_declared_consistently() -> None:
    inventory = (Inventory("h100-80g", 1, 8),)
    with pytest.raises(InvalidInput, match="dedicated"):
        ClusterSpec("c", BackendKind.RAY, SiteKind.NATIONAL, inventory, tenancy=Tenancy.DEDICATED)
    with pytest.raises(InvalidInput, match="dedicated"):
        ClusterSpec("c", BackendKind.RAY, SiteKind.NATIONAL, inventory, dedicated_to="kaist")
    with pytest.raises(InvalidInput, match="per_job"):
        ClusterSpec("c", BackendKind.RAY, SiteKind.NATIONAL, inventory, tenancy=Tenancy.PER_JOB)


def test_every_placement_on_a_shared_cluster_says_so() -> None:
    inventory = (Inventory("h100-80g", 1, 8),)
    shared = ClusterSpec("pooled", BackendKind.RAY, SiteKind.NATIONAL, inventory)
    dedicated = ClusterSpec(
        "kaist-only",
        BackendKind.RAY,
        SiteKind.NATIONAL,
        inventory,
        tenancy=Tenancy.DEDICATED,
        dedicated_to="kaist",
    )

    assert "shared cluster" in _tenancy_note(shared)
    assert "other tenants' jobs" in _tenancy_note(shared)
    assert _tenancy_note(dedicated) == ""


def test_the_catalog_shows_each_clusters_tenancy(demo: Demo) -> None:
    clusters = demo.client.get("/api/v1/clusters", headers=demo.headers("jiwoo.jung")).json()

    assert {cluster["name"]: cluster["tenancy"] for cluster in clusters} == {
        "kube-pangyo": "per_job",
        "national-daejeon": "shared",
        "national-gwangju": "shared",
    }
    assert all(cluster["dedicated_to"] is None for cluster in clusters)
