"""Admission: admit with an exact hold and placements best first, wait with a reason, or reject.

Scenarios are built with the fluent builders in ``tests.quotas.builders``; each test checks what a
researcher or a program manager would see: the credits held, where the job goes, the words of a
wait or a rejection, and that one cycle never overspends a budget or overbooks a flavor.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quotas.accounts import AccountKind
from quotas.admission import (
    ALLOWED_SITES,
    Admit,
    Cluster,
    DataClass,
    Decision,
    JobRequest,
    NodeGroup,
    PriorityClass,
    Reject,
    Reservation,
    SiteKind,
    Snapshot,
    Wait,
    decide,
    decide_queue,
    order_queue,
    plan_queue,
)
from quotas.causes import FreeInstead, NoCapacity
from quotas.flavors import Flavor, RateCard
from quotas.quantities import Credits, Rate
from quotas.quote import quote
from tests.quotas.builders import A100, H100, NOW, V100, JobBuilder, PoolBuilder, a_job, a_pool


def one_project_pool(credits: int | str = 1000) -> PoolBuilder:
    """``kaist-nlp`` with ``credits`` in a pool of one national cluster of each flavor."""
    return (
        a_pool()
        .program("research")
        .organization("kaist")
        .project("kaist-nlp", credits=credits)
        .cluster("national-daejeon", site="national", h100=(4, 8))
        .cluster("national-gwangju", site="national", a100=(4, 8))
        .cluster("national-busan", site="national", v100=(4, 8))
    )


def admitted(decision: Decision) -> Admit:
    assert isinstance(decision, Admit), decision
    return decision


def waiting(decision: Decision) -> Wait:
    assert isinstance(decision, Wait), decision
    return decision


def rejected(decision: Decision) -> Reject:
    assert isinstance(decision, Reject), decision
    return decision


def by_job(decisions: list[Decision]) -> dict[str, Decision]:
    return {decision.job: decision for decision in decisions}


# --- admit: the hold ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpus", "flavor", "seconds", "hold_milli"),
    [
        (8, H100, 4 * 3600, 32_000),  # 8 x 4 h x 1.0
        (8, A100, 4 * 3600, 25_600),  # 8 x 4 h x 0.8
        (8, V100, 4 * 3600, 8_000),  # 8 x 4 h x 0.25
        (2, V100, 90 * 60, 750),  # 2 x 1.5 h x 0.25
        (1, H100, 1, 1),  # 1/3.6 milli-credit rounds up to 1
        (3, A100, 7, 5),  # 3 x 7 s x 800 / 3600 = 4.67 -> 5
        (32, H100, 3600, 32_000),  # a gang job: four whole nodes
    ],
)
def test_admit_holds_gpus_times_time_limit_times_rate_rounded_up_to_a_milli_credit(
    gpus: int, flavor: str, seconds: int, hold_milli: int
) -> None:
    snapshot = one_project_pool().snapshot()
    job = a_job("j1").project("kaist-nlp").gpus(gpus, flavor).seconds(seconds).build()

    admit = admitted(decide(snapshot, job))

    assert admit.hold == Credits(hold_milli)
    assert admit.placement.flavor == flavor
    assert admit.placement.rate == snapshot.rate_card.rate(flavor)
    assert admit.placement.rate_version == snapshot.rate_card.version


def test_a_hold_that_takes_exactly_the_last_committed_credit_is_admitted() -> None:
    snapshot = one_project_pool(credits=32).snapshot()
    job = a_job().project("kaist-nlp").gpus(8, H100).hours(4).build()

    assert admitted(decide(snapshot, job)).hold == Credits.of(32)


def test_every_placement_of_an_admit_holds_its_own_flavors_price() -> None:
    snapshot = one_project_pool().snapshot()
    job = a_job().project("kaist-nlp").gpus(4).hours(2).build()

    admit = admitted(decide(snapshot, job))

    holds = {placement.flavor: placement.hold for placement in admit.placements}
    assert holds == {H100: Credits.of(8), A100: Credits.of("6.4"), V100: Credits.of(2)}


# --- admit: heterogeneity -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rates", "best_first"),
    [
        # v100 at 0.1 buys 2.5 reference-hours per credit; h100 and a100 buy 1.0.
        ({V100: "0.1"}, [V100, A100, H100]),
        # h100 at 0.5 buys 2.0 per credit; a100 at 0.5 buys 1.6.
        ({H100: "0.5", A100: "0.5"}, [H100, A100, V100]),
        # a100 at 0.4 buys 2.0 per credit, v100 at 0.2 buys 1.25.
        ({A100: "0.4", V100: "0.2"}, [A100, V100, H100]),
    ],
)
def test_placements_prefer_the_flavor_with_most_training_per_credit(
    rates: dict[str, str], best_first: list[str]
) -> None:
    pool = one_project_pool()
    for flavor, rate in rates.items():
        pool.rate(flavor, rate)
    job = a_job().project("kaist-nlp").gpus(4).hours(1).build()

    admit = admitted(decide(pool.snapshot(), job))

    assert [placement.flavor for placement in admit.placements] == best_first
    assert admit.placement.flavor == best_first[0]


def test_a_job_falls_back_to_another_flavor_when_the_best_deal_is_full() -> None:
    snapshot = one_project_pool().rate(V100, "0.1").full("national-busan").snapshot()
    job = a_job().project("kaist-nlp").gpus(4, V100, H100).hours(1).build()

    admit = admitted(decide(snapshot, job))

    assert [placement.flavor for placement in admit.placements] == [H100]
    assert admit.placement.cluster == "national-daejeon"
    assert admit.hold == Credits.of(4)


def test_a_job_falls_back_to_a_dearer_flavor_when_the_cheap_one_is_taken_earlier_in_the_cycle() -> (
    None
):
    snapshot = (
        a_pool()
        .projects("kaist-nlp", "snu-vision")
        .cluster("national-daejeon", h100=(1, 8))
        .cluster("national-busan", v100=(1, 8))
        .rate(V100, "0.1")
        .snapshot()
    )
    first = a_job("first").project("kaist-nlp").gpus(8).submitted(minutes_ago=10).build()
    second = a_job("second").project("snu-vision").gpus(8).submitted(minutes_ago=5).build()

    decisions = by_job(decide_queue(snapshot, [first, second]))

    assert admitted(decisions["first"]).placement.flavor == V100
    assert admitted(decisions["second"]).placement.flavor == H100


def test_flavors_that_buy_the_same_training_per_credit_are_placed_by_name() -> None:
    # 1.001 / 1001 < 1.0 / 1000 in floating point, yet both buy exactly the same training per
    # credit: the tie goes to the name, as the quote lists it, not to rounding noise.
    pool = (
        a_pool().project("kaist-nlp", credits=1000).cluster("national-daejeon", h100=(1, 8))
    ).snapshot()
    gaudi = Flavor("gaudi-96g", 96, relative_throughput=1.001)
    card = RateCard(1, NOW, {**pool.rate_card.rates, gaudi.name: Rate(1001)})
    daegu = Cluster("national-daegu", SiteKind.NATIONAL, (NodeGroup(gaudi.name, 8, (8,)),))
    snapshot = replace(
        pool,
        flavors={**pool.flavors, gaudi.name: gaudi},
        rate_card=card,
        clusters=(*pool.clusters, daegu),
    )
    job = a_job().project("kaist-nlp").gpus(1, H100, gaudi.name).build()

    admit = admitted(decide(snapshot, job))

    assert [placement.flavor for placement in admit.placements] == ["gaudi-96g", H100]
    assert [line.flavor for line in quote(snapshot.flavors, card, 1, 3600, job.flavors)] == [
        "gaudi-96g",
        H100,
    ]


def test_min_memory_keeps_only_flavors_with_enough_memory() -> None:
    snapshot = one_project_pool().rate(V100, "0.1").snapshot()
    job = a_job().project("kaist-nlp").gpus(2).min_memory(40).build()

    admit = admitted(decide(snapshot, job))

    assert {placement.flavor for placement in admit.placements} == {H100, A100}


# --- admit: best fit ------------------------------------------------------------------------------


def test_best_fit_prefers_the_cluster_with_a_partly_used_node_that_fits() -> None:
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=1000)
        .cluster("national-busan", h100=(2, 8))
        .cluster("national-daejeon", h100=(2, 8))
        .busy("national-daejeon", h100=(4,))
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(4, H100).build()

    admit = admitted(decide(snapshot, job))

    assert [placement.cluster for placement in admit.placements] == [
        "national-daejeon",
        "national-busan",
    ]


def test_best_fit_keeps_a_fully_free_node_for_a_later_full_node_job() -> None:
    # Two nodes: one with 4 GPUs free, one fully free. The 4-GPU job must take the partly used
    # node, or the 8-GPU job after it cannot run.
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=1000)
        .cluster("national-daejeon", h100=(2, 8))
        .busy("national-daejeon", h100=(4, 0))
        .snapshot()
    )
    small = a_job("small").project("kaist-nlp").gpus(4, H100).submitted(minutes_ago=10).build()
    large = a_job("large").project("kaist-nlp").gpus(8, H100).submitted(minutes_ago=5).build()

    decisions = by_job(decide_queue(snapshot, [small, large]))

    assert isinstance(decisions["small"], Admit)
    assert isinstance(decisions["large"], Admit)


def test_a_gang_job_needs_whole_free_nodes_not_just_enough_free_gpus() -> None:
    pool = (
        a_pool()
        .project("kaist-nlp", credits=1000)
        .cluster("national-daejeon", h100=(4, 8))
        .busy("national-daejeon", h100=(4, 4, 4))
    )
    gang = a_job().project("kaist-nlp").gpus(16, H100).build()

    # 20 GPUs are free, but only one node is whole.
    assert "no h100-80g free for 16 GPUs" in waiting(decide(pool.snapshot(), gang)).reason

    pool.busy("national-daejeon", h100=(4,))
    assert admitted(decide(pool.snapshot(), gang)).placement.cluster == "national-daejeon"


# --- reject ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("job", "reason"),
    [
        pytest.param(
            a_job().project("kaist-nlp").gpus(1, "h200-141g"),
            "unknown flavor 'h200-141g'; flavors: a100-80g, h100-80g, v100-32g",
            id="unknown flavor",
        ),
        pytest.param(
            a_job().project("kaist-nlp").gpus(1).min_memory(141),
            "no flavor with at least 141 GB in the pool",
            id="no flavor with enough memory",
        ),
        pytest.param(
            a_job().project("kaist-nlp").gpus(2, V100).min_memory(40),
            "no flavor with at least 40 GB in the pool",
            id="named flavor with too little memory",
        ),
        pytest.param(
            a_job().project("kaist-nlp").gpus(40, H100),
            "40 GPUs is more than any cluster has (32 at most)",
            id="more GPUs than any cluster has",
        ),
        pytest.param(
            a_job().project("kaist-nlp").gpus(0),
            "a job needs at least one GPU, asked for 0",
            id="zero GPUs",
        ),
        pytest.param(
            a_job().project("kaist-nlp").gpus(-2),
            "a job needs at least one GPU, asked for -2",
            id="negative GPUs",
        ),
        pytest.param(
            a_job().project("kaist-nlp").seconds(0),
            "a job needs a positive time limit",
            id="zero time limit",
        ),
        pytest.param(
            a_job().project("kaist-nlp").seconds(-60),
            "a job needs a positive time limit",
            id="negative time limit",
        ),
        pytest.param(
            a_job().project("kaist-nlp").gpus(8, H100).hours(200),
            "over the whole budget of project kaist-nlp: needs 1600.0 credits, "
            "the budget is 1000.0",
            id="hold larger than the project's whole budget",
        ),
        pytest.param(
            a_job().project("kaist").gpus(1),
            "kaist is an organization, not a project",
            id="an organization is not a project",
        ),
        pytest.param(
            a_job().project("research").gpus(1),
            "research is a program, not a project",
            id="a program is not a project",
        ),
        pytest.param(
            a_job().project("kaist-cv").gpus(1),
            "unknown account 'kaist-cv'",
            id="unknown project",
        ),
    ],
)
def test_a_job_that_can_never_run_is_rejected_with_a_clear_reason(
    job: JobBuilder, reason: str
) -> None:
    request = job.build()

    decision = rejected(decide(one_project_pool(credits=1000).snapshot(), request))

    assert decision.job == request.id
    assert decision.reason == reason


def test_the_whole_budget_counts_credits_already_spent_so_a_fitting_job_only_waits() -> None:
    # 20 credits spent and 12.5 available: the whole budget is 32.5, so a 32-credit job can run
    # one day (when held credits come back); it waits rather than being rejected.
    snapshot = one_project_pool(credits="12.5").used("kaist-nlp", 20).snapshot()
    job = a_job().project("kaist-nlp").gpus(8, H100).hours(4).build()

    assert isinstance(decide(snapshot, job), Wait)


def test_a_hold_larger_than_an_ancestors_whole_budget_is_rejected() -> None:
    snapshot = (
        a_pool()
        .program("startup-growth", budget=10)
        .organization("acme")
        .project("acme-chat", credits=1000)
        .cluster("national-daejeon", h100=(2, 8))
        .snapshot()
    )
    job = a_job().project("acme-chat").gpus(8, H100).hours(2).build()

    assert rejected(decide(snapshot, job)).reason == (
        "over the whole budget of program startup-growth: needs 16.0 credits, the budget is 10.0"
    )


def test_the_whole_budget_check_prices_only_flavors_the_job_can_run_on() -> None:
    # The job accepts a100 (cheap enough) and h100 (too dear), but the pool has no a100: the
    # job can never run, so it is rejected instead of waiting for budget forever.
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=10)
        .cluster("national-daejeon", h100=(2, 8))
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(1, H100, A100).hours(11).build()

    assert rejected(decide(snapshot, job)).reason == (
        "over the whole budget of project kaist-nlp: needs 11.0 credits, the budget is 10.0"
    )


def test_a_flavor_that_exists_only_on_forbidden_sites_is_rejected_for_restricted_data() -> None:
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=1000)
        .cluster("national-daejeon", v100=(2, 8))
        .cluster("cloud-abroad", site="foreign_cloud", h100=(8, 8))
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(4, H100).data("restricted").build()

    assert rejected(decide(snapshot, job)).reason == "no restricted site has h100-80g"


# --- wait -----------------------------------------------------------------------------------------


def test_a_job_over_the_projects_credits_left_waits_for_budget() -> None:
    snapshot = one_project_pool(credits="12.5").used("kaist-nlp", 20).snapshot()
    job = a_job().project("kaist-nlp").gpus(8, H100).hours(4).build()

    assert waiting(decide(snapshot, job)).reason == (
        "budget: needs 32.0 credits, 12.5 available (project kaist-nlp)"
    )


def test_a_cheaper_flavor_is_admitted_when_the_best_one_is_over_budget() -> None:
    snapshot = one_project_pool(credits=10).rate(H100, "0.5").snapshot()
    job = a_job().project("kaist-nlp").gpus(8, H100, V100).hours(4).build()

    # h100 buys most per credit but holds 16; v100 holds 8.
    admit = admitted(decide(snapshot, job))

    assert [placement.flavor for placement in admit.placements] == [V100]
    assert admit.hold == Credits.of(8)


@pytest.mark.parametrize(
    ("level", "limiter"),
    [
        ("program", "program research"),
        ("organization", "organization kaist"),
        ("project", "project kaist-nlp"),
    ],
)
def test_an_ancestors_budget_cap_makes_the_job_wait_and_is_named(level: str, limiter: str) -> None:
    budgets: dict[str, int | None] = {"program": None, "organization": None, "project": None}
    budgets[level] = 100
    snapshot = (
        a_pool()
        .program("research", budget=budgets["program"])
        .organization("kaist", budget=budgets["organization"])
        .project("kaist-nlp", credits=50, budget=budgets["project"])
        .cluster("national-daejeon", h100=(2, 8))
        .used({"program": "research", "organization": "kaist", "project": "kaist-nlp"}[level], 90)
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(8, H100).hours(2).build()

    assert waiting(decide(snapshot, job)).reason == (
        f"budget: needs 16.0 credits, 10.0 available ({limiter})"
    )


def test_the_pools_own_budget_caps_every_project() -> None:
    snapshot = (
        a_pool()
        .pool_budget(1000)
        .project("kaist-nlp", credits=500)
        .cluster("national-daejeon", h100=(2, 8))
        .used("pool", 995)
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(8, H100).hours(1).build()

    assert (
        waiting(decide(snapshot, job)).reason
        == "budget: needs 8.0 credits, 5.0 available (pool pool)"
    )


def test_budget_left_is_never_shown_negative() -> None:
    snapshot = (
        a_pool()
        .organization("kaist", budget=100)
        .project("kaist-nlp", credits=50)
        .cluster("national-daejeon", h100=(2, 8))
        .used("kaist", 120)
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(1, H100).hours(1).build()

    assert waiting(decide(snapshot, job)).reason == (
        "budget: needs 1.0 credits, 0.0 available (organization kaist)"
    )


@pytest.mark.parametrize(
    ("running", "gpus", "admits"),
    [
        (0, 16, True),  # 8 guaranteed + 8 borrowed
        (8, 8, True),  # exactly at the limit
        (12, 4, True),
        (12, 8, False),  # 20 > 16
        (16, 1, False),
    ],
)
def test_the_borrowing_limit_caps_gpus_beyond_the_guarantee(
    running: int, gpus: int, admits: bool
) -> None:
    snapshot = (
        a_pool()
        .organization("kaist", guaranteed=8, borrowing=8)
        .project("kaist-nlp", credits=1000)
        .cluster("national-daejeon", h100=(4, 8))
        .running("kaist", running)
        .running("kaist-nlp", running)
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(gpus, H100).build()

    decision = decide(snapshot, job)

    if admits:
        admitted(decision)
    else:
        assert waiting(decision).reason == (
            f"borrowing limit: organization kaist uses {running} GPUs of "
            "8 guaranteed + 8 borrowable"
        )


def test_the_borrowing_limit_counts_admissions_earlier_in_the_cycle() -> None:
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=1000, guaranteed=4, borrowing=4)
        .cluster("national-daejeon", h100=(4, 8))
        .snapshot()
    )
    jobs = [
        a_job(f"j{n}").project("kaist-nlp").gpus(4, H100).submitted(minutes_ago=10 - n).build()
        for n in range(3)
    ]

    decisions = decide_queue(snapshot, jobs)

    assert [type(decision) for decision in decisions] == [Admit, Admit, Wait]
    assert waiting(decisions[2]).reason == (
        "borrowing limit: project kaist-nlp uses 8 GPUs of 4 guaranteed + 4 borrowable"
    )


def test_a_job_waits_for_capacity_and_is_told_how_many_gpus_are_ahead_of_it() -> None:
    snapshot = (
        a_pool()
        .projects("kaist-nlp", "snu-vision", "acme-chat")
        .cluster("national-daejeon", h100=(2, 8))
        .busy("national-daejeon", h100=(8, 2))
        .snapshot()
    )
    jobs = [
        a_job("fits").project("kaist-nlp").gpus(6, H100).submitted(minutes_ago=30).build(),
        a_job("second").project("snu-vision").gpus(4, H100).submitted(minutes_ago=20).build(),
        a_job("third").project("acme-chat").gpus(8, H100).submitted(minutes_ago=10).build(),
        a_job("fourth").project("acme-chat").gpus(1, H100).submitted(minutes_ago=5).build(),
    ]

    decisions = by_job(decide_queue(snapshot, jobs))

    assert admitted(decisions["fits"]).placement.cluster == "national-daejeon"
    assert waiting(decisions["second"]).reason == (
        "no h100-80g free for 4 GPUs; 0 GPUs ahead of you"
    )
    assert waiting(decisions["third"]).reason == "no h100-80g free for 8 GPUs; 4 GPUs ahead of you"
    assert waiting(decisions["fourth"]).reason == (
        "no h100-80g free for 1 GPU; 12 GPUs ahead of you"
    )


def test_gpus_ahead_count_only_jobs_waiting_for_a_flavor_this_job_accepts() -> None:
    snapshot = (
        a_pool()
        .projects("kaist-nlp", "snu-vision")
        .cluster("national-daejeon", h100=(1, 8))
        .cluster("national-busan", v100=(1, 8))
        .full("national-daejeon")
        .full("national-busan")
        .snapshot()
    )
    jobs = [
        a_job("h100-job").project("kaist-nlp").gpus(8, H100).submitted(minutes_ago=9).build(),
        a_job("v100-job").project("snu-vision").gpus(2, V100).submitted(minutes_ago=5).build(),
        a_job("any-job").project("snu-vision").gpus(1, V100, H100).submitted(minutes_ago=1).build(),
    ]

    decisions = by_job(decide_queue(snapshot, jobs))

    assert waiting(decisions["v100-job"]).reason.endswith("; 0 GPUs ahead of you")
    assert waiting(decisions["any-job"]).reason == (
        "no h100-80g or v100-32g free for 1 GPU; 2 GPUs ahead of you"
    )


def test_a_job_waiting_for_its_flavor_hears_of_another_that_is_free_now_with_its_price() -> None:
    snapshot = (
        a_pool()
        .projects("kaist-nlp", credits=14)
        .cluster("national-daejeon", h100=(2, 8), a100=(2, 8))
        .full("national-daejeon")
        .snapshot()
    )
    [daejeon] = snapshot.clusters
    h100_free = tuple(replace(g, free=(8, 8)) if g.flavor == H100 else g for g in daejeon.groups)
    snapshot = replace(snapshot, clusters=(replace(daejeon, groups=h100_free),))
    asks_a100 = a_job("a100-only").project("kaist-nlp").gpus(8, A100).build()
    too_dear = a_job("long").project("kaist-nlp").gpus(8, A100).hours(2).build()

    cause = waiting(decide(snapshot, asks_a100)).cause

    assert isinstance(cause, NoCapacity)
    assert cause.instead == FreeInstead(H100, 16, Rate.of("1.0").milli_per_gpu_hour)
    assert cause.sentence.endswith(
        "16 h100-80g free now at 1.0 credits/GPU-h: add it to the job's flavors to start now"
    )
    # 8 GPUs x 2 h costs 12.8 credits on a100 but 16 on h100; kaist-nlp has 14: no such hint
    dear = waiting(decide(snapshot, too_dear)).cause
    assert isinstance(dear, NoCapacity)
    assert dear.instead is None


# --- data class -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_class", "site", "runs"),
    [
        (data_class, site, site in ALLOWED_SITES[data_class])
        for data_class in DataClass
        for site in SiteKind
    ],
)
def test_data_class_decides_which_sites_a_job_may_run_on(
    data_class: DataClass, site: SiteKind, runs: bool
) -> None:
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=1000, may_burst=True)
        .cluster("only", site=site, h100=(1, 8))
    ).snapshot()
    job = a_job().project("kaist-nlp").gpus(1, H100).data(data_class).build()

    decision = decide(snapshot, job)

    assert isinstance(decision, Admit) is runs
    if not runs:
        assert rejected(decision).reason == f"no {data_class} site has h100-80g"


def test_site_rules_are_restricted_national_only_and_sensitive_national_or_domestic_cloud() -> None:
    assert ALLOWED_SITES[DataClass.RESTRICTED] == {SiteKind.NATIONAL}
    assert ALLOWED_SITES[DataClass.SENSITIVE] == {SiteKind.NATIONAL, SiteKind.DOMESTIC_CLOUD}
    assert ALLOWED_SITES[DataClass.PUBLIC] == set(SiteKind)


@pytest.mark.parametrize(
    ("data_class", "clusters"),
    [
        (DataClass.RESTRICTED, {"national-daejeon"}),
        (DataClass.SENSITIVE, {"national-daejeon", "cloud-seoul"}),
        (DataClass.PUBLIC, {"national-daejeon", "cloud-seoul", "cloud-abroad"}),
    ],
)
def test_placements_only_list_sites_the_data_class_allows(
    data_class: DataClass, clusters: set[str]
) -> None:
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=1000, may_burst=True)
        .cluster("national-daejeon", site="national", h100=(1, 8))
        .cluster("cloud-seoul", site="domestic_cloud", h100=(1, 8))
        .cluster("cloud-abroad", site="foreign_cloud", h100=(1, 8))
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(2, H100).data(data_class).build()

    admit = admitted(decide(snapshot, job))

    assert {placement.cluster for placement in admit.placements} == clusters


def test_restricted_data_waits_for_a_national_site_even_when_a_cloud_is_free() -> None:
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=1000, may_burst=True)
        .cluster("national-daejeon", site="national", h100=(1, 8))
        .cluster("cloud-seoul", site="domestic_cloud", h100=(1, 8))
        .full("national-daejeon")
        .snapshot()
    )
    job = a_job().project("kaist-nlp").gpus(2, H100).data("restricted").build()

    assert waiting(decide(snapshot, job)).reason.startswith("no h100-80g free for 2 GPUs")


# --- order_queue ----------------------------------------------------------------------------------


def two_projects_heavy_and_light() -> Snapshot:
    """``heavy`` has used 500 credits, ``light`` 10: fair share ranks ``light`` first."""
    return (
        a_pool()
        .projects("heavy", "light")
        .cluster("national-daejeon", h100=(1, 8))
        .usage("heavy", 500.0)
        .usage("light", 10.0)
        .snapshot()
    )


def test_order_queue_puts_priority_class_first() -> None:
    snapshot = two_projects_heavy_and_light()
    jobs = [
        a_job("opportunistic").project("light").opportunistic().submitted(minutes_ago=90).build(),
        a_job("normal").project("light").submitted(minutes_ago=60).build(),
        a_job("urgent").project("heavy").urgent().submitted(minutes_ago=1).build(),
    ]

    assert [job.id for job in order_queue(snapshot, jobs)] == ["urgent", "normal", "opportunistic"]


def test_order_queue_puts_the_project_under_its_fair_share_before_an_older_job() -> None:
    snapshot = two_projects_heavy_and_light()
    assert snapshot.fair_share is not None
    assert snapshot.fair_share.ranking == ("light", "heavy")
    jobs = [
        a_job("heavy-old").project("heavy").submitted(minutes_ago=90).build(),
        a_job("light-new").project("light").submitted(minutes_ago=1).build(),
    ]

    assert [job.id for job in order_queue(snapshot, jobs)] == ["light-new", "heavy-old"]


def test_order_queue_takes_older_jobs_first_within_one_project_and_priority() -> None:
    snapshot = two_projects_heavy_and_light()
    jobs = [
        a_job("b-new").project("light").submitted(minutes_ago=1).build(),
        a_job("c-old").project("light").submitted(minutes_ago=30).build(),
        a_job("a-mid").project("light").submitted(minutes_ago=10).build(),
    ]

    assert [job.id for job in order_queue(snapshot, jobs)] == ["c-old", "a-mid", "b-new"]


def test_without_fair_share_order_queue_is_priority_then_age() -> None:
    snapshot = a_pool().projects("heavy", "light").snapshot()
    jobs = [
        a_job("light-new").project("light").submitted(minutes_ago=1).build(),
        a_job("heavy-old").project("heavy").submitted(minutes_ago=90).build(),
        a_job("light-urgent").project("light").urgent().submitted(minutes_ago=0).build(),
    ]

    assert [job.id for job in order_queue(snapshot, jobs)] == [
        "light-urgent",
        "heavy-old",
        "light-new",
    ]


def test_contended_gpus_go_to_the_project_under_its_fair_share() -> None:
    snapshot = two_projects_heavy_and_light()
    heavy = a_job("heavy").project("heavy").gpus(8, H100).submitted(minutes_ago=60).build()
    light = a_job("light").project("light").gpus(8, H100).submitted(minutes_ago=1).build()

    decisions = decide_queue(snapshot, [heavy, light])

    assert [decision.job for decision in decisions] == ["light", "heavy"]
    assert isinstance(decisions[0], Admit)
    assert isinstance(decisions[1], Wait)


# --- decide_queue: many admissions per cycle, never overspend -------------------------------------


def test_decide_queue_admits_many_jobs_in_one_cycle() -> None:
    names = [f"lab-{n}" for n in range(10)]
    snapshot = (
        a_pool().projects(*names, credits=100).cluster("national-daejeon", h100=(2, 8)).snapshot()
    )
    jobs = [a_job(f"j{n}").project(name).gpus(1, H100).build() for n, name in enumerate(names)]

    decisions = decide_queue(snapshot, jobs)

    assert all(isinstance(decision, Admit) for decision in decisions)
    assert len(decisions) == 10


def test_decide_queue_fills_the_pool_then_makes_the_rest_wait() -> None:
    snapshot = (
        a_pool().project("kaist-nlp", credits=1000).cluster("national-daejeon", h100=(2, 8))
    ).snapshot()
    jobs = [
        a_job(f"j{n:02}").project("kaist-nlp").gpus(2, H100).submitted(minutes_ago=60 - n).build()
        for n in range(12)
    ]

    decisions = decide_queue(snapshot, jobs)

    assert [type(decision) for decision in decisions] == [Admit] * 8 + [Wait] * 4


def test_decide_queue_spends_a_projects_credits_only_once() -> None:
    snapshot = one_project_pool(credits=20).snapshot()
    jobs = [
        a_job(f"j{n}").project("kaist-nlp").gpus(8, H100).hours(1).submitted(minutes_ago=9 - n)
        for n in range(3)
    ]

    decisions = decide_queue(snapshot, [job.build() for job in jobs])

    assert [type(decision) for decision in decisions] == [Admit, Admit, Wait]
    assert (
        waiting(decisions[2]).reason
        == "budget: needs 8.0 credits, 4.0 available (project kaist-nlp)"
    )


def test_decide_queue_does_not_change_the_snapshot() -> None:
    snapshot = one_project_pool(credits=20).snapshot()
    job = a_job().project("kaist-nlp").gpus(8, H100).hours(1).build()

    decide_queue(snapshot, [job, replace(job, id="j2"), replace(job, id="j3")])

    assert snapshot.available["kaist-nlp"] == Credits.of(20)
    assert admitted(decide(snapshot, job)).hold == Credits.of(8)


def test_a_rejected_job_does_not_stop_the_cycle() -> None:
    snapshot = one_project_pool().snapshot()
    jobs = [
        a_job("bad").project("kaist-nlp").gpus(1, "tpu-v5").submitted(minutes_ago=9).build(),
        a_job("good").project("kaist-nlp").gpus(1, H100).submitted(minutes_ago=1).build(),
    ]

    decisions = by_job(decide_queue(snapshot, jobs))

    assert isinstance(decisions["bad"], Reject)
    assert isinstance(decisions["good"], Admit)


# --- the property: one cycle never overspends or overbooks ----------------------------------------

# Repeats weight the draws: most sites national, most jobs small and public.
SITES = [SiteKind.NATIONAL, SiteKind.NATIONAL, SiteKind.DOMESTIC_CLOUD, SiteKind.FOREIGN_CLOUD]
DATA_CLASSES = [DataClass.PUBLIC, DataClass.PUBLIC, DataClass.SENSITIVE, DataClass.RESTRICTED]
SHORT = {"h100": H100, "a100": A100, "v100": V100}


@st.composite
def random_pools(draw: st.DrawFn) -> Snapshot:
    budgets = st.one_of(st.none(), st.integers(0, 600))
    spent = st.integers(0, 300)
    pool = a_pool().burst_wait(draw(st.sampled_from([0, 30, 600])))
    programs = draw(st.integers(1, 2))
    for p in range(programs):
        pool.program(f"prog-{p}", budget=draw(budgets))
        pool.used(f"prog-{p}", draw(spent))
        for o in range(draw(st.integers(1, 2))):
            org = f"org-{p}-{o}"
            borrowing = draw(st.one_of(st.none(), st.integers(0, 16)))
            pool.organization(org, budget=draw(budgets), guaranteed=4, borrowing=borrowing)
            pool.used(org, draw(spent))
            pool.running(org, draw(st.integers(0, 8)))
            for j in range(draw(st.integers(1, 3))):
                name = f"proj-{p}-{o}-{j}"
                pool.project(
                    name,
                    credits=draw(st.integers(0, 400)),
                    budget=draw(budgets),
                    may_burst=draw(st.booleans()),
                )
                pool.used(name, draw(spent))
    for c in range(draw(st.integers(1, 3))):
        name = f"cluster-{c}"
        flavors = draw(st.lists(st.sampled_from(list(SHORT)), min_size=1, max_size=3, unique=True))
        shapes = {
            short: (draw(st.integers(1, 3)), draw(st.sampled_from([4, 8]))) for short in flavors
        }
        site = draw(st.sampled_from(SITES))
        pool.cluster(name, site=site, **shapes)
        if site is not SiteKind.NATIONAL:
            for p in range(programs):
                if draw(st.booleans()):
                    pool.burst_budget(name, f"prog-{p}", draw(st.integers(0, 200)))
                    pool.burst_used(name, f"prog-{p}", draw(st.integers(0, 100)))
        pool.busy(
            name,
            **{
                short: tuple(draw(st.integers(0, gpn)) for _ in range(nodes))
                for short, (nodes, gpn) in shapes.items()
            },
        )
    for short in SHORT:
        pool.rate(SHORT[short], draw(st.sampled_from(["0.1", "0.25", "0.5", "0.8", "1.0", "2"])))
    return pool.snapshot()


@st.composite
def random_queues(draw: st.DrawFn, snapshot: Snapshot) -> list[JobRequest]:
    projects = [account.name for account in snapshot.tree.projects()]
    clusters = [cluster.name for cluster in snapshot.clusters]
    jobs = []
    for n in range(draw(st.integers(0, 25))):
        job = (
            a_job(f"j{n}")
            .project(draw(st.sampled_from(projects)))
            .gpus(draw(st.sampled_from([1, 1, 2, 2, 3, 4, 4, 6, 8, 8, 12, 16, 24])))
            .minutes(draw(st.integers(1, 480)))
            .priority(draw(st.sampled_from(list(PriorityClass))))
            .data(draw(st.sampled_from(DATA_CLASSES)))
            .submitted(minutes_ago=draw(st.integers(0, 1000)))
            .avoiding(*draw(st.lists(st.sampled_from(clusters), max_size=2)))
        )
        if draw(st.booleans()):
            job.of(*draw(st.lists(st.sampled_from([H100, A100, V100]), min_size=1, unique=True)))
        else:
            job.min_memory(draw(st.sampled_from([16, 40, 80])))
        jobs.append(job.build())
    return jobs


@st.composite
def pools_and_queues(draw: st.DrawFn) -> tuple[Snapshot, list[JobRequest]]:
    snapshot = draw(random_pools())
    return snapshot, draw(random_queues(snapshot))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pools_and_queues())
def test_one_cycle_never_overspends_credits_or_overbooks_gpus(
    scenario: tuple[Snapshot, list[JobRequest]],
) -> None:
    snapshot, jobs = scenario
    requests = {job.id: job for job in jobs}

    decisions = decide_queue(snapshot, jobs)

    assert sorted(decision.job for decision in decisions) == sorted(requests)
    held: dict[str, int] = defaultdict(int)
    gpus: dict[str, int] = defaultdict(int)
    taken: dict[tuple[str, str], int] = defaultdict(int)
    whole_nodes: dict[tuple[str, str], int] = defaultdict(int)
    burst: dict[tuple[str, str], int] = defaultdict(int)
    groups = {
        (cluster.name, group.flavor): (cluster, group)
        for cluster in snapshot.clusters
        for group in cluster.groups
    }
    for decision in decisions:
        if not isinstance(decision, Admit):
            continue
        job = requests[decision.job]
        placement = decision.placement
        cluster, group = groups[(placement.cluster, placement.flavor)]
        # Placed where the job may run, on a flavor it accepts, at the exact price.
        assert cluster.site in ALLOWED_SITES[job.data_class]
        assert not job.flavors or placement.flavor in job.flavors
        assert snapshot.flavors[placement.flavor].memory_gb >= (job.min_memory_gb or 0)
        assert placement.hold == snapshot.rate_card.cost(
            placement.flavor, job.gpus, job.time_limit_seconds
        )
        for account in snapshot.tree.path(job.project):
            held[account.name] += placement.hold.milli
            gpus[account.name] += job.gpus
        taken[(placement.cluster, placement.flavor)] += job.gpus
        if cluster.burst_target:  # only when it may burst, and within the burst budget
            program = snapshot.tree.path(job.project)[1].name
            assert snapshot.tree[job.project].may_burst
            assert job.submitted_at + timedelta(seconds=snapshot.burst_wait_seconds) <= NOW
            assert cluster.name not in job.avoid_clusters
            burst[(cluster.name, program)] += placement.hold.milli
        if job.gpus > group.gpus_per_node:
            whole_nodes[(placement.cluster, placement.flavor)] += -(
                -job.gpus // group.gpus_per_node
            )

    zero = Credits.zero()
    for account in snapshot.tree:
        if not held[account.name]:
            continue
        used = snapshot.used.get(account.name, zero).milli
        if account.kind is AccountKind.PROJECT:
            assert held[account.name] <= snapshot.available[account.name].milli
        if account.budget is not None:
            assert held[account.name] <= account.budget.milli - used
        if account.borrowing_limit_gpus is not None:
            running = snapshot.running_gpus.get(account.name, 0)
            limit = account.guaranteed_gpus + account.borrowing_limit_gpus
            assert running + gpus[account.name] <= limit
    for key, count in taken.items():
        _cluster, group = groups[key]
        assert count <= sum(group.free)
        assert whole_nodes[key] <= group.free.count(group.gpus_per_node)
    budgets = {
        (cluster.name, program): budget
        for cluster in snapshot.clusters
        for program, budget in cluster.burst_budgets.items()
    }
    for (cluster_name, program), milli in burst.items():
        if (budget := budgets.get((cluster_name, program))) is not None:
            used = snapshot.burst_used.get((cluster_name, program), zero).milli
            assert used + milli <= budget.milli


@settings(max_examples=100, deadline=None)
@given(pools_and_queues())
def test_decide_queue_decides_in_order_queue_order_and_only_rejects_what_decide_rejects(
    scenario: tuple[Snapshot, list[JobRequest]],
) -> None:
    snapshot, jobs = scenario

    decisions = decide_queue(snapshot, jobs)

    assert [decision.job for decision in decisions] == [
        job.id for job in order_queue(snapshot, jobs)
    ]
    alone = {job.id: decide(snapshot, job) for job in jobs}
    for decision in decisions:
        # A rejection never depends on what else is in the queue.
        assert isinstance(decision, Reject) == isinstance(alone[decision.job], Reject)
        if isinstance(decision, Reject):
            assert decision == alone[decision.job]


# --- backfill: small jobs fill gaps but never delay a blocked large job ------------------------


def backfill_pool() -> PoolBuilder:
    """16 h100 GPUs on two nodes; one node runs a job that ends in 2 hours at the latest."""
    return (
        a_pool()
        .projects("kaist-nlp", "snu-medical-imaging", credits=10_000)
        .cluster("national-daejeon", h100=(2, 8))
        .busy("national-daejeon", h100=(8,))
        .released("national-daejeon", h100=((2, 8),))
    )


def test_a_short_job_backfills_before_a_blocked_large_job() -> None:
    snapshot = backfill_pool().snapshot()
    large = a_job("large").project("kaist-nlp").gpus(16, H100).hours(4).submitted(30).build()
    short = a_job("short").project("snu-medical-imaging").gpus(4, H100).hours(1).build()

    decisions = by_job(decide_queue(snapshot, [large, short]))

    waiting(decisions["large"])
    admitted(decisions["short"])


def test_a_long_small_job_may_not_delay_the_reserved_start_of_a_large_one() -> None:
    snapshot = backfill_pool().snapshot()
    large = a_job("large").project("kaist-nlp").gpus(16, H100).hours(4).submitted(30).build()
    long = a_job("long").project("snu-medical-imaging").gpus(4, H100).hours(3).build()

    decisions = by_job(decide_queue(snapshot, [large, long]))

    reason = waiting(decisions["long"]).reason
    assert "h100-80g on national-daejeon is reserved for a larger job" in reason
    assert f"from {NOW + timedelta(hours=2):%Y-%m-%d %H:%M} UTC" in reason


def test_a_small_job_that_fits_in_what_is_spare_at_the_reserved_start_may_run() -> None:
    # 16 h100 GPUs on four 4-GPU nodes; two nodes run one job that ends in 2 hours.
    snapshot = (
        a_pool()
        .projects("kaist-nlp", "snu-medical-imaging", credits=10_000)
        .cluster("national-daejeon", h100=(4, 4))
        .busy("national-daejeon", h100=(4, 4))
        .released("national-daejeon", h100=((2, 8),))
        .snapshot()
    )
    large = a_job("large").project("kaist-nlp").gpus(12, H100).hours(4).submitted(30).build()
    spare = (
        a_job("spare").project("snu-medical-imaging").gpus(4, H100).hours(8).submitted(9).build()
    )
    greedy = a_job("greedy").project("snu-medical-imaging").gpus(4, H100).hours(8).build()

    decisions = by_job(decide_queue(snapshot, [large, spare, greedy]))

    waiting(decisions["large"])  # 8 free now, 12 needed
    admitted(decisions["spare"])  # 16 free at +2h: 12 for large, 4 spare
    waiting(decisions["greedy"])  # would eat into the large job's GPUs


def test_a_job_of_whole_nodes_reserves_whole_nodes() -> None:
    # 12 GPUs on 8-GPU nodes take two whole nodes: nothing is spare at +2h for a long job.
    snapshot = backfill_pool().snapshot()
    large = a_job("large").project("kaist-nlp").gpus(12, H100).hours(4).submitted(30).build()
    long = a_job("long").project("snu-medical-imaging").gpus(4, H100).hours(8).build()

    plan = plan_queue(snapshot, [large, long])

    assert plan.reservations == (
        Reservation("large", "national-daejeon", H100, NOW + timedelta(hours=2), spare=0),
    )
    waiting(by_job(plan.decisions)["long"])


# --- backfill per cluster: a blocked job holds back one cluster, the one it starts on first ------


def two_clusters(a: Callable[[PoolBuilder], PoolBuilder]) -> PoolBuilder:
    """Cluster A (national-a) shaped by ``a``; cluster B (national-b): one free 8-GPU h100 node
    that can never hold a 16-GPU job."""
    pool = (
        a_pool()
        .program("research")
        .organization("kaist")
        .projects("kaist-nlp", "kaist-vision", credits=10_000)
        .organization("snu")
        .project("snu-medical-imaging", credits=10_000)
        .cluster("national-b", h100=(1, 8))
    )
    return a(pool)


BACKFILL_PER_CLUSTER = {
    # A: 4 GPUs free on one node; all 16 back only at +5h. B's 8 free GPUs are no use to the
    # 16-GPU job: a long job may take them (one reservation over the flavor held them back).
    "blocked for want of capacity in A, B too small for it": (
        two_clusters(
            lambda pool: (
                pool.cluster("national-a", h100=(2, 8))
                .busy("national-a", h100=(4, 8))
                .released("national-a", h100=((2, 4), (5, 8)))
            )
        ),
        ("national-a", 5),
        {"long-8": "national-b", "long-4": None, "short-4": "national-a"},
    ),
    # A: 8 GPUs free in total, 4 on each of two nodes: the job needs two whole nodes, which
    # are empty at +4h at the earliest. B stays usable by jobs that could never hurt it.
    "blocked by fragmentation in A": (
        two_clusters(
            lambda pool: (
                pool.cluster("national-a", h100=(4, 8))
                .busy("national-a", h100=(4, 4, 8, 8))
                .released("national-a", h100=((1, 4), (4, 4), (6, 16)))
                .busy("national-b", h100=(2,))
            )
        ),
        ("national-a", 4),
        {"long-6": "national-b", "long-4": None, "short-4": "national-a"},
    ),
    # Both could hold it: A at +3h, B (two nodes here) at +1h. B is reserved; A is not.
    "reserved where it starts earliest: B": (
        a_pool()
        .projects("kaist-nlp", "kaist-vision", "snu-medical-imaging", credits=10_000)
        .cluster("national-a", h100=(3, 8))
        .busy("national-a", h100=(0, 8, 8))
        .released("national-a", h100=((3, 16),))
        .cluster("national-b", h100=(2, 8))
        .busy("national-b", h100=(8,))
        .released("national-b", h100=((1, 8),)),
        ("national-b", 1),
        {"long-8": "national-a", "long-4": None, "short-4": "national-b"},
    ),
    "reserved where it starts earliest: A": (
        a_pool()
        .projects("kaist-nlp", "kaist-vision", "snu-medical-imaging", credits=10_000)
        .cluster("national-a", h100=(2, 8))
        .busy("national-a", h100=(8,))
        .released("national-a", h100=((1, 8),))
        .cluster("national-b", h100=(3, 8))
        .busy("national-b", h100=(0, 8, 8))
        .released("national-b", h100=((3, 16),)),
        ("national-a", 1),
        {"long-8": "national-b", "long-4": None, "short-4": "national-a"},
    ),
    # A starts it first but is dedicated to snu: the reservation goes where kaist-nlp may run.
    "only on a cluster open to the job": (
        a_pool()
        .program("research")
        .organization("kaist")
        .projects("kaist-nlp", "kaist-vision", credits=10_000)
        .organization("snu")
        .project("snu-medical-imaging", credits=10_000)
        .cluster("national-a", h100=(2, 8))
        .busy("national-a", h100=(8,))
        .released("national-a", h100=((1, 8),))
        .dedicated("national-a", to="snu")
        .cluster("national-b", h100=(2, 8))
        .busy("national-b", h100=(8,))
        .released("national-b", h100=((3, 8),)),
        ("national-b", 3),
        {"long-8": "national-a", "long-4": None, "short-4": "national-b"},
    ),
}


@pytest.mark.parametrize(
    ("pool", "reserved", "placed"),
    BACKFILL_PER_CLUSTER.values(),
    ids=BACKFILL_PER_CLUSTER.keys(),
)
def test_a_blocked_job_reserves_one_cluster_where_it_starts_first_and_leaves_the_others_free(
    pool: PoolBuilder, reserved: tuple[str, int], placed: dict[str, str | None]
) -> None:
    large = a_job("large").project("kaist-nlp").gpus(16, H100).hours(4).submitted(60).build()
    later = [
        a_job(name)
        .project("snu-medical-imaging" if name == "long-8" else "kaist-vision")
        .gpus(int(name.split("-")[1]), H100)
        .hours(1 if name.startswith("short") else 10)
        .submitted(50 - index)
        .build()
        for index, name in enumerate(placed)
    ]

    plan = plan_queue(pool.snapshot(), [large, *later])

    cluster, hours = reserved
    assert [(r.job, r.cluster, r.flavor, r.start) for r in plan.reservations] == [
        ("large", cluster, H100, NOW + timedelta(hours=hours))
    ]
    decisions = by_job(plan.decisions)
    waiting(decisions["large"])
    for name, where in placed.items():
        if where is None:
            assert f"on {cluster} is reserved for a larger job" in waiting(decisions[name]).reason
        else:
            assert admitted(decisions[name]).placement.cluster == where, name


def test_a_restricted_job_reserves_a_national_cluster_not_an_earlier_cloud() -> None:
    snapshot = (
        a_pool()
        .project("kaist-nlp", credits=10_000, may_burst=True)
        .project("kaist-vision", credits=10_000, may_burst=True)
        .cluster("cloud-seoul", site="foreign_cloud", h100=(2, 8))
        .full("cloud-seoul")
        .released("cloud-seoul", h100=((1, 16),))
        .cluster("national-a", h100=(2, 8))
        .full("national-a")
        .released("national-a", h100=((5, 16),))
        .snapshot()
    )
    large = a_job("large").gpus(16, H100).data("restricted").submitted(10).build()
    public = a_job("public").project("kaist-vision").gpus(16, H100).build()

    plan = plan_queue(snapshot, [large, public])

    assert [(r.job, r.cluster, r.start) for r in plan.reservations] == [
        ("large", "national-a", NOW + timedelta(hours=5)),
        ("public", "cloud-seoul", NOW + timedelta(hours=1)),
    ]


def test_a_job_too_large_for_every_node_of_a_single_node_cluster_reserves_nothing_there() -> None:
    snapshot = (
        a_pool()
        .projects("kaist-nlp", credits=10_000)
        .cluster("ray-a", h100=(2, 8))
        .single_node("ray-a")
        .full("ray-a")
        .released("ray-a", h100=((1, 16),))
        .cluster("national-b", h100=(2, 8))
        .full("national-b")
        .released("national-b", h100=((3, 16),))
        .snapshot()
    )
    large = a_job("large").gpus(16, H100).build()

    plan = plan_queue(snapshot, [large])

    assert [(r.cluster, r.start) for r in plan.reservations] == [
        ("national-b", NOW + timedelta(hours=3))
    ]


def test_a_job_that_can_never_start_from_known_releases_reserves_nothing() -> None:
    # The busy GPUs are not gpupool's (no time limit known): no start can be promised.
    snapshot = (
        a_pool()
        .projects("kaist-nlp", "kaist-vision", credits=10_000)
        .cluster("national-a", h100=(2, 8))
        .busy("national-a", h100=(8,))
        .snapshot()
    )
    large = a_job("large").gpus(16, H100).submitted(10).build()
    long = a_job("long").project("kaist-vision").gpus(8, H100).hours(48).build()

    plan = plan_queue(snapshot, [large, long])

    assert plan.reservations == ()
    admitted(by_job(plan.decisions)["long"])
