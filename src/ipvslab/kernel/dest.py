"""Real servers (struct ip_vs_dest) and their connection counters."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from ipvslab.kernel.packet import IPAddress


class ForwardMethod(Enum):
    """The forwarding method of a real server, named as ipvsadm and /proc print it."""

    MASQ = "Masq"  # NAT: the director sees both directions (kube-proxy uses only this)
    LOCAL = "Local"
    TUNNEL = "Tunnel"
    ROUTE = "Route"  # direct routing (DR)

    @property
    def sees_replies(self) -> bool:
        """Only NAT sends replies back through the director.

        __ip_vs_update_dest() sets IP_VS_CONN_F_NOOUTPUT on every forwarding method
        other than MASQ, so those connections use the INPUT-ONLY state table.
        """
        return self is ForwardMethod.MASQ


@dataclass(eq=False, slots=True)
class RealServer:
    """A real server of one virtual service.

    Identity matters as in the kernel, which compares dest pointers: two servers
    with the same address are different objects. ``available`` is the
    IP_VS_DEST_F_AVAILABLE flag: set when added or edited, cleared only when the
    server is removed from its service (weight 0 leaves it set).
    """

    addr: IPAddress
    port: int
    weight: int = 1
    forward: ForwardMethod = ForwardMethod.MASQ
    upper_threshold: int = 0
    lower_threshold: int = 0
    last_weight: int = 0
    available: bool = True
    overloaded: bool = False
    active_conns: int = 0
    inactive_conns: int = 0
    persistent_conns: int = 0

    def __post_init__(self) -> None:
        if self.weight < 0:
            raise ValueError(f"weight must be >= 0, got {self.weight}")
        if self.upper_threshold < 0 or self.lower_threshold < 0:
            raise ValueError("connection thresholds must be >= 0")
        # __ip_vs_update_dest(): on add, last_weight takes the weight even if it is 0
        # (mh keeps a server's place in its table by last_weight, ip_vs_mh.c, 4.18).
        self.last_weight = self.weight

    @property
    def total_conns(self) -> int:
        """ip_vs_dest_totalconns(): active plus inactive (templates not counted)."""
        return self.active_conns + self.inactive_conns

    @property
    def overhead(self) -> int:
        """ip_vs_dest_conn_overhead(): active connections weigh 256 inactive ones."""
        return (self.active_conns << 8) + self.inactive_conns

    @property
    def schedulable(self) -> bool:
        """What most schedulers require: positive weight and not overloaded."""
        return self.weight > 0 and not self.overloaded

    def update_overload_on_bind(self) -> None:
        """ip_vs_bind_dest(): crossing the upper threshold sets OVERLOAD."""
        if self.upper_threshold != 0 and self.total_conns >= self.upper_threshold:
            self.overloaded = True

    def update_overload_on_unbind(self) -> None:
        """ip_vs_unbind_dest(): OVERLOAD clears below the lower threshold.

        Without a lower threshold it clears below 3/4 of the upper one, and with no
        thresholds at all it clears unconditionally.
        """
        if self.lower_threshold != 0:
            if self.total_conns < self.lower_threshold:
                self.overloaded = False
        elif self.upper_threshold != 0:
            if self.total_conns * 4 < self.upper_threshold * 3:
                self.overloaded = False
        else:
            self.overloaded = False

    def __repr__(self) -> str:
        host = f"[{self.addr}]" if self.addr.version == 6 else str(self.addr)
        return f"RealServer({host}:{self.port} w={self.weight})"

    @property
    def label(self) -> str:
        """ip:port as ipvsadm -Ln prints it."""
        host = f"[{self.addr}]" if self.addr.version == 6 else str(self.addr)
        return f"{host}:{self.port}"
