"""kube-proxy's IPVS mode on one node: the kernel twin plus the iptables rules
kube-proxy installs beside it that change packet fates.

Rules (kube-proxy's IPVS proxier, every version this models):
- KUBE-FORWARD ``-m conntrack --ctstate INVALID -j DROP``: the filter table's
  FORWARD hook (priority 0) runs before IPVS's reply hook, so a pod's SYN|ACK
  that conntrack cannot place (no entry for the flow: nf_conntrack_proto_tcp's
  tcp_new() refuses a SYN|ACK as the first packet) is dropped. With
  net.ipv4.vs.conntrack=0 IPVS untracks its flows (ip_vs_notrack()), so every
  pod's SYN|ACK is INVALID and every connection through the node times out.
- KUBE-POSTROUTING MASQUERADE of marked packets (``--masquerade-all`` marks all
  Service traffic): the pod then sees the node's address, not the client pod's.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Final

from ipvslab.cluster.dataplane import EntryView, Forwarded, entry_label
from ipvslab.cluster.endpoints import ServiceInfo
from ipvslab.kernel.connection import connection_key, connection_key_v4
from ipvslab.kernel.decision import Decision, Outcome
from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.ipvs import IpvsKernel
from ipvslab.kernel.packet import Packet, Protocol, TcpFlags
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.tcp_states import TcpState
from ipvslab.scenario.model import CloseStyle, IpvsRules

# Finals: static when compiled (read on every packet).
SYN: Final = TcpFlags.SYN
SYNACK: Final = TcpFlags.SYN | TcpFlags.ACK
ACK: Final = TcpFlags.ACK
FINACK: Final = TcpFlags.FIN | TcpFlags.ACK
RST: Final = TcpFlags.RST
_TCP: Final = Protocol.TCP
_UDP: Final = Protocol.UDP

# The packets of each way to close, in order: (from the client?, flags).
# IPVS NAT sees both directions; tcp_states[] takes ESTABLISHED to TIME_WAIT for
# the two orderly closes and to CLOSE for a client RST.
CLOSE_PACKETS: dict[CloseStyle, tuple[tuple[bool, TcpFlags], ...]] = {
    CloseStyle.SERVER_FIRST: ((False, FINACK), (True, ACK), (True, FINACK), (False, ACK)),
    CloseStyle.CLIENT_FIRST: ((True, FINACK), (False, ACK), (False, FINACK), (True, ACK)),
    CloseStyle.CLIENT_RST: ((True, RST),),
}


class IpvsDataplane:
    name = "ipvs"

    def __init__(
        self,
        kernel: IpvsKernel,
        rules: IpvsRules,
        virtual: dict[str, VirtualService],
        node_ip: int,
    ) -> None:
        self.kernel = kernel
        self.rules = rules
        self.virtual = virtual
        self.masquerade_ip = node_ip if rules.masquerade_all else 0
        self._addrs: dict[int, IPv4Address] = {}
        # A decision's outcome name and "+"-joined path, by id() (the entry holds the
        # decision, so the id stays its own): Decision hashes by value, slowly.
        self._texts: dict[int, tuple[Decision, str, str]] = {}
        self._labels: dict[tuple[int, RealServer | None], str] = {}
        self.invalid_dropped = 0

    def _addr(self, ip: int) -> IPv4Address:
        found = self._addrs.get(ip)
        if found is None:
            found = self._addrs[ip] = IPv4Address(ip)
        return found

    def _packet(
        self, client: int, port: int, service: ServiceInfo, flags: TcpFlags = TcpFlags.NONE
    ) -> Packet:
        protocol = _TCP if service.protocol == "TCP" else _UDP
        return Packet(
            protocol, self._addr(client), port, self._addr(service.vip), service.port, flags
        )

    def _forwarded(
        self, decision: Decision, dest_ip: int, weight0: bool, removed: bool
    ) -> Forwarded:
        texts = self._texts.get(id(decision))
        if texts is None:
            path = "+".join(step.name for step in decision.path)
            texts = self._texts[id(decision)] = (decision, decision.outcome.name, path)
        # ip_vs_leave(): no server to schedule, ICMP port unreachable to the client.
        refused = decision.outcome is Outcome.NO_DEST_AVAILABLE
        return Forwarded(dest_ip, texts[1], texts[2], weight0, removed, refused)

    def _send(self, packet: Packet, now: int) -> Forwarded:
        # receive_batch() is receive() with its tables (the kernel's tests hold them
        # equal), the cheaper of the two even for one packet.
        result = self.kernel.receive_batch(((packet, now // 1000, None),))[0]
        assert not isinstance(result, bool)
        dest = result.dest
        if dest is None:
            return self._forwarded(result.decision, 0, False, False)
        return self._forwarded(
            result.decision, int(dest.addr), dest.weight == 0, not dest.available
        )

    def syn(self, client: int, port: int, service: ServiceInfo, now: int) -> Forwarded:
        return self._send(self._packet(client, port, service, SYN), now)

    def datagram(self, client: int, port: int, service: ServiceInfo, now: int) -> Forwarded:
        return self._send(self._packet(client, port, service), now)

    def _synack_dropped(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        """KUBE-FORWARD's ctstate INVALID drop of the pod's SYN|ACK (module docstring)."""
        if self.rules.drop_invalid and self.kernel.track_conntrack:
            # The flow's key from the integers, as entry_label() finds its entry.
            key = connection_key_v4(_TCP, client, port, service.vip, service.port)
            entry = self.kernel.conntrack.get(key)
            if entry is None or not entry.alive(now // 1000):
                self.invalid_dropped += 1
                return True
        return False

    def synack(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        if self._synack_dropped(client, port, service, now):
            return False
        packet = self._packet(client, port, service)
        self.kernel.receive_batch(((packet, now // 1000, SYNACK),))
        return True

    def handshake(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        if self._synack_dropped(client, port, service, now):
            return False
        packet = self._packet(client, port, service)
        ms = now // 1000
        ack = self._packet(client, port, service, ACK)
        self.kernel.receive_batch(((packet, ms, SYNACK), (ack, ms, None)))
        return True

    def reply(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        """A UDP reply from the pod (never INVALID: UDP has no such first packet)."""
        return self.kernel.reply(self._packet(client, port, service), TcpFlags.NONE, now // 1000)

    def ack(self, client: int, port: int, service: ServiceInfo, now: int) -> None:
        self.kernel.receive_batch(((self._packet(client, port, service, ACK), now // 1000, None),))

    def close(
        self, client: int, port: int, service: ServiceInfo, style: CloseStyle, now: int
    ) -> None:
        ms = now // 1000
        packet = self._packet(client, port, service)
        events = [
            (
                self._packet(client, port, service, flags) if inbound else packet,
                ms,
                None if inbound else flags,
            )
            for inbound, flags in CLOSE_PACKETS[style]
        ]
        self.kernel.receive_batch(events)

    def client_rst(self, client: int, port: int, service: ServiceInfo, now: int) -> None:
        self.kernel.receive(self._packet(client, port, service, RST), now // 1000)

    def entry_label(self, client: int, port: int, service: ServiceInfo, now: int) -> str:
        """What entry() shows as "STATE ip:port", or "" for no live entry."""
        protocol = _TCP if service.protocol == "TCP" else _UDP
        key = connection_key_v4(protocol, client, port, service.vip, service.port)
        conn = self.kernel.entry_by_key(key)
        if conn is None or conn.expires <= now // 1000:
            return ""
        memo_key = (conn.state if service.protocol != "UDP" else -1, conn.dest)
        label = self._labels.get(memo_key)
        if label is None:
            view = self.entry(client, port, service, now)
            assert view is not None
            label = self._labels[memo_key] = entry_label(view)
        return label

    def entry(self, client: int, port: int, service: ServiceInfo, now: int) -> EntryView | None:
        conn = self.kernel.entry(self._packet(client, port, service))
        if conn is None or conn.expires <= now // 1000:
            return None
        state = "UDP" if service.protocol == "UDP" else TcpState(conn.state).name
        server = conn.dest.label if conn.dest is not None else "-"
        return EntryView(state, server, conn.expires - now // 1000)

    def template(self, client: int, port: int, service: ServiceInfo, now: int) -> EntryView | None:
        virtual = self.virtual[service.name]
        if not virtual.persistent:
            return None
        packet = self._packet(client, port, service)
        network = virtual.template_network(packet.client_addr)
        protocol = _TCP if service.protocol == "TCP" else _UDP
        key = connection_key(protocol, network, 0, packet.virtual_addr, service.port)
        template = self.kernel.templates.get(key)
        if template is None or template.expires <= now // 1000:
            return None
        server = template.dest.label if template.dest is not None else "-"
        return EntryView("TEMPLATE", server, template.expires - now // 1000)
