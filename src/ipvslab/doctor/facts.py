"""Facts derived from a snapshot that several checks share.

* the kernel era (preset or mainline features) from ``uname -r``;
* the effective ``net.ipv4.vs`` sysctls, each with where its value comes from:
  read on the node, what this kube-proxy version sets, or the kernel default;
* what kube-proxy of this version would set on this kernel;
* the node's exposure to the two reuse problems, found by running the reused-port
  SYN through the kernel twin (``ipvslab.explain``) with the node's settings;
* the protocol timeouts (kube-proxy's ``--ipvs-*-timeout`` flags, else defaults).

Pure: a function of the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ipvslab.cluster.kube_proxy import SysctlAction, kube_proxy_sysctls
from ipvslab.doctor.conn_summary import state_timeouts
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.explain import ExplainRequest, Explanation, ServerCondition, explain
from ipvslab.kernel.presets import KernelResolution, resolve_kernel
from ipvslab.kernel.sysctls import SysctlError, Sysctls
from ipvslab.kernel.tcp_states import TcpState


class ValueOrigin(Enum):
    NODE = "node"  # read from the node (/proc/sys or sysctl -a)
    KUBE_PROXY = "kube-proxy"  # not captured; what this kube-proxy version sets
    DEFAULT = "kernel default"  # not captured, nothing sets it: the kernel's default
    ABSENT = "not in this kernel"  # the sysctl does not exist in this era


@dataclass(frozen=True)
class EffectiveSysctl:
    name: str
    value: int
    origin: ValueOrigin


@dataclass(frozen=True)
class Exposure:
    """What a SYN from a reused client port does on this node, per old-server condition."""

    stale_forwarding: bool  # problem 1: follows the old entry to a weight-0 / deleted pod
    syn_drop: bool  # problem 2: first SYN dropped, 1 s delay
    explanations: dict[ServerCondition, Explanation] = field(default_factory=dict)

    @property
    def problems(self) -> tuple[str, ...]:
        out = []
        if self.stale_forwarding:
            out.append("problem 1")
        if self.syn_drop:
            out.append("problem 2")
        return tuple(out)


@dataclass(frozen=True)
class NodeFacts:
    kernel: KernelResolution | None
    kernel_problem: str | None  # why the era is unknown, when it is
    kube_version: tuple[int, int, int] | None
    kube_actions: tuple[SysctlAction, ...]
    sysctls: dict[str, EffectiveSysctl]
    sysctl_problems: tuple[str, ...]
    exposure: Exposure | None  # None when the kernel era is unknown
    timeouts: dict[tuple[str, str], int]

    @property
    def effective(self) -> Sysctls | None:
        try:
            return Sysctls(**{name: s.value for name, s in self.sysctls.items()})
        except (SysctlError, TypeError):
            return None

    def value(self, name: str) -> int | None:
        found = self.sysctls.get(name)
        return None if found is None else found.value


# The conditions the exposure question is asked for, with the state the old entry is in.
EXPOSURE_CONDITIONS = (
    ServerCondition.HEALTHY,
    ServerCondition.WEIGHT0,
    ServerCondition.WEIGHT0_POD_GONE,
    ServerCondition.REMOVED,
)


def node_facts(snapshot: NodeSnapshot) -> NodeFacts:
    kernel, kernel_problem = _kernel(snapshot)
    kp = snapshot.kube_proxy
    kube_version = kp.version.version if kp is not None and kp.version is not None else None
    kube_actions: tuple[SysctlAction, ...] = ()
    if kube_version is not None and kernel is not None and _kube_ipvs(snapshot):
        kube_actions = tuple(kube_proxy_sysctls(kube_version, kernel.version[:2]))
    sysctls, problems = _effective_sysctls(snapshot, kernel, kube_actions)
    exposure = _exposure(kernel, sysctls) if kernel is not None else None
    settings = snapshot.kube_proxy.settings if snapshot.kube_proxy else None
    timeouts = state_timeouts(
        settings.ipvs_tcp_timeout if settings else None,
        settings.ipvs_tcpfin_timeout if settings else None,
        settings.ipvs_udp_timeout if settings else None,
    )
    return NodeFacts(
        kernel=kernel,
        kernel_problem=kernel_problem,
        kube_version=kube_version,
        kube_actions=kube_actions,
        sysctls=sysctls,
        sysctl_problems=problems,
        exposure=exposure,
        timeouts=timeouts,
    )


def _kube_ipvs(snapshot: NodeSnapshot) -> bool:
    """kube-proxy runs in IPVS mode (or its mode is unknown but IPVS services exist)."""
    kp = snapshot.kube_proxy
    if kp is None:
        return False
    if kp.settings.mode is None:
        return snapshot.ipvs is not None and bool(snapshot.ipvs.services)
    return kp.ipvs_mode


def _kernel(snapshot: NodeSnapshot) -> tuple[KernelResolution | None, str | None]:
    release = snapshot.kernel_release
    if release is None:
        return None, "the kernel release was not captured (uname -r)"
    try:
        return resolve_kernel(release.text), None
    except ValueError as exc:
        return None, str(exc)


def _effective_sysctls(
    snapshot: NodeSnapshot,
    kernel: KernelResolution | None,
    kube_actions: tuple[SysctlAction, ...],
) -> tuple[dict[str, EffectiveSysctl], tuple[str, ...]]:
    defaults = Sysctls()
    by_kube = {a.name: a.value for a in kube_actions if a.value is not None}
    out: dict[str, EffectiveSysctl] = {}
    problems: list[str] = []
    for name in Sysctls.names():
        default = getattr(defaults, name)
        exists = kernel is None or _sysctl_exists(name, kernel)
        read = snapshot.sysctl_int(name)
        if snapshot.sysctls.get(f"net.ipv4.vs.{name}") is not None and read is None:
            problems.append(
                f"net.ipv4.vs.{name} = {snapshot.sysctls.get(f'net.ipv4.vs.{name}')!r}"
                " is not an integer; using the kernel default"
            )
        if not exists:
            out[name] = EffectiveSysctl(name, default, ValueOrigin.ABSENT)
        elif read is not None:
            out[name] = EffectiveSysctl(name, read, ValueOrigin.NODE)
        elif name in by_kube:
            value = by_kube[name]
            assert value is not None
            out[name] = EffectiveSysctl(name, value, ValueOrigin.KUBE_PROXY)
        else:
            out[name] = EffectiveSysctl(name, default, ValueOrigin.DEFAULT)
    try:
        Sysctls(**{name: s.value for name, s in out.items()})
    except SysctlError as exc:
        problems.append(str(exc))
    return out, tuple(problems)


def _sysctl_exists(name: str, kernel: KernelResolution) -> bool:
    if name == "conn_reuse_mode":
        return kernel.features.conn_reuse_mode
    if name == "conn_reuse_old_conntrack":
        return kernel.features.reuse_old_conntrack
    return True


def _exposure(kernel: KernelResolution, sysctls: dict[str, EffectiveSysctl]) -> Exposure | None:
    try:
        values = {name: s.value for name, s in sysctls.items()}
        Sysctls(**values)
    except SysctlError:
        return None
    explanations: dict[ServerCondition, Explanation] = {}
    for condition in EXPOSURE_CONDITIONS:
        request = ExplainRequest(
            kernel=kernel.text,
            kube_proxy=None,
            old_state=TcpState.TIME_WAIT,
            server=condition,
            **values,  # type: ignore[arg-type]
        )
        explanations[condition] = explain(request)
    stale = any(
        e.problem == "problem 1"
        for c, e in explanations.items()
        if c is not ServerCondition.HEALTHY
    )
    drop = any(e.problem == "problem 2" for e in explanations.values())
    return Exposure(stale_forwarding=stale, syn_drop=drop, explanations=explanations)
