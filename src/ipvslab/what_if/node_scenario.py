"""A node's capture as a cluster-twin scenario: its kernel, sysctls, kube-proxy, the
services with their live real servers, and its clients with the rates their closed
entries show.

Rates: IPVS keeps a closed TCP entry for its TIME_WAIT timeout (120 s), so a client
x service pair's closed entries / 120 s is its rate of new connections over the last
two minutes (the port-pressure check's estimate); a UDP entry lives for the UDP
timeout (300 s). Pairs below the connection summary's listing threshold, and pairs
beyond the ``TOP_CLIENTS_MODELLED`` busiest, are modelled as one client group whose
pods share the rest of the rate. ESTABLISHED entries are long-lived connections.

The run warms up for a TIME_WAIT plus 10 s (the table then holds what the node holds
now), then the actions happen at ``action_at`` and it runs ``AFTER`` more.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ipvslab.doctor.checks._common import kube_proxy_not_ipvs, persistence_seconds
from ipvslab.doctor.checks.port_pressure import PARITY_SPLIT_SINCE, client_rate, port_range
from ipvslab.doctor.conn_summary import CLIENT_SERVICE_MIN, CLOSED_STATES, RECENT_WINDOW
from ipvslab.doctor.facts import NodeFacts, ValueOrigin
from ipvslab.doctor.records import Protocol, ServiceEntry
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.explain import DEFAULT_KUBE_PROXY
from ipvslab.scenario.model import Scenario
from ipvslab.what_if.changes import ServiceRef, WhatIfError

SECOND = 1_000_000
AFTER_S = 180  # after the actions: a rollout, the 30 s grace, kube-proxy's 60 s checks
TOP_CLIENTS_MODELLED = 20  # busiest client x service pairs modelled one by one
REST_REPLICAS_MAX = 200
LONG_LIVED_MAX = 10_000  # long-lived connections modelled per service
UDP_TIMEOUT_S = 300  # IP_VS_UDP_S_NORMAL, 5 min
NODE_PODS = 240  # of a node's /24 (253 addresses), leaving room to spare
SURGE = 1.5  # server pods at the height of a rolling update, against replicas


@dataclass(frozen=True)
class NodeModel:
    """The scenario of a node (no actions yet) and how it was made."""

    base: dict[str, Any]  # the scenario as a mapping, for changes before validation
    services: dict[ServiceRef, str]  # IPVS service -> the scenario's service name
    replicas: dict[str, int]  # scenario service -> live real servers
    action_at_s: int
    assumptions: list[str] = field(default_factory=list)
    # Scenario services whose pods are the same (the ports of one Kubernetes Service, its
    # NodePorts): one Deployment, so a rollout or scale of one is one of them all.
    siblings: dict[str, list[str]] = field(default_factory=dict)

    def scenario(self, seed: int) -> Scenario:
        return Scenario.model_validate({**self.base, "seed": seed})


def service_ref(svc: ServiceEntry) -> ServiceRef | None:
    if svc.protocol not in (Protocol.TCP, Protocol.UDP) or svc.address is None:
        return None
    return ServiceRef(svc.protocol.name, str(svc.address), svc.port)


def node_model(snapshot: NodeSnapshot, facts: NodeFacts, targets: list[ServiceRef]) -> NodeModel:
    """The node as a scenario; ``targets`` are the services the actions name (each must
    exist). Raises WhatIfError when the capture cannot make one."""
    table, conns, kernel = snapshot.ipvs, snapshot.conns, facts.kernel
    if kernel is None:
        raise WhatIfError(f"--what-if needs the kernel release: {facts.kernel_problem}")
    if table is None or not table.services:
        raise WhatIfError("--what-if needs the IPVS table (/proc/net/ip_vs or ipvsadm -Ln)")
    if conns is None:
        raise WhatIfError(
            "--what-if needs the connection table (/proc/net/ip_vs_conn or ipvsadm -Lnc):"
            " the clients and their rates come from it"
        )
    kp = snapshot.kube_proxy
    if snapshot.no_kube_proxy:
        raise WhatIfError(
            "--what-if models kube-proxy's IPVS mode (its Deployments, graceful termination);"
            " with --kube-proxy none there is no kube-proxy here whose pods could roll"
        )
    other_mode = kube_proxy_not_ipvs(snapshot)
    if other_mode is not None:
        raise WhatIfError(
            f"kube-proxy runs in {other_mode} mode here: its Services do not go through"
            " IPVS, so a rollout has no IPVS reuse to predict"
        )
    if (
        facts.kube_version is None
        and not facts.exposure_by_kube_version
        and facts.sysctls["conn_reuse_mode"].origin is not ValueOrigin.NODE
        and facts.sysctls["conn_reuse_mode"].origin is not ValueOrigin.ABSENT
    ):
        raise WhatIfError(
            "--what-if needs kube-proxy's version (--kube-proxy vX.Y.Z) or the node's"
            " net.ipv4.vs values (sysctl -a): kube-proxy 1.13-1.21 write conn_reuse_mode=0"
            " on this kernel where older and newer ones may leave 1, and that decides the"
            " outcome (#71114, #102122)"
        )
    if facts.kube_version is None and facts.exposure_by_kube_version:
        ranges = "; ".join(
            f"{label}: {', '.join(e.problems) or 'no problem'}"
            for label, e in facts.exposure_by_kube_version
        )
        raise WhatIfError(
            "--what-if needs kube-proxy's version here (--kube-proxy vX.Y.Z): on this kernel"
            f" the values it writes decide the outcome ({ranges})"
        )
    assumptions = [
        "one node's view: the clients are the ones in this node's connection table, and"
        " reach the services through it",
        "pods: Ready 2 s after start, 30 s grace, serving 5 s after SIGTERM; Deployment"
        " rolling update with maxSurge and maxUnavailable 25 %",
    ]
    by_ref: dict[ServiceRef, ServiceEntry] = {}
    for svc in table.services:
        ref = service_ref(svc)
        if ref is not None:
            by_ref[ref] = svc
    for target in targets:
        if target not in by_ref:
            known = ", ".join(sorted(r.label for r in by_ref)[:10]) or "none"
            raise WhatIfError(f"no IPVS service {target.label} on this node (it has: {known})")

    hold = facts.timeouts.get(("TCP", "TIME_WAIT"), 120)
    udp_life = facts.timeouts.get(("UDP", "UDP"), UDP_TIMEOUT_S)
    assumptions.insert(
        1,
        f"rates from the entries' lifetimes: closed TCP entries / {hold} s (TIME_WAIT),"
        f" UDP entries / {udp_life} s; connections last 10 ms and the server closes first",
    )
    ports = port_range(snapshot).in_play(kernel.version[:2] >= PARITY_SPLIT_SINCE)
    traffic = _traffic(snapshot, hold, udp_life, ports)
    if any(t.saturated for t in traffic.values()):
        assumptions.append(
            "a client that reuses ports renews its entries, so its closed entries undercount"
            f" it (E = {ports} ports in play): its rate is taken from its entries touched in"
            f" the last {RECENT_WINDOW} s"
        )

    def pods(ref: ServiceRef) -> frozenset[str]:
        return frozenset(str(d.address) for d in by_ref[ref].destinations)

    for target in targets:
        # Its own clients, or those of a service over the same pods (another port).
        if not any(traffic.get(r) and pods(r) == pods(target) for r in by_ref):
            raise WhatIfError(
                f"no client of {target.label} in the connection table: nothing to predict"
                " (an empty or cut-short table?)"
            )
    chosen = [r for r in by_ref if r in targets or traffic.get(r)]
    if not chosen:
        raise WhatIfError("no client traffic to any IPVS service in the connection table")

    version = (
        "v" + ".".join(map(str, facts.kube_version)) if facts.kube_version else DEFAULT_KUBE_PROXY
    )
    if facts.kube_version is None:
        assumptions.append(f"kube-proxy's version was not captured: taken as {version}")
    kube_proxy: dict[str, Any] = {"version": version}
    schedulers = Counter(by_ref[r].scheduler for r in chosen)
    kube_proxy["scheduler"] = schedulers.most_common(1)[0][0]
    settings = kp.settings if kp is not None else None
    if settings is not None:
        for flag, name in (
            ("ipvs_tcp_timeout", "tcp_timeout"),
            ("ipvs_tcpfin_timeout", "tcpfin_timeout"),
            ("ipvs_udp_timeout", "udp_timeout"),
        ):
            value = getattr(settings, flag)
            if value:
                kube_proxy[name] = f"{int(value)}s"
    kernel_text = kernel.text
    if kernel.preset is None and kernel.upstream is not None:
        kernel_text = ".".join(map(str, kernel.upstream))  # the stable version behind it
    # Values read on the node are in force now, whatever kube-proxy wrote at its start.
    sysctls = {name: s.value for name, s in facts.sysctls.items() if s.origin is ValueOrigin.NODE}
    client_sysctls: dict[str, Any] = {}
    range_text = snapshot.sysctls.get("net.ipv4.ip_local_port_range")
    if range_text is not None:
        low, _, high = str(range_text).replace("\t", " ").partition(" ")
        if low.strip().isdigit() and high.strip().isdigit():
            client_sysctls["ip_local_port_range"] = [int(low), int(high.strip())]
    tw_reuse = snapshot.sysctls.get_int("net.ipv4.tcp_tw_reuse")
    if tw_reuse in (0, 1, 2):
        client_sysctls["tcp_tw_reuse"] = tw_reuse

    services: list[dict[str, Any]] = []
    clients: list[list[dict[str, Any]]] = []
    events: list[dict[str, Any]] = []
    names: dict[ServiceRef, str] = {}
    replicas: dict[str, int] = {}
    for index, ref in enumerate(sorted(chosen, key=lambda r: (r.protocol, r.address, r.port))):
        svc = by_ref[ref]
        live = [d for d in svc.destinations if d.weight > 0]
        draining = [d for d in svc.destinations if d.weight == 0]
        if not live:
            if ref in targets:
                unread = (
                    " (some of its real-server lines could not be read)"
                    if (svc.incomplete or svc.unreadable_dests)
                    else ""
                )
                raise WhatIfError(f"{ref.label} has no real server with a weight above 0{unread}")
            continue
        name = f"svc{index}"
        names[ref] = name
        replicas[name] = len(live)
        target_port = Counter(d.port for d in live).most_common(1)[0][0]
        spec: dict[str, Any] = {
            "name": name,
            "port": ref.port,
            "target_port": target_port,
            "protocol": ref.protocol,
            "deployment": {"replicas": len(live) + len(draining)},
        }
        seconds = persistence_seconds(svc.flags)
        if seconds:
            # /proc/net/ip_vs prints jiffies: the doctor's candidates, the first if several.
            spec["session_affinity"] = f"{seconds[0]}s"
        services.append(spec)
        # A weight-0 server of the capture is a pod kube-proxy is draining: in the twin a
        # pod that stops being Ready at the start (kube-proxy sets it to weight 0, and it
        # keeps the entries reused ports renew), so the run starts where the node is.
        for pod in range(len(live), len(live) + len(draining)):
            events.append({"at": "0s", "set_ready": {"service": name, "pod": pod, "ready": False}})
        clients.append(
            _clients(name, ref, traffic.get(ref), kernel.text, client_sysctls, hold, udp_life)
        )
    if not services:
        raise WhatIfError("no IPVS service with live real servers and client traffic")
    if events:
        assumptions.append(
            "weight-0 real servers of the capture are pods being drained: not Ready from the"
            " start of the run, so kube-proxy keeps them at weight 0"
        )
    server_pods = sum(s["deployment"]["replicas"] for s in services)
    nodes = max(1, math.ceil(SURGE * server_pods / (NODE_PODS // 2)))
    budget = max(len(services), NODE_PODS - math.ceil(SURGE * server_pods / nodes))
    kept, merged = _fit(clients, budget)
    if merged:
        assumptions.append(
            f"{merged} client pods merged into their service's client group: one node holds"
            f" at most {NODE_PODS} pods (the server pods are spread over {nodes} nodes; the"
            " clients all reach the services through this node)"
        )
    listed = sum(d.active_conns + d.inactive_conns for s in by_ref.values() for d in s.destinations)
    if listed > 2 * conns.total and listed - conns.total > 1000:
        assumptions.append(
            f"the connection table holds {conns.total:,} entries but the IPVS counters count"
            f" {listed:,}: if it was cut short (a paste through head?), the rates are too low"
        )
    pods_of = {
        names[ref]: frozenset(str(d.address) for d in by_ref[ref].destinations if d.weight > 0)
        for ref in names
    }
    siblings = {
        name: sorted(other for other, pods in pods_of.items() if pods == mine)
        for name, mine in pods_of.items()
    }
    if any(len(group) > 1 for group in siblings.values()):
        assumptions.append(
            "IPVS services with the same pods (a Service's ports, its NodePorts) are one"
            " Deployment: a rollout or scale of one changes them all"
        )
    action_at = hold + 10
    base = {
        "name": "what-if",
        "duration": f"{action_at + AFTER_S}s",
        "cluster": {
            "kernel": kernel_text,
            "kube_proxy": kube_proxy,
            "sysctls": sysctls,
            "nodes": nodes,
        },
        "services": services,
        "clients": kept,
        "events": events,
    }
    return NodeModel(base, names, replicas, action_at, assumptions, siblings)


@dataclass
class _Traffic:
    pairs: list[tuple[float, int]] = field(default_factory=list)  # (rate, entries) per client
    closed: int = 0  # closed entries of the service, all clients
    established: int = 0
    saturated: bool = False  # a client's rate came from its recent entries


def _traffic(
    snapshot: NodeSnapshot, hold: int, udp_life: int, ports: int
) -> dict[ServiceRef, _Traffic]:
    conns = snapshot.conns
    assert conns is not None
    out: dict[ServiceRef, _Traffic] = {}
    for group, stats in conns.groups.items():
        ref = ServiceRef(group.protocol, str(group.virtual_addr), group.virtual_port)
        found = out.setdefault(ref, _Traffic())
        if group.protocol == "UDP" or group.state in CLOSED_STATES:
            found.closed += stats.count
        elif group.state == "ESTABLISHED":
            found.established += stats.count
    for key, cstats in conns.client_services.items():
        ref = ServiceRef(key.protocol, str(key.virtual_addr), key.virtual_port)
        found = out.setdefault(ref, _Traffic())
        lifetime = udp_life if key.protocol == "UDP" else hold
        closed = cstats.count if key.protocol == "UDP" else cstats.closed
        if not closed:
            continue
        rate = closed / lifetime
        if key.protocol == "TCP":
            # The doctor's own estimate (port-reuse-pressure): recent entries when a
            # client reuses ports (with random port choice well below E / 120 s).
            recent = client_rate(cstats, hold)
            if recent > rate:
                rate, found.saturated = recent, True
        found.pairs.append((rate, closed))
    return {r: t for r, t in out.items() if t.closed or t.established}


def _fit(per_service: list[list[dict[str, Any]]], budget: int) -> tuple[list[dict[str, Any]], int]:
    """The client specs with at most about ``budget`` pods in all: the busiest pairs stay
    pods of their own, the others join their service's rest group (rates summed, fewer
    pods). Returns the specs and how many pods were merged away."""

    def pods(specs: list[dict[str, Any]]) -> int:
        return sum(int(c.get("replicas", 1)) for c in specs)

    total = sum(pods(specs) for specs in per_service)
    if total <= budget:
        return [c for specs in per_service for c in specs], 0
    share = max(budget // max(len(per_service), 1), 3)
    out: list[dict[str, Any]] = []
    for specs in per_service:
        singles = [c for c in specs if re.search(r"-c\d+$", c["name"])]
        held = [c for c in specs if c["name"].endswith("-held")]
        rest = next((c for c in specs if c["name"].endswith("-rest")), None)
        avail = share - len(held)
        keep = max(min(len(singles), avail - 1), 0)
        moved = singles[keep:]
        if moved or rest is not None:
            base = rest if rest is not None else moved[0]
            rate = sum(c["load"]["rate"] for c in moved) + (rest["load"]["rate"] if rest else 0)
            replicas = len(moved) + (int(rest.get("replicas", 1)) if rest else 0)
            name = base["name"] if rest is not None else re.sub(r"-c\d+$", "-rest", base["name"])
            rest = {
                **base,
                "name": name,
                "load": {**base["load"], "rate": rate},
                "replicas": max(1, min(replicas, avail - keep)),
            }
        out.extend([*singles[:keep], *([rest] if rest is not None else []), *held])
    return out, total - pods(out)


def _clients(
    service: str,
    ref: ServiceRef,
    traffic: _Traffic | None,
    kernel: str,
    sysctls: dict[str, Any],
    hold: int,
    udp_life: int,
) -> list[dict[str, Any]]:
    if traffic is None:
        return []
    udp = ref.protocol == "UDP"
    lifetime = udp_life if udp else hold
    common: dict[str, Any] = {"service": service, "kernel": kernel, "sysctls": sysctls}
    out: list[dict[str, Any]] = []
    pairs = sorted(traffic.pairs, reverse=True)
    top, rest = pairs[:TOP_CLIENTS_MODELLED], pairs[TOP_CLIENTS_MODELLED:]
    for k, (rate, _) in enumerate(top):
        load = {"kind": "udp", "rate": rate} if udp else {"kind": "open", "rate": rate}
        out.append({"name": f"{service}-c{k}", "load": load, **common})
    rest_closed = traffic.closed - sum(closed for _, closed in top)
    if rest_closed > 0:
        # Unlisted pairs hold fewer than CLIENT_SERVICE_MIN entries each: at least
        # rest / (MIN - 1) clients share what is left.
        unlisted = rest_closed - sum(closed for _, closed in rest)
        count = len(rest) + math.ceil(max(unlisted, 0) / (CLIENT_SERVICE_MIN - 1))
        rate = rest_closed / lifetime
        load = {"kind": "udp", "rate": rate} if udp else {"kind": "open", "rate": rate}
        out.append(
            {
                "name": f"{service}-rest",
                "replicas": max(1, min(count, REST_REPLICAS_MAX)),
                "load": load,
                **common,
            }
        )
    if traffic.established and not udp:
        out.append(
            {
                "name": f"{service}-held",
                "load": {
                    "kind": "long-lived",
                    "connections": min(traffic.established, LONG_LIVED_MAX),
                },
                **common,
            }
        )
    return out
