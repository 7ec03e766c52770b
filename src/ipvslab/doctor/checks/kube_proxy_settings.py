"""Finding 6: the node's ``net.ipv4.vs`` values against what its kube-proxy sets.

kube-proxy's IPVS proxier writes its sysctls once, when it starts (kube-proxy-ipvs.md
§2; which ones and when per version in ``cluster.kube_proxy``). So:

* a value read on the node that differs from what this kube-proxy version writes
  was changed after kube-proxy started (or kube-proxy could not write it): the
  node's value is in force now, and kube-proxy's comes back at its next start
  (pod restart, upgrade, node reboot);
* a value kube-proxy leaves alone is the node's, whoever set it: an older
  kube-proxy before an upgrade (the value survives until reboot), a sysctl.d file
  or an operator.

The kernel twin is asked for the exposure with kube-proxy's values too, to say
whether its next start makes things better or worse.

A second finding flags a kube-proxy version whose sysctls are known-bad on this
kernel: on a freshly booted node it leaves the node more exposed than the newest
kube-proxy would (e.g. before 1.22 it forces conn_reuse_mode=0 on kernels >= 5.9,
#102122; before 1.14 it does not set expire_nodest_conn, #71834).

Beyond the reused-port question, a value below what kube-proxy writes has known
effects of its own (``HARMS``: conntrack=0, expire_nodest_conn=0 (#71358, #71834),
expire_quiescent_template=0 (#71834)).

Severity: warning when the values differ and the exposure now and after kube-proxy's
next start differ (either way), when the node's value has a known harm, or when a
value kube-proxy leaves alone exposes the node; info when the difference changes
nothing the twin can see. Known-bad version: warning when the newest kube-proxy
would leave the node less exposed or this version leaves a value with a known harm;
info when only the values differ; nothing when it is a trade-off (e.g. mode 0 vs 1
on a kernel without the fixes). Nothing when kube-proxy's version or the kernel is unknown, or
kube-proxy does not run in IPVS mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipvslab.cluster.kube_proxy import SysctlAction, kube_proxy_sysctls
from ipvslab.doctor.checks.exposure import (
    LATEST_KUBE_PROXY,
    describe_problems,
    kube_proxy_upgrade,
    sysctl_lines,
    upgrade_lines,
)
from ipvslab.doctor.facts import (
    Exposure,
    NodeFacts,
    ValueOrigin,
    exposure_for,
    sysctl_fixes,
    with_kube_proxy,
)
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.kernel.presets import KernelResolution
from ipvslab.kernel.sysctls import Sysctls

# What a value below kube-proxy's does beyond the reused-port question the twin answers.
HARMS = {
    # kube-proxy sets conntrack=1 in every IPVS version (fatal if it cannot): its
    # masquerade (SNAT) rules need netfilter to track IPVS connections (seed 003).
    ("conntrack", 0): (
        "IPVS connections are not tracked by netfilter, so kube-proxy's masquerade (SNAT)"
        " rules miss them and replies that need SNAT go astray"
    ),
    # #71834 (v1.14.0, 1.12.5), from #71358: without it a deleted real server's entries stay.
    ("expire_nodest_conn", 0): (
        "packets of connections whose real server was deleted are dropped silently until"
        " the entry times out (15 min for ESTABLISHED) instead of the entry being expired"
        " (#71358, #71834)"
    ),
    # #71834: "kube-proxy in IPVS mode will stop initiating connections to terminating pods
    # for services with sessionAffinity set".
    ("expire_quiescent_template", 0): (
        "clients of sessionAffinity: ClientIP services keep being sent to a weight-0"
        " (terminating) pod until their persistence template expires (10800 s by default),"
        " which also keeps its real server from being removed (#71834)"
    ),
}

FIND_SETTERS = (
    "grep -rn 'net.ipv4.vs' /etc/sysctl.conf /etc/sysctl.d /run/sysctl.d /usr/lib/sysctl.d"
)


@dataclass(frozen=True)
class Difference:
    name: str
    node: int
    kube_proxy: int | None  # None: kube-proxy leaves it
    action: SysctlAction


def differences(facts: NodeFacts) -> list[Difference]:
    """Node values (read on the node) that kube-proxy would write differently, or that
    kube-proxy leaves alone and differ from the kernel default."""
    defaults = Sysctls()
    out = []
    for action in facts.kube_actions:
        eff = facts.sysctls.get(action.name)
        if eff is None or eff.origin is not ValueOrigin.NODE:
            continue
        if action.value is not None and eff.value != action.value:
            out.append(Difference(action.name, eff.value, action.value, action))
        elif action.value is None and eff.value != getattr(defaults, action.name):
            out.append(Difference(action.name, eff.value, None, action))
    return out


def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
    kernel, version = facts.kernel, facts.kube_version
    if kernel is None or version is None or not facts.kube_actions:
        return []
    out: list[Finding] = []
    found = differences(facts)
    if found and facts.exposure is not None:
        out.append(_differ(facts, kernel, version, facts.exposure, found))
    bad = _known_bad(facts, kernel, version)
    if bad is not None:
        out.append(bad)
    return out


def _v(version: tuple[int, int, int]) -> str:
    return "v" + ".".join(str(n) for n in version)


def _problems(exposure: Exposure | None) -> str:
    return describe_problems(exposure)


def _differ(
    facts: NodeFacts,
    kernel: KernelResolution,
    version: tuple[int, int, int],
    now: Exposure,
    found: list[Difference],
) -> Finding:
    kp = f"kube-proxy {_v(version)}"
    written = [d for d in found if d.kube_proxy is not None]
    left = [d for d in found if d.kube_proxy is None]
    after = exposure_for(kernel, with_kube_proxy(facts.values, facts.kube_actions))
    verdict = now.compare(after) if after is not None else "same"

    evidence = [
        f"{kp} in IPVS mode on kernel {kernel.text} ({kernel.version_text} by version"
        " number, which is all kube-proxy compares)"
    ]
    for d in written:
        evidence.append(
            f"net.ipv4.vs.{d.name} = {d.node} on the node; {kp} writes {d.kube_proxy} at"
            f" start-up ({d.action.reason})"
        )
    for d in left:
        evidence.append(
            f"net.ipv4.vs.{d.name} = {d.node} on the node, not the kernel default; {kp} leaves"
            f" it ({d.action.reason}), so something else set it"
        )
    evidence.extend(sysctl_lines(facts))
    evidence.append(f"exposure now (kernel twin): {_problems(now)}")
    if written:
        evidence.append(f"exposure after kube-proxy's next start: {_problems(after)}")

    severity = Severity.INFO
    titles = []
    if written:
        names = ", ".join(f"{d.name}={d.node} (kube-proxy: {d.kube_proxy})" for d in written)
        if verdict == "worse":
            severity = Severity.WARNING
            titles.append(
                f"node sets {names}: in force until kube-proxy restarts, which brings back"
                f" {_problems(after)}"
            )
        elif verdict == "better":
            severity = Severity.WARNING
            titles.append(
                f"node overrides kube-proxy with {names}: {_problems(now)} until kube-proxy"
                " restarts and writes its values"
            )
        elif verdict == "different":
            severity = Severity.WARNING
            titles.append(
                f"node overrides kube-proxy with {names}: {_problems(now)} now,"
                f" {_problems(after)} after kube-proxy restarts"
            )
    harms = [HARMS[(d.name, d.node)] for d in written if (d.name, d.node) in HARMS]
    if written and verdict == "same":
        effect = (
            "reused ports are not affected, but see what these values do"
            if harms
            else "no change for reused ports"
        )
        titles.append(
            f"node overrides kube-proxy with {names} until kube-proxy restarts ({effect})"
        )
    if harms:
        severity = Severity.WARNING
    left_hurts = False
    if left:
        reset = exposure_for(
            kernel, {**facts.values, **{d.name: getattr(Sysctls(), d.name) for d in left}}
        )
        left_hurts = reset is not None and now.compare(reset) == "better"
        if left_hurts:
            severity = Severity.WARNING
        names = ", ".join(f"{d.name}={d.node}" for d in left)
        hurt = f": {_problems(now)}" if left_hurts else ""
        titles.append(f"{names} set by something other than {kp}, which leaves it{hurt}")

    meaning = (
        "kube-proxy writes its net.ipv4.vs values only when it starts. Until then the"
        " node's current values decide what a reused client port does; at kube-proxy's next"
        " start (pod restart, upgrade, node reboot) its values win again."
    )
    if verdict == "worse":
        meaning += (
            " Here the node's values are the better ones: whoever changed them fixed"
            f" something that kube-proxy's next start undoes ({_problems(after)})."
        )
    elif verdict == "better":
        meaning += (
            " Here the node's values are worse than kube-proxy's: the node is exposed to"
            f" {_problems(now)} until kube-proxy restarts."
        )
    if left:
        meaning += (
            " A value kube-proxy leaves alone stays as the node has it: an older kube-proxy's"
            " value survives a kube-proxy upgrade until the node reboots."
        )
    if harms:
        meaning += " Until then, with the node's values: " + "; ".join(harms) + "."

    fix: list[str] = []
    if verdict == "worse":
        for d in written:
            fix.append(
                f"keep net.ipv4.vs.{d.name}={d.node} across kube-proxy restarts: re-apply"
                f" `sysctl -w net.ipv4.vs.{d.name}={d.node}` after each kube-proxy start (a"
                " DaemonSet or systemd unit), because kube-proxy writes"
                f" {d.kube_proxy} whenever it starts"
            )
        upgrade = kube_proxy_upgrade(kernel, version)
        if upgrade:
            fix.append(upgrade)
        fix.extend(upgrade_lines(kernel))
    elif written and verdict == "different":
        # Neither set of values is safe on this kernel (e.g. mode 1 drops first SYNs,
        # mode 0 brings #81775): writing kube-proxy's values would trade one problem
        # for the other, so no sysctl -w is offered; only what clears both.
        fix.append(
            f"a trade-off, not a fix: the node's values give {_problems(now)}, {kp}'s give"
            f" {_problems(after)}; keep the one that hurts your traffic less (see the"
            " exposure finding) and clear both with a kernel or kube-proxy change:"
        )
        upgrade = kube_proxy_upgrade(kernel, version)
        if upgrade:
            fix.append(upgrade)
        fix.extend(upgrade_lines(kernel))
        fix.append(f"find what changed it: {FIND_SETTERS}")
    elif written:
        # A node value that the newest kube-proxy would leave on this kernel is not to be
        # undone: it is the value the known-bad-version finding asks for (e.g. mode 1 on
        # >= 5.9 with #102122). Only the others are put back to kube-proxy's.
        newest = _fresh(kernel, kube_proxy_sysctls(LATEST_KUBE_PROXY, kernel.version[:2]))
        keep = [d for d in written if newest.get(d.name) == d.node]
        revert = [d for d in written if d not in keep]
        for d in keep:
            fix.append(
                f"keep net.ipv4.vs.{d.name}={d.node}: it is what kube-proxy"
                f" {_v(LATEST_KUBE_PROXY)} leaves on this kernel; {kp} writes {d.kube_proxy}"
                " again at its next start, so the lasting fix is a kube-proxy upgrade"
            )
        if keep:
            upgrade = kube_proxy_upgrade(kernel, version)
            if upgrade:
                fix.append(upgrade)
        if revert:
            assigns = " ".join(f"net.ipv4.vs.{d.name}={d.kube_proxy}" for d in revert)
            fix.append(f"sysctl -w {assigns}   # what {kp} sets")
            fix.append(f"find what changed it and remove it: {FIND_SETTERS}")
    for d in left:
        best = next(
            (
                f
                for f in sysctl_fixes(facts)
                if d.name in f.changes and not f.undone_by and f.clears_all
            ),
            None,
        )
        if best is not None:
            assigns = " ".join(f"net.ipv4.vs.{n}={v}" for n, v in best.changes.items())
            fix.append(
                f"sysctl -w {assigns}   # checked with the kernel twin: clears problems 1 and 2"
            )
        elif left_hurts:
            default = getattr(Sysctls(), d.name)
            fix.append(f"sysctl -w net.ipv4.vs.{d.name}={default}   # the kernel default")
        fix.append(f"find what set net.ipv4.vs.{d.name}: {FIND_SETTERS}")
    if not fix:
        fix.append("nothing needed; to make them agree, restart kube-proxy on this node")

    data: dict[str, Any] = {
        "kube_proxy_version": _v(version),
        "kernel": kernel.text,
        "differences": [
            {
                "sysctl": d.name,
                "node": d.node,
                "kube_proxy": d.kube_proxy,
                "reason": d.action.reason,
            }
            for d in found
        ],
        "problems_now": list(now.problems),
        "problems_after_kube_proxy_start": None if after is None else list(after.problems),
        "after_kube_proxy_start": verdict,
    }
    return Finding(
        kind=FindingKind.SETTINGS_DIFFER_FROM_KUBE_PROXY,
        severity=severity,
        title="; ".join(titles),
        evidence=tuple(evidence),
        meaning=meaning,
        fix=tuple(fix),
        subject=kp,
        data=data,
    )


def _fresh(kernel: KernelResolution, actions: list[SysctlAction]) -> dict[str, int]:
    """A freshly booted node's values after this kube-proxy's start."""
    defaults = Sysctls()
    return with_kube_proxy({n: getattr(defaults, n) for n in Sysctls.names()}, actions)


def _known_bad(
    facts: NodeFacts, kernel: KernelResolution, version: tuple[int, int, int]
) -> Finding | None:
    series = kernel.version[:2]
    mine = kube_proxy_sysctls(version, series)
    latest = kube_proxy_sysctls(LATEST_KUBE_PROXY, series)
    fresh_mine, fresh_latest = _fresh(kernel, mine), _fresh(kernel, latest)
    changed = sorted(n for n in Sysctls.names() if fresh_mine[n] != fresh_latest[n])
    if not changed:
        return None
    with_mine = exposure_for(kernel, fresh_mine)
    with_latest = exposure_for(kernel, fresh_latest)
    if with_mine is None or with_latest is None:
        return None
    verdict = with_mine.compare(with_latest)
    harms = [HARMS[(n, fresh_mine[n])] for n in changed if (n, fresh_mine[n]) in HARMS]
    if verdict not in ("better", "same") and not harms:
        return None  # a trade-off, not a known-bad version
    kp = f"kube-proxy {_v(version)}"
    by_name = {a.name: a for a in mine}
    by_name_latest = {a.name: a for a in latest}

    def says(actions: dict[str, SysctlAction], name: str, values: dict[str, int]) -> str:
        action = actions.get(name)
        if action is None:
            return f"does not touch it ({values[name]}, the kernel default)"
        if action.value is None:
            return f"leaves it ({values[name]} on a fresh node; {action.reason})"
        return f"writes {action.value} ({action.reason})"

    evidence = [f"{kp} in IPVS mode on kernel {kernel.text} ({kernel.version_text})"]
    for name in changed:
        evidence.append(
            f"net.ipv4.vs.{name}: {kp} {says(by_name, name, fresh_mine)}; kube-proxy"
            f" {_v(LATEST_KUBE_PROXY)} {says(by_name_latest, name, fresh_latest)}"
        )
    evidence.append(
        f"on a freshly booted node (kernel twin): {kp} gives {_problems(with_mine)};"
        f" kube-proxy {_v(LATEST_KUBE_PROXY)} gives {_problems(with_latest)}"
    )
    worse = verdict == "better" or bool(harms)
    # A value the newer kube-proxy writes that, changed on its own, leaves reused ports
    # worse off on this kernel is a trade-off, not a fix: e.g. conn_reuse_mode=0 on a
    # kernel before 5.9 swaps problem 2 for problems 1 and 2 (#81775). Only the harmful
    # values are called fixed, and the trade-off is never suggested as a sysctl -w.
    tradeoffs: dict[str, Exposure] = {}
    if verdict in ("worse", "different"):
        for name in changed:
            if (name, fresh_mine[name]) in HARMS:
                continue
            alone = exposure_for(kernel, {**fresh_mine, name: fresh_latest[name]})
            if alone is not None and with_mine.compare(alone) in ("worse", "different"):
                tradeoffs[name] = alone
    fixed_names = [n for n in changed if n not in tradeoffs]
    assigns = ", ".join(f"{n}={fresh_mine[n]}" for n in fixed_names)
    if verdict == "better":
        title = (
            f"{kp} leaves this node with {assigns} on kernel {kernel.version_text}:"
            f" {_problems(with_mine)}, which a newer kube-proxy avoids"
        )
        meaning = (
            f"Every start of {kp} puts this node in a state a newer kube-proxy would not:"
            f" {_problems(with_mine)} instead of {_problems(with_latest)}."
        )
    elif harms:
        title = f"{kp} leaves this node with {assigns}, which newer kube-proxy versions fix"
        if tradeoffs:
            title += (
                "; their "
                + ", ".join(f"{n}={fresh_latest[n]}" for n in tradeoffs)
                + " would be a trade-off on this kernel, not a fix"
            )
        meaning = "With these values " + "; ".join(harms) + "."
        if verdict != "same":
            meaning += (
                f" For reused ports the kernel twin gives {_problems(with_mine)} with {kp} and"
                f" {_problems(with_latest)} with kube-proxy {_v(LATEST_KUBE_PROXY)}."
            )
    else:
        title = (
            f"{kp} leaves this node with {assigns} on kernel {kernel.version_text}, unlike"
            " newer kube-proxy"
        )
        meaning = (
            "On this kernel it changes no outcome the kernel twin checks, but with"
            " conn_reuse_mode=0 a reused client port keeps going to its old server even when"
            " healthy, so load stays pinned to old pods after a scale-up."
            if "conn_reuse_mode" in changed
            else "On this kernel it changes no outcome the kernel twin checks."
        )
    fix = [kube_proxy_upgrade(kernel, version) or f"upgrade kube-proxy to {_v(LATEST_KUBE_PROXY)}"]
    later: list[str] = []
    for name in changed:
        newer = by_name_latest.get(name)
        if name in tradeoffs and newer is not None and newer.value is not None:
            later.append(
                f"do not copy net.ipv4.vs.{name}={newer.value} by hand: on this kernel it"
                f" gives {_problems(tradeoffs[name])} instead of {_problems(with_mine)}"
                f" (kernel twin); the newer kube-proxy writes it at every start"
                f" ({newer.reason}), so to keep {name}={fresh_mine[name]} after the upgrade"
                f" re-apply `sysctl -w net.ipv4.vs.{name}={fresh_mine[name]}` after each"
                " kube-proxy start; which is the lesser problem: see the exposure finding"
            )
        elif newer is None or newer.value is None:
            fix.append(
                f"after the upgrade, without waiting for a reboot: sysctl -w"
                f" net.ipv4.vs.{name}={fresh_latest[name]}   # the newer kube-proxy leaves it,"
                f" so {kp}'s {fresh_mine[name]} would stay until the node reboots"
            )
        else:
            fix.append(
                f"the newer kube-proxy writes net.ipv4.vs.{name}={newer.value} at start"
                f" ({newer.reason}); until then: sysctl -w net.ipv4.vs.{name}={newer.value}"
            )
    fix.extend(later)
    return Finding(
        kind=FindingKind.SETTINGS_DIFFER_FROM_KUBE_PROXY,
        severity=Severity.WARNING if worse else Severity.INFO,
        title=title,
        evidence=tuple(evidence),
        meaning=meaning,
        fix=tuple(fix),
        subject=kp,
        data={
            "kube_proxy_version": _v(version),
            "kernel": kernel.text,
            "known_bad": worse,
            "sysctls": {n: {"this": fresh_mine[n], "newest": fresh_latest[n]} for n in changed},
            "problems_with_this": list(with_mine.problems),
            "problems_with_newest": list(with_latest.problems),
        },
    )
