"""Connection entries (struct ip_vs_conn) and the connection table.

Entries are small slotted objects in one dict keyed by a packed integer of the
kernel's inbound lookup key (protocol, client ip:port, virtual ip:port), so a
million live entries fit in under 200 bytes each. Timers are a wheel of
one-second slots holding keys; each entry points at the one slot that holds its
timer, a later expiry moves the key on only when its slot is reached (as a
cascading timer wheel does), and keys left stale by an earlier expiry or a
removal are compacted away. Lookups check the exact expiry too, so no entry is
ever seen past its timeout.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import ClassVar, Final

from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.packet import IPAddress, Protocol

# IP_VS_CONN_F_* as the model numbers them (the kernel's bit values differ; the
# names are the kernel's). Plain ints: they sit on the per-packet path.
F_NOOUTPUT: Final = 0x01  # output-less forwarding (DR/TUN/Local): INPUT-ONLY state table
F_INACTIVE: Final = 0x02  # counted in InActConn rather than ActiveConn
F_NFCT: Final = 0x04  # the flow keeps netfilter conntrack (net.ipv4.vs.conntrack=1)
F_TEMPLATE: Final = 0x08  # a persistence template

FLAG_NAMES = {
    F_NOOUTPUT: "NOOUTPUT",
    F_INACTIVE: "INACTIVE",
    F_NFCT: "NFCT",
    F_TEMPLATE: "TEMPLATE",
}

_V6_MARK: Final = 1 << 296  # set on IPv6 keys; IPv4 keys stay below 2**104


def connection_key(
    protocol: int, client: IPAddress, client_port: int, virtual: IPAddress, virtual_port: int
) -> int:
    """The inbound lookup key of ip_vs_conn_in_get(), packed into one integer."""
    if client.version == 4:
        return connection_key_v4(protocol, int(client), client_port, int(virtual), virtual_port)
    return (
        _V6_MARK
        | ((((protocol << 128) | int(client)) << 16 | client_port) << 128 | int(virtual)) << 16
        | virtual_port
    )


def connection_key_v4(
    protocol: int, client: int, client_port: int, virtual: int, virtual_port: int
) -> int:
    """connection_key() for IPv4 addresses given as integers."""
    return ((((protocol << 32 | client) << 16 | client_port) << 32 | virtual) << 16) | virtual_port


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

    __slots__ = ("dest", "expires", "flags", "state", "timer")

    def __init__(self, dest: RealServer | None, state: int, flags: int, expires: int) -> None:
        self.dest = dest
        self.state = state
        self.flags = flags
        self.expires = expires  # ms; the kernel's cp->timer.expires
        # Where the table filed this entry's timer (see ConnectionTable); None when
        # no timer is filed (not hashed yet, or already expired).
        self.timer: TimerSlot | None = None

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


class TimerSlot:
    """One second of the timer wheel: the keys whose timers were filed in it.

    ``stale`` counts keys in ``keys`` that no longer stand for a timer here (their
    entry was removed or its timer filed elsewhere), so the slot can be compacted
    once they are the majority.
    """

    __slots__ = ("bucket", "keys", "stale")

    def __init__(self, bucket: int) -> None:
        self.bucket = bucket
        self.keys: list[int] = []
        self.stale = 0


# Entries whose timer is in the heap of the current second.
IN_HEAP: Final = TimerSlot(-1)
# A slot is compacted when at least this many of its keys, and at least half, are stale.
COMPACT_MIN_STALE: Final = 64


class ConnectionTable:
    """Live entries by packed key, with expiry by timer wheel (O(1) amortised).

    Timers sit in one-second slots of keys, and each entry knows its slot
    (``Connection.timer``): only the key in that slot stands for the entry's timer.
    The slot of the current second is turned into a heap of (expiry, key) when
    time reaches it, so entries leave at their exact millisecond, as the kernel's
    per-entry timers fire.

    Re-arming is lazy, the way a timer wheel cascades: an entry's filed slot must
    only come no later than its expiry. A later expiry (mod_timer() to a later
    time, the usual case: every packet pushes the timer on) leaves the filed key
    where it is; when its slot is reached the key moves on to the slot of the
    entry's expiry then. Only an earlier expiry files the key again, in an earlier
    slot; the old key is then stale and counted, and a slot whose keys are mostly
    stale is compacted, so stale keys never hold more than half of a slot.
    """

    __slots__ = ("_buckets", "_current", "_entries", "_heap", "compact_min_stale")

    BUCKET_MS: ClassVar[int] = 1000

    def __init__(self, compact_min_stale: int = COMPACT_MIN_STALE) -> None:
        self.compact_min_stale = compact_min_stale
        self._entries: dict[int, Connection] = {}
        self._buckets: dict[int, TimerSlot] = {}
        self._current = 0  # the second whose timers are in _heap
        self._heap: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: int) -> bool:
        return key in self._entries

    def get(self, key: int) -> Connection | None:
        return self._entries.get(key)

    @property
    def entries(self) -> dict[int, Connection]:
        """The entries by key, for the batch path (read it; change it only through
        insert and remove)."""
        return self._entries

    def items(self) -> Iterator[tuple[int, Connection]]:
        return iter(list(self._entries.items()))

    def insert(self, key: int, conn: Connection, arm: bool = True) -> None:
        """Hash a new entry (ip_vs_conn_hash()) and arm its timer.

        ``arm=False`` when the caller sets the timer right after the first packet's
        state change (``set_expires``), which saves a wheel slot per entry.
        """
        self._entries[key] = conn
        conn.timer = None
        if arm:
            self.file_timer(key, conn, conn.expires)

    def remove(self, key: int) -> Connection | None:
        conn = self._entries.pop(key, None)
        if conn is not None:
            slot = conn.timer
            if slot is not None:
                conn.timer = None
                if slot is not IN_HEAP:
                    self._went_stale(slot)
        return conn

    def set_expires(self, key: int, conn: Connection, expires: int) -> None:
        """(Re)start the timer of the hashed entry ``conn`` (mod_timer()).

        A later expiry costs nothing here: the filed timer comes first and moves
        the key on when it is reached.
        """
        old = conn.expires
        conn.expires = expires
        slot = conn.timer
        if slot is not None and (
            expires >= old or (slot is not IN_HEAP and slot.bucket <= expires // self.BUCKET_MS)
        ):
            return
        self.file_timer(key, conn, expires)

    def arm(self, key: int, expires: int) -> None:
        """Start the timer of the entry hashed under ``key`` afresh at ``expires``."""
        conn = self._entries[key]
        conn.expires = expires
        self.file_timer(key, conn, expires)

    def quiet(self, now: int) -> bool:
        """No timer can have fired by ``now`` (a cheap test before due())."""
        heap = self._heap
        return (not heap or heap[0][0] > now) and now // self.BUCKET_MS <= self._current

    def file_timer(self, key: int, conn: Connection, expires: int) -> None:
        """File the timer of ``conn`` for ``expires`` (the caller has set
        ``conn.expires``); the entry's earlier filed key, if any, goes stale."""
        bucket = expires // self.BUCKET_MS
        old = conn.timer
        if bucket <= self._current:
            heapq.heappush(self._heap, (expires, key))
            conn.timer = IN_HEAP
        else:
            slot = self._buckets.get(bucket)
            if slot is None:
                slot = self._buckets[bucket] = TimerSlot(bucket)
            slot.keys.append(key)
            conn.timer = slot
        if old is not None and old is not IN_HEAP:
            self._went_stale(old)

    def _went_stale(self, slot: TimerSlot) -> None:
        slot.stale += 1
        if slot.stale >= self.compact_min_stale and slot.stale * 2 >= len(slot.keys):
            self._compact(slot)

    def _compact(self, slot: TimerSlot) -> None:
        """Drop the stale keys of a slot (in place: entries refer to the slot)."""
        entries = self._entries
        keep = []
        for key in slot.keys:
            conn = entries.get(key)
            if conn is not None and conn.timer is slot:
                keep.append(key)
        slot.keys[:] = keep
        slot.stale = 0

    def _load(self, bucket: int) -> None:
        """Make ``bucket`` the current second: its timers go into the heap, or on to
        the slot of their entry's expiry if that has moved later."""
        self._current = bucket
        slot = self._buckets.pop(bucket, None)
        if slot is None:
            return
        entries = self._entries
        buckets = self._buckets
        heap = self._heap
        size = self.BUCKET_MS
        for key in slot.keys:
            conn = entries.get(key)
            if conn is None or conn.timer is not slot:
                continue  # stale: the entry is gone or its timer is filed elsewhere
            expires = conn.expires
            later = expires // size
            if later <= bucket:
                heap.append((expires, key))
                conn.timer = IN_HEAP
            else:
                target = buckets.get(later)
                if target is None:
                    target = buckets[later] = TimerSlot(later)
                target.keys.append(key)
                conn.timer = target
        slot.keys = []
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
                if conn is None or conn.timer is not IN_HEAP:
                    continue
                if conn.expires == expires:
                    conn.timer = None
                    yield key, conn
                elif conn.expires > expires:
                    # Pushed on since it was filed: file it again at its expiry.
                    conn.timer = None
                    self.file_timer(key, conn, conn.expires)
                # An earlier expiry has a heap item of its own, popped before this one.
            if self._current >= last:
                return
            if heap:
                return  # timers left in this second are later than now
            later = [b for b in self._buckets if b <= last] if self._buckets else []
            if not later:
                self._current = last
                return
            self._load(min(later))
