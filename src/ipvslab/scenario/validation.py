"""Pydantic's validation errors, told in the user's terms and located in the YAML.

Pydantic reports a location such as ``("steps", 3, "connect", "port")`` where
some segments name a union member rather than a key. The location is matched
against the data that was validated to find the key path the user wrote
(``steps[3].port``), then against the model's types to say what was expected
(``an integer >= 1 and <= 65535``) and, for an unknown key, which known field
it is closest to.
"""

from __future__ import annotations

import difflib
import enum
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, BeforeValidator, PlainValidator, ValidationError, WrapValidator
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from .errors import (
    MAX_ECHO,
    MAX_PROBLEMS,
    PathSegment,
    ProblemLog,
    ScenarioError,
    clip,
    format_path,
    show_choices,
    show_text,
    show_value,
)
from .yaml_source import Path_, Position, find_positions

# Error types whose expectation is best said from the field's type and constraints.
_TYPE_ERRORS = frozenset(
    {
        "bool_parsing",
        "bool_type",
        "dict_type",
        "enum",
        "finite_number",
        "float_parsing",
        "float_type",
        "greater_than",
        "greater_than_equal",
        "int_from_float",
        "int_parsing",
        "int_parsing_size",
        "int_type",
        "less_than",
        "less_than_equal",
        "list_type",
        "literal_error",
        "missing",
        "model_attributes_type",
        "model_type",
        "multiple_of",
        "none_required",
        "set_type",
        "string_too_long",
        "string_too_short",
        "string_type",
        "too_long",
        "too_short",
        "tuple_type",
    }
)
# Error types that say the value is not of the expected kind at all.
_KIND_ERRORS = frozenset(
    {
        "bool_parsing",
        "bool_type",
        "dict_type",
        "enum",
        "float_parsing",
        "float_type",
        "int_parsing",
        "int_type",
        "is_instance_of",
        "list_type",
        "literal_error",
        "model_attributes_type",
        "model_type",
        "none_required",
        "set_type",
        "string_type",
        "tuple_type",
    }
)
_CONVERTERS = (BeforeValidator, PlainValidator, WrapValidator)
# Error types where an unquoted scalar that YAML read as something else is the likely cause.
_TEXT_ERRORS = frozenset({"string_type", "literal_error", "enum"})
_MESSAGE_PREFIXES = ("Input should be ", "Value error, ", "Assertion failed, ")
_KEY = "[key]"  # pydantic's marker for an error in a mapping key


@dataclass(frozen=True, slots=True)
class Located:
    """Errors for one place in the file, merged (a union reports once per member)."""

    path: Path_
    missing: PathSegment | None
    """The absent key, for a missing field."""
    at_key: bool
    """Point at the key rather than the value (unknown field, bad key)."""
    errors: list[ErrorDetails]


def validation_problems(
    exc: ValidationError,
    model: type[BaseModel],
    data: Any,
    text: str,
    file: str,
) -> ScenarioError:
    """One ScenarioError for all of ``exc``'s errors, in file order."""
    located = locate_errors(exc, data)
    parsed = find_positions(text, file, {item.path for item in located})
    log = ProblemLog(file)
    add_problems(
        log,
        located,
        model,
        data,
        lambda path: parsed.positions.get(path, parsed.root_position),
    )
    return log.error()


def locate_errors(exc: ValidationError, data: Any) -> list[Located]:
    """``exc``'s errors grouped by the place in ``data`` (key paths) each is about."""
    groups: dict[tuple[Path_, Any, bool], Located] = {}
    for error in exc.errors(include_url=False):
        path, missing, at_key = _data_path(data, error)
        group = groups.get((path, missing, at_key))
        if group is None:
            groups[(path, missing, at_key)] = Located(path, missing, at_key, [error])
        else:
            group.errors.append(error)
    _drop_other_members(groups)
    return list(groups.values())


def add_problems(
    log: ProblemLog,
    located: list[Located],
    model: type[BaseModel],
    data: Any,
    position_of: Callable[[Path_], Position],
    name_path: Callable[[Path_], str] = format_path,
) -> None:
    """Adds to ``log`` one problem per place, in file order, each where
    ``position_of`` says its path was written and named by ``name_path``."""

    def place(item: Located) -> tuple[int, int]:
        position = position_of(item.path)
        if item.at_key and position.key_line is not None and position.key_column is not None:
            return position.key_line, position.key_column
        return position.line, position.column

    ordered = sorted(located, key=place)
    for located_at in ordered[:MAX_PROBLEMS]:
        line, column = place(located_at)
        position = position_of(located_at.path)
        shown: Path_ = located_at.path
        if located_at.missing is not None:
            shown = (*shown, located_at.missing)
        try:
            expected, found = _describe(located_at, model, data, position)
        except (LookupError, TypeError, ValueError, AttributeError):
            # A model shape the descriptions do not know: pydantic's own words.
            error = located_at.errors[0]
            expected = clip(error["msg"], 2 * MAX_ECHO)
            found = show_value(error.get("input"))
        log.add(line, column, name_path(shown), expected, found)
    log.omitted += max(0, len(ordered) - MAX_PROBLEMS)


def _drop_other_members(groups: dict[tuple[Path_, Any, bool], Located]) -> None:
    """Drops "not this kind of value" where the value has problems inside it.

    pydantic reports every member of a union that a value failed: for
    ``nodes: [{nme: a}]`` against ``int | list[Node]`` both "expected an integer,
    got a list" and the unknown key inside. A value of the wrong kind has nothing
    checked inside it, so problems inside mean some member took it: the others'
    complaints about its kind are noise.
    """
    inside: set[Path_] = set()
    for located in groups.values():
        path = located.path
        inside.update(path[:depth] for depth in range(len(path)))
        if located.missing is not None:
            inside.add(path)
    for key, located in list(groups.items()):
        if located.missing is not None or located.at_key or located.path not in inside:
            continue
        if all(error["type"] in _KIND_ERRORS for error in located.errors):
            del groups[key]


def _data_path(data: Any, error: ErrorDetails) -> tuple[Path_, PathSegment | None, bool]:
    """The key path in ``data`` that ``error`` is about, the missing key, and key-or-value."""
    loc = error["loc"]
    kind = error["type"]
    if kind == "missing":
        loc = loc[:-1]
    path: list[PathSegment] = []
    node = data
    at_key = kind == "extra_forbidden"
    for segment in loc:
        if segment == _KEY:
            at_key = True
        elif isinstance(node, dict):
            key = _find_key(node, segment, kind == "invalid_key")
            if key is not _ABSENT:
                path.append(key)
                node = node[key]
        elif isinstance(node, list) and type(segment) is int and 0 <= segment < len(node):
            path.append(segment)
            node = node[segment]
        # Anything else names a union member: it is not in the file.
    if kind == "missing":
        return tuple(path), error["loc"][-1], False
    if kind == "union_tag_not_found":
        return tuple(path), _discriminator(error), False
    if kind == "invalid_key":
        at_key = True
    if kind == "union_tag_invalid" and isinstance(node, dict):
        name = _discriminator(error)
        if name in node:
            path.append(name)
    return tuple(path), None, at_key


_ABSENT: Any = object()


def _find_key(mapping: dict[Any, Any], segment: str | int, loose: bool) -> Any:
    """The key of ``mapping`` that pydantic's ``segment`` names, or ``_ABSENT``."""
    if not loose:
        return segment if segment in mapping else _ABSENT
    # A key that is not a string: pydantic names true as 1 and null as 'None'.
    for key in mapping:
        if key == segment or str(key) == str(segment):
            return key
    return _ABSENT


def _discriminator(error: ErrorDetails) -> str:
    name = str(error.get("ctx", {}).get("discriminator", "?"))
    return name[1:-1] if len(name) >= 2 and name[0] == name[-1] == "'" else name


def _value_at(data: Any, path: Path_) -> Any:
    for segment in path:
        data = data[segment]
    return data


def _describe(
    located: Located, model: type[BaseModel], data: Any, position: Position
) -> tuple[str, str]:
    """What was expected and what was found, for one place."""
    first = located.errors[0]
    kind = first["type"]
    value = _value_at(data, located.path)
    if kind == "extra_forbidden":
        return _unknown_field(model, first["loc"][:-1], located.path[-1])
    if kind == "invalid_key":
        return "a text key (quote it)", show_value(located.path[-1])
    if kind == "missing":
        target = _target(model, first["loc"])
        described = _describe_type(*target) if target else None
        expected = f"{described} (required)" if described else "a value for this required field"
        return expected, f"a mapping without {show_value(located.missing)}"
    if kind in ("value_error", "assertion_error") and _is_model_check(model, first["loc"]):
        # A check across the fields of a mapping: its message is the whole story.
        message = first["msg"]
        for prefix in _MESSAGE_PREFIXES:
            message = message.removeprefix(prefix)
        return clip(message, 3 * MAX_ECHO), ""
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = _tags(model, first["loc"], _discriminator(first))
        expected = _one_of([show_value(tag) for tag in tags]) if tags else "a known kind"
        if kind == "union_tag_not_found":
            return f"{expected} (required)", f"a mapping without {show_value(located.missing)}"
        close = difflib.get_close_matches(str(value), [str(tag) for tag in tags], n=1)
        if close:
            expected += f" (did you mean {show_text(close[0])}?)"
        return expected, show_value(value)
    expectations: list[str] = []
    if len(located.errors) > 1 and all(e["type"] in _KIND_ERRORS for e in located.errors):
        # Each member of a union said "not my kind": say what the union takes.
        target = _target(model, _common_prefix([error["loc"] for error in located.errors]))
        described = _describe_type(*target) if target else None
        if described:
            expectations.append(described)
    for error in located.errors if not expectations else ():
        expected = _expected(model, error)
        if expected not in expectations:
            expectations.append(expected)
    found = show_value(value)
    misread = any(error["type"] in _TEXT_ERRORS for error in located.errors)
    if misread and position.plain is not None and not isinstance(value, str):
        found += (
            f" (YAML reads {show_text(position.plain)} unquoted as"
            f" {_yaml_kind(value)}: quote it to keep the text)"
        )
    return clip(" or ".join(expectations), 3 * MAX_ECHO), found


def _is_model_check(model: type[BaseModel], loc: Sequence[Any]) -> bool:
    """Whether an error at ``loc`` comes from a model's own validator."""
    target = _target(model, loc)
    return target is not None and _is_model(target[0])


def _common_prefix(locs: list[tuple[int | str, ...]]) -> tuple[int | str, ...]:
    prefix = locs[0]
    for loc in locs[1:]:
        same = 0
        while same < min(len(prefix), len(loc)) and prefix[same] == loc[same]:
            same += 1
        prefix = prefix[:same]
    return prefix


def _yaml_kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "a date"


def _expected(model: type[BaseModel], error: ErrorDetails) -> str:
    kind = error["type"]
    if kind in _TYPE_ERRORS:
        target = _target(model, error["loc"])
        described = _describe_type(*target) if target else None
        if described:
            return described
    if kind == "string_pattern_mismatch":
        return f"a string matching {clip(str(error.get('ctx', {}).get('pattern', '?')))}"
    message = error["msg"]
    for prefix in _MESSAGE_PREFIXES:
        message = message.removeprefix(prefix)
    # A validator may word its message as "expected ..." itself.
    message = message.removeprefix("expected ").removeprefix("Expected ")
    return clip(message, 2 * MAX_ECHO)


def _unknown_field(model: type[BaseModel], loc: Sequence[Any], key: Any) -> tuple[str, str]:
    found = "an unknown field"
    target = _target(model, loc)
    if target is None or not _is_model(target[0]):
        return "a known field", found
    names = [_field_name(name, info) for name, info in target[0].model_fields.items()]
    close = difflib.get_close_matches(str(key), names, n=1)
    if close:
        return f"a known field (did you mean {show_text(close[0])}?)", found
    if len(names) == 1:
        return f"the field {show_text(names[0])}", found
    return f"one of the fields {show_choices([show_text(name) for name in names])}", found


def _tags(model: type[BaseModel], loc: Sequence[Any], discriminator: str) -> list[Any]:
    """The values the discriminator of the union at ``loc`` takes, in order."""
    target = _target(model, loc)
    if target is None or not _is_union(target[0]):
        return []
    tags: list[Any] = []
    for member in get_args(target[0]):
        member = _unwrap(member)[0]
        if _is_model(member):
            for name, info in member.model_fields.items():
                annotation = _unwrap(info)[0]
                if discriminator in (name, _field_name(name, info)) and _is_literal(annotation):
                    tags.extend(get_args(annotation))
    return tags


def _field_name(name: str, info: FieldInfo) -> str:
    if isinstance(info.validation_alias, str):
        return info.validation_alias
    return info.alias or name


# --- the model's types, followed along pydantic's location ------------------------

_Target = tuple[Any, list[Any]]
"""A type and the constraints (annotated_types metadata) attached to it."""


def _target(model: type[BaseModel], loc: Iterable[Any]) -> _Target | None:
    """The type ``loc`` reaches inside ``model``, or None where it cannot be followed."""
    target = _unwrap(model)
    for segment in loc:
        if segment == _KEY:
            return None
        step = _step(target[0], segment)
        if step is None:
            return None
        target = _unwrap(step)
    return target


def _unwrap(tp: Any) -> _Target:
    """Strips Annotated, FieldInfo and Optional, collecting constraints."""
    metadata: list[Any] = []
    while True:
        if isinstance(tp, FieldInfo):
            metadata.extend(tp.metadata)
            tp = tp.annotation
        elif get_origin(tp) is Annotated:
            base, *extras = get_args(tp)
            for extra in extras:
                metadata.extend(extra.metadata if isinstance(extra, FieldInfo) else [extra])
            tp = base
        elif _is_union(tp) and type(None) in get_args(tp) and len(get_args(tp)) == 2:
            tp = next(arg for arg in get_args(tp) if arg is not type(None))
        else:
            return tp, metadata


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _is_literal(tp: Any) -> bool:
    return bool(get_origin(tp) is Literal)


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _step(tp: Any, segment: Any) -> Any:
    """The type one location segment further in, or None."""
    if _is_model(tp):
        for name, info in tp.model_fields.items():
            if segment in (name, _field_name(name, info)):
                return info
        return None
    if _is_union(tp):
        members = get_args(tp)
        named = _member_named(members, segment)
        if named is not None:
            return named
        for member in members:
            step = _step(_unwrap(member)[0], segment)
            if step is not None:
                return step
        return None
    origin = get_origin(tp)
    args = get_args(tp)
    if isinstance(origin, type) and issubclass(origin, Mapping) and len(args) == 2:
        return args[1]
    is_sequence = isinstance(origin, type) and issubclass(origin, Sequence | set | frozenset)
    if is_sequence and args and isinstance(segment, int):
        if origin is tuple and args[-1] is not Ellipsis:
            return args[segment] if segment < len(args) else None
        return args[0]
    return None


def _member_named(members: Sequence[Any], segment: Any) -> Any:
    """The union member that pydantic's ``segment`` names, or None.

    pydantic names a member by its class (``Connect``, ``int``), its shape
    (``list[Node]``, ``literal['a']``, ``constrained-int``, ``function-before[f(), float]``)
    or, in a discriminated union, by its tag.
    """
    if not isinstance(segment, str):
        return None
    for member in members:
        if _has_tag(_unwrap(member)[0], segment):
            return member
    name = segment
    if name.startswith("function-") and name.endswith("]"):
        name = name[:-1].rsplit(", ", 1)[-1]
    constrained = name.startswith("constrained-")
    name = name.removeprefix("constrained-")
    head = name.split("[", 1)[0].lower()
    for member in members:
        tp, metadata = _unwrap(member)
        if constrained and not metadata:
            continue
        origin = get_origin(tp)
        if name == getattr(tp, "__name__", None) and origin is None:
            return member
        if (
            (head == "literal" and _is_literal(tp))
            or (head == "enum" and isinstance(tp, type) and issubclass(tp, enum.Enum))
            or (isinstance(origin, type) and origin.__name__ == head)
        ):
            return member
    return None


def _has_tag(member: Any, segment: Any) -> bool:
    """Whether ``segment`` is a discriminator value of the model ``member``."""
    if not _is_model(member):
        return False
    for info in member.model_fields.values():
        annotation = _unwrap(info)[0]
        if _is_literal(annotation) and segment in get_args(annotation):
            return True
    return False


def _describe_type(tp: Any, metadata: list[Any]) -> str | None:
    """What a value of ``tp`` looks like in YAML, or None for types without a short name."""
    if any(isinstance(item, _CONVERTERS) for item in metadata):
        # A validator turns what is written into tp ("5s" into microseconds): tp
        # says nothing of what to write.
        return None
    choices = _choices(tp)
    if choices is not None:
        return _one_of(choices)
    if _is_union(tp):
        # Choices from several members (an enum or 'held') read as one list.
        members = [_unwrap(member) for member in get_args(tp)]
        listed = [choice for member in members for choice in _choices(member[0]) or []]
        parts: list[str | None] = [_one_of(listed)] if listed else []
        parts += [_describe_type(*member) for member in members if _choices(member[0]) is None]
        if any(part is None for part in parts):
            return None
        return " or ".join(dict.fromkeys(part for part in parts if part))
    base = _BASE_NAMES.get(tp)
    origin = get_origin(tp)
    if base is None and isinstance(origin, type):
        if issubclass(origin, Mapping):
            base = "a mapping"
        elif issubclass(origin, Sequence | set | frozenset):
            base = "a list"
    if base is None and _is_model(tp):
        base = "a mapping"
    if base is None:
        return None
    return base + _constraints(metadata, "character" if tp is str else "item")


def _choices(tp: Any) -> list[str] | None:
    """The values a Literal or an Enum allows, as shown to users; None for other types."""
    if _is_literal(tp):
        return [show_value(arg) for arg in get_args(tp)]
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [show_value(member.value) for member in tp]
    return None


_BASE_NAMES: dict[Any, str] = {
    bool: "true or false",
    int: "an integer",
    float: "a number",
    str: "a string",
    type(None): "null",
    list: "a list",
    dict: "a mapping",
}


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"


def _one_of(choices: list[str]) -> str:
    return choices[0] if len(choices) == 1 else f"one of {show_choices(choices)}"


def _constraints(metadata: list[Any], unit: str) -> str:
    bounds: list[str] = []
    for item in metadata:
        if isinstance(item, annotated_types.Gt):
            bounds.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Ge):
            bounds.append(f">= {item.ge}")
        elif isinstance(item, annotated_types.Lt):
            bounds.append(f"< {item.lt}")
        elif isinstance(item, annotated_types.Le):
            bounds.append(f"<= {item.le}")
        elif isinstance(item, annotated_types.MultipleOf):
            bounds.append(f"a multiple of {item.multiple_of}")
        elif isinstance(item, annotated_types.MinLen):
            bounds.append(f"of at least {_count(item.min_length, unit)}")
        elif isinstance(item, annotated_types.MaxLen):
            bounds.append(f"of at most {_count(item.max_length, unit)}")
    if not bounds:
        return ""
    return " " + " and ".join(bounds)


# The walk along a model's types, for callers that follow a path of their own
# (`ipvslab sweep` resolves dotted field paths with it).
unwrap_type = _unwrap
step_type = _step
