"""Conntrack runs before IPVS, and vs.conntrack=0 untracks the flows IPVS NATs.

Expectations from the hook order (nf_conntrack_in at PRE_ROUTING/LOCAL_OUT runs
before IPVS at LOCAL_IN), nf_conntrack_proto_tcp.c's reopen path (a SYN on a
closed TIME_WAIT entry kills it and creates a new, unconfirmed one), and
ip_vs_xmit.c's ip_vs_notrack() for entries without IP_VS_CONN_F_NFCT.
"""

from __future__ import annotations

from conftest import ACK, SECOND, SYN, SYNACK, V4_19, V6_1, make_lab

from ipvslab.kernel.conntrack import ConntrackStatus, CtTcpState
from ipvslab.kernel.decision import Outcome
from ipvslab.kernel.sysctls import Sysctls

KUBE_PROXY_4_19 = Sysctls(conn_reuse_mode=1, conntrack=1, expire_nodest_conn=1)


def test_vs_conntrack_0_leaves_no_conntrack_entry_for_a_nated_flow() -> None:
    lab = make_lab(V6_1, Sysctls(conntrack=0))
    lab.handshake(0)
    lab.client_close(1 * SECOND)
    # ip_vs_notrack(): every packet's unconfirmed entry was released, none confirmed.
    assert lab.kernel.conntrack == {}


def test_vs_conntrack_0_reused_port_never_meets_a_confirmed_conntrack() -> None:
    lab = make_lab(V4_19, Sysctls(conn_reuse_mode=1, conntrack=0))
    first = lab.handshake(0)
    lab.client_close(1 * SECOND)
    packet = lab.packet(SYN)
    key_status = lab.kernel.conntrack_status(
        next(iter(lab.kernel.table.entries)), packet, 2 * SECOND
    )
    assert key_status is ConntrackStatus.NEW
    # Without NFCT the drop-era kernel reschedules at once: no 1 s penalty.
    result = lab.send(SYN, 2 * SECOND)
    assert result.outcome is Outcome.RESCHEDULE
    assert result.dest is lab.other(first)


def test_dropped_first_syn_still_kills_the_closed_conntrack_entry() -> None:
    lab = make_lab(V4_19, KUBE_PROXY_4_19)
    lab.handshake(0)
    lab.client_close(1 * SECOND)
    (key,) = lab.kernel.conntrack
    assert lab.kernel.conntrack[key].state is CtTcpState.TIME_WAIT
    dropped = lab.send(SYN, 2 * SECOND)
    assert dropped.outcome is Outcome.DROP_SYN
    # Conntrack saw the SYN first and replaced the closed entry; the new one was
    # unconfirmed and died with the dropped packet: nothing is left for the flow.
    assert key not in lab.kernel.conntrack
    # The retransmission a second later finds neither entry and is scheduled.
    retry = lab.send(SYN, 3 * SECOND)
    assert retry.outcome is Outcome.SCHEDULE
    assert retry.dest is not None
    assert lab.reply(SYNACK, 3 * SECOND)
    assert lab.send(ACK, 3 * SECOND).dest is retry.dest
    assert lab.kernel.conntrack[key].state is CtTcpState.ESTABLISHED


def test_drop_for_a_confirmed_flow_still_moves_its_conntrack_timer() -> None:
    # A removed server with expire_nodest_conn=0: IPVS drops the client's packets,
    # but conntrack, earlier in the hooks, still refreshed the confirmed entry.
    lab = make_lab(V6_1, Sysctls(conntrack=1, expire_nodest_conn=0))
    dest = lab.handshake(0)
    lab.kernel.del_dest(lab.service, dest, 10 * SECOND)
    result = lab.send(ACK, 20 * SECOND)
    assert result.outcome is Outcome.DROP_NO_DEST
    (entry,) = lab.kernel.conntrack.values()
    assert entry.state is CtTcpState.ESTABLISHED
    assert entry.expires > 20 * SECOND + 4 * 24 * 3600 * SECOND
