"""dh: destination hashing (net/netfilter/ipvs/ip_vs_dh.c).

A 256-bucket table (CONFIG_IP_VS_DH_TAB_BITS = 8) filled by walking
svc.destinations round-robin, ONE bucket per server whatever its weight
(ip_vs_dh_reassign()). Rebuilt on add and delete; there is no upd_dest hook, and
none is needed since weights do not shape the table.

Lookup key: the packet's destination address (iph->daddr, the virtual address
for a normal service), hashed with hash_32(ntohl(addr_fold), 8). The bucket's
server is returned unless it is not AVAILABLE, has weight <= 0 or has OVERLOAD:
then "no destination available" (dh has no fallback).

Era: before the switch to hash_32 the index was ``(ntohl(addr) * 2654435761) &
255`` (low bits of the product; torvalds/linux@14d5e834 stored copy); the
version that made the change is UNVERIFIED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import TableScheduler, register
from ipvslab.kernel.schedulers._hashing import fold_addr, hash_32

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import IPAddress, Packet
    from ipvslab.kernel.service import VirtualService

DH_TAB_BITS = 8
DH_TAB_SIZE = 1 << DH_TAB_BITS


def dh_hashkey(addr: IPAddress) -> int:
    """ip_vs_dh_hashkey()."""
    return hash_32(fold_addr(addr), DH_TAB_BITS)


@register
class DestinationHashing(TableScheduler):
    """ip_vs_dh_scheduler."""

    name = "dh"

    def __init__(self) -> None:
        self.buckets: list[RealServer | None] = [None] * DH_TAB_SIZE

    def _reassign(self, svc: VirtualService) -> None:
        dests = svc.destinations
        if not dests:
            self.buckets = [None] * DH_TAB_SIZE
            return
        n = len(dests)
        self.buckets = [dests[i % n] for i in range(DH_TAB_SIZE)]

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        dest = self.buckets[dh_hashkey(packet.virtual_addr)]
        if dest is None or not dest.available or dest.weight <= 0 or dest.overloaded:
            return None
        return dest
