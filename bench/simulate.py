"""Benchmark: the trace simulator, every policy side by side on the Philly trace, on one core.

By default it replays the first ``--jobs`` (10,000) jobs of the Philly trace (``--trace``,
default ``../shared/traces/philly/philly.csv`` beside the checkout) on the default cluster
(``v100-32g:128,a100-80g:128,h100-80g:128``) under gpupool's own policy and the four
baselines, prints the comparison table, and one ``BENCH`` line per policy and metric: jobs
simulated per second of wall time, average JCT, Jain's index and budget overrun. ``--jobs 0``
replays the whole trace (82,247 jobs); ``--national N`` instead replays a synthetic national
trace of N jobs (1,000 organizations, 10,000 GPUs) under gpupool's policy alone.

Run from the repository root::

    python -m bench.simulate [--jobs 10000] [--trace PATH] [--cluster SPEC] [--policy NAME ...]
    python -m bench.simulate --jobs 0                      # the whole Philly trace
    python -m bench.simulate --national 1000000 --cycle-seconds 300

A missing trace file is said, and the benchmark skipped (exit 0), so ``make bench`` runs on a
checkout without ``../shared``.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from scheduler.simulator import report
from scheduler.simulator.policies import POLICIES
from scheduler.simulator.run import (
    DEFAULT_CLUSTER,
    TraceRequest,
    build_scenario,
    settings_with,
    simulate_all,
)

TRACE = Path(__file__).resolve().parents[2] / "shared" / "traces" / "philly" / "philly.csv"
NATIONAL_CLUSTER = "v100-32g:2000,a100-80g:4000,h100-80g:4000"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trace", type=Path, default=TRACE)
    parser.add_argument("--jobs", type=int, default=10_000, help="0: the whole trace")
    parser.add_argument("--national", type=int, default=None, help="synthetic jobs instead")
    parser.add_argument("--cluster", default=None)
    parser.add_argument("--policy", action="append", default=None, choices=list(POLICIES))
    parser.add_argument("--cycle-seconds", type=int, default=None)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--progress", action="store_true")
    options = parser.parse_args(argv)

    if options.national is not None:
        request = TraceRequest(synthetic_jobs=options.national)
        cluster = options.cluster or NATIONAL_CLUSTER
        policies = options.policy or ["gpupool"]
    else:
        if not options.trace.exists():
            print(f"bench.simulate: no trace at {options.trace}; skipped", file=sys.stderr)
            return
        request = TraceRequest(options.trace, limit=options.jobs or None)
        cluster = options.cluster or DEFAULT_CLUSTER
        policies = options.policy or list(POLICIES)
    started = time.perf_counter()
    scenario = build_scenario(
        request,
        cluster,
        seed=options.seed,
        settings=settings_with(cycle_seconds=options.cycle_seconds),
    )
    print(
        f"{request.describe()}: {len(scenario.jobs):,} jobs on {scenario.gpus:,} GPUs ({cluster}), "
        f"built in {time.perf_counter() - started:.1f} s"
    )

    def bar(name: str) -> report.Progress | None:
        return report.Progress(label=name) if options.progress else None

    results = simulate_all(scenario, policies, bar)
    print(report.table(results))
    for name, (summary, _) in results.items():
        values = summary.as_dict()
        label = "national" if options.national is not None else "philly"
        print(f"BENCH simulate_{label}_{name}_jobs_per_s={values['jobs_per_second']:.0f} jobs/s")
        print(f"BENCH simulate_{label}_{name}_wall_s={values['wall_seconds']:.1f} s")
        print(f"BENCH simulate_{label}_{name}_avg_jct_h={values['avg_jct_s'] / 3600:.3f} h")
        print(f"BENCH simulate_{label}_{name}_jain_index={values['jain_index']:.4f}")
        print(
            f"BENCH simulate_{label}_{name}_budget_overrun="
            f"{values['budget_overrun_credits']} credits"
        )


if __name__ == "__main__":
    main()
