"""Heterogeneity: each job's speed on each flavor, from Gavel's measured throughputs.

As in Gavel (Narayanan et al., OSDI'20, ``scheduler/job_table.py`` and its simulator), every
trace job draws a model type uniformly at random from the 26 measured model/batch-size jobs, and
its speed on a GPU type is that model's isolated-run throughput there (the table's ``null``
entries, steps per second, for the job's GPU count: 1, 2, 4 or 8, larger gangs scaled like 8).
A trace gives durations as measured on one *reference* type, so a job's speed on flavor ``f`` is
``throughput(type of f) / throughput(reference type)``: its work, in reference-seconds, divided
by that speed is how long it runs on ``f``. A type the table has no throughput for (a K80 out of
memory) is one the job cannot run on.

No public table measures today's GPUs. The mapping of measured types to flavors keeps the
measured spread and is an assumption, written into every simulation's output; a flavor with no
measured type (a domestic NPU) runs every job at its catalogue ``relative_throughput`` against
the reference flavor's.
"""

from __future__ import annotations

import ast
import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from quotas.errors import InvalidInput
from quotas.flavors import Flavor
from scheduler.simulator.trace import Submission, TraceJob

GAVEL_SOURCE = (
    "Gavel's measured throughputs (stanford-futuredata/gavel @ c4fa400 : "
    "scheduler/simulation_throughputs.json, OSDI'20)"
)
MEASURED_AS = MappingProxyType({"v100-32g": "k80", "a100-80g": "p100", "h100-80g": "v100"})
"""Flavor -> the measured GPU type standing in for it: one generation up, K80->V100,
P100->A100, V100->H100, as the demo catalogue's relative throughputs are derived."""
REFERENCE_FLAVOR = "v100-32g"
"""The flavor a trace's durations are taken as measured on: Philly's 2017 fleet was of the
P100/P40 generation, which the mapping puts at the A100."""
SCALES = (1, 2, 4, 8)
BUNDLED = Path(__file__).with_name("data") / "gavel_isolated.json"
"""The isolated-run throughputs of Gavel's table, excerpted with their source named."""


@dataclass(frozen=True)
class Throughputs:
    """Isolated throughputs: per measured GPU type, per (model, GPUs), steps per second."""

    table: Mapping[str, Mapping[tuple[str, int], float]]

    @classmethod
    def read(cls, path: Path = BUNDLED) -> Throughputs:
        """Gavel's ``simulation_throughputs.json``, or the excerpt of its isolated throughputs
        bundled with gpupool (``BUNDLED``, the default)."""
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise InvalidInput(f"cannot read throughputs from {path}: {error}") from None
        excerpt = "throughputs" in raw
        types = raw["throughputs"] if excerpt else raw
        table: dict[str, dict[tuple[str, int], float]] = {}
        for gpu_type, jobs in types.items():
            if gpu_type.endswith("_unconsolidated"):
                continue
            for key, measured in jobs.items():
                model, scale = ast.literal_eval(key)
                value = measured if excerpt else measured.get("null")
                if isinstance(value, int | float) and value > 0:
                    table.setdefault(gpu_type, {})[(str(model), int(scale))] = float(value)
        if not table:
            raise InvalidInput(f"{path} holds no isolated throughputs")
        return cls(table)

    @property
    def models(self) -> list[str]:
        """The measured model/batch-size jobs (those measured on one GPU of every type)."""
        types = list(self.table.values())
        single = [{model for model, scale in each if scale == 1} for each in types]
        return sorted(set.union(*single))

    def rate(self, gpu_type: str, model: str, gpus: int) -> float | None:
        scale = max((s for s in SCALES if s <= gpus), default=1)
        return self.table.get(gpu_type, {}).get((model, scale))


@dataclass(frozen=True)
class Heterogeneity:
    """How a scenario turns trace rows into jobs with speeds."""

    throughputs: Throughputs
    flavors: Mapping[str, Flavor]
    measured_as: Mapping[str, str]
    reference: str

    def assumptions(self) -> list[str]:
        mapped = ", ".join(
            f"{flavor} as measured {gpu_type}"
            for flavor, gpu_type in sorted(self.measured_as.items())
            if flavor in self.flavors
        )
        notes = [
            f"durations are taken as measured on {self.reference} "
            f"(measured type {self.measured_as.get(self.reference, self.reference)})",
            f"each job's model type is drawn uniformly from the {len(self.throughputs.models)} "
            f"jobs of {GAVEL_SOURCE}, as Gavel does; its speed on a flavor is its measured "
            "throughput there over that on the reference type",
            f"measured GPU types stand in for today's flavors (an assumption: no public table "
            f"measures them): {mapped}",
        ]
        unmeasured = sorted(set(self.flavors) - set(self.measured_as))
        if unmeasured:
            notes.append(
                "flavors with no measured type run every job at their catalogue relative "
                f"throughput over the reference flavor's: {', '.join(unmeasured)}"
            )
        return notes

    def speeds(self, model: str, gpus: int) -> dict[str, float]:
        reference_type = self.measured_as.get(self.reference)
        base = self.throughputs.rate(reference_type, model, gpus) if reference_type else None
        reference_flavor = self.flavors[self.reference]
        speeds: dict[str, float] = {}
        for name, flavor in self.flavors.items():
            gpu_type = self.measured_as.get(name)
            if gpu_type is None or base is None:
                speeds[name] = flavor.relative_throughput / reference_flavor.relative_throughput
                continue
            measured = self.throughputs.rate(gpu_type, model, gpus)
            if measured:
                speeds[name] = measured / base
        return speeds

    def jobs(self, submissions: Sequence[Submission], seed: int) -> list[TraceJob]:
        """Trace jobs with a model type each (drawn with ``seed``) and their speeds."""
        rng = random.Random(seed)
        models = self.throughputs.models
        made: list[TraceJob] = []
        cache: dict[tuple[str, int], Mapping[str, float]] = {}
        for index, each in enumerate(submissions):
            model = rng.choice(models)
            key = (model, min(each.gpus, SCALES[-1]))
            speed = cache.get(key)
            if speed is None:
                speed = cache[key] = MappingProxyType(self.speeds(model, each.gpus))
            made.append(
                TraceJob(
                    index=index,
                    submit_s=each.submit_s,
                    duration_s=each.duration_s,
                    gpus=each.gpus,
                    tenant=each.tenant,
                    flavors=each.flavors,
                    priority=each.priority,
                    model=model,
                    speed=speed,
                )
            )
        return made


def mapping_from_text(text: str) -> dict[str, str]:
    """``flavor=type,flavor=type`` -> {flavor: measured type}."""
    mapping: dict[str, str] = {}
    for part in filter(None, (item.strip() for item in text.split(","))):
        flavor, _, gpu_type = part.partition("=")
        if not flavor or not gpu_type:
            raise InvalidInput(f"{part!r}: write a flavor's measured type as flavor=type")
        mapping[flavor.strip()] = gpu_type.strip()
    return mapping
