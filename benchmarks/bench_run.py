"""`ipvslab run` at the seed's scale: simulated connections per wall-clock second
and peak RSS (issue #7, "Benchmark").

The scenario is benchmarks/bench_run.yaml: one busy client opening 30,000 new
connections/s to a 10-pod Service through a rolling update, 120 s simulated
(3.6 M connections), every one through the kernel twin's decision and state
machine and the client's port picker. Targets: >= 500,000 connections/s on one
core as installed by `make test` (`pip install -e '.[dev]'`), peak RSS <= 1.5 GB.
This script prints the figures; nothing asserts them.

    .venv/bin/python benchmarks/bench_run.py              # the whole 120 s
    .venv/bin/python benchmarks/bench_run.py --seconds 10 # a shorter slice
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from collections import Counter
from pathlib import Path

import ipvslab
from ipvslab.cluster.run import run_scenario
from ipvslab.cluster.trace import Result
from ipvslab.scenario import load_model
from ipvslab.scenario.model import SECOND, Scenario

SCENARIO = Path(__file__).resolve().parent / "bench_run.yaml"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seconds", type=float, default=None, help="simulate only this many seconds"
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    args = parser.parse_args(argv)
    scenario = load_model(SCENARIO, Scenario)
    if args.seconds is not None:
        scenario = scenario.model_copy(update={"duration": round(args.seconds * SECOND)})
    compiled = [name.removeprefix("ipvslab.") for name in ipvslab.compiled()]
    print(f"scenario: {SCENARIO.name}, {scenario.duration / SECOND:g} s simulated")
    print(f"python {sys.version.split()[0]}; compiled (mypyc): {', '.join(compiled) or 'none'}")
    started = time.perf_counter()
    cpu_started = time.process_time()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(run_scenario, scenario)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
    else:
        result = run_scenario(scenario)
    wall = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    connections = len(result.trace)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    results = Counter(result.trace.columns["result"].tolist())
    outcomes = ", ".join(f"{Result(code).label} {n:,}" for code, n in sorted(results.items()))
    print(f"connections:        {connections:,} ({outcomes})")
    print(f"wall:               {wall:.2f} s (cpu {cpu:.2f} s)")
    print(f"connections/s:      {connections / wall:,.0f} wall, {connections / cpu:,.0f} cpu")
    print(f"peak RSS:           {rss_mb:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
