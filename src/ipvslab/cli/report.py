"""`ipvslab report DIR`: one self-contained HTML page of a run or reproduce folder."""

from __future__ import annotations

from pathlib import Path

import typer


def report_command(
    folder: Path = typer.Argument(
        ..., help="A folder written by `ipvslab run` or `ipvslab reproduce`."
    ),
) -> None:
    """Write DIR/report.html: the run's or the reproduction's plots, offline-ready."""
    written = write_or_exit(folder)
    typer.echo(f"report: {written}")


def write_or_exit(folder: Path) -> Path:
    """Write the report; on bad input print one line naming the file and exit 2."""
    from ipvslab.report.inputs import ReportInputError
    from ipvslab.report.write import write_report

    try:
        return write_report(folder)
    except ReportInputError as err:
        typer.echo(f"ipvslab report: {err}", err=True)
        raise typer.Exit(2) from None
