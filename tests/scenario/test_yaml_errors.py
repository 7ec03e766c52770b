"""What YAML itself gets wrong, and files that cannot be read, each with its place."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from ipvslab.scenario import ScenarioError, load_model, load_model_text, yaml_source

from .conftest import VALID, edit, only_problem, problems_of, where
from .models import Scenario


def test_a_tab_pasted_from_a_ticket_is_a_syntax_error_on_its_line() -> None:
    problem = only_problem(edit(VALID, "    port: 80\n", "\tport: 80\n"))
    assert (problem.line, problem.column, problem.path) == (14, 1, "")
    assert problem.expected == "valid YAML"
    assert problem.found.startswith("found a tab character that violates indentation")


def test_a_colon_inside_an_unquoted_value_is_a_syntax_error_where_it_is() -> None:
    problem = only_problem(edit(VALID, "    node: node-b\n", "    node: zone: b\n"))
    # The second ": " on line 27, after "    node: zone".
    assert (problem.line, problem.column) == (27, 15)
    assert problem.found == "mapping values are not allowed in this context"


def test_an_unclosed_list_names_where_it_was_opened() -> None:
    text = edit(
        VALID, "web-7d9f-klmno]\n  - name: web-metrics", "web-7d9f-klmno\n  - name: web-metrics"
    )
    problem = problems_of(text)[0]
    assert problem.expected == "valid YAML"
    assert "while parsing a flow sequence at line 16" in problem.found


def test_a_key_given_twice_is_refused_at_the_second() -> None:
    problem = only_problem(edit(VALID, "    port: 80\n", "    port: 80\n    port: 8080\n"))
    assert where(problem) == (15, 5, "services[0].port")
    assert problem.expected == "each key once in a mapping"
    assert problem.found == "it again (first at line 14)"


def test_a_top_level_section_given_twice_is_refused() -> None:
    text = VALID + "clients:\n  - {name: extra, node: node-b, rate: 1, service: web}\n"
    problem = only_problem(text)
    assert where(problem) == (37, 1, "clients")
    assert problem.found == "it again (first at line 21)"


PODS = "[web-7d9f-abcde, web-7d9f-fghij, web-7d9f-klmno]"


def test_anchors_and_aliases_are_refused_where_written() -> None:
    # web keeps the pod list under an anchor, web-metrics refers to it.
    text = VALID.replace(f"    endpoints: {PODS}\n", f"    endpoints: &pods {PODS}\n", 1)
    text = text.replace(f"    endpoints: {PODS}\n", "    endpoints: *pods\n", 1)
    anchor, alias = problems_of(text)
    assert where(anchor) == (16, 16, "services[0].endpoints")
    assert anchor.found == "the anchor &pods"
    assert where(alias) == (20, 16, "services[1].endpoints")
    assert alias.found == "the alias *pods"
    assert "anchors and aliases are not supported" in alias.expected


def test_an_alias_bomb_is_refused_quickly_without_expanding() -> None:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    text = "\n".join(lines) + "\n"  # 10**10 strings once expanded
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ScenarioError) as caught:
            load_model_text(text, "bomb.yaml", Scenario)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5  # expanded, it would never finish
    assert peak < 5_000_000
    assert len(caught.value.problems) == 20
    assert caught.value.omitted == 10 + 90 - 20
    assert caught.value.problems[0].found == "the anchor &a0"


def test_a_merge_key_is_refused() -> None:
    text = edit(VALID, "  - name: node-b\n", "  - <<: {kernel: 5.10.0}\n    name: node-b\n")
    problem = only_problem(text)
    assert (problem.line, problem.column, problem.path) == (10, 5, "nodes[1]")
    assert problem.found == "the merge key <<"


@pytest.mark.parametrize(
    ("value", "column", "found"),
    [
        (
            "!!python/object/apply:os.system [echo hi]",
            11,
            "the tag !!python/object/apply:os.system",
        ),
        ("!!set {a, b}", 11, "the tag !!set"),
        ("!Ref loadgen", 11, "the tag !Ref"),
    ],
)
def test_tags_that_build_objects_are_refused(value: str, column: int, found: str) -> None:
    problem = only_problem(edit(VALID, "    node: node-b\n", f"    node: {value}\n"))
    assert where(problem) == (27, column, "clients[1].node")
    assert problem.found == found


def test_yaml_own_string_tag_is_accepted() -> None:
    scenario = load_model_text(
        edit(VALID, "    node: node-b\n", "    node: !!str 42\n"), "s", Scenario
    )
    assert scenario.clients[1].node == "42"


def test_a_second_document_is_refused_at_its_marker() -> None:
    problem = only_problem(VALID + "---\nname: other\n")
    assert (problem.line, problem.column) == (37, 1)
    assert (problem.expected, problem.found) == ("one YAML document", "a second document")


@pytest.mark.parametrize("text", ["", "\n\n", "   \n", "# scenario to be written\n# later\n"])
def test_an_empty_file_says_so(text: str) -> None:
    problem = only_problem(text)
    assert (problem.line, problem.column) == (1, 1)
    assert (problem.expected, problem.found) == (
        "a mapping of fields at the top level",
        "an empty file",
    )


@pytest.mark.parametrize(
    ("text", "line", "column", "found"),
    [
        ("- name: web\n  port: 80\n", 1, 1, "a list"),
        ("# pasted\n\n  web-rollout\n", 3, 3, "'web-rollout'"),
        ("~\n", 1, 1, "null"),
        ("80\n", 1, 1, "80"),
    ],
)
def test_a_top_level_that_is_not_a_mapping(text: str, line: int, column: int, found: str) -> None:
    problem = only_problem(text)
    assert (problem.line, problem.column, problem.path) == (line, column, "")
    assert problem.expected == "a mapping of fields at the top level"
    assert problem.found == found


def test_an_impossible_date_is_refused_with_advice_to_quote_it() -> None:
    problem = only_problem(edit(VALID, "name: web-rollout-euleros\n", "name: 2026-13-45\n"))
    assert where(problem) == (2, 7, "name")
    assert problem.expected == "a real date or time (quote it to keep it as text)"
    assert problem.found == "'2026-13-45'"


def test_an_integer_too_long_to_read_is_refused() -> None:
    problem = only_problem(edit(VALID, "    port: 80\n", f"    port: {'9' * 5000}\n"))
    assert where(problem) == (14, 11, "services[0].port")
    assert problem.expected == "an integer of at most 4300 digits"
    assert problem.found.endswith("…'") and len(problem.found) <= 62


def test_a_mapping_used_as_a_key_is_refused() -> None:
    problem = only_problem(edit(VALID, "steps:\n", "? [a, b]\n: 1\nsteps:\n"))
    assert (problem.line, problem.column, problem.path) == (30, 3, "")
    assert problem.found == "a list as a key"


def test_nesting_beyond_a_hundred_levels_is_refused() -> None:
    problem = only_problem("name: " + "[" * 150 + "]" * 150 + "\n")
    # The top-level mapping is the first level: the 100th "[" opens the 101st.
    assert (problem.line, problem.column) == (1, len("name: ") + 100)
    assert problem.expected == "at most 100 levels of nesting"


def test_a_control_character_is_refused_at_its_place() -> None:
    problem = only_problem(edit(VALID, "name: web-rollout", "name: web\x07rollout"))
    assert (problem.line, problem.column) == (2, 10)
    assert problem.found == "the character '\\x07'"


# --- files -----------------------------------------------------------------------


def test_a_file_loads_like_its_text(tmp_path: Path) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_text(VALID, encoding="utf-8")
    assert load_model(path, Scenario) == load_model_text(VALID, "x", Scenario)


def test_problems_name_the_file_as_given(tmp_path: Path) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_text(edit(VALID, "    rate: 12.5\n", "    rate: fast\n"), encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_model(path, Scenario)
    assert str(caught.value).startswith(f"{path}:28:11: clients[1].rate:")


def test_windows_line_endings_and_a_byte_order_mark_keep_lines_and_columns(tmp_path: Path) -> None:
    path = tmp_path / "rollout.yaml"
    text = edit(VALID, "    rate: 12.5\n", "    rate: fast\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode())
    with pytest.raises(ScenarioError) as caught:
        load_model(path, Scenario)
    assert [(p.line, p.column) for p in caught.value.problems] == [(28, 11)]


def test_a_latin1_file_is_refused_at_the_first_byte_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "rollout.yaml"
    text = edit(VALID, "# Ticket:", "# Ticket (équipe réseau):")
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(ScenarioError) as caught:
        load_model(path, Scenario)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (1, len("# Ticket (") + 1)
    assert (problem.expected, problem.found) == ("UTF-8 text", "the byte 0xE9")


def test_a_byte_order_mark_takes_no_column(tmp_path: Path) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_bytes(b"\xef\xbb\xbfname: caf\xc3\xa9 cr\xe8me\n")
    with pytest.raises(ScenarioError) as caught:
        load_model(path, Scenario)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (1, len("name: café cr") + 1)


def test_a_utf16_file_is_refused_at_its_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_bytes(VALID.encode("utf-16"))
    with pytest.raises(ScenarioError) as caught:
        load_model(path, Scenario)
    (problem,) = caught.value.problems
    assert (problem.line, problem.column, problem.found) == (1, 1, "the byte 0xFF")


def test_text_with_an_unpaired_surrogate_is_refused() -> None:
    # What stdin decoded with surrogateescape gives for a Latin-1 byte.
    problem = only_problem("name: caf\udce9\n")
    assert (problem.line, problem.column, problem.expected) == (1, 10, "UTF-8 text")


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_model(tmp_path / "nope.yaml", Scenario)
    assert (
        str(caught.value) == f"{tmp_path / 'nope.yaml'}: expected a scenario file, got no such file"
    )


def test_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_model(tmp_path, Scenario)
    assert str(caught.value) == f"{tmp_path}: expected a scenario file, got a directory"


def test_an_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "rollout.yaml"
    path.write_text(VALID, encoding="utf-8")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # Tests run as root, where chmod does not stop reading.
    monkeypatch.setattr(yaml_source, "open", refuse, raising=False)
    with pytest.raises(ScenarioError) as caught:
        load_model(path, Scenario)
    assert str(caught.value) == f"{path}: expected a readable file, got permission denied"


def test_a_file_name_with_a_nul_character() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_model(Path("rollout\x00.yaml"), Scenario)
    assert str(caught.value) == (
        "rollout\x00.yaml: expected a file name without NUL characters, got one with them"
    )


def test_an_absurdly_long_file_name_is_shown_by_its_end() -> None:
    name = "rollout-" + "x" * 300 + ".yaml"  # over the 255 bytes a name may have
    with pytest.raises(ScenarioError) as caught:
        load_model(Path(name), Scenario)
    (problem,) = caught.value.problems
    assert problem.file == "…" + name[-239:]
    assert problem.found == "File name too long"


def test_a_file_over_4_mib_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as stream:
        stream.truncate(4 * 1024 * 1024 + 1)  # sparse: nothing is written
    tracemalloc.start()
    try:
        with pytest.raises(ScenarioError) as caught:
            load_model(path, Scenario)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000
    assert str(caught.value) == (
        f"{path}: expected a file of at most 4 MiB (4,194,304 bytes), got 4,194,305 bytes"
    )


def test_an_endless_device_is_refused_after_4_mib() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_model(Path("/dev/zero"), Scenario)
    assert str(caught.value) == (
        "/dev/zero: expected a file of at most 4 MiB (4,194,304 bytes), got more"
    )


def test_text_over_4_mib_is_refused_before_parsing() -> None:
    text = "name: " + "x" * (4 * 1024 * 1024)
    with pytest.raises(ScenarioError) as caught:
        load_model_text(text, "<stdin>", Scenario)
    assert str(caught.value) == (
        "<stdin>: expected a file of at most 4 MiB (4,194,304 bytes), got 4,194,310 characters"
    )
