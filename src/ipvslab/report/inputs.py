"""Reading an output folder for a report, with one-line errors naming the file
(and the line, or the field or column) for anything missing or unreadable."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

# summary.json, report.json, run.json and measures.json are small; anything larger
# is not ours, and is refused before it is read into memory.
MAX_JSON_BYTES = 64 * 1024 * 1024
_ECHO = 120  # at most this many characters of anything quoted from a file


class ReportInputError(Exception):
    """A folder or file the report cannot use; the message is the one line to print."""


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _ECHO else text[: _ECHO - 1] + "…"


def kind_of(folder: Path) -> str:
    """``run`` (summary.json) or ``reproduce`` (report.json with runs/)."""
    if not folder.exists():
        raise ReportInputError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise ReportInputError(
            f"{folder}: not a folder; give the folder `ipvslab run` or `ipvslab reproduce` wrote"
        )
    if (folder / "report.json").is_file():
        return "reproduce"
    if (folder / "summary.json").is_file():
        return "run"
    raise ReportInputError(
        f"{folder}: neither a run folder (summary.json) nor a reproduce folder (report.json)"
    )


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object (summary.json, report.json, run.json)."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise ReportInputError(f"{path}: expected a JSON object, found {type(data).__name__}")
    return data


def read_json_list(path: Path) -> list[dict[str, Any]]:
    """A JSON list of objects (steps.json)."""
    data = _read_json(path)
    if not isinstance(data, list):
        raise ReportInputError(f"{path}: expected a JSON list, found {type(data).__name__}")
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ReportInputError(f"{path}: item {index}: expected an object")
    return data


def _read_json(path: Path) -> Any:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ReportInputError(f"{path}: missing") from None
    except OSError as err:
        raise ReportInputError(f"{path}: cannot read ({err.strerror})") from None
    if size > MAX_JSON_BYTES:
        raise ReportInputError(f"{path}: {size:,} bytes, more than a report file can be")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ReportInputError(f"{path}: not UTF-8 text") from None
    except OSError as err:
        raise ReportInputError(f"{path}: cannot read ({err.strerror})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ReportInputError(
            f"{path}: line {err.lineno}, column {err.colno}: not valid JSON ({err.msg})"
        ) from None
    return data


def field(data: dict[str, Any], path: Path, name: str, kind: type | tuple[type, ...]) -> Any:
    """``data[name]``, which must be of ``kind``; otherwise an error naming the field."""
    if name not in data:
        raise ReportInputError(f"{path}: field {name!r} missing")
    value = data[name]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _kinds(kind)):
        expected = " or ".join(k.__name__ for k in _kinds(kind))
        raise ReportInputError(
            f"{path}: field {name!r}: expected {expected}, found {_short(repr(value))}"
        )
    return value


def _kinds(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


Types = tuple[type[pl.DataType], ...]
Columns = Mapping[str, Types]


def read_parquet(path: Path, columns: Columns) -> pl.DataFrame:
    """The file's ``columns`` (name -> accepted polars types), checked."""
    if not path.is_file():
        raise ReportInputError(f"{path}: missing")
    try:
        schema = pl.read_parquet_schema(path)
    except Exception as err:  # polars raises several kinds for a file that is not Parquet
        raise ReportInputError(f"{path}: not a readable Parquet file ({_reason(err)})") from None
    for name, accepted in columns.items():
        if name not in schema:
            raise ReportInputError(
                f"{path}: column {name!r} missing (has: {_short(', '.join(schema))})"
            )
        if not any(isinstance(schema[name], t) or schema[name] == t for t in accepted):
            raise ReportInputError(
                f"{path}: column {name!r} is {schema[name]}, expected"
                f" {' or '.join(str(t) for t in accepted)}"
            )
    try:
        return pl.read_parquet(path, columns=list(columns))
    except Exception as err:  # corrupt pages show only when the data is read
        raise ReportInputError(f"{path}: not a readable Parquet file ({_reason(err)})") from None


def _reason(err: Exception) -> str:
    text = str(err).strip()
    return _short(text.splitlines()[0]) if text else type(err).__name__


_INT: Types = (pl.Int64, pl.Int32, pl.UInt32, pl.UInt64, pl.Int16, pl.UInt16, pl.Int8, pl.UInt8)
_FLOAT: Types = (pl.Float64, pl.Float32)
_STR: Types = (pl.String, pl.Categorical)
_BOOL: Types = (pl.Boolean,)

# The columns each table of an output folder must have for the report.
TRACE: dict[str, Types] = {
    "time_us": _INT,
    "service": _STR,
    "pod": _STR,
    "result": _STR,
    "connect_us": _INT,
    "entry_before": _STR,
    "decision": _STR,
    "weight0": _BOOL,
    "removed": _BOOL,
    "pod_gone": _BOOL,
}
SHARES: dict[str, Types] = {"t_s": _FLOAT, "service": _STR, "pod": _STR, "share": _FLOAT}
SERVERS: dict[str, Types] = {
    "time_us": _INT,
    "node": _STR,
    "service": _STR,
    "server": _STR,
    "weight": _INT,
    "active": _INT,
    "inactive": _INT,
    "terminating": _BOOL,
}
SERVER_LOG: dict[str, Types] = {
    "time_us": _INT,
    "node": _STR,
    "service": _STR,
    "server": _STR,
    "action": _STR,
}
PODS: dict[str, Types] = {"time_us": _INT, "pod": _STR, "event": _STR}
TIMESERIES: dict[str, Types] = {
    "t_s": _FLOAT,
    "EHOSTUNREACH": _INT,
    "ECONNREFUSED": _INT,
    "ETIMEDOUT": _INT,
    "EADDRNOTAVAIL": _INT,
    "to_weight0": _INT,
    "to_removed_or_gone": _INT,
    "first_syn_dropped": _INT,
}
