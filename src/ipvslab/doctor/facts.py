"""Facts derived from a snapshot that several checks share.

* the kernel era (preset or mainline features) from ``uname -r``;
* the effective ``net.ipv4.vs`` sysctls, each with where its value comes from:
  read on the node, what this kube-proxy version sets, or the kernel default;
* what kube-proxy of this version would set on this kernel;
* the node's exposure to the two reuse problems, found by running the reused-port
  SYN through the kernel twin (``ipvslab.explain``) with the node's settings;
* the protocol timeouts (kube-proxy's ``--ipvs-*-timeout`` flags, else defaults).

``exposure_for`` and ``with_kube_proxy`` ask the same exposure question for other
values (a proposed fix, what kube-proxy writes at its next start).

Pure: a function of the snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from ipvslab.cluster.kube_proxy import SysctlAction, kube_proxy_sysctls
from ipvslab.doctor.conn_summary import state_timeouts_of
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

    @property
    def bad_outcomes(self) -> frozenset[tuple[ServerCondition, str]]:
        """(old-server condition, problem) for every condition that shows a problem."""
        return frozenset(
            (c, e.problem) for c, e in self.explanations.items() if e.problem != "none"
        )

    def compare(self, other: Exposure) -> str:
        """How ``other`` compares with this one: "better", "worse", "same" or "different"."""
        mine, theirs = self.bad_outcomes, other.bad_outcomes
        if mine == theirs:
            return "same"
        if theirs < mine:
            return "better"
        if theirs > mine:
            return "worse"
        return "different"


@dataclass(frozen=True)
class NodeFacts:
    kernel: KernelResolution | None
    kernel_problem: str | None  # why the era is unknown, when it is
    kube_version: tuple[int, int, int] | None
    kube_actions: tuple[SysctlAction, ...]
    sysctls: dict[str, EffectiveSysctl]
    sysctl_problems: tuple[str, ...]
    exposure: Exposure | None  # None when the kernel era is unknown or uncertain
    timeouts: dict[tuple[str, str], int]
    # When the era is uncertain: the exposure if the kernel behaved like its guess (shown
    # as such, never used for findings).
    guessed_exposure: Exposure | None = None
    # Why the exposure cannot be judged although the kernel era is known (the values
    # that decide it are neither captured nor implied by a known kube-proxy version).
    exposure_problem: str | None = None
    # kube-proxy runs in IPVS mode but its version is unknown and the versions disagree
    # on this kernel: (version range, exposure with what that range sets), oldest first.
    exposure_by_kube_version: tuple[tuple[str, Exposure], ...] = ()

    @property
    def effective(self) -> Sysctls | None:
        try:
            return Sysctls(**{name: s.value for name, s in self.sysctls.items()})
        except (SysctlError, TypeError):
            return None

    def value(self, name: str) -> int | None:
        found = self.sysctls.get(name)
        return None if found is None else found.value

    @property
    def values(self) -> dict[str, int]:
        """The effective ``net.ipv4.vs`` values by short name."""
        return {name: s.value for name, s in self.sysctls.items()}


# What kube-proxy's IPVS proxier sets whatever its version: conntrack=1 (present from
# the first IPVS proxier, 1.8-era proxier.go, to the current one; fatal if it fails).
VERSION_INDEPENDENT_ACTIONS = (
    SysctlAction("conntrack", 1, "set by the IPVS proxier in every version (fatal if it fails)"),
)

# One kube-proxy version per range that writes the same net.ipv4.vs values
# (kube_proxy_sysctls): before #71114/#71834; 1.12.5+ (both back-ported); 1.13
# (conn_reuse_mode=0 only); 1.14-1.18 (#71834 too); 1.19-1.21 (#88541 skips kernels < 4.1);
# 1.22+ (#102122 leaves mode 1 on kernels >= 5.9; back-ported to 1.20.15 / 1.21.9).
KUBE_VERSION_RANGES: tuple[tuple[str, str | None, tuple[int, int, int]], ...] = (
    ("v1.11.0", "v1.12.4", (1, 11, 0)),
    ("v1.12.5", "v1.12.x", (1, 12, 5)),
    ("v1.13.0", "v1.13.x", (1, 13, 0)),
    ("v1.14", "v1.18", (1, 14, 0)),
    ("v1.19", "v1.21", (1, 19, 0)),
    ("v1.22", None, (1, 22, 0)),
)


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
    assumed: tuple[SysctlAction, ...] = ()
    if kube_version is not None and kernel is not None and _kube_ipvs(snapshot):
        kube_actions = tuple(kube_proxy_sysctls(kube_version, kernel.version[:2]))
    elif _kube_ipvs(snapshot):
        # Version unknown: only what every IPVS proxier version sets is certain.
        assumed = VERSION_INDEPENDENT_ACTIONS
    sysctls, problems = _effective_sysctls(snapshot, kernel, kube_actions or assumed)
    exposure = _exposure(kernel, sysctls) if kernel is not None else None
    guessed = None
    if kernel is not None and kernel.uncertain is not None:
        guessed, exposure = exposure, None
    exposure_problem = None
    by_version: tuple[tuple[str, Exposure], ...] = ()
    if exposure is not None and kube_version is None and _kube_ipvs(snapshot):
        assert kernel is not None
        by_version = _exposure_by_kube_version(snapshot, kernel)
        if by_version:
            exposure_problem = (
                "kube-proxy runs in IPVS mode but its version was not captured, and on this"
                " kernel the values it writes decide the exposure (v1.20.15+ and v1.21.9+"
                " write what v1.22 does); give --kube-proxy vX.Y.Z (`kube-proxy --version`"
                " or its image tag) or paste `sysctl -a`"
            )
            exposure = None
    unknown = [
        name
        for name in ("conn_reuse_mode", "conntrack")
        if sysctls[name].origin is ValueOrigin.DEFAULT
    ]
    if (
        exposure is not None
        and unknown
        and snapshot.kube_proxy is None
        and not snapshot.no_kube_proxy
        and snapshot.ipvs is not None
        and snapshot.ipvs.services
    ):
        # Every kube-proxy writes conntrack=1 and most write conn_reuse_mode: the kernel
        # defaults would be a guess that usually hides the problem kube-proxy causes.
        exposure_problem = (
            f"{', '.join('net.ipv4.vs.' + n for n in unknown)} not captured and nothing of"
            " kube-proxy either, so the values in force are unknown (the kernel defaults are"
            " rarely what a kube-proxy node runs); paste `sysctl -a` or give --kube-proxy"
        )
        guessed, exposure = exposure, None
    settings = snapshot.kube_proxy.settings if snapshot.kube_proxy else None
    timeouts = state_timeouts_of(snapshot.ipvs_timeouts, settings)
    return NodeFacts(
        kernel=kernel,
        kernel_problem=kernel_problem,
        kube_version=kube_version,
        kube_actions=kube_actions,
        sysctls=sysctls,
        sysctl_problems=problems,
        exposure=exposure,
        timeouts=timeouts,
        guessed_exposure=guessed,
        exposure_problem=exposure_problem,
        exposure_by_kube_version=by_version,
    )


def _exposure_by_kube_version(
    snapshot: NodeSnapshot, kernel: KernelResolution
) -> tuple[tuple[str, Exposure], ...]:
    """The exposure per kube-proxy version range, consecutive equal ranges merged; empty
    when every version gives the same (then the version does not matter here)."""
    merged: list[tuple[str, str | None, Exposure]] = []
    for first, last, version in KUBE_VERSION_RANGES:
        actions = tuple(kube_proxy_sysctls(version, kernel.version[:2]))
        sysctls, _ = _effective_sysctls(snapshot, kernel, actions)
        exposure = _exposure(kernel, sysctls)
        if exposure is None:
            continue
        if merged and merged[-1][2].bad_outcomes == exposure.bad_outcomes:
            merged[-1] = (merged[-1][0], last, exposure)
        else:
            merged.append((first, last, exposure))
    if len(merged) < 2:
        return ()
    return tuple(
        (f"{first}-{last}" if last else f"{first} and newer", exposure)
        for first, last, exposure in merged
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
        kernel = resolve_kernel(release.text, kernel_upstream(snapshot))
    except ValueError as exc:
        return None, str(exc)
    return kernel, kernel.uncertain


def kernel_upstream(snapshot: NodeSnapshot) -> tuple[int, int, int] | None:
    """The stable version the running release is built from, when the node tells it:
    Ubuntu's /proc/version_signature, else the Debian tag of /proc/version. Each counts
    only when it names the same release as ``uname -r`` (files of one boot)."""
    release = snapshot.kernel_release
    if release is None:
        return None
    signature = snapshot.version_signature
    if signature is not None and signature.release == release.text:
        return signature.upstream
    proc_version = snapshot.proc_version
    if proc_version is not None and proc_version.release == release.text:
        return proc_version.upstream
    return None


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


def with_kube_proxy(values: Mapping[str, int], actions: Iterable[SysctlAction]) -> dict[str, int]:
    """The values after kube-proxy's next start: it writes its values, leaves the rest."""
    out = dict(values)
    for action in actions:
        if action.value is not None:
            out[action.name] = action.value
    return out


@dataclass(frozen=True)
class SysctlFix:
    """A change of ``net.ipv4.vs`` values and the exposure the kernel twin gives with it."""

    changes: dict[str, int]  # short name -> new value (only values that change)
    exposure: Exposure  # this node's kernel with the change applied
    undone_by: tuple[SysctlAction, ...]  # what kube-proxy's next start writes over it

    @property
    def clears_all(self) -> bool:
        return not self.exposure.bad_outcomes


# Changes worth trying, smallest first. conntrack=0 is never proposed: kube-proxy's
# IPVS proxier needs it (its masquerade rules) and rewrites 1 at every start.
_FIX_CANDIDATES: tuple[dict[str, int], ...] = (
    {"expire_nodest_conn": 1},  # c95c07836fa4 (v5.16, stable 5.4.163...): fixes mode 0
    {"conn_reuse_mode": 1},  # f0a5e4d7a594 (v5.9, stable 5.4.59...): mode 1 without the drop
    {"conn_reuse_mode": 1, "expire_nodest_conn": 1},
    {"conn_reuse_mode": 1, "conn_reuse_old_conntrack": 1},  # TencentOS-kernel PR #17
    {"conn_reuse_mode": 1, "conn_reuse_old_conntrack": 1, "expire_nodest_conn": 1},
)


def sysctl_fixes(facts: NodeFacts) -> tuple[SysctlFix, ...]:
    """The sysctl changes that make this node's exposure strictly better, best first.

    Each is checked with the kernel twin on the node's kernel: a change is listed
    only when fewer (condition, problem) outcomes remain. Best first: clears every
    problem, then survives kube-proxy's next start, then fewest changes.
    """
    if facts.kernel is None or facts.exposure is None:
        return ()
    current = facts.values
    seen: set[tuple[tuple[str, int], ...]] = set()
    out: list[SysctlFix] = []
    for candidate in _FIX_CANDIDATES:
        changes = {
            name: value
            for name, value in candidate.items()
            if facts.sysctls[name].origin is not ValueOrigin.ABSENT and current[name] != value
        }
        key = tuple(sorted(changes.items()))
        if not changes or key in seen:
            continue
        seen.add(key)
        exposure = exposure_for(facts.kernel, {**current, **changes})
        if exposure is None or facts.exposure.compare(exposure) != "better":
            continue
        undone = tuple(
            a
            for a in facts.kube_actions
            if a.name in changes and a.value is not None and a.value != changes[a.name]
        )
        out.append(SysctlFix(changes, exposure, undone))
    out.sort(key=lambda f: (not f.clears_all, bool(f.undone_by), len(f.changes)))
    return tuple(out)


def _exposure(kernel: KernelResolution, sysctls: dict[str, EffectiveSysctl]) -> Exposure | None:
    return exposure_for(kernel, {name: s.value for name, s in sysctls.items()})


def exposure_for(kernel: KernelResolution, values: Mapping[str, int]) -> Exposure | None:
    """The exposure of this kernel with these ``net.ipv4.vs`` values (None if invalid)."""
    defaults = Sysctls()
    merged = {n: values.get(n, getattr(defaults, n)) for n in Sysctls.names()}
    try:
        Sysctls(**merged)
    except SysctlError:
        return None
    explanations: dict[ServerCondition, Explanation] = {}
    for condition in EXPOSURE_CONDITIONS:
        request = ExplainRequest(
            kernel=kernel.text,
            kernel_upstream=kernel.upstream,
            kube_proxy=None,
            old_state=TcpState.TIME_WAIT,
            server=condition,
            **merged,
        )
        explanations[condition] = explain(request)
    stale = any(
        e.problem == "problem 1"
        for c, e in explanations.items()
        if c is not ServerCondition.HEALTHY
    )
    drop = any(e.problem == "problem 2" for e in explanations.values())
    return Exposure(stale_forwarding=stale, syn_drop=drop, explanations=explanations)
