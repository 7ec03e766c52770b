"""The cluster twin: nodes, their dataplanes and kube-proxy, pods, clients.

``Cluster.build(scenario)`` lays out what the scenario describes on one event
engine: each node gets its own kernel twin (IPVS mode) or conntrack NAT
(iptables/nftables) or a proxy's endpoint list (direct/mesh), with kube-proxy
of the chosen version driving it; each Service gets a ClusterIP and a
Deployment; each client replica a pod IP and its own network namespace on its
node, sharing the node kernel's port-choice state. Clients reach a Service
through the dataplane of their own node.

Node start-up order, as on a real node: the kernel's defaults, then what
kube-proxy writes when it starts (cluster/kube_proxy.py), then what the
scenario sets by hand.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from functools import partial
from ipaddress import IPv4Address, IPv4Network

from ipvslab.cluster.client_tcp import ClientNetns
from ipvslab.cluster.client_tcp import ClientSysctls as NetnsSysctls
from ipvslab.cluster.dataplane import Dataplane
from ipvslab.cluster.endpoints import ServiceInfo, desired_endpoints
from ipvslab.cluster.errors import ScenarioSetupError
from ipvslab.cluster.ipvs_dataplane import IpvsDataplane
from ipvslab.cluster.kube_proxy import (
    FIRST_MODELLED_KUBE_PROXY,
    LAST_IPVS_KUBE_PROXY,
    KubeProxyProfile,
    apply_kube_proxy,
    at_least,
    kube_proxy_profile,
    parse_kube_version,
)
from ipvslab.cluster.nat_dataplane import ConntrackNatDataplane, DirectDataplane
from ipvslab.cluster.pod_tcp import PodTcp
from ipvslab.cluster.pods import Deployment, IpAllocator, Pod, PodTemplate
from ipvslab.cluster.port_picker import HostPorts, PortSelection, era_caveat
from ipvslab.cluster.proxier import IpvsProxier, RealServerEvent
from ipvslab.cluster.syn_timing import SynSchedule, syn_send_offsets
from ipvslab.cluster.sync_runner import SyncRunner
from ipvslab.cluster.tcp_flow import Attempt, TcpConnector, record_attempt
from ipvslab.cluster.trace import Result, Trace
from ipvslab.engine import Engine
from ipvslab.kernel.features import Feature, KernelFeatures
from ipvslab.kernel.ipvs import IpvsKernel
from ipvslab.kernel.presets import resolve_kernel
from ipvslab.kernel.sysctls import SysctlError, Sysctls
from ipvslab.kernel.tcp_states import Timeouts
from ipvslab.scenario.model import (
    SECOND,
    ClientSpec,
    DeadPodIp,
    Placement,
    Scenario,
)
from ipvslab.scenario.model import (
    Dataplane as DataplaneKind,
)

# A `uname -r` of a distribution build: x.y.0-N (Ubuntu, openEuler, Debian ABI).
_DISTRO_BUILD = re.compile(r"^\d+\.\d+\.0-")
# Node addresses: 192.168.0.10, .11, ... (only masquerade shows them to pods).
NODE_NETWORK = int(IPv4Address("192.168.0.0"))
# How often pods forget expired sockets (memory only).
POD_SWEEP_US = 10 * SECOND


@dataclass(eq=False)
class ClientPod:
    name: str  # "<client>-<replica>"
    spec: ClientSpec
    replica: int
    node: int
    node_name: str
    ip: int
    netns: ClientNetns
    dataplane: Dataplane
    kernel_version: tuple[int, int, int]
    syn: SynSchedule
    connect_timeout: int | None
    rng: random.Random


@dataclass(eq=False)
class Node:
    name: str
    index: int
    ip: int
    kernel_text: str
    features: KernelFeatures
    kernel_version: tuple[int, int, int]
    dataplane: Dataplane
    kernel: IpvsKernel | None = None
    proxier: IpvsProxier | None = None
    runner: SyncRunner | None = None


def _sysctl_name(name: str) -> str:
    return name.removeprefix("net.ipv4.vs.").removeprefix("net/ipv4/vs/")


class Cluster:
    """Everything a run simulates, on one engine."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.engine = Engine()
        self.trace = Trace()
        self.server_log: list[RealServerEvent] = []
        self.warnings: list[str] = []
        cluster = scenario.cluster
        self.rtt = cluster.rtt
        self.dead_pod_ip: DeadPodIp = cluster.dead_pod_ip
        self.registry: dict[int, Pod] = {}
        self._started = False
        self.connector = TcpConnector(self)
        self.services: dict[str, ServiceInfo] = {}
        self.deployments: dict[str, Deployment] = {}
        self.nodes: list[Node] = []
        self.clients: list[ClientPod] = []
        self.clients_by_name: dict[str, list[ClientPod]] = {}
        self.kube_version = self._kube_version()
        self.profile: KubeProxyProfile = kube_proxy_profile(self.kube_version)
        network = IPv4Network(cluster.pod_cidr, strict=False)
        names = scenario.node_names
        self.ips = IpAllocator(int(network.network_address), len(names))
        self._build_services()
        self._build_nodes()
        self._build_deployments()
        self._build_clients()

    # -- layout ----------------------------------------------------------------------

    def _rng(self, *labels: object) -> random.Random:
        """A random stream of its own for each component: same seed, same run."""
        return random.Random(":".join(str(x) for x in (self.scenario.seed, *labels)))

    def _kube_version(self) -> tuple[int, int, int]:
        config = self.scenario.cluster.kube_proxy
        try:
            version = parse_kube_version(config.version)
        except ValueError as err:
            raise ScenarioSetupError(f"cluster.kube_proxy.version: {err}") from None
        if version[:2] < FIRST_MODELLED_KUBE_PROXY:
            raise ScenarioSetupError(
                f"cluster.kube_proxy.version: {config.version} is older than the first modelled"
                " release (v1.11)"
            )
        if self.scenario.cluster.dataplane is DataplaneKind.IPVS:
            if version[:2] > LAST_IPVS_KUBE_PROXY:
                raise ScenarioSetupError(
                    f"cluster.kube_proxy.version: {config.version} has no IPVS mode (the"
                    " KubeProxyIPVS gate is planned locked off from v1.43, KEP-5495 update"
                    " PR #6120); use dataplane: nftables"
                )
            profile = kube_proxy_profile(version)
            gate = config.ipvs_feature_gate and (profile.gate_default or config.ipvs_feature_gate)
            if not gate:
                raise ScenarioSetupError(
                    "cluster.kube_proxy.ipvs_feature_gate: with KubeProxyIPVS off, kube-proxy"
                    " refuses to start in IPVS mode"
                )
            if profile.deprecated:
                self.warnings.append(
                    f"kube-proxy {config.version}: IPVS mode is deprecated (since v1.35,"
                    " KEP-5495); kube-proxy logs a warning and an IPVSDeprecation event at start"
                )
            if version[:2] >= (1, 40):
                self.warnings.append(
                    f"kube-proxy {config.version}: KubeProxyIPVS is planned off by default from"
                    " v1.40; this run assumes it was turned on"
                )
        elif self.scenario.cluster.dataplane is DataplaneKind.NFTABLES and version < (1, 29, 0):
            # KEP-3866: nftables mode alpha in 1.29, beta 1.31, GA 1.33.
            raise ScenarioSetupError(
                f"cluster.kube_proxy.version: kube-proxy {config.version} has no nftables mode"
                " (alpha in v1.29, GA in v1.33)"
            )
        return version

    def _check_kernel_for_mode(
        self, where: str, name: str, features: KernelFeatures, version: tuple[int, int, int]
    ) -> None:
        """Node kernels that the chosen kube-proxy mode cannot run on, as kube-proxy
        itself would refuse them."""
        kind = self.scenario.cluster.dataplane
        if kind is DataplaneKind.NFTABLES and version[:2] < (5, 13):
            raise ScenarioSetupError(
                f"{where}: kube-proxy's nftables mode needs kernel 5.13 or newer; {name} runs"
                f" {'.'.join(map(str, version))}"
            )
        if (
            kind is DataplaneKind.IPVS
            and not features.has(Feature.CONN_REUSE_MODE)
            and at_least(self.kube_version, (1, 12, 5), (1, 13, 0))
            and self.kube_version < (1, 19, 0)
        ):
            # #71114 made setting conn_reuse_mode fatal; kernels without the sysctl
            # (before d752c364, v4.1) stop kube-proxy at start (#82065) until #88541
            # (v1.19) only logged it.
            raise ScenarioSetupError(
                f"{where}: kube-proxy {self.scenario.cluster.kube_proxy.version} exits at start"
                f" on {name}: its kernel has no net.ipv4.vs.conn_reuse_mode and setting it is"
                " fatal from v1.13 until v1.19 (#82065, #88541)"
            )

    def _build_services(self) -> None:
        base = int(IPv4Network(self.scenario.cluster.service_cidr, strict=False).network_address)
        for index, spec in enumerate(self.scenario.services):
            self.services[spec.name] = ServiceInfo(
                name=spec.name,
                protocol=spec.protocol.value,
                vip=base + 10 + index,
                port=spec.port,
                target_port=spec.target_port,
                affinity_s=(spec.session_affinity or 0) // SECOND,
            )

    def _node_specs(self) -> list[tuple[str, str, dict[str, int]]]:
        cluster = self.scenario.cluster
        if isinstance(cluster.nodes, int):
            return [(f"node-{i}", cluster.kernel, {}) for i in range(cluster.nodes)]
        return [(n.name, n.kernel or cluster.kernel, dict(n.sysctls)) for n in cluster.nodes]

    def _build_nodes(self) -> None:
        cluster = self.scenario.cluster
        for index, (name, kernel_text, node_sysctls) in enumerate(self._node_specs()):
            where = (
                f"cluster.nodes[{index}].kernel"
                if node_sysctls or not isinstance(cluster.nodes, int)
                else "cluster.kernel"
            )
            try:
                resolution = resolve_kernel(kernel_text)
            except ValueError as err:
                raise ScenarioSetupError(f"{where}: {err}") from None
            for warning in resolution.warnings:
                self.warnings.append(f"{name}: {warning}")
            version = resolution.version
            features = resolution.features.overridden(cluster.kernel_overrides)
            self._check_kernel_for_mode(where, name, features, version)
            node_ip = NODE_NETWORK + 10 + index
            dataplane: Dataplane
            node = Node(
                name,
                index,
                node_ip,
                kernel_text,
                features,
                version,
                dataplane=DirectDataplane("direct"),  # replaced below
            )
            kind = cluster.dataplane
            if kind is DataplaneKind.IPVS:
                kernel = IpvsKernel(
                    features,
                    self._node_sysctls(
                        features, version, {**cluster.sysctls, **node_sysctls}, name
                    ),
                    self._timeouts(),
                )
                proxier = IpvsProxier(
                    node=name,
                    kernel=kernel,
                    profile=self.profile,
                    engine=self.engine,
                    scheduler=cluster.kube_proxy.scheduler,
                    sync_period=cluster.kube_proxy.sync_period,
                    min_sync_period=cluster.kube_proxy.min_sync_period,
                    services=[],
                    log=self.server_log,
                )
                node.kernel = kernel
                node.proxier = proxier
                dataplane = IpvsDataplane(kernel, cluster.rules, proxier.virtual, node_ip)
            else:
                if cluster.sysctls or node_sysctls:
                    self.warnings.append(
                        f"{name}: net.ipv4.vs sysctls have no effect in {kind.value} mode"
                    )
                if kind in (DataplaneKind.IPTABLES, DataplaneKind.NFTABLES):
                    dataplane = ConntrackNatDataplane(kind.value, self._rng("nat", name), node_ip)
                else:
                    dataplane = DirectDataplane(kind.value)
            node.dataplane = dataplane
            self.nodes.append(node)

    def _node_sysctls(
        self,
        features: KernelFeatures,
        version: tuple[int, int, int],
        overrides: dict[str, int],
        node: str,
    ) -> Sysctls:
        sysctls = apply_kube_proxy(Sysctls(), self.kube_version, version[:2])
        values = {}
        for raw, value in overrides.items():
            name = _sysctl_name(raw)
            if name not in Sysctls.names():
                raise ScenarioSetupError(
                    f"cluster.sysctls: {raw!r} is not a net.ipv4.vs sysctl the model has"
                    f" ({', '.join(Sysctls.names())})"
                )
            values[name] = value
        try:
            sysctls = replace(sysctls, **values)
            sysctls.check_kernel(features)
        except (SysctlError, TypeError) as err:
            raise ScenarioSetupError(f"cluster.sysctls on {node}: {err}") from None
        return sysctls

    def _timeouts(self) -> Timeouts:
        timeouts = Timeouts()
        config = self.scenario.cluster.kube_proxy
        wanted = (config.tcp_timeout, config.tcpfin_timeout, config.udp_timeout)
        if any(wanted):
            if not self.profile.timeout_flags:
                self.warnings.append(
                    f"kube-proxy {config.version} has no --ipvs-*-timeout flags (v1.18+, #85517);"
                    " the timeouts given are ignored"
                )
            else:
                # ipvsadm --set: whole seconds; 0 keeps the kernel's value.
                timeouts.set(*(max(1, t // SECOND) if t else 0 for t in wanted))
        return timeouts

    def _build_deployments(self) -> None:
        node_count = len(self.nodes)
        for spec in self.scenario.services:
            info = self.services[spec.name]
            d = spec.deployment
            placement = d.placement

            def place(index: int, placement: Placement = placement) -> int:
                return 0 if placement is Placement.PACKED else index % node_count

            deployment = Deployment(
                service=spec.name,
                replicas=d.replicas,
                template=PodTemplate(d.readiness_delay, d.termination_grace, d.serve_after_sigterm),
                max_surge=d.max_surge,
                max_unavailable=d.max_unavailable,
                place=place,
                engine=self.engine,
                ips=self.ips,
                on_change=self._endpoints_changed,
                registry=self.registry,
                on_gone=self.connector.pod_gone,
            )
            self.deployments[spec.name] = deployment
            for node in self.nodes:
                if node.proxier is not None:
                    node.proxier.services.append((info, deployment))

    def _build_clients(self) -> None:
        node_count = len(self.nodes)
        hosts: dict[tuple[int, tuple[int, int, int]], HostPorts] = {}
        for spec in self.scenario.clients:
            if spec.placement is Placement.ANTI_AFFINITY and spec.replicas > node_count:
                self.warnings.append(
                    f"client {spec.name}: anti-affinity places {node_count} of {spec.replicas}"
                    " replicas (one per node); the rest stay Pending"
                )
            replicas = (
                min(spec.replicas, node_count)
                if spec.placement is Placement.ANTI_AFFINITY
                else spec.replicas
            )
            pods: list[ClientPod] = []
            for replica in range(replicas):
                node_index = 0 if spec.placement is Placement.PACKED else replica % node_count
                node = self.nodes[node_index]
                if spec.kernel is not None:
                    try:
                        version = resolve_kernel(spec.kernel).version
                    except ValueError as err:
                        raise ScenarioSetupError(f"clients[{spec.name}].kernel: {err}") from None
                else:
                    version = node.kernel_version
                kernel_text = spec.kernel if spec.kernel is not None else node.kernel_text
                selection = (
                    PortSelection[spec.port_selection] if spec.port_selection is not None else None
                )
                if selection is None and _DISTRO_BUILD.match(kernel_text.strip()):
                    # x.y.0-N distro builds hide the stable updates they imported.
                    caveat = era_caveat(version)
                    if caveat is not None:
                        note = (
                            f"client {spec.name} on {kernel_text}: {caveat} with"
                            " clients[].port_selection"
                        )
                        if note not in self.warnings:
                            self.warnings.append(note)
                host = hosts.get((node_index, version))
                if host is None:
                    host = hosts[(node_index, version)] = HostPorts(
                        version,
                        rng=self._rng("host-ports", node_index, version),
                        selection=selection,
                    )
                ip = self.ips.allocate(node_index)
                sysctls = _netns_sysctls(spec)
                pod = ClientPod(
                    name=f"{spec.name}-{replica}",
                    spec=spec,
                    replica=replica,
                    node=node_index,
                    node_name=node.name,
                    ip=ip,
                    netns=ClientNetns(host, ip, sysctls),
                    dataplane=node.dataplane,
                    kernel_version=version,
                    syn=syn_send_offsets(version, spec.sysctls.tcp_syn_retries),
                    connect_timeout=spec.connect_timeout,
                    rng=self._rng("client", spec.name, replica),
                )
                pods.append(pod)
                self.clients.append(pod)
            self.clients_by_name[spec.name] = pods

    # -- wiring at run time --------------------------------------------------------------

    def start(self) -> None:
        """Pods up first (the run starts with the Deployments ready), then kube-proxy."""
        for deployment in self.deployments.values():
            deployment.start()
        self._started = True
        for node in self.nodes:
            if node.proxier is not None:
                node.proxier.start()
            else:
                config = self.scenario.cluster.kube_proxy
                node.runner = SyncRunner(
                    self.engine,
                    partial(self._program, node),
                    config.min_sync_period,
                    config.sync_period,
                )
                node.runner.start()
        self.engine.after(POD_SWEEP_US, self._sweep_pods)

    def _endpoints_changed(self) -> None:
        if not self._started:
            return
        for node in self.nodes:
            if node.proxier is not None:
                node.proxier.endpoints_changed()
            elif node.runner is not None:
                node.runner.request()

    def _program(self, node: Node) -> None:
        fallback = self.profile.terminating_fallback
        for name, info in self.services.items():
            pods = desired_endpoints(self.deployments[name], fallback)
            node.dataplane.program(info, [p.ip for p in pods])  # type: ignore[attr-defined]

    def _sweep_pods(self) -> None:
        now = self.engine.now
        for pod in self.registry.values():
            pod.tcp.sweep(now)
        self.engine.after(POD_SWEEP_US, self._sweep_pods)

    # -- what the flows ask -----------------------------------------------------------

    def pod_at(self, ip: int) -> Pod | None:
        return self.registry.get(ip)

    def pod_tcp(self, pod: Pod) -> PodTcp:
        return pod.tcp

    def pod_source_key(self, client: ClientPod, port: int) -> int:
        """The (source address, port) the pod sees: the node's with masquerade."""
        masquerade = getattr(client.dataplane, "masquerade_ip", 0)
        return PodTcp.key(masquerade or client.ip, port)

    def record(self, attempt: Attempt, result: Result, latency: int) -> None:
        record_attempt(self.trace, attempt, result, latency)


def _netns_sysctls(spec: ClientSpec) -> NetnsSysctls:
    s = spec.sysctls
    return NetnsSysctls(
        ip_local_port_range=s.ip_local_port_range,
        ip_local_reserved_ports=frozenset(s.ip_local_reserved_ports),
        tcp_tw_reuse=s.tcp_tw_reuse,
        tcp_timestamps=s.tcp_timestamps,
        tcp_syn_retries=s.tcp_syn_retries,
        tcp_max_tw_buckets=s.tcp_max_tw_buckets,
    )
