"""Virtual services (struct ip_vs_service): their real servers and scheduler."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from enum import IntFlag

from ipvslab.kernel import schedulers
from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.packet import IPAddress, Packet, Protocol

FTP_PORT = 21


class ServiceFlags(IntFlag):
    """IP_VS_SVC_F_* flags as ipvsadm sets them."""

    NONE = 0
    PERSISTENT = 0x0001
    HASHED = 0x0002
    ONEPACKET = 0x0004
    # The scheduler flags: sh and mh read SCHED1 as "fallback" and SCHED2 as "port".
    SCHED1 = 0x0008
    SCHED2 = 0x0010
    SCHED3 = 0x0020

    SH_FALLBACK = SCHED1
    SH_PORT = SCHED2
    MH_FALLBACK = SCHED1
    MH_PORT = SCHED2


@dataclass(eq=False)
class VirtualService:
    """A virtual service: protocol, VIP and port (or a firewall mark), and its servers.

    ``destinations`` is in kernel list order: __ip_vs_update_dest() links a new
    server at the head of svc->destinations, so the list runs from the most
    recently added server to the first one added. Schedulers walk it in that order.
    """

    protocol: Protocol
    addr: IPAddress
    port: int
    scheduler_name: str = "rr"
    flags: ServiceFlags = ServiceFlags.NONE
    persistence_timeout: int = 0  # seconds (ipvsadm -p)
    netmask: int = 32  # prefix length for persistence templates (ipvsadm -M)
    fwmark: int = 0
    destinations: list[RealServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.port < 0 or self.port > 0xFFFF:
            raise ValueError(f"port out of range: {self.port}")
        if not 0 <= self.fwmark <= 0xFFFFFFFF:
            raise ValueError(f"fwmark is a 32-bit mark, got {self.fwmark}")
        if self.fwmark and (self.port or int(self.addr)):
            # ip_vs_add_service() keys a fwmark service by (af, fwmark) alone; ipvsadm
            # -f gives it no address or port.
            raise ValueError("a firewall-mark service has no address or port")
        max_prefix = 32 if self.addr.version == 4 else 128
        if not 0 <= self.netmask <= max_prefix:
            raise ValueError(f"netmask prefix must be 0..{max_prefix}, got {self.netmask}")
        if self.persistence_timeout:
            self.flags |= ServiceFlags.PERSISTENT
        self.scheduler: schedulers.Scheduler = schedulers.create(self.scheduler_name)
        self.scheduler.init_service(self)

    @classmethod
    def fwmark_service(
        cls,
        fwmark: int,
        scheduler_name: str = "rr",
        *,
        ipv6: bool = False,
        protocol: Protocol = Protocol.TCP,
        **kw: object,
    ) -> VirtualService:
        """ipvsadm -A -f MARK [-6]: a service matched by skb->mark, for any
        destination address, port and protocol of its address family."""
        addr: IPAddress = ipaddress.IPv6Address(0) if ipv6 else ipaddress.IPv4Address(0)
        return cls(protocol, addr, 0, scheduler_name, fwmark=fwmark, **kw)  # type: ignore[arg-type]

    @property
    def fwmark_addr(self) -> IPAddress:
        """The fwmark as the virtual address of its persistence templates:
        ip_vs_sched_persist() puts htonl(fwmark) in the first 32 bits of the address
        (the whole address for IPv4), with IPPROTO_IP and port 0."""
        if self.addr.version == 6:
            return ipaddress.IPv6Address(self.fwmark << 96)
        return ipaddress.IPv4Address(self.fwmark)

    @property
    def persistent(self) -> bool:
        return bool(self.flags & ServiceFlags.PERSISTENT)

    @property
    def is_ftp(self) -> bool:
        return self.port == FTP_PORT

    def template_network(self, client: IPAddress) -> IPAddress:
        """The client address masked by the service netmask (ip_vs_sched_persist())."""
        net = ipaddress.ip_network(f"{client}/{self.netmask}", strict=False)
        return net.network_address

    # -- ipvsadm -a / -e / -d, in the order ip_vs_ctl.c runs them ----------------

    def add_dest(self, dest: RealServer) -> RealServer:
        """ipvsadm -a: link at the head of the list, then tell the scheduler.

        ip_vs_add_dest() refuses a negative weight or a lower threshold above the
        upper one (-ERANGE). __ip_vs_update_dest(add=1) then sets last_weight to
        the weight even when it is 0, sets AVAILABLE, clears OVERLOAD when the
        new upper threshold is 0 or above the server's old one, and finally does
        list_add_rcu(&dest->n_list, &svc->destinations) followed by
        sched->add_dest().

        A server never linked before stands for a freshly allocated ip_vs_dest
        (old threshold 0, so OVERLOAD always clears). One that was unlinked
        (AVAILABLE clear, i.e. revived from the trash) keeps its thresholds, so
        its OVERLOAD clears only when it has no upper threshold.
        """
        if any(d.addr == dest.addr and d.port == dest.port for d in self.destinations):
            raise ValueError(f"real server {dest.label} already in service")
        if dest.weight < 0:
            raise ValueError(f"weight must be >= 0, got {dest.weight}")
        if dest.lower_threshold > dest.upper_threshold:
            raise ValueError("lower threshold is higher than upper threshold")
        fresh = dest.available
        dest.last_weight = dest.weight
        dest.available = True
        if fresh or dest.upper_threshold == 0:
            dest.overloaded = False
        self.destinations.insert(0, dest)
        self.scheduler.add_dest(self, dest)
        return dest

    def edit_dest(
        self,
        dest: RealServer,
        *,
        weight: int | None = None,
        upper_threshold: int | None = None,
        lower_threshold: int | None = None,
    ) -> None:
        """ipvsadm -e: change weight or thresholds, then sched->upd_dest().

        ip_vs_edit_dest() passes a full set of values (None here means "as now")
        to __ip_vs_update_dest(add=0): last_weight keeps the latest non-zero
        weight, AVAILABLE is set, OVERLOAD is cleared when the new upper
        threshold is 0 or above the old one, and sched->upd_dest() runs last
        (wrr, sh and mh rebuild their state there, even for a no-op edit).
        """
        if dest not in self.destinations:
            raise ValueError(f"real server {dest.label} not in service")
        new_weight = dest.weight if weight is None else weight
        new_upper = dest.upper_threshold if upper_threshold is None else upper_threshold
        new_lower = dest.lower_threshold if lower_threshold is None else lower_threshold
        if new_weight < 0:
            raise ValueError(f"weight must be >= 0, got {new_weight}")
        if new_lower > new_upper:
            raise ValueError("lower threshold is higher than upper threshold")
        if new_weight != 0:
            dest.last_weight = new_weight
        dest.weight = new_weight
        dest.available = True
        if new_upper == 0 or new_upper > dest.upper_threshold:
            dest.overloaded = False
        dest.upper_threshold = new_upper
        dest.lower_threshold = new_lower
        self.scheduler.upd_dest(self, dest)

    def del_dest(self, dest: RealServer) -> None:
        """ipvsadm -d: clear AVAILABLE, unlink, then sched->del_dest().

        __ip_vs_unlink_dest(). The server lives on in the trash while connections
        still point at it (see IpvsKernel), and keeps its counters.
        """
        if dest not in self.destinations:
            raise ValueError(f"real server {dest.label} not in service")
        dest.available = False
        self.destinations.remove(dest)
        self.scheduler.del_dest(self, dest)

    def find_dest(self, addr: IPAddress, port: int) -> RealServer | None:
        for dest in self.destinations:
            if dest.addr == addr and dest.port == port:
                return dest
        return None

    def schedule(self, packet: Packet) -> RealServer | None:
        """svc->scheduler->schedule()."""
        return self.scheduler.schedule(self, packet)

    @property
    def label(self) -> str:
        if self.fwmark:
            return f"FWM  {self.fwmark}"
        host = f"[{self.addr}]" if self.addr.version == 6 else str(self.addr)
        return f"{self.protocol.name}  {host}:{self.port}"
