"""Firewall-mark services in the packet path (ipvsadm -A -f MARK).

Kernel facts (ip_vs_ctl.c, ip_vs_core.c; the same since 2.6):
* ip_vs_service_find() looks up the fwmark table first when the packet has a mark
  (skb->mark), matching the mark and the address family only; the
  (protocol, vaddr, vport) table is consulted only when that finds nothing. A
  2026 nf-next patch ("ipvs: use more counters to avoid service lookups") skips
  the tables that are empty, which gives the same answers.
* ip_vs_schedule(): a fwmark service schedules any destination port; the new
  entry is keyed by the packet's own protocol, client, vaddr and vport.
* ip_vs_sched_persist(): a persistent fwmark service's template is
  <IPPROTO_IP, client network, 0, fwmark, 0> (the mark in the first 32 bits of
  the address), so one template covers every port and protocol of the mark.
* Existing entries are found by their key in ip_vs_in(); the service lookup only
  runs when a packet is scheduled.
"""

from __future__ import annotations

import ipaddress

import pytest
from conftest import ACK, CLIENT, SYN, SYNACK, V6_1, VIP

from ipvslab.kernel.connection import connection_key
from ipvslab.kernel.decision import Outcome
from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.ipvs import IpvsKernel, PacketResult
from ipvslab.kernel.packet import IPAddress, Packet, Protocol, SctpReply, TcpFlags
from ipvslab.kernel.sctp_states import SctpChunk
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls

MARK = 0x10
WEB = [ipaddress.IPv4Address(f"10.244.3.{i}") for i in (1, 2, 3)]
FWM = [ipaddress.IPv4Address(f"10.244.4.{i}") for i in (1, 2, 3)]
VIP6 = ipaddress.IPv6Address("fd00::10")
CLIENT6 = ipaddress.IPv6Address("fd00::1:5")


class World:
    """An address service TCP VIP:80 and a fwmark service MARK (optionally -p)."""

    def __init__(self, persistence: int = 0, netmask: int = 24) -> None:
        self.kernel = IpvsKernel(V6_1, Sysctls())
        self.web = self.kernel.add_service(VirtualService(Protocol.TCP, VIP, 80, "rr"))
        self.fwm = self.kernel.add_service(
            VirtualService.fwmark_service(
                MARK, "rr", persistence_timeout=persistence, netmask=netmask
            )
        )
        self.web_servers = [self.kernel.add_dest(self.web, a, 8080) for a in WEB]
        self.fwm_servers = [self.kernel.add_dest(self.fwm, a, 0) for a in FWM]

    def send(
        self,
        flags: TcpFlags,
        now: int,
        *,
        mark: int = 0,
        vport: int = 80,
        cport: int = 40000,
        client: IPAddress = CLIENT,
        vip: IPAddress = VIP,
        protocol: Protocol = Protocol.TCP,
    ) -> PacketResult:
        pkt = Packet(protocol, client, cport, vip, vport, flags, mark=mark)
        return self.kernel.receive(pkt, now)


def test_marked_packet_goes_to_the_fwmark_service_over_the_address_service() -> None:
    w = World()
    res = w.send(SYN, 0, mark=MARK)
    assert res.outcome is Outcome.SCHEDULE
    assert res.dest in w.fwm_servers
    assert w.kernel.service_for(Packet(Protocol.TCP, CLIENT, 1, VIP, 80, mark=MARK)) is w.fwm


def test_unmarked_packet_goes_to_the_address_service() -> None:
    w = World()
    res = w.send(SYN, 0)
    assert res.dest in w.web_servers
    assert w.kernel.service_for(Packet(Protocol.TCP, CLIENT, 1, VIP, 80)) is w.web


def test_a_mark_without_a_service_falls_through_to_the_address_service() -> None:
    w = World()
    assert w.send(SYN, 0, mark=MARK + 1).dest in w.web_servers


def test_fwmark_service_matches_its_address_family_only() -> None:
    w = World()
    web6 = w.kernel.add_service(VirtualService(Protocol.TCP, VIP6, 80, "rr", netmask=128))
    (six,) = [w.kernel.add_dest(web6, ipaddress.IPv6Address("fd00::3:1"), 8080)]
    res = w.send(SYN, 0, mark=MARK, client=CLIENT6, vip=VIP6)
    assert res.dest is six  # the IPv4 fwmark service does not take IPv6 packets
    fwm6 = w.kernel.add_service(VirtualService.fwmark_service(MARK, ipv6=True, netmask=128))
    (six_fwm,) = [w.kernel.add_dest(fwm6, ipaddress.IPv6Address("fd00::4:1"), 0)]
    assert w.send(SYN, 1, mark=MARK, client=CLIENT6, vip=VIP6, cport=40001).dest is six_fwm


def test_fwmark_service_schedules_any_port_and_protocol_keyed_by_the_real_ones() -> None:
    w = World()
    elsewhere = ipaddress.IPv4Address("192.0.2.7")  # no address service at all
    res = w.send(SYN, 0, mark=MARK, vip=elsewhere, vport=8443)
    assert res.dest in w.fwm_servers
    key = connection_key(Protocol.TCP, CLIENT, 40000, elsewhere, 8443)
    conn = w.kernel.table.get(key)
    assert conn is not None and conn.dest is res.dest
    udp = Packet(Protocol.UDP, CLIENT, 5353, elsewhere, 53, mark=MARK)
    assert w.kernel.receive(udp, 1).dest in w.fwm_servers
    sctp = Packet(
        Protocol.SCTP, CLIENT, 2905, elsewhere, 2905, sctp_chunk=SctpChunk.INIT, mark=MARK
    )
    assert w.kernel.receive(sctp, 2).dest in w.fwm_servers
    assert w.kernel.reply(sctp, SctpReply(SctpChunk.INIT_ACK), 3)


def test_unmarked_packet_for_an_unserved_address_is_refused() -> None:
    w = World()
    with pytest.raises(ValueError, match="no virtual service"):
        w.send(SYN, 0, vip=ipaddress.IPv4Address("192.0.2.7"))


def test_existing_entry_wins_whatever_the_mark() -> None:
    """ip_vs_in() finds the entry by its key before any service lookup."""
    w = World()
    first = w.send(SYN, 0)
    assert first.dest in w.web_servers
    w.kernel.reply(Packet(Protocol.TCP, CLIENT, 40000, VIP, 80), SYNACK, 1)
    later = w.send(ACK, 2, mark=MARK)
    assert later.outcome is Outcome.FORWARD_EXISTING and later.dest is first.dest


def test_persistence_on_a_fwmark_service_spans_ports() -> None:
    """The classic use: HTTP and HTTPS of one client on the same real server."""
    w = World(persistence=300)
    http = w.send(SYN, 0, mark=MARK, vport=80, cport=40000)
    https = w.send(SYN, 1, mark=MARK, vport=443, cport=40001)
    other_port = w.send(SYN, 2, mark=MARK, vport=8443, cport=40002)
    neighbour = w.send(SYN, 3, mark=MARK, vport=443, cport=40003, client=CLIENT + 1)
    assert http.dest is not None and http.dest in w.fwm_servers
    assert https.dest is http.dest and other_port.dest is http.dest
    assert neighbour.dest is http.dest  # same /24 client network
    (template,) = w.kernel.templates.values()
    network = ipaddress.IPv4Address(int(CLIENT) & 0xFFFFFF00)
    assert template.key == connection_key(Protocol.IP, network, 0, ipaddress.IPv4Address(MARK), 0)
    assert template.n_control == 4
    assert http.dest.persistent_conns == 1
    far = w.send(SYN, 4, mark=MARK, client=ipaddress.IPv4Address("10.9.9.9"))
    assert far.dest is not http.dest  # another network: a new template, rr moves on
    assert len(w.kernel.templates) == 2


def test_persistence_spans_protocols_of_the_mark() -> None:
    w = World(persistence=300)
    tcp = w.send(SYN, 0, mark=MARK, vport=443)
    udp = Packet(Protocol.UDP, CLIENT, 5000, VIP, 443, mark=MARK)  # QUIC next to HTTPS
    assert w.kernel.receive(udp, 1).dest is tcp.dest
    assert len(w.kernel.templates) == 1


def test_address_services_keep_one_template_per_port() -> None:
    """Without the mark, -p on VIP:80 and VIP:443 makes two independent templates."""
    kernel = IpvsKernel(V6_1, Sysctls())
    dests: dict[int, list[RealServer]] = {}
    for port in (80, 443):
        svc = kernel.add_service(
            VirtualService(Protocol.TCP, VIP, port, "rr", persistence_timeout=300)
        )
        dests[port] = [kernel.add_dest(svc, a, port) for a in FWM]
    kernel.receive(Packet(Protocol.TCP, CLIENT, 40000, VIP, 80, SYN), 0)
    kernel.receive(Packet(Protocol.TCP, CLIENT, 40001, VIP, 443, SYN), 1)
    assert len(kernel.templates) == 2


def test_ipv6_fwmark_template_address_carries_the_mark_in_its_first_word() -> None:
    kernel = IpvsKernel(V6_1, Sysctls())
    svc = kernel.add_service(
        VirtualService.fwmark_service(MARK, ipv6=True, persistence_timeout=60, netmask=64)
    )
    kernel.add_dest(svc, ipaddress.IPv6Address("fd00::4:1"), 0)
    kernel.receive(Packet(Protocol.TCP, CLIENT6, 40000, VIP6, 443, SYN, mark=MARK), 0)
    (template,) = kernel.templates.values()
    assert svc.fwmark_addr == ipaddress.IPv6Address(MARK << 96)
    network = ipaddress.IPv6Address(int(CLIENT6) >> 64 << 64)
    assert template.key == connection_key(Protocol.IP, network, 0, svc.fwmark_addr, 0)


def test_fwmark_services_are_checked_like_ipvsadm_does() -> None:
    kernel = IpvsKernel(V6_1, Sysctls())
    svc = kernel.add_service(VirtualService.fwmark_service(MARK))
    assert svc.label == f"FWM  {MARK}"
    assert kernel.services == [svc]
    with pytest.raises(ValueError, match="already exists"):
        kernel.add_service(VirtualService.fwmark_service(MARK))
    kernel.add_service(VirtualService.fwmark_service(MARK, ipv6=True))  # other family
    with pytest.raises(ValueError, match="no address or port"):
        VirtualService(Protocol.TCP, VIP, 80, fwmark=MARK)
    with pytest.raises(ValueError, match="32-bit"):
        VirtualService.fwmark_service(1 << 32)


def test_server_removal_on_a_fwmark_service_uses_its_trash() -> None:
    w = World()
    res = w.send(SYN, 0, mark=MARK)
    assert res.dest is not None
    w.kernel.del_dest(w.fwm, res.dest, 1)
    revived = w.kernel.add_dest(w.fwm, res.dest.addr, 0)
    assert revived is res.dest  # ip_vs_trash_get_dest(): same object, same counters
    assert revived.total_conns == 1


def test_batch_path_takes_marked_packets_like_receive() -> None:
    plain, fast = World(persistence=60), World(persistence=60)
    stream: list[tuple[Packet, int, TcpFlags | SctpReply | None]] = []
    for i, (mark, vport) in enumerate([(MARK, 80), (0, 80), (MARK, 443), (MARK + 1, 80)]):
        pkt = Packet(Protocol.TCP, CLIENT, 41000 + i, VIP, vport, SYN, mark=mark)
        stream += [(pkt, 10 * i, None), (pkt, 10 * i + 1, SYNACK), (pkt, 10 * i + 2, None)]

    def view(w: World, r: PacketResult | bool) -> object:
        if isinstance(r, bool):
            return r
        servers = [*w.web_servers, *w.fwm_servers]
        return (r.decision, None if r.dest is None else servers.index(r.dest), r.new_entry)

    expected = [
        view(plain, plain.kernel.receive(p, t) if rep is None else plain.kernel.reply(p, rep, t))
        for p, t, rep in stream
    ]
    assert [view(fast, r) for r in fast.kernel.receive_batch(stream)] == expected
    assert {k: (c.state, c.expires) for k, c in fast.kernel.table.items()} == {
        k: (c.state, c.expires) for k, c in plain.kernel.table.items()
    }
    assert fast.kernel.templates.keys() == plain.kernel.templates.keys()
