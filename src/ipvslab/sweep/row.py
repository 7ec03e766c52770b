"""One run of a sweep, told as one table row: its summary metrics, flattened.

This is what a worker runs (a local process or a Dask worker): a function of the
scenario alone, so the row is the same wherever and whenever it ran. The columns
are the summary of `ipvslab run` (docs/run-output.md) with nested figures named by
their path: ``errors.EHOSTUNREACH``, ``connect_ms.p99``, ``imbalance.web.gini``,
``scale_outs.0.new_pods_share``; the weight-0 real servers are counted
(``real_servers_weight0``, ``real_servers_never_deleted``) and the warnings joined.
"""

from __future__ import annotations

from typing import Any

from ipvslab.scenario.model import Scenario

Row = dict[str, Any]


class RunInterrupted(Exception):
    """A run stopped by Ctrl-C before its end: it has no row (it runs again next time)."""


def run_row(scenario: Scenario) -> Row:
    """Simulate ``scenario`` to its end and return its row."""
    from ipvslab.cluster.errors import ScenarioSetupError
    from ipvslab.cluster.run import run_scenario
    from ipvslab.results.frames import samples_frame, trace_frame
    from ipvslab.results.metrics import summarize

    try:
        result = run_scenario(scenario)
    except ScenarioSetupError as err:
        return {"error": str(err)}
    if result.interrupted:
        # run_scenario keeps what it simulated on Ctrl-C; a sweep must not count it.
        raise RunInterrupted(scenario.name)
    trace = trace_frame(result.trace)
    samples = samples_frame(result)
    return flatten(summarize(result, trace, samples), stopped=result.stopped)


_LEFT_OUT = frozenset({"scenario", "seed", "interrupted", "real_servers", "warnings"})


def flatten(summary: dict[str, Any], stopped: str = "") -> Row:
    """The summary as flat columns (see the module's docstring)."""
    row: Row = {"error": "", "stopped": stopped}
    for key, value in summary.items():
        if key not in _LEFT_OUT:
            _into(row, key, value)
    servers = summary.get("real_servers", [])
    row["real_servers_weight0"] = len(servers)
    row["real_servers_never_deleted"] = sum(1 for rs in servers if rs["deleted_at_s"] is None)
    row["warnings"] = " | ".join(summary.get("warnings", []))
    return row


def _into(row: Row, name: str, value: Any) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _into(row, f"{name}.{key}", inner)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            _into(row, f"{name}.{index}", inner)
    else:
        row[name] = value
