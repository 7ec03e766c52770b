"""sh: source hashing (net/netfilter/ipvs/ip_vs_sh.c).

Table: 256 buckets (CONFIG_IP_VS_SH_TAB_BITS = 8) filled by walking
svc.destinations round-robin, each server taking ``weight`` consecutive buckets;
a weight-0 server still takes one (``++d_count >= weight`` is true at once).
Rebuilt on every add, delete and edit (ip_vs_sh_dest_changed()), so setting
weight 0 reshuffles the whole table.

Key: the client address (iph->saddr; the daddr for "inverse" packets of
ip_vs_new_conn_out(), not modelled), plus the client port when the service has
SH_PORT (sh-port) and the protocol is TCP, UDP or SCTP. Bucket index:
``(offset + hash_32(port + ntohl(addr_fold), 8)) & 255``.

Lookup (is_unavailable(): weight <= 0 or OVERLOAD):
* without SH_FALLBACK: the bucket's server, or None when it is unavailable;
* with SH_FALLBACK: the bucket's server if available, else probe
  ``roffset = (k + ihash) % 256`` for k = 0..255, index = (roffset + hash) & 255,
  which starts at 2*ihash (not ihash+1), returning the first available server.

Era: sh-fallback/sh-port and the hash_32 key appear in v4.x; older kernels used
``(ntohl(addr) * 2654435761) & 255`` and also tested AVAILABLE (stored copy
torvalds/linux@033d777f). Exact versions UNVERIFIED.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.packet import Protocol
from ipvslab.kernel.schedulers import TableScheduler, register
from ipvslab.kernel.schedulers._hashing import fold_addr, hash_32
from ipvslab.kernel.service import ServiceFlags

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import IPAddress, Packet
    from ipvslab.kernel.service import VirtualService

SH_TAB_BITS = 8
SH_TAB_SIZE = 1 << SH_TAB_BITS
SH_TAB_MASK = SH_TAB_SIZE - 1

PORT_PROTOCOLS = frozenset({Protocol.TCP, Protocol.UDP, Protocol.SCTP})


def sh_hashkey(addr: IPAddress, port: int, offset: int) -> int:
    """ip_vs_sh_hashkey()."""
    return (offset + hash_32(port + fold_addr(addr), SH_TAB_BITS)) & SH_TAB_MASK


def _unavailable(dest: RealServer) -> bool:
    return dest.weight <= 0 or dest.overloaded


def hash_port(svc: VirtualService, packet: Packet, port_flag: int) -> int:
    """The source port when the service asks for it (ip_vs_sh_get_port()), else 0."""
    if svc.flags & port_flag and packet.protocol in PORT_PROTOCOLS:
        return packet.client_port
    return 0


@register
class SourceHashing(TableScheduler):
    """ip_vs_sh_scheduler."""

    name = "sh"

    def __init__(self) -> None:
        self.buckets: list[RealServer | None] = [None] * SH_TAB_SIZE

    def _reassign(self, svc: VirtualService) -> None:
        dests = svc.destinations
        table: list[RealServer | None] = []
        if not dests:
            self.buckets = [None] * SH_TAB_SIZE
            return
        i = 0
        count = 0
        for _ in range(SH_TAB_SIZE):
            dest = dests[i]
            table.append(dest)
            count += 1
            if count >= dest.weight:
                i = (i + 1) % len(dests)
                count = 0
        self.buckets = table

    def upd_dest(self, svc: VirtualService, dest: RealServer) -> None:
        self._reassign(svc)  # weights shape the table

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        port = hash_port(svc, packet, ServiceFlags.SH_PORT)
        addr = packet.client_addr
        ihash = sh_hashkey(addr, port, 0)
        dest = self.buckets[ihash]
        if dest is None:
            return None
        if not _unavailable(dest):
            return dest
        if not svc.flags & ServiceFlags.SH_FALLBACK:
            return None
        for offset in range(SH_TAB_SIZE):
            roffset = (offset + ihash) % SH_TAB_SIZE
            dest = self.buckets[sh_hashkey(addr, port, roffset)]
            if dest is None:
                break
            if not _unavailable(dest):
                return dest
        return None
