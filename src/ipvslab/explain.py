"""`ipvslab explain`: what does the kernel do with a SYN from a reused client port?

Pure: builds a two-server NAT (or DR) service on an `IpvsKernel` of the asked
era, drives an old connection from the client port into the asked state, changes
its real server (weight 0, pod gone, removed), then sends the new SYN and reports
the decision path with the commits behind it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ipvslab.cluster.kube_proxy import SysctlAction, kube_proxy_sysctls, parse_kube_version
from ipvslab.kernel.conntrack import ConntrackStatus
from ipvslab.kernel.decision import Outcome, StepKind
from ipvslab.kernel.dest import ForwardMethod
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.ipvs import IpvsKernel
from ipvslab.kernel.packet import Packet, Protocol, TcpFlags, parse_address
from ipvslab.kernel.presets import KernelResolution, list_presets, resolve_kernel
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import SECOND, TcpState

DEFAULT_KUBE_PROXY = "v1.31.0"

SYN = TcpFlags.SYN
ACK = TcpFlags.ACK
FIN = TcpFlags.FIN
RST = TcpFlags.RST


class ServerCondition(Enum):
    """What happened to the old connection's real server before the new SYN."""

    HEALTHY = "healthy"  # still weight 1 (plain port reuse)
    WEIGHT0 = "weight0"  # graceful termination: weight 0, pod still answering
    WEIGHT0_POD_GONE = "weight0-pod-gone"  # weight 0 but the pod is deleted (#81775)
    REMOVED = "removed"  # real server deleted from the service


# The packets (direction, flags) that take a fresh entry to each state, for NAT
# (both directions seen) and for output-less DR (input only): tcp_states[] rows.
_CLIENT, _SERVER = "in", "out"
NAT_PATHS: dict[TcpState, tuple[tuple[str, TcpFlags], ...]] = {
    TcpState.SYN_RECV: ((_CLIENT, SYN),),
    TcpState.ESTABLISHED: ((_CLIENT, SYN), (_SERVER, SYN | ACK), (_CLIENT, ACK)),
    TcpState.CLOSE_WAIT: (
        (_CLIENT, SYN),
        (_SERVER, SYN | ACK),
        (_CLIENT, ACK),
        (_CLIENT, FIN | ACK),
    ),
    TcpState.FIN_WAIT: ((_CLIENT, SYN), (_SERVER, SYN | ACK), (_CLIENT, ACK), (_SERVER, FIN | ACK)),
    TcpState.TIME_WAIT: (
        (_CLIENT, SYN),
        (_SERVER, SYN | ACK),
        (_CLIENT, ACK),
        (_CLIENT, FIN | ACK),
        (_SERVER, FIN | ACK),
        (_CLIENT, ACK),
    ),
    TcpState.CLOSE: ((_CLIENT, SYN), (_SERVER, SYN | ACK), (_CLIENT, ACK), (_CLIENT, RST)),
}
DR_PATHS: dict[TcpState, tuple[tuple[str, TcpFlags], ...]] = {
    TcpState.SYN_RECV: ((_CLIENT, SYN),),
    TcpState.ESTABLISHED: ((_CLIENT, SYN), (_CLIENT, ACK)),
    TcpState.FIN_WAIT: ((_CLIENT, SYN), (_CLIENT, ACK), (_CLIENT, FIN | ACK)),
    TcpState.TIME_WAIT: ((_CLIENT, SYN), (_CLIENT, FIN)),
    TcpState.CLOSE: ((_CLIENT, SYN), (_CLIENT, ACK), (_CLIENT, RST)),
}


class ExplainError(ValueError):
    """A combination explain cannot set up (named option and why)."""


@dataclass(frozen=True)
class ExplainRequest:
    kernel: str = "6.1"
    # The stable version a distro release is built from (/proc/version, version_signature).
    kernel_upstream: tuple[int, int, int] | None = None
    kube_proxy: str | None = DEFAULT_KUBE_PROXY  # None: no kube-proxy, node defaults
    conn_reuse_mode: int | None = None  # None: what kube-proxy leaves
    conntrack: int | None = None
    expire_nodest_conn: int | None = None
    expire_quiescent_template: int | None = None
    conn_reuse_old_conntrack: int | None = None
    old_state: TcpState = TcpState.TIME_WAIT
    server: ServerCondition = ServerCondition.WEIGHT0_POD_GONE
    forward: ForwardMethod = ForwardMethod.MASQ
    persistence: int = 0  # seconds of session affinity (0 = none)
    conntrack_status: ConntrackStatus | None = None  # None: from the conntrack twin
    age: int = 1  # seconds between the old connection's last packet and the new SYN


@dataclass(frozen=True)
class ExplainedStep:
    text: str
    commit: str


@dataclass(frozen=True)
class Explanation:
    request: ExplainRequest
    kernel: KernelResolution
    sysctls: Sysctls
    kube_proxy_actions: tuple[SysctlAction, ...]
    conntrack_status: ConntrackStatus
    outcome: Outcome
    steps: tuple[ExplainedStep, ...]
    destination: str  # "old server", "other server", "none"
    symptom: str
    problem: str  # "problem 1", "problem 2", "none"
    short: str  # a few words for the matrix
    warnings: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        r = self.request
        preset = self.kernel.preset
        return {
            "kernel": {
                "input": self.kernel.text,
                "version": self.kernel.version_text,
                "preset": preset.name if preset else None,
                "features": [f.value for f in self.kernel.features.enabled],
            },
            "sysctls": {name: getattr(self.sysctls, name) for name in Sysctls.names()},
            "kube_proxy": {
                "version": r.kube_proxy,
                "actions": [
                    {"sysctl": a.name, "value": a.value, "reason": a.reason}
                    for a in self.kube_proxy_actions
                ],
            },
            "old_entry": {
                "state": r.old_state.name,
                "server": r.server.value,
                "forward": r.forward.value,
                "persistence_seconds": r.persistence,
            },
            "conntrack_status": self.conntrack_status.value,
            "outcome": self.outcome.name,
            "outcome_text": self.outcome.value,
            "destination": self.destination,
            "symptom": self.symptom,
            "problem": self.problem,
            "summary": self.short,
            "path": [{"step": s.text, "commit": s.commit} for s in self.steps],
            "warnings": list(self.warnings),
        }


def _sysctls_for(
    request: ExplainRequest, resolution: KernelResolution
) -> tuple[Sysctls, tuple[SysctlAction, ...]]:
    values = {name: getattr(Sysctls(), name) for name in Sysctls.names()}
    actions: tuple[SysctlAction, ...] = ()
    if request.kube_proxy is not None:
        kube = parse_kube_version(request.kube_proxy)
        actions = tuple(kube_proxy_sysctls(kube, resolution.version[:2]))
        for action in actions:
            if action.value is not None:
                values[action.name] = action.value
    overrides = {
        "conn_reuse_mode": request.conn_reuse_mode,
        "conntrack": request.conntrack,
        "expire_nodest_conn": request.expire_nodest_conn,
        "expire_quiescent_template": request.expire_quiescent_template,
        "conn_reuse_old_conntrack": request.conn_reuse_old_conntrack,
    }
    for name, value in overrides.items():
        if value is not None:
            values[name] = value
    if not resolution.features.conn_reuse_mode:
        # The sysctl does not exist before v4.1: whatever kube-proxy tried, nothing changed.
        values["conn_reuse_mode"] = Sysctls().conn_reuse_mode
    return Sysctls(**values), actions


def explain(request: ExplainRequest) -> Explanation:
    """Run the reused-port SYN through the kernel twin and say what happened."""
    resolution = resolve_kernel(request.kernel, request.kernel_upstream)
    features: KernelFeatures = resolution.features
    sysctls, actions = _sysctls_for(request, resolution)
    paths = NAT_PATHS if request.forward.sees_replies else DR_PATHS
    if request.old_state not in paths:
        known = ", ".join(s.name for s in paths)
        raise ExplainError(
            f"--state {request.old_state.name} is not reachable with {request.forward.value} "
            f"forwarding; choose one of {known}"
        )
    kernel = IpvsKernel(features, sysctls)
    vip = parse_address("10.96.0.10")
    service = kernel.add_service(
        VirtualService(Protocol.TCP, vip, 80, "rr", persistence_timeout=request.persistence)
    )
    fwd = {"forward": request.forward}
    other = kernel.add_dest(service, parse_address("10.244.2.20"), 8080, 1, **fwd)
    old = kernel.add_dest(service, parse_address("10.244.1.10"), 8080, 1, **fwd)
    client = parse_address("10.244.3.30")

    def packet(flags: TcpFlags) -> Packet:
        return Packet(Protocol.TCP, client, 40000, vip, 80, flags)

    now = 0
    for direction, flags in paths[request.old_state]:
        now += 10
        if direction == _CLIENT:
            result = kernel.receive(packet(flags), now)
            if result.dest is not old:
                raise AssertionError("rr must place the first connection on the newest server")
        else:
            kernel.reply(packet(flags), flags, now)

    if request.server is ServerCondition.REMOVED:
        kernel.del_dest(service, old, now)
    elif request.server is not ServerCondition.HEALTHY:
        kernel.set_weight(service, old, 0)

    now += request.age * SECOND
    syn = packet(SYN)
    kernel.advance(now)
    from ipvslab.kernel.connection import connection_key

    key = connection_key(Protocol.TCP, client, 40000, vip, 80)
    ct_status = request.conntrack_status or kernel.conntrack_status(key, syn, now)
    warnings = list(resolution.warnings)
    if kernel.entry(syn) is None:
        warnings.append(
            f"the old entry had already expired after {request.age} s: the SYN meets no entry"
        )
    result = kernel.receive(syn, now, conntrack=ct_status)

    if result.dest is old:
        destination = "old server"
    elif result.dest is other:
        destination = "other server"
    else:
        destination = "none"
    symptom, problem, short = _symptom(request, result.outcome, destination, result.decision.path)
    steps = tuple(ExplainedStep(s.text, s.commit) for s in result.decision.path)
    return Explanation(
        request=request,
        kernel=resolution,
        sysctls=sysctls,
        kube_proxy_actions=actions,
        conntrack_status=ct_status,
        outcome=result.outcome,
        steps=steps,
        destination=destination,
        symptom=symptom,
        problem=problem,
        short=short,
        warnings=tuple(warnings),
    )


def _symptom(
    request: ExplainRequest, outcome: Outcome, destination: str, path: tuple[StepKind, ...]
) -> tuple[str, str, str]:
    """(symptom, problem, short label) as a user would meet it."""
    server = request.server
    if outcome is Outcome.DROP_SYN:
        return (
            "first SYN dropped: the client retries after 1 s (#70747)",
            "problem 2",
            "1 s SYN drop",
        )
    if outcome is Outcome.DROP_NO_DEST:
        if StepKind.EXPIRE_OLD in path or StepKind.NODEST_EXPIRE_DROP in path:
            return (
                "dropped; the retransmission 1 s later is scheduled afresh",
                "problem 2",
                "1 s drop (removed server)",
            )
        return (
            "dropped until the old entry expires: connections time out",
            "problem 1",
            "blackholed",
        )
    if outcome is Outcome.NO_DEST_AVAILABLE:
        return "no real server left to schedule", "none", "no server"
    if destination == "old server":
        if server is ServerCondition.WEIGHT0_POD_GONE:
            return (
                "sent to the deleted pod: 'no route to host' (#81775)",
                "problem 1",
                "to deleted pod",
            )
        if server is ServerCondition.WEIGHT0:
            return (
                "sent to the terminating pod: it never drains (#81775)",
                "problem 1",
                "to draining pod",
            )
        return "follows the old entry to the same server", "none", "same server"
    return "rescheduled at once", "none", "rescheduled"


def explain_all_presets(request: ExplainRequest) -> list[Explanation]:
    """The same question for every kernel preset (the `make reproduce` table)."""
    results = []
    for preset in list_presets():
        results.append(explain(ExplainRequest(**{**request.__dict__, "kernel": preset.name})))
    return results
