"""The sweep file (SWEEP.yaml): its model, and its loading with the base scenario.

    name: syn-drop-threshold        # optional, default: the file's name
    base: ../first-syn-drop.yaml    # a scenario file (relative to this file) or a mapping
    set:                            # optional: fields changed in every run
      duration: 30s
    grid:                           # every combination (the first key varies slowest)
      cluster.kernel: ["4.19", "5.10"]
      clients.0.load.rate: [1, 4, 16]
    list:                           # or: one mapping of changed fields per run
      - {cluster.kernel: "4.19", cluster.sysctls.net.ipv4.vs.conn_reuse_mode: 0}
    seeds: 3                        # or [1, 7, 42]: each combination with each seed

Keys are dotted field paths of the scenario (docs/sweep.md). Every refusal is a
ScenarioError naming the sweep file (or the base scenario's file), line, column and
field, like the scenario loader's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ipvslab.scenario import ScenarioError, load_model_text
from ipvslab.scenario.errors import ProblemLog, clip
from ipvslab.scenario.model import Scenario
from ipvslab.scenario.validation import validation_problems
from ipvslab.scenario.yaml_source import find_positions, parse_yaml, read_source

MAX_SEEDS = 10_000
"""Most seeds a ``seeds: N`` asks for."""


class SweepFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str | None = None
    description: str = ""
    base: str | dict[str, Any]
    set_: dict[str, Any] = Field(default_factory=dict, alias="set")
    grid: dict[str, list[Any]] | None = None
    list_: list[dict[str, Any]] | None = Field(default=None, alias="list")
    # N: seeds 1..N; a list: those seeds; absent: the base scenario's seed.
    seeds: int | list[int] | None = None

    @field_validator("base")
    @classmethod
    def _base_named(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        if isinstance(value, str) and not value.strip():
            raise ValueError("expected a scenario file's path or a scenario mapping")
        return value

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, value: dict[str, list[Any]] | None) -> dict[str, list[Any]] | None:
        if value is not None:
            if not value:
                raise ValueError("a grid names at least one field")
            empty = [key for key, values in value.items() if not values]
            if empty:
                raise ValueError(f"grid field {clip(str(empty[0]))!r} has no values")
        return value

    @field_validator("list_")
    @classmethod
    def _list_runs(cls, value: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
        if value is not None and not value:
            raise ValueError("a list holds at least one run")
        return value

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: int | list[int] | None) -> int | list[int] | None:
        if isinstance(value, int) and not 1 <= value <= MAX_SEEDS:
            raise ValueError(f"expected a number of seeds from 1 to {MAX_SEEDS:,}")
        if isinstance(value, list):
            if not value:
                raise ValueError("expected at least one seed")
            if any(not 0 <= seed < 2**63 for seed in value):
                raise ValueError("expected seeds between 0 and 2^63-1")
            if len(set(value)) != len(value):
                raise ValueError("each seed once")
        return value

    @model_validator(mode="after")
    def _grid_or_list(self) -> SweepFile:
        if self.grid is not None and self.list_ is not None:
            raise ValueError("a sweep takes a grid or a list of runs, not both")
        if self.grid is None and self.list_ is None and self.seeds is None:
            raise ValueError("a sweep needs a grid, a list of runs or seeds")
        return self

    def seed_values(self) -> list[int] | None:
        """The seeds each combination runs with; None: the scenario's own."""
        if self.seeds is None:
            return None
        if isinstance(self.seeds, int):
            return list(range(1, self.seeds + 1))
        return list(self.seeds)


class _InlineBase(BaseModel):
    """The sweep file's ``base`` as a scenario mapping, so problems are placed in it."""

    model_config = ConfigDict(extra="ignore")
    base: Scenario


@dataclass(frozen=True)
class Sweep:
    """A sweep file as loaded: its model, its text, and its base scenario."""

    file: Path
    text: str
    spec: SweepFile
    base_data: dict[str, Any]
    """The base scenario as written (plain data): the runs change copies of it."""
    base_file: str
    """Where the base scenario was written (the sweep file itself when inline)."""

    @property
    def name(self) -> str:
        return self.spec.name or self.file.stem


def load_sweep(path: Path) -> Sweep:
    """The sweep file at ``path`` and its base scenario, or a ScenarioError."""
    text = read_source(path)
    file = str(path)
    spec = load_model_text(text, file, SweepFile)
    if isinstance(spec.base, dict):
        data = {"base": spec.base}
        try:
            _InlineBase.model_validate(data)
        except ValidationError as exc:
            raise validation_problems(exc, _InlineBase, data, text, file) from None
        return Sweep(path, text, spec, spec.base, file)
    base_path = path.parent / spec.base
    try:
        base_text = read_source(base_path)
    except ScenarioError as err:
        # The file itself cannot be read: say so where the sweep file names it.
        position = find_positions(text, file, {("base",)}).positions.get(("base",))
        log = ProblemLog(file)
        for problem in err.problems:
            log.add(
                position.line if position else None,
                position.column if position else None,
                "base",
                f"{problem.expected} (relative to the sweep file: {clip(str(base_path), 120)})",
                problem.found,
            )
        raise log.error() from None
    load_model_text(base_text, str(base_path), Scenario)  # problems in the base's own file
    root = parse_yaml(base_text, str(base_path)).root
    return Sweep(path, text, spec, root, str(base_path))
