"""mh: Maglev hashing (net/netfilter/ipvs/ip_vs_mh.c, added in v4.18 by Inju Song).

Table size: primes[CONFIG_IP_VS_MH_TAB_INDEX - 8] from
251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071. The Kconfig default
index is 12, i.e. **4093** slots (Kingxukai/linux@9b44fff6 Kconfig: "range 8 17,
default 12"); pass ``tab_index=16`` for 65521.

Every add, delete and edit rebuilds the table (ip_vs_mh_dest_changed()):

* ``gcd`` of all positive ``last_weight``s (0 when none), ``rshift`` =
  max(fls(max_last_weight / gcd) - tab_index // 2, 0);
* per server, in list order: offset = hsiphash(port + addr, key1) % M,
  skip = hsiphash(port + addr, key2) % (M - 1) + 1 and
  turns = (last_weight / gcd) >> rshift, or 1 if that is 0 but last_weight != 0;
* population: repeatedly walk the list; a server with turns == 0 is skipped;
  otherwise it claims its next free preferred slot (perm += skip modulo M) ``turns``
  times in a row, until all M slots are filled. With gcd < 1 the table is emptied.

Because turns come from ``last_weight`` (the latest non-zero weight), setting a
weight to 0 keeps the table unchanged: the server keeps its slots, and lookup
rejects it (weight <= 0 or OVERLOAD) -> None, or with MH_FALLBACK the probe
sequence ``hsiphash(roffset + port + addr) % M`` for roffset = ihash, ihash+1, ...

Keys: hash1 = {2654435761, 2654435761}, hash2 = {2654446892, 2654446892}
(generate_hash_secret(); fixed, not random). hsiphash is SipHash-1-3 cut to 32 bits
on 64-bit kernels and HalfSipHash-1-3 on 32-bit ones (``word_bits``). The u32 is
hashed in little-endian memory order (x86, arm64); big-endian hosts differ.

If the service has more servers than slots the kernel's hook fails and the old
table stays (it may still name removed servers); this model does the same.
"""

from __future__ import annotations

from math import gcd
from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import TableScheduler, register
from ipvslab.kernel.schedulers._hashing import MASK32, fold_addr, hsiphash_u32
from ipvslab.kernel.schedulers.sh import hash_port
from ipvslab.kernel.service import ServiceFlags

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import IPAddress, Packet
    from ipvslab.kernel.service import VirtualService

MH_PRIMES = (251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071)
MH_DEFAULT_TAB_INDEX = 12

HASH1_KEY = (2654435761, 2654435761)
HASH2_KEY = (2654446892, 2654446892)


def mh_table_size(tab_index: int) -> int:
    """IP_VS_MH_TAB_SIZE for a CONFIG_IP_VS_MH_TAB_INDEX value (8..17)."""
    if not 8 <= tab_index <= 17:
        raise ValueError(f"CONFIG_IP_VS_MH_TAB_INDEX must be 8..17, got {tab_index}")
    return MH_PRIMES[tab_index - 8]


@register
class MaglevHashing(TableScheduler):
    """ip_vs_mh_scheduler."""

    name = "mh"

    def __init__(self, tab_index: int = MH_DEFAULT_TAB_INDEX, word_bits: int = 64) -> None:
        if word_bits not in (32, 64):
            raise ValueError(f"word_bits must be 32 or 64, got {word_bits}")
        self.size = mh_table_size(tab_index)
        self.tab_bits = tab_index // 2  # IP_VS_MH_TAB_BITS
        self.word_bits = word_bits
        self.lookup: list[RealServer | None] = [None] * self.size
        self.gcd = 0
        self.rshift = 0

    # -- hashing ------------------------------------------------------------------

    def hashkey(self, addr: IPAddress, port: int, key: tuple[int, int], offset: int) -> int:
        """ip_vs_mh_hashkey(): hsiphash of the u32 offset + port + folded address."""
        v = (offset + port + fold_addr(addr)) & MASK32
        return hsiphash_u32(v, key[0], key[1], self.word_bits)

    # -- table --------------------------------------------------------------------

    def _compute_gcd_shift(self, svc: VirtualService) -> None:
        g = 0
        top = 0
        for d in svc.destinations:
            lw = d.last_weight
            if lw > 0:
                g = gcd(lw, g) if g > 0 else lw
            top = max(top, lw)
        self.gcd = g
        if g < 1:
            self.rshift = 0
            return
        shift = (top // g).bit_length() - self.tab_bits  # fls()
        self.rshift = shift if shift >= 0 else 0

    def _reassign(self, svc: VirtualService) -> None:
        self._compute_gcd_shift(svc)
        dests = svc.destinations
        size = self.size
        if len(dests) > size:
            return  # -EINVAL from ip_vs_mh_reassign(); the old table stays
        if self.gcd < 1:
            self.lookup = [None] * size
            return
        offsets: list[int] = []
        skips: list[int] = []
        turns: list[int] = []
        for d in dests:
            offsets.append(self.hashkey(d.addr, d.port, HASH1_KEY, 0) % size)
            skips.append(self.hashkey(d.addr, d.port, HASH2_KEY, 0) % (size - 1) + 1)
            lw = d.last_weight
            t = (lw // self.gcd) >> self.rshift
            turns.append(t if t else int(lw != 0))
        perm = list(offsets)
        taken = bytearray(size)
        table: list[RealServer | None] = list(self.lookup)
        filled = 0
        count = 0
        while True:
            i = 0
            while i < len(dests):
                if turns[i] < 1:
                    i += 1
                    continue
                c = perm[i]
                while taken[c]:
                    c += skips[i]
                    if c >= size:
                        c -= size
                perm[i] = c
                taken[c] = 1
                table[c] = dests[i]
                filled += 1
                if filled == size:
                    self.lookup = table
                    return
                count += 1
                if count >= turns[i]:
                    count = 0
                    i += 1

    def upd_dest(self, svc: VirtualService, dest: RealServer) -> None:
        self._reassign(svc)  # weights shape the table

    # -- lookup -------------------------------------------------------------------

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        port = hash_port(svc, packet, ServiceFlags.MH_PORT)
        addr = packet.client_addr
        size = self.size
        ihash = self.hashkey(addr, port, HASH1_KEY, 0) % size
        dest = self.lookup[ihash]
        if dest is None:
            return None
        if dest.weight > 0 and not dest.overloaded:
            return dest
        if not svc.flags & ServiceFlags.MH_FALLBACK:
            return None
        for offset in range(size):
            roffset = (offset + ihash) % size
            dest = self.lookup[self.hashkey(addr, port, HASH1_KEY, roffset) % size]
            if dest is None:
                break
            if dest.weight > 0 and not dest.overloaded:
                return dest
        return None
