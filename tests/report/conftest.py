"""A run folder and a reproduce folder, each made once per session through the CLI
with --report, as a user makes them."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvslab.cli.main import app

# Two Services on two nodes of a Debian cloud kernel with kube-proxy 1.17
# (conn_reuse_mode=0), clients on a narrowed port range so that ports come round
# within IPVS's 120 s TIME_WAIT at 30 connections/s (as `reproduce --quick` does):
# web is rolled at 45 s, api scaled from 2 to 4 at 50 s.
SCENARIO = """\
name: two services, rollout and scale-out
duration: 120s
seed: 3
cluster:
  kernel: 4.19.0-25-cloud-amd64
  nodes: 2
  kube_proxy: {version: v1.17.0}
services:
  - name: web
    deployment: {replicas: 2, readiness_delay: 2s, serve_after_sigterm: 5s}
  - name: api
    deployment: {replicas: 2, readiness_delay: 2s}
clients:
  - name: shop
    service: web
    load: {kind: open, rate: 30}
    duration: 5ms
    sysctls: {ip_local_port_range: "40000 41999"}
  - name: batch
    service: api
    load: {kind: open, rate: 30}
    duration: 5ms
    sysctls: {ip_local_port_range: "40000 41999"}
events:
  - at: 45s
    rollout: {service: web}
  - at: 50s
    scale: {service: api, replicas: 4}
"""
ROLLOUT_AT_S = 45.0
SCALE_AT_S = 50.0


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("run")
    scenario = base / "two-services.yaml"
    scenario.write_text(SCENARIO)
    out = base / "out"
    result = CliRunner().invoke(app, ["run", str(scenario), "--out", str(out), "--report"])
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.html'}" in result.output
    return out


@pytest.fixture(scope="session")
def reproduce_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("reproduce") / "out"
    result = CliRunner().invoke(
        app, ["reproduce", "--quick", "--jobs", "2", "--out", str(out), "--report"]
    )
    assert result.exit_code == 0, result.output
    assert f"report: {out / 'report.html'}" in result.output
    return out
