"""The two-stage walk that wlc and sed share (ip_vs_wlc.c, ip_vs_sed.c).

Both kernel files carry their own copy of this loop; only the cost differs.
The first server (list order) without OVERLOAD and with weight > 0 seeds the
choice; every later server without OVERLOAD replaces it when
``least_cost * its_weight > its_cost * least_weight`` (64-bit products since the
__s64 casts; Python ints do not overflow). Later servers are not checked for
weight 0, but one can never win: the left side is then 0 and the right >= 0.
Ties keep the earlier server.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer


def least_weighted_cost(
    dests: Sequence[RealServer], cost: Callable[[RealServer], int]
) -> RealServer | None:
    """The server with the smallest cost / weight, as wlc and sed pick it."""
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
    least_cost = cost(least)
    for d in dests[i + 1 :]:
        if d.overloaded:
            continue
        d_cost = cost(d)
        if least_cost * d.weight > d_cost * least.weight:
            least = d
            least_cost = d_cost
    return least
