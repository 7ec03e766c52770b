"""The symptoms of the seed documents, the claims they make, and the
configurations (kernels, settings, dataplanes, client layouts) run against them.

Each symptom is a scenario shipped in ``scenarios/`` (runnable with `ipvslab
run`), a figure that shows it, the threshold past which the symptom is there,
the claims of the seeds and public issues it reproduces, and a smaller
``quick`` variant (a narrower client port range keeps the reuse mechanism and
lets a few dozen connections per second show it).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import yaml

from ipvslab.reproduce.measure import Measures

Spec = dict[str, Any]
# A narrow client port range for quick runs: 1,000 even ports, so the 4.6-5.11
# sequential picker reuses a port within the 120 s IPVS TIME_WAIT from about
# 8 connections/s (client-tcp-ports.md §5.3, E/T_I) instead of 118.
QUICK_PORTS = "40000 41999"
# Above that edge, and below it once split over four client nodes (spread-clients).
QUICK_RATE = 30


def load_spec(name: str) -> Spec:
    """A built-in scenario as its YAML mapping (a fresh copy each time)."""
    text = resources.files("ipvslab.reproduce").joinpath("scenarios", f"{name}.yaml").read_text()
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def scenario_path(name: str) -> str:
    return str(resources.files("ipvslab.reproduce").joinpath("scenarios", f"{name}.yaml"))


def _client(spec: Spec) -> Spec:
    client: Spec = spec["clients"][0]
    return client


def _narrow_ports(spec: Spec) -> None:
    for client in spec["clients"]:
        client.setdefault("sysctls", {})["ip_local_port_range"] = QUICK_PORTS


@dataclass(frozen=True)
class Claim:
    source: str  # document and where
    text: str  # the sentence, in English
    check: Callable[[Measures, dict[str, Measures]], tuple[str, bool | None]]
    # -> (the measured figure in words, agrees? None when not comparable)


@dataclass(frozen=True)
class Symptom:
    name: str
    title: str  # short, for the matrix header
    figure: str  # what the number in the matrix is
    threshold: str  # when the symptom counts as present
    present: Callable[[Measures], bool]
    value: Callable[[Measures], str]
    quick: Callable[[Spec], None]
    claims: tuple[Claim, ...] = field(default=())

    def spec(self, quick: bool) -> Spec:
        spec = load_spec(self.name)
        if quick:
            self.quick(spec)
        return spec


# -- symptoms --------------------------------------------------------------------------


def _quick_rollout(spec: Spec) -> None:
    # Every port reused (1,000 even ports at 30/s: a 33 s cycle, 76 s once widened
    # 2.3 times by wide-ports-tw-reuse) before the event at 90 s.
    _narrow_ports(spec)
    spec["duration"] = "120s"
    _client(spec)["load"]["rate"] = QUICK_RATE
    spec["events"][0]["at"] = "90s"


def _quick_delay(spec: Spec) -> None:
    # 500 ports of each parity: the <= 4.1 picker (CentOS 7) walks all 1,000 and
    # reuses within 120 s from ~8 connections/s; 15 workers collapsed to one
    # connection per second each stay above that, as #70747's 300 did over 28,232.
    for client in spec["clients"]:
        client.setdefault("sysctls", {})["ip_local_port_range"] = "40000 40999"
    spec["duration"] = "12s"
    _client(spec)["load"]["workers"] = 15


def _quick_frozen(spec: Spec) -> None:
    _narrow_ports(spec)
    spec["duration"] = "125s"
    _client(spec)["load"]["rate"] = QUICK_RATE
    spec["events"][0]["at"] = "90s"
    deployment = spec["services"][0]["deployment"]
    deployment["readiness_delay"] = "2s"
    deployment["serve_after_sigterm"] = "20s"
    deployment["termination_grace"] = "30s"


def _quick_sticky(spec: Spec) -> None:
    spec["duration"] = "70s"
    spec["events"][0]["at"] = "10s"
    _client(spec)["replicas"] = 5


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def _seed000_cps(m: Measures, others: dict[str, Measures]) -> tuple[str, bool | None]:
    before = others.get("conn-reuse-mode-0")
    if before is None or not before.late_rate:
        return "no mode-0 run to compare", None
    ratio = m.late_rate / before.late_rate
    return (
        f"{before.late_rate:,.0f} -> {m.late_rate:,.0f} connections/s (x{ratio:.3f})",
        ratio <= 0.1,
    )


def _issue70747(m: Measures, others: dict[str, Measures]) -> tuple[str, bool | None]:
    p50 = m.late_connect_p50_ms
    return (
        f"steady state: median connect {_ms(p50)}, p99 {_ms(m.connect_p99_ms)},"
        f" {m.late_rate:,.0f}/s. The median agrees; the rate is the workers' count per"
        " second here because every reused SYN waits 1 s, while #70747's mean connect of"
        " 722 ms shows about a quarter of its connections were not delayed",
        p50 is not None and p50 >= 900,
    )


def _issue93297(m: Measures, others: dict[str, Measures]) -> tuple[str, bool | None]:
    fixed = others.get("kernel-5.9-kube-proxy-1.22")
    if fixed is None:
        return "no 5.9 run to compare", None
    return (
        f"on 5.10 + kube-proxy 1.22: p99 connect {_ms(fixed.connect_p99_ms)},"
        f" {fixed.first_syn_dropped} SYNs dropped, {fixed.late_rate:,.0f}/s",
        fixed.first_syn_dropped == 0,
    )


SYMPTOMS: tuple[Symptom, ...] = (
    Symptom(
        name="no-route-to-host",
        title="no route",
        figure="errors after the rollout starts",
        threshold="> 1% of connections fail",
        present=lambda m: m.error_rate_after_event > 0.01,
        value=lambda m: f"{m.error_rate_after_event:.0%}",
        quick=_quick_rollout,
        claims=(
            Claim(
                "seed 001 (TKE write-up)",
                "After a rolling update the old pod's real server stays at weight 0 with many"
                " TIME_WAIT entries, new connections are still forwarded to it, and reach"
                " 'no route to host' once the pod is destroyed.",
                lambda m, o: (
                    f"{m.error_rate_after_event:.0%} of connections after the rollout failed;"
                    f" {m.stuck_servers} old server(s) never deleted",
                    m.error_rate_after_event > 0.01 and m.stuck_servers > 0,
                ),
            ),
            Claim(
                "seed 002 (Huawei CCE FAQ), problem 1",
                "With conn_reuse_mode=0 reused ports go to the old backend; if that pod was"
                " deleted or rebuilt, access to the Service fails, and the old real server is"
                " never removed under high concurrency.",
                lambda m, o: (
                    f"{m.failed_after_event:,} failed connections,"
                    f" {m.stuck_servers} stuck server(s)",
                    m.failed_after_event > 0 and m.stuck_servers > 0,
                ),
            ),
        ),
    ),
    Symptom(
        name="one-second-delay",
        title="1 s delay",
        figure="p99 connect time",
        threshold="p99 connect >= 900 ms",
        present=lambda m: m.connect_p99_ms is not None and m.connect_p99_ms >= 900,
        value=lambda m: _ms(m.connect_p99_ms),
        quick=_quick_delay,
        claims=(
            Claim(
                "seed 000 (imroc)",
                "Enabling conn_reuse_mode=1 cut connections per second from about 30,000 to"
                " 1,500 in testing (the first SYN of a reused port is dropped, 1 s to retry).",
                _seed000_cps,
            ),
            Claim(
                "kubernetes#70747 / PR #71114",
                "ab -c300 against a ClusterIP: 408 requests/s, median connect time 999 ms.",
                _issue70747,
            ),
            Claim(
                "kubernetes#93297",
                "On 5.9-rc2 with conn_reuse_mode=1: 2,423 requests/s, no failures (no drop).",
                _issue93297,
            ),
        ),
    ),
    Symptom(
        name="frozen-load",
        title="frozen",
        figure="share of new connections to terminating pods while the new ones are ready",
        threshold="> 50%",
        present=lambda m: m.frozen_share > 0.5,
        value=lambda m: f"{m.frozen_share:.0%}",
        quick=_quick_frozen,
        claims=(
            Claim(
                "seed 000, item 2",
                "During a rolling update reused connections are not rescheduled, so new"
                " connections stay 'frozen' on some pods.",
                lambda m, o: (
                    f"{m.frozen_share:.0%} of new connections went to terminating pods while"
                    " every new pod was ready",
                    m.frozen_share > 0.5,
                ),
            ),
        ),
    ),
    Symptom(
        name="starved-scale-out",
        title="starved",
        figure="new pods' share of new connections after a scale-out",
        threshold="< half of their fair share",
        present=lambda m: (
            m.new_pods_share is not None
            and m.fair_share is not None
            and m.new_pods_share < m.fair_share / 2
        ),
        value=lambda m: "-" if m.new_pods_share is None else f"{m.new_pods_share:.0%}",
        quick=_quick_rollout,
        claims=(
            Claim(
                "seed 000, item 3",
                "Newly scaled-out pods receive little traffic: new connections stay on the"
                " pods from before the scale-out.",
                lambda m, o: (
                    f"new pods got {m.new_pods_share or 0:.0%} of new connections (fair"
                    f" {m.fair_share or 0:.0%})",
                    m.new_pods_share is not None
                    and m.fair_share is not None
                    and m.new_pods_share < m.fair_share / 2,
                ),
            ),
        ),
    ),
    Symptom(
        name="sticky-dead-pod",
        title="sticky",
        figure="failed reconnects after the release",
        threshold="> 0",
        present=lambda m: m.failed_after_event > 0,
        value=lambda m: f"{m.failed_after_event:,}",
        quick=_quick_sticky,
        claims=(
            Claim(
                "seed 003",
                "Websocket connections fail with '504 bad handshake' for about a minute after"
                " each release; setting expire_quiescent_template=1 fixes it.",
                lambda m, o: (
                    f"reconnects failed for {m.failure_window_s:.0f} s after the release"
                    f" ({m.failed_after_event:,} failures), until kube-proxy's next 1-minute"
                    " check deleted the old server: up to a minute, depending on when the"
                    " release falls between two checks",
                    m.failed_after_event > 0 and 0 < m.failure_window_s <= 60,
                ),
            ),
        ),
    ),
)

SYMPTOM_BY_NAME = {s.name: s for s in SYMPTOMS}


# -- configurations ---------------------------------------------------------------------


@dataclass(frozen=True)
class Configuration:
    name: str
    title: str  # <= 26 characters, the matrix row
    description: str
    applies_to: tuple[str, ...]
    change: Callable[[Spec], None]

    def apply(self, spec: Spec) -> Spec:
        changed = copy.deepcopy(spec)
        self.change(changed)
        changed["name"] = f"{spec['name']} / {self.name}"
        return changed


def _cluster(**values: Any) -> Callable[[Spec], None]:
    def change(spec: Spec) -> None:
        cluster = spec.setdefault("cluster", {})
        for key, value in values.items():
            if key == "kube_proxy":
                cluster.setdefault("kube_proxy", {}).update(value)
            elif key == "sysctls":
                cluster.setdefault("sysctls", {}).update(value)
            else:
                cluster[key] = value

    return change


def _spread_clients(spec: Spec) -> None:
    spec.setdefault("cluster", {})["nodes"] = 4
    for client in spec["clients"]:
        client["replicas"] = 4
        client["placement"] = "anti-affinity"


# 1024-65535 against the default 32768-60999: 64,512 / 28,232 ports.
WIDER = 64512 / 28232


def _wide_ports_tw_reuse(spec: Spec) -> None:
    """The client's port range made as much wider as 1024-65535 is than the
    default (so a quick run's narrow range widens in the same proportion)."""
    for client in spec["clients"]:
        sysctls = client.setdefault("sysctls", {})
        low, high = (int(x) for x in str(sysctls.get("ip_local_port_range", "32768 60999")).split())
        if (low, high) == (32768, 60999):
            sysctls["ip_local_port_range"] = "1024 65535"
        else:
            width = round((high - low + 1) * WIDER)
            sysctls["ip_local_port_range"] = f"{low} {min(65535, low + width - 1)}"
        sysctls["tcp_tw_reuse"] = 1


ROLLOUT_LIKE = ("no-route-to-host", "frozen-load", "starved-scale-out")
REUSE_SYMPTOMS = (*ROLLOUT_LIKE, "one-second-delay")
ALL = (*REUSE_SYMPTOMS, "sticky-dead-pod")

CONFIGURATIONS: tuple[Configuration, ...] = (
    Configuration(
        "baseline",
        "as in the seed",
        "The scenario as the seed describes it.",
        ALL,
        lambda spec: None,
    ),
    Configuration(
        "kernel-5.9-kube-proxy-1.22",
        "kernel 5.10 + kp 1.22",
        "Kernel >= 5.9 (f0a5e4d7: no drop for a new conntrack) with kube-proxy >= 1.22,"
        " which leaves conn_reuse_mode=1 there (#102122).",
        REUSE_SYMPTOMS,
        _cluster(kernel="5.10", kube_proxy={"version": "v1.22.0"}),
    ),
    Configuration(
        "kernel-5.16",
        "kernel 5.16, mode 0 kept",
        "Kernel >= 5.16 (c95c07836fa4): with expire_nodest_conn=1 a reused port leaves a"
        " weight-0 server even in conn_reuse_mode=0 (kube-proxy 1.17 still sets 0).",
        ROLLOUT_LIKE,
        _cluster(kernel="5.16"),
    ),
    Configuration(
        "tencentos",
        "TencentOS kernel, mode 1",
        "TencentOS-kernel PR #17 (conn_reuse_old_conntrack): mode 1 reschedules without the"
        " drop, as TKE runs it (conn_reuse_mode=1 set after kube-proxy).",
        REUSE_SYMPTOMS,
        _cluster(kernel="tencentos-5.4", sysctls={"conn_reuse_mode": 1}),
    ),
    Configuration(
        "conn-reuse-mode-0",
        "conn_reuse_mode=0",
        "What kube-proxy 1.13-1.18 set against #70747: no drop, but reused ports stick to"
        " their old server (problem 1).",
        ("one-second-delay",),
        _cluster(sysctls={"conn_reuse_mode": 0}),
    ),
    Configuration(
        "expire-quiescent-template",
        "expire_quiescent_template",
        "net.ipv4.vs.expire_quiescent_template=1 (kube-proxy sets it from 1.14 / 1.12.5):"
        " a persistence template to a weight-0 server is invalidated.",
        ("sticky-dead-pod",),
        _cluster(sysctls={"expire_quiescent_template": 1}),
    ),
    Configuration(
        "expire-nodest-conn",
        "expire_nodest_conn=1",
        "net.ipv4.vs.expire_nodest_conn=1 (kube-proxy sets it from 1.14, so only the"
        " kube-proxy 1.12 scenario lacks it): entries of removed servers are expired; a"
        " weight-0 server is not removed, so the affinity template stays.",
        ("sticky-dead-pod",),
        _cluster(sysctls={"expire_nodest_conn": 1}),
    ),
    Configuration(
        "lower-ipvs-timeouts",
        "--ipvs-tcpfin-timeout 10s",
        "kube-proxy 1.18 --ipvs-tcp-timeout 60s --ipvs-tcpfin-timeout 10s (#85517):"
        " ipvsadm --set writes ESTABLISHED and FIN_WAIT, not TIME_WAIT (seed 001).",
        ("no-route-to-host",),
        _cluster(kube_proxy={"version": "v1.18.0", "tcp_timeout": "60s", "tcpfin_timeout": "10s"}),
    ),
    Configuration(
        "iptables-mode",
        "kube-proxy iptables mode",
        "Conntrack NAT picks the endpoint; a SYN on a closed conntrack entry is NATed"
        " afresh (kube-proxy-ipvs.md §5).",
        ALL,
        _cluster(dataplane="iptables"),
    ),
    Configuration(
        "nftables-mode",
        "nftables mode (5.15, 1.33)",
        "kube-proxy nftables mode (GA 1.33; needs kernel >= 5.13): the way out of the"
        " deprecated IPVS mode.",
        ALL,
        _cluster(dataplane="nftables", kernel="5.15", kube_proxy={"version": "v1.33.0"}),
    ),
    Configuration(
        "lb-to-pods",
        "LB / ingress to pod IPs",
        "A load balancer or ingress straight to pod IPs (seed 000, north-south): no IPVS.",
        REUSE_SYMPTOMS,
        _cluster(dataplane="direct"),
    ),
    Configuration(
        "service-mesh",
        "service mesh sidecar",
        "A sidecar proxy picks the endpoint (seed 000, east-west): no IPVS.",
        REUSE_SYMPTOMS,
        _cluster(dataplane="mesh"),
    ),
    Configuration(
        "spread-clients",
        "4 clients, anti-affinity",
        "More client replicas spread one per node (seed 001's advice): each node's IPVS"
        " sees a quarter of the rate, below the reuse threshold.",
        ROLLOUT_LIKE,
        _spread_clients,
    ),
    Configuration(
        "wide-ports-tw-reuse",
        "wide port range+tw_reuse",
        "Client ip_local_port_range 1024-65535 and tcp_tw_reuse=1: more ports only move the"
        " reuse threshold; tw_reuse only matters when the client closes first.",
        REUSE_SYMPTOMS,
        _wide_ports_tw_reuse,
    ),
)

CONFIGURATION_BY_NAME = {c.name: c for c in CONFIGURATIONS}
