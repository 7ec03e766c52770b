"""`ipvslab run SCENARIO.yaml`: simulate a Service under load and write what happened.

Writes into ``--out`` (default ``ipvslab-run-<scenario name>``):

    trace.parquet        one row per connection attempt (docs/run-output.md)
    timeseries.parquet   one row per interval (and timeseries.csv)
    shares.parquet       new connections per pod per interval
    servers.parquet      every real server on every node, sampled each interval
    server_log.parquet   what kube-proxy did to real servers (added, weight-0, deleted)
    pods.parquet         pod lifecycle (created, ready, terminating, gone)
    steps.json           script-mode step results (when the scenario has a script)
    summary.json         the summary printed at the end

Exit status: 0 done, 2 bad scenario, 130 interrupted (what was simulated is written).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from ipvslab.atomic_file import write_atomic
from ipvslab.scenario import ScenarioError, format_problems, load_model
from ipvslab.scenario.model import Scenario


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(2)


def run_command(
    scenario_file: Path = typer.Argument(..., help="The scenario (YAML, docs/scenarios.md)."),
    seed: int | None = typer.Option(None, "--seed", help="Override the scenario's seed."),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default: ipvslab-run-<scenario name>)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar, no table."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    html_report: bool = typer.Option(
        False, "--report", help="Also write OUT/report.html (as `ipvslab report OUT`)."
    ),
) -> None:
    """Simulate a Service under load through each node's dataplane, and report."""
    try:
        scenario = load_model(scenario_file, Scenario)
    except ScenarioError as err:
        _fail(format_problems(err))
    if seed is not None:
        if not 0 <= seed < 2**63:
            _fail(f"--seed must be between 0 and 2^63-1, got {seed}")
        scenario = scenario.model_copy(update={"seed": seed})
    out_dir = out if out is not None else Path(f"ipvslab-run-{_safe(scenario.name)}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _fail(f"--out {out_dir}: cannot create the folder ({err.strerror})")

    # Imported here: the simulator and polars are not needed to print --help.
    from ipvslab.cluster.errors import ScenarioSetupError
    from ipvslab.cluster.run import run_scenario

    console = Console(stderr=True)
    progress_bar = _Progress(console, enabled=not quiet and console.is_terminal)
    try:
        result = run_scenario(scenario, progress_bar.update)
    except ScenarioSetupError as err:
        progress_bar.close()
        _fail(f"{scenario_file}: {err}")
    progress_bar.close()
    summary = _write_outputs(result, out_dir, scenario_file)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    elif not quiet:
        _print_summary(summary, out_dir)
    if html_report:
        from ipvslab.cli.report import write_or_exit

        written = write_or_exit(out_dir)
        if not quiet:
            # stdout stays the JSON alone with --json.
            typer.echo(f"report: {written}", err=as_json)
    if result.stopped:
        typer.echo(f"{scenario_file}: the run stopped early: {result.stopped}", err=True)
        raise typer.Exit(2)
    if result.interrupted:
        typer.echo(
            f"interrupted at {result.end_us / 1e6:.1f}s simulated; what ran is in {out_dir}",
            err=True,
        )
        raise typer.Exit(130)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:80] or "scenario"


class _Progress:
    """A progress bar that appears only once a run has taken a second."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self._console = console
        self._enabled = enabled
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def update(self, now: int, end: int) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            if time.monotonic() - self._started < 1.0:
                return
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("simulating"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                TimeRemainingColumn(),
                console=self._console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("run", total=end / 1e6)
        self._bar.update(self._task, completed=now / 1e6)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def _write_outputs(result: Any, out_dir: Path, scenario_file: Path) -> dict[str, Any]:
    from ipvslab.results.frames import (
        pod_log_frame,
        samples_frame,
        server_log_frame,
        trace_frame,
    )
    from ipvslab.results.metrics import shares, summarize, time_series
    from ipvslab.results.provenance import provenance

    scenario = result.scenario
    trace = trace_frame(result.trace)
    samples = samples_frame(result)
    series = time_series(trace, samples, scenario.interval, result.end_us)
    tables = {
        "trace.parquet": trace,
        "timeseries.parquet": series,
        "shares.parquet": shares(trace, scenario.interval),
        "servers.parquet": samples,
        "server_log.parquet": server_log_frame(result),
        "pods.parquet": pod_log_frame(result),
    }
    for name, frame in tables.items():
        write_atomic(out_dir / name, frame.write_parquet)
    write_atomic(out_dir / "timeseries.csv", series.write_csv)
    written = [*tables, "timeseries.csv", "summary.json"]
    if result.steps:
        steps = [s.as_dict() for s in result.steps]
        write_atomic(
            out_dir / "steps.json", lambda p: p.write_text(json.dumps(steps, indent=2) + "\n")
        )
        written.append("steps.json")
    else:
        # A steps.json from an earlier run into the same folder is not this run's.
        (out_dir / "steps.json").unlink(missing_ok=True)
    summary = summarize(result, trace, samples)
    summary["scenario_file"] = str(scenario_file)
    summary["kernel"] = result.kernel
    summary["sysctls"] = result.sysctls
    summary["setup"] = provenance(result)
    summary["outputs"] = sorted(written)
    write_atomic(
        out_dir / "summary.json", lambda p: p.write_text(json.dumps(summary, indent=2) + "\n")
    )
    return summary


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} ms"


def _print_summary(summary: dict[str, Any], out_dir: Path) -> None:
    console = Console()
    table = Table(title=f"{summary['scenario']} (seed {summary['seed']})", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    table.add_row("simulated", f"{summary['simulated_s']:.1f} s")
    from ipvslab.results.metrics import only_udp as udp_only

    only_udp = udp_only(summary)
    udp = summary.get("udp_requests", 0)
    if only_udp:
        table.add_row("requests (UDP)", f"{summary['connections']:,}")
    elif udp:
        table.add_row("connections", f"{summary['connections']:,} ({udp:,} of them UDP requests)")
    else:
        table.add_row("connections", f"{summary['connections']:,}")
    rate = summary["achieved_rate_per_s"]
    table.add_row(
        "answered" if only_udp else "established",
        f"{summary['established']:,} ({rate:,.0f}/s)"
        if rate >= 10
        else f"{summary['established']:,} ({rate:.2g}/s)",
    )
    errors = ", ".join(f"{k} {v:,}" for k, v in summary["errors"].items() if v) or "none"
    table.add_row("errors", f"{summary['error_rate']:.2%}: {errors}")
    c = summary["connect_ms"]
    table.add_row(
        "answer time" if only_udp else "connect time",
        f"p50 {_fmt_ms(c['p50'])}, p99 {_fmt_ms(c['p99'])}, max {_fmt_ms(c['max'])}",
    )
    table.add_row("reused ports", f"{summary['reused_port']:,} met an existing entry")
    if not only_udp:  # conn_reuse_mode's drop is for TCP SYNs (and SCTP INITs) only
        table.add_row("first SYN dropped", f"{summary['first_syn_dropped']:,}")
    table.add_row(
        "to weight-0 / gone",
        f"{summary['to_weight0']:,} / {summary['to_removed_or_gone']:,}",
    )
    for service, imb in summary["imbalance"].items():
        table.add_row(
            f"imbalance {service}",
            f"max/mean {imb['max_over_mean']:.2f}, Gini {imb['gini']:.2f} over {imb['pods']} pods",
        )
    for scale in summary["scale_outs"]:
        table.add_row(
            f"scale-out {scale['service']} at {scale['at_s']:g}s",
            f"new pods' share {scale['new_pods_share']:.1%} (fair {scale['fair_share']:.1%})",
        )
    for rs in summary["real_servers"]:
        fate = (
            f"deleted at {rs['deleted_at_s']:.0f}s"
            if rs["deleted_at_s"] is not None
            else "not deleted by the end of the run"
            + (
                f" (ActiveConn {rs.get('active_at_end', '?')}, InActConn"
                f" {rs.get('inactive_at_end', '?')} at the end)"
            )
        )
        table.add_row(
            f"{rs['service']} {rs['server']} on {rs['node']}",
            f"weight 0 at {rs['weight0_at_s']:.0f}s, {fate}",
        )
    console.print(table)
    for warning in summary["warnings"]:
        console.print(f"[yellow]warning:[/] {warning}")
    console.print(f"written to {out_dir}/")
    sys.stdout.flush()
