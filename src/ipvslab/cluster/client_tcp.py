"""One client pod's TCP stack: connect()'s source port, TIME_WAIT and its reuse.

Source: ../shared/reference/client-tcp-ports.md §1-2 (port choice, TIME_WAIT,
``tcp_twsk_unique()``), §5.5 (pseudo-code). ``HostPorts`` (port_picker.py) holds
what the kernel shares across namespaces; a ``ClientNetns`` is one pod's network
namespace: its sysctls and its sockets.

Time is integer microseconds passed in by the caller and must not go backwards
within one namespace. Addresses are ints (IPv4; the loopback test of
tcp_tw_reuse=2 reads 127.0.0.0/8). connect() returns the source port, or a
negative errno (``-EADDRNOTAVAIL``, ``-EADDRINUSE``): no exception on the hot path.

How the scan stays exact and fast: the kernel walks the ports of the start
parity from a start offset and takes the first one that is not reserved, not
owned by a bind() user, and whose 4-tuple is unique (or whose TIME_WAIT may be
reused). Per destination we keep one byte per port, split by parity into two
bytearrays (bit 0: this 4-tuple is taken; bit 1: the port is skipped for every
destination). The kernel's walk is at most two increasing runs per parity (it
wraps once), so ``bytearray.find(0, start, end)`` returns exactly the port the
walk stops at, and the walk length ``i`` that the counters advance by follows
from its position. TIME_WAIT sockets expire, and become reusable, from two
first-in first-out queues (every TIME_WAIT lasts the same 60 s).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import IntEnum

from ipvslab.cluster.port_picker import HostPorts, KernelVersion
from ipvslab.kernel.schedulers._hashing import MASK32

# Linux errno values (asm-generic/errno.h), fixed whatever the host platform.
EADDRINUSE = 98
EADDRNOTAVAIL = 99

# include/net/tcp.h: TCP_TIMEWAIT_LEN (60*HZ), fixed, not a sysctl.
TCP_TIMEWAIT_LEN_US = 60_000_000

# Every minute of simulated time, destinations without sockets are forgotten (their
# 28 KB of port bytes at the default range); they are rebuilt, identically, on use.
IDLE_SWEEP_US = 60_000_000

# tcp_set_hashinfo(): sysctl_max_tw_buckets = ehash_entries / 2 per namespace. The
# ehash size follows the host's memory; 262144 is a common value (ehash 524288).
DEFAULT_MAX_TW_BUCKETS = 262_144


class CloseHow(IntEnum):
    """How a connection ends, from the client's side."""

    # The client sends the first FIN: it holds TIME_WAIT for TCP_TIMEWAIT_LEN
    # (tcp_time_wait()), unless tcp_max_tw_buckets is reached (inet_twsk_alloc()
    # returns NULL: the socket is closed at once, TCPTimeWaitOverflow).
    CLIENT_FIRST = 0
    # The server sends the first FIN: CLOSE_WAIT -> LAST_ACK -> CLOSED, no client
    # TIME_WAIT (reference §2.3): the 4-tuple is free once the close completes.
    SERVER_FIRST = 1
    # The client aborts with RST (SO_LINGER 0): no TIME_WAIT.
    CLIENT_RESET = 2


def _in_range(value: int, low: int, high: int, name: str) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def parse_port_list(text: str) -> frozenset[int]:
    """``ip_local_reserved_ports`` syntax: "8080,30000-30010" (empty: none)."""
    ports: set[int] = set()
    for raw in text.replace(" ", "").split(","):
        if not raw:
            continue
        low_text, sep, high_text = raw.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if sep else low
        except ValueError:
            raise ValueError(f"ip_local_reserved_ports: {raw!r} is not a port or a range") from None
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"ip_local_reserved_ports: {raw!r} is not within 1-65535, low first")
        ports.update(range(low, high + 1))
    return frozenset(ports)


@dataclass(frozen=True, slots=True)
class ClientSysctls:
    """The per-namespace sysctls connect() and close() read (each pod has its own)."""

    # af_inet.c inet_init_net(): 32768 60999 since 07f4c90062f8 (was 61000).
    ip_local_port_range: tuple[int, int] = (32768, 60999)
    # Skipped by the scan; the walk (and so the counter) still steps over them.
    ip_local_reserved_ports: frozenset[int] = field(default_factory=frozenset)
    # 79e9fed46038: default 2 = loopback only (for pod -> ClusterIP that acts as 0).
    tcp_tw_reuse: int = 2
    # tcp_tw_reuse_delay (ms), used by kernels that have it (HostPorts.tw_reuse_delay).
    tcp_tw_reuse_delay: int = 1000
    tcp_timestamps: int = 1
    # TCP_SYN_RETRIES = 6 (include/net/tcp.h); MAX_TCP_SYNCNT = 127.
    tcp_syn_retries: int = 6
    tcp_max_tw_buckets: int = DEFAULT_MAX_TW_BUCKETS

    def __post_init__(self) -> None:
        low, high = self.ip_local_port_range
        _in_range(low, 1, 65535, "ip_local_port_range low")
        _in_range(high, low, 65535, "ip_local_port_range high")
        for port in self.ip_local_reserved_ports:
            _in_range(port, 1, 65535, "ip_local_reserved_ports entry")
        _in_range(self.tcp_tw_reuse, 0, 2, "tcp_tw_reuse")
        _in_range(self.tcp_tw_reuse_delay, 1, 2_000_000_000, "tcp_tw_reuse_delay")
        _in_range(self.tcp_timestamps, 0, 2, "tcp_timestamps")
        _in_range(self.tcp_syn_retries, 1, 127, "tcp_syn_retries")
        _in_range(self.tcp_max_tw_buckets, 0, 2**31 - 1, "tcp_max_tw_buckets")

    @classmethod
    def for_kernel(cls, kernel_version: KernelVersion, **overrides: object) -> ClientSysctls:
        """The defaults of a mainline kernel of that version, then ``overrides``.

        * ip_local_port_range: 32768 61000 before 07f4c90062f8 (v4.2), 32768 60999 after.
        * tcp_tw_reuse: 0 before 79e9fed46038 made 2 (loopback only) the default; its
          release (4.19 or 4.20) is UNVERIFIED, 4.20 is assumed. For a pod talking to
          a ClusterIP both act alike.
        """
        values: dict[str, object] = {
            "ip_local_port_range": (32768, 60999)
            if kernel_version >= (4, 2, 0)
            else (32768, 61000),
            "tcp_tw_reuse": 2 if kernel_version >= (4, 20, 0) else 0,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


class _Dest:
    """Per (daddr, dport): its sockets, the port bytes of both parities, the offset.

    ``socks`` maps a source port to its socket: a value < 0 is a live socket (-1:
    without timestamps, -2: with), a value >= 0 a TIME_WAIT, ``entered_us * 2 +
    had_timestamps``.
    """

    __slots__ = (
        "daddr",
        "dport",
        "even",
        "index",
        "odd",
        "offset",
        "socks",
        "win_end",
        "win_start",
    )

    daddr: int
    dport: int
    socks: dict[int, int]
    even: bytearray
    odd: bytearray
    index: int
    offset: int
    win_start: int
    win_end: int

    def __init__(self, daddr: int, dport: int, even: bytearray, odd: bytearray) -> None:
        self.daddr = daddr
        self.dport = dport
        self.socks = {}
        self.even = even
        self.odd = odd
        self.index = -1
        self.offset = 0
        self.win_start = 1
        self.win_end = 0  # empty window: computed on first use


_FREE = 0
_TAKEN = 1
_SKIP = 2


def _is_loopback(addr: int) -> bool:
    return addr >> 24 == 127


class ClientNetns:
    """One pod's network namespace: its sysctls, its TCP sockets and TIME_WAITs."""

    __slots__ = (
        "_bind_refs",
        "_dests",
        "_era",
        "_exp_dests",
        "_exp_ports",
        "_exp_times",
        "_held",
        "_last_us",
        "_live_value",
        "_low",
        "_max_tw",
        "_next_due_us",
        "_next_sweep_us",
        "_range",
        "_remaining",
        "_reu_dests",
        "_reu_entered",
        "_reu_ports",
        "_reu_times",
        "_reuse_all",
        "_reuse_delay_ms",
        "_reuse_loopback",
        "_skip_even",
        "_skip_odd",
        "_tw_count",
        "addr",
        "host",
        "sysctls",
        "tw_overflow",
        "tw_recycled",
    )

    _bind_refs: dict[int, int]
    _dests: dict[int, _Dest]
    _era: int
    _exp_dests: deque[_Dest]
    _exp_ports: deque[int]
    _exp_times: deque[int]
    _held: dict[int, int]
    _last_us: int
    _live_value: int
    _low: int
    _max_tw: int
    _next_due_us: int
    _next_sweep_us: int
    _range: int
    _remaining: int
    _reu_dests: deque[_Dest]
    _reu_entered: deque[int]
    _reu_ports: deque[int]
    _reu_times: deque[int]
    _reuse_all: bool
    _reuse_delay_ms: int
    _reuse_loopback: bool
    _skip_even: bytearray
    _skip_odd: bytearray
    _tw_count: int
    addr: int
    host: HostPorts
    sysctls: ClientSysctls
    tw_overflow: int
    tw_recycled: int

    def __init__(self, host: HostPorts, addr: int, sysctls: ClientSysctls | None = None) -> None:
        if not isinstance(addr, int) or not 0 <= addr <= 0xFFFFFFFF:
            raise ValueError(f"addr must be an IPv4 address as an int, got {addr!r}")
        self.host = host
        self.addr = addr
        self._era = host.era
        self._dests = {}
        self._bind_refs = {}
        self._held = {}
        self._exp_times = deque()
        self._exp_dests = deque()
        self._exp_ports = deque()
        self._reu_times = deque()
        self._reu_dests = deque()
        self._reu_ports = deque()
        self._reu_entered = deque()
        self._tw_count = 0
        self._last_us = -(1 << 62)
        self._next_sweep_us = -(1 << 62)
        # The earliest of: the oldest TIME_WAIT's end, the next TIME_WAIT to become
        # reusable, the next sweep. Never later than any of them.
        self._next_due_us = -(1 << 62)
        #: LINUX_MIB_TIMEWAITRECYCLED (nstat TWRecycled): TIME_WAITs taken over.
        self.tw_recycled = 0
        #: LINUX_MIB_TCPTIMEWAITOVERFLOW: closes that found tcp_max_tw_buckets full.
        self.tw_overflow = 0
        self.set_sysctls(ClientSysctls() if sysctls is None else sysctls)

    # -- configuration -------------------------------------------------------------

    def set_sysctls(self, sysctls: ClientSysctls) -> None:
        """Apply (new) sysctls; existing sockets and TIME_WAITs are kept."""
        self.sysctls = sysctls
        low, high = sysctls.ip_local_port_range
        self._low = low
        self._range = high - low + 1
        # 1580ab63fc9a: with the parity split, `remaining` is made even.
        remaining = self._range
        if self._era >= 3 and remaining > 1:
            remaining &= ~1
        self._remaining = remaining
        self._live_value = -2 if sysctls.tcp_timestamps else -1
        self._max_tw = sysctls.tcp_max_tw_buckets
        self._reuse_all = sysctls.tcp_tw_reuse == 1
        self._reuse_loopback = sysctls.tcp_tw_reuse == 2
        self._reuse_delay_ms = sysctls.tcp_tw_reuse_delay
        self._skip_even = bytearray((self._range + 1) >> 1)
        self._skip_odd = bytearray(self._range >> 1)
        for port in self._static_skips():
            self._mark_skip_template(port - low, True)
        self._rebuild()

    def _static_skips(self) -> set[int]:
        low, high = self.sysctls.ip_local_port_range
        ports = {p for p in self.sysctls.ip_local_reserved_ports if low <= p <= high}
        ports.update(p for p in self._held if low <= p <= high)
        ports.update(p for p in self._bind_refs if low <= p <= high)
        return ports

    def _mark_skip_template(self, pos: int, on: bool) -> None:
        arr = self._skip_odd if pos & 1 else self._skip_even
        arr[pos >> 1] = _SKIP if on else _FREE

    def _rebuild(self) -> None:
        """Recompute every destination's bytes and the reuse queue from the sockets."""
        for dest in self._dests.values():
            dest.even = bytearray(self._skip_even)
            dest.odd = bytearray(self._skip_odd)
            for port, value in dest.socks.items():
                if value < 0:
                    self._set_taken(dest, port, True)
        self._reu_times.clear()
        self._reu_dests.clear()
        self._reu_ports.clear()
        self._reu_entered.clear()
        # TIME_WAITs in the order they were entered (the expiry queue's order).
        for expires, dest, port in zip(
            self._exp_times, self._exp_dests, self._exp_ports, strict=True
        ):
            value = dest.socks.get(port, -1)
            if value < 0 or value >> 1 != expires - TCP_TIMEWAIT_LEN_US:
                continue
            self._set_taken(dest, port, True)
            self._queue_reuse(dest, port, value >> 1, value & 1)
        self._next_due_us = -(1 << 62)

    def _set_taken(self, dest: _Dest, port: int, taken: bool) -> None:
        pos = port - self._low
        if not 0 <= pos < self._range:
            return
        arr = dest.odd if pos & 1 else dest.even
        j = pos >> 1
        arr[j] = (arr[j] & _SKIP) | (_TAKEN if taken else _FREE)

    def _dest(self, daddr: int, dport: int) -> _Dest:
        dkey = (daddr << 16) | dport
        dest = self._dests.get(dkey)
        if dest is None:
            dest = _Dest(daddr, dport, bytearray(self._skip_even), bytearray(self._skip_odd))
            self._dests[dkey] = dest
        return dest

    def _housekeeping(self, now_us: int) -> None:
        """Run what is due at ``now_us``, then note when something is next due."""
        times = self._exp_times
        if times and times[0] <= now_us:
            self._expire(now_us)
        reusable = self._reu_times
        if reusable and reusable[0] <= now_us:
            self._make_reusable(now_us)
        if now_us >= self._next_sweep_us:
            self._forget_idle(now_us)
        due = self._next_sweep_us
        if times and times[0] < due:
            due = times[0]
        if reusable and reusable[0] < due:
            due = reusable[0]
        self._next_due_us = due

    def _forget_idle(self, now_us: int) -> None:
        """Drop the destinations that have no socket (nothing else depends on them).

        Entries of the TIME_WAIT queues that still point at a dropped destination
        find no socket there and are skipped.
        """
        self._next_sweep_us = now_us + IDLE_SWEEP_US
        idle = [key for key, dest in self._dests.items() if not dest.socks]
        for key in idle:
            del self._dests[key]

    def tracked_destinations(self) -> int:
        """Destinations whose port bytes are kept (memory: about the range size each)."""
        return len(self._dests)

    def _refresh_skip(self, port: int) -> None:
        """Port ``port`` started or stopped being skipped for every destination."""
        pos = port - self._low
        if not 0 <= pos < self._range:
            return
        on = (
            port in self.sysctls.ip_local_reserved_ports
            or port in self._held
            or port in self._bind_refs
        )
        self._mark_skip_template(pos, on)
        j = pos >> 1
        odd = pos & 1
        for dest in self._dests.values():
            arr = dest.odd if odd else dest.even
            arr[j] = (arr[j] & _TAKEN) | (_SKIP if on else _FREE)

    def hold_port(self, port: int) -> None:
        """A bind()/listen() user (a server socket in the pod) holds ``port``.

        Its bind bucket has fastreuse >= 0, so connect() never picks the port
        (__inet_hash_connect(): `goto next_port`).
        """
        _in_range(port, 1, 65535, "port")
        self._held[port] = self._held.get(port, 0) + 1
        self._refresh_skip(port)

    def release_port(self, port: int) -> None:
        count = self._held.get(port, 0)
        if count == 0:
            raise ValueError(f"port {port} is not held")
        if count == 1:
            del self._held[port]
        else:
            self._held[port] = count - 1
        self._refresh_skip(port)

    # -- connect() ---------------------------------------------------------------

    def connect(self, daddr: int, dport: int, now_us: int, bind_port: int = 0) -> int:
        """connect() to daddr:dport at ``now_us``: the source port, or a negative errno.

        ``bind_port`` > 0: the socket was bound to that port first (bind() then
        connect(), e.g. ``curl --local-port``). Returns ``-EADDRNOTAVAIL`` when no
        4-tuple is free (or, bound, when it is taken), ``-EADDRINUSE`` when a bound
        port is held by a listener.
        """
        if now_us < self._last_us:
            raise ValueError(f"time went backwards: {now_us} < {self._last_us}")
        self._last_us = now_us
        if now_us >= self._next_due_us:
            self._housekeeping(now_us)
        dest = self._dests.get((daddr << 16) | dport)
        if dest is None:
            dest = self._dest(daddr, dport)
        if bind_port:
            return self._connect_bound(dest, bind_port)
        if now_us >= dest.win_end or now_us < dest.win_start:
            self._refresh_offset(dest, now_us)
        era = self._era
        host = self.host
        if era >= 3:
            index = dest.index
            perturb = host.perturb
            if index >= 0:
                pos = ((perturb[index] + dest.offset) & 0xFFFFFFFF) % self._remaining & ~1
            else:
                pos = ((host.hint + dest.offset) & 0xFFFFFFFF) % self._remaining & ~1
            if dest.even[pos >> 1]:
                pos, i = self._walk_by_parity(dest, pos)
                if pos < 0:
                    return -EADDRNOTAVAIL
            else:
                i = 0
            if era == 5:
                # ca7af0402550: i = max(i, get_random_u32_below(8) * 2)
                extra = host.rng.getrandbits(3) << 1
                if extra > i:
                    i = extra
                perturb[index] = (perturb[index] + i + 2) & 0xFFFFFFFF
            elif era == 4:
                # c579bd1b4021: if (!i && !(prandom_u32() % 16)) i = 2;
                if i == 0 and host.rng.getrandbits(4) == 0:
                    i = 2
                perturb[index] = (perturb[index] + i + 2) & 0xFFFFFFFF
            else:
                host.hint = (host.hint + i + 2) & 0xFFFFFFFF
        else:
            # <= v4.1: for (i = 1; i <= remaining; i++) port = low + (i + offset) % remaining;
            # 07f4c90062f8 (v4.2): offset &= ~1 and i starts at 0.
            offset = (host.hint + dest.offset) & MASK32
            first = 1
            if era == 2:
                offset &= ~1
                first = 0
            pos = ((offset + first) & MASK32) % self._range
            if (dest.odd if pos & 1 else dest.even)[pos >> 1]:
                pos, i = self._walk_step1(dest, offset, first)
                if pos < 0:
                    return -EADDRNOTAVAIL
            else:
                i = first
            # v4.2: hint += (i + 2) & ~1; before: hint += i
            step = (i + 2) & ~1 if era == 2 else i
            host.hint = (host.hint + step) & MASK32
        port = self._low + pos
        socks = dest.socks
        if port in socks:
            # A reusable TIME_WAIT: inet_twsk_deschedule_put(), TWRecycled++.
            self.tw_recycled += 1
            self._tw_count -= 1
        socks[port] = self._live_value
        if pos & 1:
            dest.odd[pos >> 1] = 1  # _TAKEN
        else:
            dest.even[pos >> 1] = 1  # _TAKEN
        return port

    def _refresh_offset(self, dest: _Dest, now_us: int) -> None:
        host = self.host
        if self._era == 5:
            salt, start, end = host.salt_window(now_us)
            port_offset = host.port_offset(self.addr, dest.daddr, dest.dport, salt)
        else:
            # Before 4dfa9b438ee3 the offset is fixed for the whole uptime.
            start, end = -(1 << 62), 1 << 62
            port_offset = host.port_offset(self.addr, dest.daddr, dest.dport, 0)
        dest.index, dest.offset = host.slot_and_offset(port_offset)
        dest.win_start = start
        dest.win_end = end

    def _walk_by_parity(self, dest: _Dest, offset: int) -> tuple[int, int]:
        """1580ab63fc9a's walk from the even ``offset``: (position, i), or (-1, 0).

        The kernel steps `port += 2` from `low + offset` and subtracts `remaining`
        once the port reaches `high + 1`: an increasing run to the range's end, then
        one from near its start. Then `offset++` and the same for the other parity.
        """
        size = self._range
        remaining = self._remaining
        count = (remaining + 1) >> 1
        start = offset
        while True:
            arr = dest.odd if start & 1 else dest.even
            first = start >> 1
            run = min(count, (size - start + 1) >> 1)
            j = arr.find(_FREE, first, first + run)
            if j >= 0:
                return 2 * j + (start & 1), 2 * (j - first)
            if run < count:
                wrapped = start + 2 * run - remaining
                first_b = wrapped >> 1
                j = arr.find(_FREE, first_b, first_b + count - run)
                if j >= 0:
                    return 2 * j + (start & 1), 2 * run + 2 * (j - first_b)
            if start & 1 or remaining <= 1:
                return -1, 0
            start = offset + 1

    def _walk_step1(self, dest: _Dest, offset: int, i_first: int) -> tuple[int, int]:
        """The step-1 walk of <= v4.5: port = low + (i + offset) % remaining, u32 sum."""
        size = self._range
        # i values whose u32 sum `i + offset` does not wrap past 2**32.
        before_wrap = min(size, (1 << 32) - offset - i_first)
        if before_wrap > 0:
            start = (offset + i_first) % size
            k = self._find_cyclic(dest, start, before_wrap)
            if k >= 0:
                return (start + k) % size, i_first + k
        after = size - max(before_wrap, 0)
        if after > 0:
            k = self._find_cyclic(dest, 0, after)
            if k >= 0:
                return k, i_first + max(before_wrap, 0) + k
        return -1, 0

    def _find_cyclic(self, dest: _Dest, start: int, count: int) -> int:
        """Index k < count of the first free position of start, start+1, ... (mod range)."""
        size = self._range
        head = min(count, size - start)
        pos = self._first_free_any(dest, start, start + head)
        if pos >= 0:
            return pos - start
        if count > head:
            pos = self._first_free_any(dest, 0, count - head)
            if pos >= 0:
                return head + pos
        return -1

    @staticmethod
    def _first_free_any(dest: _Dest, begin: int, end: int) -> int:
        """First free position in [begin, end), both parities."""
        j_even = dest.even.find(_FREE, (begin + 1) >> 1, (end + 1) >> 1)
        j_odd = dest.odd.find(_FREE, begin >> 1, end >> 1)
        best = -1
        if j_even >= 0:
            best = 2 * j_even
        if j_odd >= 0 and (best < 0 or 2 * j_odd + 1 < best):
            best = 2 * j_odd + 1
        return best

    def _connect_bound(self, dest: _Dest, port: int) -> int:
        """bind(port) then connect(): __inet_hash_connect()'s `if (port)` branch.

        check_established() runs with twp == NULL, so tcp_twsk_unique() takes over a
        TIME_WAIT of the same 4-tuple whenever it had timestamps, whatever
        tcp_tw_reuse says; without timestamps: EADDRNOTAVAIL (reference §2.2).
        bind() itself is assumed to succeed (SO_REUSEADDR) unless a listener holds
        the port.
        """
        if not 1 <= port <= 65535:
            raise ValueError(f"bind_port must be between 1 and 65535, got {port}")
        if port in self._held:
            return -EADDRINUSE
        value = dest.socks.get(port)
        if value is not None:
            if value < 0 or not value & 1:
                return -EADDRNOTAVAIL
            self.tw_recycled += 1
            self._tw_count -= 1
        else:
            low = self._low
            if low <= port < low + self._range:
                refs = self._bind_refs.get(port, 0)
                if refs or not any(port in d.socks for d in self._dests.values()):
                    # The bucket is created by bind(): fastreuse >= 0 from now on,
                    # so connect() skips the port until its last socket is gone.
                    self._bind_refs[port] = refs + 1
                    if not refs:
                        self._refresh_skip(port)
        dest.socks[port] = self._live_value
        self._set_taken(dest, port, True)
        return port

    # -- close() -----------------------------------------------------------------

    def close(
        self, sport: int, daddr: int, dport: int, now_us: int, how: int = CloseHow.CLIENT_FIRST
    ) -> None:
        """The connection sport -> daddr:dport ends at ``now_us`` (see ``CloseHow``)."""
        if now_us < self._last_us:
            raise ValueError(f"time went backwards: {now_us} < {self._last_us}")
        self._last_us = now_us
        dest = self._dests.get((daddr << 16) | dport)
        value = 0 if dest is None else dest.socks.get(sport, 0)
        if value >= 0 or dest is None:
            raise ValueError(f"no open socket {sport} -> {daddr}:{dport}")
        if how == 0:
            if self._tw_count >= self._max_tw and self._exp_times:
                self._expire(now_us)
            if self._tw_count >= self._max_tw:
                self.tw_overflow += 1
                self._free(dest, sport)
                return
            had_ts = 1 if value == -2 else 0
            dest.socks[sport] = now_us * 2 + had_ts
            self._tw_count += 1
            expires = now_us + TCP_TIMEWAIT_LEN_US
            if expires < self._next_due_us:
                self._next_due_us = expires
            self._exp_times.append(expires)
            self._exp_dests.append(dest)
            self._exp_ports.append(sport)
            if had_ts and (self._reuse_all or self._reuse_loopback):
                self._queue_reuse(dest, sport, now_us, had_ts)
        elif how == 1 or how == 2:
            self._free(dest, sport)
        else:
            raise ValueError(f"how must be a CloseHow, got {how!r}")

    def abort(self, sport: int, daddr: int, dport: int, now_us: int) -> None:
        """connect() failed (ECONNREFUSED, EHOSTUNREACH, ETIMEDOUT): tcp_done() frees it."""
        self.close(sport, daddr, dport, now_us, CloseHow.CLIENT_RESET)

    def _queue_reuse(self, dest: _Dest, port: int, entered_us: int, had_ts: int) -> None:
        """tcp_twsk_unique(): when may connect() take this TIME_WAIT over?"""
        if not had_ts:
            return  # tw_ts_recent_stamp == 0: never
        if not self._reuse_all:
            if not self._reuse_loopback:
                return
            # tcp_tw_reuse=2 (79e9fed46038): only loopback addresses.
            if not (_is_loopback(dest.daddr) or _is_loopback(self.addr)):
                return
        host = self.host
        if host.tw_reuse_delay:
            deadline = host.ms_deadline(entered_us, self._reuse_delay_ms)
        else:
            # time_after32(ktime_get_seconds(), tw_ts_recent_stamp): a later second.
            deadline = host.seconds_deadline(entered_us)
        if deadline < self._next_due_us:
            self._next_due_us = deadline
        self._reu_times.append(deadline)
        self._reu_dests.append(dest)
        self._reu_ports.append(port)
        self._reu_entered.append(entered_us)

    def _free(self, dest: _Dest, port: int) -> None:
        del dest.socks[port]
        pos = port - self._low
        if not 0 <= pos < self._range:
            # Only a bound port lies outside the range (or the range changed since).
            if port in self._bind_refs:
                self._release_bound(port)
            return
        arr = dest.odd if pos & 1 else dest.even
        j = pos >> 1
        byte = arr[j]
        arr[j] = byte & _SKIP
        if byte & _SKIP and port in self._bind_refs:
            self._release_bound(port)

    def _release_bound(self, port: int) -> None:
        """One socket less on a bucket bind() created; the last one removes the bucket."""
        refs = self._bind_refs[port]
        if refs == 1:
            del self._bind_refs[port]
            self._refresh_skip(port)
        else:
            self._bind_refs[port] = refs - 1

    def _expire(self, now_us: int) -> None:
        """TIME_WAITs whose 60 s are over are destroyed (inet_twsk_kill())."""
        times = self._exp_times
        dests = self._exp_dests
        ports = self._exp_ports
        while times and times[0] <= now_us:
            expires = times.popleft()
            dest = dests.popleft()
            port = ports.popleft()
            value = dest.socks.get(port, -1)
            if value >= 0 and value >> 1 == expires - TCP_TIMEWAIT_LEN_US:
                self._tw_count -= 1
                self._free(dest, port)

    def _make_reusable(self, now_us: int) -> None:
        """TIME_WAITs that tcp_twsk_unique() now accepts stop blocking the scan."""
        times = self._reu_times
        dests = self._reu_dests
        ports = self._reu_ports
        entered = self._reu_entered
        while times and times[0] <= now_us:
            times.popleft()
            dest = dests.popleft()
            port = ports.popleft()
            entered_us = entered.popleft()
            value = dest.socks.get(port, -1)
            if value >= 0 and value >> 1 == entered_us:
                self._set_taken(dest, port, False)

    # -- introspection -----------------------------------------------------------

    def _advance(self, now_us: int) -> None:
        if now_us < self._last_us:
            raise ValueError(f"time went backwards: {now_us} < {self._last_us}")
        self._last_us = now_us
        if now_us >= self._next_due_us:
            self._housekeeping(now_us)

    def time_wait_count(self, now_us: int) -> int:
        self._advance(now_us)
        return self._tw_count

    def time_wait(self, now_us: int) -> list[tuple[int, int, int, int]]:
        """TIME_WAIT sockets at ``now_us``: (sport, daddr, dport, entered_us), oldest first."""
        self._advance(now_us)
        found = [
            (port, dest.daddr, dest.dport, value >> 1)
            for dest in self._dests.values()
            for port, value in dest.socks.items()
            if value >= 0
        ]
        found.sort(key=lambda row: (row[3], row[:3]))
        return found

    def open_sockets(self) -> list[tuple[int, int, int]]:
        """Live (not TIME_WAIT) sockets: (sport, daddr, dport)."""
        return sorted(
            (port, dest.daddr, dest.dport)
            for dest in self._dests.values()
            for port, value in dest.socks.items()
            if value < 0
        )

    def ports_in_use(self, now_us: int) -> set[int]:
        """Local ports with a live or TIME_WAIT socket at ``now_us``."""
        self._advance(now_us)
        return {port for dest in self._dests.values() for port in dest.socks}
