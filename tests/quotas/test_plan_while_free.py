"""Deciding only while anything is free admits exactly what deciding the whole queue does.

``plan_while_free`` (the simulator's) stops once no GPU is free anywhere; over random pools and
queues its decisions are ``plan_queue``'s for every job it decided, every job it left undecided
is one ``plan_queue`` did not admit, and those it says wait for capacity are the ones
``plan_queue`` has waiting for capacity (the others wait for a borrowing limit, or are refused
for reasons that depend on nothing a cycle changes).
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from quotas.admission import (
    Admit,
    JobRequest,
    Reject,
    Snapshot,
    Wait,
    order_queue,
    plan_queue,
    plan_while_free,
)
from quotas.causes import NoCapacity
from tests.quotas.test_backfill_property import pools, queues


@st.composite
def nearly_full_pools_and_queues(draw: st.DrawFn) -> tuple[Snapshot, list[JobRequest]]:
    """``test_backfill_property``'s pools and queues, most with nothing or one GPU free per
    node, so that a queue often fills the pool before its end."""
    snapshot = draw(pools())
    if draw(st.integers(0, 3)):
        clusters = tuple(
            replace(
                cluster,
                groups=tuple(
                    replace(group, free=tuple(min(f, most) for f in group.free))
                    for group in cluster.groups
                    for most in [draw(st.sampled_from([0, 0, 1]))]
                ),
            )
            for cluster in snapshot.clusters
        )
        snapshot = replace(snapshot, clusters=clusters)
    return snapshot, draw(queues(snapshot))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nearly_full_pools_and_queues())
def test_deciding_while_anything_is_free_admits_what_deciding_everything_admits(
    case: tuple[Snapshot, list[JobRequest]],
) -> None:
    snapshot, jobs = case
    whole = plan_queue(snapshot, jobs).decisions
    partial = plan_while_free(snapshot, order_queue(snapshot, jobs))
    decided = len(partial.decisions)

    assert partial.decisions == whole[:decided]
    undecided = list(partial.undecided)
    assert [job.id for job in undecided] == [decision.job for decision in whole[decided:]]
    for job, decision in zip(undecided, whole[decided:], strict=True):
        assert not isinstance(decision, Admit)
        if isinstance(decision, Wait):
            assert partial.waits_for_capacity(job) == isinstance(decision.cause, NoCapacity)
        else:
            assert isinstance(decision, Reject)
