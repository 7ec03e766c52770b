"""What a refusal looks like on a terminal: bounded, one problem a line."""

from __future__ import annotations

import pickle

import pytest

from ipvslab.scenario import Problem, ScenarioError, format_problems

from .conftest import VALID, edit, only_problem


def test_a_scenario_error_is_a_value_error_that_keeps_its_problems() -> None:
    problem = Problem("s.yaml", 3, 7, "name", "a string", "a list")
    err = ScenarioError([problem])
    assert isinstance(err, ValueError)
    assert str(err) == format_problems(err) == "s.yaml:3:7: name: expected a string, got a list"
    again = pickle.loads(pickle.dumps(err))
    assert (again.problems, again.omitted) == ((problem,), 0)


def test_a_problem_of_the_whole_file_has_no_line_or_field() -> None:
    problem = Problem("s.yaml", None, None, "", "a scenario file", "no such file")
    assert str(problem) == "s.yaml: expected a scenario file, got no such file"


def test_a_long_value_is_echoed_to_sixty_characters() -> None:
    pasted = "kube-proxy-" + "x" * 500
    problem = only_problem(edit(VALID, "    rate: 12.5\n", f"    rate: {pasted}\n"))
    assert problem.found == "'" + pasted[:59] + "…'"


def test_a_long_key_is_cut_in_the_path_and_a_deep_path_keeps_its_end() -> None:
    key = "s" * 100
    problem = only_problem(edit(VALID, "    sysctls:\n", f"    {key}:\n"))
    assert problem.path == "nodes[0]." + "s" * 59 + "…"
    # An alias 90 lists deep: name[0][0]...[0] is 271 characters.
    problem = only_problem("name: " + "[" * 90 + "*a" + "]" * 90 + "\n")
    assert problem.path == "…" + "0][0]" + "[0]" * 38
    assert len(problem.path) == 120


@pytest.mark.parametrize("count", [1, 2])
def test_problems_beyond_twenty_are_counted(count: int) -> None:
    problems = [Problem("s.yaml", n, 1, f"k{n}", "a", "b") for n in range(1, 21 + count)]
    err = ScenarioError(problems)
    lines = format_problems(err).splitlines()
    assert lines[:2] == ["s.yaml:1:1: k1: expected a, got b", "s.yaml:2:1: k2: expected a, got b"]
    assert len(lines) == 21
    assert lines[-1] == ("... and 1 more problem" if count == 1 else "... and 2 more problems")
