"""`ipvslab report` on what users actually point it at: the right folders, and
folders that are not one, half-copied, or damaged. Bad input gets one line naming
the file (and line, field or column) and exit status 2, never a traceback."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from ipvslab.cli.main import app
from ipvslab.report.inputs import ReportInputError
from ipvslab.report.page import Page
from ipvslab.report.write import build_page

runner = CliRunner()


def _report(folder: Path) -> Any:
    return runner.invoke(app, ["report", str(folder)])


def _one_line_error(result: Any, *names: str) -> str:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert len(lines[0]) < 400
    return str(lines[0])


@pytest.fixture
def copy(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(run_dir, target)
    (target / "report.html").unlink()
    return target


def test_report_writes_the_page_next_to_the_data_and_prints_its_path(copy: Path) -> None:
    result = _report(copy)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"report: {copy / 'report.html'}"
    assert (copy / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert not list(copy.glob(".*.tmp"))


def test_a_folder_from_before_the_setup_was_recorded_still_gets_a_page(copy: Path) -> None:
    summary = json.loads((copy / "summary.json").read_text())
    del summary["setup"]
    (copy / "summary.json").write_text(json.dumps(summary))
    result = _report(copy)
    assert result.exit_code == 0, result.output
    text = (copy / "report.html").read_text()
    assert "not recorded: this folder was written by an ipvslab that did not record" in text
    # The rollout and the scale-out are still marked, from the pod log.
    assert "web: rollout to revision 1" in text and "api: scaled to 4" in text


def test_run_json_report_keeps_stdout_json(tmp_path: Path) -> None:
    from .conftest import SCENARIO

    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO.replace("duration: 120s", "duration: 10s"))
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(scenario), "--out", str(out), "--json", "--report"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["setup"]["kube_proxy"]["version"] == "v1.17.0"
    assert result.stderr.strip().endswith(f"report: {out / 'report.html'}")
    assert (out / "report.html").is_file()


def test_a_folder_that_is_neither_is_refused(tmp_path: Path) -> None:
    _one_line_error(_report(tmp_path), str(tmp_path), "summary.json", "report.json")
    _one_line_error(_report(tmp_path / "nope"), "no such folder")
    file = tmp_path / "trace.parquet"
    file.write_bytes(b"x")
    _one_line_error(_report(file), "not a folder")


def test_a_missing_table_is_named(copy: Path) -> None:
    (copy / "servers.parquet").unlink()
    _one_line_error(_report(copy), str(copy / "servers.parquet"), "missing")
    assert not (copy / "report.html").exists()


def test_a_corrupt_parquet_file_is_named(copy: Path) -> None:
    data = (copy / "trace.parquet").read_bytes()
    (copy / "trace.parquet").write_bytes(data[: len(data) // 2])
    _one_line_error(_report(copy), str(copy / "trace.parquet"), "not a readable Parquet file")


def test_a_table_from_something_else_names_the_column(copy: Path) -> None:
    shutil.copy(copy / "pods.parquet", copy / "shares.parquet")
    _one_line_error(_report(copy), "shares.parquet", "column 't_s' missing")


def test_broken_json_names_the_line(copy: Path) -> None:
    text = (copy / "summary.json").read_text()
    (copy / "summary.json").write_text(text.replace('"seed": 3,', '"seed": 3,,', 1))
    line = text[: text.index('"seed": 3,')].count("\n") + 1
    _one_line_error(_report(copy), "summary.json", f"line {line},")


def test_a_wrong_field_is_named_and_not_echoed_at_length(copy: Path) -> None:
    summary = json.loads((copy / "summary.json").read_text())
    summary["seed"] = "x" * 100_000
    (copy / "summary.json").write_text(json.dumps(summary))
    message = _one_line_error(_report(copy), "summary.json", "field 'seed'", "expected int")
    assert len(message) < 300
    del summary["scenario"]
    (copy / "summary.json").write_text(json.dumps(summary))
    _one_line_error(_report(copy), "field 'scenario' missing")


def test_a_steps_file_that_is_not_a_list_of_steps_is_named(copy: Path) -> None:
    (copy / "steps.json").write_text('{"index": 0}')
    _one_line_error(_report(copy), "steps.json", "expected a JSON list")
    (copy / "steps.json").write_text('[{"index": 0}, 7]')
    _one_line_error(_report(copy), "steps.json", "item 1: expected an object")


def test_a_damaged_reproduce_run_is_named(reproduce_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "reproduce"
    shutil.copytree(reproduce_dir, target)
    trace = target / "runs/one-second-delay/baseline/one-second-delay/trace.parquet"
    trace.write_bytes(b"PAR1 not really")
    _one_line_error(_report(target), str(trace))
    (target / "report.json").write_text("[]")
    _one_line_error(_report(target), "report.json", "expected a JSON object")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_value_in_any_summary_field_is_a_page_or_a_clear_error(
    run_dir: Path, data: st.DataObject
) -> None:
    summary = json.loads((run_dir / "summary.json").read_text())
    key = data.draw(st.sampled_from(sorted(summary)))
    summary[key] = data.draw(json_values)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in ("trace", "timeseries", "shares", "servers", "server_log", "pods"):
            (folder / f"{name}.parquet").symlink_to(run_dir / f"{name}.parquet")
        (folder / "summary.json").write_text(json.dumps(summary))
        try:
            page = build_page(folder)
        except ReportInputError as err:
            assert "summary.json" in str(err) and "\n" not in str(err)
        else:
            assert isinstance(page, Page)
