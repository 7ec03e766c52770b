"""Renew docs/images/report.png: a reproduce --quick report, as headless Chromium
shows it (the matrix and the claims).

    .venv/bin/python scripts/screenshot_report.py [--out DIR]

Needs Debian's chromium and chromium-driver. Prints what it wrote.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.report import browser  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="reproduce folder (default: a temporary one)")
    parser.add_argument("--image", type=Path, default=REPO / "docs" / "images" / "report.png")
    args = parser.parse_args()
    reason = browser.missing()
    if reason is not None:
        print(f"cannot take the screenshot: {reason}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="ipvslab-screenshot-") as tmp:
        out = args.out or Path(tmp) / "reproduce"
        ipvslab = Path(sys.executable).with_name("ipvslab")
        subprocess.run(
            [str(ipvslab), "reproduce", "--quick", "--out", str(out), "--report", "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with browser.chromium() as driver:
            rendered = browser.render(driver, out / "report.html", args.image)
    drawn = sum(1 for p in rendered.plots if p["drawn"])
    print(
        f"{args.image}: {len(rendered.plots)} plots, {drawn} drawn,"
        f" {len(rendered.severe)} console errors"
    )
    return 0 if drawn == len(rendered.plots) and not rendered.severe else 1


if __name__ == "__main__":
    raise SystemExit(main())
