"""The scenario format of `ipvslab run`: a Service under load, as pydantic models.

A scenario names the cluster (nodes, their kernel, kube-proxy and the dataplane),
the Services with the Deployment behind each, the clients and their load, what
happens over time (rollouts, scale, pod kills, sysctl changes), and optionally a
script: explicit steps replayed in order, as a person would type them on a node.
Every field is documented in docs/scenarios.md. Times are written with a unit
("120s", "10ms", "2m", "500us") or as a number of seconds, and held as integer
microseconds.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

US = 1
MS = 1_000
SECOND = 1_000_000

_UNITS = {"us": US, "µs": US, "ms": MS, "s": SECOND, "m": 60 * SECOND, "h": 3600 * SECOND}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$")


def parse_duration(value: Any) -> int:
    """'120s', '10ms', '2m', '1.5s', 3 (seconds) -> integer microseconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 10ms, 2s or 5m")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("expected a duration >= 0")
        return round(value * SECOND)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            number, unit = match.groups()
            return round(float(number) * _UNITS[unit or "s"])
    raise ValueError(
        "expected a duration like 500us, 10ms, 2s, 5m or 1h (a bare number is seconds)"
    )


Duration = Annotated[int, BeforeValidator(parse_duration)]


# Bounds that keep a run's memory bounded: the simulated time, and the rows of the
# time series (and of the real-server samples taken at each interval).
MAX_DURATION = 7 * 24 * 3600 * SECOND
MAX_INTERVALS = 100_000


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Dataplane(StrEnum):
    """How Service traffic is forwarded on the nodes."""

    IPVS = "ipvs"  # kube-proxy IPVS mode: the kernel twin
    IPTABLES = "iptables"  # kube-proxy iptables mode: conntrack picks the endpoint
    NFTABLES = "nftables"  # kube-proxy nftables mode: same, as far as reuse goes
    DIRECT = "direct"  # a load balancer or ingress straight to pod IPs (no Service)
    MESH = "mesh"  # a sidecar proxy picks the endpoint (no Service hop)


class DeadPodIp(StrEnum):
    """What a SYN to a deleted pod's IP gets (it depends on the CNI)."""

    EHOSTUNREACH = "ehostunreach"  # route gone: ICMP host unreachable at once
    ARP_TIMEOUT = "arp-timeout"  # L2 neighbour unresolved: EHOSTUNREACH after ~3 s
    DROP = "drop"  # blackhole: silence, the client retransmits until ETIMEDOUT
    REUSED = "reused"  # the IP already belongs to another pod: RST, ECONNREFUSED


class CloseStyle(StrEnum):
    SERVER_FIRST = "server-first"  # the pod closes first (HTTP Connection: close)
    CLIENT_FIRST = "client-first"  # the client closes first: client TIME_WAIT 60 s
    CLIENT_RST = "client-rst"  # the client aborts with RST (SO_LINGER 0)


class Placement(StrEnum):
    SPREAD = "spread"  # round-robin over nodes
    PACKED = "packed"  # all on the first node
    ANTI_AFFINITY = "anti-affinity"  # at most one per node (the rest unschedulable)


class IpvsRules(_Model):
    """The iptables rules kube-proxy installs beside IPVS that change packet fates."""

    # KUBE-POSTROUTING MASQUERADE of marked packets (--masquerade-all marks all).
    masquerade_all: bool = False
    # KUBE-FORWARD: -m conntrack --ctstate INVALID -j DROP.
    drop_invalid: bool = True


class KubeProxyConfig(_Model):
    version: str = "v1.31.0"
    scheduler: str = "rr"
    sync_period: Duration = 30 * SECOND
    # v1alpha1 leaves IPVS.MinSyncPeriod at 0 (every change syncs at once).
    min_sync_period: Duration = 0
    tcp_timeout: Duration = 0  # --ipvs-tcp-timeout (v1.18+); 0 keeps the kernel's
    tcpfin_timeout: Duration = 0
    udp_timeout: Duration = 0
    # The KubeProxyIPVS feature gate (1.37+); kube-proxy refuses IPVS mode when off.
    ipvs_feature_gate: bool = True


class SysctlChange(_Model):
    """A sysctl a person changes on a node after kube-proxy started."""

    name: str
    value: int


class ClientSysctls(_Model):
    """The client pod's network-namespace sysctls."""

    ip_local_port_range: tuple[int, int] = (32768, 60999)
    ip_local_reserved_ports: list[int] = Field(default_factory=list)
    tcp_tw_reuse: Literal[0, 1, 2] = 2
    tcp_timestamps: Literal[0, 1] = 1
    tcp_syn_retries: int = Field(default=6, ge=1, le=127)
    tcp_max_tw_buckets: int = Field(default=262144, ge=0)

    @field_validator("ip_local_port_range", mode="before")
    @classmethod
    def _range_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            parts = value.split()
            if len(parts) == 2 and all(p.isdigit() for p in parts):
                return (int(parts[0]), int(parts[1]))
            raise ValueError("expected two port numbers like '32768 60999'")
        return value

    @model_validator(mode="after")
    def _check_range(self) -> ClientSysctls:
        low, high = self.ip_local_port_range
        if not 1 <= low <= high <= 65535:
            raise ValueError("ip_local_port_range must be 1 <= low <= high <= 65535")
        return self


class NodeSpec(_Model):
    name: str
    kernel: str | None = None  # defaults to the cluster's
    sysctls: dict[str, int] = Field(default_factory=dict)


class ClusterSpec(_Model):
    kernel: str = "6.1"
    dataplane: Dataplane = Dataplane.IPVS
    kube_proxy: KubeProxyConfig = KubeProxyConfig()
    nodes: int | list[NodeSpec] = 1
    # net.ipv4.vs.* (and other) sysctls set on every node after kube-proxy starts.
    sysctls: dict[str, int] = Field(default_factory=dict)
    rules: IpvsRules = IpvsRules()
    # Kernel features switched on (true) or off (false) on top of what the kernel
    # resolves to: a kernel with one change reverted or backported, such as the
    # lab's era modules (docs/lab.md). Names as in `ipvslab explain`'s features.
    kernel_overrides: dict[str, bool] = Field(default_factory=dict)
    dead_pod_ip: DeadPodIp = DeadPodIp.EHOSTUNREACH
    rtt: Duration = 200  # client <-> pod round trip; the default is 200 µs ("200us")
    pod_cidr: str = "10.244.0.0/16"  # a /24 per node is carved from it
    service_cidr: str = "10.96.0.0/16"

    @field_validator("pod_cidr", "service_cidr")
    @classmethod
    def _network(cls, value: str) -> str:
        try:
            network = ipaddress.IPv4Network(value, strict=False)
        except ValueError:
            raise ValueError("expected an IPv4 network like 10.244.0.0/16") from None
        if network.prefixlen > 24:
            raise ValueError("expected a network of /24 or larger")
        return value

    @field_validator("kernel_overrides")
    @classmethod
    def _known_features(cls, value: dict[str, bool]) -> dict[str, bool]:
        from ipvslab.kernel.features import Feature

        known = {f.value for f in Feature}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"unknown kernel feature(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            )
        return value

    @field_validator("nodes")
    @classmethod
    def _unique_node_names(cls, value: int | list[NodeSpec]) -> int | list[NodeSpec]:
        if isinstance(value, list):
            names = [n.name for n in value]
            duplicated = sorted({n for n in names if names.count(n) > 1})
            if duplicated:
                raise ValueError(f"node names must be unique; repeated: {', '.join(duplicated)}")
        return value

    @field_validator("kube_proxy")
    @classmethod
    def _scheduler_known(cls, value: KubeProxyConfig) -> KubeProxyConfig:
        from ipvslab.kernel import schedulers

        known = schedulers.available()
        if value.scheduler not in known:
            raise ValueError(
                f"unknown IPVS scheduler {value.scheduler!r}; known: {', '.join(known)}"
            )
        return value

    @field_validator("nodes")
    @classmethod
    def _some_nodes(cls, value: int | list[NodeSpec]) -> int | list[NodeSpec]:
        count = value if isinstance(value, int) else len(value)
        if not 1 <= count <= 1000:
            raise ValueError("a cluster has 1 to 1000 nodes")
        return value


def _count_or_percent(value: Any) -> Any:
    """maxSurge / maxUnavailable: a count (0 or more) or a percentage like 25%."""
    if isinstance(value, bool):
        raise ValueError("expected a count like 1 or a percentage like 25%")
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and re.fullmatch(r"\d{1,3}%", value.strip()):
        return value.strip()
    raise ValueError("expected a count like 1 or a percentage like 25%")


class DeploymentSpec(_Model):
    replicas: int = Field(default=2, ge=0, le=10_000)
    placement: Placement = Placement.SPREAD
    readiness_delay: Duration = 2 * SECOND
    termination_grace: Duration = 30 * SECOND
    # How long the app keeps accepting after SIGTERM before it exits (its pod IP
    # goes away then); capped by the grace period.
    serve_after_sigterm: Duration = 5 * SECOND
    max_surge: Annotated[int | str, BeforeValidator(_count_or_percent)] = "25%"
    max_unavailable: Annotated[int | str, BeforeValidator(_count_or_percent)] = "25%"


class Protocol(StrEnum):
    TCP = "TCP"
    UDP = "UDP"


# core/v1 DefaultClientIPServiceAffinitySeconds; MaxClientIPServiceAffinitySeconds is 86400.
DEFAULT_AFFINITY_SECONDS = 10800


def _affinity(value: Any) -> Any:
    """sessionAffinity: ClientIP (10800 s), None, or a timeout (timeoutSeconds)."""
    if value is None or value == "None":
        return None
    if value == "ClientIP":
        return DEFAULT_AFFINITY_SECONDS * SECOND
    timeout = parse_duration(value)
    if not SECOND <= timeout <= 86400 * SECOND:
        raise ValueError("expected ClientIP, None or a timeout from 1s to 86400s")
    return timeout


class ServiceSpec(_Model):
    name: str
    port: int = Field(default=80, ge=1, le=65535)
    target_port: int = Field(default=8080, ge=1, le=65535)
    protocol: Protocol = Protocol.TCP
    # sessionAffinity: ClientIP with this timeout (seconds; 10800 is the API default).
    session_affinity: Annotated[int | None, BeforeValidator(_affinity)] = None
    deployment: DeploymentSpec = DeploymentSpec()


class OpenLoad(_Model):
    kind: Literal["open"] = "open"
    rate: float = Field(gt=0, le=10_000_000)  # new connections per second
    arrivals: Literal["poisson", "constant"] = "poisson"


class ClosedLoad(_Model):
    kind: Literal["closed"]
    workers: int = Field(ge=1, le=100_000)
    think: Duration = 0  # pause between a connection's end and the next connect


class LongLivedLoad(_Model):
    kind: Literal["long-lived"]
    connections: int = Field(ge=1, le=100_000)
    reconnect_delay: Duration = 1 * SECOND


class UdpLoad(_Model):
    kind: Literal["udp"]
    rate: float = Field(gt=0, le=10_000_000)
    timeout: Duration = 1 * SECOND
    tries: int = Field(default=3, ge=1, le=100)


Load = Annotated[OpenLoad | ClosedLoad | LongLivedLoad | UdpLoad, Field(discriminator="kind")]


class ClientSpec(_Model):
    name: str
    service: str
    replicas: int = Field(default=1, ge=1, le=10_000)
    placement: Placement = Placement.PACKED
    load: Load | None = None  # None: the pod only runs script steps
    duration: Duration = 10 * MS  # how long a connection stays open once established
    close: CloseStyle = CloseStyle.SERVER_FIRST
    connect_timeout: Duration | None = None  # None: the kernel's SYN retries decide
    kernel: str | None = None  # the client node's kernel for the port picker era
    # Force the connect() port-selection era (cluster/port_picker.py PortSelection),
    # for distribution kernels whose version hides a backport of the 2022 series.
    port_selection: (
        Literal[
            "GLOBAL_HINT",
            "GLOBAL_HINT_EVEN_START",
            "GLOBAL_HINT_PARITY",
            "PERTURB_TABLE_256",
            "PERTURB_TABLE_65536",
        ]
        | None
    ) = None
    sysctls: ClientSysctls = ClientSysctls()
    start: Duration = 0
    stop: Duration | None = None


class Rollout(_Model):
    service: str


class Scale(_Model):
    service: str
    replicas: int = Field(ge=0, le=10_000)


class PodRef(_Model):
    service: str
    pod: int = Field(default=0, ge=0)  # index among the service's pods, oldest first


class RealServerRef(PodRef):
    node: str | None = None  # None: every node


class SetReady(PodRef):
    """The pod's readiness probe starts failing (ready: false) or passes again."""

    ready: bool


class SetWeight(RealServerRef):
    weight: int = Field(ge=0, le=65535)


class NodeSysctl(_Model):
    node: str | None = None  # None: every node
    name: str
    value: int


class ClientSysctl(_Model):
    client: str  # a client name (all its replicas) or one replica, "name-N"
    name: str  # e.g. net.ipv4.tcp_tw_reuse, net.ipv4.ip_local_port_range
    value: int | str


class Event(_Model):
    """Something that happens at a given time in a load run (one action per event)."""

    at: Duration
    rollout: Rollout | None = None
    scale: Scale | None = None
    kill_pod: PodRef | None = None
    set_ready: SetReady | None = None
    delete_real_server: RealServerRef | None = None
    set_weight: SetWeight | None = None
    sysctl: NodeSysctl | None = None
    client_sysctl: ClientSysctl | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Event:
        actions = [n for n in _EVENT_ACTIONS if getattr(self, n) is not None]
        if len(actions) != 1:
            raise ValueError(
                f"an event takes exactly one action of {', '.join(_EVENT_ACTIONS)}"
                f" (got {len(actions)})"
            )
        return self

    @property
    def action(self) -> str:
        return next(n for n in _EVENT_ACTIONS if getattr(self, n) is not None)


_EVENT_ACTIONS = (
    "rollout",
    "scale",
    "kill_pod",
    "set_ready",
    "delete_real_server",
    "set_weight",
    "sysctl",
    "client_sysctl",
)


class Connect(_Model):
    client: str  # a client name (its first replica) or "name-N"
    port: int | None = Field(default=None, ge=1, le=65535)  # None: the kernel picks
    service: str | None = None  # default: the client's service
    close: CloseStyle | Literal["held"] = CloseStyle.SERVER_FIRST
    hold: Duration = 10 * MS  # how long it stays open ("held": until a release step)


class Release(_Model):
    client: str
    port: int = Field(ge=1, le=65535)
    close: CloseStyle = CloseStyle.SERVER_FIRST


class UdpRequest(_Model):
    client: str
    port: int | None = Field(default=None, ge=1, le=65535)
    service: str | None = None
    tries: int = Field(default=3, ge=1, le=100)
    timeout: Duration = 1 * SECOND


class AddRealServer(_Model):
    service: str
    address: str  # ip or ip:port
    weight: int = Field(default=1, ge=0, le=65535)
    node: str | None = None


class Step(_Model):
    """One step of a script; steps run one after the other (``at`` waits until then)."""

    at: Duration | None = None
    connect: Connect | None = None
    release: Release | None = None
    udp: UdpRequest | None = None
    wait: Duration | None = None
    add_real_server: AddRealServer | None = None
    delete_real_server: RealServerRef | None = None
    set_weight: SetWeight | None = None
    kill_pod: PodRef | None = None
    set_ready: SetReady | None = None
    sysctl: NodeSysctl | None = None
    client_sysctl: ClientSysctl | None = None

    @model_validator(mode="after")
    def _one_action(self) -> Step:
        actions = [n for n in _STEP_ACTIONS if getattr(self, n) is not None]
        if len(actions) != 1:
            raise ValueError(
                f"a step takes exactly one action of {', '.join(_STEP_ACTIONS)}"
                f" (got {len(actions)})"
            )
        return self

    @property
    def action(self) -> str:
        return next(n for n in _STEP_ACTIONS if getattr(self, n) is not None)


_STEP_ACTIONS = (
    "connect",
    "release",
    "udp",
    "wait",
    "add_real_server",
    "delete_real_server",
    "set_weight",
    "kill_pod",
    "set_ready",
    "sysctl",
    "client_sysctl",
)


class Scenario(_Model):
    name: str = "scenario"
    description: str = ""
    seed: int = Field(default=1, ge=0, le=2**63 - 1)
    duration: Duration = 60 * SECOND
    # Seconds per row of the time series.
    interval: Duration = 1 * SECOND
    cluster: ClusterSpec = ClusterSpec()
    services: list[ServiceSpec] = Field(min_length=1)
    clients: list[ClientSpec] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    script: list[Step] = Field(default_factory=list)

    @field_validator("duration")
    @classmethod
    def _bounded_duration(cls, value: int) -> int:
        if not 0 < value <= MAX_DURATION:
            raise ValueError("expected a duration from 1us to 7 days (168h)")
        return value

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        names = [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError("service names must be unique")
        clients = [c.name for c in self.clients]
        if len(set(clients)) != len(clients):
            raise ValueError("client names must be unique")
        protocol = {s.name: s.protocol for s in self.services}
        for client in self.clients:
            if client.service not in names:
                raise ValueError(
                    f"client {client.name!r} names service {client.service!r};"
                    f" services are {', '.join(names)}"
                )
            udp_load = client.load is not None and client.load.kind == "udp"
            if client.load is not None and udp_load != (protocol[client.service] == Protocol.UDP):
                raise ValueError(
                    f"client {client.name!r}: a {client.load.kind} load cannot use"
                    f" {protocol[client.service]} service {client.service!r}"
                    " (UDP services take kind: udp, TCP services the others)"
                )
        for index, event in enumerate(self.events):
            self._check_refs(f"events[{index}]", getattr(event, event.action), names, clients)
        client_service = {c.name: c.service for c in self.clients}
        for index, step in enumerate(self.script):
            target = getattr(step, step.action)
            self._check_refs(f"script[{index}]", target, names, clients)
            if step.action in ("connect", "udp"):
                base = (
                    target.client if target.client in clients else target.client.rsplit("-", 1)[0]
                )
                service = target.service or client_service[base]
                wanted = Protocol.UDP if step.action == "udp" else Protocol.TCP
                if protocol[service] != wanted:
                    raise ValueError(
                        f"script[{index}]: a {step.action} step cannot use"
                        f" {protocol[service]} service {service!r}"
                    )
        if self.interval < MS:
            raise ValueError("interval must be at least 1ms")
        if self.duration // self.interval > MAX_INTERVALS:
            raise ValueError(
                f"duration / interval gives more than {MAX_INTERVALS:,} time-series rows;"
                " choose a longer interval"
            )
        return self

    @staticmethod
    def _check_refs(where: str, target: object, services: list[str], clients: list[str]) -> None:
        """A step or event that names a service or a client names one that exists."""
        service = getattr(target, "service", None)
        if service is not None and service not in services:
            raise ValueError(
                f"{where} names service {service!r}; services are {', '.join(services)}"
            )
        client = getattr(target, "client", None)
        if client is not None:
            base = client.rsplit("-", 1)[0] if client not in clients else client
            if base not in clients:
                shown = ", ".join(clients) or "none"
                raise ValueError(f"{where} names client {client!r}; clients are {shown}")

    @property
    def node_names(self) -> list[str]:
        nodes = self.cluster.nodes
        if isinstance(nodes, int):
            return [f"node-{i}" for i in range(nodes)]
        return [n.name for n in nodes]
