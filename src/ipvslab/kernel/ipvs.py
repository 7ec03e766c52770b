"""One node's IPVS: services, the connection table, and the packet paths.

`IpvsKernel` is the driver around the pure pieces: it looks entries up, asks
`decide()` what ip_vs_in() would do, applies that (expire, drop, schedule,
persistence), runs the TCP state machine and keeps the counters. Time is passed
in with every call (integer milliseconds); nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipvslab.kernel.connection import (
    F_INACTIVE,
    F_NFCT,
    F_NOOUTPUT,
    Connection,
    ConnectionTable,
    ControlledConnection,
    Template,
    connection_key,
)
from ipvslab.kernel.conntrack import ConntrackEntry, ConntrackStatus, status_for_syn, track
from ipvslab.kernel.decision import Decision, ExistingEntry, Outcome, StepKind, decide
from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.packet import Direction, IPAddress, Packet, Protocol, TcpFlags
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import (
    MINUTE,
    NEW_CONNECTION_TIMEOUT,
    UDP_STATE,
    TcpState,
    Timeouts,
    active_states,
    next_state,
    state_table_for,
)

# ip_vs_conn_expire(): a template whose timer fires while it still controls
# entries is re-armed for 60 s (expire_later), and keeps that timeout.
EXPIRE_LATER = 1 * MINUTE
# Invalidated templates are re-keyed with vport/dport 0xFFFF and cport 0
# (ip_vs_check_template()), so a new template can take their place.
INVALID_TEMPLATE_PORT = 0xFFFF


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
        self._active = active_states(features.preestablished_active)
        self._decisions: dict[tuple[object, ...], Decision] = {}
        self._now = 0

    # -- configuration (ipvsadm, sysctl) -------------------------------------------

    @property
    def sysctls(self) -> Sysctls:
        return self._sysctls

    @sysctls.setter
    def sysctls(self, value: Sysctls) -> None:
        value.check_kernel(self.features)
        self._sysctls = value
        self._decisions.clear()

    def add_service(self, service: VirtualService) -> VirtualService:
        key = (int(service.protocol), service.addr, service.port)
        if key in self._services:
            raise ValueError(f"service {service.label} already exists")
        self._services[key] = _ServiceState(service)
        return service

    def service_for(self, packet: Packet) -> VirtualService | None:
        state = self._services.get((int(packet.protocol), packet.virtual_addr, packet.virtual_port))
        return state.service if state else None

    @property
    def services(self) -> list[VirtualService]:
        return [s.service for s in self._services.values()]

    def _state_of(self, service: VirtualService) -> _ServiceState:
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

    def receive(
        self, packet: Packet, now: int, conntrack: ConntrackStatus | None = None
    ) -> PacketResult:
        """A client packet for a virtual service, through ip_vs_in().

        ``conntrack`` overrides the conntrack twin's answer (for explain and tests).
        """
        service = self.service_for(packet)
        if service is None:
            raise ValueError(f"no virtual service for {packet.virtual_addr}:{packet.virtual_port}")
        self.advance(now)
        key = connection_key(
            packet.protocol,
            packet.client_addr,
            packet.client_port,
            packet.virtual_addr,
            packet.virtual_port,
        )
        conn = self._lookup(key, now)
        ct_status = conntrack if conntrack is not None else self.conntrack_status(key, packet, now)
        decision = self._decide(packet, conn, ct_status)

        if conn is not None:
            if decision.clear_nfct:
                conn.flags &= ~F_NFCT
            if decision.expire_old:
                self._remove(key, conn)  # ip_vs_conn_expire_now()
                self.expired.connections += 1

        outcome = decision.outcome
        if outcome.dropped:
            return PacketResult(decision, None, False)
        new_entry = False
        if outcome is not Outcome.FORWARD_EXISTING:
            conn = self._schedule(service, packet, key, now)
            if conn is None:
                failed = Decision(
                    Outcome.NO_DEST_AVAILABLE,
                    (*decision.path, StepKind.NO_SCHEDULABLE_DEST),
                    decision.expire_old,
                    decision.clear_nfct,
                )
                return PacketResult(failed, None, False)
            new_entry = True
        assert conn is not None
        self._set_state(conn, packet.protocol, packet.flags, Direction.INPUT, now)
        self.table.arm(key, conn.expires)
        if self.track_conntrack and packet.protocol is Protocol.TCP:
            self.conntrack[key] = track(self.conntrack.get(key), packet.flags, Direction.INPUT, now)
        return PacketResult(decision, conn.dest, new_entry)

    def _decide(
        self, packet: Packet, conn: Connection | None, ct_status: ConntrackStatus
    ) -> Decision:
        """decide(), memoised on the facts it reads (sysctls and era are fixed per cache)."""
        is_new = packet.is_new_connection
        if conn is None:
            cache_key: tuple[object, ...] = (is_new, ct_status, packet.protocol)
        else:
            dest = conn.dest
            cache_key = (
                is_new,
                ct_status,
                packet.protocol,
                conn.state,
                conn.flags,
                None if dest is None else (dest.weight == 0, dest.available),
                conn.control is not None,
                conn.n_control > 0,
            )
        decision = self._decisions.get(cache_key)
        if decision is None:
            entry = None
            if conn is not None:
                dest = conn.dest
                entry = ExistingEntry(
                    protocol=packet.protocol,
                    state=conn.state,
                    dest_weight=None if dest is None else dest.weight,
                    dest_available=True if dest is None else dest.available,
                    controlled=conn.control is not None,
                    controls_others=conn.n_control > 0,
                    no_output=bool(conn.flags & F_NOOUTPUT),
                    uses_nfct=bool(conn.flags & F_NFCT),
                )
            decision = decide(
                is_new, entry, ct_status, self._sysctls, self.features, protocol=packet.protocol
            )
            self._decisions[cache_key] = decision
        return decision

    def _schedule(
        self, service: VirtualService, packet: Packet, key: int, now: int
    ) -> Connection | None:
        """ip_vs_schedule(): pick a server (through a template if persistent), new entry."""
        template: Template | None = None
        dest: RealServer | None
        if service.persistent:
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
        vport = 0 if service.is_ftp or service.port == 0 else service.port
        tkey = connection_key(packet.protocol, network, 0, packet.virtual_addr, vport)
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
    ) -> None:
        if protocol is not Protocol.TCP:
            # udp_state_transition(): one state, never touches INACTIVE (UDP is
            # always InActConn). SCTP is modelled the same way for now.
            conn.state = UDP_STATE
            conn.expires = now + self.timeouts.udp
            return
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
        conn.expires = now + self.timeouts.tcp[new]

    # -- the output path (NAT replies) --------------------------------------------

    def reply(self, packet: Packet, flags: TcpFlags, now: int) -> bool:
        """A server reply for the client connection ``packet`` names (ip_vs_out()).

        Returns False when no entry exists (the reply is not IPVS's).
        """
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
        self._set_state(conn, packet.protocol, flags, Direction.OUTPUT, now)
        self.table.arm(key, conn.expires)
        if self.track_conntrack and packet.protocol is Protocol.TCP:
            self.conntrack[key] = track(self.conntrack.get(key), flags, Direction.OUTPUT, now)
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
        conn = self.table.get(key)
        return conn if conn is not None and conn.expires > self._now else None
