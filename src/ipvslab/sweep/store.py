"""A sweep's output folder: the rows finished so far, kept so a sweep can resume.

    rows.jsonl        one line per finished run, appended (and synced) as it finishes:
                      the scenario hash, the ipvslab version, the row
    results.parquet   one row per run, in the sweep's order: run, the swept fields,
    results.csv       scenario_hash, then the metrics (sweep/row.py)
    sweep.json        the sweep file, the ipvslab version, each run's scenario hash

A run whose scenario hash is in ``rows.jsonl`` is not run again. The tables are
always rebuilt from the journal in the sweep's order, each written to a temporary
file and renamed over the old one: whatever order the runs finished in, wherever
they ran, and however often the sweep was interrupted, the same rows give the same
tables. A line cut short by a crash is ignored (that run runs again).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import polars as pl

from ipvslab import __version__
from ipvslab.atomic_file import write_atomic

from .expand import Run
from .row import Row

JOURNAL = "rows.jsonl"
PARQUET = "results.parquet"
CSV = "results.csv"
META = "sweep.json"

FIRST_COLUMNS = ("run",)


class RowStore:
    """The finished rows of one output folder, by scenario hash."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: dict[str, Row] = {}
        self.other_versions: set[str] = set()
        self.unreadable_lines = 0
        # A line cut short (a crash mid-write) must not swallow the next one.
        self._torn = False
        path = folder / JOURNAL
        if path.exists():
            with open(path, encoding="utf-8", errors="replace") as journal:
                for line in journal:
                    self._read(line)
                    self._torn = not line.endswith("\n")

    def _read(self, line: str) -> None:
        try:
            entry = json.loads(line)
        except ValueError:
            self.unreadable_lines += 1
            return
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("scenario_hash"), str)
            or not isinstance(entry.get("row"), dict)
        ):
            self.unreadable_lines += 1
            return
        self.rows[entry["scenario_hash"]] = entry["row"]
        version = entry.get("ipvslab")
        if version != __version__:
            self.other_versions.add(str(version))

    def add(self, scenario_hash: str, row: Row) -> None:
        """Keeps ``row`` on disk before anything else happens."""
        self.rows[scenario_hash] = row
        line = json.dumps(
            {"scenario_hash": scenario_hash, "ipvslab": __version__, "row": row},
            ensure_ascii=False,
            allow_nan=True,
        )
        with open(self.folder / JOURNAL, "a", encoding="utf-8") as journal:
            journal.write(("\n" if self._torn else "") + line + "\n")
            self._torn = False
            journal.flush()
            os.fsync(journal.fileno())


def table(runs: Sequence[Run], parameters: Sequence[str], rows: dict[str, Row]) -> pl.DataFrame:
    """One row per finished run, in the sweep's order (see the module docstring).

    Column types follow from all the sweep's values (not only the finished ones), so
    a partial table and the whole one agree on them.
    """
    done = [run for run in runs if run.scenario_hash in rows]
    metrics: dict[str, None] = {}
    for run in done:
        metrics.update(dict.fromkeys(rows[run.scenario_hash]))
    columns: list[pl.Series] = [pl.Series("run", [run.index for run in done], pl.Int64)]
    for key in parameters:
        everyone = [run.parameters.get(key) for run in runs]
        dtype, convert = _column_type(everyone)
        values = [convert(run.parameters.get(key)) for run in done]
        columns.append(pl.Series(key, values, dtype))
    columns.append(pl.Series("scenario_hash", [run.scenario_hash for run in done], pl.String))
    for name in metrics:
        if name in parameters or name in ("run", "scenario_hash"):
            continue
        found = [rows[run.scenario_hash].get(name) for run in done]
        dtype, convert = _column_type(found)
        columns.append(pl.Series(name, [convert(v) for v in found], dtype))
    return pl.DataFrame(columns)


def _column_type(values: Sequence[Any]) -> tuple[Any, Callable[[Any], Any]]:
    """A polars type for ``values`` and how to convert each: booleans, integers and
    numbers stay what they are; anything mixed or nested becomes its JSON text."""
    kinds = {_kind(v) for v in values if v is not None}
    if kinds == {"bool"}:
        return pl.Boolean, _same
    if kinds == {"int"}:
        return pl.Int64, _same
    if kinds <= {"int", "float"} and kinds:
        return pl.Float64, _as_float
    if kinds <= {"str"}:
        return pl.String, _same
    return pl.String, _as_json


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int) and -(2**63) <= value < 2**63:
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "other"


def _same(value: Any) -> Any:
    return value


def _as_float(value: Any) -> Any:
    return None if value is None else float(value)


def _as_json(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str, ensure_ascii=False)


def write_outputs(
    folder: Path, frame: pl.DataFrame, meta: dict[str, Any], runs: Sequence[Run]
) -> None:
    """The tables and sweep.json, each replaced whole (never half written)."""
    write_atomic(folder / PARQUET, frame.write_parquet)
    # CSV cannot hold NaN or infinity distinctly from text; polars writes them as such.
    write_atomic(folder / CSV, frame.write_csv)
    done = set(frame["scenario_hash"].to_list()) if frame.height else set()
    data = {
        **meta,
        "ipvslab_version": __version__,
        "runs": len(runs),
        "finished": sum(1 for run in runs if run.scenario_hash in done),
        "rows": [
            {
                "run": run.index,
                "parameters": {k: _plain(v) for k, v in run.parameters.items()},
                "scenario_hash": run.scenario_hash,
                "finished": run.scenario_hash in done,
            }
            for run in runs
        ],
    }
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n"
    write_atomic(folder / META, lambda path: path.write_text(text, encoding="utf-8"))


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
