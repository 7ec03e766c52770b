"""rr: round-robin (net/netfilter/ipvs/ip_vs_rr.c).

Kernel state is one cursor, ``svc->sched_data``: a list_head pointer that starts
at the list head itself (ip_vs_rr_init_svc()), so the first pick is the first
entry of ``svc->destinations``, i.e. the server added last.

Schedule (current form since the RCU conversion, v3.10-era): walk from the entry
after the cursor to the end of the list; if the cursor was a real server, do a
second pass from the start of the list up to and including the cursor. The first
server with weight > 0 and no OVERLOAD flag wins and becomes the cursor. Weight
is only a zero / non-zero switch.

del_dest (ip_vs_rr_del_dest()): when the cursor's own server is unlinked, the
cursor moves to the entry before it (``p->next->prev``), which may be the head;
so the server that followed the removed one is picked next.

add_dest: the kernel has no hook (the cursor is a pointer and does not move).
Here the hooks only keep a cached list index in step with that pointer, so that
schedule() needs no O(n) search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import SchedulerBase, register

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService


def _index_of(dests: list[RealServer], dest: RealServer) -> int:
    for i, d in enumerate(dests):
        if d is dest:
            return i
    return -1


@register
class RoundRobin(SchedulerBase):
    """ip_vs_rr_scheduler."""

    name = "rr"

    __slots__ = ("_cursor", "_index")

    def __init__(self) -> None:
        # The cursor: None stands for the list head (&svc->destinations).
        self._cursor: RealServer | None = None
        # Where the cursor sits in svc.destinations; -1 for the head.
        self._index = -1

    def init_service(self, svc: VirtualService) -> None:
        self._cursor = None
        self._index = -1

    def add_dest(self, svc: VirtualService, dest: RealServer) -> None:
        # No kernel hook: the cursor stays on the same server; only its index moves.
        if self._cursor is not None:
            self._index = _index_of(svc.destinations, self._cursor)

    def del_dest(self, svc: VirtualService, dest: RealServer) -> None:
        if self._cursor is dest:
            # The entry before the removed one; its index did not change.
            before = self._index - 1
            if before >= 0:
                self._cursor = svc.destinations[before]
                self._index = before
            else:
                self._cursor = None
                self._index = -1
        elif self._cursor is not None:
            self._index = _index_of(svc.destinations, self._cursor)

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        dests = svc.destinations
        idx = self._index
        cursor = self._cursor
        if cursor is not None and (idx >= len(dests) or dests[idx] is not cursor):
            # The list changed behind the hooks' back: find the cursor again, and
            # if it is gone behave as from the head (one pass, nothing loops).
            idx = _index_of(dests, cursor)
            if idx < 0:
                cursor = None
        n = len(dests)
        i = idx + 1
        while i < n:
            d = dests[i]
            if d.weight > 0 and not d.overloaded:
                self._cursor = d
                self._index = i
                return d
            i += 1
        if cursor is not None:
            # Second pass: from the first entry up to and including the cursor.
            for i in range(idx + 1):
                d = dests[i]
                if d.weight > 0 and not d.overloaded:
                    self._cursor = d
                    self._index = i
                    return d
        self._cursor = cursor
        self._index = idx if cursor is not None else -1
        return None
