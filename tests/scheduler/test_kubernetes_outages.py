"""Capacity that is down on Kubernetes: a NotReady or cordoned node of ``kube-daejeon`` (2 nodes
of 8 H100s, the fake API server; ``test_kubernetes_cycle``'s pool) becomes a node outage, no job
is placed on it meanwhile, and the utilisation report counts its GPU-hours as down."""

from __future__ import annotations

from datetime import timedelta

from jobs.model import JobState
from quotas.cases.reports import utilisation_report
from quotas.db.session import transaction
from quotas.outages import NodeOutage
from quotas.service import Books
from tests.scheduler.pools import HOUR, START
from tests.scheduler.test_kubernetes_cycle import KubePool, pool  # noqa: F401 - a fixture


def outages(kube: KubePool) -> list[NodeOutage]:
    with transaction(kube.factory) as session:
        return Books(session).outages.overlapping(START, kube.clock() + timedelta(days=1))


def test_a_not_ready_node_is_down_until_it_is_ready_and_the_report_counts_it(
    pool: KubePool,  # noqa: F811 - the fixture imported above
) -> None:
    pool.cluster.set_node_ready("h100-80g-2", False)
    first = pool.submit("first")
    pool.cycle()
    pool.clock.advance(60)
    second = pool.submit("second")
    pool.cycle()

    (down,) = outages(pool)
    assert (down.cluster, down.flavor, down.nodes, down.gpus) == ("kube-daejeon", "h100-80g", 1, 8)
    assert (down.since, down.until) == (START, None)
    assert pool.job(first).placed is not None
    assert pool.job(second).state is JobState.QUEUED
    assert "no h100-80g free" in pool.job(second).reason

    pool.clock.advance(HOUR - 60)
    pool.cluster.set_node_ready("h100-80g-2", True)
    pool.cycle()

    assert outages(pool)[0].until == START + timedelta(hours=1)
    assert pool.job(second).state is JobState.STARTING
    pool.clock.advance(HOUR)
    with transaction(pool.factory) as session:
        report = utilisation_report(Books(session, pool.clock), START, pool.clock())
    (h100,) = [row for row in report.rows if row.cluster == "kube-daejeon"]
    assert h100.total == 16 * 2 * HOUR
    assert h100.down == 8 * HOUR  # one node of 8 GPUs for the first hour


def test_a_cordoned_node_is_down_too(pool: KubePool) -> None:  # noqa: F811
    pool.cluster.cordon("h100-80g-1")
    pool.cycle()
    pool.cluster.cordon("h100-80g-1", cordoned=False)
    pool.clock.advance(30)
    pool.cycle()

    (down,) = outages(pool)
    assert (down.nodes, down.gpus) == (1, 8)
    assert (down.since, down.until) == (START, START + timedelta(seconds=30))
