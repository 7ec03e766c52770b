"""Why a cluster run cannot be laid out or go on.

Kept apart from cluster.py and pods.py because setup.py compiles those with mypyc,
which cannot compile subclasses of built-in exceptions as native classes; this
module stays Python, so the classes stay ordinary exceptions."""

from __future__ import annotations


class ScenarioSetupError(ValueError):
    """A scenario that parses but cannot be laid out (named field and why)."""


class CapacityError(RuntimeError):
    """The cluster ran out of something a real one would also run out of."""
