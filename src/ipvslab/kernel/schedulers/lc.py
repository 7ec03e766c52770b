"""lc: least-connection (net/netfilter/ipvs/ip_vs_lc.c).

Skips servers with OVERLOAD or weight == 0, picks the smallest
ip_vs_dest_conn_overhead() = (active << 8) + inactive. Strict ``<``: ties keep the
earlier server in list order (the most recently added one). Weight has no other
effect. (The source comment still says "<<5"; the code uses the <<8 helper.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import SchedulerBase, register

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService


@register
class LeastConnection(SchedulerBase):
    """ip_vs_lc_scheduler."""

    name = "lc"

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        least: RealServer | None = None
        loh = 0
        for d in svc.destinations:
            if d.overloaded or d.weight == 0:
                continue
            doh = d.overhead
            if least is None or doh < loh:
                least = d
                loh = doh
        return least
