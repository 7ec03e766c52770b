"""Validation errors point at the line, column and field the user has to fix."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from ipvslab.scenario import ScenarioError, format_problems, load_model_text

from .conftest import VALID, edit, only_problem, problems_of, where
from .models import Scenario


def column_of(text: str, line: int, needle: str) -> int:
    """1-based column of ``needle`` on 1-based ``line`` of ``text``."""
    return text.splitlines()[line - 1].index(needle) + 1


def test_the_valid_scenario_loads_with_every_value_as_written() -> None:
    scenario = load_model_text(VALID, "scenario.yaml", Scenario)
    assert scenario.kube_proxy == "v1.17.4"
    assert scenario.nodes[0].kernel == "4.19.36-vhulk1907.1.0.h962.eulerosv2r8.aarch64"
    assert scenario.nodes[0].sysctls == {
        "net.ipv4.vs.conn_reuse_mode": 0,
        "net.ipv4.vs.expire_nodest_conn": 1,
    }
    # Both Services keep the same three pods: shared real servers.
    assert scenario.services[0].endpoints == scenario.services[1].endpoints
    assert scenario.services[1].affinity_seconds == 10800
    assert [client.rate for client in scenario.clients] == [3000.0, 12.5]
    assert scenario.steps[0].kind == "add-server"
    assert scenario.steps[1].kind == "connect"
    assert scenario.steps[1].port == 40001


def test_a_word_where_a_rate_belongs_is_reported_as_in_the_issue() -> None:
    text = edit(VALID, "    rate: 12.5\n", "    rate: fast\n")
    problems = problems_of(text)
    assert [str(problem) for problem in problems] == [
        "scenario.yaml:28:11: clients[1].rate: expected a number >= 0, got 'fast'"
    ]


def test_a_negative_rate_names_the_bound() -> None:
    problem = only_problem(edit(VALID, "    rate: 12.5\n", "    rate: -1\n"))
    assert where(problem) == (28, 11, "clients[1].rate")
    assert (problem.expected, problem.found) == ("a number >= 0", "-1")


def test_a_missing_field_points_at_the_mapping_that_lacks_it() -> None:
    problem = only_problem(edit(VALID, "    node: node-b\n", ""))
    # clients[1] starts at "name: loadgen-b", line 26 column 5.
    assert where(problem) == (26, 5, "clients[1].node")
    assert problem.expected == "a string (required)"
    assert problem.found == "a mapping without 'node'"


def test_a_misspelt_field_points_at_the_key_and_suggests_the_known_name() -> None:
    problem = only_problem(edit(VALID, "    sysctls:\n", "    sysctl:\n"))
    assert where(problem) == (7, 5, "nodes[0].sysctl")
    assert problem.expected == "a known field (did you mean 'sysctls'?)"
    assert problem.found == "an unknown field"


def test_an_underscore_for_a_hyphen_suggests_the_hyphenated_name() -> None:
    problems = problems_of(edit(VALID, "kube-proxy: v1", "kube_proxy: v1"))
    assert [where(problem) for problem in problems] == [
        # The top-level mapping starts on line 2, after the pasted ticket's comment.
        (2, 1, "kube-proxy"),
        (3, 1, "kube_proxy"),
    ]
    assert problems[1].expected == "a known field (did you mean 'kube-proxy'?)"


def test_an_unknown_field_far_from_any_name_lists_the_fields() -> None:
    problem = only_problem(edit(VALID, "    port: 9100\n", "    port: 9100\n    zzz: 1\n"))
    assert where(problem) == (19, 5, "services[1].zzz")
    assert problem.expected == (
        "one of the fields 'name', 'port', 'protocol', 'scheduler', 'affinity_seconds'"
        " or 'endpoints'"
    )


def test_a_port_out_of_range_in_a_flow_mapping_gets_its_own_column() -> None:
    text = edit(VALID, "weight: 0}", "weight: 70000}")
    problem = only_problem(text)
    assert where(problem) == (31, column_of(text, 31, "70000"), "steps[0].weight")
    assert problem.expected == "an integer >= 0 and <= 65535"
    assert problem.found == "70000"


def test_a_list_where_a_port_belongs() -> None:
    problem = only_problem(edit(VALID, "    port: 40001\n", "    port: [40001]\n"))
    assert where(problem) == (35, 11, "steps[1].port")
    assert (problem.expected, problem.found) == ("an integer >= 1 and <= 65535", "a list")


def test_an_empty_list_of_endpoints_names_the_minimum() -> None:
    pods = "[web-7d9f-abcde, web-7d9f-fghij, web-7d9f-klmno]"
    text = edit(VALID, f"rr\n    endpoints: {pods}", "rr\n    endpoints: []")
    problem = only_problem(text)
    assert where(problem) == (16, 16, "services[0].endpoints")
    assert (problem.expected, problem.found) == ("a list of at least 1 item", "an empty list")


def test_a_misspelt_step_kind_suggests_the_kind() -> None:
    problem = only_problem(edit(VALID, "  - kind: connect\n", "  - kind: conect\n"))
    assert where(problem) == (32, 11, "steps[1].kind")
    assert problem.expected == "one of 'add-server' or 'connect' (did you mean 'connect'?)"
    assert problem.found == "'conect'"


def test_a_step_without_a_kind_lists_the_kinds() -> None:
    text = edit(VALID, "  - {kind: add-server, at: 0,", "  - {at: 0,")
    problem = only_problem(text)
    assert where(problem) == (31, 5, "steps[0].kind")
    assert problem.expected == "one of 'add-server' or 'connect' (required)"


def test_an_unquoted_no_read_as_false_says_to_quote_it() -> None:
    problem = only_problem(edit(VALID, "    close: client-first\n", "    close: no\n"))
    assert where(problem) == (36, 12, "steps[1].close")
    assert problem.expected == "one of 'server-first', 'client-first', 'client-rst' or 'held'"
    assert problem.found == (
        "false (YAML reads 'no' unquoted as a boolean: quote it to keep the text)"
    )


def test_a_quoted_word_gets_no_advice_to_quote_it() -> None:
    problem = only_problem(edit(VALID, "    close: client-first\n", "    close: 'never'\n"))
    assert problem.found == "'never'"


def test_a_sysctl_key_with_dots_is_shown_quoted_in_the_path() -> None:
    text = edit(VALID, "net.ipv4.vs.conn_reuse_mode: 0", "net.ipv4.vs.conn_reuse_mode: maybe")
    problem = only_problem(text)
    assert where(problem) == (
        8,
        column_of(text, 8, "maybe"),
        "nodes[0].sysctls['net.ipv4.vs.conn_reuse_mode']",
    )
    assert problem.expected == "an integer"


def test_an_optional_bounded_field_names_its_bounds() -> None:
    problem = only_problem(edit(VALID, "affinity_seconds: 10800", "affinity_seconds: forever"))
    assert where(problem) == (19, 23, "services[1].affinity_seconds")
    assert problem.expected == "an integer >= 0 and <= 86400"


def test_problems_come_in_file_order_not_in_field_order() -> None:
    # services is written before nodes here, while the model declares nodes first.
    text = edit(VALID, "    port: 80\n", "    port: 0\n")
    nodes, rest = text.split("services:\n", 1)
    head, node_list = nodes.split("nodes:\n", 1)
    services, tail = rest.split("clients:\n", 1)
    reordered = head + "services:\n" + services + "nodes:\n" + node_list + "clients:\n" + tail
    reordered = edit(reordered, "    kernel: 5.10", "    kernel: [5.10]\n    x: 5.10")
    problems = problems_of(reordered)
    lines = [problem.line for problem in problems]
    assert lines == sorted(lines)
    assert [problem.path for problem in problems] == [
        "services[0].port",
        "nodes[1].kernel",
        "nodes[1].x",
    ]


class _Upstream(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: int | str
    weights: list[Annotated[int, Field(ge=0)]] = []


def test_a_value_matching_no_member_of_a_union_is_one_problem() -> None:
    problem = only_problem("target: [1, 2]\n", _Upstream)
    assert where(problem) == (1, 9, "target")
    assert (problem.expected, problem.found) == ("an integer or a string", "a list")


def test_a_bad_list_item_is_pointed_at_by_index() -> None:
    problem = only_problem("target: web\nweights: [1, 0, -3]\n", _Upstream)
    assert where(problem) == (2, 17, "weights[2]")
    assert (problem.expected, problem.found) == ("an integer >= 0", "-3")


class _NodeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    kernel: str = "5.15.0-91-generic"


class _Cluster(BaseModel):
    model_config = ConfigDict(extra="forbid")
    nodes: int | list[_NodeSpec] = 1  # a count, or the nodes one by one


def test_a_count_or_a_list_names_both_when_neither_fits() -> None:
    problem = only_problem("nodes: three\n", _Cluster)
    assert where(problem) == (1, 8, "nodes")
    assert (problem.expected, problem.found) == ("an integer or a list", "'three'")


def test_a_list_with_a_bad_entry_is_not_also_told_it_is_not_a_count() -> None:
    problems = problems_of("nodes:\n  - name: node-a\n  - nme: node-b\n", _Cluster)
    assert [(where(problem), problem.expected) for problem in problems] == [
        ((3, 5, "nodes[1].name"), "a string (required)"),
        ((3, 5, "nodes[1].nme"), "a known field (did you mean 'name'?)"),
    ]


class _Close(StrEnum):
    SERVER_FIRST = "server-first"
    CLIENT_FIRST = "client-first"


class _ScriptedConnect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    close: _Close | Literal["held"] = _Close.SERVER_FIRST


def test_choices_from_an_enum_and_a_literal_read_as_one_list() -> None:
    problem = only_problem("close: hold\n", _ScriptedConnect)
    assert where(problem) == (1, 8, "close")
    assert problem.expected == "one of 'server-first', 'client-first' or 'held'"


def test_an_enum_value_read_as_a_boolean_says_to_quote_it() -> None:
    problem = only_problem("close: off\n", _ScriptedConnect)
    assert problem.found == (
        "false (YAML reads 'off' unquoted as a boolean: quote it to keep the text)"
    )


def _seconds(value: object) -> float:
    if isinstance(value, str) and value.endswith("s") and value[:-1].isdigit():
        return float(value[:-1])
    raise ValueError("expected a duration like 10s")


class _Timeouts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tcp: Annotated[float, BeforeValidator(_seconds)]


def test_a_validator_message_worded_as_an_expectation_reads_once() -> None:
    problem = only_problem("tcp: 15 min\n", _Timeouts)
    assert str(problem) == "scenario.yaml:1:6: tcp: expected a duration like 10s, got '15 min'"


def test_a_list_where_a_validator_wants_a_duration_says_it_got_a_list() -> None:
    problem = only_problem("tcp: [15s]\n", _Timeouts)
    assert str(problem) == "scenario.yaml:1:6: tcp: expected a duration like 10s, got a list"


def test_a_missing_field_read_through_a_validator_does_not_name_the_stored_type() -> None:
    # tcp is held as a float, but what to write is a duration like 10s.
    problem = only_problem("{}\n", _Timeouts)
    assert where(problem) == (1, 1, "tcp")
    assert problem.expected == "a value for this required field"


class _Pool(BaseModel):
    model_config = ConfigDict(extra="forbid")
    services: list[str]
    default: str

    @model_validator(mode="after")
    def default_is_a_service(self) -> _Pool:
        if self.default not in self.services:
            raise ValueError(f"the default {self.default!r} is not one of the services")
        return self


def test_a_model_check_across_fields_points_at_the_top_mapping_in_its_own_words() -> None:
    problem = only_problem("\n# pool\nservices: [web, api]\ndefault: db\n", _Pool)
    assert str(problem) == "scenario.yaml:3:1: the default 'db' is not one of the services"


def test_a_key_yaml_reads_as_a_boolean_is_refused_with_advice() -> None:
    problem = only_problem("services: [web]\ndefault: web\non: 1\n", _Pool)
    assert (problem.line, problem.column) == (3, 1)
    assert (problem.expected, problem.found) == ("a text key (quote it)", "true")


@pytest.mark.parametrize(("count", "more"), [(21, "1 more problem"), (45, "25 more problems")])
def test_many_problems_list_twenty_then_say_how_many_more(count: int, more: str) -> None:
    clients = "".join(
        f"  - {{name: c{i}, node: node-a, rate: fast, service: web}}\n" for i in range(count)
    )
    text = edit(VALID, "clients:\n", "clients:\n" + clients)
    with pytest.raises(ScenarioError) as caught:
        load_model_text(text, "scenario.yaml", Scenario)
    lines = format_problems(caught.value).splitlines()
    assert len(lines) == 21
    # The first bad client is on the line after "clients:" (line 21).
    column = column_of(text, 22, "fast")
    assert (
        lines[0]
        == f"scenario.yaml:22:{column}: clients[0].rate: expected a number >= 0, got 'fast'"
    )
    assert lines[-1] == f"... and {more}"
    assert caught.value.omitted == count - 20
