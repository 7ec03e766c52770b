"""Invariants of IpvsKernel under random operation sequences (hypothesis).

Kernel facts checked after every step (reference sections 3 and 4):
* ip_vs_bind_dest()/ip_vs_unbind_dest(), set_tcp_state() and set_sctp_state()
  (both SCTP machines) keep activeconns/inactconns equal to the live entries bound
  to the dest, split by IP_VS_CONN_F_INACTIVE, and an SCTP entry is active exactly
  when it is ESTABLISHED; persistconns equals the templates bound to it;
  counters are atomics that only go up on bind and down on unbind: never negative.
* an entry's timer fires at cp->timer.expires: once time has reached it, the
  entry is no longer in the table (nor counted).
* schedulers (rr) never pick a dest with weight 0 or OVERLOAD, and only linked
  (AVAILABLE) dests are on svc->destinations; ip_vs_check_template() keeps an
  existing template to a weight-0 dest unless expire_quiescent_template=1, and to
  an overloaded one always, but never to a dest that is not AVAILABLE.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass, field

from conftest import PRE_4_1, TOS, V4_1, V4_19, V4_19_OLD_SCTP, V5_9, V6_1, VIP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvslab.kernel.connection import F_INACTIVE, Connection, Template, connection_key
from ipvslab.kernel.dest import ForwardMethod, RealServer
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.ipvs import IpvsKernel
from ipvslab.kernel.packet import Packet, Protocol, SctpReply, TcpFlags
from ipvslab.kernel.sctp_states import LegacySctpState, SctpChunk, SctpState
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls

ERAS: list[tuple[str, KernelFeatures]] = [
    ("3.10", PRE_4_1),
    ("4.1", V4_1),
    ("4.19", V4_19),
    ("4.19 with the original SCTP machine (RHEL 7-like)", V4_19_OLD_SCTP),
    ("TencentOS", TOS),
    ("5.9", V5_9),
    ("6.1", V6_1),
]
CLIENTS = [
    ipaddress.IPv4Address("10.244.1.5"),
    ipaddress.IPv4Address("10.244.1.6"),  # same /24 as the first: shares templates
    ipaddress.IPv4Address("10.244.7.9"),
]
SERVER_ADDRS = [ipaddress.IPv4Address(f"10.244.2.{i}") for i in range(1, 4)]
PORTS = [40000, 40001, 40002]
FLAGS = [
    TcpFlags.SYN,
    TcpFlags.SYN | TcpFlags.ACK,
    TcpFlags.ACK,
    TcpFlags.FIN | TcpFlags.ACK,
    TcpFlags.RST,
]
C = SctpChunk
# SCTP packets (first chunk, next chunk), every event of both machines included.
CHUNKS: list[tuple[int | None, int | None]] = [
    (C.INIT, None),
    (C.INIT, None),
    (C.INIT_ACK, None),
    (C.COOKIE_ECHO, None),
    (C.COOKIE_ACK, None),
    (C.DATA, None),
    (C.SHUTDOWN, None),
    (C.SHUTDOWN_ACK, None),
    (C.SHUTDOWN_COMPLETE, None),
    (C.ABORT, None),
    (C.ERROR, None),
    (C.COOKIE_ECHO, C.ABORT),
    (None, None),
]
MS_DELAYS = [0, 1, 250, 999, 1000, 1500, 2500, 9_999, 10_000, 30_000, 60_500, 120_000, 900_000]
SECOND_DELAYS = [0, 1000, 2000, 10_000, 30_000, 60_000, 61_000, 120_000, 300_000, 900_000]


@dataclass
class World:
    features: KernelFeatures
    kernel: IpvsKernel
    services: list[VirtualService]
    servers: list[RealServer] = field(default_factory=list)  # every object ever created
    now: int = 0

    def add_server(self, svc_idx: int, srv_idx: int) -> None:
        svc = self.services[svc_idx]
        # server 1 has a connection threshold (OVERLOAD), server 2 is direct routing
        kw: dict[str, object] = {}
        if srv_idx == 1:
            kw["upper_threshold"] = 2
        if srv_idx == 2:
            kw["forward"] = ForwardMethod.ROUTE
        dest = self.kernel.add_dest(svc, SERVER_ADDRS[srv_idx], 8080, 1, **kw)
        if all(dest is not s for s in self.servers):
            self.servers.append(dest)


def build(features: KernelFeatures, persistent: bool, sctp: bool = False) -> World:
    kernel = IpvsKernel(features, Sysctls())
    services = [kernel.add_service(VirtualService(Protocol.TCP, VIP, 80, "rr"))]
    if persistent:
        services.append(
            kernel.add_service(
                VirtualService(Protocol.TCP, VIP, 443, "rr", persistence_timeout=30, netmask=24)
            )
        )
    if sctp:
        services.append(kernel.add_service(VirtualService(Protocol.SCTP, VIP, 3868, "rr")))
        services.append(
            kernel.add_service(
                VirtualService(Protocol.SCTP, VIP, 2905, "rr", persistence_timeout=30, netmask=24)
            )
        )
    world = World(features, kernel, services)
    for svc_idx in range(len(services)):
        for srv_idx in range(len(SERVER_ADDRS)):
            world.add_server(svc_idx, srv_idx)
    return world


def op_strategy(delays: list[int], services: int) -> st.SearchStrategy[tuple[object, ...]]:
    svc = st.integers(0, services - 1)
    srv = st.integers(0, len(SERVER_ADDRS) - 1)
    client = st.integers(0, len(CLIENTS) - 1)
    port = st.sampled_from(PORTS)
    flags = st.sampled_from(FLAGS)
    chunk = st.sampled_from(CHUNKS)
    sysctl = st.one_of(
        st.tuples(st.just("conn_reuse_mode"), st.integers(0, 3)),
        st.tuples(st.just("expire_nodest_conn"), st.integers(0, 1)),
        st.tuples(st.just("expire_quiescent_template"), st.integers(0, 1)),
        st.tuples(st.just("conntrack"), st.integers(0, 1)),
        st.tuples(st.just("conn_reuse_old_conntrack"), st.integers(0, 1)),
    )
    return st.one_of(
        st.tuples(st.just("in"), svc, client, port, flags, chunk),
        st.tuples(st.just("in"), svc, client, port, flags, chunk),  # client packets twice as likely
        st.tuples(st.just("out"), svc, client, port, flags, chunk),
        st.tuples(st.just("wait"), st.sampled_from(delays)),
        st.tuples(st.just("weight"), svc, srv, st.sampled_from([0, 1, 3])),
        st.tuples(st.just("del"), svc, srv),
        st.tuples(st.just("add"), svc, srv),
        st.tuples(st.just("sysctl"), sysctl),
    )


def packet(
    world: World,
    svc_idx: int,
    client: int,
    port: int,
    flags: TcpFlags,
    chunk: tuple[int | None, int | None] = (None, None),
) -> Packet:
    """A client packet: TCP flags for a TCP service, chunks for an SCTP one."""
    svc = world.services[svc_idx]
    if svc.protocol is Protocol.SCTP:
        return Packet(
            Protocol.SCTP,
            CLIENTS[client],
            port,
            svc.addr,
            svc.port,
            sctp_chunk=chunk[0],
            sctp_next_chunk=chunk[1],
        )
    return Packet(svc.protocol, CLIENTS[client], port, svc.addr, svc.port, flags)


def live_entries(world: World) -> list[tuple[int, Connection]]:
    return [(k, c) for k, c in world.kernel.table.items() if c.expires > world.now]


def check_counters(world: World) -> None:
    live = live_entries(world)
    # An invalidated template (ip_vs_check_template) stays bound to its server, and so
    # stays in its persistent count, until its own timer expires it.
    templates = [*world.kernel.templates.values(), *world.kernel.invalid_templates]
    for s in world.servers:
        assert s.active_conns >= 0 and s.inactive_conns >= 0 and s.persistent_conns >= 0, s
        active = sum(1 for _, c in live if c.dest is s and not c.flags & F_INACTIVE)
        inactive = sum(1 for _, c in live if c.dest is s and c.flags & F_INACTIVE)
        assert (s.active_conns, s.inactive_conns) == (active, inactive), (
            f"{s.label} counters {(s.active_conns, s.inactive_conns)} but live entries "
            f"{(active, inactive)} at {world.now} ms"
        )
        persistent = sum(1 for t in templates if t.dest is s)
        assert s.persistent_conns == persistent, (
            f"{s.label} persistconns {s.persistent_conns} but {persistent} templates"
        )


def check_sctp_activity(world: World) -> None:
    """set_sctp_state(): an SCTP entry counts as active exactly in ESTABLISHED."""
    established = (
        SctpState.ESTABLISHED
        if world.features.sctp_new_state_machine
        else LegacySctpState.ESTABLISHED
    )
    for key, conn in live_entries(world):
        if key >> 96 == Protocol.SCTP and conn.dest is not None:
            assert (conn.state == established) == (not conn.flags & F_INACTIVE), conn


def check_expiry(world: World) -> None:
    stale = [(k, c) for k, c in world.kernel.table.items() if c.expires <= world.now]
    assert not stale, f"entries past their expiry at {world.now} ms: {stale}"
    for svc_idx in range(len(world.services)):
        for client in range(len(CLIENTS)):
            for port in PORTS:
                pkt = packet(world, svc_idx, client, port, TcpFlags.ACK)
                seen = world.kernel.entry(pkt)
                assert seen is None or seen.expires > world.now
                key = connection_key(
                    pkt.protocol, pkt.client_addr, port, pkt.virtual_addr, pkt.virtual_port
                )
                in_table = world.kernel.table.get(key)
                live = in_table is not None and in_table.expires > world.now
                assert (seen is not None) == live


def run_packet(
    world: World,
    svc_idx: int,
    client: int,
    port: int,
    flags: TcpFlags,
    chunk: tuple[int | None, int | None] = (None, None),
) -> None:
    kernel = world.kernel
    svc = world.services[svc_idx]
    pkt = packet(world, svc_idx, client, port, flags, chunk)
    before = {id(s): (s.weight, s.overloaded, s.available, s.total_conns) for s in world.servers}
    linked = [d for d in svc.destinations]
    templates_before: list[Template] = list(kernel.templates.values())
    res = kernel.receive(pkt, world.now)
    if res.dropped:
        assert res.dest is None and not res.new_entry
        return
    if not res.new_entry:
        return
    dest = res.dest
    assert dest is not None
    weight, overloaded, available, total = before[id(dest)]
    assert available and any(dest is d for d in linked), f"new entry on removed {dest.label}"
    entry = kernel.entry(pkt)
    assert entry is not None and entry.dest is dest
    via_old_template = entry.control is not None and any(
        entry.control is t for t in templates_before
    )
    quiescent = kernel.sysctls.expire_quiescent_template
    if weight == 0:
        assert via_old_template and not quiescent, (
            f"new entry scheduled to weight-0 {dest.label} "
            f"(old template: {via_old_template}, expire_quiescent_template={quiescent})"
        )
    # OVERLOAD only clears on unbind: if nothing left this server during the call,
    # it was still overloaded when the scheduler ran.
    still_overloaded = overloaded and dest.total_conns == total + 1
    if still_overloaded:
        assert via_old_template, f"new entry scheduled to overloaded {dest.label}"


def run(world: World, ops: list[tuple[object, ...]]) -> None:
    kernel = world.kernel
    for op in ops:
        kind = op[0]
        if kind == "in":
            _, s, c, p, f, ch = op
            run_packet(world, s, c, p, f, ch)  # type: ignore[arg-type]
        elif kind == "out":
            _, s, c, p, f, ch = op
            pkt = packet(world, s, c, p, f, ch)  # type: ignore[arg-type]
            reply: TcpFlags | SctpReply = f  # type: ignore[assignment]
            if pkt.protocol is Protocol.SCTP:
                reply = SctpReply(*ch)  # type: ignore[misc]
            kernel.reply(pkt, reply, world.now)
        elif kind == "wait":
            world.now += op[1]  # type: ignore[operator]
            kernel.advance(world.now)
        elif kind == "weight":
            _, s, i, w = op
            svc = world.services[s]  # type: ignore[index]
            dest = svc.find_dest(SERVER_ADDRS[i], 8080)  # type: ignore[index]
            if dest is not None:
                kernel.set_weight(svc, dest, w)  # type: ignore[arg-type]
        elif kind == "del":
            _, s, i = op
            svc = world.services[s]  # type: ignore[index]
            dest = svc.find_dest(SERVER_ADDRS[i], 8080)  # type: ignore[index]
            if dest is not None:
                kernel.del_dest(svc, dest, world.now)
        elif kind == "add":
            _, s, i = op
            svc = world.services[s]  # type: ignore[index]
            if svc.find_dest(SERVER_ADDRS[i], 8080) is None:  # type: ignore[index]
                world.add_server(s, i)  # type: ignore[arg-type]
        elif kind == "sysctl":
            name, value = op[1]  # type: ignore[misc]
            if name == "conn_reuse_mode" and not world.features.conn_reuse_mode:
                continue  # the sysctl does not exist before 4.1
            if name == "conn_reuse_old_conntrack" and not world.features.reuse_old_conntrack:
                continue  # TencentOS only
            kernel.sysctls = dataclasses.replace(kernel.sysctls, **{name: value})
        check_counters(world)
        check_sctp_activity(world)
        check_expiry(world)


def _eras() -> st.SearchStrategy[KernelFeatures]:
    return st.sampled_from([f for _, f in ERAS])


COMMON = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@COMMON
@given(features=_eras(), ops=st.lists(op_strategy(SECOND_DELAYS, 1), min_size=5, max_size=60))
def test_counters_match_entries_whole_second_times(
    features: KernelFeatures, ops: list[tuple[object, ...]]
) -> None:
    """One rr service, times on whole seconds."""
    run(build(features, persistent=False), ops)


@COMMON
@given(features=_eras(), ops=st.lists(op_strategy(MS_DELAYS, 1), min_size=5, max_size=60))
def test_counters_and_expiry_hold_at_millisecond_times(
    features: KernelFeatures, ops: list[tuple[object, ...]]
) -> None:
    """Same, with times that fall between whole seconds (timers fire at expiry)."""
    run(build(features, persistent=False), ops)


@COMMON
@given(features=_eras(), ops=st.lists(op_strategy(SECOND_DELAYS, 2), min_size=5, max_size=60))
def test_invariants_with_a_persistent_service(
    features: KernelFeatures, ops: list[tuple[object, ...]]
) -> None:
    """An rr service plus a persistent one (-p 30, /24), whole-second times."""
    run(build(features, persistent=True), ops)


@COMMON
@given(features=_eras(), ops=st.lists(op_strategy(MS_DELAYS, 4), min_size=5, max_size=60))
def test_invariants_with_sctp_services(
    features: KernelFeatures, ops: list[tuple[object, ...]]
) -> None:
    """TCP services plus an SCTP one and a persistent SCTP one, chunk by chunk, with
    the original SCTP machine (3.10) and the current one (the other eras)."""
    run(build(features, persistent=True, sctp=True), ops)
