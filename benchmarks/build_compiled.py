"""Optional: compile the kernel twin with mypyc into a separate tree (build/compiled).

The install compiles a wider set (setup.py's HOT_MODULES, kernel and cluster
together); this script compiles the kernel modules alone, for
bench_decisions.py's second set of figures. It copies src/ipvslab to
build/compiled/ipvslab and compiles the kernel modules there in place with
mypyc (it comes with mypy, a dev dependency; it needs a C compiler and the
Python headers). Put build/compiled first on PYTHONPATH to
run the compiled twin; bench_decisions.py does that itself when the tree exists.

    python benchmarks/build_compiled.py          # build (skipped when up to date)
    python benchmarks/build_compiled.py --force  # rebuild
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "ipvslab"
BUILD = ROOT / "build" / "compiled"
STAMP = BUILD / "SOURCES.sha256"

# The modules mypyc compiles, relative to the package. Everything else in the
# package (CLI, doctor, schedulers, presets) stays interpreted: the per-packet
# path runs through these.
COMPILED = (
    "kernel/packet.py",
    "kernel/dest.py",
    "kernel/conntrack.py",
    "kernel/tcp_states.py",
    "kernel/sysctls.py",
    "kernel/features.py",
    "kernel/schedulers/rr.py",
    "kernel/connection.py",
    "kernel/ipvs.py",
)


def sources_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(SRC.rglob("*.py")):
        digest.update(str(path.relative_to(SRC)).encode())
        digest.update(path.read_bytes())
    digest.update(" ".join(COMPILED).encode())
    return digest.hexdigest()


def up_to_date() -> bool:
    return STAMP.exists() and STAMP.read_text().strip() == sources_digest()


def build(force: bool = False, quiet: bool = False) -> Path:
    """Build the compiled tree if needed; returns the directory to put on PYTHONPATH."""
    if not force and up_to_date():
        return BUILD
    if BUILD.exists():
        shutil.rmtree(BUILD)
    BUILD.mkdir(parents=True)
    shutil.copytree(
        SRC,
        BUILD / "ipvslab",
        ignore=shutil.ignore_patterns("__pycache__", "*.so", "_compiled_sources.json"),
    )
    setup = BUILD / "setup_mypyc.py"
    modules = ", ".join(repr(f"ipvslab/{m}") for m in COMPILED)
    setup.write_text(
        "from setuptools import setup\n"
        "from mypyc.build import mypycify\n"
        f"setup(name='ipvslab-compiled', packages=[], ext_modules=mypycify([{modules}],"
        " opt_level='3'))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(BUILD))
    out = subprocess.run(
        [sys.executable, str(setup), "build_ext", "--inplace"],
        cwd=BUILD,
        env=env,
        capture_output=True,
        text=True,
    )
    if out.returncode != 0:
        sys.stderr.write(out.stdout[-4000:] + out.stderr[-4000:])
        raise SystemExit(f"mypyc build failed (exit {out.returncode})")
    if not quiet:
        print(f"compiled {len(COMPILED)} kernel modules into {BUILD}")
    STAMP.write_text(sources_digest() + "\n")
    return BUILD


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    build(force=args.force)


if __name__ == "__main__":
    main()
