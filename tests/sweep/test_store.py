"""A sweep keeps each finished row and, run again, runs only what is missing.

The table a user gets must not depend on how the sweep got there: in one go, or
interrupted and resumed (even with the journal's last line cut short by a crash),
on one process or several, the same runs give the same table, in the sweep's order.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from ipvslab.scenario.model import Scenario
from ipvslab.sweep import executors
from ipvslab.sweep.expand import expand
from ipvslab.sweep.row import Row
from ipvslab.sweep.runner import run_sweep
from ipvslab.sweep.store import CSV, JOURNAL, META, PARQUET

from .support import kernels_by_rate, load, sweep_into

SWEEP = kernels_by_rate("10s", "[1, 4]", seeds=2)


class Counting:
    """The local executor, counting the runs it was given."""

    def __init__(self, jobs: int) -> None:
        self.inner = executors.local(jobs)
        self.ran: list[str] = []

    def __call__(
        self, scenarios: Sequence[Scenario], hashes: Sequence[str]
    ) -> Iterator[tuple[int, Row]]:
        self.ran.extend(hashes)
        return self.inner(scenarios, hashes)


def test_a_resumed_sweep_runs_only_what_is_missing_and_gives_the_same_table(
    tmp_path: Path,
) -> None:
    sweep = load(tmp_path, SWEEP)
    planned = expand(sweep)
    whole = tmp_path / "whole"
    whole.mkdir()
    first = Counting(jobs=1)
    done = run_sweep(sweep, planned, whole, first)
    assert done.ran == len(planned) == 8 and not done.interrupted
    assert done.table["run"].to_list() == list(range(8))

    # An interrupted sweep: three rows written, the fourth cut short by a crash.
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    lines = (whole / JOURNAL).read_text().splitlines(keepends=True)
    finished = [json.loads(line)["scenario_hash"] for line in lines[:3]]
    (resumed / JOURNAL).write_text("".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    again = Counting(jobs=2)
    result = run_sweep(sweep, planned, resumed, again)
    assert result.reused == 3
    assert result.ran == 5
    assert result.unreadable_lines == 1
    assert not set(again.ran) & set(finished)
    assert_frame_equal(result.table, done.table)
    assert_frame_equal(pl.read_parquet(resumed / PARQUET), pl.read_parquet(whole / PARQUET))
    assert (resumed / CSV).read_text() == (whole / CSV).read_text()

    # Run once more: nothing left to run, the same table.
    third = Counting(jobs=1)
    assert run_sweep(sweep, planned, resumed, third).ran == 0
    assert third.ran == []
    assert_frame_equal(pl.read_parquet(resumed / PARQUET), done.table)


def test_the_table_holds_the_swept_fields_then_the_summary_and_sweep_json_the_hashes(
    tmp_path: Path,
) -> None:
    frame = sweep_into(tmp_path, load(tmp_path, SWEEP), executors.local(1)).table
    out = tmp_path / "out"
    assert frame.columns[:5] == [
        "run",
        "cluster.kernel",
        "clients.0.load.rate",
        "seed",
        "scenario_hash",
    ]
    assert frame.schema["cluster.kernel"] == pl.String
    assert frame.schema["clients.0.load.rate"] == pl.Int64
    for metric in ("error_rate", "first_syn_dropped", "connect_ms.p99", "errors.EHOSTUNREACH"):
        assert metric in frame.columns
    # At 1 connection/s for 10 s a client opens about ten connections, at 4/s about 40.
    slow = frame.filter(pl.col("clients.0.load.rate") == 1)["connections"]
    fast = frame.filter(pl.col("clients.0.load.rate") == 4)["connections"]
    assert all(3 <= n <= 20 for n in slow) and all(25 <= n <= 60 for n in fast)
    meta = json.loads((out / META).read_text())
    assert meta["ipvslab_version"]
    assert meta["sweep_text"] == (tmp_path / "sweep.yaml").read_text()
    assert [row["scenario_hash"] for row in meta["rows"]] == frame["scenario_hash"].to_list()
    assert meta["finished"] == meta["runs"] == 8


def test_rows_of_a_changed_sweep_are_reused_where_the_scenario_is_the_same(
    tmp_path: Path,
) -> None:
    sweep_into(tmp_path, load(tmp_path, SWEEP), executors.local(1))
    out = tmp_path / "out"
    # One more kernel: the eight runs already there are not run again.
    wider = load(tmp_path, SWEEP.replace('"5.10"]', '"5.10", "6.1"]'))
    counting = Counting(jobs=1)
    result = run_sweep(wider, expand(wider), out, counting)
    assert (result.reused, result.ran, result.table.height) == (8, 4, 12)
    assert result.table.filter(pl.col("cluster.kernel") == "6.1")["run"].to_list() == [8, 9, 10, 11]


def test_a_copied_output_folder_resumes_too(tmp_path: Path) -> None:
    sweep = load(tmp_path, SWEEP)
    out = tmp_path / "out"
    sweep_into(tmp_path, sweep, executors.local(1))
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert run_sweep(sweep, expand(sweep), copy, Counting(1)).ran == 0


@settings(max_examples=25, deadline=None)
@given(order=st.permutations(range(8)), stop=st.integers(0, 8))
def test_the_table_does_not_depend_on_the_order_runs_finish_in(
    tmp_path_factory: pytest.TempPathFactory, order: list[int], stop: int
) -> None:
    folder = tmp_path_factory.mktemp("order")
    sweep = load(folder, SWEEP)
    planned = expand(sweep)

    def row(scenario_hash: str) -> Row:
        # A stand-in for a run: a function of the scenario alone.
        return {
            "error": "",
            "connections": int(scenario_hash[:6], 16),
            "p99": int(scenario_hash[6:9], 16) / 7,
        }

    def shuffled(first: list[int]) -> executors.Executor:
        def execute(
            scenarios: Sequence[Scenario], hashes: Sequence[str]
        ) -> Iterator[tuple[int, Row]]:
            by_hash = {h: i for i, h in enumerate(hashes)}
            for index in first:
                wanted = planned[index].scenario_hash
                if wanted in by_hash:
                    yield by_hash[wanted], row(wanted)

        return execute

    in_order = folder / "in-order"
    in_order.mkdir()
    expected = run_sweep(sweep, planned, in_order, shuffled(list(range(8)))).table
    # Finished in another order, and in two goes (the first cut after `stop` runs).
    out = folder / "shuffled"
    out.mkdir()
    run_sweep(sweep, planned, out, shuffled(order[:stop]))
    result = run_sweep(sweep, planned, out, shuffled(order))
    assert result.ran == 8 - stop
    assert_frame_equal(result.table, expected)
    assert_frame_equal(pl.read_parquet(out / PARQUET), expected)
