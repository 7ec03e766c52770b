"""ovf: overflow-connection (net/netfilter/ipvs/ip_vs_ovf.c, added in v4.3-era).

Among servers without OVERLOAD, with weight != 0 and with active connections
NOT above their weight (``active > weight`` skips, so ``active == weight`` still
qualifies), the one with the highest weight; ties go to the first in list order.
Inactive connections are ignored. Note this is not "first server whose active
count is below its weight": a later, heavier server wins over an earlier one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import SchedulerBase, register

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService


@register
class Overflow(SchedulerBase):
    """ip_vs_ovf_scheduler."""

    name = "ovf"

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        best: RealServer | None = None
        hw = 0
        for d in svc.destinations:
            w = d.weight
            if d.overloaded or d.active_conns > w or w == 0:
                continue
            if best is None or w > hw:
                best = d
                hw = w
        return best
