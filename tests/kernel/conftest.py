"""Shared helpers for the kernel-twin tests.

Every expectation in tests/kernel is derived from the kernel code quoted in
/work/shared/reference/linux-ipvs.md, never from the model's own output.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from ipvslab.kernel.dest import ForwardMethod, RealServer
from ipvslab.kernel.features import Feature, KernelFeatures
from ipvslab.kernel.ipvs import IpvsKernel, PacketResult
from ipvslab.kernel.packet import IPAddress, Packet, Protocol, TcpFlags
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls

SECOND = 1000
MINUTE = 60 * SECOND

VIP = ipaddress.IPv4Address("10.96.0.10")
VPORT = 80
CLIENT = ipaddress.IPv4Address("10.244.1.5")
SERVER_ADDRS = tuple(ipaddress.IPv4Address(f"10.244.2.{i}") for i in range(1, 5))

SYN = TcpFlags.SYN
SYNACK = TcpFlags.SYN | TcpFlags.ACK
ACK = TcpFlags.ACK
FIN = TcpFlags.FIN | TcpFlags.ACK
RST = TcpFlags.RST

# Kernel eras, as the reference's section 1 names them.
PRE_4_1 = KernelFeatures.mainline(3, 10)  # T-3x: no conn_reuse_mode
V4_1 = KernelFeatures.mainline(4, 1)  # d752c364 only
V4_19 = KernelFeatures.mainline(4, 19)  # f719e3754 era (with CLOSE in is_new_conn_expected)
# T-f5ca: f719e3754 present, CLOSE not yet in is_new_conn_expected().
F5CA = V4_19.with_features(remove=(Feature.CLOSE_STATE_REUSE,))
V5_4 = KernelFeatures.mainline(5, 4)
# TencentOS 5.4 with PR #17 applied to the f719e3754-era logic (before f0a5e4d7).
TOS = V5_4.with_features(Feature.REUSE_OLD_CONNTRACK)
V5_9 = KernelFeatures.mainline(5, 9)
V5_15 = KernelFeatures.mainline(5, 15)
V5_16 = KernelFeatures.mainline(5, 16)
V6_1 = KernelFeatures.mainline(6, 1)
# The reuse logic of 4.19 with the original SCTP state machine, the pairing RHEL 7
# kernels have (d752c364 and f719e3754 backported, the 2013 SCTP rewrite not).
V4_19_OLD_SCTP = V4_19.with_features(remove=(Feature.SCTP_NEW_STATE_MACHINE,))


@dataclass
class Lab:
    """One IpvsKernel with one TCP virtual service and its real servers."""

    kernel: IpvsKernel
    service: VirtualService
    servers: list[RealServer]

    def packet(
        self,
        flags: TcpFlags,
        cport: int = 40000,
        client: IPAddress = CLIENT,
        protocol: Protocol = Protocol.TCP,
    ) -> Packet:
        return Packet(protocol, client, cport, self.service.addr, self.service.port, flags)

    def send(
        self, flags: TcpFlags, now: int, cport: int = 40000, client: IPAddress = CLIENT
    ) -> PacketResult:
        return self.kernel.receive(self.packet(flags, cport, client), now)

    def reply(
        self, flags: TcpFlags, now: int, cport: int = 40000, client: IPAddress = CLIENT
    ) -> bool:
        return self.kernel.reply(self.packet(flags, cport, client), flags, now)

    def handshake(self, now: int, cport: int = 40000, client: IPAddress = CLIENT) -> RealServer:
        """SYN (in), SYN/ACK (out), ACK (in); returns the server chosen."""
        res = self.send(SYN, now, cport, client)
        assert res.dest is not None, res.decision
        assert self.reply(SYNACK, now, cport, client)
        assert self.send(ACK, now, cport, client).dest is res.dest
        return res.dest

    def client_close(self, now: int, cport: int = 40000, client: IPAddress = CLIENT) -> None:
        """Client FIN (in), server ACK and FIN (out), client's last ACK (in): NAT TIME_WAIT."""
        self.send(FIN, now, cport, client)
        self.reply(ACK, now, cport, client)
        self.reply(FIN, now, cport, client)
        self.send(ACK, now, cport, client)

    def other(self, dest: RealServer) -> RealServer:
        (other,) = [s for s in self.servers if s is not dest]
        return other


def make_lab(
    features: KernelFeatures,
    sysctls: Sysctls | None = None,
    servers: int = 2,
    forward: ForwardMethod = ForwardMethod.MASQ,
    persistence: int = 0,
    netmask: int = 32,
    protocol: Protocol = Protocol.TCP,
) -> Lab:
    kernel = IpvsKernel(features, sysctls or Sysctls())
    service = kernel.add_service(
        VirtualService(protocol, VIP, VPORT, "rr", persistence_timeout=persistence, netmask=netmask)
    )
    dests = [
        kernel.add_dest(service, SERVER_ADDRS[i], 8080, 1, forward=forward) for i in range(servers)
    ]
    return Lab(kernel, service, dests)
