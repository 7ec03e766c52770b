"""A sweep's runs: its grid or list expanded onto the base scenario, each run validated.

A key is a dotted path through the scenario's fields: ``cluster.kernel``,
``clients.0.load.rate`` (a number is a list index), ``cluster.sysctls.net.ipv4.vs.
conn_reuse_mode`` (under a mapping of sysctls the rest of the path is one key).
Paths are resolved against the scenario model before anything runs, then every run's
scenario is validated whole; a problem is reported where the sweep file wrote the
key or the value that caused it (file, line, column, field), once however many runs
share it. Runs come in a fixed order: the grid's first key varies slowest (or the
list's order), then the seeds.
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import BaseModel, ValidationError

from ipvslab.scenario.errors import (
    MAX_PROBLEMS,
    PathSegment,
    ProblemLog,
    format_path,
    show_choices,
    show_text,
    show_value,
)
from ipvslab.scenario.model import Scenario
from ipvslab.scenario.validation import add_problems, locate_errors, step_type, unwrap_type
from ipvslab.scenario.yaml_source import Path_, Position, find_positions

from .spec import Sweep

MAX_RUNS = 100_000
"""Most runs one sweep expands to."""

SEED = "seed"


@dataclass(frozen=True)
class Change:
    """One field a run changes: the key as written, where it leads, the value."""

    key: str
    path: Path_
    """In the scenario: ``("clients", 0, "load", "rate")``."""
    value: Any
    entry: Path_
    """In the sweep file, the entry naming the key: ``("grid", "clients.0.load.rate")``."""
    where: Path_
    """In the sweep file, the value: ``("grid", "clients.0.load.rate", 2)``."""


@dataclass(frozen=True)
class Run:
    """One run of the sweep."""

    index: int
    parameters: dict[str, Any]
    """The swept fields' values as the sweep file wrote them, and the seed."""
    scenario: Scenario
    scenario_hash: str


def scenario_hash(scenario: Scenario) -> str:
    """What identifies a run's result: the validated scenario, however it was spelt
    (``2m`` or ``120s``), seed included. A run is a function of this alone."""
    canonical = json.dumps(
        scenario.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:20]


class _PathProblem(Exception):
    def __init__(self, expected: str, found: str) -> None:
        self.expected = expected
        self.found = found


def resolve_path(key: str) -> Path_:
    """The scenario path a dotted key names, or _PathProblem."""
    segments = key.split(".")
    if not key or any(not part for part in segments):
        raise _PathProblem("a dotted path like clients.0.load.rate", show_text(key))
    tp: Any = unwrap_type(Scenario)[0]
    path: list[PathSegment] = []
    for index, part in enumerate(segments):
        if _is_mapping(tp):
            # sysctl names have dots of their own: the rest of the key is one name.
            path.append(".".join(segments[index:]))
            return tuple(path)
        segment: PathSegment = int(part) if part.isdigit() else part
        step = step_type(tp, segment) if _has_parts(tp) else None
        if step is None:
            raise _PathProblem(*_no_such(tp, path, part))
        path.append(segment)
        tp = unwrap_type(step)[0]
    return tuple(path)


def _is_mapping(tp: Any) -> bool:
    origin = get_origin(tp)
    return tp is dict or origin is dict


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _has_parts(tp: Any) -> bool:
    """Whether a path can go further into a value of ``tp``."""
    if _is_model(tp) or get_origin(tp) in (list, tuple):
        return True
    return any(_has_parts(unwrap_type(member)[0]) for member in get_args(tp) if get_args(tp))


def _fields(tp: Any) -> list[str]:
    if _is_model(tp):
        return [info.alias or name for name, info in tp.model_fields.items()]
    if get_origin(tp) in (list, tuple):
        return []
    return [name for member in get_args(tp) for name in _fields(unwrap_type(member)[0])]


def _no_such(tp: Any, parent: list[PathSegment], part: str) -> tuple[str, str]:
    where = format_path(parent) or "the scenario"
    names = list(dict.fromkeys(_fields(tp)))
    if names and not part.isdigit():
        close = difflib.get_close_matches(part, names, n=1)
        hint = f" (did you mean {show_text(close[0])}?)" if close else ""
        if not close and len(names) <= 12:
            hint = f": {show_choices([show_text(n) for n in names])}"
        return f"a field of {where}{hint}", show_text(part)
    if _has_parts(tp):
        return f"a list index (0, 1, …) after {where}", show_text(part)
    return f"nothing after {where} (it is a single value)", show_text(part)


def apply_change(data: dict[str, Any], path: Path_) -> tuple[Any, PathSegment]:
    """The container in ``data`` that holds ``path``'s last step, made where absent;
    _PathProblem where the base scenario has no such place."""
    node: Any = data
    for depth, segment in enumerate(path[:-1]):
        wants_list = isinstance(path[depth + 1], int)
        node = _child(node, segment, path[: depth + 1], wants_list)
    last = path[-1]
    if isinstance(node, list):
        assert isinstance(last, int)
        if last >= len(node):
            raise _PathProblem(*_out_of_range(node, path))
    return node, last


def _child(node: Any, segment: PathSegment, path: Path_, wants_list: bool) -> Any:
    if isinstance(node, list):
        assert isinstance(segment, int)
        if segment >= len(node):
            raise _PathProblem(*_out_of_range(node, path))
        child = node[segment]
    else:
        child = node.get(segment)
    if child is None:
        if wants_list:
            raise _PathProblem(
                f"a list at {format_path(path)} in the base scenario", "none written there"
            )
        child = {}
        if isinstance(node, list):
            node[segment] = child  # type: ignore[index]
        else:
            node[segment] = child
    if wants_list and not isinstance(child, list):
        raise _PathProblem(f"a list at {format_path(path)} in the base scenario", show_value(child))
    if not wants_list and not isinstance(child, dict):
        raise _PathProblem(
            f"a mapping at {format_path(path)} in the base scenario", show_value(child)
        )
    return child


def _out_of_range(node: list[Any], path: Path_) -> tuple[str, str]:
    parent = format_path(path[:-1])
    count = len(node)
    return (
        f"an index below {count} ({parent} has {count} entr{'y' if count == 1 else 'ies'}"
        " in the base scenario)",
        str(path[-1]),
    )


def _changes(
    sweep: Sweep, log: ProblemLog, positions: dict[Path_, Position]
) -> tuple[list[Change], list[list[Change]]]:
    """The changes every run makes, and each combination's own."""
    spec = sweep.spec

    def change(key: str, value: Any, entry: Path_, where: Path_) -> Change | None:
        try:
            return Change(key, resolve_path(key), value, entry, where)
        except _PathProblem as problem:
            _add_at_key(log, positions, entry, problem)
            return None

    fixed = [change(k, v, ("set", k), ("set", k)) for k, v in spec.set_.items()]
    combos: list[list[Change | None]] = []
    if spec.grid is not None:
        axes = [
            [change(key, value, ("grid", key), ("grid", key, i)) for i, value in enumerate(values)]
            for key, values in spec.grid.items()
        ]
        combos = [list(combo) for combo in itertools.product(*axes)]
    elif spec.list_ is not None:
        combos = [
            [change(key, value, ("list", j, key), ("list", j, key)) for key, value in run.items()]
            for j, run in enumerate(spec.list_)
        ]
    else:
        combos = [[]]
    if log:
        raise log.error()
    return [c for c in fixed if c], [[c for c in combo if c] for combo in combos]


def _add_at_key(
    log: ProblemLog, positions: dict[Path_, Position], entry: Path_, problem: _PathProblem
) -> None:
    position = positions.get(entry)
    line = column = None
    if position is not None:
        line = position.key_line or position.line
        column = position.key_column or position.column
    log.add(line, column, format_path(entry), problem.expected, problem.found)


def _wanted_positions(sweep: Sweep) -> set[Path_]:
    spec = sweep.spec
    want: set[Path_] = {("seeds",), ("grid",), ("list",)}
    want.update(("set", key) for key in spec.set_)
    for key, values in (spec.grid or {}).items():
        want.add(("grid", key))
        want.update(("grid", key, i) for i in range(len(values)))
    for j, run in enumerate(spec.list_ or []):
        want.update(("list", j, key) for key in run)
    return want


def expand(sweep: Sweep) -> list[Run]:
    """Every run of ``sweep`` in order, each scenario validated; or a ScenarioError
    listing what is wrong, before anything has run."""
    file = str(sweep.file)
    positions = find_positions(sweep.text, file, _wanted_positions(sweep)).positions
    log = ProblemLog(file)
    fixed, combos = _changes(sweep, log, positions)
    seeds = sweep.spec.seed_values()
    if seeds is not None and SEED in _written_keys(sweep):
        position = positions.get(("seeds",))
        log.add(
            position.key_line if position else None,
            position.key_column if position else None,
            "seeds",
            "seeds or a swept seed field, not both",
            "both",
        )
        raise log.error()
    total = len(combos) * (len(seeds) if seeds else 1)
    if total > MAX_RUNS:
        entry = "grid" if sweep.spec.grid is not None else "list"
        position = positions.get((entry,))
        log.add(
            position.key_line if position else None,
            position.key_column if position else None,
            entry,
            f"at most {MAX_RUNS:,} runs",
            f"{total:,} ({' x '.join(str(n) for n in _axis_sizes(sweep, seeds))})",
        )
        raise log.error()
    runs: list[Run] = []
    seen: set[tuple[Any, ...]] = set()
    for combo in combos:
        for number, seed in enumerate(seeds if seeds is not None else [None]):
            changes = [*fixed, *combo]
            scenario = _scenario(sweep, changes, seed, positions, log, seen)
            if scenario is not None and number == 0:
                # What only laying the cluster out finds (an unknown kernel, a
                # kube-proxy without IPVS mode) is found now, not mid-sweep.
                scenario = _laid_out(scenario, changes, positions, log, seen)
            if scenario is None:
                if len(log.problems) >= MAX_PROBLEMS:
                    raise log.error()
                break
            parameters = {c.key: c.value for c in combo}
            parameters[SEED] = scenario.seed
            runs.append(Run(len(runs), parameters, scenario, scenario_hash(scenario)))
    if log:
        raise log.error()
    return runs


def _written_keys(sweep: Sweep) -> list[str]:
    spec = sweep.spec
    if spec.list_ is not None:
        return list(dict.fromkeys(key for run in spec.list_ for key in run))
    return list(spec.grid or {})


def swept_keys(sweep: Sweep) -> list[str]:
    """The parameter columns of the sweep's table, in order (the seed last)."""
    return [*(k for k in _written_keys(sweep) if k != SEED), SEED]


def _axis_sizes(sweep: Sweep, seeds: list[int] | None) -> Iterator[int]:
    if sweep.spec.grid is not None:
        yield from (len(values) for values in sweep.spec.grid.values())
    elif sweep.spec.list_ is not None:
        yield len(sweep.spec.list_)
    if seeds is not None:
        yield len(seeds)


def _scenario(
    sweep: Sweep,
    changes: list[Change],
    seed: int | None,
    positions: dict[Path_, Position],
    log: ProblemLog,
    seen: set[tuple[Any, ...]],
) -> Scenario | None:
    """One run's scenario; None after adding its problems (each once) to ``log``."""
    data = copy.deepcopy(sweep.base_data)
    for change in changes:
        try:
            container, last = apply_change(data, change.path)
        except _PathProblem as problem:
            key = ("path", change.entry, problem.expected)
            if key not in seen:
                seen.add(key)
                _add_at_key(log, positions, change.entry, problem)
            return None
        container[last] = copy.deepcopy(change.value)
    if seed is not None:
        data[SEED] = seed
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        _add_run_problems(exc, data, changes, positions, log, seen)
        return None


def _laid_out(
    scenario: Scenario,
    changes: list[Change],
    positions: dict[Path_, Position],
    log: ProblemLog,
    seen: set[tuple[Any, ...]],
) -> Scenario | None:
    """``scenario`` if the cluster twin can lay it out; None after adding why not."""
    from ipvslab.cluster.cluster import Cluster
    from ipvslab.cluster.errors import ScenarioSetupError

    try:
        Cluster(scenario)
    except ScenarioSetupError as err:
        field, _, why = str(err).partition(": ")
        named = field.split(" ", 1)[0]
        change = next(
            (c for c in changes if format_path(c.path).startswith(named)),
            next((c for c in changes if named.startswith(format_path(c.path))), None),
        )
        where = change.where if change is not None else ()
        key = ("setup", where, str(err))
        if key not in seen:
            seen.add(key)
            position = positions.get(where) or Position(1, 1)
            shown = format_path(where) or "base"
            log.add(position.line, position.column, shown, f"{field}: {why}" if why else field, "")
        return None
    return scenario


def _add_run_problems(
    exc: ValidationError,
    data: dict[str, Any],
    changes: list[Change],
    positions: dict[Path_, Position],
    log: ProblemLog,
    seen: set[tuple[Any, ...]],
) -> None:
    """The problems of one run, each placed at the change that caused it.

    The base scenario is valid on its own, so whatever fails was brought by a
    change: the one whose path holds the problem's, else one inside it (a check
    across fields of a mapping it changed), else the first.
    """

    def cause(path: Path_) -> Change:
        holding = [c for c in changes if path[: len(c.path)] == c.path]
        if holding:
            return max(holding, key=lambda c: len(c.path))
        inside = [c for c in changes if c.path[: len(path)] == path]
        return (inside or changes)[0]

    def position_of(path: Path_) -> Position:
        where = cause(path).where
        return positions.get(where) or Position(1, 1)

    def name(path: Path_) -> str:
        change = cause(path)
        shown = format_path(change.where)
        if path[: len(change.path)] != change.path or path == change.path:
            return shown  # the change itself, or a check of a mapping around it
        return f"{shown} ({format_path(path)})"

    scratch = ProblemLog(log.file)
    add_problems(scratch, locate_errors(exc, data), Scenario, data, position_of, name)
    for problem in scratch.problems:
        key = ("value", problem.line, problem.column, problem.path, problem.expected)
        if key not in seen:
            seen.add(key)
            log.add(problem.line, problem.column, problem.path, problem.expected, problem.found)
