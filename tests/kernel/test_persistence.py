"""Persistence templates (ip_vs_sched_persist, ip_vs_check_template, expire_later).

From the reference, section 4:
* template key <protocol, src & netmask, 0, vaddr, vport>; a valid template
  decides the server without consulting the scheduler;
* ct->timeout = svc->timeout; every new controlled entry does ip_vs_conn_put(ct),
  restarting the template timer at now + ct->timeout;
* a template whose timer fires with n_control > 0 is re-armed with
  cp->timeout = 60*HZ (expire_later) - it lives until a timer fire finds no
  controlled entries;
* ip_vs_check_template() invalidates a template whose dest is not AVAILABLE, or has
  weight 0 with expire_quiescent_template=1 (not OVERLOAD); the invalidated
  template stays hashed (vport/dport 0xFFFF) until it expires;
* persistconns counts templates (ip_vs_bind_dest / ip_vs_unbind_dest);
* 04231e52 (5.9): ip_vs_expire_nodest_conn_flush() deletes every conn of an
  unavailable dest with no n_control - templates are conns in the same table -
  and a controlling template left with no controlled entries.
"""

from __future__ import annotations

import ipaddress

from conftest import ACK, MINUTE, RST, SECOND, SYN, V4_19, V6_1, Lab, make_lab

from ipvslab.kernel.decision import Outcome
from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.ipvs import PacketResult
from ipvslab.kernel.sysctls import Sysctls

NET_A1 = ipaddress.IPv4Address("10.244.1.5")
NET_A2 = ipaddress.IPv4Address("10.244.1.77")
NET_B = ipaddress.IPv4Address("10.244.9.1")


def short_connection(
    lab: Lab, now: int, cport: int, client: ipaddress.IPv4Address = NET_A1
) -> RealServer:
    """SYN, ACK, then a client RST: the entry sits in CLOSE for 10 s; returns its server."""
    res = lab.send(SYN, now, cport, client)
    assert res.dest is not None
    lab.send(ACK, now, cport, client)
    lab.send(RST, now, cport, client)
    return res.dest


def persistent_lab(timeout: int = 300, netmask: int = 32, **sysctls: int) -> Lab:
    return make_lab(V6_1, Sysctls(**sysctls), persistence=timeout, netmask=netmask)


# --- templates per client network ------------------------------------------------------------


def test_clients_in_one_netmask_share_a_template_and_a_server() -> None:
    lab = persistent_lab(netmask=24)
    first = lab.send(SYN, 0, 1000, NET_A1).dest
    second = lab.send(SYN, 0, 2000, NET_A2).dest
    third = lab.send(SYN, 0, 3000, NET_A1).dest
    assert first is second is third
    assert len(lab.kernel.templates) == 1
    assert first is not None and first.persistent_conns == 1


def test_client_in_another_network_gets_its_own_template() -> None:
    lab = persistent_lab(netmask=24)
    a = lab.send(SYN, 0, 1000, NET_A1).dest
    b = lab.send(SYN, 0, 1000, NET_B).dest
    assert a is not None and b is lab.other(a)  # the scheduler ran again (rr moved on)
    assert len(lab.kernel.templates) == 2
    assert (a.persistent_conns, b.persistent_conns) == (1, 1)


def test_netmask_32_separates_neighbouring_clients() -> None:
    lab = persistent_lab(netmask=32)
    a = lab.send(SYN, 0, 1000, NET_A1).dest
    b = lab.send(SYN, 0, 1000, NET_A2).dest
    assert a is not None and b is lab.other(a)
    assert len(lab.kernel.templates) == 2


def test_templates_count_as_persistent_not_active_or_inactive() -> None:
    lab = persistent_lab()
    dest = lab.send(SYN, 0, 1000).dest
    lab.send(SYN, 0, 2000)
    assert dest is not None
    assert (dest.active_conns, dest.inactive_conns, dest.persistent_conns) == (2, 0, 1)


# --- template timeout -----------------------------------------------------------------------


def test_template_expires_after_its_timeout_when_nothing_uses_it() -> None:
    lab = persistent_lab(timeout=30)
    first = short_connection(lab, 0, 1000)  # entry gone at 10 s, template at 30 s
    later = lab.send(SYN, 45 * SECOND, 2000).dest
    assert later is lab.other(first)
    assert first.persistent_conns == 0


def test_each_new_connection_restarts_the_template_timeout() -> None:
    lab = persistent_lab(timeout=30)
    first = short_connection(lab, 0, 1000)
    assert short_connection(lab, 20 * SECOND, 2000) is first  # template now expires at 50 s
    assert lab.send(SYN, 45 * SECOND, 3000).dest is first


def test_packets_of_existing_connections_do_not_restart_the_template() -> None:
    """Only ip_vs_sched_persist() puts the template; later packets touch the entry only.

    Template at 0 for 30 s; the entry (CLOSE) is kept alive by an ACK at 9 s until
    19 s. Had the ACK restarted the template it would last until 39 s."""
    lab = persistent_lab(timeout=30)
    first = short_connection(lab, 0, 1000)
    lab.send(ACK, 9 * SECOND, 1000)
    assert lab.send(SYN, 35 * SECOND, 2000).dest is lab.other(first)


def test_template_outlives_its_timeout_while_connections_use_it() -> None:
    lab = persistent_lab(timeout=10)
    first = lab.handshake(0, 1000)  # ESTABLISHED for 15 min
    assert lab.send(SYN, 5 * MINUTE, 2000).dest is first


def test_template_rechecks_every_60_seconds_after_its_timeout() -> None:
    """-p 10, one SYN at 0 (SYN_RECV: entry gone at 60 s). The template fires at 10 s
    with a controlled entry and is re-armed for 60 s, i.e. until 70 s; the entry's
    expiry at 60 s does not remove it."""
    lab = persistent_lab(timeout=10)
    first = lab.send(SYN, 0, 1000).dest
    assert lab.send(SYN, 65 * SECOND, 2000).dest is first


def test_template_rechecks_every_60_seconds_even_with_intermediate_timer_runs() -> None:
    lab = persistent_lab(timeout=10)
    first = lab.send(SYN, 0, 1000).dest
    lab.kernel.advance(10 * SECOND)
    lab.kernel.advance(61 * SECOND)
    assert lab.send(SYN, 65 * SECOND, 2000).dest is first


def test_template_is_gone_once_a_recheck_finds_no_connections() -> None:
    lab = persistent_lab(timeout=10)
    first = lab.send(SYN, 0, 1000).dest
    later = lab.send(SYN, 71 * SECOND, 2000).dest
    assert first is not None and later is lab.other(first)


# --- weight 0 and expire_quiescent_template -----------------------------------------------------


def test_weight0_server_keeps_new_connections_through_its_template() -> None:
    lab = persistent_lab(expire_quiescent_template=0)
    first = lab.handshake(0, 1000)
    lab.kernel.set_weight(lab.service, first, 0)
    res = lab.send(SYN, SECOND, 2000)
    assert res.new_entry
    assert res.dest is first


def test_expire_quiescent_template_sends_new_connections_elsewhere() -> None:
    lab = persistent_lab(expire_quiescent_template=1)
    first = lab.handshake(0, 1000)
    lab.kernel.set_weight(lab.service, first, 0)
    res = lab.send(SYN, SECOND, 2000)
    assert res.new_entry
    assert res.dest is lab.other(first)
    # and the following ones stick to the new template
    assert lab.send(SYN, 2 * SECOND, 3000).dest is lab.other(first)


def test_existing_connection_stays_on_weight0_server_with_expire_quiescent_template() -> None:
    lab = persistent_lab(expire_quiescent_template=1)
    first = lab.handshake(0, 1000)
    lab.kernel.set_weight(lab.service, first, 0)
    res = lab.send(ACK, SECOND, 1000)
    assert res.outcome is Outcome.FORWARD_EXISTING and res.dest is first


def test_invalidated_template_still_counts_until_it_expires() -> None:
    lab = persistent_lab(timeout=30, expire_quiescent_template=1)
    first = short_connection(lab, 0, 1000)
    lab.kernel.set_weight(lab.service, first, 0)
    second = lab.send(SYN, SECOND, 2000).dest
    assert second is lab.other(first)
    assert (first.persistent_conns, second.persistent_conns) == (1, 1)
    lab.kernel.advance(40 * SECOND)  # old template's timer (30 s) found no entries
    assert first.persistent_conns == 0


def test_templates_invalidated_twice_for_one_network_both_expire() -> None:
    """Invalidated templates stay hashed side by side (0xFFFF ports); each one is
    unbound (persistconns--) when its own timer finds no controlled entries."""
    lab = persistent_lab(timeout=30, expire_quiescent_template=1)
    a = short_connection(lab, 0, 1000)
    b = lab.other(a)
    lab.kernel.set_weight(lab.service, a, 0)
    assert short_connection(lab, SECOND, 2000) is b  # first template invalidated
    lab.kernel.set_weight(lab.service, a, 1)
    lab.kernel.set_weight(lab.service, b, 0)
    assert short_connection(lab, 2 * SECOND, 3000) is a  # second template invalidated
    assert (a.persistent_conns, b.persistent_conns) == (2, 1)
    lab.kernel.advance(10 * MINUTE)
    assert (a.persistent_conns, b.persistent_conns) == (0, 0)


# --- removed servers ---------------------------------------------------------------------------


def test_removed_server_invalidates_the_template() -> None:
    lab = persistent_lab(expire_nodest_conn=0)
    first = lab.handshake(0, 1000)
    lab.kernel.del_dest(lab.service, first, SECOND)
    res = lab.send(SYN, 2 * SECOND, 2000)
    assert res.new_entry
    assert res.dest is lab.other(first)


def test_removed_server_invalidates_the_template_even_without_quiescent_expiry() -> None:
    lab = persistent_lab(expire_quiescent_template=0, expire_nodest_conn=0)
    first = short_connection(lab, 0, 1000)
    lab.kernel.del_dest(lab.service, first, SECOND)
    assert lab.send(SYN, 2 * SECOND, 2000).dest is lab.other(first)


def test_removing_server_flushes_its_connections_and_their_template() -> None:
    """5.9+, expire_nodest_conn=1: the flush deletes the controlled entry, then the
    template it leaves without controlled entries."""
    lab = persistent_lab(expire_nodest_conn=1)
    first = lab.handshake(0, 1000)
    lab.kernel.del_dest(lab.service, first, SECOND)
    assert lab.kernel.entry(lab.packet(ACK, 1000)) is None
    assert (first.active_conns, first.inactive_conns, first.persistent_conns) == (0, 0, 0)


def test_removing_server_flushes_its_idle_templates() -> None:
    """5.9+, expire_nodest_conn=1: a template with no controlled entries is itself a
    conn of an unavailable dest with n_control == 0, so the flush deletes it."""
    lab = persistent_lab(timeout=300, expire_nodest_conn=1)
    first = short_connection(lab, 0, 1000)
    lab.kernel.advance(20 * SECOND)  # the entry is gone, the template (300 s) is not
    assert first.persistent_conns == 1
    lab.kernel.del_dest(lab.service, first, 20 * SECOND)
    assert first.persistent_conns == 0
    assert lab.kernel.templates == {}


def test_removing_server_before_5_9_keeps_its_entries() -> None:
    """No flush before 04231e52: the entries wait for their own timers."""
    lab = make_lab(V4_19, Sysctls(expire_nodest_conn=1), persistence=300)
    first = lab.handshake(0, 1000)
    lab.kernel.del_dest(lab.service, first, SECOND)
    assert lab.kernel.entry(lab.packet(ACK, 1000)) is not None
    assert first.active_conns == 1


# --- the weight-0 clause meets persistence (c95c07836) -----------------------------------------


def _reused_port_on_weight0_server(quiescent: int) -> tuple[Lab, RealServer, PacketResult]:
    lab = persistent_lab(
        conn_reuse_mode=0, expire_nodest_conn=1, expire_quiescent_template=quiescent
    )
    first = lab.handshake(0, 1000)
    lab.client_close(SECOND, 1000)  # TIME_WAIT; the SYN reopens the conntrack
    lab.kernel.set_weight(lab.service, first, 0)
    res = lab.send(SYN, 2 * SECOND, 1000)
    return lab, first, res


def test_weight0_reuse_is_rescheduled_but_the_template_brings_it_back() -> None:
    """5.16+: expire_nodest_conn reschedules a controlled entry on a weight-0 server;
    ip_vs_check_template() then keeps the old server (expire_quiescent_template=0)."""
    _, first, res = _reused_port_on_weight0_server(quiescent=0)
    assert res.outcome is Outcome.RESCHEDULE
    assert res.new_entry
    assert res.dest is first


def test_weight0_reuse_with_expire_quiescent_template_moves_to_another_server() -> None:
    lab, first, res = _reused_port_on_weight0_server(quiescent=1)
    assert res.outcome is Outcome.RESCHEDULE
    assert res.dest is lab.other(first)


def test_overloaded_server_keeps_new_connections_through_its_template() -> None:
    """ip_vs_check_template() does not look at OVERLOAD; only the scheduler does."""
    lab = persistent_lab(expire_quiescent_template=1)
    first = lab.send(SYN, 0, 1000).dest
    assert first is not None
    lab.kernel.set_weight(lab.service, first, 1)
    lab.service.edit_dest(first, upper_threshold=1)
    assert lab.send(SYN, 0, 2000).dest is first  # bind: 2 >= 1 sets OVERLOAD
    assert first.overloaded
    res = lab.send(SYN, SECOND, 3000)
    assert res.new_entry and res.dest is first
    # a client without a template goes elsewhere: the scheduler skips OVERLOAD
    assert lab.send(SYN, SECOND, 1000, NET_B).dest is lab.other(first)
