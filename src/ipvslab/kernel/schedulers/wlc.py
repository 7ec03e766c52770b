"""wlc: weighted least-connection (net/netfilter/ipvs/ip_vs_wlc.c).

The first server (list order) without OVERLOAD and with weight > 0 seeds the
choice; every later server without OVERLOAD replaces it when
``loh * its_weight > its_overhead * least_weight`` (64-bit products since the
__s64 casts; Python ints do not overflow). Later servers are not checked for
weight 0, but one can never win: the left side is then 0 and the right >= 0.
Ties keep the earlier server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import SchedulerBase, register

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService


@register
class WeightedLeastConnection(SchedulerBase):
    """ip_vs_wlc_scheduler."""

    name = "wlc"

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        dests = svc.destinations
        n = len(dests)
        i = 0
        while i < n:
            d = dests[i]
            if not d.overloaded and d.weight > 0:
                break
            i += 1
        else:
            return None
        least = dests[i]
        loh = least.overhead
        for d in dests[i + 1 :]:
            if d.overloaded:
                continue
            doh = d.overhead
            if loh * d.weight > doh * least.weight:
                least = d
                loh = doh
        return least
