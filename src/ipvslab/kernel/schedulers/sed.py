"""sed: shortest expected delay (net/netfilter/ipvs/ip_vs_sed.c).

Same two-stage walk as wlc, but the cost is ``active_conns + 1`` (inactive
connections are ignored): minimise (active + 1) / weight. Seeded by the first
server without OVERLOAD and with weight > 0; later weight-0 servers cannot win
(0 > positive is false). Ties keep the earlier server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import SchedulerBase, register

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService


@register
class ShortestExpectedDelay(SchedulerBase):
    """ip_vs_sed_scheduler."""

    name = "sed"

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
        loh = least.active_conns + 1
        for d in dests[i + 1 :]:
            if d.overloaded:
                continue
            doh = d.active_conns + 1
            if loh * d.weight > doh * least.weight:
                least = d
                loh = doh
        return least
