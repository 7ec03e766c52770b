"""Script steps become the guest runner's commands: seconds, the model's names."""

from __future__ import annotations

import pytest

from ipvslab.lab.node import LabSetupError, lab_node
from ipvslab.lab.probes import probes
from ipvslab.scenario import load_model_text
from ipvslab.scenario.model import Scenario

BASE = """\
cluster: {kernel: "6.1"}
services:
  - name: web
  - name: dns
    protocol: UDP
    port: 53
    target_port: 5353
clients:
  - name: c
    service: web
    replicas: 2
    load: {kind: open, rate: 1}
    start: 1h
script:
"""


def _probes(script: str) -> list[dict[str, object]]:
    scenario = load_model_text(BASE + script, "s.yaml", Scenario)
    return probes(scenario, lab_node(scenario))


def test_a_connect_names_the_first_replica_its_service_and_times_in_seconds() -> None:
    (step,) = _probes("  - at: 2s\n    connect: {client: c, port: 40000, hold: 250ms}\n")
    assert step == {
        "action": "connect",
        "at": 2.0,
        "client": "c-0",
        "service": "web",
        "port": 40000,
        "close": "server-first",
        "hold": 0.25,
        "timeout": 30.0,
    }


def test_a_replica_a_udp_service_and_a_kernel_picked_port() -> None:
    (step,) = _probes("  - udp: {client: c-1, service: dns, tries: 2, timeout: 500ms}\n")
    assert step == {
        "action": "udp",
        "client": "c-1",
        "service": "dns",
        "port": 0,
        "tries": 2,
        "timeout": 0.5,
    }


def test_node_changes_keep_pod_indexes_and_full_sysctl_names() -> None:
    steps = _probes(
        "  - set_weight: {service: web, pod: 1, weight: 0}\n"
        "  - delete_real_server: {service: web, pod: 0}\n"
        "  - kill_pod: {service: web, pod: 0}\n"
        "  - add_real_server: {service: web, address: 10.244.0.9}\n"
        "  - sysctl: {name: conn_reuse_mode, value: 0}\n"
        "  - client_sysctl: {client: c, name: net.ipv4.tcp_tw_reuse, value: 0}\n"
        "  - wait: 1m\n"
    )
    assert steps[0] == {"action": "set_weight", "service": "web", "pod": 1, "weight": 0}
    assert steps[1] == {"action": "delete_real_server", "service": "web", "pod": 0}
    assert steps[2] == {"action": "kill_pod", "service": "web", "pod": 0}
    assert steps[3] == {
        "action": "add_real_server",
        "service": "web",
        "ip": "10.244.0.9",
        "port": 8080,
        "weight": 1,
    }
    assert steps[4] == {"action": "sysctl", "name": "net.ipv4.vs.conn_reuse_mode", "value": 0}
    assert steps[5]["name"] == "net.ipv4.tcp_tw_reuse"
    assert steps[6] == {"action": "wait", "seconds": 60.0}


def test_a_step_the_lab_cannot_run_is_refused_with_its_index() -> None:
    with pytest.raises(LabSetupError, match=r"script\[1\]\.set_ready"):
        _probes("  - wait: 1s\n  - set_ready: {service: web, pod: 0, ready: false}\n")
