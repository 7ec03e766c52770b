"""wlc: weighted least-connection (net/netfilter/ipvs/ip_vs_wlc.c).

Minimises ip_vs_dest_conn_overhead() / weight, with overhead =
(active << 8) + inactive, by the walk shared with sed (``_weighted.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import SchedulerBase, register
from ipvslab.kernel.schedulers._weighted import least_weighted_cost

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService


@register
class WeightedLeastConnection(SchedulerBase):
    """ip_vs_wlc_scheduler."""

    name = "wlc"

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        return least_weighted_cost(svc.destinations, lambda d: d.overhead)
