"""The accelerated scan picks exactly the port the kernel's loop picks.

The oracle below is the loop of ``__inet_hash_connect()`` as quoted in the
reference (§1.4, §1.5: v4.1, v4.2-rc, 1580ab63fc9a, 190cc82489f4, 2022 series),
port by port, with ``check_established()`` / ``tcp_twsk_unique()`` (§2.1-2.2)
decided from a plain record of the sockets the test opened and closed. Only the
keyed hash (standing for siphash) and the counters' current values are read from
the model: they are the loop's inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from ipvslab.cluster.client_tcp import (
    EADDRINUSE,
    EADDRNOTAVAIL,
    TCP_TIMEWAIT_LEN_US,
    ClientNetns,
    ClientSysctls,
    CloseHow,
)
from ipvslab.cluster.port_picker import HostPorts, PortSelection

from .support import CLUSTER_IP, OTHER_SVC, POD_A, SECOND, ip

M32 = 0xFFFFFFFF
DESTS = ((CLUSTER_IP, 80), (OTHER_SVC, 443), (ip("127.0.0.1"), 8080))


@dataclass
class Record:
    """What the test itself knows about the sockets it opened and closed."""

    live: set[tuple[int, int, int]] = field(default_factory=set)
    tw: dict[tuple[int, int, int], tuple[int, bool]] = field(default_factory=dict)
    # Ports whose bind bucket was created by bind() (fastreuse >= 0): skipped by the walk
    # until no socket (TIME_WAIT included) is left on them.
    bind_owned: set[int] = field(default_factory=set)

    def has_sockets(self, port: int) -> bool:
        return any(k[0] == port for k in self.live) or any(k[0] == port for k in self.tw)


def reusable(host: HostPorts, sysctls: ClientSysctls, daddr: int, entered: int, now: int) -> bool:
    reuse = sysctls.tcp_tw_reuse
    if reuse == 2:
        reuse = 1 if daddr >> 24 == 127 or POD_A >> 24 == 127 else 0
    if not reuse:
        return False
    # time_after32(ktime_get_seconds(), tw_ts_recent_stamp)
    return (host.uptime_us + now) // SECOND > (host.uptime_us + entered) // SECOND


def acceptable(
    host: HostPorts,
    sysctls: ClientSysctls,
    held: set[int],
    record: Record,
    port: int,
    daddr: int,
    dport: int,
    now: int,
) -> bool:
    if port in sysctls.ip_local_reserved_ports or port in held or port in record.bind_owned:
        return False
    key = (port, daddr, dport)
    if key in record.live:
        return False
    if key in record.tw:
        entered, had_ts = record.tw[key]
        if entered + TCP_TIMEWAIT_LEN_US > now:
            return had_ts and reusable(host, sysctls, daddr, entered, now)
    return True


def kernel_walk(
    host: HostPorts,
    sysctls: ClientSysctls,
    held: set[int],
    record: Record,
    daddr: int,
    dport: int,
    now: int,
) -> tuple[int, int] | None:
    low, high = sysctls.ip_local_port_range
    era = host.selection
    salt = host.salt_window(now)[0] if era == PortSelection.PERTURB_TABLE_65536 else 0
    index, off = host.slot_and_offset(host.port_offset(POD_A, daddr, dport, salt))
    base = host.perturb[index] if index >= 0 else host.hint

    def ok(port: int) -> bool:
        return acceptable(host, sysctls, held, record, port, daddr, dport, now)

    if era <= PortSelection.GLOBAL_HINT_EVEN_START:
        remaining = high - low + 1
        offset = (base + off) & M32
        first = 1
        if era == PortSelection.GLOBAL_HINT_EVEN_START:
            offset &= ~1
            first = 0
        for i in range(first, first + remaining):
            port = low + ((i + offset) & M32) % remaining
            if ok(port):
                return port, i
        return None
    high += 1
    remaining = high - low
    if remaining > 1:
        remaining &= ~1
    offset = ((base + off) & M32) % remaining
    offset &= ~1
    while True:
        port = low + offset
        i = 0
        while i < remaining:
            if port >= high:
                port -= remaining
            if ok(port):
                return port, i
            i += 2
            port += 2
        offset += 1
        if not (offset & 1 and remaining > 1):
            return None


connects = st.tuples(st.just("connect"), st.integers(0, len(DESTS) - 1))
ops = st.lists(
    st.one_of(
        connects,
        connects,
        connects,
        st.tuples(st.just("close"), st.integers(0, 1000), st.sampled_from(list(CloseHow))),
        st.tuples(st.just("wait"), st.sampled_from([0, 1, 400_000, 999_999, SECOND, 30 * SECOND])),
        st.tuples(st.just("hold"), st.integers(0, 40)),
        st.tuples(st.just("bind"), st.integers(0, 28), st.integers(0, len(DESTS) - 1)),
    ),
    min_size=1,
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(
    era=st.sampled_from(list(PortSelection)),
    low=st.integers(1024, 1100),
    size=st.integers(1, 24),
    reserved=st.sets(st.integers(0, 30), max_size=6),
    tw_reuse=st.integers(0, 2),
    timestamps=st.integers(0, 1),
    max_tw=st.sampled_from([0, 3, 1000]),
    seed=st.integers(0, 2**32),
    steps=ops,
)
def test_connect_picks_the_port_the_kernel_loop_picks(
    era: PortSelection,
    low: int,
    size: int,
    reserved: set[int],
    tw_reuse: int,
    timestamps: int,
    max_tw: int,
    seed: int,
    steps: list[tuple[object, ...]],
) -> None:
    sysctls = ClientSysctls(
        ip_local_port_range=(low, low + size - 1),
        ip_local_reserved_ports=frozenset(low + r for r in reserved),
        tcp_tw_reuse=tw_reuse,
        tcp_timestamps=timestamps,
        tcp_max_tw_buckets=max_tw,
    )
    host = HostPorts((6, 1, 0), seed=seed, selection=era, uptime_us=seed % (7 * SECOND))
    netns = ClientNetns(host, POD_A, sysctls)
    record = Record()
    held: set[int] = set()
    opened: list[tuple[int, int, int]] = []
    now = 0
    for step in steps:
        if step[0] == "wait":
            assert isinstance(step[1], int)
            now += step[1]
            for key, (entered, _) in list(record.tw.items()):
                if entered + TCP_TIMEWAIT_LEN_US <= now:
                    del record.tw[key]
        elif step[0] == "hold":
            assert isinstance(step[1], int)
            port = low + step[1]
            netns.hold_port(port)
            held.add(port)
        elif step[0] == "bind":
            assert isinstance(step[1], int)
            assert isinstance(step[2], int)
            port = low + step[1]
            daddr, dport = DESTS[step[2]]
            key = (port, daddr, dport)
            got = netns.connect(daddr, dport, now, bind_port=port)
            if port in held:
                assert got == -EADDRINUSE
                continue
            old_tw = record.tw.get(key)
            if key in record.live or (old_tw is not None and not old_tw[1]):
                assert got == -EADDRNOTAVAIL  # check_established(), twp == NULL
                continue
            assert got == port
            if old_tw is not None:
                del record.tw[key]
            elif not record.has_sockets(port) and low <= port < low + size:
                record.bind_owned.add(port)
            record.live.add(key)
            opened.append(key)
        elif step[0] == "connect":
            assert isinstance(step[1], int)
            daddr, dport = DESTS[step[1]]
            expected = kernel_walk(host, sysctls, held, record, daddr, dport, now)
            counter_before = host.hint if era <= 3 else None
            got = netns.connect(daddr, dport, now)
            if expected is None:
                assert got == -EADDRNOTAVAIL
                continue
            port, i = expected
            assert got == port
            if era == PortSelection.GLOBAL_HINT_PARITY:
                assert counter_before is not None
                assert host.hint == (counter_before + i + 2) & M32
            key = (port, daddr, dport)
            assert key not in record.live
            record.tw.pop(key, None)
            record.live.add(key)
            opened.append(key)
        else:
            live = [k for k in opened if k in record.live]
            if not live:
                continue
            assert isinstance(step[1], int)
            key = live[step[1] % len(live)]
            how = step[2]
            netns.close(*key, now, how)  # type: ignore[arg-type]
            record.live.discard(key)
            tw_now = sum(1 for e, _ in record.tw.values() if e + TCP_TIMEWAIT_LEN_US > now)
            if how == CloseHow.CLIENT_FIRST and tw_now < max_tw:
                record.tw[key] = (now, bool(timestamps))
        record.bind_owned = {p for p in record.bind_owned if record.has_sockets(p)}
        assert netns.time_wait_count(now) == len(record.tw)
        assert {(p, d, dp) for p, d, dp in netns.open_sockets()} == record.live
