"""fo: weighted fail-over (net/netfilter/ipvs/ip_vs_fo.c, added in v4.2-era by Kenny Mathis).

The server without OVERLOAD with the highest weight; strict ``>`` so ties go to
the first in list order (the most recently added). Weight 0 never wins (the
running maximum starts at 0). Connection counts are not looked at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import SchedulerBase, register

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService


@register
class WeightedFailOver(SchedulerBase):
    """ip_vs_fo_scheduler."""

    name = "fo"

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        best: RealServer | None = None
        hw = 0
        for d in svc.destinations:
            if not d.overloaded and d.weight > hw:
                best = d
                hw = d.weight
        return best
