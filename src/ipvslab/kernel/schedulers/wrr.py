"""wrr: weighted round-robin (net/netfilter/ipvs/ip_vs_wrr.c).

State (struct ip_vs_wrr_mark): ``cl`` the current server or the list head, ``cw``
the current weight threshold, ``mw`` the maximum weight minus (di - 1), ``di``
the gcd of all positive weights (1 when none).

Every add, delete and edit (ip_vs_wrr_dest_changed()) puts ``cl`` back on the list
head and recomputes ``di`` and ``mw``; ``cw`` becomes ``mw`` when it is above it
or 0, otherwise (di > 1) it is rounded to a multiple of di plus 1.

Schedule walks on from ``cl`` looking for a server without OVERLOAD and with
weight >= cw. At the end of the list cw drops by di; when it reaches 0 it
restarts at mw. The "last pass" rule (cw <= di) with ``stop`` makes sure that
every server was tried against cw = 1 before giving up, so the walk always
terminates ("all destinations are overloaded"). This is the form in v3.x..6.x
mainline (the ``mw - (di - 1)`` start and last_pass/restarted logic are the same
in torvalds/linux@08cb2d03 and Kingxukai/linux@0291023e, 6.17-era).
"""

from __future__ import annotations

from math import gcd
from typing import TYPE_CHECKING

from ipvslab.kernel.schedulers import SchedulerBase, register

if TYPE_CHECKING:
    from ipvslab.kernel.dest import RealServer
    from ipvslab.kernel.packet import Packet
    from ipvslab.kernel.service import VirtualService

_HEAD = -1


def _gcd_weight(dests: list[RealServer]) -> int:
    g = 0
    for d in dests:
        if d.weight > 0:
            g = gcd(d.weight, g) if g > 0 else d.weight
    return g if g else 1


def _max_weight(dests: list[RealServer]) -> int:
    return max((d.weight for d in dests), default=0)


@register
class WeightedRoundRobin(SchedulerBase):
    """ip_vs_wrr_scheduler."""

    name = "wrr"

    def __init__(self) -> None:
        self.cl = _HEAD  # index into svc.destinations, or -1 for the list head
        self.cw = 0
        self.mw = 0
        self.di = 1

    def init_service(self, svc: VirtualService) -> None:
        self.cl = _HEAD
        self.di = _gcd_weight(svc.destinations)
        self.mw = _max_weight(svc.destinations) - (self.di - 1)
        self.cw = self.mw

    def _dest_changed(self, svc: VirtualService) -> None:
        self.cl = _HEAD
        self.di = _gcd_weight(svc.destinations)
        self.mw = _max_weight(svc.destinations) - (self.di - 1)
        if self.cw > self.mw or not self.cw:
            self.cw = self.mw
        elif self.di > 1:
            # C division of two positive ints: floor.
            self.cw = (self.cw // self.di) * self.di + 1

    def add_dest(self, svc: VirtualService, dest: RealServer) -> None:
        self._dest_changed(svc)

    def del_dest(self, svc: VirtualService, dest: RealServer) -> None:
        self._dest_changed(svc)

    def upd_dest(self, svc: VirtualService, dest: RealServer) -> None:
        self._dest_changed(svc)

    def schedule(self, svc: VirtualService, packet: Packet) -> RealServer | None:
        dests = svc.destinations
        n = len(dests)
        pos = self.cl
        if self.mw == 0:
            return None  # "no destination available"; cl stays where it was
        last = pos
        stop = None  # index at which the final traversal ends
        last_pass = False
        restarted = False
        while True:
            i = pos + 1
            while i < n:
                d = dests[i]
                if not d.overloaded and d.weight >= self.cw:
                    self.cl = i
                    return d
                if i == stop:
                    self.cl = i
                    return None  # "all destinations are overloaded"
                i += 1
            pos = _HEAD  # the walk reached the list head
            self.cw -= self.di
            if self.cw <= 0:
                self.cw = self.mw
                if last_pass or last == _HEAD:
                    self.cl = _HEAD
                    return None
                restarted = True
            last_pass = self.cw <= self.di
            if last_pass and restarted and last != _HEAD:
                stop = last
