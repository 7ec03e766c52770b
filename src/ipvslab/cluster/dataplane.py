"""What every Service dataplane of a node does with a client's packets.

The flow layer (cluster/tcp_flow.py) drives a connection's packets through the
dataplane of the client's node; the dataplane says where each SYN went. IPVS
(the kernel twin), kube-proxy's iptables/nftables modes (conntrack NAT) and
the no-Service paths (a load balancer, an ingress or a mesh sidecar straight to
pod IPs) implement the same calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ipvslab.cluster.endpoints import ServiceInfo
from ipvslab.kernel.packet import RUNS_COMPILED
from ipvslab.scenario.model import CloseStyle


@dataclass(frozen=True, slots=True, init=False)
class Forwarded:
    """Where a client's SYN (or UDP datagram) went at its node."""

    pod_ip: int  # 0: it reached no pod (dropped at the node)
    outcome: str  # the decision, e.g. "SCHEDULE", "FORWARD_EXISTING", "DROP_SYN"
    path: str  # the decision's steps, "+"-joined (IPVS), or "" elsewhere
    weight0: bool = False  # the real server had weight 0 (graceful termination)
    removed: bool = False  # the real server was no longer in the service
    refused: bool = False  # the node answered itself (REJECT: ECONNREFUSED)

    def __init__(
        self,
        pod_ip: int,
        outcome: str,
        path: str,
        weight0: bool = False,
        removed: bool = False,
        refused: bool = False,
    ) -> None:
        # One per SYN: native stores when compiled, as Packet does.
        if RUNS_COMPILED:
            self.pod_ip = pod_ip  # type: ignore[misc]
            self.outcome = outcome  # type: ignore[misc]
            self.path = path  # type: ignore[misc]
            self.weight0 = weight0  # type: ignore[misc]
            self.removed = removed  # type: ignore[misc]
            self.refused = refused  # type: ignore[misc]
            return
        put = object.__setattr__
        put(self, "pod_ip", pod_ip)
        put(self, "outcome", outcome)
        put(self, "path", path)
        put(self, "weight0", weight0)
        put(self, "removed", removed)
        put(self, "refused", refused)


@dataclass(frozen=True, slots=True)
class EntryView:
    """A dataplane's entry for a client ip:port, as ipvsadm -Lnc would show it."""

    state: str
    server: str  # ip:port
    expires_ms: int  # remaining lifetime


def entry_label(view: EntryView | None) -> str:
    """An entry as the trace's entry_before column shows it."""
    return "" if view is None else f"{view.state} {view.server}"


def synack_then_ack(
    dataplane: Dataplane, client: int, port: int, service: ServiceInfo, now: int
) -> bool:
    """Dataplane.handshake() as two calls, for dataplanes with nothing to gain from one."""
    if not dataplane.synack(client, port, service, now):
        return False
    dataplane.ack(client, port, service, now)
    return True


class Dataplane(Protocol):
    name: str

    def syn(self, client: int, port: int, service: ServiceInfo, now: int) -> Forwarded: ...

    def synack(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        """The pod's SYN|ACK on its way back; False when the node drops it."""
        ...

    def ack(self, client: int, port: int, service: ServiceInfo, now: int) -> None: ...

    def handshake(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        """synack() then, unless the node dropped it, the client's ack(): True when
        the handshake completed."""
        ...

    def close(
        self, client: int, port: int, service: ServiceInfo, style: CloseStyle, now: int
    ) -> None: ...

    def client_rst(self, client: int, port: int, service: ServiceInfo, now: int) -> None: ...

    def datagram(self, client: int, port: int, service: ServiceInfo, now: int) -> Forwarded: ...

    def reply(self, client: int, port: int, service: ServiceInfo, now: int) -> bool:
        """The pod's UDP answer on its way back."""
        ...

    def entry(self, client: int, port: int, service: ServiceInfo, now: int) -> EntryView | None: ...

    def entry_label(self, client: int, port: int, service: ServiceInfo, now: int) -> str:
        """entry() as the trace records it: "STATE ip:port", or "" for none."""
        ...

    def template(
        self, client: int, port: int, service: ServiceInfo, now: int
    ) -> EntryView | None: ...
