"""Helpers for the scheduler tests: servers named by letter, services built in add order.

Servers are 10.1.0.<n>:80 with A = .1, B = .2, ... so picks read as letters.
Remember the kernel list order is the REVERSE of the add order.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.packet import Packet, Protocol
from ipvslab.kernel.service import ServiceFlags, VirtualService

VIP = ipaddress.ip_address("10.0.0.1")


def server(
    letter: str, weight: int = 1, upper_threshold: int = 0, lower_threshold: int = 0
) -> RealServer:
    n = ord(letter) - ord("A") + 1
    return RealServer(
        ipaddress.ip_address(f"10.1.0.{n}"),
        80,
        weight=weight,
        upper_threshold=upper_threshold,
        lower_threshold=lower_threshold,
    )


def name(dest: RealServer | None) -> str | None:
    if dest is None:
        return None
    return chr(ord("A") + int(str(dest.addr).rsplit(".", 1)[1]) - 1)


def service(
    scheduler: str,
    *added: tuple[str, int] | str,
    flags: ServiceFlags = ServiceFlags.NONE,
) -> VirtualService:
    """A TCP service on VIP:80 with servers added in the given order ("A" or ("A", w))."""
    svc = VirtualService(Protocol.TCP, VIP, 80, scheduler_name=scheduler, flags=flags)
    for item in added:
        letter, weight = (item, 1) if isinstance(item, str) else item
        svc.add_dest(server(letter, weight))
    return svc


def dest(svc: VirtualService, letter: str) -> RealServer:
    for d in svc.destinations:
        if name(d) == letter:
            return d
    raise KeyError(letter)


def order(svc: VirtualService) -> list[str | None]:
    return [name(d) for d in svc.destinations]


def packet(
    client: str = "192.0.2.1",
    port: int = 40000,
    protocol: Protocol = Protocol.TCP,
    vip: str = "10.0.0.1",
) -> Packet:
    return Packet(protocol, ipaddress.ip_address(client), port, ipaddress.ip_address(vip), 80)


def picks(svc: VirtualService, count: int, pkt: Packet | None = None) -> list[str | None]:
    p = pkt if pkt is not None else packet()
    return [name(svc.schedule(p)) for _ in range(count)]


def overload(d: RealServer, upper: int = 2) -> None:
    """Drive a server into OVERLOAD the way the kernel does: threshold, then connections."""
    d.upper_threshold = upper
    d.active_conns = upper
    d.update_overload_on_bind()
    assert d.overloaded


def set_conns(svc: VirtualService, **conns: tuple[int, int] | int) -> None:
    """set_conns(svc, A=(active, inactive), B=3, ...)."""
    for letter, value in conns.items():
        active, inactive = (value, 0) if isinstance(value, int) else value
        d = dest(svc, letter)
        d.active_conns = active
        d.inactive_conns = inactive


def letters(items: Iterable[RealServer | None]) -> list[str | None]:
    return [name(d) for d in items]
