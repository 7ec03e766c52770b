"""`ipvslab sweep SWEEP.yaml`: one scenario over a grid or a list of changed fields.

Writes into ``--out`` (default ``ipvslab-sweep-<sweep name>``): ``results.parquet``
and ``results.csv`` (one row per run: the swept fields, then the summary metrics),
``sweep.json`` (the sweep file, the ipvslab version, each run's scenario hash),
``rows.jsonl`` (the rows as they finished: what a resumed sweep starts from) and
``sweep.html`` (a metric against the swept fields). docs/sweep.md.

Exit status: 0 done, 2 bad sweep file (nothing ran) or scheduler or metric problem,
130 interrupted (the finished rows are written; run the same command to go on).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from ipvslab.scenario import ScenarioError, format_problems


def _fail(message: str, code: int = 2) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def sweep_command(
    sweep_file: Path = typer.Argument(..., help="The sweep (YAML, docs/sweep.md)."),
    out: Path | None = typer.Option(
        None, "--out", help="Output folder (default: ipvslab-sweep-<sweep name>)."
    ),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Local processes (default: all cores)."),
    scheduler: str | None = typer.Option(
        None,
        "--scheduler",
        help="Run on the Dask cluster of this scheduler (tcp://HOST:PORT) instead.",
    ),
    connect_timeout: float = typer.Option(
        10.0, "--connect-timeout", help="Seconds to wait for the Dask scheduler."
    ),
    metric: str = typer.Option(
        "error_rate", "--metric", help="The metric the page plots (a column of the table)."
    ),
    x: str | None = typer.Option(
        None, "--x", help="The swept field on the page's x axis (default: the first)."
    ),
    list_only: bool = typer.Option(False, "--list", help="List the runs and exit."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress, no summary."),
) -> None:
    """Run a scenario over a grid or list of fields; one table row per run, and a page."""
    from ipvslab.sweep.expand import expand, swept_keys
    from ipvslab.sweep.spec import load_sweep

    try:
        sweep = load_sweep(sweep_file)
        runs = expand(sweep)
    except ScenarioError as err:
        _fail(format_problems(err))
    except KeyboardInterrupt:
        _fail("interrupted while checking the sweep; nothing ran", 130)
    parameters = swept_keys(sweep)
    if x is not None and x not in parameters:
        _fail(f"--x {x!r} is not a swept field; swept: {', '.join(parameters)}")
    if list_only:
        for run in runs:
            shown = " ".join(f"{k}={v}" for k, v in run.parameters.items())
            typer.echo(f"{run.index:5} {run.scenario_hash} {shown}")
        return
    if jobs < 0:
        _fail(f"--jobs must be 0 (all cores) or more, got {jobs}")
    if connect_timeout <= 0:
        _fail(f"--connect-timeout must be more than 0, got {connect_timeout}")
    folder = out if out is not None else Path(f"ipvslab-sweep-{_safe(sweep.name)}")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        _fail(f"--out {folder}: cannot create the folder ({err.strerror})")

    from ipvslab.sweep import executors
    from ipvslab.sweep.runner import run_sweep

    if scheduler is not None:
        executor = executors.dask(scheduler, connect_timeout)
    else:
        executor = executors.local(jobs if jobs > 0 else (os.cpu_count() or 1))
    console = Console(stderr=True)
    progress = _Progress(console, bar=console.is_terminal and not quiet, lines=not quiet)
    try:
        result = run_sweep(sweep, runs, folder, executor, progress.step, progress.start)
    except executors.ExecutorError as err:
        progress.close()
        _fail(str(err))
    except OSError as err:
        progress.close()
        _fail(f"--out {folder}: cannot write ({err.strerror or err})")
    progress.close()
    if result.other_versions and not quiet:
        versions = ", ".join(sorted(result.other_versions))
        console.print(
            f"[yellow]warning:[/] some rows in {folder} come from ipvslab {versions};"
            f" they are kept (delete {folder}/rows.jsonl to run them again)",
            highlight=False,
        )
    if result.unreadable_lines and not quiet:
        console.print(
            f"[yellow]warning:[/] {folder}/rows.jsonl: {result.unreadable_lines} unreadable"
            " line(s) ignored (their runs ran again)",
            highlight=False,
        )
    page_problem = _write_page(result.table, parameters, metric, x, folder, sweep, result)
    if not quiet:
        typer.echo(
            f"{result.table.height} of {result.runs} runs in {folder}/ ({result.ran} run now,"
            f" {result.reused} already there): results.parquet, results.csv, sweep.json"
            + (", sweep.html" if page_problem is None and result.table.height else "")
        )
    if result.interrupted:
        typer.echo(
            f"interrupted: {result.table.height} of {result.runs} runs are in {folder}/;"
            " the same command goes on from there",
            err=True,
        )
        raise typer.Exit(130)
    if page_problem is not None:
        _fail(page_problem)


def _write_page(
    frame: Any,
    parameters: list[str],
    metric: str,
    x: str | None,
    folder: Path,
    sweep: Any,
    result: Any,
) -> str | None:
    """Writes sweep.html; the problem (an unknown metric) if it could not."""
    if not frame.height:
        return None
    from ipvslab import __version__
    from ipvslab.atomic_file import write_atomic
    from ipvslab.sweep.page import PageError, render

    facts = {
        "sweep file": str(sweep.file),
        "base scenario": sweep.base_file,
        # What every run changes from the base: without it the page would describe the
        # base's setup (its kube-proxy version, say) where the runs had another.
        **{f"set {key}": str(value) for key, value in sweep.spec.set_.items()},
        "runs": f"{frame.height} of {result.runs}",
        "ipvslab": __version__,
    }
    try:
        page = render(frame, parameters, metric, x, title=sweep.name, facts=facts)
    except PageError as err:
        return str(err)
    write_atomic(folder / "sweep.html", lambda p: p.write_text(page, encoding="utf-8"))
    return None


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name)[:80] or "sweep"


class _Progress:
    """A bar with ETA on a terminal; otherwise one line per finished run."""

    def __init__(self, console: Console, bar: bool, lines: bool) -> None:
        self._console = console
        self._want_bar = bar
        self._lines = lines and not bar
        self._bar: Any = None
        self._task: Any = None

    def start(self, done: int, total: int) -> None:
        if done and self._lines:
            self._console.print(f"{done} of {total} runs already done", highlight=False)
        if not self._want_bar:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._bar = Progress(
            TextColumn("sweep"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task("sweep", total=total, completed=done)

    def step(self, run: Any, done: int, total: int) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=done)
        elif self._lines:
            shown = " ".join(f"{k}={v}" for k, v in run.parameters.items())
            self._console.print(f"[{done}/{total}] run {run.index}: {shown}", highlight=False)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        sys.stderr.flush()
