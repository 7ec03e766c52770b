"""One node's IPVS: services, the connection table, and the packet paths.

`IpvsKernel` is the driver around the pure pieces: it looks services and entries
up (firewall-mark services first, as ip_vs_service_find() does), asks `decide()`
what ip_vs_in() would do, applies that (expire, drop, schedule, persistence),
runs the TCP and SCTP state machines and keeps the counters. Time is passed in
with every call (integer milliseconds); nothing here reads a clock.

receive() and reply() take one packet each and read as the kernel's paths do.
receive_batch() is the same path for many packets per call, with decide() and
the state machines looked up in tables (tests/kernel/test_fast_path_*.py hold it
to the one-packet path, result for result and state for state).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Final

from ipvslab.kernel.connection import (
    F_INACTIVE,
    F_NFCT,
    F_NOOUTPUT,
    IN_HEAP,
    Connection,
    ConnectionTable,
    ControlledConnection,
    Template,
    connection_key,
)
from ipvslab.kernel.conntrack import (
    ConntrackEntry,
    ConntrackStatus,
    CtTcpState,
    status_for_syn,
    track,
)
from ipvslab.kernel.decision import Decision, ExistingEntry, Outcome, StepKind, decide
from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.packet import Direction, IPAddress, Packet, Protocol, SctpReply, TcpFlags
from ipvslab.kernel.sctp_states import (
    DEFAULT_SCTP_TIMEOUTS,
    LEGACY_DEFAULT_SCTP_TIMEOUTS,
    LegacySctpState,
    SctpEvent,
    SctpState,
    event_for_chunk,
    legacy_event_for_chunk,
    legacy_next_state,
)
from ipvslab.kernel.sctp_states import next_state as sctp_next_state
from ipvslab.kernel.sctp_states import step as sctp_step
from ipvslab.kernel.service import ServiceFlags, VirtualService
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import (
    MINUTE,
    NEW_CONNECTION_TIMEOUT,
    UDP_STATE,
    StateTable,
    TcpState,
    Timeouts,
    active_states,
    next_state,
    state_table_for,
)

# ip_vs_conn_expire(): a template whose timer fires while it still controls
# entries is re-armed for 60 s (expire_later), and keeps that timeout.
EXPIRE_LATER: Final = 1 * MINUTE
# Invalidated templates are re-keyed with vport/dport 0xFFFF and cport 0
# (ip_vs_check_template()), so a new template can take their place.
INVALID_TEMPLATE_PORT: Final = 0xFFFF

_SYN: Final = TcpFlags.SYN.value
_TCP: Final = Protocol.TCP
_SCTP: Final = Protocol.SCTP
_SVC_PERSISTENT: Final = ServiceFlags.PERSISTENT.value
_N_STATES: Final = len(TcpState)

# The TCP state machine as one flat tuple, built from next_state() itself:
# index ((table * 32) + (flags & 0x1F)) * number of states + current state.
_TCP_NEXT: Final[tuple[TcpState, ...]] = tuple(
    next_state(current, flags, table)
    for table in StateTable
    for flags in range(0x20)
    for current in range(_N_STATES)
)
_TABLE_INPUT: Final = StateTable.INPUT * 32 * _N_STATES
_TABLE_OUTPUT: Final = StateTable.OUTPUT * 32 * _N_STATES
_TABLE_INPUT_ONLY: Final = StateTable.INPUT_ONLY * 32 * _N_STATES

# What the conntrack twin attaches to a packet, as the small integers the
# decision cache is keyed on.
_CT_STATUS: Final = (ConntrackStatus.NONE, ConntrackStatus.NEW, ConntrackStatus.CONFIRMED)
_CT_NONE: Final = 0
_CT_NEW: Final = 1
_CT_CONFIRMED: Final = 2
# Constants receive_batch() binds per call, as module finals (static when compiled).
_CT_NEW_STATUS: Final = ConntrackStatus.NEW
_ESTABLISHED: Final = TcpState.ESTABLISHED
_BUCKET_MS: Final = ConnectionTable.BUCKET_MS

# A conntrack step: (state, fin_seen, last_rst_from_client, timeout, fresh entry).
_CtStep = tuple[CtTcpState, bool, bool, int, bool]
# Steps by (state + 1, fin_seen, last_rst_from_client, direction, flags) packed as
# receive_batch() packs them (state + 1 is 0 for a missing or dead entry).
_CT_TABLE: Final[list[_CtStep | None]] = [None] * ((len(CtTcpState) + 1) << 8)


class _SctpMachine:
    """One SCTP state machine as flat tables, for the batch path.

    ``next[(row * events + event) * states + state]`` is the next state, where row
    is the direction index set_sctp_state() uses (current machine: input, output,
    input-only; original machine: client, server). ``events`` memoises the event
    of a (first chunk, next chunk) pair, -1 for a packet without a chunk.
    """

    __slots__ = ("established", "event_memo", "legacy", "n_events", "n_states", "next", "timeouts")

    def __init__(self, legacy: bool) -> None:
        self.legacy = legacy
        self.n_events = len(SctpEvent)
        cells: list[int] = []
        if legacy:
            self.n_states = len(LegacySctpState)
            for direction in Direction:
                for event in SctpEvent:
                    for lstate in LegacySctpState:
                        cells.append(int(legacy_next_state(lstate, event, direction)))
            self.timeouts = tuple(LEGACY_DEFAULT_SCTP_TIMEOUTS[s] for s in LegacySctpState)
            self.established = int(LegacySctpState.ESTABLISHED)
        else:
            self.n_states = len(SctpState)
            for table in StateTable:
                for event in SctpEvent:
                    for state in SctpState:
                        cells.append(int(sctp_next_state(state, event, table)))
            self.timeouts = tuple(DEFAULT_SCTP_TIMEOUTS[s] for s in SctpState)
            self.established = int(SctpState.ESTABLISHED)
        self.next: tuple[int, ...] = tuple(cells)
        self.event_memo: dict[tuple[int | None, int | None], int] = {}

    def event(self, chunk: int | None, next_chunk: int | None) -> int:
        """The event set_sctp_state() takes from these chunks, -1 for none (the
        checks of event_for_chunk() included: a bad chunk type raises here)."""
        if chunk is None:
            return -1
        memo = self.event_memo
        found = memo.get((chunk, next_chunk))
        if found is None:
            if self.legacy:
                found = int(legacy_event_for_chunk(chunk, next_chunk))
            else:
                found = int(event_for_chunk(chunk, next_chunk))
            memo[(chunk, next_chunk)] = found
        return found


_SCTP_MACHINES: Final = {False: _SctpMachine(False), True: _SctpMachine(True)}


def _sctp_reply_chunks(reply: object) -> tuple[int | None, int | None]:
    """The chunks of a server's SCTP packet: an SctpReply, never TCP flags."""
    if not isinstance(reply, SctpReply):
        raise TypeError(f"an SCTP reply takes SctpReply(chunk, next_chunk), got {reply!r}")
    return reply.chunk, reply.next_chunk


def _ct_step(entry: ConntrackEntry | None, flags: int, direction: int) -> _CtStep:
    """What track() does to a flow's entry for one segment, as values.

    Runs track() itself on a copy of the (live) entry, so callers that memoise
    the answer by the entry's state, fin_seen and last_rst_from_client follow the
    conntrack twin exactly; ``fresh`` is true when track() starts a new entry.
    """
    probe = None
    if entry is not None:
        probe = ConntrackEntry(entry.state, 1, entry.fin_seen, entry.last_rst_from_client)
    out = track(probe, flags, Direction(direction), 0)
    return (out.state, out.fin_seen, out.last_rst_from_client, out.expires, out is not probe)


def _verdict_key(is_new: bool, ct: int, protocol: int, conn: Connection | None) -> object:
    """The decision cache key: every fact of the packet and entry decide() reads.

    One integer, bit by bit: is_new (0), conntrack (1-2), an entry (3), controlled
    (4), controls others (5), the server bound / weight 0 / available (6-8),
    protocol (9-16), entry state (17-24) and entry flags (25 on). A tuple instead
    when a field would not fit its bits.
    """
    if conn is None:
        if protocol > 0xFF:
            return (is_new, ct, protocol)
        return is_new | ct << 1 | protocol << 9
    dest = conn.dest
    state = conn.state
    flags = conn.flags
    controlled = conn.control is not None
    controls_others = conn.n_control > 0
    if not (0 <= state <= 0xFF and flags >= 0 and protocol <= 0xFF):
        return (
            is_new,
            ct,
            protocol,
            state,
            flags,
            None if dest is None else (dest.weight == 0, dest.available),
            controlled,
            controls_others,
        )
    key = (
        is_new
        | ct << 1
        | 8
        | controlled << 4
        | controls_others << 5
        | protocol << 9
        | state << 17
        | flags << 25
    )
    if dest is not None:
        key |= (1 | (dest.weight == 0) << 1 | dest.available << 2) << 6
    return key


def _v4_service_key(protocol: int, addr: IPv4Address, port: int) -> int:
    """An IPv4 service as one integer: protocol << 48 | address << 16 | port."""
    return protocol << 48 | int(addr) << 16 | port


@dataclass(frozen=True, slots=True)
class PacketResult:
    """What happened to one client packet."""

    decision: Decision
    dest: RealServer | None  # where it was forwarded; None when dropped
    new_entry: bool  # a new connection entry was created for it

    @property
    def outcome(self) -> Outcome:
        return self.decision.outcome

    @property
    def dropped(self) -> bool:
        return self.decision.outcome.dropped


class _Verdict:
    """A memoised decision, what applying it takes, and its results per server.

    PacketResult is immutable, so one object per (decision, server, new entry)
    serves every packet that ends that way.
    """

    __slots__ = (
        "_failed",
        "clear_nfct",
        "decision",
        "dropped",
        "existing",
        "expire_old",
        "forward",
        "fresh",
    )

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        outcome = decision.outcome
        self.forward = outcome is Outcome.FORWARD_EXISTING
        self.dropped = outcome.dropped
        self.expire_old = decision.expire_old
        self.clear_nfct = decision.clear_nfct
        self.existing: dict[RealServer | None, PacketResult] = {}
        self.fresh: dict[RealServer, PacketResult] = {}
        self._failed: PacketResult | None = None

    def result(self, dest: RealServer | None) -> PacketResult:
        """The packet went to ``dest`` on its existing entry (None: dropped)."""
        found = self.existing.get(dest)
        if found is None:
            found = self.existing[dest] = PacketResult(self.decision, dest, False)
        return found

    def new_result(self, dest: RealServer | None) -> PacketResult:
        """The packet made a new entry on ``dest``."""
        assert dest is not None
        found = self.fresh.get(dest)
        if found is None:
            found = self.fresh[dest] = PacketResult(self.decision, dest, True)
        return found

    def failed(self) -> PacketResult:
        """The scheduler found no server (ip_vs_try_to_schedule() fails)."""
        found = self._failed
        if found is None:
            decision = self.decision
            failed = Decision(
                Outcome.NO_DEST_AVAILABLE,
                (*decision.path, StepKind.NO_SCHEDULABLE_DEST),
                decision.expire_old,
                decision.clear_nfct,
            )
            found = self._failed = PacketResult(failed, None, False)
        return found


@dataclass
class ExpiryLog:
    """Counts of what timers and flushes removed (for tests and reports)."""

    connections: int = 0
    templates: int = 0
    conntrack_dropped: int = 0
    flushed: int = 0


@dataclass
class _ServiceState:
    service: VirtualService
    trash: list[RealServer] = field(default_factory=list)


class IpvsKernel:
    """The IPVS of one node, in one kernel era with one set of sysctls."""

    def __init__(
        self,
        features: KernelFeatures,
        sysctls: Sysctls | None = None,
        timeouts: Timeouts | None = None,
        track_conntrack: bool = True,
    ) -> None:
        self.features = features
        self._sysctls = sysctls or Sysctls()
        self._sysctls.check_kernel(features)
        self.timeouts = timeouts or Timeouts()
        self.track_conntrack = track_conntrack
        self.table = ConnectionTable()
        self.templates: dict[int, Template] = {}
        # Templates invalidated by ip_vs_check_template(): re-keyed to port 0xFFFF in
        # the kernel, so several may exist for one client network; they only wait
        # for their timers.
        self.invalid_templates: list[Template] = []
        self.conntrack: dict[int, ConntrackEntry] = {}
        self.expired = ExpiryLog()
        self._services: dict[tuple[int, IPAddress, int], _ServiceState] = {}
        # The IPv4 services again, by _v4_service_key() (the per-packet lookup).
        self._services_v4: dict[int, _ServiceState] = {}
        # Firewall-mark services by fwmark << 1 | (IPv6): __ip_vs_svc_fwm_find() keys
        # them by mark and address family only (no protocol, address or port).
        self._fwmark_services: dict[int, _ServiceState] = {}
        self._active = active_states(features.preestablished_active)
        self._active_by_state = tuple(TcpState(s) in self._active for s in range(_N_STATES))
        # The SCTP state machine of this era (SCTP_NEW_STATE_MACHINE: the 2013 rewrite,
        # else the original 2906f66a5682 table).
        self._sctp = _SCTP_MACHINES[not features.sctp_new_state_machine]
        self._verdicts: dict[object, _Verdict] = {}
        self._now = 0

    # -- configuration (ipvsadm, sysctl) -------------------------------------------

    @property
    def sysctls(self) -> Sysctls:
        return self._sysctls

    @sysctls.setter
    def sysctls(self, value: Sysctls) -> None:
        value.check_kernel(self.features)
        self._sysctls = value
        self._verdicts.clear()

    def add_service(self, service: VirtualService) -> VirtualService:
        if service.fwmark:
            # ipvsadm -A -f: one service per (fwmark, address family).
            fkey = service.fwmark << 1 | (service.addr.version == 6)
            if fkey in self._fwmark_services:
                raise ValueError(f"service {service.label} already exists")
            self._fwmark_services[fkey] = _ServiceState(service)
            return service
        key = (int(service.protocol), service.addr, service.port)
        if key in self._services:
            raise ValueError(f"service {service.label} already exists")
        state = self._services[key] = _ServiceState(service)
        if isinstance(service.addr, IPv4Address):
            self._services_v4[_v4_service_key(service.protocol, service.addr, service.port)] = state
        return service

    def service_for(self, packet: Packet) -> VirtualService | None:
        """The service ip_vs_service_find() gives this packet (fwmark first)."""
        state = self._key_and_service(packet)[1]
        return state.service if state else None

    @property
    def services(self) -> list[VirtualService]:
        return [s.service for s in (*self._services.values(), *self._fwmark_services.values())]

    def _state_of(self, service: VirtualService) -> _ServiceState:
        if service.fwmark:
            return self._fwmark_services[service.fwmark << 1 | (service.addr.version == 6)]
        return self._services[(int(service.protocol), service.addr, service.port)]

    def add_dest(
        self, service: VirtualService, addr: IPAddress, port: int, weight: int = 1, **kw: object
    ) -> RealServer:
        """ipvsadm -a. A server still in the trash is revived with its entries
        (ip_vs_trash_get_dest()), so old connections carry on as before."""
        state = self._state_of(service)
        for dest in state.trash:
            if dest.addr == addr and dest.port == port:
                state.trash.remove(dest)
                service.add_dest(dest)
                service.edit_dest(dest, weight=weight)
                return dest
        dest = RealServer(addr, port, weight, **kw)  # type: ignore[arg-type]
        return service.add_dest(dest)

    def set_weight(self, service: VirtualService, dest: RealServer, weight: int) -> None:
        """ipvsadm -e -w: kube-proxy's graceful termination sets 0."""
        service.edit_dest(dest, weight=weight)

    def del_dest(self, service: VirtualService, dest: RealServer, now: int) -> None:
        """ipvsadm -d: AVAILABLE cleared, the server waits in the trash while referenced.

        04231e52d355 (v5.9): with expire_nodest_conn=1 removal also queues a flush
        of every entry left on a removed server.
        """
        self.advance(now)
        service.del_dest(dest)
        state = self._state_of(service)
        if dest.total_conns or dest.persistent_conns:
            state.trash.append(dest)
        if self.features.nodest_reschedule and self._sysctls.expire_nodest_conn:
            self._flush_nodest()

    def _flush_nodest(self) -> None:
        """ip_vs_expire_nodest_conn_flush(): delete entries of unavailable servers.

        The kernel walks the whole table, templates included: an idle template
        (controlling nothing) of a removed server goes too.
        """
        for template in [*self.templates.values(), *self.invalid_templates]:
            dest = template.dest
            if dest is not None and not dest.available and not template.n_control:
                self._remove_template(template)
                self.expired.flushed += 1
        for key, conn in self.table.items():
            dest = conn.dest
            if dest is None or dest.available:
                continue
            control = conn.control
            self._remove(key, conn)
            self.expired.flushed += 1
            if control is not None and control.n_control == 0:
                self._remove_template(control)

    # -- time ---------------------------------------------------------------------

    def advance(self, now: int) -> None:
        """Fire every timer due by ``now``, in time order (time never goes backwards)."""
        if now == self._now:
            return
        if now < self._now:
            raise ValueError(f"time went backwards: {now} < {self._now}")
        self._now = now
        if not self.templates and not self.invalid_templates:
            if self.table.quiet(now):
                return
            for key, conn in self.table.due(now):
                self._remove(key, conn)
                self.expired.connections += 1
            return
        while True:
            template = self._next_template_due(now)
            # Entries fire up to the template's time first, then the template.
            for key, conn in self.table.due(template.expires if template else now):
                self._remove(key, conn)
                self.expired.connections += 1
            if template is None:
                return
            self._template_timer(template)

    def _next_template_due(self, now: int) -> Template | None:
        due = [t for t in self.templates.values() if t.expires <= now]
        due += [t for t in self.invalid_templates if t.expires <= now]
        return min(due, key=lambda t: t.expires) if due else None

    def _template_timer(self, template: Template) -> None:
        """ip_vs_conn_expire() for a template: re-arm for 60 s while it controls entries."""
        if template.n_control:
            template.timeout = EXPIRE_LATER
            template.expires += EXPIRE_LATER
            return
        self._remove_template(template)
        self.expired.templates += 1

    def _remove_template(self, template: Template) -> None:
        if self.templates.get(template.key) is template:
            del self.templates[template.key]
        elif template in self.invalid_templates:
            self.invalid_templates.remove(template)
        else:
            return
        if template.dest is not None:
            template.dest.persistent_conns -= 1

    def _remove(self, key: int, conn: Connection) -> None:
        """ip_vs_conn_expire() for a normal entry: unhash, unbind, drop conntrack."""
        if self.table.remove(key) is None:
            return
        control = conn.control
        if control is not None:
            control.n_control -= 1  # ip_vs_control_del()
        dest = conn.dest
        if dest is not None:
            if conn.flags & F_INACTIVE:
                dest.inactive_conns -= 1
            else:
                dest.active_conns -= 1
            dest.update_overload_on_unbind()
        if conn.flags & F_NFCT and self.conntrack.pop(key, None) is not None:
            # ip_vs_conn_drop_conntrack(): the flow's conntrack goes with the entry.
            self.expired.conntrack_dropped += 1

    def _lookup(self, key: int, now: int) -> Connection | None:
        conn = self.table.get(key)
        if conn is not None and conn.expires <= now:
            self._remove(key, conn)
            self.expired.connections += 1
            return None
        return conn

    # -- the input path (ip_vs_in) ---------------------------------------------------

    def conntrack_status(self, key: int, packet: Packet, now: int) -> ConntrackStatus:
        """The conntrack the packet carries when IPVS sees it (conntrack twin)."""
        if not self.track_conntrack:
            return ConntrackStatus.NONE
        entry = self.conntrack.get(key)
        if packet.is_new_connection:
            return status_for_syn(entry, now)
        return ConntrackStatus.CONFIRMED if entry and entry.alive(now) else ConntrackStatus.NEW

    def _key_and_service(self, packet: Packet) -> tuple[int, _ServiceState | None]:
        """The packet's connection key and its virtual service (ip_vs_service_find()).

        ip_vs_service_find() (ip_vs_ctl.c, the same order since 2.6: "check the table
        hashed by fwmark first"): a packet with a mark goes to the fwmark service of
        its address family when there is one, whatever (protocol, address, port)
        services also match; otherwise, or when none has that mark, to the
        (protocol, vaddr, vport) service. The 2026 nf-next patch "ipvs: use more
        counters to avoid service lookups" only skips empty tables, the same result.
        The FTP-data and port-zero fallbacks are not modelled. Connections are keyed
        by the packet's own vaddr:vport in every case.
        """
        caddr = packet.client_addr
        vaddr = packet.virtual_addr
        vport = packet.virtual_port
        state: _ServiceState | None
        if type(caddr) is IPv4Address and type(vaddr) is IPv4Address and 0 <= vport <= 0xFFFF:
            low = int(vaddr) << 16 | vport
            key = ((packet.protocol << 32 | int(caddr)) << 16 | packet.client_port) << 48 | low
            state = self._services_v4.get(packet.protocol << 48 | low)
        else:
            key = connection_key(packet.protocol, caddr, packet.client_port, vaddr, vport)
            state = self._services.get((int(packet.protocol), vaddr, vport))
        if self._fwmark_services and packet.mark:
            fwm = self._fwmark_services.get(packet.mark << 1 | (vaddr.version == 6))
            if fwm is not None:
                state = fwm
        return key, state

    def receive(
        self, packet: Packet, now: int, conntrack: ConntrackStatus | None = None
    ) -> PacketResult:
        """A client packet for a virtual service, through ip_vs_in().

        ``conntrack`` overrides the conntrack twin's answer (for explain and tests).
        """
        key, state = self._key_and_service(packet)
        if state is None:
            raise ValueError(f"no virtual service for {packet.virtual_addr}:{packet.virtual_port}")
        if packet.protocol is _SCTP:
            # Bad chunk types are refused before anything changes.
            self._sctp.event(packet.sctp_chunk, packet.sctp_next_chunk)
        self.advance(now)
        conn = self._lookup(key, now)
        ct_status = conntrack if conntrack is not None else self.conntrack_status(key, packet, now)
        verdict = self._verdict(packet.is_new_connection, packet.protocol, conn, ct_status)

        if conn is not None:
            if verdict.clear_nfct:
                conn.flags &= ~F_NFCT
            if verdict.expire_old:
                self._remove(key, conn)  # ip_vs_conn_expire_now()
                self.expired.connections += 1

        if verdict.dropped:
            self._track_unforwarded(key, packet.protocol, packet.flags, now)
            return verdict.result(None)
        new_entry = False
        if not verdict.forward:
            conn = self._schedule(state.service, packet, key, now)
            if conn is None:
                self._track_unforwarded(key, packet.protocol, packet.flags, now)
                return verdict.failed()
            new_entry = True
        assert conn is not None
        expires = self._set_state(
            conn,
            packet.protocol,
            packet.flags,
            Direction.INPUT,
            now,
            packet.sctp_chunk,
            packet.sctp_next_chunk,
        )
        self.table.set_expires(key, conn, expires)
        if self.track_conntrack and packet.protocol is Protocol.TCP:
            self._track_forwarded(key, conn, packet.flags, Direction.INPUT, now)
        if new_entry:
            return verdict.new_result(conn.dest)
        return verdict.result(conn.dest)

    # -- netfilter conntrack around IPVS ---------------------------------------------
    #
    # Conntrack sees every packet before IPVS does (nf_conntrack_in at PRE_ROUTING /
    # LOCAL_OUT, priority -200; IPVS at LOCAL_IN / FORWARD), so a segment always moves
    # a confirmed entry, also when IPVS then drops the packet. A segment that found
    # no live entry (or a SYN that killed a closed one to reopen it) carries a new,
    # unconfirmed entry, which is confirmed only if the packet leaves the hooks: IPVS
    # dropping the packet frees it, and so does ip_vs_notrack() (ip_vs_xmit.c,
    # ip_vs_nat_send_or_cont() and handle_response(): a flow whose entry lacks
    # IP_VS_CONN_F_NFCT, i.e. made with net.ipv4.vs.conntrack=0, is untracked).
    # Either way no entry is left for that flow.

    def _track_unforwarded(self, key: int, protocol: Protocol, flags: TcpFlags, now: int) -> None:
        """Conntrack for a client segment that IPVS dropped (or could not schedule)."""
        if not self.track_conntrack or protocol is not _TCP:
            return
        entry = self.conntrack.get(key)
        if track(entry, flags, Direction.INPUT, now) is not entry:
            self.conntrack.pop(key, None)

    def _track_forwarded(
        self, key: int, conn: Connection, flags: TcpFlags, direction: Direction, now: int
    ) -> None:
        """Conntrack for a segment IPVS forwarded on ``conn`` (either direction)."""
        entry = self.conntrack.get(key)
        after = track(entry, flags, direction, now)
        if after is entry or conn.flags & F_NFCT:
            self.conntrack[key] = after
        else:
            self.conntrack.pop(key, None)  # unconfirmed and untracked: never kept

    def _verdict(
        self, is_new: bool, protocol: Protocol, conn: Connection | None, ct_status: ConntrackStatus
    ) -> _Verdict:
        """decide(), memoised on the facts it reads (sysctls and era are fixed per cache)."""
        ct = _CT_STATUS.index(ct_status)
        cache_key = _verdict_key(is_new, ct, protocol, conn)
        verdict = self._verdicts.get(cache_key)
        if verdict is None:
            verdict = self._verdicts[cache_key] = self._decide(is_new, protocol, conn, ct_status)
        return verdict

    def _decide(
        self, is_new: bool, protocol: Protocol, conn: Connection | None, ct_status: ConntrackStatus
    ) -> _Verdict:
        """decide() on the facts of this packet and entry."""
        entry = None
        if conn is not None:
            dest = conn.dest
            entry = ExistingEntry(
                protocol=protocol,
                state=conn.state,
                dest_weight=None if dest is None else dest.weight,
                dest_available=True if dest is None else dest.available,
                controlled=conn.control is not None,
                controls_others=conn.n_control > 0,
                no_output=bool(conn.flags & F_NOOUTPUT),
                uses_nfct=bool(conn.flags & F_NFCT),
            )
        decision = decide(is_new, entry, ct_status, self._sysctls, self.features, protocol=protocol)
        return _Verdict(decision)

    # -- many packets per call ------------------------------------------------------

    def receive_batch(
        self, events: Iterable[tuple[Packet, int, TcpFlags | SctpReply | None]]
    ) -> list[PacketResult | bool]:
        """Many packets in one call, each exactly as the one-packet calls take it.

        Each event is (packet, now, reply). ``reply`` None is a client packet through
        ip_vs_in(), as receive(packet, now); TCP flags (an SctpReply for SCTP) are a
        server reply on the client connection ``packet`` names, through ip_vs_out(),
        as reply(packet, flags, now). Returns receive()'s PacketResult or reply()'s
        bool for each event, in order. Entries, counters, timers, conntrack and
        expiry end up exactly as after the same calls one by one: this is the same
        path with its state bound once per call, decisions and the TCP and SCTP
        transitions read from tables, and the small helpers inlined. On an error (no
        service, a bad SCTP chunk type, time going backwards) the events before it
        have been applied.
        """
        # Everything the loop reads, bound once (locals are the cheapest names,
        # interpreted or compiled).
        table = self.table
        entries = table.entries
        services_v4 = self._services_v4
        fwmarks = self._fwmark_services
        conntrack = self.conntrack
        tracking = self.track_conntrack
        tcp_timeouts = self.timeouts.tcp
        udp_timeout = self.timeouts.udp
        active = self._active_by_state
        verdicts = self._verdicts
        expired = self.expired
        ct_table = _CT_TABLE
        tcp_next = _TCP_NEXT
        n_states = _N_STATES
        in_heap = IN_HEAP
        bucket_ms = _BUCKET_MS
        ipv4 = IPv4Address
        tcp = _TCP
        sctp = _SCTP
        established = _ESTABLISHED
        ct_new_status = _CT_NEW_STATUS
        syn = _SYN
        f_nooutput = F_NOOUTPUT
        f_inactive = F_INACTIVE
        f_nfct = F_NFCT
        sctp_machine = self._sctp
        sctp_next = sctp_machine.next
        sctp_timeouts = sctp_machine.timeouts
        sctp_n_states = sctp_machine.n_states
        sctp_n_events = sctp_machine.n_events
        sctp_established = sctp_machine.established
        sctp_legacy = sctp_machine.legacy
        sctp_ev = -1
        results: list[PacketResult | bool] = []
        for packet, now, reply in events:
            protocol = packet.protocol
            caddr = packet.client_addr
            vaddr = packet.virtual_addr
            vport = packet.virtual_port
            state: _ServiceState | None
            if type(caddr) is ipv4 and type(vaddr) is ipv4 and 0 <= vport <= 0xFFFF:
                # connection_key() and the service lookup, for IPv4, in as few wide
                # integers as can be (``_ip`` is what IPv4Address.__int__ returns).
                proto = int(protocol)
                client_ip: int = caddr._ip  # type: ignore[attr-defined]
                virtual_ip: int = vaddr._ip  # type: ignore[attr-defined]
                low = virtual_ip << 16 | vport
                key = ((proto << 32 | client_ip) << 16 | packet.client_port) << 48 | low
                state = services_v4.get(proto << 48 | low)
                if fwmarks and packet.mark:
                    # ip_vs_service_find(): the fwmark service first, as
                    # _key_and_service() does it.
                    fwm = fwmarks.get(packet.mark << 1)
                    if fwm is not None:
                        state = fwm
            else:
                key, state = self._key_and_service(packet)
            if reply is None and state is None:
                raise ValueError(f"no virtual service for {vaddr}:{vport}")
            if protocol is sctp:
                # The event set_sctp_state() will take (bad chunk types raise here,
                # before anything changes, as in receive() and reply()).
                if reply is None:
                    sctp_ev = sctp_machine.event(packet.sctp_chunk, packet.sctp_next_chunk)
                else:
                    sctp_ev = sctp_machine.event(*_sctp_reply_chunks(reply))
            if now != self._now:
                self.advance(now)
            conn = entries.get(key)
            if conn is not None and conn.expires <= now:
                self._remove(key, conn)
                expired.connections += 1
                conn = None

            result: PacketResult | bool
            if reply is not None:
                # ip_vs_out(): a server reply on an entry, as reply().
                if conn is None:
                    results.append(False)
                    continue
                flags = 0 if protocol is sctp else int(reply)  # type: ignore[arg-type]
                direction = 1  # Direction.OUTPUT
                result = True
                track_entry = conntrack.get(key) if tracking else None
            else:
                # ip_vs_in(): the reuse decision, as receive().
                flags = int(packet.flags)
                direction = 0  # Direction.INPUT
                # is_new_conn(): a TCP SYN, or an SCTP packet whose first chunk is INIT.
                if protocol is tcp:
                    is_new = flags & syn != 0
                elif protocol is sctp:
                    is_new = packet.sctp_chunk == 1  # SCTP_CID_INIT
                else:
                    is_new = False
                track_entry = None
                if not tracking:
                    ct = _CT_NONE
                else:
                    track_entry = conntrack.get(key)
                    if is_new:
                        ct = _CT_CONFIRMED
                        if status_for_syn(track_entry, now) is ct_new_status:
                            ct = _CT_NEW
                    elif track_entry is not None and now < track_entry.expires:
                        ct = _CT_CONFIRMED
                    else:
                        ct = _CT_NEW
                # The decision cache key, as _verdict_key() builds it.
                cache_key: object
                if conn is None:
                    cache_key = is_new | ct << 1 | protocol << 9
                else:
                    dest = conn.dest
                    conn_state = conn.state
                    conn_flags = conn.flags
                    cache_key = (
                        is_new
                        | ct << 1
                        | 8
                        | (conn.control is not None) << 4
                        | (conn.n_control > 0) << 5
                        | protocol << 9
                        | conn_state << 17
                        | conn_flags << 25
                    )
                    if dest is not None:
                        cache_key |= (1 | (dest.weight == 0) << 1 | dest.available << 2) << 6
                    if not (0 <= conn_state <= 0xFF and conn_flags >= 0 and protocol <= 0xFF):
                        cache_key = _verdict_key(is_new, ct, protocol, conn)
                verdict = verdicts.get(cache_key)
                if verdict is None:
                    verdict = self._decide(is_new, protocol, conn, _CT_STATUS[ct])
                    verdicts[cache_key] = verdict
                if conn is not None:
                    if verdict.clear_nfct:
                        conn.flags &= ~f_nfct
                    if verdict.expire_old:
                        self._remove(key, conn)  # ip_vs_conn_expire_now()
                        expired.connections += 1
                        if tracking:
                            track_entry = conntrack.get(key)  # may have gone with it
                if verdict.dropped:
                    self._track_unforwarded(key, protocol, packet.flags, now)
                    results.append(verdict.result(None))
                    continue
                if verdict.forward:
                    assert conn is not None
                    found = verdict.existing.get(conn.dest)
                    result = found if found is not None else verdict.result(conn.dest)
                else:
                    assert state is not None
                    conn = self._schedule(state.service, packet, key, now)
                    if conn is None:
                        self._track_unforwarded(key, protocol, packet.flags, now)
                        results.append(verdict.failed())
                        continue
                    result = verdict.new_result(conn.dest)

            # ip_vs_set_state(), as _set_state() does it.
            if protocol is tcp:
                conn_flags = conn.flags
                if direction:
                    if conn_flags & f_nooutput:
                        conn_flags &= ~f_nooutput
                        conn.flags = conn_flags
                    row = _TABLE_OUTPUT
                elif conn_flags & f_nooutput:
                    row = _TABLE_INPUT_ONLY
                else:
                    row = _TABLE_INPUT
                current = conn.state
                new = tcp_next[row + (flags & 0x1F) * n_states + current]
                if new != current:
                    dest = conn.dest
                    if dest is not None:
                        if active[new]:
                            if conn_flags & f_inactive:
                                dest.active_conns += 1
                                dest.inactive_conns -= 1
                                conn.flags = conn_flags & ~f_inactive
                        elif not conn_flags & f_inactive:
                            dest.active_conns -= 1
                            dest.inactive_conns += 1
                            conn.flags = conn_flags | f_inactive
                    control = conn.control
                    if new is established and control is not None:
                        control.assured = True  # ip_vs_control_assure_ct()
                    conn.state = new
                expires = now + tcp_timeouts[new]
            elif protocol is sctp:
                # set_sctp_state(), as _set_sctp_state() does it.
                current = conn.state
                if not 0 <= current < sctp_n_states:
                    raise ValueError(f"{current} is not an SCTP state of this kernel")
                if sctp_ev < 0:
                    # No chunk header: state, NOOUTPUT and timeout stay.
                    expires = now + sctp_timeouts[current]
                else:
                    conn_flags = conn.flags
                    if sctp_legacy:
                        row = direction  # client or server column; NOOUTPUT unread
                    elif conn_flags & f_nooutput:
                        if direction:
                            conn_flags &= ~f_nooutput
                            conn.flags = conn_flags
                            row = 1
                        else:
                            row = 2  # IP_VS_DIR_INPUT_ONLY
                    else:
                        row = direction
                    sctp_new = sctp_next[(row * sctp_n_events + sctp_ev) * sctp_n_states + current]
                    if sctp_new != current:
                        dest = conn.dest
                        if dest is not None:
                            if sctp_new == sctp_established:
                                if conn_flags & f_inactive:
                                    dest.active_conns += 1
                                    dest.inactive_conns -= 1
                                    conn.flags = conn_flags & ~f_inactive
                            elif not conn_flags & f_inactive:
                                dest.active_conns -= 1
                                dest.inactive_conns += 1
                                conn.flags = conn_flags | f_inactive
                        control = conn.control
                        if control is not None and sctp_new == sctp_established:
                            # ip_vs_control_assure_ct(), current machine only
                            control.assured = control.assured or not sctp_legacy
                        conn.state = sctp_new
                    expires = now + sctp_timeouts[sctp_new]
            else:
                conn.state = UDP_STATE
                expires = now + udp_timeout

            # mod_timer(), as ConnectionTable.set_expires() does it.
            old = conn.expires
            conn.expires = expires
            slot = conn.timer
            if slot is None or (
                expires < old and (slot is in_heap or slot.bucket > expires // bucket_ms)
            ):
                table.file_timer(key, conn, expires)

            # The conntrack twin sees the segment, as track() does.
            if tracking and protocol is tcp:
                alive = track_entry is not None and now < track_entry.expires
                if 0 <= flags <= 0x1F:
                    if track_entry is not None and alive:
                        index = (
                            (track_entry.state + 1) << 8
                            | track_entry.fin_seen << 7
                            | track_entry.last_rst_from_client << 6
                            | direction << 5
                            | flags
                        )
                    else:
                        index = direction << 5 | flags
                    step = ct_table[index]
                    if step is None:
                        step = ct_table[index] = _ct_step(
                            track_entry if alive else None, flags, direction
                        )
                else:
                    step = _ct_step(track_entry if alive else None, flags, direction)
                ct_state, fin_seen, last_rst, timeout, fresh = step
                if track_entry is None or fresh or not alive:
                    if conn.flags & f_nfct:
                        conntrack[key] = ConntrackEntry(ct_state, now + timeout, fin_seen, last_rst)
                    else:
                        conntrack.pop(key, None)  # ip_vs_notrack(): never confirmed
                else:
                    track_entry.state = ct_state
                    track_entry.fin_seen = fin_seen
                    track_entry.last_rst_from_client = last_rst
                    track_entry.expires = now + timeout
            results.append(result)
        return results

    def _schedule(
        self, service: VirtualService, packet: Packet, key: int, now: int
    ) -> Connection | None:
        """ip_vs_schedule(): pick a server (through a template if persistent), new entry."""
        template: Template | None = None
        dest: RealServer | None
        # service.persistent, without IntFlag's Python-level "&" per new entry.
        if int(service.flags) & _SVC_PERSISTENT:
            found = self._sched_persist(service, packet, now)
            if found is None:
                return None
            dest, template = found
        else:
            dest = service.schedule(packet)
        if dest is None:
            return None
        # ip_vs_conn_new(): flags from the dest (NOOUTPUT unless NAT, INACTIVE),
        # NFCT when net.ipv4.vs.conntrack=1; state 0 with a 3 s timer.
        flags = F_INACTIVE
        if not dest.forward.sees_replies:
            flags |= F_NOOUTPUT
        if self._sysctls.conntrack:
            flags |= F_NFCT
        expires = now + NEW_CONNECTION_TIMEOUT
        conn: Connection
        if template is None:
            conn = Connection(dest, 0, flags, expires)
        else:
            conn = ControlledConnection(dest, 0, flags, expires, template)
            template.n_control += 1
            template.expires = now + template.timeout  # ip_vs_conn_put(ct)
        # ip_vs_bind_dest(): a new entry counts as inactive until its state says otherwise.
        dest.inactive_conns += 1
        dest.update_overload_on_bind()
        self.table.insert(key, conn, arm=False)  # receive() arms it after the first state
        return conn

    def _sched_persist(
        self, service: VirtualService, packet: Packet, now: int
    ) -> tuple[RealServer, Template] | None:
        """ip_vs_sched_persist(): reuse the client network's template if it checks out."""
        network = service.template_network(packet.client_addr)
        # The template's <protocol, vaddr, vport> (ip_vs_sched_persist(), the same in
        # 3.x and current trees): the packet's own when its port is the service's
        # (vport 0 for FTP); otherwise vport 0 and, for a fwmark service, IPPROTO_IP
        # with the mark as the address, so one template covers every port and
        # protocol the mark selects (persistent port-zero services keep theirs).
        tproto: int = packet.protocol
        tvaddr = packet.virtual_addr
        if packet.virtual_port == service.port:
            vport = 0 if service.is_ftp else service.port
        else:
            vport = 0
            if service.fwmark:
                tproto = Protocol.IP
                tvaddr = service.fwmark_addr
        tkey = connection_key(tproto, network, 0, tvaddr, vport)
        template = self.templates.get(tkey)
        if template is not None and template.expires <= now:
            self._template_timer(template)
            template = self.templates.get(tkey)
        if template is not None and self._check_template(template):
            assert template.dest is not None
            return template.dest, template
        dest = service.schedule(packet)
        if dest is None:
            return None
        template = Template(
            tkey, dest, now + service.persistence_timeout * 1000, service.persistence_timeout * 1000
        )
        dest.persistent_conns += 1
        self.templates[tkey] = template
        return dest, template

    def _check_template(self, template: Template) -> bool:
        """ip_vs_check_template(): a template to a removed server, or to a weight-0
        one with expire_quiescent_template=1, is invalidated and a new one made."""
        dest = template.dest
        if (
            dest is not None
            and dest.available
            and not (self._sysctls.expire_quiescent_template and dest.weight == 0)
        ):
            return True
        # Re-keyed with port 0xFFFF so it no longer matches; it lives on until its
        # timer fires with no controlled entries left.
        del self.templates[template.key]
        template.key = template.key | INVALID_TEMPLATE_PORT
        self.invalid_templates.append(template)
        return False

    # -- the state machine (ip_vs_set_state) ----------------------------------------

    def _set_state(
        self,
        conn: Connection,
        protocol: Protocol,
        flags: TcpFlags,
        direction: Direction,
        now: int,
        sctp_chunk: int | None = None,
        sctp_next_chunk: int | None = None,
    ) -> int:
        """set_tcp_state() / set_sctp_state() / udp_state_transition(); returns the
        entry's new expiry (now + cp->timeout, as ip_vs_conn_put() re-arms it)."""
        if protocol is not _TCP:
            if protocol is _SCTP:
                return self._set_sctp_state(conn, sctp_chunk, sctp_next_chunk, direction, now)
            # udp_state_transition(): one state, never touches INACTIVE (UDP is
            # always InActConn).
            conn.state = UDP_STATE
            return now + self.timeouts.udp
        no_output = bool(conn.flags & F_NOOUTPUT)
        if no_output and direction is Direction.OUTPUT:
            conn.flags &= ~F_NOOUTPUT
            no_output = False
        new = next_state(TcpState(conn.state), flags, state_table_for(direction, no_output))
        if new != conn.state:
            dest = conn.dest
            if dest is not None:
                active = new in self._active
                if active and conn.flags & F_INACTIVE:
                    dest.active_conns += 1
                    dest.inactive_conns -= 1
                    conn.flags &= ~F_INACTIVE
                elif not active and not conn.flags & F_INACTIVE:
                    dest.active_conns -= 1
                    dest.inactive_conns += 1
                    conn.flags |= F_INACTIVE
            if new is TcpState.ESTABLISHED and conn.control is not None:
                conn.control.assured = True  # ip_vs_control_assure_ct()
            conn.state = new
        return now + self.timeouts.tcp[new]

    def _set_sctp_state(
        self,
        conn: Connection,
        chunk: int | None,
        next_chunk: int | None,
        direction: Direction,
        now: int,
    ) -> int:
        """set_sctp_state() (ip_vs_proto_sctp.c), through sctp_states.step().

        * No chunk header: the kernel returns before anything, so state, NOOUTPUT
          and cp->timeout stay; ip_vs_conn_put() still re-arms the timer with that
          timeout, which is the current state's (only an INIT, which moves the state,
          creates SCTP entries).
        * Current machine (2013 rewrite): an output packet clears NOOUTPUT, an input
          one on a NOOUTPUT entry reads the input-only table.
        * Original machine (2906f66a5682, RHEL 7): client or server column only;
          NOOUTPUT is neither read nor cleared.
        * Both: counters move only on a state change, ActiveConn = ESTABLISHED only.
        * Current machine: entering ESTABLISHED marks the template assured
          (ip_vs_control_assure_ct(), seen in current trees, commit not identified).
        """
        machine = self._sctp
        legacy = machine.legacy
        if chunk is None:
            return now + self.timeouts.for_state(Protocol.SCTP, conn.state, legacy)
        new: int
        if legacy:
            event = legacy_event_for_chunk(chunk, next_chunk)
            new = legacy_next_state(LegacySctpState(conn.state), event, direction)
        else:
            no_output = bool(conn.flags & F_NOOUTPUT)
            step = sctp_step(conn.state, chunk, direction, no_output, next_chunk)
            if step.clear_no_output:
                conn.flags &= ~F_NOOUTPUT
            new = step.state
        if new != conn.state:
            dest = conn.dest
            if dest is not None:
                active = new == machine.established
                if active and conn.flags & F_INACTIVE:
                    dest.active_conns += 1
                    dest.inactive_conns -= 1
                    conn.flags &= ~F_INACTIVE
                elif not active and not conn.flags & F_INACTIVE:
                    dest.active_conns -= 1
                    dest.inactive_conns += 1
                    conn.flags |= F_INACTIVE
            if not legacy and new == SctpState.ESTABLISHED and conn.control is not None:
                conn.control.assured = True  # ip_vs_control_assure_ct()
            conn.state = int(new)
        return now + self.timeouts.for_state(Protocol.SCTP, new, legacy)

    # -- the output path (NAT replies) --------------------------------------------

    def reply(self, packet: Packet, flags: TcpFlags | SctpReply, now: int) -> bool:
        """A server reply for the client connection ``packet`` names (ip_vs_out()).

        ``flags``: the reply's TCP flags, or for SCTP its chunks (SctpReply).
        Returns False when no entry exists (the reply is not IPVS's).
        """
        chunk: int | None = None
        next_chunk: int | None = None
        tcp_flags = TcpFlags.NONE
        if packet.protocol is _SCTP:
            chunk, next_chunk = _sctp_reply_chunks(flags)
            self._sctp.event(chunk, next_chunk)  # bad chunk types refused up front
        elif isinstance(flags, SctpReply):
            raise TypeError(f"a {packet.protocol.name} reply takes TcpFlags, got {flags!r}")
        else:
            tcp_flags = flags
        self.advance(now)
        key = connection_key(
            packet.protocol,
            packet.client_addr,
            packet.client_port,
            packet.virtual_addr,
            packet.virtual_port,
        )
        conn = self._lookup(key, now)
        if conn is None:
            return False
        expires = self._set_state(
            conn, packet.protocol, tcp_flags, Direction.OUTPUT, now, chunk, next_chunk
        )
        self.table.set_expires(key, conn, expires)
        if self.track_conntrack and packet.protocol is _TCP:
            self._track_forwarded(key, conn, tcp_flags, Direction.OUTPUT, now)
        return True

    # -- views --------------------------------------------------------------------

    def entry(self, packet: Packet) -> Connection | None:
        key = connection_key(
            packet.protocol,
            packet.client_addr,
            packet.client_port,
            packet.virtual_addr,
            packet.virtual_port,
        )
        return self.entry_by_key(key)

    def entry_by_key(self, key: int) -> Connection | None:
        """entry() for a packed connection_key()."""
        conn = self.table.get(key)
        return conn if conn is not None and conn.expires > self._now else None
