"""The per-packet reuse decision: what ip_vs_in() does with a packet.

One pure function, `decide()`, read top to bottom in the order of the kernel's
ip_vs_in() / ip_vs_in_hook(). Era differences are feature flags
(features.py); each branch records a `Step` naming the commit behind it, so a
decision can explain itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ipvslab.kernel.conntrack import ConntrackStatus
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.packet import Protocol
from ipvslab.kernel.sctp_states import LegacySctpState, SctpState
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import TcpState

# IP_VS_SCTP_S_CLOSED, the only SCTP state is_new_conn_expected() (d752c364) lets a
# new association replace: 13 in the current machine. Kernels that kept the original
# 2906f66a5682 machine (RHEL 7: d752c364 backported, SCTP table not) compare the
# same name, which is 12 there.
SCTP_CLOSED = int(SctpState.CLOSED)
LEGACY_SCTP_CLOSED = int(LegacySctpState.CLOSED)


class Outcome(Enum):
    """What happens to the packet."""

    FORWARD_EXISTING = "forward on the existing entry"
    SCHEDULE = "no entry: schedule a real server"
    RESCHEDULE = "expire the old entry and schedule afresh"
    DROP_SYN = "drop this SYN (the client retransmits after 1 s)"
    DROP_NO_DEST = "drop: the entry's real server was removed"
    # ip_vs_schedule() finds no server: tcp/udp_conn_schedule() call ip_vs_leave(),
    # which answers ICMP port unreachable "no matter it is TCP/UDP" and drops the
    # packet (ip_vs_core.c, unchanged since 2.6): the client gets ECONNREFUSED at once.
    NO_DEST_AVAILABLE = "drop with ICMP port unreachable: no real server available to schedule"
    PASS_NOT_SYN = "no entry and not a SYN: not scheduled, passed to the local stack"

    @property
    def dropped(self) -> bool:
        """The packet reaches no real server."""
        return self in (
            Outcome.DROP_SYN,
            Outcome.DROP_NO_DEST,
            Outcome.NO_DEST_AVAILABLE,
            Outcome.PASS_NOT_SYN,
        )


class StepKind(Enum):
    """A point on the path through ip_vs_in(), with the commit that put it there."""

    NO_ENTRY = ("no connection entry matches", "")
    NOT_SYN_NO_SCHEDULE = (
        "TCP/SCTP without SYN/INIT is never scheduled (sloppy_tcp=0)",
        "tcp_conn_schedule()",
    )
    ENTRY_FOUND = ("an entry matches (protocol, client ip:port, virtual ip:port)", "")
    NOT_NEW_CONN = ("not a SYN/INIT: no reuse handling (is_new_conn)", "d752c364571743d6")
    PRE_REUSE_ERA = ("kernel before conn_reuse_mode: the packet follows the entry", "pre-d752c364")
    REUSE_MODE_OFF = ("conn_reuse_mode=0 skips the whole reuse block", "d752c364571743d6")
    WEIGHT0_CLAUSE = (
        "expire_nodest_conn=1 and the entry's server has weight 0",
        "d752c364571743d6",
    )
    WEIGHT0_ANY_MODE = (
        "the weight-0 clause runs whatever conn_reuse_mode says",
        "c95c07836fa4c176",
    )
    WEIGHT0_NOT_MET = ("weight-0 clause not met", "d752c364571743d6")
    EXPECTED_REUSE = ("entry state allows rescheduling (is_new_conn_expected)", "d752c364571743d6")
    CLOSE_STATE = ("CLOSE counts like TIME_WAIT in is_new_conn_expected", "close-state (<=5.2)")
    FIN_WAIT_NOOUTPUT = (
        "conn_reuse_mode bit 2: FIN_WAIT of an output-less (DR) entry",
        "d752c364571743d6",
    )
    CONTROLLED_ENTRY = (
        "entry is controlled (persistence/FTP): not expected to reuse",
        "d752c364571743d6",
    )
    STATE_NOT_EXPECTED = ("entry state does not allow rescheduling", "d752c364571743d6")
    CONTROLLING_KEEPS = (
        "entry controls others and uses conntrack: not rescheduled",
        "f719e3754ee2f727",
    )
    CONTROLLING_NOT_EXPIRED = (
        "entry controls others: rescheduled but not expired",
        "d752c364571743d6",
    )
    USES_CONNTRACK = ("entry has IP_VS_CONN_F_NFCT and the packet a conntrack", "f719e3754ee2f727")
    NO_CONNTRACK_USE = ("entry does not use conntrack: no drop needed", "f719e3754ee2f727")
    OLD_CONNTRACK = ("the packet's conntrack is confirmed (old flow)", "f0a5e4d7a594e0fe")
    NEW_CONNTRACK = (
        "the packet's conntrack is new/unconfirmed: NFCT cleared, no drop",
        "f0a5e4d7a594e0fe",
    )
    TOS_REUSE_OLD_CT = (
        "conn_reuse_old_conntrack=1: NFCT cleared, conntrack reused, no drop",
        "TencentOS PR #17",
    )
    TOS_REUSE_REFUSED = (
        "conn_reuse_old_conntrack off or entry in a control chain: drop",
        "TencentOS PR #17",
    )
    EXPIRE_OLD = ("old entry expired now (ip_vs_conn_expire_now)", "d752c364571743d6")
    DEST_UNAVAILABLE = ("the entry's real server was removed (not AVAILABLE)", "")
    NODEST_EXPIRE_DROP = ("expire_nodest_conn=1: entry expired, packet dropped", "pre-04231e52")
    NODEST_DROP = ("expire_nodest_conn=0: packet silently dropped", "")
    NODEST_RESCHEDULE = (
        "expire_nodest_conn=1: entry expired and packet rescheduled",
        "04231e52d355",
    )
    NO_SCHEDULABLE_DEST = (
        "scheduler finds no real server: ip_vs_leave() answers ICMP port unreachable",
        "ip_vs_leave()",
    )

    def __init__(self, text: str, commit: str) -> None:
        self.text = text
        self.commit = commit


@dataclass(frozen=True, slots=True)
class ExistingEntry:
    """What decide() needs to know of the entry the packet matched."""

    protocol: Protocol
    state: int
    dest_weight: int | None  # None: the entry has no real server bound
    dest_available: bool = True
    controlled: bool = False  # cp->control: a persistence template or FTP control owns it
    controls_others: bool = False  # cp->n_control > 0
    no_output: bool = False  # IP_VS_CONN_F_NOOUTPUT (DR, TUN, Local)
    uses_nfct: bool = False  # IP_VS_CONN_F_NFCT (created with net.ipv4.vs.conntrack=1)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    path: tuple[StepKind, ...]
    expire_old: bool = False  # the old entry is expired now
    clear_nfct: bool = False  # the old entry's NFCT flag is cleared first

    @property
    def commits(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.commit for s in self.path if s.commit))


def is_new_conn_expected(
    entry: ExistingEntry, conn_reuse_mode: int, features: KernelFeatures, path: list[StepKind]
) -> bool:
    """May a new connection replace this entry? (d752c364; CLOSE added later)."""
    if entry.controlled:
        path.append(StepKind.CONTROLLED_ENTRY)
        return False
    if entry.protocol is Protocol.TCP:
        if entry.state == TcpState.TIME_WAIT:
            path.append(StepKind.EXPECTED_REUSE)
            return True
        if entry.state == TcpState.CLOSE and features.close_state_reuse:
            path.append(StepKind.CLOSE_STATE)
            return True
        if conn_reuse_mode & 2 and entry.state == TcpState.FIN_WAIT and entry.no_output:
            path.append(StepKind.FIN_WAIT_NOOUTPUT)
            return True
    elif entry.protocol is Protocol.SCTP:
        closed = SCTP_CLOSED if features.sctp_new_state_machine else LEGACY_SCTP_CLOSED
        if entry.state == closed:
            path.append(StepKind.EXPECTED_REUSE)
            return True
    path.append(StepKind.STATE_NOT_EXPECTED)
    return False


def _conntrack_blocks(
    entry: ExistingEntry,
    conntrack: ConntrackStatus,
    features: KernelFeatures,
    path: list[StepKind],
) -> bool:
    """Would rescheduling have to drop the packet for conntrack's sake?

    f719e3754: ip_vs_conn_uses_conntrack() - the entry has NFCT and the packet has
    any conntrack. f0a5e4d7 (v5.9): ip_vs_conn_uses_old_conntrack() - the packet's
    conntrack is confirmed; the entry's NFCT flag no longer matters.
    """
    if features.unconfirmed_conntrack_reuse:
        if conntrack is ConntrackStatus.CONFIRMED:
            path.append(StepKind.OLD_CONNTRACK)
            return True
        path.append(StepKind.NEW_CONNTRACK)
        return False
    if features.first_syn_drop:
        if entry.uses_nfct and conntrack is not ConntrackStatus.NONE:
            path.append(StepKind.USES_CONNTRACK)
            return True
        path.append(StepKind.NO_CONNTRACK_USE)
    return False


@dataclass(frozen=True, slots=True)
class _Reschedule:
    """The reuse block decided to take the packet away from the old entry."""

    drop: bool
    expire_old: bool
    clear_nfct: bool


def _reuse_block(
    is_new_conn: bool,
    entry: ExistingEntry,
    conntrack: ConntrackStatus,
    sysctls: Sysctls,
    features: KernelFeatures,
    path: list[StepKind],
) -> _Reschedule | None:
    """The SYN-reuse block at the top of ip_vs_in(); None = keep the old entry."""
    if not is_new_conn:
        path.append(StepKind.NOT_NEW_CONN)
        return None
    if not features.conn_reuse_mode:
        # Before d752c364 (v4.1) a matching entry always wins ("forced persistence").
        path.append(StepKind.PRE_REUSE_ERA)
        return None
    if sysctls.conn_reuse_mode == 0 and not features.weight0_reschedule_any_mode:
        # d752c364 .. c95c07836: `if (conn_reuse_mode && ...)` gates everything.
        path.append(StepKind.REUSE_MODE_OFF)
        return None
    if sysctls.conn_reuse_mode == 0:
        path.append(StepKind.WEIGHT0_ANY_MODE)

    blocks = False
    if sysctls.expire_nodest_conn and entry.dest_weight == 0:
        # The weight-0 clause (present since d752c364) applies to controlled entries
        # too: is_new_conn_expected() is not consulted.
        path.append(StepKind.WEIGHT0_CLAUSE)
        blocks = _conntrack_blocks(entry, conntrack, features, path)
    elif sysctls.conn_reuse_mode and is_new_conn_expected(
        entry, sysctls.conn_reuse_mode, features, path
    ):
        blocks = _conntrack_blocks(entry, conntrack, features, path)
        if entry.controls_others and blocks:
            # f719e3754: a controlling entry still referenced and tied to conntrack
            # keeps its server.
            path.append(StepKind.CONTROLLING_KEEPS)
            return None
    else:
        if sysctls.conn_reuse_mode == 0:
            path.append(StepKind.WEIGHT0_NOT_MET)
        return None

    drop = blocks
    clear_nfct = False
    if blocks and features.reuse_old_conntrack:
        # TencentOS PR #17: reuse the old conntrack instead of dropping, unless
        # switched off or the entry is part of a control chain.
        if sysctls.conn_reuse_old_conntrack and not (entry.controls_others or entry.controlled):
            path.append(StepKind.TOS_REUSE_OLD_CT)
            clear_nfct = True
            drop = False
        else:
            path.append(StepKind.TOS_REUSE_REFUSED)
    elif features.unconfirmed_conntrack_reuse and not blocks:
        # f0a5e4d7: clear NFCT so the old entry's expiry does not kill the new ct.
        clear_nfct = True
    expire_old = not entry.controls_others
    path.append(StepKind.EXPIRE_OLD if expire_old else StepKind.CONTROLLING_NOT_EXPIRED)
    return _Reschedule(drop, expire_old, clear_nfct)


def _schedule(
    path: list[StepKind],
    can_schedule: bool,
    rescheduled: bool,
    expire_old: bool,
    clear_nfct: bool,
) -> Decision:
    """ip_vs_try_to_schedule(): a new entry, unless the scheduler finds no server."""
    if not can_schedule:
        path.append(StepKind.NO_SCHEDULABLE_DEST)
        return Decision(Outcome.NO_DEST_AVAILABLE, tuple(path), expire_old, clear_nfct)
    outcome = Outcome.RESCHEDULE if rescheduled else Outcome.SCHEDULE
    return Decision(outcome, tuple(path), expire_old, clear_nfct)


def decide(
    is_new_conn: bool,
    entry: ExistingEntry | None,
    conntrack: ConntrackStatus,
    sysctls: Sysctls,
    features: KernelFeatures,
    can_schedule: bool = True,
    protocol: Protocol = Protocol.TCP,
) -> Decision:
    """What ip_vs_in() does with one packet from the client side.

    ``is_new_conn``: the packet is a TCP SYN or its first SCTP chunk is INIT
    (is_new_conn()).
    ``entry``: the connection entry the packet matched, or None.
    ``conntrack``: what netfilter attached to the packet.
    ``can_schedule``: whether the service's scheduler would find a server now.
    ``protocol``: the packet's protocol (only read when no entry matches).
    """
    path: list[StepKind] = []
    if entry is None:
        path.append(StepKind.NO_ENTRY)
        if not is_new_conn and protocol is not Protocol.UDP:
            # tcp_conn_schedule() / sctp_conn_schedule(): only a SYN (INIT) may
            # create an entry unless sloppy_tcp/sloppy_sctp is set.
            path.append(StepKind.NOT_SYN_NO_SCHEDULE)
            return Decision(Outcome.PASS_NOT_SYN, tuple(path))
        return _schedule(path, can_schedule, False, False, False)
    path.append(StepKind.ENTRY_FOUND)

    reuse = _reuse_block(is_new_conn, entry, conntrack, sysctls, features, path)
    if reuse is not None:
        if reuse.drop:
            return Decision(Outcome.DROP_SYN, tuple(path), reuse.expire_old, reuse.clear_nfct)
        return _schedule(path, can_schedule, True, reuse.expire_old, reuse.clear_nfct)

    # "Check the server status": the entry's server was removed from the service.
    if entry.dest_weight is not None and not entry.dest_available:
        path.append(StepKind.DEST_UNAVAILABLE)
        if not sysctls.expire_nodest_conn:
            path.append(StepKind.NODEST_DROP)
            return Decision(Outcome.DROP_NO_DEST, tuple(path))
        if not features.nodest_reschedule:
            # Before 04231e52: expire the entry so a retransmission is scheduled
            # afresh, but drop this packet.
            path.append(StepKind.NODEST_EXPIRE_DROP)
            return Decision(Outcome.DROP_NO_DEST, tuple(path), expire_old=True)
        # 04231e52d355 (v5.9): expire and reschedule in the same packet, unless the
        # packet's conntrack is confirmed (then drop, as f0a5e4d7 does).
        if conntrack is ConntrackStatus.CONFIRMED:
            path.append(StepKind.OLD_CONNTRACK)
            path.append(StepKind.EXPIRE_OLD)
            return Decision(Outcome.DROP_NO_DEST, tuple(path), expire_old=True)
        path.append(StepKind.NODEST_RESCHEDULE)
        path.append(StepKind.EXPIRE_OLD)
        return _schedule(path, can_schedule, True, True, True)

    return Decision(Outcome.FORWARD_EXISTING, tuple(path))
