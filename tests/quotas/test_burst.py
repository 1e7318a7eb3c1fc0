"""Cloud burst in the admission engine: a job goes to a cloud burst target only when its
project may burst, its data class permits the site, it has waited for the pooled clusters, the
target did not fail to provision it before, and its program's burst budget there has room."""

from __future__ import annotations

from datetime import timedelta

from quotas.admission import Admit, Decision, Wait, decide, decide_queue
from quotas.causes import NoCapacity, TooLarge
from quotas.quantities import Credits
from tests.quotas.builders import H100, NOW, PoolBuilder, a_job, a_pool


def full_national_pool(may_burst: bool = True) -> PoolBuilder:
    """The national h100s are all busy; two burst targets have room, the foreign one dearer."""
    return (
        a_pool()
        .burst_wait(30)
        .program("universities")
        .organization("kaist")
        .project("kaist-nlp", credits=1000, may_burst=may_burst)
        .cluster("national-daejeon", h100=(2, 8))
        .full("national-daejeon")
        .cluster("cloud-seoul", site="domestic_cloud", h100=(4, 8))
        .cluster("cloud-tokyo", site="foreign_cloud", h100=(4, 8))
    )


def capacity_wait(decision: Decision) -> NoCapacity:
    assert isinstance(decision, Wait), decision
    assert isinstance(decision.cause, NoCapacity), decision.cause
    return decision.cause


def placed_on(decision: Decision) -> str:
    assert isinstance(decision, Admit), decision
    return decision.placement.cluster


def test_a_project_that_may_not_burst_waits_for_the_pooled_clusters() -> None:
    snapshot = full_national_pool(may_burst=False).snapshot()
    job = a_job().gpus(8, H100).submitted(minutes_ago=600).build()

    cause = capacity_wait(decide(snapshot, job))

    assert cause.burst_from is None
    assert "burst" not in cause.sentence


def test_a_job_only_a_cloud_could_hold_is_refused_when_its_project_may_not_burst() -> None:
    snapshot = full_national_pool(may_burst=False).snapshot()
    job = a_job().gpus(32, H100).build()

    refused = decide(snapshot, job)

    assert not isinstance(refused, (Admit, Wait))
    assert refused.cause == TooLarge(32, 16, multi_node=True)  # the national 16 is all it has


def test_a_job_bursts_only_after_waiting_for_the_pooled_clusters() -> None:
    snapshot = full_national_pool().snapshot()
    fresh = a_job("fresh").gpus(8, H100).submitted(minutes_ago=10).build()
    waited = a_job("waited").gpus(8, H100).submitted(minutes_ago=30).build()

    cause = capacity_wait(decide(snapshot, fresh))
    assert cause.burst_from == NOW + timedelta(minutes=20)
    assert "it may burst to cloud capacity from" in cause.sentence
    assert placed_on(decide(snapshot, waited)) == "cloud-seoul"  # domestic before foreign


def test_the_pooled_clusters_come_first_even_for_a_job_that_may_burst() -> None:
    snapshot = full_national_pool().busy("national-daejeon", h100=(8, 0)).snapshot()
    job = a_job().gpus(8, H100).submitted(minutes_ago=600).build()

    assert placed_on(decide(snapshot, job)) == "national-daejeon"


def test_a_burst_is_charged_at_the_target_s_price_multiplier() -> None:
    snapshot = full_national_pool().priced("cloud-seoul", 1500).snapshot()
    job = a_job().gpus(8, H100).hours(2).submitted(minutes_ago=60).build()

    decision = decide(snapshot, job)

    assert isinstance(decision, Admit)
    assert decision.placement.cluster == "cloud-seoul"
    assert decision.hold == Credits.of(24)  # 8 GPUs x 2 h x 1.0 x 1.5


def test_a_target_that_could_not_provision_the_job_is_not_tried_again() -> None:
    snapshot = full_national_pool().snapshot()
    once = a_job().gpus(8, H100).submitted(minutes_ago=60).avoiding("cloud-seoul").build()
    twice = (
        a_job().gpus(8, H100).submitted(minutes_ago=60).avoiding("cloud-seoul", "cloud-tokyo")
    ).build()

    assert placed_on(decide(snapshot, once)) == "cloud-tokyo"
    cause = capacity_wait(decide(snapshot, twice))
    assert cause.unprovisioned == ("cloud-seoul", "cloud-tokyo")
    assert "could not be provisioned for it at cloud-seoul, cloud-tokyo" in cause.sentence


def test_a_program_s_burst_budget_at_a_target_caps_what_it_holds_there() -> None:
    snapshot = (
        full_national_pool()
        .burst_budget("cloud-seoul", "universities", 20)
        .burst_used("cloud-seoul", "universities", 5)
        .burst_budget("cloud-tokyo", "universities", 10)
        .snapshot()
    )
    jobs = [
        a_job(f"j{n}").gpus(8, H100).hours(1).submitted(minutes_ago=60 + n).build()
        for n in range(3)
    ]

    first, second, third = decide_queue(snapshot, reversed(jobs))

    assert placed_on(first) == "cloud-seoul"  # 5 + 8 <= 20
    assert placed_on(second) == "cloud-tokyo"  # 13 + 8 > 20 at seoul; 8 <= 10 at tokyo
    cause = capacity_wait(third)
    assert cause.burst_budget_spent == ("cloud-seoul", "cloud-tokyo")
    assert "burst budget at cloud-seoul, cloud-tokyo has too little left" in cause.sentence


def test_a_program_without_a_burst_budget_at_a_target_is_capped_only_by_its_own_budgets() -> None:
    snapshot = (
        full_national_pool()
        .program("startups")
        .organization("hanbit")
        .project("hanbit-robot", credits=1000, may_burst=True)
        .burst_budget("cloud-seoul", "universities", 0)
        .snapshot()
    )
    startup = a_job("s").project("hanbit-robot").gpus(8, H100).submitted(minutes_ago=60).build()
    university = a_job("u").gpus(8, H100).submitted(minutes_ago=60).build()

    assert placed_on(decide(snapshot, startup)) == "cloud-seoul"
    assert placed_on(decide(snapshot, university)) == "cloud-tokyo"
