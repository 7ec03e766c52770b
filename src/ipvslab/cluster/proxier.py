"""kube-proxy's IPVS proxier on one node: sync loop and graceful termination.

From ../shared/reference/kube-proxy-ipvs.md:
- §3.1: a BoundedFrequencyRunner runs syncProxyRules at most once per
  --ipvs-min-sync-period after a change, and at least every --ipvs-sync-period.
  (Its burst of 2 is not modelled: changes closer than min_sync_period wait.)
- §3.2, §1.1: syncEndpoint() adds new endpoints with weight 1; an endpoint that
  left the desired set goes to GracefulDeleteRS(): deleted at once when its
  protocol needs no graceful termination or it has no connections, else set to
  weight 0 and listed; one that comes back while listed is deleted and re-added.
- §1.1: the list is re-checked on its own 1-minute loop, with no timeout.
- §1.2: the deletion condition and the UDP/SCTP handling by version
  (kube_proxy.kube_proxy_profile()).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from ipvslab.cluster.endpoints import ServiceInfo, desired_endpoints
from ipvslab.cluster.kube_proxy import DeleteCondition, KubeProxyProfile
from ipvslab.cluster.pods import Deployment
from ipvslab.cluster.sync_runner import SyncRunner
from ipvslab.engine import Engine
from ipvslab.kernel.dest import RealServer
from ipvslab.kernel.ipvs import IpvsKernel
from ipvslab.kernel.packet import Protocol
from ipvslab.kernel.service import ServiceFlags, VirtualService

SECOND_US = 1_000_000


@dataclass(slots=True)
class RealServerEvent:
    """One change kube-proxy made to a real server (for the run's server log)."""

    time: int  # µs
    node: str
    service: str
    server: str  # ip:port
    # added, weight-0, deleted, kept (a deletion attempt that waited), re-added; and
    # what a person did with ipvsadm: "deleted by hand", "weight N by hand", "added by hand"
    action: str


@dataclass(eq=False)
class IpvsProxier:
    """The IPVS proxier of one node, driving that node's kernel twin."""

    node: str
    kernel: IpvsKernel
    profile: KubeProxyProfile
    engine: Engine
    scheduler: str
    sync_period: int  # µs
    min_sync_period: int  # µs
    services: list[tuple[ServiceInfo, Deployment]]
    log: list[RealServerEvent]
    on_sync: Callable[[], None] = lambda: None
    virtual: dict[str, VirtualService] = field(default_factory=dict)
    # GracefulTerminationManager's list: (service, ip, port) -> the real server.
    terminating: dict[tuple[str, int, int], RealServer] = field(default_factory=dict)
    runner: SyncRunner = field(init=False)

    # -- start-up ------------------------------------------------------------------

    def start(self) -> None:
        for info, _ in self.services:
            protocol = Protocol.TCP if info.protocol == "TCP" else Protocol.UDP
            flags = ServiceFlags.NONE
            if info.affinity_s:
                flags |= ServiceFlags.PERSISTENT  # FlagPersistent, timeout = affinity seconds
            if self.scheduler == "mh":
                flags |= ServiceFlags.MH_PORT  # FlagSourceHash when the scheduler is mh
            service = VirtualService(
                protocol,
                IPv4Address(info.vip),
                info.port,
                self.scheduler,
                flags=flags,
                persistence_timeout=info.affinity_s,
            )
            self.virtual[info.name] = self.kernel.add_service(service)
        self.runner = SyncRunner(self.engine, self._sync, self.min_sync_period, self.sync_period)
        self.runner.start()
        # The graceful termination loop starts with kube-proxy: wait.Until(tryDeleteRs, 1m).
        self.engine.after(KubeProxyProfile.CHECK_INTERVAL_S * SECOND_US, self._graceful_loop)

    def endpoints_changed(self) -> None:
        """OnEndpointSliceUpdate -> syncRunner.Run()."""
        self.runner.request()

    def _now_ms(self) -> int:
        return self.engine.now // 1000

    def _sync(self) -> None:
        for info, deployment in self.services:
            self._sync_service(info, deployment)
        self.on_sync()

    def _sync_service(self, info: ServiceInfo, deployment: Deployment) -> None:
        service = self.virtual[info.name]
        wanted = {p.ip: p for p in desired_endpoints(deployment, self.profile.terminating_fallback)}
        current = {int(d.addr): d for d in service.destinations if d.port == info.target_port}
        for ip in sorted(wanted):
            key = (info.name, ip, info.target_port)
            if ip in current:
                if key not in self.terminating:
                    continue
                # MoveRSOutofGracefulDeleteList(): delete now, then AddRealServer below.
                dest = self.terminating.pop(key)
                self.kernel.del_dest(service, dest, self._now_ms())
                self._log(info, dest, "deleted")
                action = "re-added"
            else:
                action = "added"
            dest = self.kernel.add_dest(service, IPv4Address(ip), info.target_port, 1)
            self._log(info, dest, action)
        for ip in sorted(current):
            if ip in wanted:
                continue
            key = (info.name, ip, info.target_port)
            if key in self.terminating:
                continue
            self._graceful_delete(info, service, current[ip])

    # -- graceful termination ----------------------------------------------------------

    def _needs_grace(self, info: ServiceInfo) -> bool:
        if self.profile.tcp_delete == DeleteCondition.IMMEDIATE:
            return False
        if info.protocol == "UDP":
            return not self.profile.udp_immediate
        return True

    def _may_delete(self, info: ServiceInfo, dest: RealServer) -> bool:
        if not self._needs_grace(info):
            return True
        if self.profile.tcp_delete == DeleteCondition.ACTIVE_ZERO:
            return dest.active_conns == 0
        return dest.active_conns + dest.inactive_conns == 0

    def _graceful_delete(
        self, info: ServiceInfo, service: VirtualService, dest: RealServer
    ) -> None:
        """GracefulDeleteRS(): try to delete; else weight 0 and onto the list."""
        self.kernel.advance(self._now_ms())  # the counters as of now
        if self._may_delete(info, dest):
            self.kernel.del_dest(service, dest, self._now_ms())
            self._log(info, dest, "deleted")
            return
        self.kernel.set_weight(service, dest, 0)
        self.terminating[(info.name, int(dest.addr), dest.port)] = dest
        self._log(info, dest, "weight-0")

    def _graceful_loop(self) -> None:
        """tryDeleteRs(), every minute."""
        self.kernel.advance(self._now_ms())
        infos = {info.name: info for info, _ in self.services}
        for key, dest in list(self.terminating.items()):
            info = infos[key[0]]
            service = self.virtual[info.name]
            if self._may_delete(info, dest):
                self.kernel.del_dest(service, dest, self._now_ms())
                del self.terminating[key]
                self._log(info, dest, "deleted")
            else:
                self._log(info, dest, "kept")
        self.engine.after(KubeProxyProfile.CHECK_INTERVAL_S * SECOND_US, self._graceful_loop)

    # -- by hand (ipvsadm) -------------------------------------------------------------

    def delete_by_hand(self, service_name: str, ip: int) -> bool:
        """ipvsadm -d: the real server goes whatever its connections (kube-proxy re-adds
        it at its next sync if the endpoint is still wanted)."""
        service = self.virtual[service_name]
        for dest in list(service.destinations):
            if int(dest.addr) == ip:
                self.kernel.del_dest(service, dest, self._now_ms())
                self.terminating.pop((service_name, ip, dest.port), None)
                self.log.append(
                    RealServerEvent(
                        self.engine.now, self.node, service_name, dest.label, "deleted by hand"
                    )
                )
                return True
        return False

    def set_weight_by_hand(self, service_name: str, ip: int, weight: int) -> bool:
        service = self.virtual[service_name]
        for dest in service.destinations:
            if int(dest.addr) == ip:
                self.kernel.set_weight(service, dest, weight)
                self.log.append(
                    RealServerEvent(
                        self.engine.now,
                        self.node,
                        service_name,
                        dest.label,
                        f"weight {weight} by hand",
                    )
                )
                return True
        return False

    def _log(self, info: ServiceInfo, dest: RealServer, action: str) -> None:
        self.log.append(RealServerEvent(self.engine.now, self.node, info.name, dest.label, action))
