"""Scenario files: YAML read strictly into pydantic models, with errors users can act on."""

from .errors import Problem, ScenarioError, format_problems
from .loader import load_model, load_model_text

__all__ = ["Problem", "ScenarioError", "format_problems", "load_model", "load_model_text"]
