"""Scenario files loaded into pydantic models, every refusal a ScenarioError.

``load_model(path, Model)`` reads a YAML file, ``load_model_text(text, name,
Model)`` the same from text (stdin, tests). Whatever the input, they return a
validated model or raise one ScenarioError listing the problems with file, line,
column and field path; never another exception for bad input. The models decide
what is valid (they should use ``extra="forbid"`` so that a misspelt key is
caught); this module only reads and reports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from .errors import ProblemLog, show_value
from .validation import validation_problems
from .yaml_source import EMPTY, check_size, parse_yaml, read_source

M = TypeVar("M", bound=BaseModel)


def load_model(path: Path, model: type[M]) -> M:
    """The scenario in the YAML file at ``path``, validated as ``model``."""
    return load_model_text(read_source(path), str(path), model)


def load_model_text(text: str, source_name: str, model: type[M]) -> M:
    """The scenario in YAML ``text`` (problems name ``source_name``), validated as ``model``."""
    check_size(text, source_name)
    parsed = parse_yaml(text, source_name)
    data = parsed.root
    if not isinstance(data, dict):
        log = ProblemLog(source_name)
        found = "an empty file" if data is EMPTY else show_value(data)
        position = parsed.root_position
        log.add(position.line, position.column, "", "a mapping of fields at the top level", found)
        raise log.error()
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problems(exc, model, data, text, source_name) from None
