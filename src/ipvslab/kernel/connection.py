"""Connection entries (struct ip_vs_conn) and the connection table.

Entries are small slotted objects in one dict keyed by a packed integer of the
kernel's inbound lookup key (protocol, client ip:port, virtual ip:port), so a
million live entries fit in under 200 bytes each. Timers are a wheel of
one-second buckets holding keys; a bucket is read when time passes it, and a key
whose entry has been refreshed since is skipped (lazy deletion). Lookups check
the exact expiry too, so no entry is ever seen past its timeout.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.packet import IPAddress, Protocol

# IP_VS_CONN_F_* as the model numbers them (the kernel's bit values differ; the
# names are the kernel's). Plain ints: they sit on the per-packet path.
F_NOOUTPUT = 0x01  # output-less forwarding (DR/TUN/Local): INPUT-ONLY state table
F_INACTIVE = 0x02  # counted in InActConn rather than ActiveConn
F_NFCT = 0x04  # the flow keeps netfilter conntrack (net.ipv4.vs.conntrack=1)
F_TEMPLATE = 0x08  # a persistence template

FLAG_NAMES = {
    F_NOOUTPUT: "NOOUTPUT",
    F_INACTIVE: "INACTIVE",
    F_NFCT: "NFCT",
    F_TEMPLATE: "TEMPLATE",
}

_V6_MARK = 1 << 296  # set on IPv6 keys; IPv4 keys stay below 2**104


def connection_key(
    protocol: int, client: IPAddress, client_port: int, virtual: IPAddress, virtual_port: int
) -> int:
    """The inbound lookup key of ip_vs_conn_in_get(), packed into one integer."""
    if client.version == 4:
        return (
            ((((protocol << 32) | int(client)) << 16 | client_port) << 32 | int(virtual)) << 16
        ) | virtual_port
    return (
        _V6_MARK
        | ((((protocol << 128) | int(client)) << 16 | client_port) << 128 | int(virtual)) << 16
        | virtual_port
    )


def split_key(key: int) -> tuple[Protocol, IPAddress, int, IPAddress, int]:
    """The fields of a packed key: protocol, client, client port, virtual, virtual port."""
    import ipaddress

    vport = key & 0xFFFF
    if key & _V6_MARK:
        key &= _V6_MARK - 1
        vaddr: IPAddress = ipaddress.IPv6Address((key >> 16) & ((1 << 128) - 1))
        cport = (key >> 144) & 0xFFFF
        caddr: IPAddress = ipaddress.IPv6Address((key >> 160) & ((1 << 128) - 1))
        protocol = key >> 288
    else:
        vaddr = ipaddress.IPv4Address((key >> 16) & 0xFFFFFFFF)
        cport = (key >> 48) & 0xFFFF
        caddr = ipaddress.IPv4Address((key >> 64) & 0xFFFFFFFF)
        protocol = key >> 96
    return Protocol(protocol), caddr, cport, vaddr, vport


class Connection:
    """One connection entry. Its key lives in the table; its timeout follows its state."""

    __slots__ = ("dest", "expires", "flags", "state")

    def __init__(self, dest: RealServer | None, state: int, flags: int, expires: int) -> None:
        self.dest = dest
        self.state = state
        self.flags = flags
        self.expires = expires  # ms; the kernel's cp->timer.expires

    control: Template | None = None  # only ControlledConnection has a real one
    n_control = 0  # only templates control other entries here (no FTP)

    def __repr__(self) -> str:
        kind = type(self).__name__
        return f"{kind}(dest={self.dest!r}, state={self.state}, flags={self.flags:#x})"


class ControlledConnection(Connection):
    """An entry created under a persistence template (ip_vs_control_add())."""

    __slots__ = ("control",)

    def __init__(
        self, dest: RealServer | None, state: int, flags: int, expires: int, control: Template
    ) -> None:
        super().__init__(dest, state, flags, expires)
        self.control = control


class Template(Connection):
    """A persistence template: client network -> real server, for svc timeout seconds.

    Templates carry their own timeout: svc->timeout when created, 60 s once their
    timer has fired with controlled entries left (expire_later in ip_vs_conn_expire()).
    """

    __slots__ = ("assured", "key", "n_control", "timeout")

    def __init__(self, key: int, dest: RealServer, expires: int, timeout: int) -> None:
        super().__init__(dest, 0, F_TEMPLATE, expires)
        self.key = key
        self.timeout = timeout
        self.n_control = 0
        self.assured = False


class ConnectionTable:
    """Live entries by packed key, with expiry by timer wheel (O(1) amortised).

    Future timers sit in one-second buckets of keys. The bucket of the current
    second is turned into a heap of (expiry, key) when time reaches it, so entries
    leave at their exact millisecond, as the kernel's per-entry timers fire.
    """

    __slots__ = ("_buckets", "_current", "_entries", "_heap")

    BUCKET_MS = 1000

    def __init__(self) -> None:
        self._entries: dict[int, Connection] = {}
        self._buckets: dict[int, list[int]] = {}
        self._current = 0  # the second whose timers are in _heap
        self._heap: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: int) -> bool:
        return key in self._entries

    def get(self, key: int) -> Connection | None:
        return self._entries.get(key)

    def items(self) -> Iterator[tuple[int, Connection]]:
        return iter(list(self._entries.items()))

    def insert(self, key: int, conn: Connection, arm: bool = True) -> None:
        """Hash a new entry (ip_vs_conn_hash()) and arm its timer.

        ``arm=False`` when the caller arms it right after the first packet's state
        change, which saves a wheel slot per entry.
        """
        self._entries[key] = conn
        if arm:
            self.arm(key, conn.expires)

    def remove(self, key: int) -> Connection | None:
        return self._entries.pop(key, None)

    def arm(self, key: int, expires: int) -> None:
        """(Re)start a timer (mod_timer()); earlier arms of the key become stale."""
        bucket = expires // self.BUCKET_MS
        if bucket <= self._current:
            heapq.heappush(self._heap, (expires, key))
            return
        keys = self._buckets.get(bucket)
        if keys is None:
            self._buckets[bucket] = [key]
        else:
            keys.append(key)

    def _load(self, bucket: int) -> None:
        """Make ``bucket`` the current second: its live timers go into the heap."""
        self._current = bucket
        keys = self._buckets.pop(bucket, None)
        if not keys:
            return
        entries = self._entries
        heap = self._heap
        for key in keys:
            conn = entries.get(key)
            if conn is not None and conn.expires // self.BUCKET_MS == bucket:
                heap.append((conn.expires, key))
        heapq.heapify(heap)

    def due(self, now: int) -> Iterator[tuple[int, Connection]]:
        """Entries whose timers have fired by ``now``, in firing order.

        The caller expires (removes or re-arms) each one before asking for the next.
        """
        last = now // self.BUCKET_MS
        entries = self._entries
        while True:
            heap = self._heap
            while heap and heap[0][0] <= now:
                expires, key = heapq.heappop(heap)
                conn = entries.get(key)
                if conn is not None and conn.expires == expires:
                    yield key, conn
            if self._current >= last:
                return
            if heap:
                return  # timers left in this second are later than now
            later = [b for b in self._buckets if b <= last] if self._buckets else []
            if not later:
                self._current = last
                return
            self._load(min(later))
