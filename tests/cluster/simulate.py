"""Helpers for the cluster-twin tests: build a scenario from a dict, run it, and
read the trace back as polars frames and the summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import polars as pl

from ipvslab.cluster.run import RunResult, run_scenario
from ipvslab.results.frames import samples_frame, trace_frame
from ipvslab.results.metrics import summarize
from ipvslab.scenario.model import Scenario


@dataclass
class Ran:
    run: RunResult
    trace: pl.DataFrame
    samples: pl.DataFrame
    summary: dict[str, Any]

    def results(self, frame: pl.DataFrame | None = None) -> dict[str, int]:
        frame = self.trace if frame is None else frame
        return dict(frame.group_by("result").len().iter_rows())

    def window(self, start_s: float, end_s: float) -> pl.DataFrame:
        return self.trace.filter(
            (pl.col("time_us") >= start_s * 1e6) & (pl.col("time_us") < end_s * 1e6)
        )


def simulate(spec: dict[str, Any]) -> Ran:
    scenario = Scenario.model_validate(spec)
    run = run_scenario(scenario)
    trace = trace_frame(run.trace)
    samples = samples_frame(run)
    return Ran(run, trace, samples, summarize(run, trace, samples))
