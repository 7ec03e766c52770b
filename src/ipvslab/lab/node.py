"""The namespace node: what the lab builds in the guest, taken from the model.

The lab node is the model's ``node-0`` laid out for real: the same ClusterIPs,
ports, scheduler and persistence, the same pod and client IPs and names, the
net.ipv4.vs sysctls kube-proxy leaves on that kernel, and kube-proxy's iptables
rules beside IPVS. Taking every name and address from the model's own cluster
is what makes a lab trace join the model's step by step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from ipvslab.cluster.cluster import Cluster
from ipvslab.scenario.model import Dataplane, IpvsRules, Scenario

# kube-proxy's masquerade mark (--iptables-masquerade-bit 14, the default).
MASQ_MARK = "0x4000/0x4000"


class LabSetupError(ValueError):
    """A scenario the lab cannot lay out on a real node (says which field and why)."""


@dataclass(frozen=True)
class LabPod:
    name: str
    ip: str


@dataclass(frozen=True)
class LabService:
    name: str
    protocol: str
    vip: str
    port: int
    target_port: int
    scheduler: str
    persistence: int  # seconds, 0 = none
    pods: tuple[LabPod, ...]

    def as_plan(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "protocol": self.protocol,
            "vip": self.vip,
            "port": self.port,
            "target_port": self.target_port,
            "scheduler": self.scheduler,
            "persistence": self.persistence,
            "pods": [{"name": p.name, "ip": p.ip} for p in self.pods],
        }


@dataclass(frozen=True)
class LabNode:
    services: tuple[LabService, ...]
    clients: tuple[LabPod, ...]
    sysctls: dict[str, int]  # full names, net.ipv4.vs.*
    pod_cidr: str
    rules: IpvsRules | None  # None: no iptables rules at all
    modules: tuple[str, ...] = field(default=())

    def as_plan(self) -> dict[str, Any]:
        return {
            "services": [s.as_plan() for s in self.services],
            "clients": [{"name": c.name, "ip": c.ip} for c in self.clients],
            "node_sysctls": dict(self.sysctls),
            "rules": kube_proxy_rules(self) if self.rules is not None else "",
            "modules": list(self.modules),
        }


def _ip(value: int) -> str:
    return str(IPv4Address(value))


def lab_node(scenario: Scenario, with_rules: bool = True) -> LabNode:
    """The lab's node for ``scenario``: one node, the IPVS dataplane, read off the
    model's cluster as it stands once kube-proxy has started."""
    if len(scenario.node_names) != 1:
        raise LabSetupError(
            f"cluster.nodes: the lab builds one node; the scenario has {len(scenario.node_names)}"
        )
    if scenario.cluster.dataplane is not Dataplane.IPVS:
        raise LabSetupError(
            f"cluster.dataplane: the lab runs IPVS; the scenario has {scenario.cluster.dataplane}"
        )
    cluster = Cluster(scenario)
    cluster.start()
    node = cluster.nodes[0]
    assert node.kernel is not None
    values = node.kernel.sysctls
    # Only what a stock kernel has: conn_reuse_old_conntrack is TencentOS's.
    sysctls = {
        f"net.ipv4.vs.{name}": int(getattr(values, name))
        for name in values.names()
        if name != "conn_reuse_old_conntrack"
    }
    scheduler = scenario.cluster.kube_proxy.scheduler
    services = []
    for name, info in cluster.services.items():
        pods = tuple(LabPod(p.name, _ip(p.ip)) for p in cluster.deployments[name].live_pods())
        services.append(
            LabService(
                name,
                info.protocol,
                _ip(info.vip),
                info.port,
                info.target_port,
                scheduler,
                info.affinity_s,
                pods,
            )
        )
    clients = tuple(LabPod(c.name, _ip(c.ip)) for c in cluster.clients)
    return LabNode(
        tuple(services),
        clients,
        sysctls,
        str(scenario.cluster.pod_cidr),
        scenario.cluster.rules if with_rules else None,
    )


def kube_proxy_rules(node: LabNode) -> str:
    """kube-proxy's IPVS-mode iptables rules for the node, as iptables-restore input.

    As the IPVS proxier installs them (v1.11 on; the set is the same through
    v1.31), with each ipset match written out as plain address matches:
    - nat KUBE-SERVICES: Service traffic from outside the cluster CIDR (or all of
      it with --masquerade-all) gets KUBE-MARK-MASQ's mark;
    - nat KUBE-POSTROUTING: marked packets are masqueraded (--random-fully);
    - filter KUBE-FORWARD: conntrack INVALID dropped, marked and
      RELATED/ESTABLISHED traffic accepted.
    """
    rules = node.rules or IpvsRules()
    nat = [
        "*nat",
        ":KUBE-SERVICES - [0:0]",
        ":KUBE-POSTROUTING - [0:0]",
        ":KUBE-MARK-MASQ - [0:0]",
        "-A PREROUTING -j KUBE-SERVICES",
        "-A OUTPUT -j KUBE-SERVICES",
        "-A POSTROUTING -j KUBE-POSTROUTING",
        f"-A KUBE-POSTROUTING -m mark ! --mark {MASQ_MARK} -j RETURN",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000",
        "-A KUBE-POSTROUTING -j MASQUERADE --random-fully",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000",
    ]
    for service in node.services:
        proto = service.protocol.lower()
        match = f"-d {service.vip}/32 -p {proto} -m {proto} --dport {service.port}"
        source = "" if rules.masquerade_all else f"! -s {node.pod_cidr} "
        nat.append(f"-A KUBE-SERVICES {source}{match} -j KUBE-MARK-MASQ")
        nat.append(f"-A KUBE-SERVICES {match} -j ACCEPT")
    nat.append("COMMIT")
    forward = [
        "*filter",
        ":KUBE-FORWARD - [0:0]",
        "-A FORWARD -j KUBE-FORWARD",
    ]
    if rules.drop_invalid:
        forward.append("-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP")
    forward += [
        f"-A KUBE-FORWARD -m mark --mark {MASQ_MARK} -j ACCEPT",
        "-A KUBE-FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
        "COMMIT",
    ]
    return "\n".join(nat + forward) + "\n"
