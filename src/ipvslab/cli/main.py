"""The `ipvslab` command.

Each subcommand's module is imported only when the app is built with it: a run of
`ipvslab doctor …` does not pay for the simulator's modules (start-up is part of
the doctor's speed target, issue 9 item 10). `run()` builds the app with only the
subcommand named on the command line when it is one of ours, else with all of them
(help, errors and completion then list every subcommand); `app` (the whole app,
for tests and embedding) is built on first use.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import typer

from ipvslab import __version__

HELP = "See, predict and fix what Linux IPVS connection reuse does to Kubernetes Services."


def _add_explain(app: typer.Typer) -> None:
    from ipvslab.cli import explain

    app.command("explain")(explain.explain_command)


def _add_presets(app: typer.Typer) -> None:
    from ipvslab.cli import presets

    app.command("presets")(presets.presets_command)


def _add_run(app: typer.Typer) -> None:
    from ipvslab.cli import run

    app.command("run")(run.run_command)


def _add_reproduce(app: typer.Typer) -> None:
    from ipvslab.cli import reproduce

    app.command("reproduce")(reproduce.reproduce_command)


def _add_sweep(app: typer.Typer) -> None:
    from ipvslab.cli import sweep

    app.command("sweep")(sweep.sweep_command)


def _add_report(app: typer.Typer) -> None:
    from ipvslab.cli import report

    app.command("report")(report.report_command)


def _add_doctor(app: typer.Typer) -> None:
    from ipvslab.cli import doctor

    app.add_typer(doctor.doctor_app, name="doctor")


def _add_lab(app: typer.Typer) -> None:
    from ipvslab.cli import lab

    app.add_typer(lab.lab_app, name="lab")


# In the order help lists them.
SUBCOMMANDS: dict[str, Callable[[typer.Typer], None]] = {
    "explain": _add_explain,
    "presets": _add_presets,
    "run": _add_run,
    "reproduce": _add_reproduce,
    "sweep": _add_sweep,
    "report": _add_report,
    "doctor": _add_doctor,
    "lab": _add_lab,
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ipvslab {__version__}")
        raise typer.Exit()


def main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """See, predict and fix what Linux IPVS connection reuse does to Kubernetes Services."""


def build_app(only: str | None = None) -> typer.Typer:
    """The app with every subcommand, or with ``only`` that one (a name of SUBCOMMANDS)."""
    built = typer.Typer(
        name="ipvslab",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    built.callback()(main)
    for name, add in SUBCOMMANDS.items():
        if only is None or name == only:
            add(built)
    return built


_whole: typer.Typer | None = None


def __getattr__(name: str) -> typer.Typer:
    global _whole
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _whole is None:
        _whole = build_app()
    return _whole


def run() -> None:
    named = sys.argv[1] if len(sys.argv) > 1 else None
    build_app(named if named in SUBCOMMANDS else None)()


if __name__ == "__main__":
    run()
