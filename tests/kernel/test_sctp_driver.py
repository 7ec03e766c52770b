"""SCTP through IpvsKernel: set_sctp_state() wired into ip_vs_in()/ip_vs_out().

Expectations come from the kernel code, not from the model:
* set_sctp_state() (ip_vs_proto_sctp.c, current machine): no chunk header ->
  return at once (state, NOOUTPUT and cp->timeout unchanged); an output packet
  clears IP_VS_CONN_F_NOOUTPUT, an input one on a NOOUTPUT entry reads the
  input-only table; counters move only when the state changes, ActiveConn =
  ESTABLISHED; cp->timeout = sctp_timeouts[new state]; current trees call
  ip_vs_control_assure_ct() on entering ESTABLISHED.
* the original machine (2906f66a5682, RHEL 7.3 tree): one table with a client and
  a server column, no NOOUTPUT handling, its own timeouts (CLOSED 10 s).
* is_new_conn() (d752c364): an SCTP packet is new when its first chunk is INIT;
  is_new_conn_expected(): an SCTP entry may be replaced only in CLOSED.
* sctp_conn_schedule(): only an INIT creates an entry (sloppy_sctp=0).
* ipvsadm --set writes the TCP, TCP-FIN and UDP timeouts only.
"""

from __future__ import annotations

import dataclasses

import pytest
from conftest import CLIENT, MINUTE, PRE_4_1, SECOND, V4_1, V4_19, V4_19_OLD_SCTP, V6_1, VIP, Lab

from ipvslab.kernel.connection import F_INACTIVE, F_NOOUTPUT
from ipvslab.kernel.decision import Outcome, StepKind
from ipvslab.kernel.dest import ForwardMethod
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.ipvs import IpvsKernel, PacketResult
from ipvslab.kernel.packet import Packet, Protocol, SctpReply, TcpFlags
from ipvslab.kernel.sctp_states import LegacySctpState as L
from ipvslab.kernel.sctp_states import SctpChunk as C
from ipvslab.kernel.sctp_states import SctpState as S
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import Timeouts

PORT = 3868
MAX_RTO = 61 * SECOND


def lab(
    features: KernelFeatures,
    sysctls: Sysctls | None = None,
    forward: ForwardMethod = ForwardMethod.MASQ,
    persistence: int = 0,
) -> Lab:
    kernel = IpvsKernel(features, sysctls or Sysctls())
    service = kernel.add_service(
        VirtualService(Protocol.SCTP, VIP, PORT, "rr", persistence_timeout=persistence)
    )
    servers = [
        kernel.add_dest(service, VIP.__class__(f"10.244.2.{i}"), PORT, 1, forward=forward)
        for i in (1, 2)
    ]
    return Lab(kernel, service, servers)


def chunk(c: int | None, nxt: int | None = None, cport: int = 40000) -> Packet:
    return Packet(Protocol.SCTP, CLIENT, cport, VIP, PORT, sctp_chunk=c, sctp_next_chunk=nxt)


def send(
    lab: Lab, c: int | None, now: int, nxt: int | None = None, cport: int = 40000
) -> PacketResult:
    return lab.kernel.receive(chunk(c, nxt, cport), now)


def reply(lab: Lab, c: int | None, now: int, nxt: int | None = None, cport: int = 40000) -> bool:
    return lab.kernel.reply(chunk(None, cport=cport), SctpReply(c, nxt), now)


def entry_of(lab: Lab, cport: int = 40000) -> tuple[int, int, int]:
    conn = lab.kernel.entry(chunk(None, cport=cport))
    assert conn is not None
    return conn.state, conn.flags, conn.expires


def counts(lab: Lab) -> list[tuple[int, int]]:
    return [(s.active_conns, s.inactive_conns) for s in lab.servers]


def setup_nat(lab: Lab, now: int, cport: int = 40000) -> None:
    """INIT (in), INIT-ACK (out), COOKIE-ECHO (in), COOKIE-ACK (out)."""
    assert send(lab, C.INIT, now, cport=cport).new_entry
    assert reply(lab, C.INIT_ACK, now, cport=cport)
    send(lab, C.COOKIE_ECHO, now, cport=cport)
    assert reply(lab, C.COOKIE_ACK, now, cport=cport)


# --- NAT: both directions ------------------------------------------------------------


def test_nat_association_reaches_established_and_counts_active() -> None:
    nat = lab(V6_1)
    seen = []
    res = send(nat, C.INIT, 1000)
    assert res.outcome is Outcome.SCHEDULE and res.new_entry
    seen.append(entry_of(nat)[0])
    assert counts(nat) == [(0, 0), (0, 1)]  # rr: the last added server first
    reply(nat, C.INIT_ACK, 1001)
    seen.append(entry_of(nat)[0])
    send(nat, C.COOKIE_ECHO, 1002)
    seen.append(entry_of(nat)[0])
    reply(nat, C.COOKIE_ACK, 1003)
    seen.append(entry_of(nat)[0])
    assert seen == [S.INIT1, S.COOKIE_SENT, S.COOKIE_REPLIED, S.ESTABLISHED]
    _, flags, expires = entry_of(nat)
    assert not flags & F_INACTIVE
    assert expires == 1003 + 15 * MINUTE
    assert counts(nat) == [(0, 0), (1, 0)]
    # DATA both ways keeps it ESTABLISHED and re-arms 15 min.
    send(nat, C.DATA, 5000)
    reply(nat, C.SACK, 5001)
    assert entry_of(nat) == (S.ESTABLISHED, flags, 5001 + 15 * MINUTE)


def test_first_init_has_the_short_timer_and_a_retransmission_the_long_one() -> None:
    nat = lab(V6_1)
    send(nat, C.INIT, 0)
    assert entry_of(nat)[::2] == (S.INIT1, 4 * SECOND)
    send(nat, C.INIT, 3000)
    assert entry_of(nat)[::2] == (S.INIT, 3000 + MAX_RTO)
    assert counts(nat) == [(0, 0), (0, 1)]


def test_unanswered_init_entry_expires_after_four_seconds() -> None:
    nat = lab(V6_1)
    send(nat, C.INIT, 0)
    nat.kernel.advance(3999)
    assert nat.kernel.entry(chunk(None)) is not None
    nat.kernel.advance(4000)
    assert nat.kernel.entry(chunk(None)) is None
    assert counts(nat) == [(0, 0), (0, 0)]


def test_server_abort_of_the_init_rejects_with_the_short_timer() -> None:
    nat = lab(V6_1)
    send(nat, C.INIT, 0)
    reply(nat, C.ABORT, 10)
    assert entry_of(nat)[::2] == (S.REJECTED, 10 + 4 * SECOND)


def test_client_shutdown_closes_and_counts_inactive() -> None:
    nat = lab(V6_1)
    setup_nat(nat, 0)
    send(nat, C.SHUTDOWN, 100)
    assert entry_of(nat)[0] == S.SHUTDOWN_RECEIVED
    assert counts(nat) == [(0, 0), (0, 1)]  # left ESTABLISHED: inactive again
    reply(nat, C.SHUTDOWN_ACK, 101)
    assert entry_of(nat)[0] == S.SHUTDOWN_ACK_SENT
    send(nat, C.SHUTDOWN_COMPLETE, 102)
    state, flags, expires = entry_of(nat)
    assert (state, expires) == (S.CLOSED, 102 + MAX_RTO)
    assert flags & F_INACTIVE
    assert counts(nat) == [(0, 0), (0, 1)]


def test_server_shutdown_closes() -> None:
    nat = lab(V6_1)
    setup_nat(nat, 0)
    reply(nat, C.SHUTDOWN, 100)
    assert entry_of(nat)[0] == S.SHUTDOWN_SENT
    send(nat, C.SHUTDOWN_ACK, 101)
    assert entry_of(nat)[0] == S.CLOSED


@pytest.mark.parametrize("inbound", [True, False], ids=["client", "server"])
def test_abort_on_established_closes(inbound: bool) -> None:
    nat = lab(V6_1)
    setup_nat(nat, 0)
    if inbound:
        send(nat, C.ABORT, 50)
    else:
        reply(nat, C.ABORT, 50)
    assert entry_of(nat)[::2] == (S.CLOSED, 50 + MAX_RTO)
    assert counts(nat) == [(0, 0), (0, 1)]


def test_cookie_ack_bundled_with_abort_counts_as_abort() -> None:
    nat = lab(V6_1)
    send(nat, C.INIT, 0)
    reply(nat, C.INIT_ACK, 1)
    send(nat, C.COOKIE_ECHO, 2)
    reply(nat, C.COOKIE_ACK, 3, nxt=C.ABORT)
    assert entry_of(nat)[0] == S.CLOSED
    assert counts(nat) == [(0, 0), (0, 1)]  # never ESTABLISHED


# --- a new INIT from the same client port after SHUTDOWN ---------------------------------


def closed_lab(features: KernelFeatures, sysctls: Sysctls) -> tuple[Lab, object]:
    nat = lab(features, sysctls)
    setup_nat(nat, 0)
    send(nat, C.SHUTDOWN, 100)
    reply(nat, C.SHUTDOWN_ACK, 101)
    send(nat, C.SHUTDOWN_COMPLETE, 102)
    old = nat.kernel.entry(chunk(None))
    assert old is not None and old.state == S.CLOSED
    return nat, old.dest


@pytest.mark.parametrize(
    ("name", "features", "sysctls"),
    [
        ("4.1 mode 1", V4_1, Sysctls()),
        ("4.19 mode 1 no conntrack", V4_19, Sysctls()),
        ("6.1 mode 1 conntrack", V6_1, Sysctls(conntrack=1)),
        ("6.1 mode 2", V6_1, Sysctls(conn_reuse_mode=2)),
    ],
)
def test_init_on_closed_association_is_rescheduled(
    name: str, features: KernelFeatures, sysctls: Sysctls
) -> None:
    nat, old_dest = closed_lab(features, sysctls)
    res = send(nat, C.INIT, 200)
    assert res.outcome is Outcome.RESCHEDULE, res.decision.path
    assert StepKind.EXPECTED_REUSE in res.decision.path
    assert res.new_entry and res.dest is not old_dest  # rr moves on
    assert entry_of(nat)[0] == S.INIT1  # a fresh entry, not the old one's INIT
    assert counts(nat) == [(0, 1), (0, 0)]  # the old entry went with its counter


def test_init_on_closed_association_follows_it_with_mode_0() -> None:
    nat, old_dest = closed_lab(V6_1, Sysctls(conn_reuse_mode=0))
    res = send(nat, C.INIT, 200)
    assert res.outcome is Outcome.FORWARD_EXISTING and res.dest is old_dest
    assert entry_of(nat)[0] == S.INIT  # sctp_states: INIT on CLOSED (input)


def test_init_on_closed_association_drops_first_in_the_f719e3754_era() -> None:
    """4.19 with conntrack=1: the entry has NFCT and the INIT has a conntrack, as a
    TCP SYN would: the old entry is expired and the INIT dropped."""
    nat, _ = closed_lab(V4_19, Sysctls(conntrack=1))
    res = send(nat, C.INIT, 200)
    assert res.outcome is Outcome.DROP_SYN
    assert nat.kernel.entry(chunk(None)) is None
    assert send(nat, C.INIT, 1200).outcome is Outcome.SCHEDULE


def test_init_before_4_1_follows_the_closed_entry_of_the_original_machine() -> None:
    nat = lab(PRE_4_1)
    setup_nat(nat, 0)
    assert entry_of(nat)[0] == L.ESTABLISHED
    send(nat, C.SHUTDOWN, 100)
    reply(nat, C.SHUTDOWN_ACK, 101)
    assert entry_of(nat)[0] == L.SHUT_ACK_SER
    send(nat, C.SHUTDOWN_COMPLETE, 102)
    assert entry_of(nat)[::2] == (L.CLOSED, 102 + 10 * SECOND)
    res = send(nat, C.INIT, 200)
    assert res.outcome is Outcome.FORWARD_EXISTING
    assert entry_of(nat)[0] == L.INIT_CLI


def test_rhel7_like_init_on_original_machine_closed_is_rescheduled() -> None:
    nat = lab(V4_19_OLD_SCTP)
    setup_nat(nat, 0)
    first = nat.kernel.entry(chunk(None))
    assert first is not None and first.dest is not None
    old_dest = first.dest
    send(nat, C.SHUTDOWN, 100)
    reply(nat, C.SHUTDOWN_ACK, 101)
    send(nat, C.SHUTDOWN_COMPLETE, 102)
    assert entry_of(nat)[0] == L.CLOSED  # 12 in that enum
    res = send(nat, C.INIT, 200)
    assert res.outcome is Outcome.RESCHEDULE and res.dest is not old_dest
    assert entry_of(nat)[0] == L.INIT_CLI


# --- the original machine through the driver ---------------------------------------------


def test_original_machine_nat_setup_and_timeouts() -> None:
    nat = lab(PRE_4_1)
    send(nat, C.INIT, 0)
    assert entry_of(nat)[::2] == (L.INIT_CLI, MINUTE)
    reply(nat, C.INIT_ACK, 1)
    assert entry_of(nat)[0] == L.INIT_ACK_SER
    send(nat, C.COOKIE_ECHO, 2)
    assert entry_of(nat)[0] == L.ECHO_CLI
    assert counts(nat) == [(0, 0), (0, 1)]
    reply(nat, C.COOKIE_ACK, 3)
    assert entry_of(nat)[::2] == (L.ESTABLISHED, 3 + 15 * MINUTE)
    assert counts(nat) == [(0, 0), (1, 0)]


def test_original_machine_takes_no_template_assurance() -> None:
    nat = lab(PRE_4_1, persistence=60)
    setup_nat(nat, 0)
    (template,) = nat.kernel.templates.values()
    assert not template.assured


def test_current_machine_assures_the_template_on_established() -> None:
    nat = lab(V6_1, persistence=60)
    send(nat, C.INIT, 0)
    (template,) = nat.kernel.templates.values()
    assert not template.assured
    reply(nat, C.INIT_ACK, 1)
    send(nat, C.COOKIE_ECHO, 2)
    assert not template.assured
    reply(nat, C.COOKIE_ACK, 3)
    assert template.assured


# --- DR: input only ------------------------------------------------------------------------


def test_dr_association_reaches_established_from_client_packets_alone() -> None:
    dr = lab(V6_1, forward=ForwardMethod.ROUTE)
    send(dr, C.INIT, 0)
    state, flags, _ = entry_of(dr)
    assert state == S.INIT1 and flags & F_NOOUTPUT
    send(dr, C.COOKIE_ECHO, 1)  # stands for the INIT-ACK the director never sees
    assert entry_of(dr)[0] == S.ESTABLISHED
    assert counts(dr) == [(0, 0), (1, 0)]
    send(dr, C.DATA, 2)
    send(dr, C.SHUTDOWN, 3)
    assert entry_of(dr)[0] == S.SHUTDOWN_RECEIVED
    send(dr, C.SHUTDOWN_COMPLETE, 4)
    state, flags, expires = entry_of(dr)
    assert (state, expires) == (S.CLOSED, 4 + MAX_RTO)
    assert flags & F_NOOUTPUT and flags & F_INACTIVE
    assert counts(dr) == [(0, 0), (0, 1)]


def test_dr_with_the_original_machine_never_establishes() -> None:
    dr = lab(PRE_4_1, forward=ForwardMethod.ROUTE)
    send(dr, C.INIT, 0)
    send(dr, C.COOKIE_ECHO, 1)
    assert entry_of(dr)[0] == L.CLOSED
    assert counts(dr) == [(0, 0), (0, 1)]


def test_server_packet_clears_nooutput_in_the_current_machine_only() -> None:
    dr = lab(V6_1, forward=ForwardMethod.ROUTE)
    send(dr, C.INIT, 0)
    reply(dr, None, 1)  # no chunk header: set_sctp_state() returns before the flag
    assert entry_of(dr)[1] & F_NOOUTPUT
    reply(dr, C.INIT_ACK, 2)
    state, flags, _ = entry_of(dr)
    assert state == S.COOKIE_SENT and not flags & F_NOOUTPUT

    old = lab(PRE_4_1, forward=ForwardMethod.ROUTE)
    send(old, C.INIT, 0)
    reply(old, C.INIT_ACK, 2)
    state, flags, _ = entry_of(old)
    assert state == L.INIT_ACK_SER and flags & F_NOOUTPUT


# --- packets without a chunk, timeouts ------------------------------------------------------


@pytest.mark.parametrize("features", [V6_1, PRE_4_1], ids=["current", "original"])
def test_packet_without_chunk_keeps_state_and_rearms_the_timer(features: KernelFeatures) -> None:
    nat = lab(features)
    setup_nat(nat, 0)
    before = counts(nat)
    state, flags, _ = entry_of(nat)
    send(nat, None, 10 * SECOND)
    assert entry_of(nat) == (state, flags, 10 * SECOND + 15 * MINUTE)
    reply(nat, None, 11 * SECOND)
    assert entry_of(nat) == (state, flags, 11 * SECOND + 15 * MINUTE)
    assert counts(nat) == before


def test_packet_without_chunk_and_without_entry_is_not_scheduled() -> None:
    nat = lab(V6_1)
    res = send(nat, None, 0)
    assert res.outcome is Outcome.PASS_NOT_SYN
    assert StepKind.NOT_SYN_NO_SCHEDULE in res.decision.path
    assert len(nat.kernel.table) == 0


@pytest.mark.parametrize("c", [C.DATA, C.COOKIE_ECHO, C.ABORT, C.INIT_ACK])
def test_only_init_creates_an_entry(c: int) -> None:
    nat = lab(V6_1)
    assert send(nat, c, 0).outcome is Outcome.PASS_NOT_SYN
    assert send(nat, C.INIT, 1).outcome is Outcome.SCHEDULE


def test_syn_flag_on_an_sctp_packet_means_nothing() -> None:
    """is_new_conn() reads the chunk type for SCTP, never TCP flags."""
    nat = lab(V6_1)
    pkt = Packet(Protocol.SCTP, CLIENT, 40000, VIP, PORT, TcpFlags.SYN, sctp_chunk=C.DATA)
    assert not pkt.is_new_connection
    assert nat.kernel.receive(pkt, 0).outcome is Outcome.PASS_NOT_SYN
    assert chunk(C.INIT).is_new_connection


def test_ipvsadm_set_leaves_sctp_timeouts_alone() -> None:
    nat = lab(V6_1)
    nat.kernel.timeouts.set(tcp=60, tcpfin=30, udp=10)
    setup_nat(nat, 0)
    assert entry_of(nat)[2] == 15 * MINUTE


def test_timeouts_for_state_has_an_sctp_branch() -> None:
    t = Timeouts()
    t.set(tcp=60, tcpfin=30, udp=10)
    assert t.for_state(Protocol.SCTP, S.ESTABLISHED) == 15 * MINUTE
    assert t.for_state(Protocol.SCTP, S.INIT1) == 4 * SECOND
    assert t.for_state(Protocol.SCTP, S.CLOSED) == MAX_RTO
    assert t.for_state(Protocol.SCTP, L.CLOSED, legacy_sctp=True) == 10 * SECOND
    assert t.for_state(Protocol.SCTP, L.ESTABLISHED, legacy_sctp=True) == 15 * MINUTE
    assert t.for_state(Protocol.UDP, 0) == 10 * SECOND


# --- bad input is refused before anything changes ------------------------------------------


def test_bad_chunk_type_is_refused_before_anything_changes() -> None:
    nat = lab(V6_1)
    with pytest.raises(ValueError):
        send(nat, 300, 0)
    with pytest.raises(ValueError):
        send(nat, C.INIT, 0, nxt=-1)
    assert len(nat.kernel.table) == 0 and counts(nat) == [(0, 0), (0, 0)]
    setup_nat(nat, 0)
    snapshot = entry_of(nat)
    with pytest.raises(ValueError):
        reply(nat, 256, 5)
    assert entry_of(nat) == snapshot


def test_reply_kinds_must_match_the_protocol() -> None:
    nat = lab(V6_1)
    setup_nat(nat, 0)
    with pytest.raises(TypeError):
        nat.kernel.reply(chunk(None), TcpFlags.ACK, 1)
    tcp = Packet(Protocol.TCP, CLIENT, 40000, VIP, 80, TcpFlags.ACK)
    with pytest.raises(TypeError):
        nat.kernel.reply(tcp, SctpReply(C.DATA), 1)


def test_batch_takes_sctp_replies_as_sctpreply() -> None:
    plain = lab(V6_1)
    fast = lab(V6_1)
    stream: list[tuple[Packet, int, TcpFlags | SctpReply | None]] = [
        (chunk(C.INIT), 0, None),
        (chunk(None), 1, SctpReply(C.INIT_ACK)),
        (chunk(C.COOKIE_ECHO), 2, None),
        (chunk(None), 3, SctpReply(C.COOKIE_ACK)),
        (chunk(C.DATA), 4, None),
        (chunk(None), 5, SctpReply(None)),
    ]
    expected = []
    for pkt, now, rep in stream:
        if rep is None:
            r = plain.kernel.receive(pkt, now)
            expected.append((r.decision, plain.servers.index(r.dest) if r.dest else None))
        else:
            expected.append(plain.kernel.reply(pkt, rep, now))
    got = []
    for r in fast.kernel.receive_batch(stream):
        if isinstance(r, bool):
            got.append(r)
        else:
            got.append((r.decision, fast.servers.index(r.dest) if r.dest else None))
    assert got == expected
    assert entry_of(fast) == entry_of(plain) == (S.ESTABLISHED, 0, 5 + 15 * MINUTE)
    with pytest.raises(TypeError):
        fast.kernel.receive_batch([(chunk(None), 6, TcpFlags.ACK)])


def test_state_names_of_a_live_kernel_entry() -> None:
    """The state numbers the driver stores are the kernel's, so /proc names follow."""
    from ipvslab.kernel.sctp_states import state_name

    nat = lab(V6_1)
    setup_nat(nat, 0)
    assert state_name(entry_of(nat)[0]) == "ESTABLISHED"
    old = lab(dataclasses.replace(V6_1, sctp_new_state_machine=False))
    send(old, C.INIT, 0)
    assert entry_of(old)[0] == L.INIT_CLI
