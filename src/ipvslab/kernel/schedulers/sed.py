"""sed: shortest expected delay (net/netfilter/ipvs/ip_vs_sed.c).

Same two-stage walk as wlc (``_weighted.py``), but the cost is
``active_conns + 1`` (inactive connections are ignored): minimise
(active + 1) / weight. Ties keep the earlier server.
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
class ShortestExpectedDelay(SchedulerBase):
    """ip_vs_sed_scheduler."""

    name = "sed"

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        return least_weighted_cost(svc.destinations, _expected_delay)


def _expected_delay(dest: RealServer) -> int:
    return dest.active_conns + 1
