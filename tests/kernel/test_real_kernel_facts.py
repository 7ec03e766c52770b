"""End-to-end facts through IpvsKernel.receive()/reply(), checked against kernel code.

The scenario: two NAT real servers behind rr, a full handshake and a client-first
close (ES -client FIN-> CLOSE_WAIT -server FIN-> TIME_WAIT -client ACK-> TIME_WAIT,
reference section 3), the server's weight set to 0, then a SYN from the same
client port. Expectations come from the ip_vs_in() code of each era (section 1).
"""

from __future__ import annotations

from conftest import ACK, PRE_4_1, SECOND, SYN, SYNACK, V4_19, V5_9, V6_1, Lab, make_lab

from ipvslab.kernel.conntrack import ConntrackStatus
from ipvslab.kernel.decision import Outcome
from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import TcpState


def closed_connection(lab: Lab, now: int = 0, cport: int = 40000) -> RealServer:
    """Handshake and client-first close; returns the server that carried it."""
    dest = lab.handshake(now, cport)
    lab.client_close(now + SECOND, cport)
    entry = lab.kernel.entry(lab.packet(SYN, cport))
    assert entry is not None
    assert entry.state == TcpState.TIME_WAIT
    assert entry.dest is dest
    return dest


# --- mainline 6.1 (c95c07836 and f0a5e4d7 present) ----------------------------------------


def test_6_1_mode0_forwards_reused_port_to_weight0_server() -> None:
    """conn_reuse_mode=0, expire_nodest_conn=0: the reuse block has nothing to do
    (weight-0 clause needs expire_nodest_conn, the state clause needs mode != 0),
    so the SYN follows the old entry to the quiesced server."""
    lab = make_lab(V6_1, Sysctls(conn_reuse_mode=0, expire_nodest_conn=0))
    old = closed_connection(lab)
    lab.kernel.set_weight(lab.service, old, 0)

    res = lab.send(SYN, 5 * SECOND)

    assert res.outcome is Outcome.FORWARD_EXISTING
    assert res.dest is old
    assert not res.new_entry
    entry = lab.kernel.entry(lab.packet(SYN))
    assert entry is not None and entry.state == TcpState.SYN_RECV  # SYN in TW -> SYN_RECV


def test_6_1_mode1_reschedules_reused_port_to_the_other_server() -> None:
    """conn_reuse_mode=1: TIME_WAIT is expected reuse; the SYN's conntrack was
    reopened (new, unconfirmed), so no drop: rescheduled to the weight-1 server."""
    lab = make_lab(V6_1, Sysctls(conn_reuse_mode=1, expire_nodest_conn=0))
    old = closed_connection(lab)
    lab.kernel.set_weight(lab.service, old, 0)

    res = lab.send(SYN, 5 * SECOND)

    assert not res.dropped
    assert res.outcome is Outcome.RESCHEDULE
    assert res.new_entry
    assert res.dest is lab.other(old)


def test_6_1_mode0_with_expire_nodest_conn_reschedules_off_weight0_server() -> None:
    """c95c07836: the weight-0 clause runs even with conn_reuse_mode=0."""
    lab = make_lab(V6_1, Sysctls(conn_reuse_mode=0, expire_nodest_conn=1))
    old = closed_connection(lab)
    lab.kernel.set_weight(lab.service, old, 0)

    res = lab.send(SYN, 5 * SECOND)

    assert not res.dropped
    assert res.outcome is Outcome.RESCHEDULE
    assert res.dest is lab.other(old)


def test_6_1_rescheduled_reuse_moves_the_counters_to_the_new_server() -> None:
    """The old TIME_WAIT entry (InActConn) is expired and unbound; the new SYN_RECV
    entry counts as ActiveConn on the new server."""
    lab = make_lab(V6_1, Sysctls(conn_reuse_mode=1))
    old = closed_connection(lab)
    assert (old.active_conns, old.inactive_conns) == (0, 1)
    lab.kernel.set_weight(lab.service, old, 0)

    new = lab.send(SYN, 5 * SECOND).dest

    assert new is lab.other(old)
    assert (old.active_conns, old.inactive_conns) == (0, 0)
    assert (new.active_conns, new.inactive_conns) == (1, 0)


def test_6_1_removing_server_with_expire_nodest_conn_flushes_its_entries() -> None:
    """04231e52: __ip_vs_del_dest() queues ip_vs_expire_nodest_conn_flush(), which
    deletes every entry of a server that is no longer AVAILABLE."""
    lab = make_lab(V6_1, Sysctls(expire_nodest_conn=1))
    dest = lab.handshake(0, 40000)
    lab.kernel.del_dest(lab.service, dest, 2 * SECOND)

    assert lab.kernel.entry(lab.packet(ACK)) is None
    assert (dest.active_conns, dest.inactive_conns) == (0, 0)


def test_6_1_packet_for_removed_server_without_expire_nodest_conn_is_dropped() -> None:
    lab = make_lab(V6_1, Sysctls(expire_nodest_conn=0))
    dest = lab.handshake(0)
    lab.kernel.del_dest(lab.service, dest, SECOND)

    res = lab.send(ACK, 2 * SECOND)

    assert res.dropped
    assert res.outcome is Outcome.DROP_NO_DEST
    assert lab.kernel.entry(lab.packet(ACK)) is not None  # silently dropped, not expired


# --- the f719e3754 era: the one-second delay -----------------------------------------------


def test_4_19_conntrack_drops_first_syn_and_schedules_its_retransmission() -> None:
    """f719e3754: the TIME_WAIT entry carries IP_VS_CONN_F_NFCT (vs/conntrack=1) and
    the SYN has a conntrack -> the entry is expired and the SYN dropped. Expiring an
    NFCT entry drops its conntrack (ip_vs_conn_drop_conntrack), so the client's
    retransmission 1 s later finds no entry and is scheduled."""
    lab = make_lab(V4_19, Sysctls(conn_reuse_mode=1, conntrack=1))
    closed_connection(lab)

    first = lab.send(SYN, 10 * SECOND)
    assert first.dropped
    assert first.outcome is Outcome.DROP_SYN
    assert first.dest is None
    assert lab.kernel.entry(lab.packet(SYN)) is None
    assert lab.kernel.expired.conntrack_dropped == 1

    retry = lab.send(SYN, 11 * SECOND)
    assert not retry.dropped
    assert retry.outcome is Outcome.SCHEDULE
    assert retry.new_entry
    assert retry.dest in lab.servers


def test_4_19_without_vs_conntrack_reschedules_the_first_syn() -> None:
    """Without IP_VS_CONN_F_NFCT ip_vs_conn_uses_conntrack() is false: no drop."""
    lab = make_lab(V4_19, Sysctls(conn_reuse_mode=1, conntrack=0))
    old = closed_connection(lab)

    res = lab.send(SYN, 10 * SECOND)

    assert res.outcome is Outcome.RESCHEDULE
    assert res.dest is lab.other(old)  # rr moves on


def test_4_19_drop_leaves_the_counters_clean() -> None:
    lab = make_lab(V4_19, Sysctls(conn_reuse_mode=1, conntrack=1))
    old = closed_connection(lab)
    lab.send(SYN, 10 * SECOND)
    assert (old.active_conns, old.inactive_conns) == (0, 0)


# --- 5.9: f0a5e4d7 ------------------------------------------------------------------------


def test_5_9_reopened_conntrack_is_not_dropped() -> None:
    """f0a5e4d7: the SYN in conntrack TIME_WAIT reopens the flow with a fresh,
    unconfirmed conntrack, so the reused port is rescheduled with no delay."""
    lab = make_lab(V5_9, Sysctls(conn_reuse_mode=1, conntrack=1))
    old = closed_connection(lab)

    res = lab.send(SYN, 10 * SECOND)

    assert not res.dropped
    assert res.outcome is Outcome.RESCHEDULE
    assert res.new_entry
    assert res.dest is lab.other(old)


def test_5_9_reschedule_keeps_the_new_flows_conntrack() -> None:
    """f0a5e4d7 clears IP_VS_CONN_F_NFCT on the old entry before expiring it, so
    the expiry does not drop the conntrack the new flow now uses."""
    lab = make_lab(V5_9, Sysctls(conn_reuse_mode=1, conntrack=1))
    closed_connection(lab)
    lab.send(SYN, 10 * SECOND)
    assert lab.kernel.expired.conntrack_dropped == 0


def test_5_9_confirmed_conntrack_still_drops_the_first_syn() -> None:
    lab = make_lab(V5_9, Sysctls(conn_reuse_mode=1, conntrack=1))
    closed_connection(lab)

    res = lab.kernel.receive(lab.packet(SYN), 10 * SECOND, ConntrackStatus.CONFIRMED)

    assert res.outcome is Outcome.DROP_SYN
    assert lab.kernel.entry(lab.packet(SYN)) is None


def test_handshake_reply_sees_syn_recv_then_established() -> None:
    """Sanity of the scenario itself: NONE -SYN(in)-> SYN_RECV -SYN/ACK(out)->
    SYN_RECV -ACK(in)-> ESTABLISHED."""
    lab = make_lab(V6_1)
    lab.send(SYN, 0)
    assert lab.kernel.entry(lab.packet(SYN)).state == TcpState.SYN_RECV  # type: ignore[union-attr]
    lab.reply(SYNACK, 0)
    assert lab.kernel.entry(lab.packet(SYN)).state == TcpState.SYN_RECV  # type: ignore[union-attr]
    lab.send(ACK, 0)
    assert lab.kernel.entry(lab.packet(SYN)).state == TcpState.ESTABLISHED  # type: ignore[union-attr]


# --- removed servers, every era ----------------------------------------------------------------


def test_3_10_removed_server_drops_then_retransmission_is_scheduled() -> None:
    """T-3x: a packet for a removed dest is dropped; expire_nodest_conn=1 also
    expires the entry, so the client's next SYN is scheduled afresh."""
    lab = make_lab(PRE_4_1, Sysctls(expire_nodest_conn=1))
    old = lab.handshake(0)
    lab.kernel.del_dest(lab.service, old, SECOND)

    res = lab.send(SYN, 2 * SECOND)
    assert res.outcome is Outcome.DROP_NO_DEST
    assert lab.kernel.entry(lab.packet(SYN)) is None
    assert (old.active_conns, old.inactive_conns) == (0, 0)

    retry = lab.send(SYN, 3 * SECOND)
    assert retry.outcome is Outcome.SCHEDULE
    assert retry.dest is lab.other(old)


def test_re_added_server_picks_up_its_old_connections() -> None:
    """ip_vs_trash_get_dest(): re-adding the same server revives the dest (AVAILABLE
    again), so its entries carry on instead of being dropped."""
    lab = make_lab(V6_1, Sysctls(expire_nodest_conn=0))
    old = lab.handshake(0)
    lab.kernel.del_dest(lab.service, old, SECOND)
    revived = lab.kernel.add_dest(lab.service, old.addr, old.port, 1)

    res = lab.send(ACK, 2 * SECOND)

    assert revived is old
    assert res.outcome is Outcome.FORWARD_EXISTING
    assert res.dest is old
    assert old.active_conns == 1
