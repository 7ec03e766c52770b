"""The namespace node the lab builds: the model's names and addresses, the
sysctls kube-proxy leaves on that kernel, kube-proxy's iptables rules."""

from __future__ import annotations

import pytest

from ipvslab.lab.node import LabSetupError, kube_proxy_rules, lab_node
from ipvslab.scenario import load_model_text
from ipvslab.scenario.model import Scenario

TWO_SERVICES = """\
cluster:
  kernel: {kernel}
  kube_proxy: {{version: {kube_proxy}, scheduler: wrr}}
  rules: {{drop_invalid: {drop}, masquerade_all: {masq}}}
services:
  - name: web
    deployment: {{replicas: 3}}
  - name: api
    session_affinity: 10800
    deployment: {{replicas: 2}}
clients:
  - name: c
    service: web
    load: {{kind: open, rate: 1}}
    start: 1h
"""


def _scenario(
    kernel: str = "6.1.0-57-amd64",
    kube_proxy: str = "v1.31.0",
    drop: str = "true",
    masq: str = "false",
) -> Scenario:
    text = TWO_SERVICES.format(kernel=kernel, kube_proxy=kube_proxy, drop=drop, masq=masq)
    return load_model_text(text, "scenario.yaml", Scenario)


def test_every_pod_and_client_gets_its_own_address_and_each_service_its_clusterip() -> None:
    node = lab_node(_scenario())
    web, api = node.services
    assert (web.name, web.vip, api.vip) == ("web", "10.96.0.10", "10.96.0.11")
    ips = [p.ip for s in node.services for p in s.pods] + [c.ip for c in node.clients]
    assert len(ips) == len(set(ips)) == 6
    assert all(ip.startswith("10.244.0.") for ip in ips)
    assert [p.name for p in web.pods] == ["web-0", "web-1", "web-2"]
    assert (web.scheduler, api.persistence, web.persistence) == ("wrr", 10800, 0)


def test_sysctls_are_what_kube_proxy_leaves_on_that_kernel() -> None:
    # v1.22+ leaves conn_reuse_mode alone on 5.9+ (#102122): the kernel's 1.
    new = lab_node(_scenario()).sysctls
    assert new["net.ipv4.vs.conn_reuse_mode"] == 1
    assert new["net.ipv4.vs.conntrack"] == 1
    assert new["net.ipv4.vs.expire_nodest_conn"] == 1
    # v1.17 sets conn_reuse_mode=0 whatever the kernel.
    old = lab_node(_scenario(kernel="4.19.0-25-amd64", kube_proxy="v1.17.0")).sysctls
    assert old["net.ipv4.vs.conn_reuse_mode"] == 0
    assert "net.ipv4.vs.conn_reuse_old_conntrack" not in old


def test_rules_drop_invalid_and_masquerade_marked_packets_by_default() -> None:
    rules = kube_proxy_rules(lab_node(_scenario()))
    assert "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP" in rules
    assert "-j MASQUERADE" in rules
    # Pod-to-Service traffic is not marked (only sources outside the pod CIDR).
    assert "! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ" in rules
    assert rules.count("COMMIT") == 2


def test_rules_follow_the_scenario_and_can_be_left_out() -> None:
    relaxed = kube_proxy_rules(lab_node(_scenario(drop="false", masq="true")))
    assert "INVALID" not in relaxed
    assert "-A KUBE-SERVICES -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ" in relaxed
    assert lab_node(_scenario(), with_rules=False).as_plan()["rules"] == ""


def test_a_cluster_the_lab_cannot_build_is_refused_naming_the_field() -> None:
    text = TWO_SERVICES.format(kernel='"6.1"', kube_proxy="v1.31.0", drop="true", masq="false")
    two_nodes = load_model_text(text.replace("cluster:\n", "cluster:\n  nodes: 2\n"), "s", Scenario)
    with pytest.raises(LabSetupError, match=r"cluster\.nodes"):
        lab_node(two_nodes)
    iptables = load_model_text(
        text.replace("cluster:\n", "cluster:\n  dataplane: iptables\n"), "s", Scenario
    )
    with pytest.raises(LabSetupError, match=r"cluster\.dataplane"):
        lab_node(iptables)
