"""What the loader tells a user about a scenario file it refuses.

Every problem names the file, the line and column (1-based, as editors count), the
field path (``clients[1].rate``) and what was expected and found, rendered as

    scenario.yaml:12:5: clients[1].rate: expected a number >= 0, got 'fast'

Output stays bounded whatever the input: a value is echoed to at most
``MAX_ECHO`` characters, a field path to ``MAX_PATH`` and a ``ScenarioError``
keeps at most ``MAX_PROBLEMS`` problems and counts the rest.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_ECHO = 60
"""Characters of a value (or of a key) echoed back before an ellipsis."""

MAX_PATH = 120
"""Characters of a field path shown; a longer path keeps its end."""

MAX_FILE = 240
"""Characters of a file name shown; a longer one keeps its end."""

MAX_PROBLEMS = 20
"""Problems a ScenarioError keeps and lists; the rest are only counted."""

ELLIPSIS = "…"

PathSegment = str | int | float | bool | None | dt.date | bytes
"""One step of a field path: a mapping key (as YAML read it) or a list index."""

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a scenario file, where it is and what would fix it."""

    file: str
    line: int | None
    """1-based; None when the problem is the file itself (missing, too large)."""
    column: int | None
    """1-based, counted in characters."""
    path: str
    """Field path such as ``clients[1].rate``; empty for the document or the file."""
    expected: str
    found: str
    """Empty when ``expected`` is a whole sentence (a model's check across fields)."""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        field = f"{self.path}: " if self.path else ""
        if not self.found:
            # A model's own check across fields, in its own words.
            return f"{where}: {field}{self.expected}"
        return f"{where}: {field}expected {self.expected}, got {self.found}"


class ScenarioError(ValueError):
    """A scenario file could not be loaded; ``problems`` says why, in file order.

    At most ``MAX_PROBLEMS`` problems are kept; ``omitted`` counts the others.
    """

    def __init__(self, problems: Sequence[Problem], omitted: int = 0) -> None:
        if not problems:
            raise ValueError("a ScenarioError needs at least one problem")
        self.problems: tuple[Problem, ...] = tuple(problems[:MAX_PROBLEMS])
        self.omitted = omitted + max(0, len(problems) - MAX_PROBLEMS)
        super().__init__(format_problems(self))

    def __reduce__(self) -> tuple[type[ScenarioError], tuple[tuple[Problem, ...], int]]:
        # Rebuilt from its problems (pickled across processes), not from its message.
        return ScenarioError, (self.problems, self.omitted)


def format_problems(err: ScenarioError) -> str:
    """The problems one per line, then ``... and N more`` when some were left out.

    Pure: the CLI prints this to stderr and exits with status 2.
    """
    lines = [str(problem) for problem in err.problems]
    if err.omitted:
        noun = "problem" if err.omitted == 1 else "problems"
        lines.append(f"... and {err.omitted} more {noun}")
    return "\n".join(lines)


class ProblemLog:
    """Collects problems for one file: keeps the first ``MAX_PROBLEMS``, counts the rest."""

    __slots__ = ("file", "omitted", "problems")

    def __init__(self, file: str) -> None:
        self.file = file if len(file) <= MAX_FILE else ELLIPSIS + file[-(MAX_FILE - 1) :]
        self.problems: list[Problem] = []
        self.omitted = 0

    def __bool__(self) -> bool:
        return bool(self.problems)

    def add(
        self,
        line: int | None,
        column: int | None,
        path: str,
        expected: str,
        found: str,
    ) -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.omitted += 1
            return
        self.problems.append(Problem(self.file, line, column, path, expected, found))

    def error(self) -> ScenarioError:
        return ScenarioError(self.problems, self.omitted)


def clip(text: str, limit: int = MAX_ECHO) -> str:
    """``text`` cut to ``limit`` characters, an ellipsis marking the cut."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + ELLIPSIS


def show_text(text: str) -> str:
    """A string as the user should recognise it: quoted, escaped, bounded."""
    if len(text) > MAX_ECHO:
        return repr(text[: MAX_ECHO - 1])[:-1] + ELLIPSIS + "'"
    return repr(text)


def show_value(value: object) -> str:
    """A value read from YAML, described in YAML's words and bounded."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return show_text(value)
    if isinstance(value, int):
        # At most 4300 digits (Python's conversion limit), still too many to echo.
        return clip(str(value))
    if isinstance(value, float):
        return clip(repr(value))
    if isinstance(value, dt.datetime):
        return f"the timestamp {value.isoformat()}"
    if isinstance(value, dt.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, bytes):
        return f"{len(value)} bytes of binary data"
    if isinstance(value, dict):
        return "an empty mapping" if not value else "a mapping"
    if isinstance(value, list):
        return "an empty list" if not value else "a list"
    return clip(type(value).__name__)


def show_choices(shown: Sequence[str]) -> str:
    """``'a', 'b' or 'c'`` from values already shown (``show_value``), bounded."""
    if len(shown) <= 1:
        return "".join(shown)
    return clip(", ".join(shown[:-1]) + " or " + shown[-1], 2 * MAX_ECHO)


def format_path(path: Iterable[PathSegment]) -> str:
    """``clients[1].rate`` from ``("clients", 1, "rate")``; bounded, keeping the end."""
    text = ""
    for segment in path:
        if isinstance(segment, int) and not isinstance(segment, bool):
            text += f"[{segment}]"
        elif isinstance(segment, str) and _NAME.match(segment):
            text += f".{clip(segment)}" if text else clip(segment)
        else:
            text += f"[{show_value(segment)}]"
    if len(text) > MAX_PATH:
        text = ELLIPSIS + text[-(MAX_PATH - 1) :]
    return text
