"""The IPVS TCP state machine, timeouts and ActiveConn/InActConn counters.

Expected values are transcribed from the reference, section 3: tcp_states[]
(K617 ip_vs_proto_tcp.c, same in T-tcp-old), tcp_timeouts[], set_tcp_state(),
ip_vs_bind_dest() and udp_state_transition().
"""

from __future__ import annotations

import ipaddress

import pytest
from conftest import (
    ACK,
    CLIENT,
    FIN,
    MINUTE,
    PRE_4_1,
    RST,
    SECOND,
    SYN,
    SYNACK,
    V4_19,
    V6_1,
    VIP,
    Lab,
    make_lab,
)

from ipvslab.kernel.connection import F_NOOUTPUT
from ipvslab.kernel.dest import ForwardMethod
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.ipvs import IpvsKernel
from ipvslab.kernel.packet import Direction, Packet, Protocol, TcpFlags
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.tcp_states import (
    DEFAULT_UDP_TIMEOUT,
    StateTable,
    TcpState,
    Timeouts,
    active_states,
    next_state,
    state_table_for,
)

# tcp_states[] from the reference, verbatim cell names.
_NAMES = {
    "sNO": TcpState.NONE,
    "sES": TcpState.ESTABLISHED,
    "sSS": TcpState.SYN_SENT,
    "sSR": TcpState.SYN_RECV,
    "sFW": TcpState.FIN_WAIT,
    "sTW": TcpState.TIME_WAIT,
    "sCL": TcpState.CLOSE,
    "sCW": TcpState.CLOSE_WAIT,
    "sLA": TcpState.LAST_ACK,
    "sLI": TcpState.LISTEN,
    "sSA": TcpState.SYNACK,
}
_COLUMNS = "sNO, sES, sSS, sSR, sFW, sTW, sCL, sCW, sLA, sLI, sSA"
KERNEL_TABLES = {
    StateTable.INPUT: {
        "syn": "sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR",
        "fin": "sCL, sCW, sSS, sTW, sTW, sTW, sCL, sCW, sLA, sLI, sTW",
        "ack": "sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES",
        "rst": "sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sSR",
    },
    StateTable.OUTPUT: {
        "syn": "sSS, sES, sSS, sSR, sSS, sSS, sSS, sSS, sSS, sLI, sSR",
        "fin": "sTW, sFW, sSS, sTW, sFW, sTW, sCL, sTW, sLA, sLI, sTW",
        "ack": "sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sLA, sES, sES",
        "rst": "sCL, sCL, sSS, sCL, sCL, sTW, sCL, sCL, sCL, sCL, sCL",
    },
    StateTable.INPUT_ONLY: {
        "syn": "sSR, sES, sES, sSR, sSR, sSR, sSR, sSR, sSR, sSR, sSR",
        "fin": "sCL, sFW, sSS, sTW, sFW, sTW, sCL, sCW, sLA, sLI, sTW",
        "ack": "sES, sES, sSS, sES, sFW, sTW, sCL, sCW, sCL, sLI, sES",
        "rst": "sCL, sCL, sCL, sSR, sCL, sCL, sCL, sCL, sLA, sLI, sCL",
    },
}
_FLAGS = {"syn": TcpFlags.SYN, "fin": TcpFlags.FIN, "ack": TcpFlags.ACK, "rst": TcpFlags.RST}


def _cells() -> list[object]:
    cols = [_NAMES[c.strip()] for c in _COLUMNS.split(",")]
    out = []
    for table, rows in KERNEL_TABLES.items():
        for flag, text in rows.items():
            for current, cell in zip(cols, text.split(","), strict=True):
                want = _NAMES[cell.strip()]
                out.append(
                    pytest.param(
                        table,
                        _FLAGS[flag],
                        current,
                        want,
                        id=f"{table.name} {flag} in {current.name} goes to {want.name}",
                    )
                )
    return out


@pytest.mark.parametrize(("table", "flags", "current", "expected"), _cells())
def test_transition_matches_kernel_tcp_states(
    table: StateTable, flags: TcpFlags, current: TcpState, expected: TcpState
) -> None:
    assert next_state(current, flags, table) is expected


@pytest.mark.parametrize(
    ("flags", "current", "expected"),
    [
        pytest.param(
            TcpFlags.RST | TcpFlags.SYN,
            TcpState.ESTABLISHED,
            TcpState.CLOSE,
            id="RST wins over SYN",
        ),
        pytest.param(
            TcpFlags.SYN | TcpFlags.FIN,
            TcpState.ESTABLISHED,
            TcpState.ESTABLISHED,
            id="SYN wins over FIN",
        ),
        pytest.param(
            TcpFlags.FIN | TcpFlags.ACK,
            TcpState.ESTABLISHED,
            TcpState.CLOSE_WAIT,
            id="FIN wins over ACK",
        ),
        pytest.param(
            TcpFlags.SYN | TcpFlags.ACK,
            TcpState.NONE,
            TcpState.SYN_RECV,
            id="SYN-ACK uses the SYN row",
        ),
    ],
)
def test_flag_precedence_rst_syn_fin_ack(
    flags: TcpFlags, current: TcpState, expected: TcpState
) -> None:
    assert next_state(current, flags, StateTable.INPUT) is expected


def test_nat_input_uses_input_table_and_dr_uses_input_only() -> None:
    assert state_table_for(Direction.INPUT, no_output=False) is StateTable.INPUT
    assert state_table_for(Direction.INPUT, no_output=True) is StateTable.INPUT_ONLY
    assert state_table_for(Direction.OUTPUT, no_output=False) is StateTable.OUTPUT


# --- default timeouts (tcp_timeouts[], udp NORMAL) -----------------------------------------


@pytest.mark.parametrize(
    ("state", "timeout"),
    [
        (TcpState.NONE, 2 * SECOND),
        (TcpState.ESTABLISHED, 15 * MINUTE),
        (TcpState.SYN_SENT, 2 * MINUTE),
        (TcpState.SYN_RECV, 1 * MINUTE),
        (TcpState.FIN_WAIT, 2 * MINUTE),
        (TcpState.TIME_WAIT, 2 * MINUTE),
        (TcpState.CLOSE, 10 * SECOND),
        (TcpState.CLOSE_WAIT, 60 * SECOND),
        (TcpState.LAST_ACK, 30 * SECOND),
        (TcpState.LISTEN, 2 * MINUTE),
        (TcpState.SYNACK, 120 * SECOND),
    ],
    ids=lambda v: v.name if isinstance(v, TcpState) else str(v),
)
def test_default_tcp_timeout(state: TcpState, timeout: int) -> None:
    assert Timeouts().tcp[state] == timeout


def test_default_udp_timeout_is_five_minutes() -> None:
    assert Timeouts().udp == 5 * MINUTE == DEFAULT_UDP_TIMEOUT
    assert Timeouts().as_seconds() == (900, 120, 300)


def test_set_timeout_writes_established_fin_wait_and_udp() -> None:
    t = Timeouts()
    t.set(tcp=3600, tcpfin=30, udp=60)
    assert t.tcp[TcpState.ESTABLISHED] == 3600 * SECOND
    assert t.tcp[TcpState.FIN_WAIT] == 30 * SECOND
    assert t.udp == 60 * SECOND
    assert t.tcp[TcpState.TIME_WAIT] == 2 * MINUTE  # not one of the three
    assert t.as_seconds() == (3600, 30, 60)


def test_set_timeout_zero_keeps_the_current_value() -> None:
    t = Timeouts()
    t.set(tcp=100, tcpfin=20, udp=40)
    t.set(tcp=0, tcpfin=0, udp=0)
    assert t.as_seconds() == (100, 20, 40)
    t.set(tcpfin=7)
    assert t.as_seconds() == (100, 7, 40)


@pytest.mark.parametrize("kw", [{"tcp": -1}, {"tcpfin": -5}, {"udp": -1}])
def test_set_timeout_negative_is_refused(kw: dict[str, int]) -> None:
    t = Timeouts()
    with pytest.raises(ValueError):
        t.set(**kw)
    assert t.as_seconds() == (900, 120, 300)


def test_set_timeout_applies_to_the_next_packet() -> None:
    lab = make_lab(V6_1)
    lab.kernel.timeouts.set(tcp=100)
    lab.handshake(0)
    entry = lab.kernel.entry(lab.packet(ACK))
    assert entry is not None and entry.expires == 100 * SECOND


# --- typical paths through IpvsKernel ---------------------------------------------------------


def _state(lab: Lab, cport: int = 40000) -> TcpState:
    entry = lab.kernel.entry(lab.packet(ACK, cport))
    assert entry is not None
    return TcpState(entry.state)


def test_nat_handshake_and_client_close_reach_time_wait() -> None:
    lab = make_lab(V6_1)
    seen = []
    lab.send(SYN, 0)
    seen.append(_state(lab))
    lab.reply(SYNACK, 0)
    seen.append(_state(lab))
    lab.send(ACK, 0)
    seen.append(_state(lab))
    lab.send(FIN, SECOND)
    seen.append(_state(lab))
    lab.reply(FIN, SECOND)
    seen.append(_state(lab))
    lab.send(ACK, SECOND)
    seen.append(_state(lab))
    S = TcpState
    assert seen == [S.SYN_RECV, S.SYN_RECV, S.ESTABLISHED, S.CLOSE_WAIT, S.TIME_WAIT, S.TIME_WAIT]


def test_nat_server_first_close_goes_fin_wait_then_time_wait() -> None:
    """OUTPUT fin in ES -> FIN_WAIT; INPUT fin in FIN_WAIT -> TIME_WAIT."""
    lab = make_lab(V6_1)
    lab.handshake(0)
    lab.reply(FIN, SECOND)
    assert _state(lab) is TcpState.FIN_WAIT
    lab.send(FIN, SECOND)
    assert _state(lab) is TcpState.TIME_WAIT


def test_nat_client_reset_closes_the_entry_for_ten_seconds() -> None:
    lab = make_lab(V6_1)
    lab.handshake(0)
    lab.send(RST, 5 * SECOND)
    entry = lab.kernel.entry(lab.packet(ACK))
    assert entry is not None
    assert entry.state == TcpState.CLOSE
    assert entry.expires == 15 * SECOND


def test_dr_close_stays_in_fin_wait() -> None:
    """DR entries carry NOOUTPUT and read the INPUT-ONLY rows: ES -FIN-> FIN_WAIT,
    and the client's last ACK keeps FIN_WAIT (2 min), never TIME_WAIT."""
    lab = make_lab(V6_1, forward=ForwardMethod.ROUTE)
    lab.send(SYN, 0)
    assert _state(lab) is TcpState.SYN_RECV
    lab.send(ACK, 0)
    assert _state(lab) is TcpState.ESTABLISHED
    lab.send(FIN, SECOND)
    assert _state(lab) is TcpState.FIN_WAIT
    lab.send(ACK, 2 * SECOND)
    assert _state(lab) is TcpState.FIN_WAIT
    entry = lab.kernel.entry(lab.packet(ACK))
    assert entry is not None and entry.expires == 2 * SECOND + 2 * MINUTE
    assert entry.flags & F_NOOUTPUT


def test_nat_entry_has_no_nooutput_flag() -> None:
    lab = make_lab(V6_1)
    lab.send(SYN, 0)
    entry = lab.kernel.entry(lab.packet(ACK))
    assert entry is not None and not entry.flags & F_NOOUTPUT


def test_dr_reply_clears_nooutput_and_switches_to_normal_tables() -> None:
    """set_tcp_state(): an OUTPUT packet on a NOOUTPUT entry clears the flag (current
    code calls ip_vs_set_state(OUTPUT) for non-MASQ too)."""
    lab = make_lab(V6_1, forward=ForwardMethod.ROUTE)
    lab.send(SYN, 0)
    lab.send(ACK, 0)
    lab.reply(ACK, 0)
    entry = lab.kernel.entry(lab.packet(ACK))
    assert entry is not None and not entry.flags & F_NOOUTPUT
    lab.send(FIN, SECOND)
    assert _state(lab) is TcpState.CLOSE_WAIT  # INPUT row now, not INPUT-ONLY


def test_every_packet_restarts_the_timer_with_the_state_timeout() -> None:
    lab = make_lab(V6_1)
    lab.handshake(0)
    lab.send(ACK, 100 * SECOND)
    entry = lab.kernel.entry(lab.packet(ACK))
    assert entry is not None and entry.expires == 100 * SECOND + 15 * MINUTE


def test_time_wait_entry_is_gone_two_minutes_after_the_last_packet() -> None:
    lab = make_lab(V6_1)
    lab.handshake(0)
    lab.client_close(SECOND)
    lab.kernel.advance(SECOND + 2 * MINUTE - 1)
    assert lab.kernel.entry(lab.packet(ACK)) is not None
    lab.kernel.advance(SECOND + 2 * MINUTE)
    assert lab.kernel.entry(lab.packet(ACK)) is None


# --- counters ------------------------------------------------------------------------------


def test_active_states_3x_established_only() -> None:
    assert active_states(False) == {TcpState.ESTABLISHED}


def test_active_states_current_include_pre_established() -> None:
    assert active_states(True) == {
        TcpState.ESTABLISHED,
        TcpState.SYN_SENT,
        TcpState.SYN_RECV,
        TcpState.SYNACK,
    }


def _counts(lab: Lab) -> list[tuple[int, int]]:
    return [(s.active_conns, s.inactive_conns) for s in lab.servers]


@pytest.mark.parametrize(
    ("features", "after_syn"),
    [
        pytest.param(PRE_4_1, (0, 1), id="3.10 SYN_RECV counts as InActConn"),
        pytest.param(V4_19, (1, 0), id="4.19 SYN_RECV counts as ActiveConn"),
        pytest.param(V6_1, (1, 0), id="6.1 SYN_RECV counts as ActiveConn"),
    ],
)
def test_syn_recv_counter_per_era(features: KernelFeatures, after_syn: tuple[int, int]) -> None:
    lab = make_lab(features, servers=1)
    lab.send(SYN, 0)
    assert _counts(lab) == [after_syn]
    lab.reply(SYNACK, 0)
    assert _counts(lab) == [after_syn]
    lab.send(ACK, 0)
    assert _counts(lab) == [(1, 0)]  # ESTABLISHED is active in every era


@pytest.mark.parametrize("features", [PRE_4_1, V6_1], ids=["3.10", "6.1"])
def test_closing_moves_connection_to_inactconn(features: KernelFeatures) -> None:
    lab = make_lab(features, servers=1)
    lab.handshake(0)
    lab.send(FIN, SECOND)  # CLOSE_WAIT
    assert _counts(lab) == [(0, 1)]
    lab.reply(FIN, SECOND)  # TIME_WAIT
    assert _counts(lab) == [(0, 1)]


def test_dr_fin_wait_is_inactconn() -> None:
    lab = make_lab(V6_1, servers=1, forward=ForwardMethod.ROUTE)
    lab.send(SYN, 0)
    lab.send(ACK, 0)
    assert _counts(lab) == [(1, 0)]
    lab.send(FIN, SECOND)
    assert _counts(lab) == [(0, 1)]


def test_expiry_releases_the_counter() -> None:
    lab = make_lab(V6_1, servers=1)
    lab.handshake(0)
    lab.client_close(SECOND)
    lab.kernel.advance(SECOND + 2 * MINUTE)
    assert _counts(lab) == [(0, 0)]


def test_counter_drops_when_the_timer_fires_mid_second() -> None:
    """The kernel timer fires at cp->timer.expires (jiffies granularity): a SYN_RECV
    entry made at 250 ms is gone, and its ActiveConn released, at 60.25 s."""
    lab = make_lab(V6_1, servers=1)
    lab.send(SYN, 250)
    lab.kernel.advance(60 * SECOND + 250)
    assert lab.kernel.entry(lab.packet(ACK)) is None
    assert _counts(lab) == [(0, 0)]
    assert len(lab.kernel.table) == 0


@pytest.mark.parametrize("features", [PRE_4_1, V6_1], ids=["3.10", "6.1"])
def test_udp_connections_are_always_inactconn(features: KernelFeatures) -> None:
    kernel = IpvsKernel(features)
    svc = kernel.add_service(VirtualService(Protocol.UDP, VIP, 53, "rr"))
    dest = kernel.add_dest(svc, ipaddress.IPv4Address("10.244.2.1"), 53, 1)
    pkt = Packet(Protocol.UDP, CLIENT, 5353, VIP, 53)
    res = kernel.receive(pkt, 0)
    assert res.new_entry and res.dest is dest
    kernel.reply(pkt, TcpFlags.NONE, 0)
    kernel.receive(pkt, SECOND)
    assert (dest.active_conns, dest.inactive_conns) == (0, 1)
    entry = kernel.entry(pkt)
    assert entry is not None and entry.expires == SECOND + 5 * MINUTE
    kernel.advance(SECOND + 5 * MINUTE)
    assert (dest.active_conns, dest.inactive_conns) == (0, 0)
