"""From the variants' outcomes to what to do: the change that clears (or most reduces)
the connections to old pods and the errors, and what would undo it.

"Bad" is what a user notices: errors, connections sent to terminating or dead pods,
and the 1 s first-SYN delay (a p99 connect time of a second or more).
"""

from __future__ import annotations

from ipvslab.doctor.facts import NodeFacts
from ipvslab.what_if.changes import Kind
from ipvslab.what_if.predict import Variant

SLOW_MS = 900.0  # a p99 at or above it: first SYNs retransmitted (1 s, #70747)


def badness(variant: Variant) -> tuple[float, float, float]:
    """(errors, connections to old pods, slow p99 share) averaged over the seeds."""
    runs = variant.outcomes
    n = max(len(runs), 1)
    errors = sum(o.error_total for o in runs) / n
    old = sum(o.to_old_pods for o in runs) / n
    slow = sum(1 for o in runs if (o.connect_p99_ms or 0) >= SLOW_MS) / n
    return errors, old, slow


def _clean(variant: Variant) -> bool:
    return bool(variant.outcomes) and badness(variant) == (0.0, 0.0, 0.0)


def recommend(variants: list[Variant], facts: NodeFacts, actions: str) -> list[str]:
    base, others = variants[0], [v for v in variants[1:] if v.refused is None and v.outcomes]
    lines: list[str] = []
    for v in variants[1:]:
        if v.refused is not None:
            lines.append(f"{v.label}: not possible here: {v.refused}")
    if _clean(base):
        lines.insert(0, f"{actions} as the node is: no error, no connection to an old pod")
        return lines
    errors, old, slow = badness(base)
    what = []
    if errors:
        what.append(f"about {errors:,.0f} errors")
    if old:
        what.append(f"about {old:,.0f} connections to terminating or deleted pods")
    if slow:
        what.append("first SYNs dropped (p99 connect >= 1 s)")
    lines.insert(0, f"{actions} as the node is: " + ", ".join(what) + " (mean over the seeds)")
    clean = [v for v in others if _clean(v)]
    if clean:
        best = min(clean, key=lambda v: len(v.settings))
        lines.append(
            f"{_change(best)} before {actions}: the twin predicts no error and no"
            " connection to an old pod"
        )
        lines.extend(_undone(best, facts))
        return lines
    better = [v for v in others if badness(v) < badness(base)]
    if better:
        best = min(better, key=badness)
        e, o, _ = badness(best)
        lines.append(
            f"{_change(best)} before {actions} helps but does not clear it: about {e:,.0f}"
            f" errors and {o:,.0f} connections to old pods remain"
        )
        lines.extend(_undone(best, facts))
    elif others:
        lines.append("none of the settings tried makes it better")
    # nftables mode needs Linux 5.13 (kube-proxy's own check); iptables mode runs anywhere.
    nft = facts.kernel is not None and facts.kernel.version[:2] >= (5, 13)
    mode = "nftables" if nft else "iptables"
    lines.append(
        "what clears it for good: a kernel with the reuse fixes (f0a5e4d7a594 in 5.9,"
        f" c95c07836fa4 in 5.16), or kube-proxy in {mode} mode (--what-if kernel=6.1 /"
        f" mode={mode} to see it)"
    )
    return lines


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
