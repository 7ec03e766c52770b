"""The memoised decisions and tables of the fast path, exhaustively.

decide() is memoised on the facts it reads, the TCP state machine is one flat
table and the conntrack twin's steps are memoised per entry state. A memo key
that missed a fact would let one packet's answer be reused for another that
differs in just that fact. So every combination of the facts (entry state,
entry flags, server weight 0 / removed / none, controlled entry, conntrack
state, packet flags, protocol) is sent, one after another, through ONE kernel's
receive_batch() (every memo warm with the combinations before it) and through
the one-packet path of a kernel that runs decide() afresh each time; results,
entries, counters and conntrack must agree after every packet. SCTP gets the
same treatment chunk by chunk, both ways, on every state of both state machines.
"""

from __future__ import annotations

import ipaddress
import itertools

import pytest
from conftest import PRE_4_1, TOS, V4_1, V4_19, V4_19_OLD_SCTP, V5_16, V6_1
from test_fast_path_batch import receive_uncached

from ipvslab.kernel.connection import (
    F_INACTIVE,
    F_NFCT,
    F_NOOUTPUT,
    Connection,
    ControlledConnection,
    Template,
    connection_key,
)
from ipvslab.kernel.conntrack import ConntrackEntry, CtTcpState
from ipvslab.kernel.dest import ForwardMethod, RealServer
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.ipvs import _CT_TABLE, IpvsKernel, PacketResult
from ipvslab.kernel.packet import Packet, Protocol, SctpReply, TcpFlags
from ipvslab.kernel.sctp_states import LegacySctpState, SctpChunk, SctpState
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import TcpState

VIP = ipaddress.IPv4Address("10.96.0.10")
CLIENT = ipaddress.IPv4Address("10.244.1.5")
NOW = 1_000
# (name, weight, removed from the service)
DESTS = [("ok", 1, False), ("weight0", 0, False), ("removed", 1, True), ("removed0", 0, True)]
# Conntrack on the flow before the packet: none, live and open, closed and
# reopenable by a SYN, closed by a server RST (not reopenable), dead.
CONNTRACK = [
    None,
    (CtTcpState.ESTABLISHED, NOW + 60_000, False, False),
    (CtTcpState.ESTABLISHED, NOW + 60_000, True, False),
    (CtTcpState.TIME_WAIT, NOW + 60_000, True, False),
    (CtTcpState.TIME_WAIT, NOW + 60_000, False, False),
    (CtTcpState.CLOSE, NOW + 60_000, False, False),
    (CtTcpState.CLOSE, NOW + 60_000, False, True),
    (CtTcpState.SYN_SENT, NOW - 1, False, False),
]
CONN_FLAGS = [0, F_NOOUTPUT, F_NFCT, F_NOOUTPUT | F_NFCT | F_INACTIVE]
# What decide() sees of conntrack: none, confirmed, new (reopenable), new (dead).
CONNTRACK_FOR_DECIDE = [CONNTRACK[0], CONNTRACK[1], CONNTRACK[3], CONNTRACK[6], CONNTRACK[7]]
PACKET_FLAGS = [TcpFlags.SYN, TcpFlags.ACK, TcpFlags.RST, TcpFlags.SYN | TcpFlags.ACK]
CASES: list[tuple[str, KernelFeatures, Sysctls]] = [
    ("3.10", PRE_4_1, Sysctls(conntrack=1, expire_nodest_conn=1)),
    ("4.1", V4_1, Sysctls(conntrack=1)),
    ("4.19", V4_19, Sysctls(conntrack=1, expire_nodest_conn=1)),
    ("TencentOS", TOS, Sysctls(conntrack=1, conn_reuse_old_conntrack=0)),
    ("5.16 mode 0", V5_16, Sysctls(conn_reuse_mode=0, conntrack=1, expire_nodest_conn=1)),
    ("6.1 mode 3", V6_1, Sysctls(conn_reuse_mode=3, conntrack=0, expire_nodest_conn=1)),
]


class Pair:
    """The plain, never-memoised kernel and the batch kernel, built alike."""

    def __init__(self, features: KernelFeatures, sysctls: Sysctls) -> None:
        self.plain = IpvsKernel(features, sysctls)
        self.fast = IpvsKernel(features, sysctls)
        self.servers: dict[str, list[RealServer]] = {"plain": [], "fast": []}
        for name, kernel in (("plain", self.plain), ("fast", self.fast)):
            for proto, port in ((Protocol.TCP, 80), (Protocol.UDP, 53), (Protocol.SCTP, 5000)):
                svc = kernel.add_service(VirtualService(proto, VIP, port, "rr"))
                for i, (_, weight, removed) in enumerate(DESTS):
                    addr = ipaddress.IPv4Address(f"10.244.2.{i + 1}")
                    dest = kernel.add_dest(svc, addr, 8080, weight, forward=ForwardMethod.MASQ)
                    self.servers[name].append(dest)
                    if removed:
                        kernel.del_dest(svc, dest, 0)
            kernel.advance(NOW)
        self.port = 1024

    def craft(
        self,
        protocol: Protocol,
        vport: int,
        state: int,
        flags: int,
        dest_index: int | None,
        controlled: bool,
        conntrack: tuple[CtTcpState, int, bool, bool] | None,
    ) -> int:
        """The same hand-made entry (and conntrack) in both kernels; returns the port."""
        self.port += 1
        for name, kernel in (("plain", self.plain), ("fast", self.fast)):
            key = connection_key(protocol, CLIENT, self.port, VIP, vport)
            dest = None
            if dest_index is not None:
                offset = {80: 0, 53: 4, 5000: 8}[vport]
                dest = self.servers[name][offset + dest_index]
            conn: Connection
            if controlled:
                assert dest is not None
                template = Template(0, dest, NOW + 30_000, 30_000)
                template.n_control = 1
                conn = ControlledConnection(dest, state, flags, NOW + 50_000, template)
            else:
                conn = Connection(dest, state, flags, NOW + 50_000)
            kernel.table.insert(key, conn)
            if conntrack is not None:
                kernel.conntrack[key] = ConntrackEntry(*conntrack)
        return self.port

    def send(self, packet: Packet, reply: TcpFlags | SctpReply | None) -> None:
        if reply is None:
            plain: PacketResult | bool = receive_uncached(self.plain, packet, NOW)
        else:
            plain = self.plain.reply(packet, reply, NOW)
        (fast,) = self.fast.receive_batch([(packet, NOW, reply)])
        assert self.view(fast, "fast") == self.view(plain, "plain"), packet
        assert self.entry(packet, "fast") == self.entry(packet, "plain"), packet

    def view(self, result: PacketResult | bool, name: str) -> object:
        if isinstance(result, bool):
            return result
        dest = None
        if result.dest is not None:
            (dest,) = [i for i, s in enumerate(self.servers[name]) if s is result.dest]
        return (result.decision, dest, result.new_entry)

    def entry(self, packet: Packet, name: str) -> object:
        kernel = self.plain if name == "plain" else self.fast
        key = connection_key(
            packet.protocol,
            packet.client_addr,
            packet.client_port,
            packet.virtual_addr,
            packet.virtual_port,
        )
        conn = kernel.table.get(key)
        track = kernel.conntrack.get(key)
        servers = [(s.active_conns, s.inactive_conns, s.overloaded) for s in self.servers[name]]
        return (
            None if conn is None else (int(conn.state), conn.flags, conn.expires),
            None
            if track is None
            else (int(track.state), track.expires, track.fin_seen, track.last_rst_from_client),
            servers,
            len(kernel.table),
            kernel.expired.connections,
        )


@pytest.mark.parametrize(("features", "sysctls"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_combination_of_decision_facts(features: KernelFeatures, sysctls: Sysctls) -> None:
    _CT_TABLE[:] = [None] * len(_CT_TABLE)  # the conntrack memo starts cold here
    pair = Pair(features, sysctls)
    tcp_states = [int(s) for s in TcpState]
    domains = [
        (Protocol.TCP, 80, tcp_states),
        (Protocol.UDP, 53, [0]),
        (Protocol.SCTP, 5000, [0, 1, 5]),
    ]
    for protocol, vport, states in domains:
        for state, flags, dest_index, controlled, conntrack, pflags in itertools.product(
            states,
            CONN_FLAGS,
            [None, 0, 1, 2, 3],
            [False, True],
            CONNTRACK_FOR_DECIDE,
            PACKET_FLAGS,
        ):
            if controlled and dest_index is None:
                continue
            port = pair.craft(protocol, vport, state, flags, dest_index, controlled, conntrack)
            pkt = Packet(protocol, CLIENT, port, VIP, vport, pflags)
            pair.send(pkt, None)
    # No entry at all, every packet kind.
    for protocol, vport, _ in domains:
        for conntrack, pflags in itertools.product(CONNTRACK, PACKET_FLAGS):
            pair.port += 1
            pkt = Packet(protocol, CLIENT, pair.port, VIP, vport, pflags)
            if conntrack is not None:
                key = connection_key(protocol, CLIENT, pair.port, VIP, vport)
                pair.plain.conntrack[key] = ConntrackEntry(*conntrack)
                pair.fast.conntrack[key] = ConntrackEntry(*conntrack)
            pair.send(pkt, None)


@pytest.mark.parametrize("features", [PRE_4_1, V6_1], ids=["3.10", "6.1"])
def test_every_reply_on_every_entry(features: KernelFeatures) -> None:
    """ip_vs_out(): the OUTPUT table, NOOUTPUT cleared, conntrack in the reply direction."""
    _CT_TABLE[:] = [None] * len(_CT_TABLE)
    pair = Pair(features, Sysctls(conntrack=1))
    for state, flags, dest_index, conntrack, pflags in itertools.product(
        [int(s) for s in TcpState],
        CONN_FLAGS,
        [None, 0],
        CONNTRACK_FOR_DECIDE,
        [*PACKET_FLAGS, TcpFlags.FIN | TcpFlags.ACK, TcpFlags.FIN, TcpFlags.NONE],
    ):
        port = pair.craft(Protocol.TCP, 80, state, flags, dest_index, False, conntrack)
        pkt = Packet(Protocol.TCP, CLIENT, port, VIP, 80, TcpFlags.ACK)
        pair.send(pkt, pflags)


@pytest.mark.parametrize("features", [V4_1, V6_1], ids=["4.1", "6.1"])
def test_every_conntrack_step_both_ways(features: KernelFeatures) -> None:
    """The conntrack memo: every flow state, FIN/RST memory and segment, in and out."""
    _CT_TABLE[:] = [None] * len(_CT_TABLE)
    pair = Pair(features, Sysctls(conntrack=1))
    for state, flags, conntrack, pflags, reply in itertools.product(
        [int(TcpState.ESTABLISHED), int(TcpState.TIME_WAIT), int(TcpState.CLOSE)],
        [0, F_NFCT],
        CONNTRACK,
        [TcpFlags(f) for f in range(0x20)],
        [False, True],
    ):
        port = pair.craft(Protocol.TCP, 80, state, flags, 0, False, conntrack)
        pkt = Packet(Protocol.TCP, CLIENT, port, VIP, 80, TcpFlags.ACK if reply else pflags)
        pair.send(pkt, pflags if reply else None)


# SCTP packets: (first chunk, next chunk), every event, bundled ABORT, no chunk.
SCTP_CHUNKS: list[tuple[int | None, int | None]] = [
    (SctpChunk.INIT, None),
    (SctpChunk.INIT_ACK, None),
    (SctpChunk.COOKIE_ECHO, None),
    (SctpChunk.COOKIE_ACK, SctpChunk.ABORT),
    (SctpChunk.DATA, None),
    (SctpChunk.SHUTDOWN, None),
    (SctpChunk.SHUTDOWN_ACK, None),
    (SctpChunk.SHUTDOWN_COMPLETE, None),
    (SctpChunk.ERROR, None),
    (SctpChunk.ABORT, None),
    (None, None),
]


@pytest.mark.parametrize(
    "features",
    [PRE_4_1, V4_19_OLD_SCTP, V6_1],
    ids=["3.10 original machine", "RHEL7-like original machine", "6.1 current machine"],
)
def test_every_sctp_chunk_on_every_entry_both_ways(features: KernelFeatures) -> None:
    """set_sctp_state() from the flat tables: every state of the era's machine, every
    entry flag (NOOUTPUT read, cleared or ignored), with and without a server or a
    template, every event in and out."""
    pair = Pair(features, Sysctls(conntrack=1, expire_nodest_conn=1))
    states = SctpState if features.sctp_new_state_machine else LegacySctpState
    for state, flags, dest_index, controlled, chunks, inbound in itertools.product(
        [int(s) for s in states],
        CONN_FLAGS,
        [None, 0, 1],
        [False, True],
        SCTP_CHUNKS,
        [True, False],
    ):
        if controlled and dest_index is None:
            continue
        port = pair.craft(Protocol.SCTP, 5000, state, flags, dest_index, controlled, None)
        first, second = chunks
        if inbound:
            pkt = Packet(
                Protocol.SCTP, CLIENT, port, VIP, 5000, sctp_chunk=first, sctp_next_chunk=second
            )
            pair.send(pkt, None)
        else:
            pair.send(Packet(Protocol.SCTP, CLIENT, port, VIP, 5000), SctpReply(first, second))
