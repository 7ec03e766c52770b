"""nq: never queue (net/netfilter/ipvs/ip_vs_nq.c).

One walk in list order over servers without OVERLOAD and with weight != 0. The
first one with no active connections is returned at once (idle shortcut, even if
a later server has a far larger weight). Otherwise it behaves as sed: minimise
(active + 1) / weight, ties keep the earlier server.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import SchedulerBase, register

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService


@register
class NeverQueue(SchedulerBase):
    """ip_vs_nq_scheduler."""

    name = "nq"

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        least: RealServer | None = None
        loh = 0
        for d in svc.destinations:
            if d.overloaded or d.weight == 0:
                continue
            if d.active_conns == 0:
                return d
            doh = d.active_conns + 1
            if least is None or loh * d.weight > doh * least.weight:
                least = d
                loh = doh
        return least
