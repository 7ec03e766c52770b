"""From the variants' outcomes to what to do: the change that clears (or most reduces)
the connections to old pods, the errors and the dropped first SYNs, what would undo it,
what makes things worse, and what would clear it for good on this node.

"Bad" is what a user notices: errors, connections sent to terminating or dead pods,
and the 1 s first-SYN delay (#70747).
"""

from __future__ import annotations

from ipvslab.doctor.facts import NodeFacts, ValueOrigin
from ipvslab.kernel.features import Feature
from ipvslab.what_if.changes import Kind
from ipvslab.what_if.predict import Variant

SLOW_MS = 900.0  # a p99 at or above it: first SYNs retransmitted (1 s, #70747)
STARVED = 0.5  # new pods below half their even share: starved (seed 000, symptom 3)


def starved(variant: Variant) -> float:
    """How much of the new pods' even share they miss, averaged over the seeds (0 when
    they get at least half of it, or no pods were added)."""
    gaps = [
        o.fair_share - o.new_pods_share
        for o in variant.outcomes
        if o.fair_share
        and o.new_pods_share is not None
        and o.new_pods_share < STARVED * o.fair_share
    ]
    return sum(gaps) / max(len(variant.outcomes), 1)


def badness(variant: Variant) -> tuple[float, float, float, float]:
    """(errors, connections to old pods, dropped first packets, starved share), averaged
    over the seeds."""
    runs = variant.outcomes
    n = max(len(runs), 1)
    errors = sum(o.error_total for o in runs) / n
    old = sum(o.to_old_pods for o in runs) / n
    dropped = sum(o.first_packet_dropped for o in runs) / n
    return errors, old, dropped, starved(variant)


def _clean(variant: Variant) -> bool:
    return bool(variant.outcomes) and not any(badness(variant))


def describe(variant: Variant) -> str:
    errors, old, dropped, starve = badness(variant)
    what = []
    if errors:
        kinds: dict[str, int] = {}
        for o in variant.outcomes:
            for kind, count in o.errors.items():
                kinds[kind] = kinds.get(kind, 0) + count
        worst = max(kinds, key=lambda k: kinds[k])
        what.append(f"about {errors:,.0f} errors (mostly {worst})")
    if old:
        what.append(f"about {old:,.0f} connections to terminating or deleted pods")
    if dropped:
        slow = any((o.connect_p99_ms or 0) >= SLOW_MS for o in variant.outcomes)
        what.append(
            f"about {dropped:,.0f} first packets dropped (each a retry: 1 s for a SYN"
            + (", p99 >= 1 s)" if slow else ")")
        )
    if starve:
        runs = [o for o in variant.outcomes if o.fair_share and o.new_pods_share is not None]
        share = sum(o.new_pods_share or 0 for o in runs) / max(len(runs), 1)
        fair = sum(o.fair_share or 0 for o in runs) / max(len(runs), 1)
        what.append(f"new pods starved: {share:.0%} of the connections for {fair:.0%} of pods")
    return (
        ", ".join(what)
        or "no error, no connection to an old pod, no dropped packet, new pods get their share"
    )


def recommend(
    variants: list[Variant], facts: NodeFacts, actions: str, persistent: bool = False
) -> list[str]:
    base = variants[0]
    others = [v for v in variants[1:] if v.refused is None and v.outcomes]
    lines = [f"{actions} as the node is: {describe(base)} (mean over the seeds)"]
    for v in variants[1:]:
        if v.refused is not None:
            lines.append(f"{v.label}: not possible here: {v.refused}")
    for v in others:
        if badness(v) > badness(base) and not _clean(v):
            lines.append(f"{v.label} makes it worse: {describe(v)}")
            if any(w.kind is Kind.SYSCTL and ("conntrack", 0) in w.changes for w in v.settings):
                lines.append(
                    "and kube-proxy writes conntrack=1 at every start (and exits if it cannot):"
                    " its masquerade rules need it"
                )
    if _clean(base):
        return lines
    clean = [v for v in others if _clean(v)]
    if clean:
        best = min(clean, key=lambda v: len(v.settings))
        lines.append(
            f"{_change(best)} before {actions}: the twin predicts no error, no connection to"
            " an old pod, no dropped packet, and new pods get their share"
        )
        lines.extend(_undone(best, facts))
        return lines
    better = [v for v in others if badness(v) < badness(base)]
    if better:
        best = min(better, key=badness)
        if badness(best)[2] > badness(base)[2]:
            # Fewer errors, more dropped first SYNs: mode 1 before 5.9 (#70747 for #81775).
            lines.append(
                f"{_change(best)} before {actions} is a trade-off, not a fix: {describe(best)}"
                " instead"
            )
        else:
            lines.append(
                f"{_change(best)} before {actions} helps but does not clear it:"
                f" {describe(best)} remain"
            )
        lines.extend(_undone(best, facts))
    elif others:
        lines.append("none of the settings tried makes it better")
    tried = {w.text for v in variants if v.refused is None for w in v.settings}
    lines.extend(_for_good(facts, persistent, tried))
    return lines


def _for_good(facts: NodeFacts, persistent: bool, tried: set[str]) -> list[str]:
    """What would clear it on this node, among what was not tried."""
    out = []
    kernel = facts.kernel
    if kernel is not None:
        fixed = kernel.features.has(Feature.UNCONFIRMED_CONNTRACK_REUSE) and kernel.features.has(
            Feature.WEIGHT0_RESCHEDULE_ANY_MODE
        )
        if not fixed and not any(t.startswith("kernel=") for t in tried):
            out.append(
                "to try: a kernel with the reuse fixes (f0a5e4d7a594 in 5.9, c95c07836fa4 in"
                " 5.16): --what-if kernel=6.1"
            )
    eqt = facts.sysctls.get("expire_quiescent_template")
    kube_sets_it = any(
        a.name == "expire_quiescent_template" and a.value == 1 for a in facts.kube_actions
    )
    # Read as 0 on the node (in force now), or not read and no kube-proxy writes 1.
    if (
        persistent
        and eqt is not None
        and eqt.value == 0
        and (eqt.origin is ValueOrigin.NODE or not kube_sets_it)
    ):
        out.append(
            "to try: --what-if sysctl=expire_quiescent_template=1 (kube-proxy 1.14+ sets it,"
            " #71834): templates to a weight-0 pod are then dropped at the client's next"
            " connection"
        )
    if kernel is not None and not any(t.startswith("mode=") for t in tried):
        version = facts.kube_version
        if kernel.version[:2] >= (5, 13) and version is not None and version[:2] >= (1, 29):
            out.append("to try: kube-proxy in nftables mode: --what-if mode=nftables")
        elif kernel.version[:2] >= (5, 13):
            out.append(
                "to try: kube-proxy in iptables mode (--what-if mode=iptables), or nftables"
                " mode after upgrading kube-proxy to v1.29 or newer"
            )
        else:
            out.append(
                "to try: kube-proxy in iptables mode (nftables mode needs Linux 5.13):"
                " --what-if mode=iptables"
            )
    return out


def _change(variant: Variant) -> str:
    parts: list[str] = []
    for w in variant.settings:
        if w.kind is Kind.SYSCTL:
            parts.extend(f"set net.ipv4.vs.{n}={v}" for n, v in w.changes)
        elif w.kind is Kind.KERNEL:
            parts.append(f"move to kernel {w.name}")
        else:
            parts.append(f"switch kube-proxy to {w.name} mode")
    return " and ".join(parts)


def _undone(variant: Variant, facts: NodeFacts) -> list[str]:
    out = []
    for w in variant.settings:
        for name, value in w.changes:
            for action in facts.kube_actions:
                if action.name == name and action.value is not None and action.value != value:
                    out.append(
                        f"kube-proxy writes {name}={action.value} at its next start"
                        f" ({action.reason}): set it again after any kube-proxy restart"
                        " during the rollout"
                    )
    return out
