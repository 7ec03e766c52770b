"""Open a report page in headless Chromium (Debian's chromium and chromedriver,
driven by selenium) and say what rendered: each plotly div's drawn traces, the
console's SEVERE messages, and a screenshot.

Used by tests/report/test_browser.py and scripts/screenshot_report.py.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMEDRIVER = Path("/usr/bin/chromedriver")
# Without the networking flags Chromium tries to reach Google's services and, on a
# closed network, hangs or logs errors; as root it needs --no-sandbox.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1800",
)

# Each plotly div: its id, whether plotly laid it out, its SVG count, and the drawn
# paths of its traces (lines, filled areas, markers) with a non-trivial outline.
_RENDERED = """
return Array.from(document.querySelectorAll('.plotly-graph-div')).map(d => ({
  id: d.id,
  laid_out: !!d._fullLayout,
  svgs: d.querySelectorAll('svg.main-svg').length,
  drawn: Array.from(d.querySelectorAll(
      '.scatterlayer .trace path.js-line, .scatterlayer .trace path.js-fill,'
      + ' .scatterlayer .trace path.point'))
    .filter(p => (p.getAttribute('d') || '').length > 3).length,
}));
"""


def missing() -> str | None:
    """Why the browser test cannot run here, or None."""
    if shutil.which("chromium") is None:
        return "chromium is not installed (apt-get install chromium chromium-driver)"
    if not CHROMEDRIVER.exists():
        return f"{CHROMEDRIVER} is not installed (apt-get install chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


@dataclass
class Rendered:
    plots: list[dict[str, Any]]
    severe: list[str]
    title: str


@contextmanager
def chromium() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory(prefix="ipvslab-chromium-") as profile:
        options = Options()
        options.binary_location = shutil.which("chromium") or "chromium"
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={profile}")
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # An explicit driver path: Selenium Manager then downloads nothing.
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(60)
            yield driver
        finally:
            driver.quit()


def render(driver: Any, page: Path, screenshot: Path | None = None) -> Rendered:
    """Load ``page`` from file://, wait for every plot, and report what rendered."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 60).until(
        lambda d: (
            d.execute_script("return document.readyState") == "complete"
            and all(p["laid_out"] for p in d.execute_script(_RENDERED))
        )
    )
    plots = driver.execute_script(_RENDERED)
    severe = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    if screenshot is not None:
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(screenshot))
    return Rendered(plots, severe, driver.title)
