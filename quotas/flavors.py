"""Flavors of accelerator and the versioned rate card that prices them.

A flavor is a kind of accelerator (``h100-80g``, ``a100-80g``, ``v100-32g``, a domestic NPU) with
its memory, the resource names the backends use for it, and its measured training throughput
relative to the reference flavor. The rate card says how many credits one accelerator-hour of
each flavor costs; it is versioned, and the version in force when a job is admitted is the one
recorded on the job, so a later change of rates never reprices work already admitted.

Where the demo numbers come from: Gavel's measured throughput table
(``shared/traces/gavel/simulation_throughputs.json``, stanford-futuredata/gavel @ c4fa400,
OSDI'20) has K80, P100 and V100 only. Following the traces' README we map one generation up,
an assumption: K80 -> V100, P100 -> A100, V100 -> H100. For each of the 26 single-GPU
model/batch-size jobs we take the isolated throughput ratio against the newest GPU and keep the
median: P100/V100 = 0.81 (so a100-80g ~ 0.80) and K80/V100 = 0.25 (so v100-32g ~ 0.25).
``median_throughput_ratios`` recomputes them; a test checks the demo card against the trace.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from quotas.errors import InvalidInput, NoSuchFlavor
from quotas.quantities import Credits, Rate


@dataclass(frozen=True, slots=True)
class Flavor:
    """A kind of accelerator that can join the pool."""

    name: str
    memory_gb: int
    relative_throughput: float
    """Training throughput per accelerator relative to the reference flavor (1.0)."""
    ray_resource: str = ""
    """The Ray custom resource that pins a job to nodes of this flavor (defaults to the name)."""
    kubernetes_resource: str = "nvidia.com/gpu"
    named_only: bool = False
    """Only jobs that name this flavor run on it: its software stack is not CUDA's (a domestic
    NPU runs its vendor's SDK), so a job that accepts any flavor is never placed here. Named,
    it is priced, shared and scheduled like every other flavor."""

    def __post_init__(self) -> None:
        if not self.name or self.name != self.name.strip():
            raise InvalidInput("a flavor needs a name without surrounding spaces")
        if self.memory_gb <= 0:
            raise InvalidInput(f"flavor {self.name}: memory must be positive")
        if self.relative_throughput <= 0:
            raise InvalidInput(f"flavor {self.name}: relative throughput must be positive")
        if not self.ray_resource:
            object.__setattr__(self, "ray_resource", self.name)


@dataclass(frozen=True, slots=True)
class RateCard:
    """One version of the exchange rates: credits per accelerator-hour for each flavor."""

    version: int
    effective_from: datetime
    rates: Mapping[str, Rate] = field(default_factory=dict)

    def rate(self, flavor: str) -> Rate:
        try:
            return self.rates[flavor]
        except KeyError:
            raise NoSuchFlavor(flavor, self.rates) from None

    def cost(self, flavor: str, gpus: int, seconds: int) -> Credits:
        return self.rate(flavor).cost(gpus, seconds)


def rate_card_in_force(cards: Iterable[RateCard], at: datetime) -> RateCard:
    """The newest card whose ``effective_from`` is not after ``at``."""
    eligible = [card for card in cards if card.effective_from <= at]
    if not eligible:
        raise InvalidInput(f"no rate card is in force at {at.isoformat()}")
    return max(eligible, key=lambda card: (card.effective_from, card.version))


def acceptable_flavors(
    flavors: Mapping[str, Flavor],
    names: Iterable[str] = (),
    min_memory_gb: int | None = None,
) -> list[Flavor]:
    """The flavors a job accepts: named ones (each must exist) or, when none are named, all
    with enough memory but those that only jobs naming them take (``Flavor.named_only``)."""
    named = list(names)
    if named:
        for name in named:
            if name not in flavors:
                raise NoSuchFlavor(name, flavors)
        chosen = [flavors[name] for name in dict.fromkeys(named)]
    else:
        chosen = [flavor for flavor in flavors.values() if not flavor.named_only]
    if min_memory_gb is not None:
        chosen = [flavor for flavor in chosen if flavor.memory_gb >= min_memory_gb]
    return chosen


def median_throughput_ratios(
    throughputs: Mapping[str, Mapping[str, Mapping[str, float]]],
    reference: str,
) -> dict[str, float]:
    """Median isolated single-GPU throughput of each GPU type relative to ``reference``.

    ``throughputs`` has Gavel's format: ``{gpu: {"('<job>', n_gpus)": {"null": steps/s}}}``.
    """
    ratios: dict[str, float] = {}
    reference_jobs = throughputs[reference]
    for gpu, jobs in throughputs.items():
        if gpu == reference or "_" in gpu:
            continue
        samples = [
            jobs[key]["null"] / runs["null"]
            for key, runs in reference_jobs.items()
            if key.endswith(", 1)") and key in jobs and runs["null"] > 0 and jobs[key]["null"] > 0
        ]
        if samples:
            ratios[gpu] = statistics.median(samples)
    return ratios
