"""Does `ipvslab doctor --from NODE --json` still say exactly what REF said?

Run: ``.venv/bin/python benchmarks/check_doctor_json.py [--against main] [--lines 200000]``.
It writes the generated busy node of ``bench_doctor_conn.py`` (200,000 entries by
default: past the top-K bounds, so the client sketches' error is not 0), runs the
doctor on it from this checkout and from the sources of git revision REF (extracted
with ``git archive`` into a temporary directory, run as pure Python with this
interpreter), and compares the two JSON reports byte for byte, ``generated_at``
aside. It prints both digests and exits 1 when they differ: a speed change must not
change an answer.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from bench_doctor_conn import write_node

REPO = Path(__file__).resolve().parent.parent


def report(python_path: Path, node: Path) -> bytes:
    """The JSON report, without its ``generated_at`` line, of the sources under ``python_path``."""
    argv = [sys.executable, "-m", "ipvslab.cli.main", "doctor", "--from", str(node), "--json"]
    env = {"PYTHONPATH": str(python_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(argv, capture_output=True, env=env, check=False)
    if done.returncode not in (0, 1, 2):
        sys.exit(f"doctor failed ({done.returncode}) under {python_path}: {done.stderr[-400:]!r}")
    lines = done.stdout.splitlines(keepends=True)
    return b"".join(line for line in lines if b'"generated_at":' not in line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--against", default="main", help="git revision to compare with")
    parser.add_argument("--lines", type=int, default=200_000)
    args = parser.parse_args()
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", args.against, "src"],
        capture_output=True,
        check=True,
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(old, filter="data")
        node = Path(tmp) / "node"
        write_node(node, args.lines)
        before = report(old / "src", node)
        after = report(REPO / "src", node)
    for name, text in ((args.against, before), ("this checkout", after)):
        print(f"{name:>14}: {len(text):,} bytes, sha256 {hashlib.sha256(text).hexdigest()}")
    if before != after:
        print("DIFFERENT reports for the same input")
        sys.exit(1)
    print("identical")


if __name__ == "__main__":
    main()
