"""Assembling services and their real-server rows, shared by /proc/net/ip_vs and ipvsadm."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace

from ipvslab.doctor.parsers._common import IssueLog, shown, signed_dec_int
from ipvslab.doctor.records import (
    Family,
    ForwardMethod,
    IPAddress,
    IpvsTable,
    RealServerEntry,
    ServiceEntry,
)

VERSION_RE = re.compile(r"^IP Virtual Server version (\d+\.\d+\.\d+) \(size=(\d+)\)\s*$")
FORWARD_BY_NAME = {m.value: m for m in ForwardMethod}
SERVICE_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})


class TableBuilder:
    """Collects a service line and the ``->`` lines under it."""

    def __init__(self, infer_fwmark_family: bool = False) -> None:
        self.infer_fwmark_family = infer_fwmark_family
        self.version: str | None = None
        self.size: int | None = None
        self.services: list[ServiceEntry] = []
        self._current: ServiceEntry | None = None
        self._dests: list[RealServerEntry] = []
        self._incomplete = False
        self._unreadable: list[tuple[IPAddress, int]] = []
        self.unreadable_services = 0

    @property
    def has_service(self) -> bool:
        return self._current is not None

    def start(self, service: ServiceEntry | None) -> None:
        """Closes the current service; ``None`` starts an unusable (skipped) one."""
        self._close()
        self._current = service
        if service is None:
            self.unreadable_services += 1

    def add_dest(self, dest: RealServerEntry) -> None:
        self._dests.append(dest)

    def mark_unreadable(self, address: tuple[IPAddress, int] | None) -> None:
        """A real-server line of the current service could not be read; ``address`` is
        its server when at least that could be read."""
        if address is None:
            self._incomplete = True
        else:
            self._unreadable.append(address)

    def _close(self) -> None:
        svc = self._current
        if svc is not None:
            dests = tuple(self._dests)
            if (
                self.infer_fwmark_family
                and svc.fwmark is not None
                and any(d.address.version == 6 for d in dests)
            ):
                # /proc/net/ip_vs does not print the family of a fwmark service;
                # its real servers show it.
                svc = replace(svc, family=Family.IPV6)
            self.services.append(
                replace(
                    svc,
                    destinations=dests,
                    unreadable_dests=tuple(self._unreadable),
                    incomplete=self._incomplete,
                )
            )
        self._current = None
        self._dests = []
        self._incomplete = False
        self._unreadable = []

    def table(self) -> IpvsTable:
        self._close()
        return IpvsTable(self.version, self.size, tuple(self.services), self.unreadable_services)


def parse_dest_row(
    fields: list[str],
    line_no: int,
    log: IssueLog,
    addrport: Callable[[str], tuple[IPAddress, int] | None],
    address_form: str,
    counter: Callable[[str], int | None],
) -> RealServerEntry | None:
    """A ``-> ADDR:PORT Forward Weight ActiveConn InActConn`` row; the two sources differ
    only in how they print the address (``address_form`` names it for the message) and
    whether the connection counters may be negative (``counter``)."""
    if len(fields) != 6:
        log.add(line_no, "line", f"real server line has {len(fields)} fields, expected 6")
        return None
    found = addrport(fields[1])
    if found is None:
        log.add(line_no, "address", f"expected {address_form}, got {shown(fields[1])}")
        return None
    forward = FORWARD_BY_NAME.get(fields[2])
    if forward is None:
        log.add(line_no, "forward", f"unknown forwarding method {shown(fields[2])}")
        return None
    weight = signed_dec_int(fields[3])
    active = counter(fields[4])
    inactive = counter(fields[5])
    if weight is None or active is None or inactive is None:
        log.add(line_no, "counters", f"expected decimal weight/active/inactive: {fields[3:]}")
        return None
    return RealServerEntry(found[0], found[1], forward, weight, active, inactive)
