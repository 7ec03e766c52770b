"""The scenarios in examples/ are what users copy first: each must load, lay out
without setup errors or warnings, and say in its header what to look for; the
fastest ones also run and show the symptom their header promises.

Expectations come from the documented kernel and kube-proxy behaviour
(../shared/reference/), never from the model's own output:
- net.ipv4.vs.conntrack=0 makes IPVS untrack its flows (ip_vs_notrack()), so
  kube-proxy's KUBE-FORWARD ``--ctstate INVALID -j DROP`` drops every pod's
  SYN|ACK and each connect() times out; without that rule they all connect.
- kube-proxy before 1.12.5 / 1.14.0 leaves expire_quiescent_template at 0
  (#71834): a ClientIP persistence template keeps sending reconnects to the
  weight-0 real server of a pod that is gone (seed 003); with it at 1 the
  template is dropped and reconnects reach the new pod.
- a bound source port still in the client's own TIME_WAIT may be taken over
  only when that connection used timestamps (tcp_twsk_unique(),
  client-tcp-ports.md §2.2): with tcp_timestamps=0 connect() is EADDRNOTAVAIL,
  and once TIME_WAIT (60 s) is over it connects again.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml

from ipvslab.cluster.cluster import Cluster
from ipvslab.cluster.run import RunResult, run_scenario
from ipvslab.results.frames import trace_frame
from ipvslab.scenario import load_model
from ipvslab.scenario.model import IpvsRules, Scenario

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALL = sorted(EXAMPLES.glob("*.yaml"))


def _load(name: str, **cluster: Any) -> Scenario:
    scenario = load_model(EXAMPLES / f"{name}.yaml", Scenario)
    if cluster:
        # Values must be model objects already: model_copy does not validate.
        changed = scenario.cluster.model_copy(update=cluster)
        scenario = scenario.model_copy(update={"cluster": changed})
    return scenario


def _trace(run: RunResult) -> pl.DataFrame:
    return trace_frame(run.trace)


def test_there_are_examples_to_start_from() -> None:
    assert len(ALL) >= 6


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.stem)
def test_example_loads_lays_out_cleanly_and_says_what_to_look_for(path: Path) -> None:
    scenario = load_model(path, Scenario)
    assert scenario.name == path.stem
    cluster = Cluster(scenario)  # kernel, kube-proxy and sysctls are checked here
    assert cluster.warnings == []
    header = path.read_text().split("\n\n", 1)[0]
    assert header.startswith("# ")
    assert "Look for:" in path.read_text()


def test_conntrack_0_example_times_out_every_connection_until_the_rule_goes() -> None:
    ran = _trace(run_scenario(_load("conntrack-0-timeouts")))
    assert ran.height > 20
    assert (ran["result"] == "ETIMEDOUT").all()
    # connect_timeout 5 s: SYNs at 0, 1 and 3 s, the next one would be at 7 s.
    assert (ran["connect_us"] == 5_000_000).all()
    assert (ran["syn_retransmits"] == 2).all()
    without_rule = IpvsRules(drop_invalid=False)
    fixed = _trace(run_scenario(_load("conntrack-0-timeouts", rules=without_rule)))
    assert (fixed["result"] == "established").all()


def test_session_affinity_example_sends_reconnects_to_the_dead_pod_until_the_template_expires() -> (
    None
):
    stuck = _trace(run_scenario(_load("session-affinity-websockets")))
    # ws-0 exits at 14 s (ws-1 ready at 12 s, then 2 s of serving after SIGTERM).
    late = stuck.filter(pl.col("time_us") >= 15_000_000)
    assert late.height > 20
    assert (late["result"] == "EHOSTUNREACH").all()
    assert late["pod_gone"].all()
    fixed_sysctls = {"net.ipv4.vs.expire_quiescent_template": 1}
    moved = _trace(run_scenario(_load("session-affinity-websockets", sysctls=fixed_sysctls)))
    late = moved.filter(pl.col("time_us") >= 15_000_000)
    assert late.height > 0
    assert (late["result"] == "established").all()
    assert set(late["pod"]) == {"ws-1"}


def test_script_example_shows_eaddrnotavail_then_a_connect_once_time_wait_is_over() -> None:
    steps = run_scenario(_load("script-bound-port-eaddrnotavail")).steps
    assert [s.result for s in steps] == ["ok", "established", "EADDRNOTAVAIL", "ok", "established"]
    assert {s.client_port for s in steps if s.action == "connect"} == {40000}
    # IPVS still holds the first connection's entry (TIME_WAIT 120 s) at both reuses.
    assert steps[2].entry_before.startswith("TIME_WAIT ")
    assert steps[4].entry_before.startswith("TIME_WAIT ")
    assert steps[4].time_us >= 61_000_000


# The YAML snippets of docs/scenarios.md: each is a whole scenario or a part of one,
# completed by these Services and client (the names the snippets refer to) so that a
# user who pastes one into a scenario gets no error.
_SNIPPET_BASE: dict[str, Any] = {
    "services": [{"name": "web"}, {"name": "ws"}],
    "clients": [{"name": "busy", "service": "web", "load": {"kind": "open", "rate": 1}}],
}
DOCS = Path(__file__).resolve().parents[2] / "docs" / "scenarios.md"


def _snippets() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)


def test_docs_have_a_yaml_example_per_feature() -> None:
    assert len(_snippets()) >= 12


@pytest.mark.parametrize("index", range(len(_snippets())))
def test_docs_yaml_snippet_is_a_valid_scenario(index: int) -> None:
    snippet = yaml.safe_load(_snippets()[index])
    data = {**_SNIPPET_BASE, **snippet}
    for key in ("services", "clients"):
        named = {item["name"] for item in snippet.get(key, [])}
        extra = [item for item in _SNIPPET_BASE[key] if item["name"] not in named]
        data[key] = snippet.get(key, []) + extra
    scenario = Scenario.model_validate(data)
    Cluster(scenario)  # kernels, kube-proxy version and sysctls are accepted
