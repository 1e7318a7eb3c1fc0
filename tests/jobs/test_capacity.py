"""Packing holding jobs onto nodes: the histogram of free GPUs per node that admission reads."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jobs.capacity import listed, pack


def one_by_one(nodes: int, per_node: int, sizes: list[int], down: int) -> list[int]:
    """The packing spelled out on a list of nodes, one job at a time, largest first: best fit
    (the fullest node it fits) up to a node, the emptiest nodes first beyond one; a job that
    fits no node spreads over the emptiest (an overbooked cluster)."""
    free = [per_node] * nodes
    for gpus in sorted(sizes, reverse=True):
        fitting = [i for i, f in enumerate(free) if f >= gpus] if gpus <= per_node else []
        if fitting:
            best = min(fitting, key=lambda i: free[i])
            free[best] -= gpus
            continue
        remaining = gpus
        for i in sorted(range(nodes), key=lambda i: -free[i]):
            taken = min(free[i], remaining)
            free[i] -= taken
            remaining -= taken
            if not remaining:
                break
    for i in sorted(range(nodes), key=lambda i: -free[i])[:down]:
        free[i] = 0
    histogram = [0] * (per_node + 1)
    for f in free:
        histogram[f] += 1
    return histogram


@settings(max_examples=400, deadline=None)
@given(
    st.integers(1, 8),
    st.integers(1, 8),
    st.lists(st.integers(1, 20), max_size=30),
    st.integers(0, 3),
)
def test_packing_by_size_is_packing_one_job_at_a_time(
    nodes: int, per_node: int, sizes: list[int], down: int
) -> None:
    assert pack(nodes, per_node, sizes, min(down, nodes)) == one_by_one(
        nodes, per_node, sizes, min(down, nodes)
    )


def test_jobs_of_one_size_fill_the_fullest_nodes_first() -> None:
    # two 8-GPU nodes: three 3-GPU jobs go 2 on one node (2 left) and 1 on the other (5 left)
    assert listed(pack(2, 8, [3, 3, 3])) == (5, 2)
    # a 6-GPU job first takes a node; the 3-GPU jobs then fill the fullest that fits
    assert listed(pack(2, 8, [3, 6, 3])) == (2, 2)
    # a gang of 12 takes the emptiest nodes whole, then part of one
    assert listed(pack(3, 8, [12])) == (8, 4, 0)
