"""Finding 1: is this node exposed to the two reuse problems, and why.

The question is answered by the kernel twin (``facts.exposure``): a SYN from a
client port whose old IPVS entry is in TIME_WAIT, with the node's kernel era and
its effective ``net.ipv4.vs`` values, for each thing that may have happened to
the old real server (healthy, weight 0, weight 0 with the pod gone, removed).

* STALE_FORWARDING_EXPOSURE (problem 1, #81775): the SYN follows the old entry to
  a weight-0 or deleted server (or is blackholed when the server was removed).
* SYN_DROP_EXPOSURE (problem 2, #70747): the first SYN is dropped, 1 s delay.

The evidence spells out the decision path with its commits, every value with
where it came from (node / what kube-proxy vX sets / kernel default) and the
kernel preset's evidence. Fixes are sysctl changes the twin has checked on this
kernel (``facts.sysctl_fixes``), with what kube-proxy's next start does to them,
else the kernel versions that carry the fixes.

Severity:

* stale forwarding: warning; critical when the connection table shows it now:
  entries touched in the last 10 s on a weight-0 real server (ESTABLISHED not
  counted: a long-lived connection draining normally) or on a real server no
  longer in its service (any state).
* SYN drop: warning when a reused port of a healthy server loses its SYN; info
  when only a reuse onto a removed server does; critical when some client ×
  service pair reuses ports at p >= 10 % (``port_pressure``), i.e. it is happening.

No finding when the kernel era is unknown, when the node has no IPVS (read live
without /proc/net/ip_vs), or when kube-proxy runs in another mode and the IPVS
table holds no service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ipvslab.cluster.kube_proxy import kube_proxy_sysctls, parse_kube_version
from ipvslab.doctor.checks._common import foreign_table_line, kube_proxy_not_ipvs
from ipvslab.doctor.checks.port_pressure import pressures
from ipvslab.doctor.facts import (
    VERSION_INDEPENDENT_ACTIONS,
    Exposure,
    NodeFacts,
    SysctlFix,
    ValueOrigin,
    exposure_for,
    sysctl_fixes,
)
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.records import ServiceEntry
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.doctor.wording import n_entries, plural
from ipvslab.explain import DEFAULT_KUBE_PROXY, Explanation, ServerCondition
from ipvslab.kernel.features import FEATURE_INFO, Feature
from ipvslab.kernel.presets import STABLE_BACKPORTS, KernelResolution, get_preset

PRESSURE_CRITICAL = 0.10
# The kube-proxy "upgrade kube-proxy" means: explain's default (v1.31.0), current
# behaviour since #102122 (v1.22.0).
LATEST_KUBE_PROXY = parse_kube_version(DEFAULT_KUBE_PROXY)

CONDITION_LABELS = {
    ServerCondition.HEALTHY: "old server healthy (weight 1)",
    ServerCondition.WEIGHT0: "old server at weight 0, pod still running",
    ServerCondition.WEIGHT0_POD_GONE: "old server at weight 0, pod deleted",
    ServerCondition.REMOVED: "old server removed from the service",
}

# The behaviour changes that decide the two problems, in the order they are reported.
RELEVANT_FEATURES = (
    Feature.CONN_REUSE_MODE,  # d752c364 (v4.1)
    Feature.FIRST_SYN_DROP,  # f719e3754 (problem 2's drop)
    Feature.UNCONFIRMED_CONNTRACK_REUSE,  # f0a5e4d7a594 (v5.9): no drop in mode 1
    Feature.NODEST_RESCHEDULE,  # 04231e52d355 (v5.9): removed server rescheduled
    Feature.WEIGHT0_RESCHEDULE_ANY_MODE,  # c95c07836fa4 (v5.16): weight 0 in mode 0
    Feature.REUSE_OLD_CONNTRACK,  # TencentOS-kernel PR #17
)

# Presets whose own kernel line has no known build with the 5.9 / 5.16 fixes.
NO_FIXED_BUILD = frozenset(
    {"centos-7.6", "centos-7", "euleros-2.5", "ubuntu-18.04", "ubuntu-16.04"}
)

SYSCTL_FILE = "/etc/sysctl.d/90-ipvs-reuse.conf"
MODULES_FILE = "/etc/modules-load.d/ipvs.conf"


@dataclass
class LiveServer:
    """Entries of one virtual service to one weight-0 or removed real server."""

    service: str
    dest: str
    weight: int | None  # None: not in the service any more
    entries: int = 0
    recent: int = 0  # touched in the last 10 s (weight 0: ESTABLISHED not counted)
    states: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        where = "removed from the service" if self.weight is None else "weight 0"
        states = ", ".join(f"{s} {n}" for s, n in sorted(self.states.items(), key=lambda x: -x[1]))
        return (
            f"{self.service} -> {self.dest} ({where}): {n_entries(self.entries)} ({states}),"
            f" {self.recent} touched in the last 10 s"
        )


def live_servers(snapshot: NodeSnapshot) -> list[LiveServer]:
    """Weight-0 and removed real servers that still have entries, busiest first."""
    table, conns = snapshot.ipvs, snapshot.conns
    if table is None or conns is None:
        return []
    weights: dict[tuple[str, str, int], dict[tuple[str, int], int]] = {}
    by_key: dict[tuple[str, str, int], ServiceEntry] = {}
    for svc in table.services:
        if svc.protocol is None or svc.address is None:
            continue
        by_key[(svc.protocol.name, str(svc.address), svc.port)] = svc
        weights[(svc.protocol.name, str(svc.address), svc.port)] = {
            (str(d.address), d.port): d.weight for d in svc.destinations
        }
    found: dict[tuple[str, str, int, str, int], LiveServer] = {}
    for group, stats in conns.groups.items():
        skey = (group.protocol, str(group.virtual_addr), group.virtual_port)
        dests = weights.get(skey)
        if dests is None:
            continue
        dkey = (str(group.dest_addr), group.dest_port)
        weight = dests.get(dkey, None)
        if weight is not None and weight != 0:
            continue
        if weight is None and by_key[skey].may_list(group.dest_addr, group.dest_port):
            continue  # its line may be the one that could not be read
        key = (group.protocol, str(group.virtual_addr), group.virtual_port, *dkey)
        live = found.get(key)
        if live is None:
            live = found[key] = LiveServer(
                f"{group.protocol} {_hostport(str(group.virtual_addr), group.virtual_port)}",
                _hostport(dkey[0], dkey[1]),
                weight,
            )
        live.entries += stats.count
        live.states[group.state] = live.states.get(group.state, 0) + stats.count
        if weight is None or group.state != "ESTABLISHED":
            live.recent += stats.recent
    return sorted(found.values(), key=lambda s: (-s.recent, -s.entries, s.service, s.dest))


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _relevant(snapshot: NodeSnapshot) -> bool:
    if snapshot.ipvs_present is False:
        return False
    if kube_proxy_not_ipvs(snapshot) is not None:
        # kube-proxy in another mode: only an IPVS table that carries traffic matters (a
        # leftover of IPVS mode is inert; keepalived or lvscare are not). Without the
        # connection table, that cannot be told: say it with the findings.
        table, conns = snapshot.ipvs, snapshot.conns
        if table is None or not table.services:
            return False
        return conns is None or conns.total > 0
    return True


def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
    exposure = facts.exposure
    if facts.kernel is None or exposure is None or not _relevant(snapshot):
        return []
    out: list[Finding] = []
    fixes = sysctl_fixes(facts)
    if exposure.stale_forwarding:
        out.append(_stale(snapshot, facts, facts.kernel, exposure, fixes))
    if exposure.syn_drop:
        out.append(_drop(snapshot, facts, facts.kernel, exposure, fixes))
    return out


# --------------------------------------------------------------------------- findings


def _stale(
    snapshot: NodeSnapshot,
    facts: NodeFacts,
    kernel: KernelResolution,
    exposure: Exposure,
    fixes: tuple[SysctlFix, ...],
) -> Finding:
    conditions = _conditions(exposure, "problem 1")
    live = live_servers(snapshot)
    happening = [s for s in live if s.recent > 0]
    severity = Severity.CRITICAL if happening else Severity.WARNING
    evidence = [*_reason_lines(snapshot, facts, kernel, exposure, conditions)]
    for server in live[:5]:
        evidence.append(server.line())
    if happening:
        evidence.append(
            "traffic reaches weight-0 or removed servers now: on this node that is what"
            " reused ports do"
        )
    title = (
        f"reused client ports follow old IPVS entries to weight-0 or deleted pods"
        f" (problem 1, #81775) on kernel {kernel.text}"
    )
    if happening:
        title += f": happening now on {plural(len(happening), 'real server')}"
    hold = facts.timeouts.get(("TCP", "TIME_WAIT"), 120)
    meaning = (
        "A new connection from a client port that still has an IPVS entry (a closed"
        f" connection's entry lives {hold} s in TIME_WAIT) is not scheduled: it goes to the old"
        " entry's real server. At weight 0 the terminating pod keeps getting new connections"
        " and never drains (kube-proxy removes it only when ActiveConn + InActConn reach 0);"
        " once the pod is deleted those connections fail with 'no route to host' or time"
        " out. Rolling updates and scale-downs of services with busy short-connection clients"
        " break."
    )
    return Finding(
        kind=FindingKind.STALE_FORWARDING_EXPOSURE,
        severity=severity,
        title=title,
        evidence=tuple(evidence),
        meaning=meaning,
        fix=_fix_lines(facts, kernel, exposure, fixes, "problem 1"),
        subject=f"kernel {kernel.text}",
        data=_data(facts, kernel, exposure, fixes, live),
    )


def _drop(
    snapshot: NodeSnapshot,
    facts: NodeFacts,
    kernel: KernelResolution,
    exposure: Exposure,
    fixes: tuple[SysctlFix, ...],
) -> Finding:
    conditions = _conditions(exposure, "problem 2")
    every_reuse = ServerCondition.HEALTHY in conditions
    pressure = [p for p in pressures(snapshot, facts) if p.p_server_closes >= PRESSURE_CRITICAL]
    if every_reuse:
        severity = Severity.CRITICAL if pressure else Severity.WARNING
    else:
        severity = Severity.INFO
    evidence = [*_reason_lines(snapshot, facts, kernel, exposure, conditions)]
    for item in pressure[:3]:
        evidence.append(
            f"port reuse now: {item.label} at ~{item.rate:.0f} conn/s, p ≈"
            f" {item.p_server_closes:.0%} of new connections reuse a held port"
        )
    if every_reuse:
        title = (
            f"every reused client port loses its first SYN: 1 s connect delay"
            f" (problem 2, #70747) on kernel {kernel.text}"
        )
        meaning = (
            "When a client reuses a source port whose IPVS entry is still in TIME_WAIT, the"
            " kernel reschedules the connection but drops its first SYN (the entry's conntrack"
            " must be replaced); the client retransmits after 1 s. Busy short-connection"
            " clients see connect times of 1 s (#70747's measurements also show some at 3 s,"
            " when the retransmission is dropped too) on a share of their connections, and"
            " throughput collapses (#70747)."
        )
    else:
        title = (
            f"a reused client port whose real server was removed loses its first SYN"
            f" (1 s delay) on kernel {kernel.text}"
        )
        meaning = (
            "Only when the old entry's real server has been removed from the service: the"
            " SYN is dropped and the old entry expired (expire_nodest_conn=1), so the"
            " retransmission 1 s later is scheduled afresh. kube-proxy keeps a TCP real server"
            " at weight 0 until its entries are gone, so this mostly follows kube-proxy"
            " restarts or manual ipvsadm changes."
        )
    return Finding(
        kind=FindingKind.SYN_DROP_EXPOSURE,
        severity=severity,
        title=title,
        evidence=tuple(evidence),
        meaning=meaning,
        fix=_fix_lines(facts, kernel, exposure, fixes, "problem 2"),
        subject=f"kernel {kernel.text}",
        data=_data(facts, kernel, exposure, fixes, live_servers(snapshot)),
    )


PROBLEM_NAMES = {
    "problem 1": "problem 1 (stale forwarding, #81775)",
    "problem 2": "problem 2 (1 s first-SYN drop, #70747)",
}


def describe_problems(exposure: Exposure | None) -> str:
    """The problems in words; "no problem", or "unknown" without an exposure."""
    if exposure is None:
        return "unknown"
    return " and ".join(PROBLEM_NAMES[p] for p in exposure.problems) or "no problem"


def _conditions(exposure: Exposure, problem: str) -> dict[ServerCondition, Explanation]:
    return {c: e for c, e in exposure.explanations.items() if e.problem == problem}


# --------------------------------------------------------------------------- evidence


def _reason_lines(
    snapshot: NodeSnapshot,
    facts: NodeFacts,
    kernel: KernelResolution,
    exposure: Exposure,
    conditions: dict[ServerCondition, Explanation],
) -> list[str]:
    lines = [*kernel_lines(kernel), *sysctl_lines(facts)]
    other_mode = kube_proxy_not_ipvs(snapshot)
    if other_mode is not None:
        lines.insert(0, foreign_table_line(other_mode))
    for condition, explanation in conditions.items():
        lines.append(
            f"{CONDITION_LABELS[condition]}: {explanation.symptom}; path: {_path(explanation)}"
        )
    return lines


def _path(explanation: Explanation) -> str:
    return " -> ".join(f"{s.text} [{s.commit}]" if s.commit else s.text for s in explanation.steps)


def kernel_lines(kernel: KernelResolution) -> list[str]:
    """The kernel, its preset with the preset's evidence, and the features that matter."""
    preset = kernel.preset
    if preset is not None:
        assumed = " (row assumed)" if preset.assumed else ""
        lines = [
            f"kernel {kernel.text}: preset {preset.name} ({preset.distro}){assumed};"
            f" evidence: {preset.evidence}"
        ]
    else:
        lines = [f"kernel {kernel.text}: mainline {kernel.version_text} with stable backports"]
    lines.extend(f"kernel note: {w}" for w in kernel.warnings)
    have: list[str] = []
    lack: list[str] = []
    tencent = preset is not None and preset.name.startswith("tencentos")
    for feature in RELEVANT_FEATURES:
        present = kernel.features.has(feature)
        if feature is Feature.REUSE_OLD_CONNTRACK and not (present or tencent):
            continue  # a TencentOS-only patch: not worth a line elsewhere
        (have if present else lack).append(_feature_name(feature))
    if have:
        lines.append("has: " + "; ".join(have))
    if lack:
        lines.append("lacks: " + "; ".join(lack))
    return lines


def _feature_name(feature: Feature) -> str:
    info = FEATURE_INFO[feature]
    commit = info.commit
    if all(c in "0123456789abcdef" for c in commit):
        commit = commit[:12]
    return f"{commit} {info.title!r}"


def origin_text(facts: NodeFacts, name: str) -> str:
    """Where an effective value comes from, in words."""
    eff = facts.sysctls[name]
    if eff.origin is ValueOrigin.NODE:
        return "read on the node"
    if eff.origin is ValueOrigin.KUBE_PROXY:
        known = (*facts.kube_actions, *VERSION_INDEPENDENT_ACTIONS)
        action = next((a for a in known if a.name == name), None)
        who = f"kube-proxy v{_v(facts.kube_version)}" if facts.kube_version else "kube-proxy"
        reason = f": {action.reason}" if action is not None else ""
        return f"not captured; what {who} sets at start-up{reason}"
    if eff.origin is ValueOrigin.DEFAULT:
        return "not captured; the kernel default"
    return "does not exist in this kernel"


def sysctl_lines(facts: NodeFacts) -> list[str]:
    names = ["conn_reuse_mode", "conntrack", "expire_nodest_conn"]
    if facts.kernel is not None and facts.kernel.features.reuse_old_conntrack:
        names.append("conn_reuse_old_conntrack")
    lines = []
    for name in names:
        eff = facts.sysctls[name]
        if eff.origin is ValueOrigin.ABSENT:
            lines.append(
                f"net.ipv4.vs.{name} does not exist in this kernel: a SYN always follows an"
                " existing entry (no d752c364, v4.1)"
            )
        else:
            lines.append(f"net.ipv4.vs.{name} = {eff.value} ({origin_text(facts, name)})")
    return lines


def _v(version: tuple[int, int, int] | None) -> str:
    return ".".join(str(n) for n in version) if version else "?"


# --------------------------------------------------------------------------- fixes


def _fix_lines(
    facts: NodeFacts,
    kernel: KernelResolution,
    exposure: Exposure,
    fixes: tuple[SysctlFix, ...],
    problem: str,
) -> tuple[str, ...]:
    relevant = [f for f in fixes if problem not in f.exposure.problems]
    out: list[str] = []
    best = relevant[0] if relevant else None
    if best is not None:
        out.extend(sysctl_fix_lines(facts, best))
        if not best.clears_all:
            left = describe_problems(best.exposure)
            out.append(f"this leaves {left} on this kernel (checked with the kernel twin)")
    else:
        out.extend(_tradeoff(facts, kernel, exposure))
    if best is None or not best.clears_all or best.undone_by:
        out.extend(upgrade_lines(kernel))
        out.append(
            "or keep this traffic off IPVS: kube-proxy --proxy-mode=iptables (or nftables, GA"
            " in 1.33); for north-south traffic a load balancer or ingress straight to pod IPs"
        )
    return tuple(out)


def sysctl_fix_lines(facts: NodeFacts, fix: SysctlFix) -> list[str]:
    """The commands for one verified sysctl fix, and what kube-proxy does to it."""
    assigns = " ".join(f"net.ipv4.vs.{n}={v}" for n, v in fix.changes.items())
    cleared = "clears problems 1 and 2" if fix.clears_all else "improves the exposure"
    out = [
        f"sysctl -w {assigns}   # checked with the kernel twin on this kernel: {cleared}",
        f"persist it: printf '%s\\n' {_quoted(fix)} > {SYSCTL_FILE}; echo ip_vs >"
        f" {MODULES_FILE} (net.ipv4.vs.* exists only once ip_vs is loaded)",
    ]
    for action in fix.undone_by:
        who = f"kube-proxy v{_v(facts.kube_version)}"
        out.append(
            f"{who} writes net.ipv4.vs.{action.name}={action.value} at every start"
            f" ({action.reason}), overriding this: re-apply it after each kube-proxy start"
            " (for example a DaemonSet or systemd unit running the sysctl -w once kube-proxy"
            " is up)"
        )
    if fix.undone_by and facts.kernel is not None and facts.kube_version is not None:
        newer = kube_proxy_sysctls(LATEST_KUBE_PROXY, facts.kernel.version[:2])
        leaves = {a.name for a in newer if a.value is None}
        if all(a.name in leaves for a in fix.undone_by):
            upgrade = kube_proxy_upgrade(facts.kernel, facts.kube_version)
            if upgrade:
                out.append(f"or {upgrade}, which leaves it on this kernel (#102122)")
    if facts.kube_version is None and "conn_reuse_mode" in fix.changes and facts.kernel:
        latest = kube_proxy_sysctls(LATEST_KUBE_PROXY, facts.kernel.version[:2])
        sets_zero = any(a.name == "conn_reuse_mode" and a.value == 0 for a in latest)
        if sets_zero:
            out.append(
                "kube-proxy's version is unknown; every kube-proxy from 1.13 (#71114) writes"
                f" conn_reuse_mode=0 at start on kernel {facts.kernel.version_text} (it leaves"
                " it only on kernels >= 5.9 by version number, #102122): re-apply after each"
                " kube-proxy start"
            )
        else:
            out.append(
                "kube-proxy's version is unknown; kube-proxy 1.13 to 1.21 writes"
                " conn_reuse_mode=0 at start even on this kernel: run >= 1.22 (or 1.21.9,"
                " 1.20.15), which leaves it (#102122)"
            )
    return out


def _quoted(fix: SysctlFix) -> str:
    return " ".join(f"'net.ipv4.vs.{n} = {v}'" for n, v in fix.changes.items())


def _tradeoff(facts: NodeFacts, kernel: KernelResolution, exposure: Exposure) -> list[str]:
    mode = facts.sysctls["conn_reuse_mode"]
    if mode.origin is ValueOrigin.ABSENT or mode.value not in (0, 1):
        return ["no net.ipv4.vs setting avoids this on this kernel (checked with the kernel twin)"]
    other = 1 - mode.value
    flipped = exposure_for(kernel, {**facts.values, "conn_reuse_mode": other})
    gives = describe_problems(flipped)
    return [
        "no net.ipv4.vs setting avoids both problems on this kernel (checked with the kernel"
        f" twin): conn_reuse_mode=0 gives problem 1 (stale forwarding, #81775); conn_reuse_mode=1"
        " with conntrack=1, which kube-proxy needs, gives problem 2 (1 s first-SYN drop,"
        f" #70747). Here conn_reuse_mode={other} would give: {gives}",
        "choose the lesser: many short connections and frequent rollouts hurt more with"
        " problem 1; latency-sensitive clients with problem 2; spreading clients over more"
        " pods and nodes (more replicas, podAntiAffinity) lowers port reuse either way",
    ]


def upgrade_lines(kernel: KernelResolution) -> list[str]:
    """Kernel versions that carry the missing fixes, for this kernel's series and preset."""
    features = kernel.features
    series = kernel.version[:2]
    out: list[str] = []
    preset = kernel.preset
    if preset is not None and preset.name == "euleros-2.9":
        fixed = get_preset("euleros-2.9-fixed").release_examples
        out.append(
            "upgrade the kernel to a fixed EulerOS 2.9 build: "
            + " (x86) or ".join(fixed)
            + " (ARM) or later (Huawei CCE FAQ), or reset/recreate the node"
        )
    if preset is not None and preset.name in NO_FIXED_BUILD:
        out.append(
            f"{preset.distro}: no build of this kernel with the fixes is known; move the node"
            " to an OS whose kernel has them (the Huawei CCE FAQ names Huawei Cloud EulerOS 2.0"
            " and Ubuntu 22.04) or use kube-proxy's iptables mode"
        )
    wanted = [
        f
        for f in (Feature.UNCONFIRMED_CONNTRACK_REUSE, Feature.WEIGHT0_RESCHEDULE_ANY_MODE)
        if not features.has(f)
    ]
    for feature in wanted:
        info = FEATURE_INFO[feature]
        use = (
            # kube-proxy 1.13+ writes conn_reuse_mode=0 at every start on kernels below 5.9
            # by version number (#71114, #88541); only >= 5.9 with kube-proxy 1.22+ (1.21.9,
            # 1.20.15) is left alone (#102122). A stable backport (5.4.59 ...) is still < 5.9.
            "then set net.ipv4.vs.conn_reuse_mode=1. kube-proxy (1.13 and later) writes 0"
            " at every start on kernels below 5.9 by version number, stable backports"
            " included: there re-apply it after each kube-proxy start; on 5.9 or later"
            " kube-proxy v1.22+ (v1.21.9, v1.20.15) leaves it (#102122)"
            if feature is Feature.UNCONFIRMED_CONNTRACK_REUSE
            else "then expire_nodest_conn=1 (kube-proxy sets it) fixes weight-0 servers in mode 0"
        )
        stable = [b for b in STABLE_BACKPORTS if b.feature is feature]
        mine = [b for b in stable if b.series == series]
        where = f"mainline {info.mainline[0]}.{info.mainline[1]}" if info.mainline else ""
        listed = ", ".join(f"{b.series[0]}.{b.series[1]}.{b.sublevel}" for b in stable)
        text = f"upgrade the kernel to one with {_feature_name(feature)}: {where}"
        if listed:
            text += f", stable {listed}"
        if mine and preset is None:
            b = mine[0]
            text += f" (this {b.series[0]}.{b.series[1]} series from .{b.sublevel})"
        if preset is not None:
            builds = [bb for bb in preset.build_backports if bb.feature is feature]
            for bb in builds:
                text += f"; {preset.distro}: {bb.evidence}"
        text += f"; {use}"
        out.append(text)
    return out


def _data(
    facts: NodeFacts,
    kernel: KernelResolution,
    exposure: Exposure,
    fixes: tuple[SysctlFix, ...],
    live: list[LiveServer],
) -> dict[str, Any]:
    return {
        "kernel": kernel.text,
        "kernel_version": kernel.version_text,
        "preset": kernel.preset.name if kernel.preset else None,
        "kube_proxy_version": _v(facts.kube_version) if facts.kube_version else None,
        "sysctls": {
            name: {"value": s.value, "origin": s.origin.value} for name, s in facts.sysctls.items()
        },
        "outcomes": {
            c.value: {
                "problem": e.problem,
                "destination": e.destination,
                "outcome": e.outcome.name,
                "path": [{"step": s.text, "commit": s.commit} for s in e.steps],
            }
            for c, e in exposure.explanations.items()
        },
        "problems": list(exposure.problems),
        "live_servers": [
            {
                "service": s.service,
                "real_server": s.dest,
                "weight": s.weight,
                "entries": s.entries,
                "recent": s.recent,
                "states": dict(s.states),
            }
            for s in live
        ],
        "verified_fixes": [
            {
                "changes": dict(f.changes),
                "clears_all": f.clears_all,
                "problems_left": list(f.exposure.problems),
                "undone_by_kube_proxy": [{"sysctl": a.name, "value": a.value} for a in f.undone_by],
            }
            for f in fixes
        ],
    }


def kube_proxy_upgrade(kernel: KernelResolution, version: tuple[int, int, int]) -> str | None:
    """The first kube-proxy versions whose sysctls on this kernel match the newest one's,
    or None when this version already sets the same."""
    series = kernel.version[:2]

    def sets(v: tuple[int, int, int]) -> list[tuple[str, int | None]]:
        return [(a.name, a.value) for a in kube_proxy_sysctls(v, series)]

    target = sets(LATEST_KUBE_PROXY)
    if sets(version) == target:
        return None
    # Where each sysctl change landed, on its own branch or in a minor release:
    # #71114 (1.13.0, 1.12.5), #71834 (1.14.0, 1.12.5), #88541 (1.19.0),
    # #102122 (1.22.0; 1.21.9 and 1.20.15 inferred).
    candidates = [
        (1, 12, 5),
        (1, 13, 0),
        (1, 14, 0),
        (1, 19, 0),
        (1, 20, 15),
        (1, 21, 9),
        (1, 22, 0),
    ]
    fixed = [v for v in candidates if sets(v) == target and v > version]
    same_branch = [v for v in fixed if v[:2] == version[:2]]
    minors = [v for v in fixed if v[2] == 0]
    parts = []
    if same_branch:
        parts.append(f"{_kv(same_branch[0])} on the {version[0]}.{version[1]} branch")
    if minors:
        parts.append(f"{_kv(minors[0])} or later")
    if not parts:
        parts.append(_kv(LATEST_KUBE_PROXY))
    return "upgrade kube-proxy to " + " or ".join(parts)


def _kv(version: tuple[int, int, int]) -> str:
    return "v" + ".".join(str(n) for n in version)
