"""Write a folder's report page: ``DIR/report.html``, next to the data."""

from __future__ import annotations

from pathlib import Path

from ipvslab.atomic_file import write_atomic
from ipvslab.report import inputs
from ipvslab.report.page import Page

REPORT_FILE = "report.html"


def build_page(folder: Path) -> Page:
    """The page for a run or a reproduce folder (ReportInputError if it is neither,
    or a file it needs is missing or unreadable)."""
    if inputs.kind_of(folder) == "reproduce":
        from ipvslab.report import reproduce_page

        return reproduce_page.build(folder)
    from ipvslab.report import run_page

    return run_page.build(folder)


def write_report(folder: Path) -> Path:
    """Build the page and write it atomically (a reader never sees half a page)."""
    html = build_page(folder).render()
    target = folder / REPORT_FILE
    try:
        write_atomic(target, lambda tmp: tmp.write_text(html, encoding="utf-8"))
    except OSError as err:
        raise inputs.ReportInputError(f"{target}: cannot write ({err.strerror})") from None
    return target
