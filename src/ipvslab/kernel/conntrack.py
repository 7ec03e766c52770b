"""A minimal netfilter TCP conntrack twin (nf_conntrack_proto_tcp.c).

Just enough to answer the question the 5.9 fix turns on: when a SYN from a reused
client port reaches IPVS, does the packet carry a conntrack entry that is already
confirmed (the old flow, which cannot be sent to another server), a fresh
unconfirmed one, or none at all?

IPVS runs after conntrack in the hook order, so conntrack has already handled
the SYN: in TIME_WAIT or CLOSE, after a FIN or an RST was seen, netfilter kills
the old entry and looks the packet up again (the "reopen" path of
nf_conntrack_tcp_packet()), which creates a NEW, unconfirmed entry. In any still
open state the old, confirmed entry stays attached.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

from ipvslab.kernel.packet import Direction, TcpFlags
from ipvslab.kernel.tcp_states import SECOND


class ConntrackStatus(Enum):
    """What conntrack attached to a packet by the time IPVS sees it."""

    NONE = "none"  # no conntrack on the skb (module absent, NOTRACK)
    NEW = "new-unconfirmed"  # created for this packet, confirmed only at the end of the hooks
    CONFIRMED = "confirmed-old"  # an existing entry from an earlier packet


class CtTcpState(IntEnum):
    """TCP_CONNTRACK_* states that matter here."""

    NONE = 0
    SYN_SENT = 1
    SYN_RECV = 2
    ESTABLISHED = 3
    FIN_WAIT = 4
    CLOSE_WAIT = 5
    LAST_ACK = 6
    TIME_WAIT = 7
    CLOSE = 8


# nf_conntrack_tcp_timeout_* defaults (sysctl net.netfilter.*), in milliseconds.
CT_TCP_TIMEOUTS: dict[CtTcpState, int] = {
    CtTcpState.NONE: 0,
    CtTcpState.SYN_SENT: 120 * SECOND,
    CtTcpState.SYN_RECV: 60 * SECOND,
    CtTcpState.ESTABLISHED: 5 * 24 * 3600 * SECOND,
    CtTcpState.FIN_WAIT: 120 * SECOND,
    CtTcpState.CLOSE_WAIT: 60 * SECOND,
    CtTcpState.LAST_ACK: 30 * SECOND,
    CtTcpState.TIME_WAIT: 120 * SECOND,
    CtTcpState.CLOSE: 10 * SECOND,
}


@dataclass(slots=True)
class ConntrackEntry:
    """One tracked flow, as far as reuse is concerned."""

    state: CtTcpState
    expires: int
    fin_seen: bool = False  # IP_CT_TCP_FLAG_CLOSE_INIT in either direction
    last_rst_from_client: bool = False  # last_index == TCP_RST_SET in the original direction

    def alive(self, now: int) -> bool:
        return now < self.expires

    @property
    def reopenable(self) -> bool:
        """nf_conntrack_tcp_packet(): a SYN may replace an entry in TIME_WAIT or CLOSE
        when the flow was closed (FIN seen) or aborted by the client (RST)."""
        return self.state >= CtTcpState.TIME_WAIT and (self.fin_seen or self.last_rst_from_client)


def status_for_syn(
    entry: ConntrackEntry | None, now: int, tracking: bool = True
) -> ConntrackStatus:
    """The conntrack a client SYN carries into IPVS.

    ``tracking`` False means no conntrack at all on this path (NONE). A missing or
    expired entry, or one the SYN reopens, gives a NEW unconfirmed entry; any
    other live entry stays CONFIRMED.
    """
    if not tracking:
        return ConntrackStatus.NONE
    if entry is None or not entry.alive(now) or entry.reopenable:
        return ConntrackStatus.NEW
    return ConntrackStatus.CONFIRMED


_SYN, _ACK, _FIN, _RST = (f.value for f in (TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN, TcpFlags.RST))


def track(
    entry: ConntrackEntry | None, flags: int, direction: Direction, now: int
) -> ConntrackEntry:
    """Advance (or create) a flow's entry for one segment; returns the entry now attached.

    A coarse version of tcp_conntracks[]: handshake, FIN from either side marks
    the flow closing, the last ACK after both FINs gives TIME_WAIT, RST gives CLOSE.
    """
    flags = int(flags)
    if (
        entry is None
        or entry.expires <= now
        or (flags & _SYN and not flags & _ACK and entry.reopenable)
    ):
        entry = ConntrackEntry(CtTcpState.NONE, now)
    state = entry.state
    if flags & _RST:
        state = CtTcpState.CLOSE
        entry.last_rst_from_client = direction is Direction.INPUT
    elif flags & _SYN:
        if flags & _ACK:
            if state is CtTcpState.SYN_SENT or state is CtTcpState.NONE:
                state = CtTcpState.SYN_RECV
        elif state is CtTcpState.NONE:
            state = CtTcpState.SYN_SENT
    elif flags & _FIN:
        entry.fin_seen = True
        if state is CtTcpState.ESTABLISHED or state is CtTcpState.SYN_RECV:
            state = CtTcpState.FIN_WAIT
        elif state is CtTcpState.FIN_WAIT or state is CtTcpState.CLOSE_WAIT:
            state = CtTcpState.LAST_ACK
    elif flags & _ACK:
        if state is CtTcpState.SYN_RECV:
            state = CtTcpState.ESTABLISHED
        elif state is CtTcpState.LAST_ACK:
            state = CtTcpState.TIME_WAIT
        elif state is CtTcpState.FIN_WAIT:
            state = CtTcpState.CLOSE_WAIT
    entry.state = state
    entry.expires = now + CT_TCP_TIMEOUTS[state]
    return entry
