"""Traces: the jobs a simulation replays, read from the Philly trace, a generic CSV, or made up.

A trace job is what was submitted (when, how many GPUs, by which tenant) and how much work it
is: its duration as measured on the *reference flavor*. How fast it runs elsewhere comes from
``scheduler.simulator.throughput`` (Gavel's measured table), so the same job takes different
times on different flavors, as it does on a real heterogeneous pool.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from quotas.admission import PriorityClass
from quotas.errors import InvalidInput

PHILLY_SOURCE = (
    "Microsoft Philly trace (msr-fiddle/philly-traces, ATC'19), as packaged by "
    "petuum/adaptdl @ c793c70 : simulator/traces/philly.csv"
)


@dataclass(frozen=True, slots=True)
class TraceJob:
    """One submission of a trace."""

    index: int
    """Its place in the trace, by submission time (ties: the order of the file)."""
    submit_s: int
    """Seconds after the trace's start."""
    duration_s: float
    """Its work: how long it ran on the reference flavor, in seconds."""
    gpus: int
    tenant: str
    flavors: tuple[str, ...] = ()
    """Flavors it accepts, by name; empty means any it can run on."""
    priority: PriorityClass = PriorityClass.NORMAL
    model: str = ""
    """The model type (one of Gavel's measured jobs) its speeds come from."""
    speed: Mapping[str, float] = field(default_factory=dict)
    """Per flavor: work done per second there (the reference flavor: 1.0). A flavor it cannot
    run on (Gavel measured no throughput) is missing."""

    @property
    def name(self) -> str:
        return f"trace-{self.index}"

    def runtime_on(self, flavor: str, work_s: float | None = None) -> float:
        """Seconds to do ``work_s`` (all of its work by default) on ``flavor``."""
        return (self.duration_s if work_s is None else work_s) / self.speed[flavor]


@dataclass(frozen=True, slots=True)
class Submission:
    """A trace row before heterogeneity: what the file says."""

    submit_s: int
    duration_s: float
    gpus: int
    tenant: str
    flavors: tuple[str, ...] = ()
    priority: PriorityClass = PriorityClass.NORMAL


def read_philly(path: Path, limit: int | None = None) -> list[Submission]:
    """The Philly trace's rows (``timestamp,duration,num_gpus,gpu_time,cluster``) by submission
    time; ``cluster`` is the virtual cluster, which the trace's users were: the tenant. Rows with
    no duration or GPUs are skipped (the trace has none, but a hand-cut excerpt might)."""
    rows: list[tuple[datetime, int, Submission]] = []
    with path.open(newline="") as file:
        for number, row in enumerate(csv.DictReader(file)):
            try:
                at = datetime.fromisoformat(row["timestamp"])
                duration = float(row["duration"])
                gpus = int(row["num_gpus"])
                tenant = row["cluster"].strip().lower()
            except (KeyError, ValueError) as error:
                raise InvalidInput(
                    f"{path}: row {number + 2} is not a Philly row: {error}"
                ) from None
            if duration <= 0 or gpus <= 0:
                continue
            rows.append((at, number, Submission(0, duration, gpus, tenant)))
    rows.sort(key=lambda item: (item[0], item[1]))
    if limit is not None:
        rows = rows[:limit]
    if not rows:
        return []
    start = rows[0][0]
    return [
        Submission(int((at - start).total_seconds()), each.duration_s, each.gpus, each.tenant)
        for at, _, each in rows
    ]


def read_csv(path: Path, limit: int | None = None) -> list[Submission]:
    """A generic trace: ``submit_time`` (seconds), ``duration`` (seconds), ``gpus``, ``tenant``,
    and optionally ``flavors`` (names separated by ``;`` or spaces) and ``priority``."""
    found: list[tuple[float, int, Submission]] = []
    with path.open(newline="") as file:
        reader = csv.DictReader(file)
        missing = {"submit_time", "duration", "gpus", "tenant"} - set(reader.fieldnames or ())
        if missing:
            raise InvalidInput(f"{path}: a trace needs the columns {', '.join(sorted(missing))}")
        for number, row in enumerate(reader):
            where = f"{path}: row {number + 2}"
            try:
                submit = float(row["submit_time"])
                duration = float(row["duration"])
                gpus = int(row["gpus"])
            except ValueError as error:
                raise InvalidInput(f"{where}: {error}") from None
            if submit < 0 or duration <= 0 or gpus <= 0:
                raise InvalidInput(f"{where}: times and GPUs must be positive")
            priority_text = (row.get("priority") or "normal").strip().lower()
            try:
                priority = PriorityClass(priority_text)
            except ValueError:
                raise InvalidInput(f"{where}: no priority class {priority_text!r}") from None
            flavors = tuple((row.get("flavors") or "").replace(";", " ").split())
            tenant = row["tenant"].strip().lower()
            if not tenant:
                raise InvalidInput(f"{where}: a job needs a tenant")
            found.append(
                (submit, number, Submission(int(submit), duration, gpus, tenant, flavors, priority))
            )
    found.sort(key=lambda item: (item[0], item[1]))
    subs = [each for _, _, each in found]
    return subs[:limit] if limit is not None else subs


def synthetic_national(
    jobs: int, organizations: int, gpus: int, seed: int, load: float = 0.9
) -> list[Submission]:
    """A made-up national trace: ``organizations`` tenants of Zipf-skewed activity submitting
    Philly-shaped jobs (mostly one GPU, some gangs of up to 64; log-normal durations with a
    median of 20 minutes) at the rate that would keep ``gpus`` GPUs ``load`` busy if every job
    ran at the reference flavor's speed."""
    rng = random.Random(seed)
    sizes = (1, 1, 1, 1, 1, 1, 1, 2, 2, 4, 8, 8, 16, 32, 64)
    weights = [1 / (rank + 1) ** 0.8 for rank in range(organizations)]
    tenants = [f"org-{number:04d}" for number in range(organizations)]
    drawn = [
        (rng.choice(sizes), min(7 * 86400.0, rng.lognormvariate(7.1, 1.6))) for _ in range(jobs)
    ]
    work = sum(size * seconds for size, seconds in drawn)
    span = work / (gpus * load)
    times = sorted(rng.uniform(0, span) for _ in range(jobs))
    owners = rng.choices(tenants, weights=weights, k=jobs)
    return [
        Submission(int(at), max(1.0, seconds), size, owner)
        for at, (size, seconds), owner in zip(times, drawn, owners, strict=True)
    ]


def tenants_of(submissions: Iterable[Submission]) -> list[str]:
    """Tenants in the order they first submit."""
    return list(dict.fromkeys(each.tenant for each in submissions))
