"""Capacity that is down (``scheduler.outages``): what a backend reports up is compared with the
declared inventory, outages are started, resized and ended so the GPU-time down is exact, a
backend that does not answer is no evidence, and the cycle places nothing on a down node.

The step runs against the demo pool's books with a fake clock and a small backend that only
says which nodes are up; the cycle scenario runs on the simulated backend (``test_cycle``'s
pool). The Kubernetes scenario, with the fake API server, is ``test_kubernetes_outages``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import pytest

from jobs.lifecycle import RunState, RunStatus
from jobs.model import JobState
from quotas.admission import SiteKind
from quotas.causes import NoCapacity
from quotas.db.session import transaction
from quotas.inventory import BackendKind, ClusterSpec, Inventory
from quotas.outages import NodeOutage
from quotas.service import Books
from scheduler.backends.base import (
    Backend,
    FlavorCapacity,
    LaunchSpec,
    PermanentBackendError,
    TransientBackendError,
)
from scheduler.outages import Down, OutageWatch, nodes_down, outage_changes
from scheduler.settings import SchedulerSettings
from tests.scheduler.pools import HOUR, START, Clock
from tests.scheduler.test_cycle import Pool, pool  # noqa: F401 - a fixture

DAEJEON = ClusterSpec(
    "national-daejeon",
    BackendKind.RAY,
    SiteKind.NATIONAL,
    (Inventory("h100-80g", 2, 8), Inventory("a100-80g", 2, 8), Inventory("v100-32g", 4, 8)),
)


def up(nodes: int, gpus_per_node: int = 8) -> FlavorCapacity:
    return FlavorCapacity("any", gpus_per_node, (gpus_per_node,) * nodes)


# -- what is down: pure ------------------------------------------------------------------------


def test_declared_nodes_the_backend_does_not_report_up_are_down() -> None:
    reported = {"h100-80g": up(1), "v100-32g": up(4)}  # no a100 at all

    assert nodes_down(DAEJEON, reported) == {"h100-80g": Down(1, 8), "a100-80g": Down(2, 16)}


def test_nodes_up_are_counted_in_the_declared_node_size() -> None:
    # the embedded Ray cluster is one node holding the whole inventory: nothing is down
    one_big_node = {"h100-80g": up(1, 16), "a100-80g": up(1, 16), "v100-32g": up(1, 32)}
    # more nodes than declared is not "down"; half a node's GPUs short is the node down
    more_and_less = {"h100-80g": up(3), "a100-80g": up(1, 12), "v100-32g": up(4)}

    assert nodes_down(DAEJEON, one_big_node) == {}
    assert nodes_down(DAEJEON, more_and_less) == {"a100-80g": Down(1, 8)}


def test_outages_start_resize_and_end_with_what_is_seen() -> None:
    since, now = START, START + timedelta(hours=2)

    def outage(key: int, cluster: str, flavor: str, nodes: int) -> NodeOutage:
        return NodeOutage(cluster, flavor, nodes, nodes * 8, since, id=key)

    lasting = outage(1, "national-daejeon", "h100-80g", 1)
    grown = outage(2, "national-daejeon", "a100-80g", 1)
    back = outage(3, "national-gwangju", "v100-32g", 2)
    unanswered = outage(4, "kube-daejeon", "h100-80g", 1)
    removed = outage(5, "national-daejeon", "v100-32g", 1)  # flavor no longer declared
    seen = {
        "national-daejeon": {"h100-80g": Down(1, 8), "a100-80g": Down(2, 16)},
        "national-gwangju": {},
    }
    declared = [
        ("national-daejeon", "h100-80g"),
        ("national-daejeon", "a100-80g"),
        ("national-gwangju", "v100-32g"),
        ("kube-daejeon", "h100-80g"),
    ]

    changes = outage_changes([lasting, grown, back, unanswered, removed], seen, declared, now)

    assert changes.ended == (grown, back, removed)
    assert changes.started == (NodeOutage("national-daejeon", "a100-80g", 2, 16, now),)
    assert outage_changes([lasting, unanswered], seen, declared, now).ended == ()


# -- the step, on the books --------------------------------------------------------------------


class Nodes:
    """A backend that runs nothing and says which nodes are up: ``up`` maps a flavor to
    (nodes up, GPUs per node); it can fail, or take ``delay`` seconds to answer."""

    def __init__(self, up: Mapping[str, tuple[int, int]]) -> None:
        self.up = dict(up)
        self.failure: Exception | None = None
        self.delay = 0.0
        self.asked = 0

    async def capacity(self) -> Mapping[str, FlavorCapacity]:
        self.asked += 1
        await asyncio.sleep(self.delay)
        if self.failure is not None:
            raise self.failure
        return {
            flavor: FlavorCapacity(flavor, per_node, (per_node,) * nodes)
            for flavor, (nodes, per_node) in self.up.items()
        }

    async def submit(self, spec: LaunchSpec) -> None:
        raise PermanentBackendError("this cluster only says which nodes are up")

    async def status(self, job_id: str) -> RunStatus:
        return RunStatus(RunState.NOT_FOUND)

    async def cancel(self, job_id: str) -> None:
        """Nothing runs here."""

    async def logs(self, job_id: str) -> str:
        return ""

    async def close(self) -> None:
        """Nothing to let go of."""


@dataclass
class Watched:
    clock: Clock
    watch: OutageWatch
    backends: dict[str, Backend]
    daejeon: Nodes
    gwangju: Nodes

    def check(self) -> None:
        asyncio.run(self.watch.check(self.backends))

    def outages(self) -> list[NodeOutage]:
        with transaction(self.watch.factory) as session:
            return Books(session).outages.overlapping(START, self.clock() + timedelta(days=1))


@pytest.fixture
def watched(pool: Pool) -> Watched:  # noqa: F811 - the fixture imported above
    """The demo pool's two national clusters, each with a backend whose nodes are all up."""
    daejeon = Nodes({"h100-80g": (2, 8), "a100-80g": (2, 8)})
    gwangju = Nodes({"v100-32g": (4, 8)})
    backends: dict[str, Backend] = {"national-daejeon": daejeon, "national-gwangju": gwangju}
    settings = SchedulerSettings(health_check_seconds=30, health_check_timeout_seconds=0.05)
    watch = OutageWatch(pool.factory, settings, pool.clock)
    return Watched(pool.clock, watch, backends, daejeon, gwangju)


def test_a_node_down_is_an_outage_until_it_is_back_and_each_change_is_a_record(
    watched: Watched,
) -> None:
    watched.check()
    assert watched.outages() == []

    watched.daejeon.up["h100-80g"] = (1, 8)
    watched.clock.advance(10)
    watched.check()  # not due: asked every 30 s of the clock
    assert watched.outages() == []
    watched.clock.advance(20)
    watched.check()
    (down,) = watched.outages()
    assert (down.cluster, down.flavor, down.nodes, down.gpus) == (
        "national-daejeon",
        "h100-80g",
        1,
        8,
    )
    assert (down.since, down.until) == (START + timedelta(seconds=30), None)

    watched.daejeon.up["h100-80g"] = (0, 8)  # the other node goes down too
    watched.clock.advance(HOUR)
    watched.check()
    watched.daejeon.up["h100-80g"] = (2, 8)
    watched.clock.advance(HOUR)
    watched.check()

    one, both = watched.outages()
    assert (one.nodes, one.gpus, one.until) == (1, 8, both.since)
    assert (both.nodes, both.gpus) == (2, 16)
    assert both.until == START + timedelta(seconds=30 + 2 * HOUR)
    assert watched.daejeon.asked == 4


@pytest.mark.parametrize(
    "failing",
    ["transient", "permanent", "too slow"],
)
def test_a_backend_that_does_not_answer_is_no_evidence_of_an_outage(
    watched: Watched, failing: str, caplog: pytest.LogCaptureFixture
) -> None:
    watched.daejeon.up["a100-80g"] = (1, 8)
    watched.check()
    (before,) = watched.outages()

    watched.daejeon.up["a100-80g"] = (2, 8)  # back, but the backend cannot say so
    if failing == "too slow":
        watched.daejeon.delay = 1.0
    else:
        error = TransientBackendError if failing == "transient" else PermanentBackendError
        watched.daejeon.failure = error("the API server did not answer")
    watched.gwangju.up["v100-32g"] = (3, 8)  # gwangju answers: its outage is recorded
    watched.clock.advance(30)
    with caplog.at_level(logging.WARNING, logger="scheduler.outages"):
        watched.check()

    assert [(o.cluster, o.flavor, o.until) for o in watched.outages()] == [
        ("national-daejeon", "a100-80g", None),
        ("national-gwangju", "v100-32g", None),
    ]
    assert watched.outages()[0] == before
    assert "cannot read which nodes of national-daejeon are up" in caplog.text


def test_burst_targets_are_not_asked_their_inventory_is_the_most_they_scale_to(
    watched: Watched,
) -> None:
    cloud = Nodes({})  # nothing provisioned now
    with transaction(watched.watch.factory) as session:
        Books(session).clusters.add(
            ClusterSpec(
                "cloud-tokyo",
                BackendKind.CLOUD,
                SiteKind.FOREIGN_CLOUD,
                (Inventory("h100-80g", 4, 8),),
                price_multiplier_milli=1500,
            )
        )
    watched.backends["cloud-tokyo"] = cloud

    watched.check()

    assert watched.outages() == []
    assert cloud.asked == 0


# -- the cycle ---------------------------------------------------------------------------------


def test_a_job_that_fits_only_on_a_down_node_waits_and_is_placed_once_it_is_back(
    pool: Pool,  # noqa: F811 - the fixture imported above
) -> None:
    # only a change decides the queue again, and the job that runs is not charged meanwhile
    pool.scheduler.settings.decide_every_seconds = 24 * HOUR
    pool.scheduler.settings.charge_interval_seconds = 24 * HOUR
    pool.daejeon.inventory["h100-80g"] = (1, 8)  # one of the two h100 nodes is down
    first = pool.submit("first", gpus=8, hours=4, flavors=("h100-80g",))
    pool.cycle()
    pool.clock.advance(60)
    second = pool.submit("second", gpus=8, hours=4, flavors=("h100-80g",))
    pool.cycle()

    assert pool.job(first).state is JobState.RUNNING
    waiting = pool.job(second)
    assert waiting.state is JobState.QUEUED  # waits: the pool's shape is unchanged
    assert isinstance(waiting.cause, NoCapacity)
    assert "no h100-80g free" in waiting.reason

    pool.clock.advance(10 * 60)  # the outage is checked, but nothing changed: not decided again
    assert not asyncio.run(pool.scheduler.run_once()).decided
    assert pool.job(second).state is JobState.QUEUED

    pool.daejeon.inventory["h100-80g"] = (2, 8)
    pool.clock.advance(60)
    report = asyncio.run(pool.scheduler.run_once())

    assert report.admitted == [second]
    placed = pool.job(second).placed
    assert placed is not None
    assert (placed.cluster, placed.flavor) == ("national-daejeon", "h100-80g")
    with transaction(pool.factory) as session:
        (outage,) = Books(session).outages.overlapping(START, pool.clock())
    assert (outage.nodes, outage.gpus) == (1, 8)
    assert (outage.since, outage.until) == (START, START + timedelta(seconds=60 + 10 * 60 + 60))
