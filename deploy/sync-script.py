"""Copies src/ipvslab/doctor/collect.sh into the ConfigMap of ipvslab-collector.yaml.

Run after changing the script (tests/deploy fails while the two differ):

    .venv/bin/python deploy/sync-script.py
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
SCRIPT = HERE.parent / "src" / "ipvslab" / "doctor" / "collect.sh"
MANIFEST = HERE / "ipvslab-collector.yaml"
START = "  collect.sh: |\n"
END = "---\n"


def main() -> None:
    text = MANIFEST.read_text()
    head, rest = text.split(START, 1)
    _, tail = rest.split("\n" + END, 1)
    lines = SCRIPT.read_text().splitlines(keepends=True)
    body = "".join("    " + line if line.strip() else line for line in lines)
    MANIFEST.write_text(head + START + body + END + tail)


if __name__ == "__main__":
    main()
