"""Build hook: compile the simulator's hot modules with mypyc at install time.

`pip install -e .` and `pip install .` run this (pyproject.toml lists mypy in
[build-system] requires). The modules in ``HOT_MODULES`` (the kernel twin's
packet path and the cluster twin's per-connection path) become C extensions;
everything else stays Python. The compiled modules behave exactly as their
sources (the test suite and tests/cluster/test_trace_golden.py run against
whichever is installed).

Fallbacks, so an install never fails for want of a compiler:
- IPVSLAB_PURE=1 in the environment, mypyc missing, or mypyc failing to
  translate: no extensions, a pure-Python install;
- the C compiler failing: each extension is optional, setuptools skips it.
`python -c "import ipvslab; print(ipvslab.compiled())"` tells which you got.
The sources' hashes go to ipvslab/_compiled_sources.json, so that a module
edited after the build runs from source (ipvslab/__init__.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

from setuptools import setup

# Relative to src/. One compilation group: mypyc calls across these natively.
# mypy type-checks what they import too, hence pydantic and the PyYAML stubs in
# [build-system] requires.
HOT_MODULES = [
    "ipvslab/kernel/packet.py",
    "ipvslab/kernel/dest.py",
    "ipvslab/kernel/conntrack.py",
    "ipvslab/kernel/tcp_states.py",
    "ipvslab/kernel/sysctls.py",
    "ipvslab/kernel/features.py",
    "ipvslab/kernel/schedulers/rr.py",
    "ipvslab/kernel/connection.py",
    "ipvslab/kernel/ipvs.py",
    "ipvslab/engine/loop.py",
    "ipvslab/cluster/trace.py",
    "ipvslab/cluster/pod_tcp.py",
    "ipvslab/cluster/dataplane.py",
    "ipvslab/cluster/endpoints.py",
    "ipvslab/cluster/ipvs_dataplane.py",
    "ipvslab/cluster/client_tcp.py",
    "ipvslab/cluster/tcp_flow.py",
    "ipvslab/cluster/load.py",
    "ipvslab/cluster/pods.py",
    "ipvslab/cluster/port_picker.py",
    "ipvslab/cluster/cluster.py",
]


# Written beside the package when the modules are compiled (package data).
COMPILED_SOURCES = "_compiled_sources.json"


def _ext_modules() -> list[object]:
    if os.environ.get("IPVSLAB_PURE"):
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("ipvslab: mypyc not available, installing pure Python", file=sys.stderr)
        return []
    try:
        extensions = mypycify(
            [os.path.join("src", m) for m in HOT_MODULES], opt_level="3", debug_level="0"
        )
    except BaseException as err:  # mypyc exits through SystemExit on type errors
        print(f"ipvslab: mypyc failed ({err!r}), installing pure Python", file=sys.stderr)
        return []
    for ext in extensions:
        ext.optional = True  # a compiler failure skips it, the .py stays
    _record_sources()
    return list(extensions)


def _record_sources() -> None:
    """What was compiled, by content: ipvslab/__init__.py runs a module from source
    when its .py no longer matches (edited or checked out since)."""
    digests = {}
    for module in HOT_MODULES:
        path = os.path.join("src", module)
        with open(path, "rb") as source:
            digest = hashlib.sha256(source.read()).hexdigest()
        # Size and mtime let an unchanged file be recognised without reading it.
        stat = os.stat(path)
        digests[module.removeprefix("ipvslab/")] = {
            "sha256": digest,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
    with open(os.path.join("src", "ipvslab", COMPILED_SOURCES), "w") as out:
        json.dump(digests, out, indent=1, sort_keys=True)


setup(ext_modules=_ext_modules())
