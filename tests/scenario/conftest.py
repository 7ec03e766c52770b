"""Helpers for the scenario loader's tests."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from ipvslab.scenario import Problem, ScenarioError, load_model_text

from .models import Scenario

# A rollout on two nodes of a cloud cluster: two Services share the same pods
# (web on 80, metrics on 9100), one busy client per node, a scripted step or two.
VALID = """\
# Ticket: "no route to host" during web rollouts on the EulerOS pool.
name: web-rollout-euleros
kube-proxy: v1.17.4
nodes:
  - name: node-a
    kernel: 4.19.36-vhulk1907.1.0.h962.eulerosv2r8.aarch64
    sysctls:
      net.ipv4.vs.conn_reuse_mode: 0
      net.ipv4.vs.expire_nodest_conn: 1
  - name: node-b
    kernel: 5.10.0-136.12.0.86.h1.eulerosv2r12.x86_64
services:
  - name: web
    port: 80
    scheduler: rr
    endpoints: [web-7d9f-abcde, web-7d9f-fghij, web-7d9f-klmno]
  - name: web-metrics
    port: 9100
    affinity_seconds: 10800
    endpoints: [web-7d9f-abcde, web-7d9f-fghij, web-7d9f-klmno]
clients:
  - name: loadgen-a
    node: node-a
    rate: 3000
    service: web
  - name: loadgen-b
    node: node-b
    rate: 12.5
    service: web-metrics
steps:
  - {kind: add-server, at: 0, service: web, server: web-7d9f-pqrst, weight: 0}
  - kind: connect
    at: 1.5
    client: loadgen-a
    port: 40001
    close: client-first
"""


def problems_of(text: str, model: type[BaseModel] = Scenario) -> list[Problem]:
    """The problems the loader reports for ``text`` (named scenario.yaml)."""
    with pytest.raises(ScenarioError) as caught:
        load_model_text(text, "scenario.yaml", model)
    return list(caught.value.problems)


def only_problem(text: str, model: type[BaseModel] = Scenario) -> Problem:
    problems = problems_of(text, model)
    assert len(problems) == 1, [str(problem) for problem in problems]
    return problems[0]


def where(problem: Problem) -> tuple[Any, ...]:
    """Line, column and field path: what a user looks for first."""
    return problem.line, problem.column, problem.path


def edit(text: str, old: str, new: str) -> str:
    """``text`` with the one occurrence of ``old`` replaced (the test's own typo)."""
    assert text.count(old) == 1, old
    return text.replace(old, new)
