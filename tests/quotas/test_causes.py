"""Typed causes: stored as JSON and read back the same, with the sentence people read."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from quotas.causes import (
    BooksMoved,
    BorrowingLimit,
    Cause,
    DispatchRetry,
    Ended,
    FreeInstead,
    Invalid,
    Lost,
    NoCapacity,
    NoFlavor,
    NoOpenCluster,
    NoSite,
    Outcome,
    OverBudget,
    OverShare,
    OverWholeBudget,
    Requeued,
    Reserved,
    StopCause,
    Stopping,
    TooLarge,
    Unprovisioned,
    from_json,
    to_json,
)
from quotas.quantities import Credits

START = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
PREEMPTED = Stopping(StopCause.PREEMPT, "preempted for gp-9 of kaist-nlp")

EXAMPLES: list[tuple[Cause, str]] = [
    (
        NoCapacity(("h100-80g", "a100-80g"), 8, 1),
        "no h100-80g or a100-80g free for 8 GPUs; 1 GPU ahead of you",
    ),
    (
        NoCapacity(("h100-80g",), 2, 0, OverShare("organization", "kaist", 61, 40)),
        "over fair share: organization kaist uses 61% vs entitled 40%; "
        "no h100-80g free for 2 GPUs; 0 GPUs ahead of you",
    ),
    (
        NoCapacity(("a100-80g",), 8, 0, None, FreeInstead("h100-80g", 16, 1000)),
        "no a100-80g free for 8 GPUs; 0 GPUs ahead of you; 16 h100-80g free now at 1.0 "
        "credits/GPU-h: add it to the job's flavors to start now",
    ),
    (
        NoCapacity(("h100-80g",), 8, 16, passed_by=2),
        "no h100-80g free for 8 GPUs; 16 GPUs ahead of you; 2 jobs moved ahead of you (a higher "
        "priority class, or a project further below its fair share, goes first)",
    ),
    (
        Reserved("h100-80g", "national-daejeon", START),
        "h100-80g on national-daejeon is reserved for a larger job waiting since earlier, "
        "from 2026-03-01 09:30 UTC; this job would still run then",
    ),
    (
        OverBudget(Credits.of(8), Credits.of(4), "project", "kaist-nlp"),
        "budget: needs 8.0 credits, 4.0 available (project kaist-nlp)",
    ),
    (
        BorrowingLimit("organization", "kaist", 12, 8, 4),
        "borrowing limit: organization kaist uses 12 GPUs of 8 guaranteed + 4 borrowable",
    ),
    (BooksMoved("kaist-nlp has 2.0 credits left"), "kaist-nlp has 2.0 credits left"),
    (Requeued(PREEMPTED), "requeued after being preempted for gp-9 of kaist-nlp"),
    (Requeued(Lost("national-daejeon")), "lost by national-daejeon (cluster restarted?); requeued"),
    (
        Requeued(Unprovisioned("cloud-tokyo", "not provisioned within 15 min")),
        "cloud-tokyo could not provision cloud capacity for it (not provisioned within 15 min); "
        "requeued",
    ),
    (
        NoCapacity(
            ("h100-80g",),
            16,
            8,
            burst_from=START,
            burst_budget_spent=("cloud-seoul",),
            unprovisioned=("cloud-tokyo",),
        ),
        "no h100-80g free for 16 GPUs; 8 GPUs ahead of you; cloud capacity could not be "
        "provisioned for it at cloud-tokyo, which it will not try again; its program's burst "
        "budget at cloud-seoul has too little left; it may burst to cloud capacity from "
        "2026-03-01 09:30 UTC if the pooled clusters have not started it by then",
    ),
    (
        DispatchRetry("connection refused", 2.0),
        "dispatch failed (connection refused); retrying in 2s",
    ),
    (NoFlavor(200), "no flavor with at least 200 GB in the pool"),
    (NoOpenCluster("kaist-nlp", ("h100-80g",)), "no cluster open to kaist-nlp has h100-80g"),
    (NoSite("restricted", ("h100-80g",)), "no restricted site has h100-80g"),
    (
        TooLarge(24, 8, multi_node=False),
        "24 GPUs is more than one node has (8 at most), and no cluster here runs jobs across nodes",
    ),
    (TooLarge(64, 32, multi_node=True), "64 GPUs is more than any cluster has (32 at most)"),
    (
        OverWholeBudget(Credits.of(100), Credits.of(50), "project", "kaist-nlp"),
        "over the whole budget of project kaist-nlp: needs 100.0 credits, the budget is 50.0",
    ),
    (Invalid("a job needs a positive time limit"), "a job needs a positive time limit"),
    (Stopping.time_limit(3600), "stopping: reached its time limit of 1h"),
    (Stopping.overuse(3.0, 2), "stopping: its tasks and actors held 3 GPUs, 2 reserved"),
    (Ended(Outcome.SUCCEEDED, 0), "succeeded"),
    (Ended(Outcome.FAILED, 3, "boom"), "failed (exit code 3): boom"),
    (
        Ended(Outcome.SYSTEM_FAULT, None, "node died", Credits.of("1.2")),
        "system fault: node died; 1.2 credits refunded",
    ),
    (Ended(Outcome.STOPPED), "stopped on the backend"),
]


@pytest.mark.parametrize(("cause", "sentence"), EXAMPLES)
def test_a_cause_is_stored_as_json_and_read_back_the_same(cause: Cause, sentence: str) -> None:
    stored = json.loads(json.dumps(to_json(cause)))
    assert stored["kind"] == cause.kind
    assert from_json(stored) == cause
    assert cause.sentence == sentence


def test_every_kind_has_an_example() -> None:
    from quotas.causes import _KINDS

    examples = {type(cause) for cause, _ in EXAMPLES}
    assert set(_KINDS.values()) - {Lost, Unprovisioned} <= examples


def test_a_cause_stored_before_a_field_was_added_reads_with_its_default() -> None:
    stored = to_json(NoCapacity(("h100-80g",), 8, 0))
    del stored["passed_by"]
    assert from_json(stored) == NoCapacity(("h100-80g",), 8, 0)
