"""The fast path gives exactly what the plain path gives (hypothesis).

IpvsKernel.receive_batch() and the memoised decisions are speed-ups only: on any
stream of client packets, server replies, waits and ipvsadm/sysctl changes, a
kernel fed through receive_batch() must end every step with the same results
(outcome, decision path, server, new entry), the same entries (state, flags,
timer, server, template), the same server counters, templates, conntrack twin
and expiry log as a kernel fed one packet at a time through receive()/reply()
with decide() run afresh for every packet. Afterwards every entry must leave the
table at its exact expiry.

The streams cover TCP, UDP, SCTP (chunk by chunk: association setup either way,
data, shutdown either way, ABORT, bundled COOKIE+ABORT, packets without a chunk,
unknown chunk types; with the current and the original state machine) and
packets carrying a firewall mark, which a persistent fwmark service takes over.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

from conftest import PRE_4_1, TOS, V4_1, V4_19, V4_19_OLD_SCTP, V5_9, V5_16, V6_1
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvslab.kernel.dest import ForwardMethod, RealServer
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.ipvs import _TCP_NEXT, IpvsKernel, PacketResult
from ipvslab.kernel.packet import IPAddress, Packet, Protocol, SctpReply, TcpFlags
from ipvslab.kernel.sctp_states import SctpChunk
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import StateTable, TcpState, next_state

ERAS = [PRE_4_1, V4_1, V4_19, V4_19_OLD_SCTP, TOS, V5_9, V5_16, V6_1]
VIP4 = ipaddress.IPv4Address("10.96.0.10")
VIP6 = ipaddress.IPv6Address("fd00::10")
CLIENTS4: list[IPAddress] = [
    ipaddress.IPv4Address("10.244.1.5"),
    ipaddress.IPv4Address("10.244.1.6"),  # same /24: shares persistence templates
    ipaddress.IPv4Address("10.244.7.9"),
]
CLIENTS6: list[IPAddress] = [ipaddress.IPv6Address("fd00::1:5"), ipaddress.IPv6Address("fd00::2")]
SERVERS4 = [ipaddress.IPv4Address(f"10.244.2.{i}") for i in range(1, 4)]
SERVERS6 = [ipaddress.IPv6Address(f"fd00::2:{i}") for i in range(1, 4)]
PORTS = [40000, 40001, 40002]
FLAGS = [
    TcpFlags.SYN,
    TcpFlags.SYN,
    TcpFlags.SYN | TcpFlags.ACK,
    TcpFlags.ACK,
    TcpFlags.ACK,
    TcpFlags.FIN | TcpFlags.ACK,
    TcpFlags.FIN,
    TcpFlags.RST,
    TcpFlags.RST | TcpFlags.ACK,
    TcpFlags.NONE,
]
C = SctpChunk
# SCTP packets as (first chunk, next chunk): every event of both machines, the
# bundled-ABORT pairs, a packet too short for a chunk, unknown and bundled types.
CHUNKS: list[tuple[int | None, int | None]] = [
    (C.INIT, None),
    (C.INIT, None),
    (C.INIT_ACK, None),
    (C.COOKIE_ECHO, None),
    (C.COOKIE_ACK, None),
    (C.DATA, None),
    (C.SACK, C.DATA),
    (C.HEARTBEAT, None),
    (C.SHUTDOWN, None),
    (C.SHUTDOWN_ACK, None),
    (C.SHUTDOWN_COMPLETE, None),
    (C.ABORT, None),
    (C.ERROR, None),
    (C.COOKIE_ECHO, C.ABORT),
    (C.COOKIE_ACK, C.ABORT),
    (None, None),
    (200, None),
]
DELAYS = [0, 0, 1, 250, 999, 1000, 1001, 2500, 3000, 4000, 10_000, 30_000, 60_000, 60_500]
DELAYS += [61_000, 120_000, 300_000, 900_000]

# A whole connection, or its first steps: (client packet?, flags).
CONNECTION = [
    (True, TcpFlags.SYN),
    (False, TcpFlags.SYN | TcpFlags.ACK),
    (True, TcpFlags.ACK),
    (True, TcpFlags.ACK),
    (True, TcpFlags.FIN | TcpFlags.ACK),
    (False, TcpFlags.ACK),
    (False, TcpFlags.FIN | TcpFlags.ACK),
    (True, TcpFlags.ACK),
]
# Whole SCTP associations, or their first steps: (client packet?, chunk, next chunk).
ASSOCIATIONS: list[list[tuple[bool, int | None, int | None]]] = [
    [  # client sets up, sends data, shuts down
        (True, C.INIT, None),
        (False, C.INIT_ACK, None),
        (True, C.COOKIE_ECHO, None),
        (False, C.COOKIE_ACK, None),
        (True, C.DATA, None),
        (False, C.SACK, None),
        (True, C.SHUTDOWN, None),
        (False, C.SHUTDOWN_ACK, None),
        (True, C.SHUTDOWN_COMPLETE, None),
    ],
    [  # client sets up, the server shuts down
        (True, C.INIT, None),
        (False, C.INIT_ACK, None),
        (True, C.COOKIE_ECHO, C.DATA),
        (False, C.COOKIE_ACK, None),
        (False, C.SHUTDOWN, None),
        (True, C.SHUTDOWN_ACK, None),
        (False, C.SHUTDOWN_COMPLETE, None),
    ],
    [  # set up, then the client aborts
        (True, C.INIT, None),
        (False, C.INIT_ACK, None),
        (True, C.COOKIE_ECHO, None),
        (False, C.COOKIE_ACK, None),
        (True, C.HEARTBEAT, None),
        (True, C.ABORT, None),
    ],
    [  # the server refuses the INIT, the client retries
        (True, C.INIT, None),
        (False, C.ABORT, None),
        (True, C.INIT, None),
        (True, C.INIT, None),
    ],
    [  # COOKIE-ECHO bundled with ABORT
        (True, C.INIT, None),
        (False, C.INIT_ACK, None),
        (True, C.COOKIE_ECHO, C.ABORT),
        (True, C.INIT, None),
    ],
]
FWMARK = 7


@dataclass(frozen=True)
class Spec:
    """One virtual service of the test world and where its packets go."""

    protocol: Protocol
    addr: IPAddress  # the packets' destination (any address for a fwmark service)
    port: int
    timeout: int = 0
    netmask: int = 32
    servers: tuple[IPAddress, ...] = tuple(SERVERS4)
    fwmark: int = 0

    def build(self) -> VirtualService:
        if self.fwmark:
            return VirtualService.fwmark_service(
                self.fwmark,
                "rr",
                ipv6=self.addr.version == 6,
                persistence_timeout=self.timeout,
                netmask=self.netmask,
            )
        return VirtualService(
            self.protocol,
            self.addr,
            self.port,
            "rr",
            persistence_timeout=self.timeout,
            netmask=self.netmask,
        )


SERVICES: list[Spec] = [
    Spec(Protocol.TCP, VIP4, 80),
    Spec(Protocol.UDP, VIP4, 53),
    Spec(Protocol.TCP, VIP4, 443, timeout=30, netmask=24),
    Spec(Protocol.SCTP, VIP4, 5000),
    Spec(Protocol.TCP, VIP6, 80, netmask=128, servers=tuple(SERVERS6)),
    # ipvsadm -A -f 7 -p 30 -M 255.255.255.0: takes marked packets to VIP4:80 and
    # VIP4:443 (and any other port), which the services above also match.
    Spec(Protocol.TCP, VIP4, 80, timeout=30, netmask=24, fwmark=FWMARK),
]
SCTP_SERVICE = 3
FWMARK_SERVICE = 5


def receive_uncached(kernel: IpvsKernel, pkt: Packet, now: int) -> PacketResult:
    """receive() with decide() run afresh: the decision memo is emptied first.

    (Emptying it rather than overriding the memo in a subclass keeps this working
    against the optional mypyc-compiled kernel, whose classes cannot be subclassed
    by interpreted code.)
    """
    kernel._verdicts.clear()
    return kernel.receive(pkt, now)


@dataclass
class World:
    kernel: IpvsKernel
    services: list[VirtualService]
    servers: list[RealServer] = field(default_factory=list)  # every object ever made

    def add_server(self, svc_idx: int, srv_idx: int) -> None:
        svc = self.services[svc_idx]
        kw: dict[str, object] = {}
        if srv_idx == 1:
            kw["upper_threshold"] = 2  # OVERLOAD comes and goes
        if srv_idx == 2:
            kw["forward"] = ForwardMethod.ROUTE  # NOOUTPUT, the INPUT-ONLY table
        addr = SERVICES[svc_idx].servers[srv_idx]
        dest = self.kernel.add_dest(svc, addr, 8080, 1, **kw)
        if all(dest is not s for s in self.servers):
            self.servers.append(dest)


def build(
    features: KernelFeatures,
    sysctls: Sysctls,
    tracking: bool,
    n_services: int,
) -> World:
    kernel = IpvsKernel(features, sysctls, track_conntrack=tracking)
    services = [kernel.add_service(spec.build()) for spec in SERVICES[:n_services]]
    world = World(kernel, services)
    for svc_idx in range(n_services):
        for srv_idx in range(3):
            world.add_server(svc_idx, srv_idx)
    return world


def packet(
    svc_idx: int,
    client: int,
    port: int,
    flags: TcpFlags,
    chunk: tuple[int | None, int | None] = (None, None),
    mark: bool = False,
) -> Packet:
    """A client packet for service ``svc_idx`` (its chunks if SCTP). ``mark``: it
    carries FWMARK, which the fwmark service takes when the world has it. Packets
    "for" the fwmark service go to VIP4:80 or VIP4:443 with the mark."""
    spec = SERVICES[svc_idx]
    clients = CLIENTS6 if spec.addr.version == 6 else CLIENTS4
    vport = spec.port
    if spec.fwmark:
        vport = 443 if port % 2 else 80
        mark = True
    return Packet(
        spec.protocol,
        clients[client % len(clients)],
        port,
        spec.addr,
        vport,
        flags,
        sctp_chunk=chunk[0],
        sctp_next_chunk=chunk[1],
        mark=FWMARK if mark else 0,
    )


# --- what must be equal ---------------------------------------------------------------------


def dest_name(world: World, dest: RealServer | None) -> int | None:
    if dest is None:
        return None
    (index,) = [i for i, s in enumerate(world.servers) if s is dest]
    return index


def result_view(world: World, result: PacketResult | bool) -> object:
    if isinstance(result, bool):
        return result
    return (result.decision, dest_name(world, result.dest), result.new_entry)


def snapshot(world: World) -> dict[str, object]:
    kernel = world.kernel
    entries = {}
    for key, conn in kernel.table.items():
        control = conn.control
        entries[key] = (
            type(conn).__name__,
            int(conn.state),
            conn.flags,
            conn.expires,
            dest_name(world, conn.dest),
            None if control is None else control.key,
        )
    templates = [
        (
            t.key,
            dest_name(world, t.dest),
            t.expires,
            t.timeout,
            t.n_control,
            t.assured,
        )
        for t in [*kernel.templates.values(), *kernel.invalid_templates]
    ]
    servers = [
        (
            s.weight,
            s.available,
            s.overloaded,
            s.active_conns,
            s.inactive_conns,
            s.persistent_conns,
        )
        for s in world.servers
    ]
    conntrack = {
        key: (int(e.state), e.expires, e.fin_seen, e.last_rst_from_client)
        for key, e in kernel.conntrack.items()
    }
    return {
        "entries": entries,
        "templates": templates,
        "servers": servers,
        "linked": [[dest_name(world, d) for d in svc.destinations] for svc in world.services],
        "conntrack": conntrack,
        "expired": dataclasses.astuple(kernel.expired),
    }


# --- the streams ----------------------------------------------------------------------------


def op_strategy(n_services: int) -> st.SearchStrategy[tuple[object, ...]]:
    svc = st.integers(0, n_services - 1)
    srv = st.integers(0, 2)
    client = st.integers(0, 2)
    port = st.sampled_from(PORTS)
    flags = st.sampled_from(FLAGS)
    chunk = st.sampled_from(CHUNKS)
    mark = st.booleans()
    sysctl = st.one_of(
        st.tuples(st.just("conn_reuse_mode"), st.integers(0, 3)),
        st.tuples(st.just("expire_nodest_conn"), st.integers(0, 1)),
        st.tuples(st.just("expire_quiescent_template"), st.integers(0, 1)),
        st.tuples(st.just("conntrack"), st.integers(0, 1)),
        st.tuples(st.just("conn_reuse_old_conntrack"), st.integers(0, 1)),
    )
    packet_op = st.tuples(st.just("in"), svc, client, port, flags, chunk, mark)
    conn_op = st.tuples(
        st.just("conn"), svc, client, port, st.integers(1, 9), st.integers(0, len(ASSOCIATIONS) - 1)
    )
    return st.one_of(
        conn_op,
        conn_op,
        packet_op,
        packet_op,
        packet_op,  # client packets most likely
        st.tuples(st.just("out"), svc, client, port, flags, chunk, mark),
        st.tuples(st.just("out"), svc, client, port, flags, chunk, mark),
        st.tuples(st.just("wait"), st.sampled_from(DELAYS)),
        st.tuples(st.just("wait"), st.sampled_from(DELAYS)),
        st.tuples(st.just("flush")),
        st.tuples(st.just("weight"), svc, srv, st.sampled_from([0, 1, 3])),
        st.tuples(st.just("del"), svc, srv),
        st.tuples(st.just("add"), svc, srv),
        st.tuples(st.just("sysctl"), sysctl),
        st.tuples(st.just("timeouts"), st.integers(0, 3), st.integers(0, 2), st.integers(0, 2)),
    )


def admin(world: World, op: tuple[object, ...], now: int, features: KernelFeatures) -> None:
    kernel = world.kernel
    kind = op[0]
    if kind in ("weight", "del", "add"):
        svc_idx, srv_idx = op[1], op[2]
        assert isinstance(svc_idx, int) and isinstance(srv_idx, int)
        svc = world.services[svc_idx]
        dest = svc.find_dest(SERVICES[svc_idx].servers[srv_idx], 8080)
        if kind == "weight" and dest is not None:
            weight = op[3]
            assert isinstance(weight, int)
            kernel.set_weight(svc, dest, weight)
        elif kind == "del" and dest is not None:
            kernel.del_dest(svc, dest, now)
        elif kind == "add" and dest is None:
            world.add_server(svc_idx, srv_idx)
    elif kind == "sysctl":
        setting = op[1]
        assert isinstance(setting, tuple)
        name, value = setting
        assert isinstance(name, str) and isinstance(value, int)
        if name == "conn_reuse_mode" and not features.conn_reuse_mode:
            return
        if name == "conn_reuse_old_conntrack" and not features.reuse_old_conntrack:
            return
        kernel.sysctls = dataclasses.replace(kernel.sysctls, **{name: value})
    elif kind == "timeouts":
        tcp, tcpfin, udp = op[1], op[2], op[3]
        assert isinstance(tcp, int) and isinstance(tcpfin, int) and isinstance(udp, int)
        kernel.timeouts.set(tcp * 7, tcpfin * 5, udp * 3)


Event = tuple[Packet, int, TcpFlags | SctpReply | None]


def run_both(
    features: KernelFeatures,
    sysctls: Sysctls,
    tracking: bool,
    n_services: int,
    ops: list[tuple[object, ...]],
) -> tuple[World, World, int]:
    plain = build(features, sysctls, tracking, n_services)
    fast = build(features, sysctls, tracking, n_services)
    now = 0
    batch: list[Event] = []
    plain_results: list[object] = []

    def flush() -> None:
        fast_results = [result_view(fast, r) for r in fast.kernel.receive_batch(batch)]
        assert fast_results == plain_results
        batch.clear()
        plain_results.clear()
        plain.kernel.advance(now)
        fast.kernel.advance(now)
        assert snapshot(fast) == snapshot(plain)

    expanded: list[tuple[object, ...]] = []
    for op in ops:
        if op[0] == "conn":
            svc_idx, steps, script = op[1], op[4], op[5]
            assert isinstance(svc_idx, int) and isinstance(steps, int)
            assert isinstance(script, int)
            if SERVICES[svc_idx].protocol is Protocol.SCTP:
                for inbound, first, second in ASSOCIATIONS[script][:steps]:
                    kind = "in" if inbound else "out"
                    expanded.append((kind, svc_idx, op[2], op[3], TcpFlags.NONE, (first, second)))
            else:
                for inbound, step_flags in CONNECTION[:steps]:
                    kind = "in" if inbound else "out"
                    expanded.append((kind, svc_idx, op[2], op[3], step_flags, (None, None)))
        else:
            expanded.append(op)
    for op in expanded:
        kind = op[0]
        if kind in ("in", "out"):
            svc_idx, client, port, flags, chunk = op[1], op[2], op[3], op[4], op[5]
            mark = len(op) > 6 and op[6] is True
            assert isinstance(svc_idx, int) and isinstance(client, int)
            assert isinstance(port, int) and isinstance(flags, TcpFlags)
            assert isinstance(chunk, tuple)
            pkt = packet(svc_idx, client, port, flags, chunk, mark)
            if kind == "in":
                plain_results.append(result_view(plain, receive_uncached(plain.kernel, pkt, now)))
                batch.append((pkt, now, None))
            else:
                reply: TcpFlags | SctpReply = flags
                if pkt.protocol is Protocol.SCTP:
                    reply = SctpReply(*chunk)
                plain_results.append(plain.kernel.reply(pkt, reply, now))
                batch.append((pkt, now, reply))
        elif kind == "wait":
            delay = op[1]
            assert isinstance(delay, int)
            now += delay
        else:
            flush()
            if kind != "flush":
                admin(plain, op, now, features)
                admin(fast, op, now, features)
                assert snapshot(fast) == snapshot(plain)
    flush()
    return plain, fast, now


def check_exact_expiry(world: World, now: int) -> None:
    """Every entry still leaves the table at its exact expiry, by its timer."""
    kernel = world.kernel
    while len(kernel.table):
        first = min(conn.expires for _, conn in kernel.table.items())
        assert first > now, "an entry outlived its expiry"
        due = {key for key, conn in kernel.table.items() if conn.expires == first}
        kernel.advance(first - 1)
        assert all(key in kernel.table for key in due), "a timer fired early"
        kernel.advance(first)
        assert not any(key in kernel.table for key in due), "a timer was lost or late"
        now = first


SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def sysctls_for(draw: st.DrawFn, features: KernelFeatures) -> Sysctls:
    values = {
        "conntrack": draw(st.integers(0, 1)),
        "expire_nodest_conn": draw(st.integers(0, 1)),
        "expire_quiescent_template": draw(st.integers(0, 1)),
    }
    if features.conn_reuse_mode:
        values["conn_reuse_mode"] = draw(st.integers(0, 3))
    if features.reuse_old_conntrack:
        values["conn_reuse_old_conntrack"] = draw(st.integers(0, 1))
    return Sysctls(**values)


@st.composite
def scenario(
    draw: st.DrawFn, n_services: int
) -> tuple[KernelFeatures, Sysctls, bool, list[tuple[object, ...]]]:
    features = draw(st.sampled_from(ERAS))
    sysctls = draw(sysctls_for(features))
    tracking = draw(st.booleans())
    ops = draw(st.lists(op_strategy(n_services), min_size=5, max_size=100))
    return features, sysctls, tracking, ops


@SETTINGS
@given(case=scenario(1))
def test_batch_equals_plain_on_one_tcp_service(
    case: tuple[KernelFeatures, Sysctls, bool, list[tuple[object, ...]]],
) -> None:
    features, sysctls, tracking, ops = case
    plain, fast, now = run_both(features, sysctls, tracking, 1, ops)
    check_exact_expiry(fast, now)
    check_exact_expiry(plain, now)
    assert snapshot(fast) == snapshot(plain)


@SETTINGS
@given(case=scenario(len(SERVICES)))
def test_batch_equals_plain_with_udp_sctp_persistence_ipv6_and_fwmark(
    case: tuple[KernelFeatures, Sysctls, bool, list[tuple[object, ...]]],
) -> None:
    features, sysctls, tracking, ops = case
    plain, fast, now = run_both(features, sysctls, tracking, len(SERVICES), ops)
    check_exact_expiry(fast, now)
    check_exact_expiry(plain, now)
    assert snapshot(fast) == snapshot(plain)


def test_batch_results_are_the_one_packet_results_for_a_handshake() -> None:
    """A concrete stream, in one batch: SYN, SYN-ACK, ACK, FIN, FIN, ACK."""
    plain = build(V6_1, Sysctls(conntrack=1), True, 1)
    fast = build(V6_1, Sysctls(conntrack=1), True, 1)
    syn = packet(0, 0, 40000, TcpFlags.SYN)
    ack = packet(0, 0, 40000, TcpFlags.ACK)
    fin = packet(0, 0, 40000, TcpFlags.FIN | TcpFlags.ACK)
    stream: list[Event] = [
        (syn, 10, None),
        (syn, 10, TcpFlags.SYN | TcpFlags.ACK),
        (ack, 11, None),
        (fin, 500, None),
        (syn, 501, TcpFlags.FIN | TcpFlags.ACK),
        (ack, 502, None),
    ]
    expected = []
    for pkt, now, reply in stream:
        if reply is None:
            expected.append(result_view(plain, plain.kernel.receive(pkt, now)))
        else:
            expected.append(plain.kernel.reply(pkt, reply, now))
    got = [result_view(fast, r) for r in fast.kernel.receive_batch(stream)]
    assert got == expected
    assert snapshot(fast) == snapshot(plain)
    entry = fast.kernel.entry(syn)
    assert entry is not None and entry.state == TcpState.TIME_WAIT
    assert entry.expires == 502 + 2 * 60_000


def test_batch_refuses_a_packet_without_service_like_receive() -> None:
    world = build(V6_1, Sysctls(), True, 1)
    stray = Packet(Protocol.TCP, CLIENTS4[0], 40000, VIP4, 8443, TcpFlags.SYN)
    try:
        world.kernel.receive_batch([(stray, 0, None)])
    except ValueError as err:
        assert "no virtual service" in str(err)
    else:
        raise AssertionError("a packet for no service was accepted")
    # A reply for no entry is not an error, as reply() says.
    assert world.kernel.receive_batch([(stray, 0, TcpFlags.ACK)]) == [False]


def test_flat_transition_table_is_next_state() -> None:
    n = len(TcpState)
    for table in StateTable:
        for flags in range(0x20):
            for current in TcpState:
                cell = _TCP_NEXT[(table * 32 + flags) * n + current]
                assert cell is next_state(current, flags, table)
