"""Model vs kernel: a join on the step index that flags what a user would notice."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from ipvslab.cluster.script import StepResult
from ipvslab.lab.compare import TRAFFIC_FIELDS, compare, model_scenario, model_steps
from ipvslab.scenario import load_model_text
from ipvslab.scenario.model import Scenario


def _connect(index: int, pod: str = "web-1", after: str = "TIME_WAIT 10.244.0.4:8080 120.000s"):
    return StepResult(
        index, "connect", 0, "c-0", 40000, pod, "established", 200, 0, "", after, "", ""
    )


def test_remaining_lifetimes_and_connect_times_do_not_count() -> None:
    model = [_connect(0)]
    lab = [replace(_connect(0, after="TIME_WAIT 10.244.0.4:8080 119.000s"), connect_us=43189)]
    (row,) = compare(model, lab)
    assert row.agrees


def test_another_pod_or_state_is_a_disagreement_with_both_sides_shown() -> None:
    model = [_connect(0), StepResult(1, "set_weight", 0, result="ok")]
    lab = [
        _connect(0, pod="web-0", after="TIME_WAIT 10.244.0.3:8080 119.000s"),
        StepResult(1, "set_weight", 0, result="ok", pod="web-0"),
    ]
    first, second = compare(model, lab)
    assert [(d.field, d.model, d.lab) for d in first.differences] == [
        ("pod", "web-1", "web-0"),
        ("entry_after", "TIME_WAIT 10.244.0.4:8080", "TIME_WAIT 10.244.0.3:8080"),
    ]
    # A node change compares its outcome only (the lab names the pod it touched).
    assert second.agrees


def test_a_node_change_that_failed_on_both_sides_agrees_whatever_the_words() -> None:
    model = [StepResult(0, "sysctl", 0, result="error: sysctl on node-0: no conn_reuse_mode")]
    lab = [StepResult(0, "sysctl", 0, result="error: sysctl: cannot stat /proc/sys/net/...")]
    assert compare(model, lab)[0].agrees
    assert not compare(model, [StepResult(0, "sysctl", 0, result="ok")])[0].agrees


def test_a_step_only_one_side_ran_is_a_disagreement() -> None:
    rows = compare([_connect(0), _connect(1)], [_connect(0)])
    assert [r.agrees for r in rows] == [True, False]
    assert rows[1].action == "connect (no lab row)"


_rows = st.lists(
    st.builds(
        StepResult,
        index=st.integers(0, 5),
        action=st.sampled_from(["connect", "udp", "wait", "sysctl"]),
        time_us=st.integers(0, 10**9),
        pod=st.sampled_from(["", "web-0", "web-1"]),
        result=st.sampled_from(["established", "ECONNREFUSED", "ok"]),
        syn_retransmits=st.integers(0, 6),
        entry_after=st.sampled_from(
            ["", "TIME_WAIT 10.244.0.3:8080 1.000s", "CLOSE 10.244.0.4:8080 9.000s"]
        ),
    ),
    unique_by=lambda r: r.index,
    max_size=6,
)


@given(_rows)
def test_a_trace_agrees_with_itself(rows: list[StepResult]) -> None:
    assert all(r.agrees for r in compare(rows, [replace(r) for r in rows]))


@given(_rows, st.sampled_from(TRAFFIC_FIELDS))
def test_any_changed_outcome_of_a_connect_is_caught(rows: list[StepResult], field: str) -> None:
    model = [replace(r, action="connect") for r in rows]
    lab = [replace(r, **{field: "changed" if field != "syn_retransmits" else 99}) for r in model]
    assert all(not r.agrees for r in compare(model, lab))


def test_the_model_runs_on_the_labs_kernel_and_without_rules_when_asked() -> None:
    text = """\
cluster: {kernel: "4.19", kube_proxy: {version: v1.17.0}}
services: [{name: web}]
clients: [{name: c, service: web, load: {kind: open, rate: 1}, start: 1h}]
script:
  - connect: {client: c, port: 40000}
  - connect: {client: c, port: 40000}
"""
    scenario = load_model_text(text, "s.yaml", Scenario)
    changed = model_scenario(scenario, "6.1.0-57-amd64", with_rules=False)
    assert changed.cluster.kernel == "6.1.0-57-amd64"
    assert not changed.cluster.rules.drop_invalid
    # 6.1 with kube-proxy v1.17 (conn_reuse_mode=0): the reused port follows its
    # TIME_WAIT entry to the same pod, no drop, no reschedule.
    first, second = model_steps(scenario, "6.1.0-57-amd64", with_rules=True)
    assert (first.result, second.result) == ("established", "established")
    assert second.pod == first.pod
