"""Packets as the model sees them: protocol, addresses, ports and TCP flags."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum, IntFlag

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Protocol(IntEnum):
    """IP protocol numbers IPVS knows (ip_vs_proto_name())."""

    IP = 0  # fwmark persistence templates are keyed with IPPROTO_IP
    TCP = 6
    UDP = 17
    SCTP = 132


class TcpFlags(IntFlag):
    """The TCP header flags the IPVS state machine looks at."""

    NONE = 0
    FIN = 0x01
    SYN = 0x02
    RST = 0x04
    ACK = 0x10


class Direction(IntEnum):
    """Which hook saw the packet: client to server (input) or the reply (output)."""

    INPUT = 0
    OUTPUT = 1


_SYN = TcpFlags.SYN.value


def parse_address(text: str) -> IPAddress:
    """An IPv4 or IPv6 address from its usual text form."""
    return ipaddress.ip_address(text)


@dataclass(frozen=True, slots=True)
class Packet:
    """One packet from the client side of a virtual service.

    ``flags`` matter for TCP only; for SCTP ``flags & SYN`` stands for an INIT chunk.
    """

    protocol: Protocol
    client_addr: IPAddress
    client_port: int
    virtual_addr: IPAddress
    virtual_port: int
    flags: TcpFlags = TcpFlags.NONE

    @property
    def is_new_connection(self) -> bool:
        """is_new_conn() (d752c364): a TCP SYN or an SCTP INIT; never for UDP."""
        if self.protocol is Protocol.TCP or self.protocol is Protocol.SCTP:
            return bool(int(self.flags) & _SYN)
        return False
