"""Packets as the model sees them: protocol, addresses, ports, TCP flags, SCTP
chunk types and the netfilter mark."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Final, NamedTuple

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
_SCTP_INIT = 1  # SCTP_CID_INIT (RFC 4960 3.2)
_set = object.__setattr__  # how a frozen dataclass sets its fields
# True when this module runs compiled by mypyc (setup.py; an extension has no .py
# name). A compiled frozen dataclass's own __init__ may then fill its fields with
# plain native stores, ten times cheaper than object.__setattr__; interpreted, a
# plain store would meet the frozen __setattr__.
RUNS_COMPILED: Final = not __file__.endswith(".py")


def parse_address(text: str) -> IPAddress:
    """An IPv4 or IPv6 address from its usual text form."""
    return ipaddress.ip_address(text)


@dataclass(frozen=True, slots=True, init=False)
class Packet:
    """One packet from the client side of a virtual service.

    ``flags`` matter for TCP only. For SCTP, ``sctp_chunk`` is the type of the
    packet's first chunk (None: too short to hold a chunk header) and
    ``sctp_next_chunk`` the type of the chunk after it, when there is one (only
    read for the bundled-ABORT rule, see sctp_states.event_for_chunk()).
    ``mark`` is skb->mark, the netfilter mark a firewall-mark service matches.

    A slotted frozen dataclass, hashable and comparable. Its __init__ is written
    out (one bound setter instead of a global lookup per field) because packets
    are built by the million; the SCTP and mark fields default, so TCP and UDP
    packets are built as before.
    """

    protocol: Protocol
    client_addr: IPAddress
    client_port: int
    virtual_addr: IPAddress
    virtual_port: int
    flags: TcpFlags = TcpFlags.NONE
    sctp_chunk: int | None = None
    sctp_next_chunk: int | None = None
    mark: int = 0

    def __init__(
        self,
        protocol: Protocol,
        client_addr: IPAddress,
        client_port: int,
        virtual_addr: IPAddress,
        virtual_port: int,
        flags: TcpFlags = TcpFlags.NONE,
        sctp_chunk: int | None = None,
        sctp_next_chunk: int | None = None,
        mark: int = 0,
    ) -> None:
        if RUNS_COMPILED:
            # Native stores (see RUNS_COMPILED); the class stays frozen to callers.
            self.protocol = protocol  # type: ignore[misc]
            self.client_addr = client_addr  # type: ignore[misc]
            self.client_port = client_port  # type: ignore[misc]
            self.virtual_addr = virtual_addr  # type: ignore[misc]
            self.virtual_port = virtual_port  # type: ignore[misc]
            self.flags = flags  # type: ignore[misc]
            self.sctp_chunk = sctp_chunk  # type: ignore[misc]
            self.sctp_next_chunk = sctp_next_chunk  # type: ignore[misc]
            self.mark = mark  # type: ignore[misc]
            return
        put = _set
        put(self, "protocol", protocol)
        put(self, "client_addr", client_addr)
        put(self, "client_port", client_port)
        put(self, "virtual_addr", virtual_addr)
        put(self, "virtual_port", virtual_port)
        put(self, "flags", flags)
        put(self, "sctp_chunk", sctp_chunk)
        put(self, "sctp_next_chunk", sctp_next_chunk)
        put(self, "mark", mark)

    @property
    def is_new_connection(self) -> bool:
        """is_new_conn() (d752c364): a TCP SYN, or an SCTP packet whose first chunk
        is INIT (the chunk type is read, not any flag); never for UDP."""
        if self.protocol is Protocol.TCP:
            return bool(int(self.flags) & _SYN)
        if self.protocol is Protocol.SCTP:
            return self.sctp_chunk == _SCTP_INIT
        return False


class SctpReply(NamedTuple):
    """The chunks of a server's SCTP packet, for IpvsKernel.reply() and the reply
    events of receive_batch() (a TCP reply passes its TcpFlags there instead).

    ``chunk`` None: the packet is too short to hold a chunk header.
    """

    chunk: int | None
    next_chunk: int | None = None
