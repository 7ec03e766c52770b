"""`ipvslab sweep` as a user runs it: exit codes, messages, Ctrl-C and going on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from ipvslab.cli.main import app

from .support import kernels_by_rate, write

SWEEP = "name: syn-drop\n" + kernels_by_rate("10s", "[1, 4]")


def invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["sweep", *map(str, args)])
    return result.exit_code, result.stdout, result.stderr


def test_a_bad_sweep_file_runs_nothing_and_says_where(tmp_path: Path) -> None:
    sweep = write(tmp_path, SWEEP.replace("clients.0.load.rate", "clients.0.load.rte"))
    out = tmp_path / "out"
    code, _, stderr = invoke(sweep, "--out", out)
    assert code == 2
    assert stderr.startswith(f"{sweep}:7:3: grid['clients.0.load.rte']: expected a field of")
    assert "did you mean 'rate'?" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()


def test_list_shows_the_runs_without_running_them(tmp_path: Path) -> None:
    sweep = write(tmp_path, SWEEP)
    code, stdout, _ = invoke(sweep, "--list", "--out", tmp_path / "out")
    assert code == 0
    lines = stdout.splitlines()
    assert len(lines) == 4
    assert lines[0].split()[0] == "0"
    assert lines[3].endswith("cluster.kernel=5.10 clients.0.load.rate=4 seed=1")
    assert not (tmp_path / "out").exists()


def test_the_sweep_writes_its_table_and_page_and_an_unknown_metric_keeps_them(
    tmp_path: Path,
) -> None:
    sweep = write(tmp_path, SWEEP)
    out = tmp_path / "out"
    code, stdout, stderr = invoke(sweep, "--out", out, "-j", "1", "--metric", "first_syn_dropped")
    assert code == 0, stderr
    assert "4 of 4 runs" in stdout
    frame = pl.read_parquet(out / "results.parquet")
    assert frame.height == 4
    assert pl.read_csv(out / "results.csv").height == 4
    page = (out / "sweep.html").read_text()
    assert "first_syn_dropped against cluster.kernel" in page
    assert "set duration" in page  # what every run changed from the base is on the page
    # The rows are there: a second invocation runs nothing and plots another metric.
    code, stdout, stderr = invoke(sweep, "--out", out, "--metric", "drops")
    assert code == 2
    assert "0 run now, 4 already there" in stdout
    assert "\n--metric 'drops' is not a column of the table; metrics: " in stderr
    assert pl.read_parquet(out / "results.parquet").equals(frame)


def test_ctrl_c_keeps_the_finished_rows_and_the_same_command_goes_on(tmp_path: Path) -> None:
    sweep = write(
        tmp_path,
        SWEEP.replace("10s", "40s").replace("[1, 4]", "[20, 40, 60, 80]"),
    )
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-c",
        "from ipvslab.cli.main import run; run()",
        "sweep",
        str(sweep),
        "--out",
        str(out),
        "-j",
        "1",
        "--quiet",
    ]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    journal = out / "rows.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if journal.exists() and journal.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted:" in stderr and "Traceback" not in stderr
    kept = journal.read_text().count("\n")
    assert 2 <= kept < 8
    assert pl.read_parquet(out / "results.parquet").height == kept
    meta = json.loads((out / "sweep.json").read_text())
    assert (meta["finished"], meta["runs"]) == (kept, 8)

    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run(command[:-1], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"({8 - kept} run now, {kept} already there)" in done.stdout
    assert pl.read_parquet(out / "results.parquet")["run"].to_list() == list(range(8))


def test_ctrl_c_to_the_sweep_alone_stops_its_worker_processes_too(tmp_path: Path) -> None:
    # One short run and one that would take minutes, on two processes; the
    # signal goes to the sweep's own process only (kill -INT), not to its workers.
    sweep = write(
        tmp_path,
        "base: base.yaml\nset: {clients.0.load.rate: 2000}\ngrid: {duration: [1s, 3000s]}\n",
    )
    out = tmp_path / "out"
    command = [sys.executable, "-c", "from ipvslab.cli.main import run; run()", "sweep"]
    process = subprocess.Popen(
        [*command, str(sweep), "--out", str(out), "-j", "2", "--quiet"],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    journal = out / "rows.jsonl"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (journal.exists() and journal.read_text()):
            time.sleep(0.05)
        time.sleep(0.5)
        process.send_signal(signal.SIGINT)
        # The long run alone takes about a minute here: it must not run to its end.
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert pl.read_parquet(out / "results.parquet")["duration"].to_list() == ["1s"]
