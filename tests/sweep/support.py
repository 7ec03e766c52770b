"""Sweep files for the tests, written to a temporary folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

from ipvslab.sweep.executors import Executor
from ipvslab.sweep.expand import Run, expand
from ipvslab.sweep.runner import SweepResult, run_sweep
from ipvslab.sweep.spec import Sweep, load_sweep

# A Service of two pods on one node, one client opening short connections from a
# port range of 40 ports: on kernels whose connect() walks even ports first
# (4.6+, client-tcp-ports.md), 20 connections use every port once.
BASE = """\
name: reuse
duration: 20s
cluster:
  kernel: "4.19"
  kube_proxy: {version: v1.22.0}
  sysctls: {net.ipv4.vs.conn_reuse_mode: 1}
services:
  - name: web
    deployment: {replicas: 2}
  - name: api
    deployment: {replicas: 3}
clients:
  - name: c
    service: web
    load: {kind: open, rate: 1}
    sysctls: {ip_local_port_range: "40000 40039"}
"""


def write(folder: Path, sweep: str, base: str | None = BASE) -> Path:
    if base is not None:
        (folder / "base.yaml").write_text(base)
    path = folder / "sweep.yaml"
    path.write_text(textwrap.dedent(sweep))
    return path


def load(folder: Path, sweep: str, base: str | None = BASE) -> Sweep:
    return load_sweep(write(folder, sweep, base))


def runs(folder: Path, sweep: str, base: str | None = BASE) -> list[Run]:
    return expand(load(folder, sweep, base))


def kernels_by_rate(duration: str, rates: str, seeds: int | None = None) -> str:
    """A sweep of the base over kernels 4.19 and 5.10 and the client's rates."""
    return (
        f"base: base.yaml\nset:\n  duration: {duration}\ngrid:\n"
        f'  cluster.kernel: ["4.19", "5.10"]\n  clients.0.load.rate: {rates}\n'
        + (f"seeds: {seeds}\n" if seeds else "")
    )


def sweep_into(folder: Path, sweep: Sweep, executor: Executor, name: str = "out") -> SweepResult:
    """``sweep`` run whole into ``folder/name``."""
    out = folder / name
    out.mkdir(exist_ok=True)
    return run_sweep(sweep, expand(sweep), out, executor)
