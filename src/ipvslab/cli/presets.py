"""`ipvslab presets`: the kernel presets and the features each one has."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.table import Table

from ipvslab.kernel.features import Feature
from ipvslab.kernel.presets import list_presets


def presets_command(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the kernel presets (distro kernels) with their IPVS features and evidence."""
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
    table = Table(title="Kernel presets", show_lines=True)
    table.add_column("preset")
    table.add_column("distro / uname -r")
    for feature in Feature:
        table.add_column(feature.value.replace("_", " "), justify="center")
    table.add_column("evidence")
    for p in presets:
        marks = ["yes" if p.features.has(f) else "-" for f in Feature]
        evidence = ("assumed: " if p.assumed else "") + p.evidence
        table.add_row(p.name, f"{p.distro}\n{p.release_examples[0]}", *marks, evidence)
    Console().print(table)
