"""Run a sweep into its output folder: what is not there yet, on the executor given,
keeping each row as it finishes (sweep/store.py), stopping cleanly on Ctrl-C."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from .executors import Executor
from .expand import Run, swept_keys
from .row import RunInterrupted
from .spec import Sweep
from .store import RowStore, table, write_outputs

REWRITE_EVERY_S = 2.0
"""The tables are rebuilt at most this often while rows arrive (and at the end)."""


@dataclass
class SweepResult:
    table: pl.DataFrame
    runs: int
    """Runs in the sweep."""
    reused: int
    """Runs whose row was already in the folder."""
    ran: int
    """Runs run this time (a scenario that several runs share counts once)."""
    interrupted: bool
    other_versions: set[str]
    unreadable_lines: int


Progress = Callable[[Run, int, int], None]
"""Called after each run finishes: the run, how many are done, how many in all."""


def run_sweep(
    sweep: Sweep,
    runs: list[Run],
    folder: Path,
    executor: Executor,
    progress: Progress | None = None,
    started: Callable[[int, int], None] | None = None,
) -> SweepResult:
    """Runs what ``folder`` does not have yet; returns the table of every finished run.

    ``started(done, total)`` is called once the runs already there are counted.
    """
    store = RowStore(folder)
    parameters = swept_keys(sweep)
    meta: dict[str, Any] = {
        "sweep": sweep.name,
        "sweep_file": str(sweep.file),
        "sweep_text": sweep.text,
        "base_file": sweep.base_file,
        "parameters": parameters,
    }
    # Runs sharing one scenario (the same combination written twice) run once.
    todo: dict[str, Run] = {}
    for run in runs:
        if run.scenario_hash not in store.rows:
            todo.setdefault(run.scenario_hash, run)
    pending = list(todo.values())
    reused = sum(1 for run in runs if run.scenario_hash in store.rows)
    done = reused
    if started is not None:
        started(done, len(runs))
    sharing: dict[str, int] = {}
    for run in runs:
        sharing[run.scenario_hash] = sharing.get(run.scenario_hash, 0) + 1

    def rewrite() -> pl.DataFrame:
        frame = table(runs, parameters, store.rows)
        write_outputs(folder, frame, meta, runs)
        return frame

    rewrite()
    interrupted = False
    ran = 0
    last_write = time.monotonic()
    try:
        scenarios = [run.scenario for run in pending]
        hashes = [run.scenario_hash for run in pending]
        for index, row in executor(scenarios, hashes):
            run = pending[index]
            store.add(run.scenario_hash, row)
            ran += 1
            done += sharing[run.scenario_hash]
            if progress is not None:
                progress(run, done, len(runs))
            if time.monotonic() - last_write >= REWRITE_EVERY_S:
                rewrite()
                last_write = time.monotonic()
    except (KeyboardInterrupt, RunInterrupted):
        interrupted = True
    finally:
        frame = rewrite()
    return SweepResult(
        frame,
        len(runs),
        reused,
        ran,
        interrupted,
        store.other_versions,
        store.unreadable_lines,
    )
