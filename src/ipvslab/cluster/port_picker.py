"""The host-wide half of connect()'s ephemeral port choice (``__inet_hash_connect()``).

Source: ../shared/reference/client-tcp-ports.md §1 (eras, pseudo-code §5.5).

What one kernel shares across ALL its network namespaces lives here: the boot
secret of ``secure_ipv4_port_ephemeral()``, the old global ``hint`` (<= v5.11) or
``table_perturb`` (>= v5.12), and the random source behind ``prandom_u32()`` /
``get_random_u32_below()``. Every pod on a node therefore moves the same counter
(§1.4 point 4): on <= v5.11 each connect() anywhere on the node advances every
other pod's sequence.

The per-namespace scan (which ports are free for a destination) is in
``client_tcp.ClientNetns``; it reads ``HostPorts.hint`` / ``HostPorts.perturb``
directly because it runs once per simulated connection.

Pure: no clock (the caller passes microseconds), no randomness but the
``random.Random`` built from the seed. SipHash is stood for by a keyed
splitmix64-style mixer: same inputs, same port sequence, on every platform.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from enum import IntEnum

from ipvslab.kernel.schedulers._hashing import MASK32, MASK64, hash_32

KernelVersion = tuple[int, int, int]


class PortSelection(IntEnum):
    """How ``__inet_hash_connect()`` picks the source port, era by era (§1.3)."""

    # <= v4.1: one `static u32 hint` for the whole kernel; scan all ports with step 1
    # starting one past `hint + port_offset`; `hint += i` on success.
    GLOBAL_HINT = 1
    # v4.2-v4.5, 07f4c90062f8 "tcp/dccp: try to not exhaust ip_local_port_range in
    # connect()": the start is made even, still step 1; `hint += (i + 2) & ~1`.
    GLOBAL_HINT_EVEN_START = 2
    # v4.6-v5.11, 1580ab63fc9a "tcp/dccp: better use of ephemeral ports in connect()":
    # start `(hint + port_offset) % remaining`, made even, step 2 over the ports of
    # low's parity, then the other parity; `hint += i + 2`.
    GLOBAL_HINT_PARITY = 3
    # v5.12-v5.17, 190cc82489f4 "tcp: change source port randomizarion at connect()
    # time": 256 counters `table_perturb[hash_32(port_offset, 8)]`; c579bd1b4021 "tcp:
    # add some entropy in __inet_hash_connect()": one extra step of 2 in 1/16 of the
    # connects whose first port was free.
    PERTURB_TABLE_256 = 4
    # v5.18+ (2022 series): 64-bit port_offset re-salted every 10 s (4dfa9b438ee3),
    # low 16 bits index a 65536-slot table (4c2c8f03a5ab, e8161345ddbb), high 32 bits
    # offset it (9e9b70ae923b), random increments `i = max(i, 2 * U{0..7})`
    # (ca7af0402550).
    PERTURB_TABLE_65536 = 5


ERA_COMMITS: dict[PortSelection, str] = {
    PortSelection.GLOBAL_HINT: "<= v4.1 (2.6.x code): global hint, step 1",
    PortSelection.GLOBAL_HINT_EVEN_START: "07f4c90062f8 (v4.2): even start, step 1",
    PortSelection.GLOBAL_HINT_PARITY: "1580ab63fc9a (v4.6): global hint, step 2, other parity",
    PortSelection.PERTURB_TABLE_256: "190cc82489f4 + c579bd1b4021 (v5.12): 256-slot table",
    PortSelection.PERTURB_TABLE_65536: (
        "2022 series (v5.18): 4dfa9b438ee3 re-salt 10 s, ca7af0402550 random increments,"
        " 4c2c8f03a5ab 65536 slots"
    ),
}


@dataclass(frozen=True, slots=True)
class StableBackport:
    """A stable series that took the whole 2022 series (190cc82489f4 included)."""

    series: tuple[int, int]
    sublevel: int
    evidence: str


# The 2022 series reached older stable trees. 4.19 and 5.10: the review mails of
# 4.19.249 and 5.10.125 list it (reference §1.3). 5.4, 5.15 and 5.17: the
# linux-stable-rc queue logs of 2022-05-18 list it; the first sublevel is ASSUMED to
# be the next release after that queue. 4.9 and 4.14 are left on their mainline era
# (the 4.9 list examined lacks the re-salt; reference §6): force the era if a vendor
# kernel is known to differ (RHEL 8's 4.18, for one, carries its own backports).
STABLE_2022_SERIES: tuple[StableBackport, ...] = (
    StableBackport((4, 19), 249, "4.19.249 review mail lists the 2022 series"),
    StableBackport((5, 4), 197, "ASSUMED: 5.4 backport review 2022-06-03 (5.4.197-rc1)"),
    StableBackport((5, 10), 125, "5.10.125 review mail lists the 2022 series"),
    StableBackport((5, 15), 42, "ASSUMED: queue/5.15 log 2022-05-18, next release"),
    StableBackport((5, 17), 10, "ASSUMED: queue/5.17 log 2022-05-18, next release"),
)


def port_selection_for(kernel_version: KernelVersion) -> PortSelection:
    """The era of a kernel (major, minor, sublevel), stable backports included.

    The sublevel must be the upstream one: distribution strings such as Ubuntu's
    5.4.0-150 hide the stable updates they carry; force the era for those.
    """
    if len(kernel_version) != 3 or any(part < 0 for part in kernel_version):
        raise ValueError(f"kernel version must be (major, minor, sublevel), got {kernel_version}")
    for backport in STABLE_2022_SERIES:
        if kernel_version[:2] == backport.series and kernel_version[2] >= backport.sublevel:
            return PortSelection.PERTURB_TABLE_65536
    if kernel_version >= (5, 18, 0):
        return PortSelection.PERTURB_TABLE_65536
    if kernel_version >= (5, 12, 0):
        return PortSelection.PERTURB_TABLE_256
    if kernel_version >= (4, 6, 0):
        return PortSelection.GLOBAL_HINT_PARITY
    if kernel_version >= (4, 2, 0):
        return PortSelection.GLOBAL_HINT_EVEN_START
    return PortSelection.GLOBAL_HINT


def era_caveat(kernel_version: KernelVersion) -> str | None:
    """A warning when the version alone may pick the wrong era, else None.

    Distribution builds numbered ``x.y.0-N`` (Ubuntu, openEuler) import stable
    updates that their version does not show; on a series whose stable tree took
    the 2022 series, sublevel 0 may hide it.
    """
    era = port_selection_for(kernel_version)
    if era == PortSelection.PERTURB_TABLE_65536:
        return None
    for backport in STABLE_2022_SERIES:
        if kernel_version[:2] == backport.series and kernel_version[2] == 0:
            return (
                f"kernel {kernel_version[0]}.{kernel_version[1]}.0 is taken as {era.name}; a"
                f" distribution build of it that imported {backport.series[0]}."
                f"{backport.series[1]}.{backport.sublevel}+ stable updates has the 2022 port"
                " selection (PERTURB_TABLE_65536): force the era if so"
            )
    return None


# include/linux/jiffies.h: jiffies start 5 minutes before wrapping 32 bits.
INITIAL_JIFFIES_SECONDS = 300
# 4dfa9b438ee3: EPHEMERAL_PORT_SHUFFLE_PERIOD = 10 * HZ.
SHUFFLE_PERIOD_SECONDS = 10
MICROS = 1_000_000

_GOLDEN64 = 0x9E3779B97F4A7C15


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a fast bijective 64-bit mixer."""
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


class HostPorts:
    """What one kernel shares across its network namespaces for connect()'s port choice.

    ``kernel_version`` picks the era (``port_selection_for``) unless ``selection``
    forces one (vendor kernels with backports). ``seed`` or ``rng`` is the only
    source of randomness: the boot secret, the initial ``table_perturb`` values
    (``net_get_random_once()``), the 1/16 and ``get_random_u32_below(8)`` draws,
    and the uptime at simulated time 0 unless ``uptime_us`` is given (it sets where
    the 10 s re-salt windows and the whole seconds of ``ktime_get_seconds()`` fall).
    """

    __slots__ = (
        "era",
        "hint",
        "hz",
        "k0",
        "k1",
        "kernel_version",
        "perturb",
        "rng",
        "selection",
        "tw_reuse_delay",
        "uptime_us",
    )

    era: int
    hint: int
    hz: int
    k0: int
    k1: int
    kernel_version: KernelVersion
    perturb: list[int]
    rng: random.Random
    selection: PortSelection
    tw_reuse_delay: bool
    uptime_us: int

    def __init__(
        self,
        kernel_version: KernelVersion = (6, 1, 0),
        *,
        seed: int | None = None,
        rng: random.Random | None = None,
        selection: PortSelection | None = None,
        uptime_us: int | None = None,
        hz: int = 250,
    ) -> None:
        if rng is None:
            if seed is None:
                raise ValueError("HostPorts needs a seed or a random.Random (determinism)")
            rng = random.Random(seed)
        if hz not in (100, 250, 300, 1000):
            raise ValueError(f"hz must be one of 100, 250, 300, 1000 (CONFIG_HZ), got {hz}")
        self.kernel_version = kernel_version
        self.selection = (
            port_selection_for(kernel_version) if selection is None else PortSelection(selection)
        )
        self.era = int(self.selection)
        self.rng = rng
        self.hz = hz
        self.k0 = rng.getrandbits(64)
        self.k1 = rng.getrandbits(64)
        if uptime_us is None:
            uptime_us = rng.randrange(3600 * MICROS, 30 * 86400 * MICROS)
        if uptime_us < 0:
            raise ValueError(f"uptime_us must be >= 0, got {uptime_us}")
        self.uptime_us = uptime_us
        # <= v5.11: `static u32 hint;` starts at zero.
        self.hint = 0
        # v5.12+: table_perturb filled once with random bytes (net_get_random_once /
        # get_random_sleepable_once); 256 slots (190cc82489f4), 65536 (4c2c8f03a5ab).
        slots = {4: 256, 5: 65536}.get(self.era, 0)
        self.perturb = list(struct.unpack(f"<{slots}I", rng.randbytes(4 * slots)))
        # tcp_tw_reuse_delay (Jakub Sitnicki): ms since entering TIME_WAIT instead of the
        # whole-second check; release about v6.14, UNVERIFIED (reference §2.2).
        self.tw_reuse_delay = kernel_version >= (6, 14, 0)

    # -- secure_ipv4_port_ephemeral() -------------------------------------------------

    def port_offset(self, saddr: int, daddr: int, dport: int, salt: int) -> int:
        """The 64-bit keyed hash of (saddr, daddr, dport, salt), standing for siphash.

        Before the 2022 series the kernel used 32 bits and no salt (05909cd9a0c8);
        callers take ``& MASK32`` and pass ``salt=0`` there.
        """
        x = _mix64(self.k0 ^ (saddr & MASK64) ^ ((saddr >> 64) & MASK64))
        x = _mix64(x ^ (daddr & MASK64) ^ ((daddr >> 64) & MASK64) ^ _GOLDEN64)
        x = _mix64(x ^ ((dport << 32) | (salt & MASK32)) ^ self.k1)
        return x

    def salt_window(self, now_us: int) -> tuple[int, int, int]:
        """The re-salt value at ``now_us`` and the [start, end) µs of its window.

        4dfa9b438ee3: the salt is ``jiffies / (10 * HZ)``, passed as a u32; jiffies
        started at INITIAL_JIFFIES (-300 s as a u32) at boot.
        """
        hz = self.hz
        initial = (1 << 32) - INITIAL_JIFFIES_SECONDS * hz
        period = SHUFFLE_PERIOD_SECONDS * hz
        jiffies = initial + (self.uptime_us + now_us) * hz // MICROS
        window = jiffies // period
        # First µs (of simulated time) whose jiffies reach a given value j.
        start = -((-(window * period - initial) * MICROS) // hz) - self.uptime_us
        end = -((-((window + 1) * period - initial) * MICROS) // hz) - self.uptime_us
        return window & MASK32, start, end

    def seconds_deadline(self, now_us: int) -> int:
        """First µs at which ``ktime_get_seconds()`` is past its value at ``now_us``."""
        total = self.uptime_us + now_us
        return (total // MICROS + 1) * MICROS - self.uptime_us

    def ms_deadline(self, now_us: int, delay_ms: int) -> int:
        """First µs at which ``tcp_clock_ms()`` is after (stamp at ``now_us``) + delay."""
        total = self.uptime_us + now_us
        return (total // 1000 + delay_ms + 1) * 1000 - self.uptime_us

    def slot_and_offset(self, port_offset: int) -> tuple[int, int]:
        """(counter index, value added to the counter) for this era; index -1 = hint."""
        if self.era == PortSelection.PERTURB_TABLE_65536:
            # e8161345ddbb / 9e9b70ae923b: low bits index, high 32 bits offset.
            return port_offset & 0xFFFF, port_offset >> 32
        po32 = port_offset & MASK32
        if self.era == PortSelection.PERTURB_TABLE_256:
            # 190cc82489f4: index = hash_32(port_offset, 8), offset by the same u32.
            return hash_32(po32, 8), po32
        return -1, po32
