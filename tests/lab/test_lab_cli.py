"""`ipvslab lab` as a user meets it without a VM: clear errors and exit codes."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvslab.cli.main import app
from ipvslab.lab import vm

runner = CliRunner()
SCRIPT = """\
cluster: {kernel: "6.1", nodes: 2}
services: [{name: web}]
clients: [{name: c, service: web, load: {kind: open, rate: 1}, start: 1h}]
script:
  - connect: {client: c, port: 40000}
"""


def test_a_kernel_that_cannot_be_had_is_said_loudly_with_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCRIPT.replace(", nodes: 2", ""))
    result = runner.invoke(app, ["lab", "run", str(path), "--vmlinuz", str(tmp_path / "nope")])
    assert result.exit_code == 3
    assert "LAB UNAVAILABLE" in result.output
    assert "Traceback" not in result.output


def test_a_scenario_the_lab_cannot_build_exits_2_naming_the_field(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCRIPT)
    result = runner.invoke(app, ["lab", "compare", str(path), "--host"])
    assert result.exit_code == 2
    assert "cluster.nodes" in result.output


def test_a_bad_scenario_file_exits_2_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCRIPT.replace("script:", "scrpit:"))
    result = runner.invoke(app, ["lab", "run", str(path), "--host"])
    assert result.exit_code == 2
    assert "s.yaml:" in result.output


def test_steps_reported_before_the_vm_died_are_still_printed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCRIPT.replace(", nodes: 2", "") + "  - connect: {client: c, port: 40001}\n")
    step = (
        '{"kind": "step", "index": 0, "action": "connect", "client": "c-0",'
        ' "client_port": 40000, "result": "established", "pod": "web-1", "time_us": 1,'
        ' "took_us": 1, "entry_before": [], "entry_after": []}'
    )
    script = f"print('IPVSLAB ' + {step!r}, flush=True); print('Kernel panic'); raise SystemExit(1)"
    monkeypatch.setattr(vm, "host_command", lambda plan: [sys.executable, "-c", script])
    result = runner.invoke(app, ["lab", "run", str(path), "--host"], env={"COLUMNS": "200"})
    assert result.exit_code == 3
    assert "web-1" in result.output
    assert "LAB FAILED" in result.output
    assert "Kernel panic" in result.output
