"""The runner's lines read back as the model's trace rows, from real-shaped
/proc/net/ip_vs_conn rows; bad lines named, lines already read kept."""

from __future__ import annotations

from typing import Any

import pytest

from ipvslab.lab.capture import CaptureError, collect, collect_batch, step_result
from ipvslab.lab.node import LabNode, LabPod, LabService

WEB = LabService("web", "TCP", "10.96.0.10", 80, 8080, "rr", 0, (LabPod("web-0", "10.244.0.3"),))
API = LabService(
    "api", "TCP", "10.96.0.11", 80, 8080, "rr", 10800, (LabPod("api-0", "10.244.0.5"),)
)
NODE = LabNode((WEB, API), (LabPod("c-0", "10.244.0.2"),), {}, "10.244.0.0/16", None)
PROBES: list[dict[str, Any]] = [
    {"action": "connect", "service": "web"},
    {"action": "connect", "service": "api"},
    {"action": "set_weight", "service": "web"},
]
# One client port met in both Services (the same web pod shares a port number),
# and api's persistence template (client port 0), as the 6.1 kernel prints them.
ROWS = [
    "TCP 0AF40002 9C40 0A60000A 0050 0AF40003 1F90 TIME_WAIT       119",
    "TCP 0AF40002 9C40 0A60000B 0050 0AF40005 1F90 ESTABLISHED     899",
    "TCP 0AF40002 0000 0A60000B 0050 0AF40005 1F90 NONE          10799",
]


def _step(index: int, **fields: Any) -> dict[str, Any]:
    return {"kind": "step", "index": index, "time_us": 10, "took_us": 5, **fields}


def test_entries_are_those_of_the_steps_own_service_with_its_template() -> None:
    web = step_result(
        _step(
            0,
            action="connect",
            client="c-0",
            client_port=40000,
            result="established",
            pod="web-0",
            connect_us=4187,
            entry_before=[],
            entry_after=ROWS,
        ),
        NODE,
        PROBES,
    )
    assert web.entry_before == ""
    assert web.entry_after == "TIME_WAIT 10.244.0.3:8080 119.000s"
    assert web.template_after == ""
    api = step_result(_step(1, action="connect", entry_after=ROWS), NODE, PROBES)
    assert api.entry_after == "ESTABLISHED 10.244.0.5:8080 899.000s"
    # The kernel prints a template's state as NONE; the model's trace says TEMPLATE.
    assert api.template_after == "TEMPLATE 10.244.0.5:8080 10799.000s"


def test_a_bad_row_or_field_is_named() -> None:
    with pytest.raises(CaptureError, match=r"step 0\.entry_after"):
        step_result(_step(0, action="connect", entry_after=["TCP nonsense"]), NODE, PROBES)
    with pytest.raises(CaptureError, match=r"step 0\.connect_us: expected an integer"):
        step_result(_step(0, action="connect", connect_us="fast"), NODE, PROBES)
    with pytest.raises(CaptureError, match="not a step of the script"):
        step_result(_step(7, action="connect"), NODE, PROBES)


def test_a_vm_that_dies_mid_run_keeps_the_steps_already_reported() -> None:
    lines = [
        {"kind": "ready", "kernel": "6.1.0-57-amd64"},
        {"kind": "setup", "took_us": 20_000_000},
        _step(0, action="connect", result="established", pod="web-0"),
        {
            "kind": "vm",
            "message": "the VM ended without the runner's report (exit 1)",
            "console": ["[   61.2] Kernel panic"],
        },
    ]
    run = collect(lines, NODE, PROBES)
    assert run.kernel == "6.1.0-57-amd64"
    assert [s.pod for s in run.steps] == ["web-0"]
    assert not run.complete
    assert run.console == ["[   61.2] Kernel panic"]


def test_a_run_that_reports_fewer_steps_than_asked_is_not_complete() -> None:
    lines = [_step(0, action="connect"), {"kind": "done", "took_us": 1, "namespaces_left": []}]
    run = collect(lines, NODE, PROBES)
    assert run.errors == ["the runner reported 1 of 3 steps"]


def test_a_connect_nothing_answered_names_the_pod_ipvs_chose() -> None:
    # vs.conntrack=0 under KUBE-FORWARD's INVALID drop: the SYN reached web-0,
    # its SYN|ACK was dropped, the client gave up.
    row = "TCP 0AF40002 B3B1 0A60000A 0050 0AF40003 1F90 SYN_RECV         56"
    timed_out = step_result(
        _step(0, action="connect", result="ETIMEDOUT", syn_retransmits=1, entry_after=[row]),
        NODE,
        PROBES,
    )
    assert (timed_out.pod, timed_out.entry_after) == ("web-0", "SYN_RECV 10.244.0.3:8080 56.000s")


def test_a_batch_is_split_by_plan_and_a_vm_failure_charged_to_the_unfinished() -> None:
    other = LabNode((WEB,), (LabPod("c-0", "10.244.0.2"),), {}, "10.244.0.0/16", None)
    lines = [
        {"kind": "ready", "plan": 0, "kernel": "6.1.0-57-amd64"},
        {**_step(0, action="connect", result="established", pod="web-0"), "plan": 0},
        {**_step(1, action="connect", result="established", pod="api-0"), "plan": 0},
        {**_step(2, action="set_weight", result="ok"), "plan": 0},
        {"kind": "done", "plan": 0, "took_us": 9, "namespaces_left": []},
        {"kind": "ready", "plan": 1, "kernel": "6.1.0-57-amd64"},
        {**_step(0, action="connect", result="ECONNREFUSED"), "plan": 1},
        {"kind": "vm", "message": "the VM ended without the runner's report (timed out)"},
    ]
    first, second = collect_batch(lines, [NODE, other], [PROBES, PROBES[:2]])
    assert first.complete
    assert [s.pod for s in first.steps] == ["web-0", "api-0", ""]
    assert [s.result for s in second.steps] == ["ECONNREFUSED"]
    assert second.errors == ["the VM ended without the runner's report (timed out)"]


def test_a_runner_that_dies_after_done_keeps_the_vms_reason_and_console() -> None:
    # A set-up failure the runner did not catch: its "done" line, then a traceback.
    lines = [
        {"kind": "ready", "kernel": "6.1.0-57-amd64"},
        {"kind": "done", "took_us": 1, "namespaces_left": []},
        {
            "kind": "vm",
            "message": "the VM ended without the runner's report (exit 1)",
            "console": ["FileNotFoundError: /sys/module/ip_vs/srcversion"],
        },
    ]
    run = collect(lines, NODE, PROBES)
    assert run.errors == ["the VM ended without the runner's report (exit 1)"]
    assert run.console == ["FileNotFoundError: /sys/module/ip_vs/srcversion"]
