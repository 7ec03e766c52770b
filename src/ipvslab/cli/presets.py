"""`ipvslab presets`: the kernel presets and the features each one has."""

from __future__ import annotations

import json

import typer
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from ipvslab.cli.options import NO_COLOR_HELP, make_console, reader_may_leave
from ipvslab.kernel.features import Feature
from ipvslab.kernel.presets import list_presets


def presets_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    no_color: bool = typer.Option(False, "--no-color", help=NO_COLOR_HELP),
) -> None:
    """List the kernel presets (distro kernels) with their IPVS features and evidence."""
    with reader_may_leave():
        _presets(as_json, plain=no_color)


def _presets(as_json: bool, *, plain: bool) -> None:
    presets = list_presets()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "name": p.name,
                        "aliases": list(p.aliases),
                        "distro": p.distro,
                        "release_examples": list(p.release_examples),
                        "base_version": ".".join(map(str, p.base_version)),
                        "features": [f.value for f in p.features.enabled],
                        "evidence": p.evidence,
                        "assumed": p.assumed,
                    }
                    for p in presets
                ],
                indent=2,
            )
        )
        return
    # One block per preset: a table with a column per feature does not fit a terminal.
    console = make_console(plain)
    for p in presets:
        has = [f.value for f in Feature if p.features.has(f)]
        lacks = [f.value for f in Feature if not p.features.has(f)]
        head = Text.assemble((p.name, "bold"), f"  {p.distro} ({p.release_examples[0]})")
        console.print(head)
        rows = Table.grid(padding=(0, 1))
        rows.add_column(no_wrap=True)
        rows.add_column()
        rows.add_row("has:", Text(", ".join(has) or "-"))
        rows.add_row("lacks:", Text(", ".join(lacks) or "-"))
        rows.add_row("evidence:", Text(("assumed: " if p.assumed else "") + p.evidence))
        console.print(Padding(rows, (0, 0, 1, 2)))
