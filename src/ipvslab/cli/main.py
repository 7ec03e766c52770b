"""The `ipvslab` command."""

from __future__ import annotations

import typer

from ipvslab import __version__
from ipvslab.cli import doctor as doctor_cmd
from ipvslab.cli import explain as explain_cmd
from ipvslab.cli import presets as presets_cmd
from ipvslab.cli import reproduce as reproduce_cmd
from ipvslab.cli import run as run_cmd

app = typer.Typer(
    name="ipvslab",
    help="See, predict and fix what Linux IPVS connection reuse does to Kubernetes Services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("explain")(explain_cmd.explain_command)
app.command("presets")(presets_cmd.presets_command)
app.command("run")(run_cmd.run_command)
app.command("reproduce")(reproduce_cmd.reproduce_command)
app.add_typer(doctor_cmd.doctor_app, name="doctor")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ipvslab {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """See, predict and fix what Linux IPVS connection reuse does to Kubernetes Services."""


def run() -> None:
    app()


if __name__ == "__main__":
    run()
