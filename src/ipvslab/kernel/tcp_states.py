"""The IPVS TCP state machine (ip_vs_proto_tcp.c) and protocol timeouts.

Kept as tables, as the kernel keeps them, so each row can be checked against
tcp_states[] and tcp_timeouts[]. Times are integer milliseconds.
"""

from __future__ import annotations

from enum import IntEnum

from ipvslab.kernel.packet import Direction, Protocol, TcpFlags


class TcpState(IntEnum):
    """IP_VS_TCP_S_*, in the kernel's order (the table columns)."""

    NONE = 0
    ESTABLISHED = 1
    SYN_SENT = 2
    SYN_RECV = 3
    FIN_WAIT = 4
    TIME_WAIT = 5
    CLOSE = 6
    CLOSE_WAIT = 7
    LAST_ACK = 8
    LISTEN = 9
    SYNACK = 10


# UDP has a single state, shown as "UDP" (ip_vs_proto_udp.c, IP_VS_UDP_S_NORMAL).
UDP_STATE = 0

SECOND = 1000
MINUTE = 60 * SECOND

# tcp_timeouts[] defaults (unchanged since 2.6).
DEFAULT_TCP_TIMEOUTS: dict[TcpState, int] = {
    TcpState.NONE: 2 * SECOND,
    TcpState.ESTABLISHED: 15 * MINUTE,
    TcpState.SYN_SENT: 2 * MINUTE,
    TcpState.SYN_RECV: 1 * MINUTE,
    TcpState.FIN_WAIT: 2 * MINUTE,
    TcpState.TIME_WAIT: 2 * MINUTE,
    TcpState.CLOSE: 10 * SECOND,
    TcpState.CLOSE_WAIT: 60 * SECOND,
    TcpState.LAST_ACK: 30 * SECOND,
    TcpState.LISTEN: 2 * MINUTE,
    TcpState.SYNACK: 120 * SECOND,
}
# udp_timeouts[IP_VS_UDP_S_NORMAL] = 5*60*HZ.
DEFAULT_UDP_TIMEOUT = 5 * MINUTE
# ip_vs_conn_new(): a new entry starts in state 0 with a 3 s timer until its first
# packet moves it.
NEW_CONNECTION_TIMEOUT = 3 * SECOND

# Short names for the table rows below.
_NO, _ES, _SS, _SR, _FW, _TW, _CL, _CW, _LA, _LI, _SA = TcpState

# tcp_states[] (normal mode, not secure_tcp): next state by [table][flag][current].
# Rows are indexed syn=0, fin=1, ack=2, rst=3; columns follow TcpState.
_INPUT = (
    (_SR, _ES, _ES, _SR, _SR, _SR, _SR, _SR, _SR, _SR, _SR),  # syn
    (_CL, _CW, _SS, _TW, _TW, _TW, _CL, _CW, _LA, _LI, _TW),  # fin
    (_ES, _ES, _SS, _ES, _FW, _TW, _CL, _CW, _CL, _LI, _ES),  # ack
    (_CL, _CL, _CL, _SR, _CL, _CL, _CL, _CL, _LA, _LI, _SR),  # rst
)
_OUTPUT = (
    (_SS, _ES, _SS, _SR, _SS, _SS, _SS, _SS, _SS, _LI, _SR),  # syn
    (_TW, _FW, _SS, _TW, _FW, _TW, _CL, _TW, _LA, _LI, _TW),  # fin
    (_ES, _ES, _SS, _ES, _FW, _TW, _CL, _CW, _LA, _ES, _ES),  # ack
    (_CL, _CL, _SS, _CL, _CL, _TW, _CL, _CL, _CL, _CL, _CL),  # rst
)
# INPUT-ONLY is used for connections with IP_VS_CONN_F_NOOUTPUT (DR, TUN, Local):
# the director never sees the server's packets, so a client FIN moves
# ESTABLISHED to FIN_WAIT and the entry stays there for the FIN_WAIT timeout.
_INPUT_ONLY = (
    (_SR, _ES, _ES, _SR, _SR, _SR, _SR, _SR, _SR, _SR, _SR),  # syn
    (_CL, _FW, _SS, _TW, _FW, _TW, _CL, _CW, _LA, _LI, _TW),  # fin
    (_ES, _ES, _SS, _ES, _FW, _TW, _CL, _CW, _CL, _LI, _ES),  # ack
    (_CL, _CL, _CL, _SR, _CL, _CL, _CL, _CL, _LA, _LI, _CL),  # rst
)


class StateTable(IntEnum):
    """Which third of tcp_states[] a packet uses (TCP_DIR_INPUT/OUTPUT/INPUT_ONLY)."""

    INPUT = 0
    OUTPUT = 1
    INPUT_ONLY = 2


TRANSITIONS: dict[StateTable, tuple[tuple[TcpState, ...], ...]] = {
    StateTable.INPUT: _INPUT,
    StateTable.OUTPUT: _OUTPUT,
    StateTable.INPUT_ONLY: _INPUT_ONLY,
}


def _row(flags: int) -> int | None:
    if flags & TcpFlags.RST.value:
        return 3
    if flags & TcpFlags.SYN.value:
        return 0
    if flags & TcpFlags.FIN.value:
        return 1
    if flags & TcpFlags.ACK.value:
        return 2
    return None


# tcp_state_idx() for every combination of the flags it reads, looked up per packet.
_ROWS: tuple[int | None, ...] = tuple(_row(f) for f in range(0x20))


def flag_row(flags: int) -> int | None:
    """tcp_state_idx(): RST wins, then SYN, then FIN, then ACK; None = no known flag."""
    return _ROWS[int(flags) & 0x1F]


def state_table_for(direction: Direction, no_output: bool) -> StateTable:
    """set_tcp_state(): NOOUTPUT connections read the INPUT-ONLY rows for input packets."""
    if direction is Direction.OUTPUT:
        return StateTable.OUTPUT
    return StateTable.INPUT_ONLY if no_output else StateTable.INPUT


def next_state(current: int, flags: int, table: StateTable) -> TcpState:
    """The state after a segment.

    set_tcp_state() starts from IP_VS_TCP_S_CLOSE and jumps straight out when
    tcp_state_idx() finds no flag it knows, so a segment with none of RST, SYN,
    FIN or ACK moves the entry to CLOSE.
    """
    row = _ROWS[int(flags) & 0x1F]
    if row is None:
        return TcpState.CLOSE
    return TRANSITIONS[table][row][current]


# tcp_state_active_table[] ("ipvs: count pre-established TCP states as active"):
# SYN_SENT, SYN_RECV and SYNACK count as ActiveConn besides ESTABLISHED.
_ACTIVE_PREESTABLISHED = frozenset(
    {TcpState.ESTABLISHED, TcpState.SYN_SENT, TcpState.SYN_RECV, TcpState.SYNACK}
)
# 3.x ip_vs_proto_tcp.c tested new_state == ESTABLISHED only.
_ACTIVE_ESTABLISHED_ONLY = frozenset({TcpState.ESTABLISHED})


def active_states(preestablished_active: bool) -> frozenset[TcpState]:
    """The TCP states counted as ActiveConn in an era."""
    return _ACTIVE_PREESTABLISHED if preestablished_active else _ACTIVE_ESTABLISHED_ONLY


class Timeouts:
    """The protocol timeout tables, as `ipvsadm --set tcp tcpfin udp` edits them.

    ip_vs_set_timeout() writes ESTABLISHED, FIN_WAIT and UDP; a value of 0 leaves
    the current one in place (which is why kube-proxy passes 0 for "unset").
    """

    __slots__ = ("tcp", "udp")

    def __init__(self) -> None:
        self.tcp: list[int] = [DEFAULT_TCP_TIMEOUTS[s] for s in TcpState]
        self.udp: int = DEFAULT_UDP_TIMEOUT

    def set(self, tcp: int = 0, tcpfin: int = 0, udp: int = 0) -> None:
        """ipvsadm --set TCP TCPFIN UDP, in seconds; 0 keeps the current value."""
        for name, value in (("tcp", tcp), ("tcpfin", tcpfin), ("udp", udp)):
            if value < 0:
                raise ValueError(f"ipvsadm --set {name} must be >= 0 seconds, got {value}")
        if tcp:
            self.tcp[TcpState.ESTABLISHED] = tcp * SECOND
        if tcpfin:
            self.tcp[TcpState.FIN_WAIT] = tcpfin * SECOND
        if udp:
            self.udp = udp * SECOND

    def for_state(self, protocol: Protocol, state: int, legacy_sctp: bool = False) -> int:
        """The timeout an entry in ``state`` gets (cp->timeout after its state change).

        SCTP reads sctp_timeouts[] of its state machine (``legacy_sctp``: the original
        2906f66a5682 one): ipvsadm --set never writes them, so they are not kept here.
        """
        if protocol is Protocol.TCP:
            return self.tcp[state]
        if protocol is Protocol.SCTP:
            # Imported here: sctp_states builds on this module.
            from ipvslab.kernel import sctp_states

            if legacy_sctp:
                return sctp_states.LEGACY_DEFAULT_SCTP_TIMEOUTS[sctp_states.LegacySctpState(state)]
            return sctp_states.DEFAULT_SCTP_TIMEOUTS[sctp_states.SctpState(state)]
        return self.udp

    def as_seconds(self) -> tuple[int, int, int]:
        """What `ipvsadm -L --timeout` prints: tcp tcpfin udp."""
        return (
            self.tcp[TcpState.ESTABLISHED] // SECOND,
            self.tcp[TcpState.FIN_WAIT] // SECOND,
            self.udp // SECOND,
        )
