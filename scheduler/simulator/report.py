"""What a simulation hands its reader: ``summary.json``, CSVs per policy, plots, a table for the
terminal, a before/after comparison for a what-if, and a progress bar while it runs.

Files written by ``write_outputs`` into the output folder (times in seconds, GPUs as counts):

- ``summary.json``: ``{"assumptions": [...], "meta": {...}, "policies": {name: metrics}}``,
  the metrics of ``metrics.Summary.as_dict``;
- ``tenants-<policy>.csv``: one row per tenant (``metrics.TenantRow``; credits as decimal
  credits, shares as fractions of the pool's GPUs);
- ``fairness-<policy>.csv``: ``day, tenant, usage, entitled, x``: a tenant's mean running and
  mean water-filled entitled GPUs that day and their ratio (empty when entitled to nothing);
- ``waits-<policy>.csv``: ``index, tenant, gpus, submit, first_start, finish, wait, jct, rho,
  preemptions`` per job (times in seconds after the trace's start; empty if it never started
  or never finished);
- plots, each as PNG and SVG: ``usage-vs-entitlement-<policy>`` (the busiest tenants' daily
  usage against their entitlement), ``jct-cdf`` (the distribution of job completion times per
  policy) and ``utilisation`` (daily utilisation per policy).

Plots are drawn on matplotlib's ``Figure`` with no pyplot state, and their SVGs are stable from
run to run (a fixed ``svg.hashsalt``, no date).
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from quotas.quantities import Credits
from quotas.spreadsheets import defused
from scheduler.simulator.metrics import Summary
from scheduler.simulator.world import World

TOP_TENANTS = 8
"""Tenants drawn one by one in the usage plot; the others are drawn as one."""
SVG_SALT = "gpupool-simulator"
CDF_POINTS = 2000
"""Steps drawn of a distribution at most (its quantiles, when there are more jobs)."""
Results = Mapping[str, tuple[Summary, World]]


def write_outputs(
    out_dir: Path | str,
    results: Results,
    assumptions: Sequence[str],
    meta: Mapping[str, object],
) -> list[Path]:
    """Write every output of a run into ``out_dir`` (made if missing); the paths written."""
    parts = [file_part(name) for name in results]
    if len(set(parts)) < len(parts):
        raise ValueError(f"policy names {', '.join(results)} would share output files")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    document = {
        "assumptions": list(assumptions),
        "meta": dict(meta),
        "policies": {name: summary.as_dict() for name, (summary, _) in results.items()},
    }
    path = out / "summary.json"
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")
    written.append(path)
    for name, (summary, world) in results.items():
        part = file_part(name)
        written.append(_write_tenants(out / f"tenants-{part}.csv", summary))
        written.append(_write_fairness(out / f"fairness-{part}.csv", summary))
        written.append(_write_waits(out / f"waits-{part}.csv", summary))
        written.extend(
            _save(usage_plot(name, summary, world), out / f"usage-vs-entitlement-{part}")
        )
    summaries = {name: summary for name, (summary, _) in results.items()}
    written.extend(_save(jct_plot(summaries), out / "jct-cdf"))
    written.extend(_save(utilisation_plot(summaries), out / "utilisation"))
    return written


def file_part(name: str) -> str:
    """A policy's name as it may stand in a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "policy"


# -- CSVs ------------------------------------------------------------------------------------------


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Credits):
        return str(value.decimal)
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        text = f"{value:.6f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    return str(defused(str(value)))


def _write_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows([_cell(value) for value in row] for row in rows)
    return path


def _write_tenants(path: Path, summary: Summary) -> Path:
    header = (
        "tenant",
        "project",
        "jobs",
        "finished",
        "avg_wait_s",
        "p50_wait_s",
        "p99_wait_s",
        "avg_jct_s",
        "gpu_hours",
        "usage_share",
        "entitled_share",
        "x_mean",
        "credits_spent",
        "credits_cap",
    )
    rows = (
        (
            r.tenant,
            r.project,
            r.jobs,
            r.finished,
            r.avg_wait_s,
            r.p50_wait_s,
            r.p99_wait_s,
            r.avg_jct_s,
            r.gpu_hours,
            r.usage_share,
            r.entitled_share,
            r.x_mean,
            r.credits_spent,
            r.credits_cap,
        )
        for r in summary.tenants
    )
    return _write_rows(path, header, rows)


def _write_fairness(path: Path, summary: Summary) -> Path:
    header = ("day", "tenant", "usage", "entitled", "x")
    rows = ((r.day, r.tenant, r.usage, r.entitled, r.x) for r in summary.fairness)
    return _write_rows(path, header, rows)


def _write_waits(path: Path, summary: Summary) -> Path:
    header = (
        "index",
        "tenant",
        "gpus",
        "submit",
        "first_start",
        "finish",
        "wait",
        "jct",
        "rho",
        "preemptions",
    )
    rows = (
        (
            r.index,
            r.tenant,
            r.gpus,
            r.submit_s,
            r.first_start_s,
            r.finish_s,
            r.wait_s,
            r.jct_s,
            r.rho,
            r.preemptions,
        )
        for r in summary.job_rows
    )
    return _write_rows(path, header, rows)


# -- plots -----------------------------------------------------------------------------------------


def _save(figure: Figure, stem: Path) -> list[Path]:
    png, svg = stem.with_suffix(".png"), stem.with_suffix(".svg")
    with matplotlib.rc_context({"svg.hashsalt": SVG_SALT, "svg.fonttype": "path"}):
        figure.savefig(png, dpi=120, metadata={"Software": None})
        figure.savefig(svg, metadata={"Date": None, "Creator": None})
    return [png, svg]


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=(11, 5.5), layout="constrained")
    axes = figure.add_subplot()
    axes.set_title(title)
    axes.grid(True, alpha=0.3)
    return figure, axes


def usage_plot(policy: str, summary: Summary, world: World) -> Figure:
    """One panel per tenant of those that demanded most (and one for the rest together): its
    daily mean running GPUs (shaded) against its daily mean water-filled entitlement (line)."""
    days = sorted({row.day for row in summary.fairness} | {d for d, _ in summary.daily_utilisation})
    tenants = list(world.tenants)
    place = {day: i for i, day in enumerate(days)}
    column = {tenant: i for i, tenant in enumerate(tenants)}
    usage = np.zeros((len(days), len(tenants)))
    entitled = np.zeros((len(days), len(tenants)))
    for row in summary.fairness:
        usage[place[row.day], column[row.tenant]] = row.usage
        entitled[place[row.day], column[row.tenant]] = row.entitled
    demanded = _demand_by_tenant(world)
    ranked = sorted(range(len(tenants)), key=lambda t: (-demanded[t], tenants[t]))
    top, rest = ranked[:TOP_TENANTS], ranked[TOP_TENANTS:]
    series = [(tenants[t], usage[:, t], entitled[:, t]) for t in top]
    if rest:
        series.append(
            (f"{len(rest)} others", usage[:, rest].sum(axis=1), entitled[:, rest].sum(axis=1))
        )
    across = min(3, max(1, len(series)))
    down = max(1, math.ceil(len(series) / across))
    figure = Figure(figsize=(4.2 * across, 2.4 * down + 1.2), layout="constrained")
    figure.suptitle(
        f"{policy}: usage vs water-filled entitlement, the {len(top)} tenants that demanded "
        "most" + (" and the others together" if rest else "")
    )
    panels = figure.subplots(down, across, sharex=True, squeeze=False)
    marker = "o" if len(days) <= 3 else None
    for i, axes in enumerate(panels.flat):
        if i >= len(series):
            axes.set_visible(False)
            continue
        label, used, due = series[i]
        axes.fill_between(days, used, step=None, color="tab:blue", alpha=0.35, linewidth=0)
        axes.plot(days, used, color="tab:blue", linewidth=1.0, marker=marker)
        axes.plot(days, due, color="black", linewidth=1.2, linestyle="--", marker=marker)
        axes.set_title(label, fontsize="medium")
        axes.set_ylim(bottom=0)
        axes.grid(True, alpha=0.3)
        if i % across == 0:
            axes.set_ylabel("GPUs (daily mean)")
        if i >= len(series) - across:
            axes.set_xlabel("day of the trace")
    figure.legend(
        handles=[
            Line2D([], [], color="tab:blue", linewidth=6, alpha=0.5, label="used (running GPUs)"),
            Line2D([], [], color="black", linestyle="--", label="entitled (water-filled)"),
        ],
        loc="outside lower center",
        ncols=2,
    )
    return figure


def _demand_by_tenant(world: World) -> list[float]:
    tenants = len(world.tenants)
    if not tenants or not world.samples:
        return [0.0] * tenants
    demand = np.asarray(world.demand_samples, dtype=np.float64).reshape(-1, tenants)
    return [float(value) for value in demand.sum(axis=0)]


def jct_plot(summaries: Mapping[str, Summary]) -> Figure:
    """The empirical distribution of job completion times per policy, on a log scale."""
    figure, axes = _figure("Job completion time distribution per policy")
    drawn = False
    for name, summary in summaries.items():
        hours = np.sort(
            [
                row.jct_s / 3600
                for row in summary.job_rows
                if row.jct_s is not None and row.jct_s > 0
            ]
        )
        if not len(hours):
            continue
        fraction = np.arange(1, len(hours) + 1) / len(hours)
        if len(hours) > CDF_POINTS:  # the distribution at its quantiles: a light SVG
            fraction = np.linspace(0, 1, CDF_POINTS + 1)[1:]
            hours = np.quantile(hours, fraction, method="inverted_cdf")
        axes.step(hours, fraction, where="post", linewidth=1.6, label=f"{name} ({len(hours):,})")
        drawn = True
    if drawn:
        axes.set_xscale("log")
        axes.legend(title="policy (finished jobs)", loc="lower right")
    axes.set_xlabel("job completion time (hours, log scale)")
    axes.set_ylabel("fraction of finished jobs")
    axes.set_ylim(0, 1.02)
    return figure


def utilisation_plot(summaries: Mapping[str, Summary]) -> Figure:
    """Daily mean utilisation of the pool's GPUs per policy."""
    figure, axes = _figure("Utilisation of the pool's GPUs per policy, daily")
    for name, summary in summaries.items():
        if not summary.daily_utilisation:
            continue
        days = [day for day, _ in summary.daily_utilisation]
        busy = [100 * value for _, value in summary.daily_utilisation]
        marker = "o" if len(days) <= 3 else None
        axes.plot(days, busy, linewidth=1.4, marker=marker, label=name)
    if summaries:
        axes.legend(title="policy", loc="best")
    axes.set_xlabel("day of the trace")
    axes.set_ylabel("busy GPUs (% of the pool, daily mean)")
    axes.set_ylim(0, 105)
    return figure


# -- the terminal ----------------------------------------------------------------------------------

COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("avg JCT", "h", 7),
    ("p50 JCT", "h", 7),
    ("p99 JCT", "h", 7),
    ("makespan", "h", 8),
    ("util", "%", 5),
    ("Jain", "", 5),
    ("worst", "rho", 7),
    ("unfair", "%", 6),
    ("overrun", "credits", 9),
    ("preempt", "", 7),
    ("jobs/s", "", 7),
)
POLICY_WIDTH = 12


def table(results: Mapping[str, Summary | tuple[Summary, World]]) -> str:
    """One row per policy, the headline metrics side by side (under 100 columns)."""
    first = f"{'policy':<{POLICY_WIDTH}}" + "".join(
        f" {name:>{width}}" for name, _, width in COLUMNS
    )
    second = " " * POLICY_WIDTH + "".join(
        f" {f'({unit})' if unit else '':>{width}}" for _, unit, width in COLUMNS
    )
    lines = [first.rstrip(), second.rstrip(), "-" * len(first)]
    for name, result in results.items():
        summary = result[0] if isinstance(result, tuple) else result
        values = _table_values(summary)
        cells = "".join(
            f" {value:>{width}}" for value, (_, _, width) in zip(values, COLUMNS, strict=True)
        )
        lines.append(f"{name[:POLICY_WIDTH]:<{POLICY_WIDTH}}{cells}")
    return "\n".join(lines)


def _table_values(s: Summary) -> list[str]:
    return [
        _number(_hours(s.avg_jct_s)),
        _number(_hours(s.p50_jct_s)),
        _number(_hours(s.p99_jct_s)),
        _number(_hours(s.makespan_s)),
        _number(_percent(s.utilisation), 1),
        _number(s.jain_index, 3),
        _number(s.worst_ftf_rho),
        _number(_percent(s.unfair_fraction), 1),
        _number(s.budget_overrun_credits),
        f"{s.preemptions:,}",
        _number(s.jobs_per_second, 0),
    ]


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / 3600


def _percent(fraction: float | None) -> float | None:
    return None if fraction is None else 100 * fraction


def _number(value: float | None, digits: int | None = None) -> str:
    """A number in few characters: ``digits`` decimals, or by default more for small ones."""
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    if digits is None:
        digits = 2 if abs(value) < 10 else 1 if abs(value) < 1000 else 0
    return f"{value:,.{digits}f}"


COMPARED: tuple[tuple[str, Callable[[Summary], float | None], int | None], ...] = (
    ("average JCT (h)", lambda s: _hours(s.avg_jct_s), None),
    ("p50 JCT (h)", lambda s: _hours(s.p50_jct_s), None),
    ("p99 JCT (h)", lambda s: _hours(s.p99_jct_s), None),
    ("average wait (h)", lambda s: _hours(s.avg_wait_s), None),
    ("makespan (h)", lambda s: _hours(s.makespan_s), None),
    ("utilisation (%)", lambda s: _percent(s.utilisation), 1),
    ("Jain's index", lambda s: s.jain_index, 3),
    ("median rho", lambda s: s.median_ftf_rho, None),
    ("worst rho", lambda s: s.worst_ftf_rho, None),
    ("unfair jobs (%)", lambda s: _percent(s.unfair_fraction), 1),
    ("budget overrun (credits)", lambda s: s.budget_overrun_credits, 3),
    ("credits spent", lambda s: s.spent_credits, 3),
    ("preemptions", lambda s: s.preemptions, 0),
    ("finished jobs", lambda s: s.finished, 0),
    ("rejected jobs", lambda s: s.rejected, 0),
    ("stranded jobs", lambda s: s.stranded, 0),
)


def comparison(base: Summary, changed: Summary, tenants: int = 10) -> str:
    """Each metric before and after a what-if, with the change (and in % where it means
    something); then, for the ``tenants`` whose share of the pool moved most, their share of
    the GPUs and average wait before and after."""
    width = max(len(name) for name, _, _ in COMPARED)
    lines = [f"{'metric':<{width}}  {'before':>12}  {'after':>12}  change"]
    lines.append("-" * (width + 38))
    for name, read, digits in COMPARED:
        before, after = read(base), read(changed)
        lines.append(
            f"{name:<{width}}  {_number(before, digits):>12}  {_number(after, digits):>12}  "
            + _change(before, after, digits)
        )
    after_rows = {row.tenant: row for row in changed.tenants}
    moved = sorted(
        (
            (abs(after_rows[row.tenant].usage_share - row.usage_share), row, after_rows[row.tenant])
            for row in base.tenants
            if row.tenant in after_rows
        ),
        key=lambda item: (-item[0], item[1].tenant),
    )[:tenants]
    if moved:
        lines += ["", f"{'tenant':<24}  {'GPU share (%)':>19}  {'average wait (h)':>19}"]
        lines.append("-" * 66)
        for _, before_row, after_row in moved:
            share = f"{100 * before_row.usage_share:.1f} -> {100 * after_row.usage_share:.1f}"
            wait = f"{_number(_hours(before_row.avg_wait_s), None)} -> " + _number(
                _hours(after_row.avg_wait_s), None
            )
            lines.append(f"{before_row.tenant[:24]:<24}  {share:>19}  {wait:>19}")
    return "\n".join(lines)


def _change(before: float | None, after: float | None, digits: int | None) -> str:
    if before is None or after is None:
        return "-"
    if math.isinf(before) or math.isinf(after):
        return "-" if before == after else "changed"
    delta = after - before
    if delta == 0:
        return "no change"
    text = ("+" if delta > 0 else "") + _number(delta, digits)
    if before:
        text += f" ({100 * delta / abs(before):+.1f}%)"
    return text


class Progress:
    """A progress bar on a terminal's stream (stderr by default): jobs finished of all, %,
    elapsed time and jobs per second, redrawn in place at most ``per_second`` times a second.
    Silent when the stream is not a terminal, unless ``force``. Call it as ``World.run``
    does, ``progress(done, total)``; ``close`` ends its line."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        force: bool = False,
        label: str = "",
        per_second: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        width: int = 24,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = force or self.stream.isatty()
        self.label = label
        self.interval = 1.0 / per_second
        self.clock = clock
        self.width = width
        self.started = clock()
        self.drawn_at = -math.inf
        self.drawn = 0
        """Characters of the last line drawn (a shorter one must blank them)."""

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if done < total and now - self.drawn_at < self.interval:
            return
        self.drawn_at = now
        line = self.line(done, total, now - self.started)
        self.stream.write("\r" + line + " " * max(0, self.drawn - len(line)))
        self.stream.flush()
        self.drawn = len(line)

    def line(self, done: int, total: int, elapsed: float) -> str:
        fraction = done / total if total else 1.0
        filled = min(self.width, int(fraction * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        rate = done / elapsed if elapsed > 0 else 0.0
        minutes, seconds = divmod(int(elapsed), 60)
        hours, minutes = divmod(minutes, 60)
        label = f"{self.label} " if self.label else ""
        return (
            f"{label}[{bar}] {done:,}/{total:,} jobs {100 * fraction:5.1f}% "
            f"{hours}:{minutes:02d}:{seconds:02d} {rate:,.0f} jobs/s"
        )

    def close(self) -> None:
        if self.enabled and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = 0
