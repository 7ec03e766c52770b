"""Finding: kube-proxy's IPVS mode is deprecated; can this node move to nftables mode?

From the shared reference ``ipvs-deprecation.md`` (facts as of December 2026):

* v1.35 deprecates IPVS mode: kube-proxy logs a warning and emits an
  ``IPVSDeprecation`` event at start (KEP-5495, kubernetes PR #134539). A
  ``KubeProxyIPVS`` feature gate is planned off by default in v1.40 and locked in
  v1.43, after which ``--proxy-mode=ipvs`` does not start (enhancements PR #6120:
  plans, not releases).
* nftables mode: alpha v1.29, beta v1.31, GA v1.33 (KEP-3866). It needs Linux 5.13 or
  newer and ``nft`` 1.0.1 or newer on every node, removes leftover IPVS rules when it
  starts, and leaves conntrack (so established connections) alone.
* In iptables and nftables modes conntrack picks the endpoint, and a SYN on a closed
  (TIME_WAIT) conntrack entry is NATed afresh, so neither reuse problem exists there.

The finding is info: it is advice, not a fault. It says which mode this node can
move to, what stands in the way, and whether that would remove an exposure found now.
"""

from __future__ import annotations

from ipvslab.doctor.facts import NodeFacts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.snapshot import NodeSnapshot

DEPRECATED_IN = (1, 35)  # KEP-5495, PR #134539
GATE_OFF_PLANNED = (1, 40)  # enhancements PR #6120 (plan)
NFTABLES_ALPHA = (1, 29)
NFTABLES_BETA = (1, 31)
NFTABLES_GA = (1, 33)  # KEP-3866
NFTABLES_KERNEL = (5, 13)
NFT_TOOL = "1.0.1"


def _ipvs_mode(snapshot: NodeSnapshot) -> bool:
    kp = snapshot.kube_proxy
    if kp is not None and kp.settings.mode is not None:
        return kp.ipvs_mode
    return snapshot.ipvs is not None and bool(snapshot.ipvs.services)


def _stage(version: tuple[int, int, int] | None) -> str | None:
    if version is None:
        return None
    if version[:2] >= NFTABLES_GA:
        return "ga"
    if version[:2] >= NFTABLES_BETA:
        return "beta"
    if version[:2] >= NFTABLES_ALPHA:
        return "alpha"
    return "none"


def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
    if not _ipvs_mode(snapshot):
        return []
    kernel = facts.kernel
    kernel_ok = None if kernel is None else kernel.version[:2] >= NFTABLES_KERNEL
    version = facts.kube_version
    stage = _stage(version)
    kp_text = "v{}.{}.{}".format(*version) if version else "kube-proxy (version unknown)"
    evidence = []
    if version is not None and version[:2] >= DEPRECATED_IN:
        evidence.append(
            f"kube-proxy {kp_text} deprecates IPVS mode: it logs a warning and emits an"
            " IPVSDeprecation event at start (v1.35, KEP-5495)"
        )
    else:
        evidence.append(
            "IPVS mode is deprecated from kube-proxy v1.35 (KEP-5495); the KubeProxyIPVS"
            " feature gate is planned off by default in v1.40"
        )
    if kernel is None:
        evidence.append("kernel unknown: nftables mode needs Linux 5.13 or newer")
    else:
        verdict = "meets" if kernel_ok else "is older than"
        evidence.append(
            f"kernel {kernel.text} ({kernel.version_text}) {verdict} nftables mode's Linux 5.13"
        )
    stages = {
        "ga": "nftables mode is GA in it (v1.33)",
        "beta": "nftables mode is beta in it (v1.31-v1.32); GA from v1.33",
        "alpha": "nftables mode is alpha in it (v1.29-v1.30, feature gate NFTablesProxyMode)",
        "none": "it has no nftables mode (from v1.29; GA in v1.33)",
    }
    if stage is not None:
        evidence.append(f"kube-proxy {kp_text}: {stages[stage]}")
    evidence.append(f"nft on the node must be {NFT_TOOL} or newer (`nft --version`; not captured)")

    nftables = kernel_ok is not False
    target = "nftables" if nftables else "iptables"
    if kernel_ok is False:
        title = (
            f"kube-proxy's IPVS mode is deprecated; kernel {kernel.version_text if kernel else ''}"
            " is too old for nftables mode, so iptables mode is the way out"
        )
    elif stage in ("ga", "beta") and kernel_ok:
        title = "kube-proxy's IPVS mode is deprecated; this node can move to nftables mode"
    else:
        title = "kube-proxy's IPVS mode is deprecated; nftables mode needs " + (
            "kube-proxy v1.33 or newer"
            if stage in ("none", "alpha")
            else "Linux 5.13+, nft 1.0.1+ and kube-proxy v1.33+ (not all known here)"
        )
    meaning = (
        "In iptables and nftables modes conntrack picks the endpoint, and a SYN on a closed"
        " (TIME_WAIT) conntrack entry is NATed afresh, so a reused client port never follows"
        " an old entry to a terminating or deleted pod and no first SYN is dropped: both reuse"
        " problems (#81775, #70747) go away, along with the weight-0 draining of graceful"
        " termination."
    )
    exposure = facts.exposure
    if exposure is not None and exposure.problems:
        meaning += (
            f" This node is exposed now ({' and '.join(exposure.problems)}); moving removes it."
        )
    fix = [
        "kubectl -n kube-system edit configmap kube-proxy   # mode: " + target,
        "kubectl -n kube-system rollout restart daemonset kube-proxy",
    ]
    if nftables:
        fix.insert(0, f"on every node: nft --version   # {NFT_TOOL} or newer; uname -r: 5.13+")
        fix.append(
            "kube-proxy in nftables mode removes the leftover IPVS rules at start; no drain"
            " needed, established connections survive (conntrack is untouched)"
        )
    if stage in ("none", "alpha"):
        fix.insert(0, "upgrade kube-proxy to v1.33 or newer (nftables mode GA)")
    fix.append("until then: the exposure findings' sysctl and kernel fixes")
    return [
        Finding(
            kind=FindingKind.IPVS_MODE_DEPRECATED,
            severity=Severity.INFO,
            title=title,
            evidence=tuple(evidence),
            meaning=meaning,
            fix=tuple(fix),
            data={
                "target_mode": target,
                "kernel_supports_nftables": kernel_ok,
                "kube_proxy_nftables": stage,
            },
        )
    ]
