"""What a client pod's kernel does with source ports, as users see it.

Expectations from ../shared/reference/client-tcp-ports.md §1-2.
"""

from __future__ import annotations

import itertools

import pytest

from ipvslab.cluster.client_tcp import (
    EADDRINUSE,
    EADDRNOTAVAIL,
    ClientNetns,
    ClientSysctls,
    CloseHow,
    parse_port_list,
)
from ipvslab.cluster.port_picker import HostPorts, PortSelection

from .support import CLUSTER_IP, HTTP, MS, OTHER_SVC, POD_A, POD_B, SECOND, ip

FIRST = CloseHow.CLIENT_FIRST
SERVER = CloseHow.SERVER_FIRST
RST = CloseHow.CLIENT_RESET


def netns(
    kernel: tuple[int, int, int] = (6, 1, 0), seed: int = 7, **sysctls: object
) -> ClientNetns:
    host = HostPorts(kernel, seed=seed, uptime_us=0)
    return ClientNetns(host, POD_A, ClientSysctls(**sysctls))  # type: ignore[arg-type]


def short_connections(
    ns: ClientNetns, count: int, how: CloseHow, gap_us: int = 10 * MS
) -> list[int]:
    ports = []
    now = ns._last_us if ns._last_us > 0 else 0
    for _ in range(count):
        port = ns.connect(CLUSTER_IP, HTTP, now)
        ports.append(port)
        ns.close(port, CLUSTER_IP, HTTP, now + MS, how)
        now += gap_us
    return ports


# -- port sequence per era (§1.3, §5.3) ------------------------------------------


def test_v4_19_walks_the_even_ports_two_by_two() -> None:
    # 1580ab63fc9a: hint += i + 2 with i = 0 when the first port is free.
    ports = short_connections(netns((4, 19, 0)), 50, SERVER)
    assert all(p % 2 == 0 for p in ports)
    steps = {(b - a) % 28232 for a, b in itertools.pairwise(ports)}
    assert steps == {2}


def test_v4_1_walks_every_port_one_by_one() -> None:
    ports = short_connections(netns((3, 10, 0)), 50, SERVER)
    assert {(b - a) % 28232 for a, b in itertools.pairwise(ports)} == {1}


def test_v5_15_adds_an_extra_step_in_about_one_connect_in_sixteen() -> None:
    # c579bd1b4021: i = 2 in 1/16 of the connects whose first port was free.
    ports = short_connections(netns((5, 15, 0)), 3200, SERVER)
    steps = [(b - a) % 28232 for a, b in itertools.pairwise(ports)]
    assert set(steps) == {2, 4}
    assert 0.04 < steps.count(4) / len(steps) < 0.09


def test_v5_18_steps_are_random_between_2_and_16_within_a_window() -> None:
    # ca7af0402550: the next port is 2 + max(i, 2*U{0..7}) further, mean 9 (§1.4).
    ns = netns((6, 1, 0))
    _, _, start = ns.host.salt_window(0)  # the next 10 s window starts here
    ports = []
    for k in range(900):  # 9 s at 100 conn/s, all inside that window
        now = start + k * 10 * MS
        port = ns.connect(CLUSTER_IP, HTTP, now)
        ns.close(port, CLUSTER_IP, HTTP, now + MS, SERVER)
        ports.append(port)
    steps = [(b - a) % 28232 for a, b in itertools.pairwise(ports)]
    assert set(steps) <= set(range(2, 17, 2))
    assert 8.5 < sum(steps) / len(steps) < 9.5


def test_v5_18_start_point_jumps_every_ten_seconds() -> None:
    ns = netns((6, 1, 0))
    _, _, end = ns.host.salt_window(0)
    before = ns.connect(CLUSTER_IP, HTTP, end - 1)
    after = ns.connect(CLUSTER_IP, HTTP, end)
    # Within a window the next port is at most 16 further; a new window starts afresh.
    assert not 2 <= (after - before) % 28232 <= 16


def test_same_seed_same_ports_other_seed_other_ports() -> None:
    first = short_connections(netns(seed=11), 200, FIRST)
    again = short_connections(netns(seed=11), 200, FIRST)
    other = short_connections(netns(seed=12), 200, FIRST)
    assert first == again
    assert first != other


# -- even ports first, exhaustion, destinations (§1.4, §2.1) -------------------------


def test_odd_ports_only_after_every_even_port_is_taken() -> None:
    ns = netns((6, 1, 0), ip_local_port_range=(40000, 40099))
    ports = [ns.connect(CLUSTER_IP, HTTP, 0) for _ in range(100)]
    assert sorted(p for p in ports[:50]) == list(range(40000, 40100, 2))
    assert sorted(ports[50:]) == list(range(40001, 40100, 2))
    assert ns.connect(CLUSTER_IP, HTTP, 0) == -EADDRNOTAVAIL


def test_other_parity_scan_starts_one_past_the_even_start() -> None:
    # 1580ab63fc9a: after the even pass, offset++ and the odd pass starts there.
    ns = netns((4, 19, 0), ip_local_port_range=(1000, 1099))
    host = ns.host
    evens = [ns.connect(CLUSTER_IP, HTTP, 0) for _ in range(50)]
    assert all(p % 2 == 0 for p in evens)
    offset = ((host.hint + ns._dests[(CLUSTER_IP << 16) | HTTP].offset) & 0xFFFFFFFF) % 100 & ~1
    assert ns.connect(CLUSTER_IP, HTTP, 0) == 1000 + offset + 1


def test_a_port_is_shared_across_destinations() -> None:
    ns = netns(ip_local_port_range=(50000, 50000))
    assert ns.connect(CLUSTER_IP, HTTP, 0) == 50000
    assert ns.connect(OTHER_SVC, HTTP, 0) == 50000  # another 4-tuple, same port
    assert ns.connect(CLUSTER_IP, 443, 0) == 50000
    assert ns.connect(CLUSTER_IP, HTTP, 0) == -EADDRNOTAVAIL


def test_exhausted_for_one_destination_is_not_exhausted_for_another() -> None:
    ns = netns(ip_local_port_range=(50000, 50009))
    for _ in range(10):
        assert ns.connect(CLUSTER_IP, HTTP, 0) > 0
    assert ns.connect(CLUSTER_IP, HTTP, 0) == -EADDRNOTAVAIL
    assert ns.connect(OTHER_SVC, HTTP, 0) > 0


def test_reserved_ports_are_skipped_but_the_counter_steps_over_them() -> None:
    # §1.4 point 3: `continue` on a reserved port still advances i, and the counter
    # moves by i + 2: the port right after a reserved block comes up more often.
    probe = netns((4, 19, 0))
    first = probe.connect(CLUSTER_IP, HTTP, 0)
    reserved = frozenset(range(first + 2, first + 12))
    ns = netns((4, 19, 0), ip_local_reserved_ports=reserved)
    ports = [ns.connect(CLUSTER_IP, HTTP, 0) for _ in range(3)]
    assert ports == [first, first + 12, first + 14]


def test_ports_held_by_a_listener_are_never_chosen() -> None:
    ns = netns(ip_local_port_range=(50000, 50009))
    ns.hold_port(50004)
    ports = {ns.connect(CLUSTER_IP, HTTP, 0) for _ in range(9)}
    assert 50004 not in ports
    assert ns.connect(CLUSTER_IP, HTTP, 0) == -EADDRNOTAVAIL
    assert ns.connect(CLUSTER_IP, HTTP, 0, bind_port=50004) == -EADDRINUSE
    ns.release_port(50004)
    assert ns.connect(CLUSTER_IP, HTTP, 0) == 50004


def test_a_bound_port_is_skipped_by_connect_while_its_socket_lives() -> None:
    ns = netns(ip_local_port_range=(50000, 50003))
    assert ns.connect(CLUSTER_IP, HTTP, 0, bind_port=50000) == 50000
    # The bucket was created by bind(): connect() to another Service skips it.
    got = {ns.connect(OTHER_SVC, HTTP, 0) for _ in range(3)}
    assert got == {50001, 50002, 50003}
    assert ns.connect(OTHER_SVC, HTTP, 0) == -EADDRNOTAVAIL
    ns.close(50000, CLUSTER_IP, HTTP, SECOND, SERVER)
    assert ns.connect(OTHER_SVC, HTTP, SECOND) == 50000


# -- TIME_WAIT (§2) ----------------------------------------------------------------


def test_client_closing_first_never_reuses_a_port_within_60_s() -> None:
    ns = netns(ip_local_port_range=(50000, 50099))
    last_close: dict[int, int] = {}
    now = 0
    for _ in range(2000):
        port = ns.connect(CLUSTER_IP, HTTP, now)
        if port < 0:
            now += 100 * MS
            continue
        if port in last_close:
            assert now - last_close[port] >= 60 * SECOND
        ns.close(port, CLUSTER_IP, HTTP, now + MS, FIRST)
        last_close[port] = now + MS
        now += 500 * MS
    assert ns.tw_recycled == 0


def test_tw_reuse_1_takes_over_a_time_wait_after_about_a_second() -> None:
    ns = netns(ip_local_port_range=(50000, 50007), tcp_tw_reuse=1)
    now = 0
    for _ in range(4):  # all four even ports into TIME_WAIT within second 0
        port = ns.connect(CLUSTER_IP, HTTP, now)
        ns.close(port, CLUSTER_IP, HTTP, now, FIRST)
        now += 200 * MS
    assert ns.time_wait_count(now) == 4
    # Still second 0: the TIME_WAITs are not reusable yet, the odd ports are used.
    assert ns.connect(CLUSTER_IP, HTTP, 900 * MS) % 2 == 1
    # From second 1 on, an even port is reused: TWRecycled counts it.
    assert ns.connect(CLUSTER_IP, HTTP, 1200 * MS) % 2 == 0
    assert ns.tw_recycled == 1
    assert ns.time_wait_count(1200 * MS) == 3


@pytest.mark.parametrize(
    ("tw_reuse", "timestamps", "daddr", "reused"),
    [
        (0, 1, CLUSTER_IP, False),
        (2, 1, CLUSTER_IP, False),  # default: loopback only, pod -> ClusterIP acts as 0
        (2, 1, ip("127.0.0.1"), True),
        (1, 1, CLUSTER_IP, True),
        (1, 0, CLUSTER_IP, False),  # no timestamps on the old connection: never
    ],
)
def test_time_wait_reuse_rules(tw_reuse: int, timestamps: int, daddr: int, reused: bool) -> None:
    ns = netns(ip_local_port_range=(50000, 50001), tcp_tw_reuse=tw_reuse, tcp_timestamps=timestamps)
    port = ns.connect(daddr, HTTP, 0)
    assert port == 50000
    ns.close(port, daddr, HTTP, 0, FIRST)
    assert ns.connect(daddr, HTTP, 5 * SECOND) == (50000 if reused else 50001)


def test_time_wait_ends_after_60_s() -> None:
    ns = netns(ip_local_port_range=(50000, 50000))
    ns.close(ns.connect(CLUSTER_IP, HTTP, 0), CLUSTER_IP, HTTP, SECOND, FIRST)
    assert ns.connect(CLUSTER_IP, HTTP, 61 * SECOND - 1) == -EADDRNOTAVAIL
    assert ns.time_wait(61 * SECOND - 1) == [(50000, CLUSTER_IP, HTTP, SECOND)]
    assert ns.connect(CLUSTER_IP, HTTP, 61 * SECOND) == 50000
    assert ns.tw_recycled == 0


@pytest.mark.parametrize("how", [SERVER, RST])
def test_no_client_time_wait_when_the_server_closes_first_or_on_reset(how: CloseHow) -> None:
    ns = netns(ip_local_port_range=(50000, 50000))
    ns.close(ns.connect(CLUSTER_IP, HTTP, 0), CLUSTER_IP, HTTP, SECOND, how)
    assert ns.time_wait_count(SECOND) == 0
    assert ns.connect(CLUSTER_IP, HTTP, SECOND) == 50000


def test_a_failed_connect_frees_its_port() -> None:
    ns = netns(ip_local_port_range=(50000, 50000))
    port = ns.connect(CLUSTER_IP, HTTP, 0)
    ns.abort(port, CLUSTER_IP, HTTP, 3 * SECOND)  # EHOSTUNREACH after the ARP wait
    assert ns.ports_in_use(3 * SECOND) == set()
    assert ns.connect(CLUSTER_IP, HTTP, 3 * SECOND) == 50000


def test_time_wait_bucket_limit_frees_the_port_at_once() -> None:
    ns = netns(ip_local_port_range=(50000, 50001), tcp_max_tw_buckets=1)
    a = ns.connect(CLUSTER_IP, HTTP, 0)
    b = ns.connect(CLUSTER_IP, HTTP, 0)
    ns.close(a, CLUSTER_IP, HTTP, 0, FIRST)
    ns.close(b, CLUSTER_IP, HTTP, 0, FIRST)  # the limit is reached: no TIME_WAIT
    assert ns.tw_overflow == 1
    assert ns.time_wait(0) == [(a, CLUSTER_IP, HTTP, 0)]
    assert ns.connect(CLUSTER_IP, HTTP, 0) == b


# -- bind() before connect() (§1.4 `if (port)`, §2.2 twp == NULL) ----------------------


def test_bound_port_in_time_wait_without_timestamps_gets_eaddrnotavail() -> None:
    ns = netns(tcp_timestamps=0, tcp_tw_reuse=1)
    assert ns.connect(CLUSTER_IP, HTTP, 0, bind_port=40000) == 40000
    ns.close(40000, CLUSTER_IP, HTTP, SECOND, FIRST)
    assert ns.connect(CLUSTER_IP, HTTP, 30 * SECOND, bind_port=40000) == -EADDRNOTAVAIL
    # To another destination the 4-tuple is different: fine.
    assert ns.connect(OTHER_SVC, HTTP, 30 * SECOND, bind_port=40000) == 40000
    # Once the TIME_WAIT is over, the same 4-tuple works again.
    assert ns.connect(CLUSTER_IP, HTTP, 61 * SECOND, bind_port=40000) == 40000


def test_bound_port_takes_over_a_time_wait_with_timestamps_whatever_tw_reuse_says() -> None:
    ns = netns(tcp_timestamps=1, tcp_tw_reuse=0)
    assert ns.connect(CLUSTER_IP, HTTP, 0, bind_port=40000) == 40000
    ns.close(40000, CLUSTER_IP, HTTP, 0, FIRST)
    assert ns.connect(CLUSTER_IP, HTTP, 0, bind_port=40000) == 40000
    assert ns.tw_recycled == 1
    assert ns.time_wait_count(0) == 0


def test_bound_port_with_a_live_connection_to_the_same_destination_fails() -> None:
    ns = netns()
    assert ns.connect(CLUSTER_IP, HTTP, 0, bind_port=40000) == 40000
    assert ns.connect(CLUSTER_IP, HTTP, 0, bind_port=40000) == -EADDRNOTAVAIL


# -- pods on one node share the kernel's counter (§1.4 point 4, §5.3 caveat) -----------


def test_on_v5_4_another_pods_connects_move_this_pods_ports() -> None:
    host = HostPorts((5, 4, 0), seed=3)
    pod_a = ClientNetns(host, POD_A)
    pod_b = ClientNetns(host, POD_B)
    a1 = pod_a.connect(CLUSTER_IP, HTTP, 0)
    for _ in range(5):
        pod_b.connect(OTHER_SVC, 443, 0)
    a2 = pod_a.connect(CLUSTER_IP, HTTP, 0)
    # One global hint: pod B's five connects moved it by 5 * 2 on top of A's own 2.
    assert (a2 - a1) % 28232 == 12


def test_on_v6_1_another_pods_connects_do_not_move_this_pods_counter() -> None:
    host = HostPorts((6, 1, 0), seed=3, uptime_us=0)
    pod_a = ClientNetns(host, POD_A)
    pod_b = ClientNetns(host, POD_B)
    a1 = pod_a.connect(CLUSTER_IP, HTTP, 0)
    for _ in range(50):
        pod_b.connect(OTHER_SVC, 443, 0)
    a2 = pod_a.connect(CLUSTER_IP, HTTP, 0)
    assert 2 <= (a2 - a1) % 28232 <= 16


# -- validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("ip_local_port_range", (60999, 32768), "ip_local_port_range high"),
        ("ip_local_port_range", (0, 100), "ip_local_port_range low"),
        ("tcp_tw_reuse", 3, "tcp_tw_reuse"),
        ("tcp_timestamps", -1, "tcp_timestamps"),
        ("tcp_syn_retries", 0, "tcp_syn_retries"),
        ("tcp_max_tw_buckets", -5, "tcp_max_tw_buckets"),
        ("ip_local_reserved_ports", frozenset({70000}), "ip_local_reserved_ports"),
    ],
)
def test_bad_sysctls_are_refused_by_name(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClientSysctls(**{field: value})  # type: ignore[arg-type]


def test_reserved_ports_parse_like_the_sysctl() -> None:
    assert parse_port_list("8080, 30000-30002") == frozenset({8080, 30000, 30001, 30002})
    assert parse_port_list("") == frozenset()
    with pytest.raises(ValueError, match="ip_local_reserved_ports"):
        parse_port_list("9-3")


def test_time_going_backwards_is_refused() -> None:
    ns = netns()
    ns.connect(CLUSTER_IP, HTTP, 10 * SECOND)
    with pytest.raises(ValueError, match="backwards"):
        ns.connect(CLUSTER_IP, HTTP, SECOND)


def test_closing_a_socket_that_is_not_open_is_refused() -> None:
    with pytest.raises(ValueError, match="no open socket"):
        netns().close(40000, CLUSTER_IP, HTTP, 0, FIRST)


def test_sysctl_change_keeps_the_sockets() -> None:
    ns = netns(ip_local_port_range=(50000, 50003))
    taken = {ns.connect(CLUSTER_IP, HTTP, 0) for _ in range(2)}
    ns.set_sysctls(ClientSysctls(ip_local_port_range=(50000, 50003), tcp_tw_reuse=1))
    more = {ns.connect(CLUSTER_IP, HTTP, 0) for _ in range(2)}
    assert taken.isdisjoint(more)
    assert ns.connect(CLUSTER_IP, HTTP, 0) == -EADDRNOTAVAIL


def test_selection_is_reported() -> None:
    assert netns((5, 10, 0)).host.selection == PortSelection.GLOBAL_HINT_PARITY


def test_destinations_without_sockets_are_forgotten_after_a_minute() -> None:
    # An ingress pod talking straight to many pod IPs: each destination costs port
    # bytes only while it has sockets (live or TIME_WAIT) or was used this minute.
    ns = netns()
    pod_ips = [ip("10.244.2.0") + k for k in range(300)]
    for k, daddr in enumerate(pod_ips):
        port = ns.connect(daddr, 8080, k * MS)
        ns.close(port, daddr, 8080, k * MS + MS, SERVER if k % 2 else FIRST)
    assert ns.tracked_destinations() == 300
    ns.connect(CLUSTER_IP, HTTP, 60 * SECOND + 100 * MS)
    # At 60.1 s the TIME_WAITs entered from 0.1 s on (even k >= 100: 100 of them) are
    # still there; the rest expired or never existed.
    assert ns.tracked_destinations() == 101
    ns.connect(CLUSTER_IP, HTTP, 122 * SECOND)
    assert ns.tracked_destinations() == 1


def test_kernel_defaults_follow_the_era() -> None:
    # 07f4c90062f8 (v4.2) moved the default high end from 61000 to 60999.
    assert ClientSysctls.for_kernel((3, 10, 0)).ip_local_port_range == (32768, 61000)
    assert ClientSysctls.for_kernel((5, 4, 0)).ip_local_port_range == (32768, 60999)
    assert ClientSysctls.for_kernel((4, 4, 0)).tcp_tw_reuse == 0
    assert ClientSysctls.for_kernel((6, 1, 0), tcp_tw_reuse=1).tcp_tw_reuse == 1
    with pytest.raises(ValueError, match="tcp_tw_reuse"):
        ClientSysctls.for_kernel((6, 1, 0), tcp_tw_reuse=7)


def test_old_default_range_leaves_one_port_out_of_a_parity_walk() -> None:
    # 32768-61000 has an odd number of ports: with 1580ab63fc9a's parity walk
    # `remaining &= ~1` drops one, so a v4.6+ kernel given such a range fails when
    # only `low` is free and the walk does not start there (reference §1.4 code).
    outcomes = set()
    for seed in range(16):
        sysctls = ClientSysctls(ip_local_port_range=(1000, 1004))
        ns = ClientNetns(HostPorts((4, 19, 0), seed=seed), POD_A, sysctls)
        for port in range(1001, 1005):
            assert ns.connect(CLUSTER_IP, HTTP, 0, bind_port=port) == port
        outcomes.add(ns.connect(CLUSTER_IP, HTTP, 0))
    assert outcomes == {1000, -EADDRNOTAVAIL}


def test_a_bound_port_skipped_before_a_range_change_is_released_after_it() -> None:
    ns = netns(ip_local_port_range=(50000, 50003))
    assert ns.connect(CLUSTER_IP, HTTP, 0, bind_port=50000) == 50000
    ns.set_sysctls(ClientSysctls(ip_local_port_range=(50001, 50004)))
    ns.close(50000, CLUSTER_IP, HTTP, 0, SERVER)
    ns.set_sysctls(ClientSysctls(ip_local_port_range=(50000, 50000)))
    assert ns.connect(OTHER_SVC, HTTP, 0) == 50000


@pytest.mark.parametrize(
    ("kernel", "reusable_from_us"),
    [
        # time_after32(ktime_get_seconds(), tw_ts_recent_stamp): the next whole second.
        ((6, 1, 0), 1 * SECOND),
        # tcp_tw_reuse_delay (default 1000 ms) after entering TIME_WAIT, ms granularity.
        ((6, 14, 0), 500 * MS + 1000 * MS + 1 * MS),
    ],
)
def test_tw_reuse_delay_per_kernel(kernel: tuple[int, int, int], reusable_from_us: int) -> None:
    for at, reused in ((reusable_from_us - 1, False), (reusable_from_us, True)):
        ns = netns(kernel, ip_local_port_range=(50000, 50001), tcp_tw_reuse=1)
        port = ns.connect(CLUSTER_IP, HTTP, 0)
        ns.close(port, CLUSTER_IP, HTTP, 500 * MS, FIRST)
        assert (ns.connect(CLUSTER_IP, HTTP, at) == port) is reused
