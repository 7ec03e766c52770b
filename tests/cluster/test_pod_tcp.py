"""What a pod answers a SYN for a 4-tuple it still holds (client-tcp-ports.md §4.4,
RFC 5961 challenge ACK)."""

from __future__ import annotations

from ipvslab.cluster.pod_tcp import POD_TIME_WAIT_US, PodTcp, SynAnswer

KEY = PodTcp.key(0x0AF40102, 40000)


def test_syn_on_the_pods_own_time_wait_is_accepted() -> None:
    tcp = PodTcp()
    assert tcp.on_syn(KEY, 1, 0) is SynAnswer.SYN_ACK
    tcp.established(KEY, 1, 0)
    tcp.closed(KEY, pod_closed_first=True, now=10)
    assert tcp.on_syn(KEY, 2, 20) is SynAnswer.SYN_ACK


def test_syn_on_a_half_open_connection_of_an_earlier_attempt_gets_a_challenge_ack() -> None:
    tcp = PodTcp()
    tcp.on_syn(KEY, 1, 0)  # its SYN|ACK never reached the client
    assert tcp.on_syn(KEY, 1, 1_000_000) is SynAnswer.RETRANSMITTED_SYN_ACK
    assert tcp.on_syn(KEY, 2, 2_000_000) is SynAnswer.CHALLENGE_ACK
    tcp.on_rst(KEY)  # the client's RST resets it
    assert tcp.on_syn(KEY, 2, 2_000_001) is SynAnswer.SYN_ACK


def test_time_wait_is_forgotten_after_60_seconds() -> None:
    tcp = PodTcp()
    tcp.closed(KEY, pod_closed_first=True, now=0)
    tcp.sweep(POD_TIME_WAIT_US)
    assert len(tcp) == 0
