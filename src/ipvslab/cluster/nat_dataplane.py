"""Dataplanes without IPVS, at the level needed to see whether the reuse symptoms go.

- kube-proxy iptables and nftables modes (reference kube-proxy-ipvs.md §5): the
  Service is a DNAT rule; the endpoint is chosen when conntrack creates the
  flow's entry (iptables: ``-m statistic --mode random``; nftables: ``numgen
  random``: both uniform over the programmed endpoints) and kept in that entry.
  A SYN on a closed TIME_WAIT/CLOSE entry makes conntrack kill it and look the
  packet up again (nf_conntrack_proto_tcp.c, the reopen path), so a reused port
  is NATed afresh to a current endpoint. A Service with no endpoint REJECTs
  (ICMP port unreachable: ECONNREFUSED). At each sync kube-proxy deletes the UDP
  conntrack entries of endpoints that left (conntrack.CleanStaleEntries).
- ``direct`` (a load balancer or ingress sending to pod IPs) and ``mesh`` (a
  sidecar proxy): the proxy picks a ready endpoint per connection, round robin;
  no Service hop, no per-port state on the node.
"""

from __future__ import annotations

import random

from ipvslab.cluster.dataplane import EntryView, Forwarded, entry_label, synack_then_ack
from ipvslab.cluster.endpoints import ServiceInfo
from ipvslab.kernel.conntrack import (
    ConntrackEntry,
    ConntrackStatus,
    CtTcpState,
    status_for_syn,
    track,
)
from ipvslab.kernel.packet import Direction, TcpFlags
from ipvslab.scenario.model import CloseStyle

# nf_conntrack_udp_timeout (30 s) for a flow seen in one direction; a reply
# makes it a stream (nf_conntrack_udp_timeout_stream, 120 s on the kernels here).
UDP_TIMEOUT_MS = 30_000
UDP_STREAM_TIMEOUT_MS = 120_000
# How often expired flows are swept from memory (lookups check expiry anyway).
SWEEP_MS = 10_000

_CLOSE_SEGMENTS: dict[CloseStyle, tuple[tuple[Direction, TcpFlags], ...]] = {
    CloseStyle.SERVER_FIRST: (
        (Direction.OUTPUT, TcpFlags.FIN | TcpFlags.ACK),
        (Direction.INPUT, TcpFlags.ACK),
        (Direction.INPUT, TcpFlags.FIN | TcpFlags.ACK),
        (Direction.OUTPUT, TcpFlags.ACK),
    ),
    CloseStyle.CLIENT_FIRST: (
        (Direction.INPUT, TcpFlags.FIN | TcpFlags.ACK),
        (Direction.OUTPUT, TcpFlags.ACK),
        (Direction.OUTPUT, TcpFlags.FIN | TcpFlags.ACK),
        (Direction.INPUT, TcpFlags.ACK),
    ),
    CloseStyle.CLIENT_RST: ((Direction.INPUT, TcpFlags.RST),),
}


def _key(client: int, port: int, service: ServiceInfo) -> tuple[int, int, int, int, str]:
    return (client, port, service.vip, service.port, service.protocol)


class _PerPacketDataplane:
    """The calls these dataplanes answer from their per-packet ones."""

    def entry(self, client: int, port: int, service: ServiceInfo, now: int) -> EntryView | None:
        raise NotImplementedError

    def entry_label(self, client: int, port: int, service: ServiceInfo, now: int) -> str:
        return entry_label(self.entry(client, port, service, now))

    def handshake(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        return synack_then_ack(self, client, port, service, now)  # type: ignore[arg-type]


class ConntrackNatDataplane(_PerPacketDataplane):
    """kube-proxy iptables or nftables mode on one node."""

    def __init__(self, name: str, rng: random.Random, node_ip: int) -> None:
        self.name = name
        self._rng = rng
        self.masquerade_ip = 0
        self.endpoints: dict[str, list[int]] = {}
        self._tcp: dict[tuple[int, int, int, int, str], tuple[ConntrackEntry, int]] = {}
        self._udp: dict[tuple[int, int, int, int, str], tuple[int, int]] = {}  # expires, pod
        self._next_sweep = SWEEP_MS

    def program(self, service: ServiceInfo, pod_ips: list[int]) -> None:
        """syncProxyRules(): the endpoints in the rules now; stale UDP entries go."""
        self.endpoints[service.name] = list(pod_ips)
        if service.protocol == "UDP":
            keep = set(pod_ips)
            for key, (_, pod) in list(self._udp.items()):
                if key[2] == service.vip and key[3] == service.port and pod not in keep:
                    del self._udp[key]

    def _sweep(self, ms: int) -> None:
        if ms < self._next_sweep:
            return
        self._next_sweep = ms + SWEEP_MS
        for key, (entry, _) in list(self._tcp.items()):
            if entry.expires <= ms:
                del self._tcp[key]
        for ukey, (expires, _) in list(self._udp.items()):
            if expires <= ms:
                del self._udp[ukey]

    def _pick(self, service: ServiceInfo) -> int:
        endpoints = self.endpoints.get(service.name, [])
        return endpoints[self._rng.randrange(len(endpoints))] if endpoints else 0

    def syn(self, client: int, port: int, service: ServiceInfo, now: int) -> Forwarded:
        ms = now // 1000
        self._sweep(ms)
        key = _key(client, port, service)
        found = self._tcp.get(key)
        entry = found[0] if found else None
        if found is not None and status_for_syn(entry, ms) is ConntrackStatus.CONFIRMED:
            track(found[0], TcpFlags.SYN, Direction.INPUT, ms)
            return Forwarded(found[1], "CONNTRACK_EXISTING", "")
        pod = self._pick(service)
        if not pod:
            self._tcp.pop(key, None)
            return Forwarded(0, "REJECT_NO_ENDPOINTS", "", refused=True)
        self._tcp[key] = (track(None, TcpFlags.SYN, Direction.INPUT, ms), pod)
        return Forwarded(pod, "NAT_REOPEN" if found else "NAT_NEW", "")

    def _segment(
        self,
        client: int,
        port: int,
        service: ServiceInfo,
        direction: Direction,
        flags: TcpFlags,
        ms: int,
    ) -> None:
        found = self._tcp.get(_key(client, port, service))
        if found is not None:
            track(found[0], flags, direction, ms)

    def synack(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        self._segment(
            client, port, service, Direction.OUTPUT, TcpFlags.SYN | TcpFlags.ACK, now // 1000
        )
        return True

    def ack(self, client: int, port: int, service: ServiceInfo, now: int) -> None:
        self._segment(client, port, service, Direction.INPUT, TcpFlags.ACK, now // 1000)

    def close(
        self, client: int, port: int, service: ServiceInfo, style: CloseStyle, now: int
    ) -> None:
        for direction, flags in _CLOSE_SEGMENTS[style]:
            self._segment(client, port, service, direction, flags, now // 1000)

    def client_rst(self, client: int, port: int, service: ServiceInfo, now: int) -> None:
        self._segment(client, port, service, Direction.INPUT, TcpFlags.RST, now // 1000)

    def datagram(self, client: int, port: int, service: ServiceInfo, now: int) -> Forwarded:
        ms = now // 1000
        self._sweep(ms)
        key = _key(client, port, service)
        found = self._udp.get(key)
        if found is not None and found[0] > ms:
            self._udp[key] = (max(found[0], ms + UDP_TIMEOUT_MS), found[1])
            return Forwarded(found[1], "CONNTRACK_EXISTING", "")
        pod = self._pick(service)
        if not pod:
            return Forwarded(0, "REJECT_NO_ENDPOINTS", "", refused=True)
        self._udp[key] = (ms + UDP_TIMEOUT_MS, pod)
        return Forwarded(pod, "NAT_NEW", "")

    def reply(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        key = _key(client, port, service)
        found = self._udp.get(key)
        if found is not None:
            self._udp[key] = (now // 1000 + UDP_STREAM_TIMEOUT_MS, found[1])
        return True

    def entry(self, client: int, port: int, service: ServiceInfo, now: int) -> EntryView | None:
        ms = now // 1000
        if service.protocol == "UDP":
            ufound = self._udp.get(_key(client, port, service))
            if ufound is None or ufound[0] <= ms:
                return None
            return EntryView("UDP", f"{_dotted(ufound[1])}:{service.target_port}", ufound[0] - ms)
        found = self._tcp.get(_key(client, port, service))
        if found is None or found[0].expires <= ms:
            return None
        state = CtTcpState(found[0].state).name
        return EntryView(state, f"{_dotted(found[1])}:{service.target_port}", found[0].expires - ms)

    def template(self, client: int, port: int, service: ServiceInfo, now: int) -> EntryView | None:
        return None


class DirectDataplane(_PerPacketDataplane):
    """A load balancer, an ingress or a mesh sidecar straight to pod IPs."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.masquerade_ip = 0
        self.endpoints: dict[str, list[int]] = {}
        self._next: dict[str, int] = {}

    def program(self, service: ServiceInfo, pod_ips: list[int]) -> None:
        self.endpoints[service.name] = list(pod_ips)

    def syn(self, client: int, port: int, service: ServiceInfo, now: int) -> Forwarded:
        endpoints = self.endpoints.get(service.name, [])
        if not endpoints:
            # The proxy answers itself (an HTTP 503 or a refused connection).
            return Forwarded(0, "NO_ENDPOINTS", "", refused=True)
        turn = self._next.get(service.name, 0)
        self._next[service.name] = turn + 1
        return Forwarded(endpoints[turn % len(endpoints)], "PROXY_PICK", "")

    datagram = syn

    def synack(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        return True

    def reply(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        return True

    def ack(self, client: int, port: int, service: ServiceInfo, now: int) -> None:
        return None

    def close(
        self, client: int, port: int, service: ServiceInfo, style: CloseStyle, now: int
    ) -> None:
        return None

    def client_rst(self, client: int, port: int, service: ServiceInfo, now: int) -> None:
        return None

    def entry(self, client: int, port: int, service: ServiceInfo, now: int) -> EntryView | None:
        return None

    def template(self, client: int, port: int, service: ServiceInfo, now: int) -> EntryView | None:
        return None


def _dotted(ip: int) -> str:
    return f"{ip >> 24 & 255}.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}"
