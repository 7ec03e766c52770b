"""A scenario file read into plain data, refusing what YAML would read silently wrong.

Reading is bounded and strict where PyYAML is lenient:

* the file is read whole only if it is at most ``MAX_BYTES`` (checked before parsing),
  and must be UTF-8 text (a UTF-8 byte-order mark is allowed);
* one document only; the top level is whatever the document holds (the loader
  checks it is a mapping);
* a key given twice in one mapping is refused (PyYAML silently keeps the last);
* anchors, aliases and merge keys (``<<``) are refused: aliases are how a
  few hundred bytes expand into gigabytes ("billion laughs");
* tags are refused except YAML's own scalar tags (``!!str 5``), so nothing
  builds objects beyond plain data;
* nesting deeper than ``MAX_DEPTH`` is refused.

Scalars are read exactly as ``yaml.safe_load`` reads them (YAML 1.1: ``yes`` is
true, ``0o17`` an integer, ``2024-03-01`` a date), so a document that passes these
rules loads to the same data as with ``yaml.safe_load``. libyaml (PyYAML's C
parser) is used when it is installed.

Parsing runs over YAML events rather than a composed node graph so that an alias
is caught where it is written and never expanded. Where each value was written
is not kept: only when validation failed does the loader read the text again
(``find_positions``) for the positions of the paths it has to report.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.resolver import Resolver

from .errors import MAX_ECHO, PathSegment, ProblemLog, clip, format_path, show_text, show_value

MAX_BYTES = 4 * 1024 * 1024
"""Largest scenario file read; scenarios are a few kilobytes."""

_AT_MOST = f"a file of at most 4 MiB ({MAX_BYTES:,} bytes)"

MAX_DEPTH = 100
"""Deepest nesting of mappings and lists accepted."""

_PARSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_RESOLVER = Resolver()
_CONSTRUCTOR = SafeConstructor()

_YAML_TAG = "tag:yaml.org,2002:"
_STR = _YAML_TAG + "str"
_MERGE = _YAML_TAG + "merge"
_VALUE = _YAML_TAG + "value"
_SCALAR_TAGS = frozenset(_YAML_TAG + name for name in ("null", "bool", "int", "float", "str"))
_SCALAR_TAGS |= {_YAML_TAG + "timestamp", _YAML_TAG + "binary"}
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # where YAML ends a line

_MAP = _YAML_TAG + "map"
_SEQ = _YAML_TAG + "seq"
_SCALAR_EXPECTED = {
    _YAML_TAG + "int": "an integer of at most 4300 digits",
    _YAML_TAG + "timestamp": "a real date or time (quote it to keep it as text)",
    _YAML_TAG + "binary": "base64 data",
}


@dataclass(frozen=True, slots=True)
class Position:
    """Where a value was written: its own line and column and, in a mapping, its key's."""

    line: int
    column: int
    key_line: int | None = None
    key_column: int | None = None
    plain: str | None = None
    """The scalar as written, when it was written without quotes."""


Path_ = tuple[PathSegment, ...]


@dataclass(frozen=True, slots=True)
class ParsedYaml:
    root: Any
    """The document's data; ``EMPTY`` when the file held no document."""
    positions: dict[Path_, Position]
    """Where each requested path was written (only the paths asked for)."""
    root_position: Position
    """Where the document's top-level value starts (1:1 for an empty file)."""


class _Empty:
    __slots__ = ()

    def __repr__(self) -> str:
        return "EMPTY"


EMPTY: Any = _Empty()
"""The root of a file without a document (empty or only comments)."""


def read_source(path: Path) -> str:
    """The text of a scenario file, or a ScenarioError saying why it cannot be read."""
    log = ProblemLog(str(path))
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > MAX_BYTES:
                raise _TooLarge(size)
            # fstat says nothing of pipes and /proc files: read one byte past the limit.
            data = stream.read(MAX_BYTES + 1)
    except _TooLarge as exc:
        log.add(None, None, "", _AT_MOST, _size(exc.size))
    except FileNotFoundError:
        log.add(None, None, "", "a scenario file", "no such file")
    except IsADirectoryError:
        log.add(None, None, "", "a scenario file", "a directory")
    except PermissionError:
        log.add(None, None, "", "a readable file", "permission denied")
    except OSError as exc:
        log.add(None, None, "", "a readable file", clip(exc.strerror or type(exc).__name__))
    except ValueError:  # a NUL character in the name
        log.add(None, None, "", "a file name without NUL characters", "one with them")
    else:
        if len(data) > MAX_BYTES:
            log.add(None, None, "", _AT_MOST, "more")
        else:
            return decode_utf8(data, str(path))
    raise log.error()


class _TooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


def _size(size: int) -> str:
    return f"{size:,} bytes"


def decode_utf8(data: bytes, file: str) -> str:
    """``data`` as text, or a ScenarioError at the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        # utf-8-sig counts from after the byte-order mark, which no editor shows.
        bom = 3 if data.startswith(b"\xef\xbb\xbf") else 0
        start = exc.start + bom
        before = data[bom:start].decode("utf-8")
        line, column = _line_column(before, len(before))
        log = ProblemLog(file)
        log.add(line, column, "", "UTF-8 text", f"the byte 0x{data[start]:02X}")
        raise log.error() from None


def check_size(text: str, file: str) -> None:
    """A ScenarioError if ``text`` is over ``MAX_BYTES`` or cannot be written as UTF-8."""
    log = ProblemLog(file)
    if len(text) > MAX_BYTES:
        log.add(None, None, "", _AT_MOST, f"{len(text):,} characters")
        raise log.error()
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line, column = _line_column(text, exc.start)
        log.add(line, column, "", "UTF-8 text", f"the unpaired surrogate {text[exc.start]!r}")
        raise log.error() from None
    if size > MAX_BYTES:
        log.add(None, None, "", _AT_MOST, _size(size))
        raise log.error()


def _line_column(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``, breaking lines as YAML does."""
    line, line_start = 1, 0
    for match in _BREAK.finditer(text, 0, index):
        line, line_start = line + 1, match.end()
    return line, index - line_start + 1


class _Frame:
    """An open mapping or list while its events arrive."""

    __slots__ = ("awaiting_key", "container", "first_lines", "key", "key_mark", "skip", "start")

    def __init__(self, container: dict[Any, Any] | list[Any], start: Any) -> None:
        self.container = container
        self.start = start
        self.awaiting_key = isinstance(container, dict)
        self.key: Any = None
        self.key_mark: Any = None
        self.skip = False
        self.first_lines: dict[Any, int] = {}

    def segment(self) -> PathSegment:
        if isinstance(self.container, list):
            return len(self.container)
        key: PathSegment = self.key
        return key


def parse_yaml(text: str, file: str) -> ParsedYaml:
    """The data of the one document in ``text``, or a ScenarioError listing what is wrong."""
    return _parse(text, file, frozenset())


def find_positions(text: str, file: str, want: Collection[Path_]) -> ParsedYaml:
    """Where the paths ``want`` were written in a ``text`` that ``parse_yaml`` accepted.

    Reading stops once every path is found: the result's ``root`` is incomplete.
    """
    return _parse(text, file, frozenset(want))


def _parse(text: str, file: str, want: frozenset[Path_]) -> ParsedYaml:
    log = ProblemLog(file)
    unfound = len(want - {()})
    positions: dict[Path_, Position] = {}
    stack: list[_Frame] = []
    root: Any = EMPTY
    root_position = Position(1, 1)

    def path_here() -> Path_:
        """The path of the value being read (of its mapping, while reading a key)."""
        if stack and stack[-1].awaiting_key:
            return tuple(frame.segment() for frame in stack[:-1])
        return tuple(frame.segment() for frame in stack)

    def where(mark: Any) -> tuple[int, int, str]:
        return (*_at(mark, text), format_path(path_here()))

    def place(value: Any, mark: Any) -> None:
        nonlocal root
        if not stack:
            root = value
            return
        top = stack[-1]
        container = top.container
        if isinstance(container, list):
            container.append(value)
        elif top.awaiting_key:
            top.key, top.skip = _accept_key(value, mark, text, top, path_here(), log)
            top.key_mark = mark
            top.awaiting_key = False
        else:
            if not top.skip:
                container[top.key] = value
            top.awaiting_key = True

    try:
        documents = 0
        for event in yaml.parse(text, Loader=_PARSER):
            if isinstance(event, yaml.NodeEvent):
                mark = event.start_mark
                if not stack:
                    root_position = _position(event, None, text)
                    if want and not unfound:
                        break
                elif want and not stack[-1].awaiting_key:
                    path = path_here()
                    if path in want:
                        positions[path] = _position(event, stack[-1], text)
                        unfound -= 1
                        if not unfound:
                            break
                if isinstance(event, yaml.AliasEvent):
                    log.add(
                        *where(mark),
                        "the value written out (anchors and aliases are not supported)",
                        f"the alias *{clip(str(event.anchor))}",
                    )
                    place(None, mark)
                    continue
                if event.anchor is not None:
                    log.add(
                        *where(mark),
                        "a value without an anchor (anchors and aliases are not supported)",
                        f"the anchor &{clip(str(event.anchor))}",
                    )
                if isinstance(event, yaml.ScalarEvent):
                    place(_scalar(event, where, log), mark)
                    continue
                is_mapping = isinstance(event, yaml.MappingStartEvent)
                tag = event.tag  # type: ignore[attr-defined]
                if tag not in (None, "!", _MAP if is_mapping else _SEQ):
                    log.add(
                        *where(mark),
                        "a value without a tag (tags are not supported)",
                        f"the tag {_short_tag(str(tag))}",
                    )
                if len(stack) >= MAX_DEPTH:
                    log.add(*where(mark), f"at most {MAX_DEPTH} levels of nesting", "more")
                    break
                stack.append(_Frame({} if is_mapping else [], mark))
            elif isinstance(event, yaml.CollectionEndEvent):
                frame = stack.pop()
                place(frame.container, frame.start)
            elif isinstance(event, yaml.DocumentStartEvent):
                documents += 1
                if documents > 1:
                    log.add(*where(event.start_mark), "one YAML document", "a second document")
                    break
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        found = exc.problem or "invalid YAML"
        if exc.context:
            found += f" ({exc.context}"
            context = exc.context_mark
            if context is not None and mark is not None and context.line != mark.line:
                found += f" at line {context.line + 1}"
            found += ")"
        line, column = (None, None) if mark is None else _at(mark, text)
        log.add(line, column, "", "valid YAML", clip(found, 2 * MAX_ECHO))
    except yaml.reader.ReaderError as exc:
        line, column = _line_column(text, exc.position)
        log.add(line, column, "", "printable text", f"the character {chr(exc.character)!r}")
    except yaml.YAMLError as exc:
        log.add(None, None, "", "valid YAML", clip(str(exc)))
    if log:
        raise log.error()
    return ParsedYaml(root, positions, root_position)


def _accept_key(
    key: Any, mark: Any, text: str, frame: _Frame, parent: Path_, log: ProblemLog
) -> tuple[Any, bool]:
    """The key to store the next value under, and whether to drop that value."""
    line, column = _at(mark, text)
    if isinstance(key, dict | list):
        log.add(line, column, format_path(parent), "a plain key", f"{show_value(key)} as a key")
        return "?", True
    first = frame.first_lines.get(key)
    if first is not None:
        found = f"it again (first at line {first})"
        log.add(line, column, format_path((*parent, key)), "each key once in a mapping", found)
        return key, True
    frame.first_lines[key] = line
    return key, False


def _scalar(
    event: yaml.ScalarEvent, where: Callable[[Any], tuple[int, int, str]], log: ProblemLog
) -> Any:
    """The scalar's value as ``yaml.safe_load`` reads it; None after a problem."""
    tag = event.tag
    value = event.value
    if tag is None or tag == "!":
        tag = _RESOLVER.resolve(yaml.ScalarNode, value, event.implicit)  # type: ignore[no-untyped-call]
    if tag in (_STR, _VALUE):
        # YAML 1.1 reads a lone "=" as a "value" key that safe_load cannot build;
        # a user writing "=" means the text.
        return value
    mark = event.start_mark
    if tag == _MERGE:
        log.add(*where(mark), "a plain key (merge keys are not supported)", "the merge key <<")
        return None
    if tag not in _SCALAR_TAGS:
        log.add(
            *where(mark),
            "a value without a tag (tags are not supported)",
            f"the tag {_short_tag(tag)}",
        )
        return None
    node = yaml.ScalarNode(tag, value, None, None, event.style)
    try:
        return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)
    except (ValueError, OverflowError, yaml.YAMLError):
        expected = _SCALAR_EXPECTED.get(tag, f"a value that YAML reads as {_short_tag(tag)}")
        log.add(*where(mark), expected, show_text(value))
        return None


def _short_tag(tag: str) -> str:
    short = "!!" + tag[len(_YAML_TAG) :] if tag.startswith(_YAML_TAG) else tag
    return clip(short)


def _position(event: Any, parent: _Frame | None, text: str) -> Position:
    key_mark = None if parent is None else parent.key_mark
    if parent is not None and isinstance(parent.container, list):
        key_mark = None
    plain = None
    if isinstance(event, yaml.ScalarEvent) and event.implicit[0]:
        plain = event.value
    key_line, key_column = (None, None) if key_mark is None else _at(key_mark, text)
    return Position(*_at(event.start_mark, text), key_line, key_column, plain)


def _at(mark: Any, text: str) -> tuple[int, int]:
    """1-based line and column of a libyaml mark, kept inside ``text``.

    At the end of a text without a final line break libyaml reports the start of
    the line after it; the user's editor has no such line.
    """
    line, column = mark.line + 1, mark.column + 1
    if mark.index < len(text) - 1:
        return line, column
    return min((line, column), _line_column(text, len(text)))
