"""Preemption decisions: who is stopped so an under-served, long-waiting job can start."""

from __future__ import annotations

from datetime import timedelta

import pytest

from quotas.admission import JobRequest, PriorityClass, Snapshot
from quotas.preemption import RunningJob, choose_preemptions
from tests.quotas.builders import H100, NOW, a_job, a_pool

WAIT_BOUND = 1800
MIN_RUNTIME = 600


def contended_pool(startups_running: int = 16) -> Snapshot:
    """Two programs with 8 GPUs guaranteed each; startups fill all 16 h100 GPUs."""
    return (
        a_pool()
        .program("startups", guaranteed=8)
        .organization("hanbit-robotics")
        .project("hanbit-robot-policy", credits=10_000)
        .program("universities", guaranteed=8)
        .organization("kaist")
        .project("kaist-nlp", credits=10_000)
        .project("kaist-protein", credits=10_000)
        .cluster("national-daejeon", h100=(2, 8))
        .full("national-daejeon")
        .running("startups", startups_running)
        .running("hanbit-robotics", startups_running)
        .running("hanbit-robot-policy", startups_running)
        .snapshot()
    )


def startup_job(job_id: str, minutes_ago: int = 60, **options: object) -> RunningJob:
    return RunningJob(
        job_id,
        "hanbit-robot-policy",
        8,
        "national-daejeon",
        H100,
        NOW - timedelta(minutes=minutes_ago),
        **options,  # type: ignore[arg-type]
    )


def waiting(minutes: int = 45, project: str = "kaist-nlp", gpus: int = 8):  # type: ignore[no-untyped-def]
    return a_job("waiting").project(project).gpus(gpus, H100).submitted(minutes).build()


def choose(snapshot: Snapshot, jobs, running):  # type: ignore[no-untyped-def]
    return choose_preemptions(
        snapshot, jobs, running, wait_bound_seconds=WAIT_BOUND, min_runtime_seconds=MIN_RUNTIME
    )


def test_borrowed_preemptible_work_is_reclaimed_for_an_under_served_job() -> None:
    running = [startup_job("old", 120, preemptible=True), startup_job("new", 30, preemptible=True)]

    [preemption] = choose(contended_pool(), [waiting()], running)

    assert preemption.victim == "new"  # newest started loses the least work
    assert preemption.for_job == "waiting"
    assert "under its share" in preemption.reason
    assert "borrowed capacity" in preemption.reason


def test_opportunistic_work_is_reclaimed_even_within_a_guarantee() -> None:
    running = [startup_job("scavenger", priority=PriorityClass.OPPORTUNISTIC)]

    [preemption] = choose(contended_pool(startups_running=8), [waiting()], running)

    assert preemption.victim == "scavenger"
    assert "opportunistic" in preemption.reason


@pytest.mark.parametrize(
    ("running", "job", "why"),
    [
        ([startup_job("v", preemptible=True)], waiting(minutes=10), "not waited long enough"),
        ([startup_job("v", minutes_ago=5, preemptible=True)], waiting(), "victim ran too briefly"),
        ([startup_job("v")], waiting(), "victim not preemptible"),
        ([startup_job("v", preemptible=True, priority=PriorityClass.URGENT)], waiting(), "urgent"),
        (
            [
                RunningJob(
                    "v",
                    "kaist-protein",
                    8,
                    "national-daejeon",
                    H100,
                    NOW - timedelta(hours=1),
                    preemptible=True,
                )
            ],
            waiting(),
            "same program",
        ),
        ([startup_job("v", preemptible=True)], waiting(gpus=16), "not enough room"),
    ],
)
def test_no_preemption_when_a_rule_forbids_it(running, job, why: str) -> None:  # type: ignore[no-untyped-def]
    assert choose(contended_pool(), [job], running) == [], why


def test_a_preemptible_job_within_its_guarantee_is_left_alone() -> None:
    running = [startup_job("v", preemptible=True)]

    assert choose(contended_pool(startups_running=8), [waiting()], running) == []


def test_each_victim_is_preempted_once_per_cycle() -> None:
    running = [startup_job("a", 60, preemptible=True), startup_job("b", 50, preemptible=True)]
    first = waiting()
    second = a_job("second").project("kaist-protein").gpus(8, H100).submitted(40).build()

    chosen = choose(contended_pool(), [first, second], running)

    assert sorted(p.victim for p in chosen) == ["a", "b"]
    assert {p.for_job for p in chosen} == {"waiting", "second"}


def test_a_kind_of_job_that_found_no_victims_is_tried_again_once_room_was_made() -> None:
    """A job of a kind (program and shape) that found neither room nor victims is passed over
    only while nothing changed since.

    kaist-nlp is under its guarantee, but the only victims are its own program's, so ``first``
    finds none. hanbit's ``startup`` then preempts one of them (8 GPUs) and takes 4: 4 GPUs are
    coming free. kaist-nlp's ``second``, of ``first``'s kind, must take those 4, or hanbit's
    ``later`` would take them instead of preempting the other victim.
    """
    snapshot = (
        a_pool()
        .program("startups", guaranteed=8)
        .organization("hanbit-robotics")
        .project("hanbit-robot-policy", credits=10_000, guaranteed=4)
        .program("universities", guaranteed=8)
        .organization("kaist")
        .project("kaist-nlp", credits=10_000, guaranteed=4)
        .project("kaist-protein", credits=10_000)
        .cluster("national-daejeon", h100=(2, 8))
        .full("national-daejeon")
        .running("universities", 16)
        .running("kaist", 16)
        .running("kaist-protein", 16)
        .snapshot()
    )
    running = [
        RunningJob(
            name,
            "kaist-protein",
            8,
            "national-daejeon",
            H100,
            NOW - timedelta(minutes=minutes),
            preemptible=True,
        )
        for name, minutes in (("older", 120), ("newer", 60))
    ]

    def job(name: str, project: str, minutes: int) -> JobRequest:
        return a_job(name).project(project).gpus(4, H100).submitted(minutes).build()

    queue = [
        job("first", "kaist-nlp", 50),
        job("startup", "hanbit-robot-policy", 45),
        job("second", "kaist-nlp", 40),
        job("later", "hanbit-robot-policy", 35),
    ]

    chosen = choose(snapshot, queue, running)

    assert [(p.victim, p.for_job) for p in chosen] == [("newer", "startup"), ("older", "later")]
