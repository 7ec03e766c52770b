"""The IPVS SCTP state machine (net/netfilter/ipvs/ip_vs_proto_sctp.c).

Pure data and pure functions, no I/O. Kept as tables so each cell can be checked
against the kernel's sctp_states[], sctp_events[], sctp_timeouts[] and
sctp_state_name_table[]. Times are integer milliseconds.

Two generations exist:

* the current machine (14 states, three tables: input, output, input-only), a
  rewrite by Julian Anastasov that replaced the original table. The
  rewrite's commit id could not be confirmed here (see docs/sctp.md); its tables
  were read from torvalds/linux at 0a4fd6ce92460ec325f7e56813645e4308da170e
  and are unchanged in a current tree (kernel-patches/bpf at
  63533010fdd0c14dea6a57326020c3e1513ac229).
* the original machine from 2906f66a5682 "ipvs: SCTP Trasport Loadbalancing
  Support" (13 states, one table indexed by client/server event), kept below as
  ``LEGACY_*``. Read from a 3.4-based tree (CyanogenMod/android_kernel_htc_msm8974)
  and a RHEL 7.3-era 3.10 tree (halfline/rhel7), which carry the same table.

Which one a kernel runs is Feature.SCTP_NEW_STATE_MACHINE (features.py): off for
the RHEL 7 family, whose 3.10 kernels never took the rewrite.

Nothing here touches counters or timers: ``step()`` returns what set_sctp_state()
would decide and the caller (ipvs.py) applies it.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from ipvslab.kernel.packet import Direction
from ipvslab.kernel.tcp_states import MINUTE, SECOND, StateTable, state_table_for

# ---------------------------------------------------------------------------------
# Chunk types (RFC 4960 section 3.2; SCTP_CID_* in include/linux/sctp.h).
# ---------------------------------------------------------------------------------


class SctpChunk(IntEnum):
    """The chunk types IPVS maps to events; every other type counts as DATA."""

    DATA = 0
    INIT = 1
    INIT_ACK = 2
    SACK = 3
    HEARTBEAT = 4
    HEARTBEAT_ACK = 5
    ABORT = 6
    SHUTDOWN = 7
    SHUTDOWN_ACK = 8
    ERROR = 9
    COOKIE_ECHO = 10
    COOKIE_ACK = 11
    ECNE = 12
    CWR = 13
    SHUTDOWN_COMPLETE = 14


# ---------------------------------------------------------------------------------
# The current machine.
# ---------------------------------------------------------------------------------


class SctpState(IntEnum):
    """IP_VS_SCTP_S_* (include/net/ip_vs.h, enum ip_vs_sctp_states), kernel order.

    These numbers are what cp->state holds and what the sync protocol carries.
    Client-initiated setup runs INIT1/INIT -> COOKIE_SENT -> COOKIE_REPLIED; the
    server-initiated one runs COOKIE_WAIT -> COOKIE -> COOKIE_ECHOED.
    IP_VS_SCTP_S_LAST (14) is the count, not a state.
    """

    NONE = 0
    INIT1 = 1  # first client INIT seen, no INIT-ACK yet (short timer)
    INIT = 2  # a retransmitted client INIT (or INIT on a closed entry)
    COOKIE_SENT = 3  # server sent INIT-ACK, waiting for the client's COOKIE-ECHO
    COOKIE_REPLIED = 4  # client sent COOKIE-ECHO, waiting for the server's COOKIE-ACK
    COOKIE_WAIT = 5  # server sent INIT, waiting for the client's INIT-ACK
    COOKIE = 6  # client sent INIT-ACK, waiting for the server's COOKIE-ECHO
    COOKIE_ECHOED = 7  # server sent COOKIE-ECHO, waiting for the client's COOKIE-ACK
    ESTABLISHED = 8
    SHUTDOWN_SENT = 9  # the server sent SHUTDOWN
    SHUTDOWN_RECEIVED = 10  # the client sent SHUTDOWN
    SHUTDOWN_ACK_SENT = 11  # a SHUTDOWN-ACK answered the other side's SHUTDOWN
    REJECTED = 12  # an INIT was answered with ABORT (short timer)
    CLOSED = 13


SCTP_STATE_COUNT = len(SctpState)  # IP_VS_SCTP_S_LAST


class SctpEvent(IntEnum):
    """The rows of sctp_states[] (enum ipvs_sctp_event_t), kernel order."""

    DATA = 0  # DATA, SACK, HEARTBEAT(-ACK), ECNE, CWR and any unknown chunk
    INIT = 1
    INIT_ACK = 2
    COOKIE_ECHO = 3
    COOKIE_ACK = 4
    SHUTDOWN = 5
    SHUTDOWN_ACK = 6
    SHUTDOWN_COMPLETE = 7
    ERROR = 8
    ABORT = 9


# sctp_events[] of the current machine: chunk type -> event for types 0..14;
# set_sctp_state() treats every type past the end of the array as DATA.
_CHUNK_EVENTS: tuple[SctpEvent, ...] = (
    SctpEvent.DATA,  # DATA
    SctpEvent.INIT,  # INIT
    SctpEvent.INIT_ACK,  # INIT_ACK
    SctpEvent.DATA,  # SACK
    SctpEvent.DATA,  # HEARTBEAT
    SctpEvent.DATA,  # HEARTBEAT_ACK
    SctpEvent.ABORT,  # ABORT
    SctpEvent.SHUTDOWN,  # SHUTDOWN
    SctpEvent.SHUTDOWN_ACK,  # SHUTDOWN_ACK
    SctpEvent.ERROR,  # ERROR
    SctpEvent.COOKIE_ECHO,  # COOKIE_ECHO
    SctpEvent.COOKIE_ACK,  # COOKIE_ACK
    SctpEvent.DATA,  # ECNE
    SctpEvent.DATA,  # CWR
    SctpEvent.SHUTDOWN_COMPLETE,  # SHUTDOWN_COMPLETE
)

_ABORT_LOOKAHEAD = frozenset({SctpChunk.COOKIE_ECHO.value, SctpChunk.COOKIE_ACK.value})


def _check_chunk(name: str, value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} is an 8-bit SCTP chunk type, got {value}")
    return value


def event_for_chunk(chunk_type: int, next_chunk_type: int | None = None) -> SctpEvent:
    """The event set_sctp_state() derives from a packet's chunks.

    Only the first chunk counts, with one exception (RFC 4960 3.3.7 lets control
    chunks be bundled before an ABORT): when the first chunk is COOKIE-ECHO or
    COOKIE-ACK and the chunk right after it is ABORT, the packet counts as ABORT.
    ``next_chunk_type`` is the type of that second chunk, or None when the packet
    has none (or the first chunk's length field is below 4, when the kernel does
    not look further).
    """
    first = _check_chunk("chunk_type", chunk_type)
    if next_chunk_type is not None:
        second = _check_chunk("next_chunk_type", next_chunk_type)
        if first in _ABORT_LOOKAHEAD and second == SctpChunk.ABORT:
            first = second
    if first < len(_CHUNK_EVENTS):
        return _CHUNK_EVENTS[first]
    return SctpEvent.DATA


# Short names for the table cells below.
(_NO, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL) = SctpState

# sctp_states[direction][event][state] of the current machine. One tuple per
# event (in SctpEvent order); the 14 cells of each follow SctpState order:
#   NO   I1   IN   CS   CR   CW   CO   CE   ES   SS   SR   SA   RJ   CL
# Packets from the client (input) on an entry that sees the server's replies.
_INPUT: tuple[tuple[SctpState, ...], ...] = (
    (_ES, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # DATA
    (_I1, _IN, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _IN, _IN),  # INIT
    (_CW, _CW, _CW, _CS, _CR, _CO, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # INIT_ACK
    (_CR, _IN, _IN, _CR, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # COOKIE_ECHO
    (_ES, _I1, _IN, _CS, _CR, _CW, _CO, _ES, _ES, _SS, _SR, _SA, _RJ, _CL),  # COOKIE_ACK
    (_SR, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _SR, _SS, _SR, _SA, _RJ, _CL),  # SHUTDOWN
    (_CL, _IN, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _CL, _SR, _CL, _RJ, _CL),  # SHUTDOWN_ACK
    (_CL, _CL, _CL, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _CL, _RJ, _CL),  # SHUTDOWN_COMPLETE
    (_CL, _I1, _IN, _CS, _CR, _CW, _CO, _CL, _ES, _SS, _SR, _SA, _RJ, _CL),  # ERROR
    (_CL, _CL, _CL, _CL, _CL, _RJ, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),  # ABORT
)
# Packets from the server (output); the director only sees them for NAT.
_OUTPUT: tuple[tuple[SctpState, ...], ...] = (
    (_ES, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # DATA
    (_CW, _CW, _CW, _CW, _CW, _CW, _CW, _CW, _ES, _CW, _CW, _CW, _CW, _CW),  # INIT
    (_CS, _CS, _CS, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # INIT_ACK
    (_CE, _CE, _CE, _CE, _CE, _CE, _CE, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # COOKIE_ECHO
    (_ES, _ES, _ES, _ES, _ES, _ES, _ES, _ES, _ES, _SS, _SR, _SA, _RJ, _CL),  # COOKIE_ACK
    (_SS, _SS, _SS, _SS, _SS, _SS, _SS, _SS, _SS, _SS, _SR, _SA, _RJ, _CL),  # SHUTDOWN
    (_SA, _SA, _SA, _SA, _SA, _CW, _CO, _CE, _ES, _SA, _SA, _SA, _RJ, _CL),  # SHUTDOWN_ACK
    (_CL, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # SHUTDOWN_COMPLETE
    (_CL, _CL, _CL, _CL, _CL, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # ERROR
    (_CL, _RJ, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),  # ABORT
)
# Client packets on an IP_VS_CONN_F_NOOUTPUT entry (DR, TUN, local): the server's
# half of each exchange is never seen, so the client's next chunk stands for it
# (a client COOKIE-ECHO implies the INIT-ACK, a client DATA after a server INIT
# implies the whole setup).
_INPUT_ONLY: tuple[tuple[SctpState, ...], ...] = (
    (_ES, _I1, _IN, _CS, _CR, _ES, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # DATA
    (_I1, _IN, _IN, _IN, _IN, _IN, _CO, _CE, _ES, _SS, _SR, _SA, _IN, _IN),  # INIT
    (_CE, _CE, _CE, _CE, _CE, _CE, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # INIT_ACK
    (_ES, _ES, _ES, _ES, _ES, _ES, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # COOKIE_ECHO
    (_ES, _I1, _IN, _ES, _ES, _CW, _ES, _ES, _ES, _SS, _SR, _SA, _RJ, _CL),  # COOKIE_ACK
    (_SR, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _SR, _SS, _SR, _SA, _RJ, _CL),  # SHUTDOWN
    (_CL, _IN, _IN, _CS, _CR, _CW, _CO, _CE, _CL, _CL, _SR, _CL, _RJ, _CL),  # SHUTDOWN_ACK
    (_CL, _CL, _CL, _CL, _CL, _CW, _CO, _CE, _ES, _SS, _CL, _CL, _RJ, _CL),  # SHUTDOWN_COMPLETE
    (_CL, _I1, _IN, _CS, _CR, _CW, _CO, _CE, _ES, _SS, _SR, _SA, _RJ, _CL),  # ERROR
    (_CL, _CL, _CL, _CL, _CL, _RJ, _CL, _CL, _CL, _CL, _CL, _CL, _CL, _CL),  # ABORT
)

# Indexed by IP_VS_DIR_INPUT / IP_VS_DIR_OUTPUT / IP_VS_DIR_INPUT_ONLY, the same
# three-way index the TCP tables use (tcp_states.StateTable).
TRANSITIONS: dict[StateTable, tuple[tuple[SctpState, ...], ...]] = {
    StateTable.INPUT: _INPUT,
    StateTable.OUTPUT: _OUTPUT,
    StateTable.INPUT_ONLY: _INPUT_ONLY,
}


def next_state(state: SctpState, event: SctpEvent, direction: StateTable) -> SctpState:
    """sctp_states[direction][event][state]: a plain table lookup, total by design.

    ``direction`` is the kernel's direction index after set_sctp_state() has
    folded IP_VS_CONN_F_NOOUTPUT in (see ``state_table_for``).
    """
    return TRANSITIONS[direction][event][state]


# IP_VS_SCTP_MAX_RTO: (60 + 1) seconds, one more than SCTP's default RTO.Max.
SCTP_MAX_RTO = 61 * SECOND
# INIT1 and REJECTED: (0 + 3 + 1) seconds, long enough for one INIT retransmit.
SCTP_SHORT_TIMEOUT = 4 * SECOND

# sctp_timeouts[] of the current machine. IPVS has no knob for these: ipvsadm
# --set and IPVS_CMD_SET_CONFIG only write the TCP, TCP-FIN and UDP timeouts, and
# each netns gets a private copy of these defaults.
DEFAULT_SCTP_TIMEOUTS: dict[SctpState, int] = {
    SctpState.NONE: 2 * SECOND,
    SctpState.INIT1: SCTP_SHORT_TIMEOUT,
    SctpState.INIT: SCTP_MAX_RTO,
    SctpState.COOKIE_SENT: SCTP_MAX_RTO,
    SctpState.COOKIE_REPLIED: SCTP_MAX_RTO,
    SctpState.COOKIE_WAIT: SCTP_MAX_RTO,
    SctpState.COOKIE: SCTP_MAX_RTO,
    SctpState.COOKIE_ECHOED: SCTP_MAX_RTO,
    SctpState.ESTABLISHED: 15 * MINUTE,
    SctpState.SHUTDOWN_SENT: SCTP_MAX_RTO,
    SctpState.SHUTDOWN_RECEIVED: SCTP_MAX_RTO,
    SctpState.SHUTDOWN_ACK_SENT: SCTP_MAX_RTO,
    SctpState.REJECTED: SCTP_SHORT_TIMEOUT,
    SctpState.CLOSED: SCTP_MAX_RTO,
}

# sctp_state_name_table[] of the current machine: what /proc/net/ip_vs_conn
# prints in its state column (left-aligned in 11 columns; all fit).
SCTP_STATE_NAMES: dict[SctpState, str] = {
    SctpState.NONE: "NONE",
    SctpState.INIT1: "INIT1",
    SctpState.INIT: "INIT",
    SctpState.COOKIE_SENT: "C-SENT",
    SctpState.COOKIE_REPLIED: "C-REPLIED",
    SctpState.COOKIE_WAIT: "C-WAIT",
    SctpState.COOKIE: "COOKIE",
    SctpState.COOKIE_ECHOED: "C-ECHOED",
    SctpState.ESTABLISHED: "ESTABLISHED",
    SctpState.SHUTDOWN_SENT: "S-SENT",
    SctpState.SHUTDOWN_RECEIVED: "S-RECEIVED",
    SctpState.SHUTDOWN_ACK_SENT: "S-ACK-SENT",
    SctpState.REJECTED: "REJECTED",
    SctpState.CLOSED: "CLOSED",
}


def state_name(state: int) -> str:
    """sctp_state_name(): the /proc name, "ERR!" for anything past the last state.

    The kernel table also has "BUG!" in the IP_VS_SCTP_S_LAST slot, but the range
    check runs first, so that entry is never printed.
    """
    if 0 <= state < SCTP_STATE_COUNT:
        return SCTP_STATE_NAMES[SctpState(state)]
    return "ERR!"


# set_sctp_state() moves a connection between the server's InActConn and
# ActiveConn only on entering or leaving ESTABLISHED, in every kernel with
# SCTP support. (TCP's pre-established active states came from a TCP-only change;
# the SCTP code still tests next_state == IP_VS_SCTP_S_ESTABLISHED.)
SCTP_ACTIVE_STATES = frozenset({SctpState.ESTABLISHED})


def is_active(state: int) -> bool:
    """Does an entry in this state count as ActiveConn (else InActConn)?"""
    return state == SctpState.ESTABLISHED


class SctpStep(NamedTuple):
    """What set_sctp_state() decides for one packet, before the caller applies it.

    ``event`` and ``table`` are None when the packet had no readable chunk header:
    the kernel then returns at once, so the state, the NOOUTPUT flag and the
    connection's timeout all stay as they were.
    """

    state: SctpState
    event: SctpEvent | None
    table: StateTable | None
    clear_no_output: bool  # an output packet on a NOOUTPUT entry drops the flag


def step(
    current: int,
    chunk_type: int | None,
    direction: Direction,
    no_output: bool,
    next_chunk_type: int | None = None,
) -> SctpStep:
    """set_sctp_state() without its side effects.

    current: the entry's state (cp->state). chunk_type: the first chunk's type,
    None when the packet is too short to hold a chunk header. direction: which
    hook saw it. no_output: IP_VS_CONN_F_NOOUTPUT is set on the entry.
    next_chunk_type: see ``event_for_chunk``.
    """
    state = SctpState(current)
    if chunk_type is None:
        return SctpStep(state, None, None, False)
    event = event_for_chunk(chunk_type, next_chunk_type)
    table = state_table_for(direction, no_output)
    clear = no_output and direction is Direction.OUTPUT
    return SctpStep(next_state(state, event, table), event, table, clear)


# ---------------------------------------------------------------------------------
# The original machine (2906f66a5682 "ipvs: SCTP Trasport Loadbalancing Support").
# ---------------------------------------------------------------------------------


class LegacySctpState(IntEnum):
    """IP_VS_SCTP_S_* before the rewrite. CLI/SER name the side that sent the chunk."""

    NONE = 0
    INIT_CLI = 1
    INIT_SER = 2
    INIT_ACK_CLI = 3
    INIT_ACK_SER = 4
    ECHO_CLI = 5
    ECHO_SER = 6
    ESTABLISHED = 7
    SHUT_CLI = 8
    SHUT_SER = 9
    SHUT_ACK_CLI = 10
    SHUT_ACK_SER = 11
    CLOSED = 12


# The original sctp_events[] sent ERROR chunks to the DATA event (it had no ERROR
# event) and every type from 15 up to DATA as well.
_LEGACY_CHUNK_EVENTS: tuple[SctpEvent, ...] = tuple(
    SctpEvent.DATA if e is SctpEvent.ERROR else e for e in _CHUNK_EVENTS
)


def legacy_event_for_chunk(chunk_type: int, next_chunk_type: int | None = None) -> SctpEvent:
    """The event the original code took from a packet (never ERROR).

    The bundled-ABORT lookahead (COOKIE-ECHO or COOKIE-ACK followed by ABORT counts
    as ABORT) is applied as in the current machine. The 3.4-based tree read the
    first chunk's length without byte-swapping, so there it looks far past the
    packet on a little-endian host and never fires; the RHEL 7.3 tree
    (halfline/rhel7) and a 3.10 Android tree (melvilli/kernel_msm8916_outrageous)
    byte-swap and align it, and those 3.10 kernels are the ones that still run
    this machine (presets.py), so the model follows them.
    """
    first = _check_chunk("chunk_type", chunk_type)
    if next_chunk_type is not None:
        second = _check_chunk("next_chunk_type", next_chunk_type)
        if first in _ABORT_LOOKAHEAD and second == SctpChunk.ABORT:
            first = second
    if first < len(_LEGACY_CHUNK_EVENTS):
        return _LEGACY_CHUNK_EVENTS[first]
    return SctpEvent.DATA


# OK is ESTABLISHED; EC/ES are ECHO_CLI/ECHO_SER; KC/KS are SHUT_ACK_CLI/SER.
(_LNO, _LIC, _LIS, _LAC, _LAS, _LEC, _LES, _LOK, _LSC, _LSS, _LKC, _LKS, _LCL) = LegacySctpState

# The original sctp_states_table[state][event]: one table for both directions,
# the event split into a client (input) and a server (output) column. Stored
# here per event as (client column, server column), each listing the next state
# for the 13 states in LegacySctpState order:
#   NO   IC   IS   AC   AS   EC   ES   OK   SC   SS   KC   KS   CL
_LEGACY: dict[SctpEvent, tuple[tuple[LegacySctpState, ...], tuple[LegacySctpState, ...]]] = {
    SctpEvent.DATA: (
        (_LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LOK, _LSC, _LSS, _LKC, _LKS, _LCL),
        (_LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LOK, _LSC, _LSS, _LKC, _LKS, _LCL),
    ),
    SctpEvent.INIT: (
        (_LIC, _LIC, _LIC, _LIC, _LIC, _LIC, _LIC, _LIC, _LIC, _LIC, _LIC, _LIC, _LIC),
        (_LIS, _LIS, _LIS, _LIS, _LIS, _LIS, _LIS, _LIS, _LIS, _LIS, _LIS, _LIS, _LIS),
    ),
    SctpEvent.INIT_ACK: (
        (_LCL, _LCL, _LAC, _LAC, _LCL, _LCL, _LES, _LOK, _LSC, _LSS, _LKC, _LKS, _LCL),
        (_LCL, _LAS, _LCL, _LCL, _LAS, _LEC, _LCL, _LOK, _LSC, _LSS, _LKC, _LKS, _LCL),
    ),
    SctpEvent.COOKIE_ECHO: (
        (_LCL, _LCL, _LIS, _LCL, _LEC, _LEC, _LCL, _LOK, _LOK, _LOK, _LOK, _LOK, _LCL),
        (_LCL, _LIC, _LCL, _LES, _LCL, _LCL, _LES, _LOK, _LOK, _LOK, _LOK, _LOK, _LCL),
    ),
    SctpEvent.COOKIE_ACK: (
        (_LCL, _LCL, _LIS, _LCL, _LAS, _LCL, _LOK, _LOK, _LSC, _LSS, _LKC, _LKS, _LCL),
        (_LCL, _LIC, _LCL, _LAC, _LCL, _LOK, _LCL, _LOK, _LSC, _LSS, _LKC, _LKS, _LCL),
    ),
    SctpEvent.ABORT: (
        (_LCL,) * 13,
        (_LCL,) * 13,
    ),
    SctpEvent.SHUTDOWN: (
        (_LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LSC, _LSC, _LSC, _LSC, _LSC, _LCL),
        (_LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LSS, _LSS, _LSS, _LSS, _LSS, _LCL),
    ),
    SctpEvent.SHUTDOWN_ACK: (
        (_LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LKC, _LKC, _LCL, _LCL),
        (_LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LCL, _LKS, _LCL, _LCL, _LKS, _LCL),
    ),
    SctpEvent.SHUTDOWN_COMPLETE: (
        (_LCL,) * 13,
        (_LCL,) * 13,
    ),
}


def legacy_next_state(
    state: LegacySctpState, event: SctpEvent, direction: Direction
) -> LegacySctpState:
    """The original machine's next state. It had no input-only table: DR and TUN
    entries simply never see a server column, and set_sctp_state() never looks
    at (or clears) IP_VS_CONN_F_NOOUTPUT. ERROR is treated as DATA, as the
    original chunk map did."""
    if event is SctpEvent.ERROR:
        event = SctpEvent.DATA
    return _LEGACY[event][1 if direction is Direction.OUTPUT else 0][state]


# The original sctp_timeouts[].
LEGACY_DEFAULT_SCTP_TIMEOUTS: dict[LegacySctpState, int] = {
    LegacySctpState.NONE: 2 * SECOND,
    LegacySctpState.INIT_CLI: 1 * MINUTE,
    LegacySctpState.INIT_SER: 1 * MINUTE,
    LegacySctpState.INIT_ACK_CLI: 1 * MINUTE,
    LegacySctpState.INIT_ACK_SER: 1 * MINUTE,
    LegacySctpState.ECHO_CLI: 1 * MINUTE,
    LegacySctpState.ECHO_SER: 1 * MINUTE,
    LegacySctpState.ESTABLISHED: 15 * MINUTE,
    LegacySctpState.SHUT_CLI: 1 * MINUTE,
    LegacySctpState.SHUT_SER: 1 * MINUTE,
    LegacySctpState.SHUT_ACK_CLI: 1 * MINUTE,
    LegacySctpState.SHUT_ACK_SER: 1 * MINUTE,
    LegacySctpState.CLOSED: 10 * SECOND,
}

# The original sctp_state_name_table[], spelling (ESTABISHED) included; some names
# are wider than the 11 columns /proc/net/ip_vs_conn pads to.
LEGACY_SCTP_STATE_NAMES: dict[LegacySctpState, str] = {
    LegacySctpState.NONE: "NONE",
    LegacySctpState.INIT_CLI: "INIT_CLI",
    LegacySctpState.INIT_SER: "INIT_SER",
    LegacySctpState.INIT_ACK_CLI: "INIT_ACK_CLI",
    LegacySctpState.INIT_ACK_SER: "INIT_ACK_SER",
    LegacySctpState.ECHO_CLI: "COOKIE_ECHO_CLI",
    LegacySctpState.ECHO_SER: "COOKIE_ECHO_SER",
    LegacySctpState.ESTABLISHED: "ESTABISHED",
    LegacySctpState.SHUT_CLI: "SHUTDOWN_CLI",
    LegacySctpState.SHUT_SER: "SHUTDOWN_SER",
    LegacySctpState.SHUT_ACK_CLI: "SHUTDOWN_ACK_CLI",
    LegacySctpState.SHUT_ACK_SER: "SHUTDOWN_ACK_SER",
    LegacySctpState.CLOSED: "CLOSED",
}


def legacy_is_active(state: int) -> bool:
    """The original set_sctp_state() used the same ESTABLISHED-only rule."""
    return state == LegacySctpState.ESTABLISHED
