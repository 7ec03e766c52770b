"""`ipvslab lab` as a user meets it without a VM: clear errors and exit codes."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ipvslab.cli.main import app

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
