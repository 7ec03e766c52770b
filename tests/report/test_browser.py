"""The report pages in headless Chromium, opened from file:// as a user opens them:
every plot drawn, no console error, a screenshot kept.

Skips when Debian's chromium and chromium-driver are not installed (.ci/run
installs them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ipvslab.report.write import build_page

from . import browser

pytestmark = pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing()))


@pytest.mark.parametrize("which", ["run_dir", "reproduce_dir"])
def test_page_renders_every_plot_without_console_errors(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    folder: Path = request.getfixturevalue(which)
    page = folder / "report.html"
    # Its own copy, as a user mails it: nothing it needs may sit beside it.
    alone = tmp_path / "alone" / "report.html"
    alone.parent.mkdir()
    shutil.copy(page, alone)
    screenshot = tmp_path / f"{which}.png"
    with browser.chromium() as driver:
        rendered = browser.render(driver, alone, screenshot)
    assert rendered.severe == []
    assert rendered.title == build_page(folder).title
    assert len(rendered.plots) == len(build_page(folder).figures()) >= 4
    for plot in rendered.plots:
        assert plot["svgs"] > 0 and plot["drawn"] > 0, plot
    assert screenshot.stat().st_size > 10_000
