"""Finding 4: clients that reuse source ports while IPVS still holds the old entry.

A client picks its source port from ``net.ipv4.ip_local_port_range`` (R ports,
default 32768-60999, R = 28232). Kernels from 4.6 try the ports of one parity
first (1580ab63fc9a, release inferred), so E = R/2 = 14116 ports are in play,
less the reserved ones. IPVS keeps a closed connection's entry for T_I seconds
(TIME_WAIT, 120 s). A client making N connections/s to one VIP:port picks a port
whose entry is still held with probability (client-tcp-ports.md §5.2, the random
model of v5.18+ and the 2022 stable backports)::

    p ≈ 1 − exp(−N·(T_I − T_C) / (E − N·T_C))      while N·T_C < E

T_C is how long the client's own kernel refuses the port after close: 0 when the
server closes first (or tcp_tw_reuse=1), 60 s when the client closes first
(TCP_TIMEWAIT_LEN). From N·T_C ≥ E every even port is in the client's TIME_WAIT
(saturated): connect() spills into odd ports and p is taken as 1.

N is estimated from the connection table: closed entries / T_I (the table holds
about T_I seconds of closed connections). The unit is one client × VIP:port (the
client's port choice and the IPVS entry are both per destination); per-client
totals are shown as context, and used when the pair table was truncated.

Severity, from the upper estimate p(T_C=0):

* nothing below 1 %;
* info when reuse is harmless on this node (its kernel and settings reschedule a
  reused port cleanly: no problem 1 or 2), or p < 5 %;
* warning from 5 %, critical from 25 % or at saturation, when the node is exposed;
* at most warning when the node's exposure is unknown (no kernel release).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ipvslab.doctor.conn_summary import (
    RECENT_WINDOW,
    TOP_CLIENT_SERVICES,
    TOP_CLIENTS,
    ClientKey,
    ClientStats,
)
from ipvslab.doctor.facts import NodeFacts, sysctl_fixes
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.records import IPAddress
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.doctor.wording import n_entries
from ipvslab.explain import ServerCondition

# inet_init_net(): 32768-60999 since 07f4c90062f8 (2015).
DEFAULT_PORT_RANGE = (32768, 60999)
# TCP_TIMEWAIT_LEN (60*HZ), include/net/tcp.h: the client's TIME_WAIT when it closes first.
CLIENT_TIME_WAIT = 60
# 1580ab63fc9a "tcp/dccp: better use of ephemeral ports in connect()" (v4.6, release
# inferred): connect() scans the ports of low's parity first (step 2).
PARITY_SPLIT_SINCE = (4, 6)
# The 2022 series (4dfa9b438ee3 resalt every 10 s, ca7af0402550 random increments; v5.18):
# the random model the formula describes. Older kernels walk ports sequentially.
RANDOM_MODEL_SINCE = (5, 18)

REPORT_FROM = 0.01
WARNING_FROM = 0.05
CRITICAL_FROM = 0.25
TOP = 5
# Pairs the JSON lists (worst first); `pairs_at_risk` counts them all.
PAIRS_LISTED = 20


def reuse_probability(rate: float, hold: float, refuse: float, ports: float) -> float:
    """Share of new connections whose port still has an IPVS entry (§5.2 of the reference).

    ``rate`` N connections/s, ``hold`` T_I (IPVS keeps a closed entry), ``refuse`` T_C
    (the client keeps the port after close), ``ports`` E (ports in play). 1 when
    saturated (N·T_C ≥ E); 0 when N is 0 or the client holds a port longer than IPVS.
    """
    if rate <= 0 or hold <= refuse:
        return 0.0
    free = ports - rate * refuse
    if free <= 0:
        return 1.0
    return -math.expm1(-rate * (hold - refuse) / free)


@dataclass(frozen=True)
class PortRange:
    low: int
    high: int
    reserved: int  # ports of low's parity in ip_local_reserved_ports
    source: str  # where the range was read

    @property
    def size(self) -> int:
        return self.high - self.low + 1

    def in_play(self, parity_split: bool) -> int:
        """E: the ports connect() tries first."""
        first = self.size // 2 if parity_split else self.size
        return max(first - self.reserved, 0)


def port_range(snapshot: NodeSnapshot) -> PortRange:
    """The node's ``ip_local_port_range`` (and reserved ports), else the default."""
    text = snapshot.sysctls.get("net.ipv4.ip_local_port_range")
    low, high = DEFAULT_PORT_RANGE
    source = "default (not captured)"
    if text is not None:
        parts = text.split()
        if len(parts) == 2 and all(p.isdigit() for p in parts):
            a, b = int(parts[0]), int(parts[1])
            if 0 < a <= b <= 65535:
                low, high, source = a, b, "the node's net.ipv4.ip_local_port_range"
    reserved = _reserved(snapshot.sysctls.get("net.ipv4.ip_local_reserved_ports"), low, high)
    return PortRange(low, high, reserved, source)


def _reserved(text: str | None, low: int, high: int) -> int:
    """Ports of low's parity inside [low, high] listed in ip_local_reserved_ports."""
    if not text:
        return 0
    ports: set[int] = set()
    for item in text.replace(" ", "").split(","):
        first, _, last = item.partition("-")
        if not first.isdigit() or (last and not last.isdigit()):
            continue
        start, end = int(first), int(last or first)
        ports.update(p for p in range(max(start, low), min(end, high) + 1) if p % 2 == low % 2)
    return len(ports)


@dataclass(frozen=True)
class Pressure:
    """Port reuse of one client towards one service (or all of them, ``service=None``)."""

    client: IPAddress
    service: str | None  # "TCP 10.96.0.10:80"
    entries: int
    closed: int
    recent: int
    rate: float  # N, connections/s
    p_server_closes: float  # T_C = 0
    p_client_closes: float  # T_C = 60 s
    saturated: bool  # N·T_C ≥ E with T_C = 60 s

    @property
    def label(self) -> str:
        return f"{self.client} -> {self.service}" if self.service else f"{self.client} (all)"


def pressures(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Pressure]:
    """Every client × TCP service pair (and client, if pairs were truncated), worst first."""
    conns = snapshot.conns
    if conns is None:
        return []
    hold = facts.timeouts.get(("TCP", "TIME_WAIT"), 120)
    ports = port_range(snapshot).in_play(_parity_split(facts))
    out: list[Pressure] = []

    def add(client: IPAddress, service: str | None, stats: ClientStats) -> None:
        rate = client_rate(stats, hold)
        out.append(
            Pressure(
                client=client,
                service=service,
                entries=stats.count,
                closed=stats.closed,
                recent=stats.recent,
                rate=rate,
                p_server_closes=reuse_probability(rate, hold, 0, ports),
                p_client_closes=reuse_probability(rate, hold, CLIENT_TIME_WAIT, ports),
                saturated=rate * CLIENT_TIME_WAIT >= ports,
            )
        )

    for key, stats in conns.client_services.items():
        if key.protocol == "TCP":
            add(key.client, _service(key), stats)
    if not conns.client_services_complete:
        for client, stats in conns.busiest_clients.items():
            add(client, None, stats)
    out.sort(key=lambda p: (-p.p_server_closes, -p.entries, str(p.client)))
    return out


def client_rate(stats: ClientStats, hold: int) -> float:
    """New connections/s of a client: its closed entries / the TIME_WAIT they live, or,
    when more, its closed entries touched in the last RECENT_WINDOW s / that window. A
    reused port renews its entry, so a client that reuses ports holds fewer closed entries
    than it made (at most the ports in play): its recent ones say more. Open entries are
    taken off the recent count (a long-lived connection's packets renew its entry too)."""
    rate = stats.closed / hold if hold > 0 else 0.0
    recent_closed = max(stats.recent - (stats.count - stats.closed), 0)
    return max(rate, recent_closed / RECENT_WINDOW)


def _service(key: ClientKey) -> str:
    addr = f"[{key.virtual_addr}]" if key.virtual_addr.version == 6 else str(key.virtual_addr)
    return f"{key.protocol} {addr}:{key.virtual_port}"


def _parity_split(facts: NodeFacts) -> bool:
    return facts.kernel is None or facts.kernel.version[:2] >= PARITY_SPLIT_SINCE


def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
    found = [p for p in pressures(snapshot, facts) if p.p_server_closes >= REPORT_FROM]
    if not found:
        return []
    worst = found[0]
    exposure = facts.exposure
    rng = port_range(snapshot)
    split = _parity_split(facts)
    ports = rng.in_play(split)
    hold = facts.timeouts.get(("TCP", "TIME_WAIT"), 120)

    p = worst.p_server_closes
    if exposure is not None and not exposure.problems:
        severity = Severity.INFO
    elif p >= CRITICAL_FROM or worst.saturated:
        severity = Severity.CRITICAL if exposure is not None else Severity.WARNING
    elif p >= WARNING_FROM:
        severity = Severity.WARNING
    else:
        severity = Severity.INFO

    evidence = [
        f"ports in play E = {ports}: {rng.low}-{rng.high} ({rng.source}; R = {rng.size})"
        + (", one parity first (kernel >= 4.6, 1580ab63fc9a)" if split else ", all ports")
        + (f", less {rng.reserved} reserved" if rng.reserved else "")
        + "; a pod has its own network namespace, so a client pod's range may differ",
        f"IPVS holds a closed connection's entry T_I = {hold} s (TIME_WAIT); "
        f"N ≈ closed entries / {hold} s",
    ]
    for item in found[:TOP]:
        sat = " (saturated: every even port in client TIME_WAIT)" if item.saturated else ""
        evidence.append(
            f"{item.label}: {n_entries(item.entries)}, {item.closed} closed, {item.recent} in the "
            f"last 10 s; N ≈ {item.rate:.1f} conn/s; p ≈ {item.p_server_closes:.1%} if the "
            f"server closes first, {item.p_client_closes:.1%} if the client does{sat}"
        )
    if len(found) > TOP:
        evidence.append(f"... and {len(found) - TOP} more client/service pairs at p >= 1 %")
    conns = snapshot.conns
    if conns is not None:
        top_clients = ", ".join(f"{c} ({n_entries(n)})" for c, n in conns.top_clients(3))
        evidence.append(f"clients holding the most entries: {top_clients}")
        if conns.client_error or conns.client_service_error:
            evidence.append(
                f"counts come from top-{TOP_CLIENTS} / top-{TOP_CLIENT_SERVICES} sketches of"
                f" clients and (client, service) pairs: each may be low by up to"
                f" {conns.client_error} / {conns.client_service_error} entries"
            )
    if facts.kernel is not None and facts.kernel.version[:2] < RANDOM_MODEL_SINCE:
        edge = ports / hold
        evidence.append(
            f"kernel {facts.kernel.version_text} is older than v5.18: unless it carries the"
            " 2022 stable backports of the random port selection, a client alone walks ports"
            f" in sequence and reuse is all-or-nothing around N ≈ E/T_I = {edge:.0f} conn/s;"
            " other connections on the node move the same counter and bring it back towards p"
        )

    fixes = _fixes(facts, worst, ports)
    return [
        Finding(
            kind=FindingKind.PORT_REUSE_PRESSURE,
            severity=severity,
            title=(
                f"{worst.label} reuses source ports at ~{worst.rate:.0f} conn/s: "
                f"~{p:.0%} of new connections hit a port IPVS still holds"
            ),
            evidence=tuple(evidence),
            meaning=_meaning(facts),
            fix=fixes,
            subject=worst.label,
            data={
                "ports_in_play": ports,
                "port_range": [rng.low, rng.high],
                "port_range_source": rng.source,
                "hold_seconds": hold,
                "pairs": [
                    {
                        "client": str(item.client),
                        "service": item.service,
                        "entries": item.entries,
                        "closed": item.closed,
                        "recent": item.recent,
                        "rate_per_second": round(item.rate, 3),
                        "p_server_closes": round(item.p_server_closes, 4),
                        "p_client_closes": round(item.p_client_closes, 4),
                        "saturated": item.saturated,
                    }
                    for item in found[:PAIRS_LISTED]
                ],
                # The table's pairs come from a bounded sketch, and only the worst are listed.
                "pairs_at_risk": len(found),
                "pairs_tracked_limit": TOP_CLIENT_SERVICES,
                "pair_count_error": snapshot.conns.client_service_error if snapshot.conns else 0,
                "exposed": None if exposure is None else list(exposure.problems),
            },
        )
    ]


def _meaning(facts: NodeFacts) -> str:
    base = (
        "These clients open new connections on source ports whose previous connection's"
        " IPVS entry is still in the table, so the new SYN takes the reuse path."
    )
    exposure = facts.exposure
    if exposure is None:
        return base + (
            " The kernel release was not captured, so what that path does here is unknown."
        )
    if not exposure.problems:
        if facts.value("conn_reuse_mode") == 0:
            # Mode 0: a reused port to a healthy server is not rescheduled (d752c364, 4.1):
            # it stays on its old pod, so load is pinned there (seed 000, symptom 3).
            return base + (
                " On this node a hit to a weight-0 or removed server is rescheduled, but with"
                " conn_reuse_mode=0 a hit to a healthy server stays on its old pod: no errors,"
                " but this client's load stays on the pods it already uses, and pods added by"
                " a scale-out get little of it (check with --what-if scale=VIP:PORT:+N)."
            )
        return base + (
            " On this node that path reschedules the connection cleanly: harmless today, but"
            " it becomes problem 1 or 2 if the settings or the kernel change."
        )
    parts = []
    if exposure.stale_forwarding:
        parts.append(
            "a hit follows the old entry to its old real server, also when that server is at"
            " weight 0 or its pod is gone: 'no route to host', and a draining pod never"
            " drains (#81775)"
        )
    drop = exposure.explanations.get(ServerCondition.HEALTHY)
    if drop is not None and drop.problem == "problem 2":
        parts.append("every hit loses its first SYN and waits 1 s for the retransmission (#70747)")
    elif exposure.syn_drop:
        parts.append("a hit whose old real server was removed loses its first SYN (1 s)")
    return base + " On this node " + "; ".join(parts) + "."


def _fixes(facts: NodeFacts, worst: Pressure, ports: int) -> tuple[str, ...]:
    out: list[str] = []
    exposure = facts.exposure
    if exposure is not None and exposure.problems:
        best = sysctl_fixes(facts)
        if best and best[0].clears_all:
            cmd = " ".join(f"net.ipv4.vs.{n}={v}" for n, v in best[0].changes.items())
            out.append(
                f"make reuse harmless on this kernel: sysctl -w {cmd}"
                " (see the exposure finding for how to keep it)"
            )
        else:
            out.append(
                "make reuse harmless: no sysctl does it on this kernel; see the exposure"
                " finding for the kernel upgrade"
            )
    out.append(
        "reuse connections (HTTP keep-alive, connection pools) so the client opens fewer:"
        f" N ≈ {worst.rate:.0f}/s now"
    )
    out.append(
        "spread the load over more client pods (more replicas, podAntiAffinity): every pod IP"
        " has its own ports"
    )
    out.append(
        "widen the client pod's port range, e.g. securityContext.sysctls:"
        ' [{name: net.ipv4.ip_local_port_range, value: "1024 65535"}]'
        f" (E {ports} -> 32256);"
        " on the host network keep NodePorts out with net.ipv4.ip_local_reserved_ports"
    )
    return tuple(out)
