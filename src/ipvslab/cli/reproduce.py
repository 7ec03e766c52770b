"""`ipvslab reproduce`: every symptom of the seed documents, measured, against the
kernels, settings and dataplanes that are meant to cure it; and the CCE table.

Writes into ``--out`` (default ``ipvslab-reproduce``): ``report.json`` (every
figure, every claim, the CCE cells), ``matrix.csv`` (one row per symptom and
configuration), and ``runs/<symptom>/<configuration>/<scenario>/`` with each
run's ``trace.parquet`` and ``measures.json``.
"""

from __future__ import annotations

import csv
import json
import os
import textwrap
import time
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text


def reproduce_command(
    only: list[str] = typer.Option(
        [],
        "--only",
        help="Run only this symptom (repeatable): no-route-to-host, one-second-delay,"
        " frozen-load, starved-scale-out, sticky-dead-pod, cce.",
    ),
    quick: bool = typer.Option(False, "--quick", help="Small scale: seconds, same story."),
    seed: int | None = typer.Option(
        None, "--seed", help="Seed for every run (default: each scenario's)."
    ),
    jobs: int = typer.Option(0, "--jobs", "-j", help="Parallel processes (default: all cores)."),
    out: Path = typer.Option(Path("ipvslab-reproduce"), "--out", help="Output folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    list_only: bool = typer.Option(False, "--list", help="List the scenarios and configurations."),
    html_report: bool = typer.Option(
        False, "--report", help="Also write OUT/report.html (as `ipvslab report OUT`)."
    ),
) -> None:
    """Reproduce the seeds' symptoms and measure what cures each one."""
    from ipvslab.reproduce.catalog import CONFIGURATIONS, SYMPTOMS, scenario_path

    names = {s.name for s in SYMPTOMS} | {"cce"}
    unknown = [n for n in only if n not in names]
    if unknown:
        typer.echo(
            f"--only: unknown {', '.join(map(repr, unknown))};"
            f" choose from {', '.join(sorted(names))}",
            err=True,
        )
        raise typer.Exit(2)
    if seed is not None and not 0 <= seed < 2**63:
        typer.echo(f"--seed must be between 0 and 2^63-1, got {seed}", err=True)
        raise typer.Exit(2)
    if list_only:
        for symptom in SYMPTOMS:
            typer.echo(f"{symptom.name:20} {scenario_path(symptom.name)}")
        for config in CONFIGURATIONS:
            typer.echo(f"  {config.name:28} {config.description}")
        return
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        typer.echo(f"--out {out}: cannot create the folder ({err.strerror})", err=True)
        raise typer.Exit(2) from None

    from ipvslab.reproduce.runner import execute, plan, report

    jobs = jobs if jobs > 0 else (os.cpu_count() or 1)
    tasks = plan(quick=quick, only=only, seed=seed)
    console = Console(stderr=True)
    started = time.monotonic()
    progress = _progress(console, len(tasks), enabled=console.is_terminal and not as_json)
    try:
        outcomes = execute(tasks, jobs, out, progress.step)
    except KeyboardInterrupt:
        progress.close()
        # The runs' own folders are written as they finish; the report needs them all.
        typer.echo(
            f"interrupted: no report written; the finished runs' files are in {out}/runs/",
            err=True,
        )
        raise typer.Exit(130) from None
    progress.close()
    result = report(outcomes)
    data = _write(result, out, quick, jobs, time.monotonic() - started)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        _print(result, Console(width=max(80, Console().width)), quick)
        Console().print(
            f"written to {out}/ ({len(tasks)} runs, {time.monotonic() - started:.0f} s)"
        )
    if html_report:
        from ipvslab.cli.report import write_or_exit

        # stdout stays the JSON alone with --json.
        typer.echo(f"report: {write_or_exit(out)}", err=as_json)


class _progress:
    """One line per finished run on stderr (a bar when it is a terminal)."""

    def __init__(self, console: Console, total: int, enabled: bool) -> None:
        self._console = console
        self._done = 0
        self._total = total
        self._bar: Any = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("reproducing", total=total)

    def step(self, outcome: Any) -> None:
        self._done += 1
        task = outcome.task
        what = f"{task.group}: {task.label}" + (f" ({task.symptom})" if task.group == "cce" else "")
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=what)
        else:
            self._console.print(
                f"[{self._done}/{self._total}] {what}"
                + (f" - {outcome.error}" if outcome.error else ""),
                highlight=False,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()


def _write(result: Any, out: Path, quick: bool, jobs: int, seconds: float) -> dict[str, Any]:
    from ipvslab import __version__
    from ipvslab.reproduce.runner import THRESHOLDS

    data: dict[str, Any] = {
        "ipvslab_version": __version__,
        "scale": "quick" if quick else "full",
        "jobs": jobs,
        "seconds": round(seconds, 1),
        "thresholds": THRESHOLDS,
        "matrix": result.matrix,
        "claims": result.claims,
        "cce": [
            {
                "preset": c.preset,
                "kube_proxy": c.kube_proxy,
                "derived": c.derived,
                "seed": c.seed,
                "agrees": c.agrees,
                "why": c.why,
            }
            for c in result.cce_cells
        ],
        "runs": {
            o.task.key: (o.measures.as_dict() if o.measures is not None else {"error": o.error})
            for o in result.outcomes
        },
    }
    tmp = out / ".report.json.tmp"
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(out / "report.json")
    with (out / "matrix.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "symptom",
                "configuration",
                "verdict",
                "figure",
                "error_rate",
                "connect_p99_ms",
                "achieved_rate",
                "gini_after_event",
                "stuck_servers",
            ]
        )
        for symptom, row in result.matrix.items():
            for config, cell in row.items():
                writer.writerow(
                    [
                        symptom,
                        config,
                        cell["verdict"],
                        cell["figure"],
                        cell["error_rate"],
                        cell["connect_p99_ms"],
                        cell["achieved_rate"],
                        cell["gini_after_event"],
                        cell["stuck_servers"],
                    ]
                )
    return data


def _cell(cell: dict[str, Any] | None) -> Text:
    from ipvslab.reproduce.runner import MARKS

    if cell is None:
        return Text("", style="dim")
    mark, style = MARKS.get(cell["verdict"], ("?", "yellow"))
    return Text(f"{mark} {cell['figure']}", style=style)


def _print(result: Any, console: Console, quick: bool) -> None:
    from ipvslab.reproduce import cce
    from ipvslab.reproduce.catalog import CONFIGURATIONS, SYMPTOM_BY_NAME
    from ipvslab.reproduce.runner import THRESHOLDS

    for claim in result.claims:
        agrees = claim["agrees"]
        verdict = "agrees" if agrees else ("differs" if agrees is False else "not comparable")
        style = "green" if agrees else ("red" if agrees is False else "yellow")
        width = max(40, console.width - 1)
        console.print(f"[bold]{claim['symptom']}[/] - {claim['source']}", highlight=False)
        for label, text in (("claim", claim["claim"]), ("measured", claim["measured"])):
            console.print(
                textwrap.fill(
                    text, width, initial_indent=f"  {label + ':':10}", subsequent_indent=" " * 12
                ),
                highlight=False,
                markup=False,
            )
        console.print(f"{'':12}[{style}]{verdict}[/]")
    symptoms = [s for s in result.matrix]
    if symptoms:
        table = Table(
            title="symptom x configuration" + (" (quick scale)" if quick else ""),
            title_justify="left",
            show_lines=False,
            pad_edge=False,
        )
        table.add_column("configuration", no_wrap=True, max_width=26)
        for name in symptoms:
            table.add_column(SYMPTOM_BY_NAME[name].title, no_wrap=True, max_width=10)
        for config in CONFIGURATIONS:
            cells = [result.matrix[s].get(config.name) for s in symptoms]
            if all(c is None for c in cells):
                continue
            table.add_row(config.title, *(_cell(c) for c in cells))
        console.print(table)
        width = max(40, console.width - 1)
        lines = [
            "legend: ● the symptom, as in the seed (○ not reproduced)  ✓ cured"
            "  ✗ not cured  ! made worse",
            *(
                f"{SYMPTOM_BY_NAME[n].title}: {SYMPTOM_BY_NAME[n].figure};"
                f" the symptom is {SYMPTOM_BY_NAME[n].threshold}"
                for n in symptoms
            ),
            THRESHOLDS,
        ]
        for line in lines:
            console.print(
                textwrap.fill(line, width, subsequent_indent="  "), highlight=False, markup=False
            )
    if result.cce_cells:
        table = Table(title="seed 002: problem by node OS and kube-proxy", title_justify="left")
        table.add_column("node OS", no_wrap=True)
        for _, band in cce.BANDS:
            table.add_column(f"kp {band}", no_wrap=True)
        by = {(c.preset, c.kube_proxy): c for c in result.cce_cells}
        for preset, label in cce.OSES:
            row = []
            for version, _ in cce.BANDS:
                c = by.get((preset, version))
                if c is None:
                    row.append(Text("-"))
                elif c.agrees is None:
                    row.append(Text(f"{c.derived} (seed: -)", style="dim"))
                elif c.agrees:
                    row.append(Text(f"{c.derived} ✓", style="green"))
                else:
                    row.append(Text(f"{c.derived} ✗ seed: {c.seed}", style="red"))
            table.add_row(label, *row)
        console.print(table)
        agree = sum(1 for c in result.cce_cells if c.agrees)
        stated = sum(1 for c in result.cce_cells if c.agrees is not None)
        width = max(40, console.width - 1)
        lines = [
            "derived by running no-route-to-host and one-second-delay on each preset;"
            f" {agree} of the seed's {stated} cells agree (✓), ✗ where they differ:"
        ]
        for c in result.cce_cells:
            if c.agrees is False:
                lines.append(f"{c.preset} with kube-proxy {c.kube_proxy}: {c.why or 'unexplained'}")
        for line in lines:
            console.print(
                textwrap.fill(line, width, initial_indent="  ", subsequent_indent="    "),
                highlight=False,
                markup=False,
            )
