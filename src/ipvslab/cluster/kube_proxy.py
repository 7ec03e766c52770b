"""What kube-proxy's IPVS proxier sets on a node, per kube-proxy version.

From ../shared/reference/kube-proxy-ipvs.md §2 and §6. kube-proxy compares the
kernel's numeric version only (utilkernel.GetVersion()), so a distro kernel
such as CentOS 7's 3.10.0-957 counts as 3.10 whatever it backported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ipvslab.kernel.sysctls import Sysctls

_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")
# The newest kube-proxy minor release whose IPVS proxier the reference covers: v1.35, the
# release that deprecates IPVS mode (KEP-5495, kubernetes PR #134539). Later versions are
# assumed to set what it sets.
NEWEST_KNOWN_KUBE_PROXY = (1, 35)


def kube_version_warning(version: tuple[int, int, int]) -> str | None:
    """Why a kube-proxy version lies outside what ipvslab knows, or None."""
    text = ".".join(map(str, version))
    if version[0] != 1:
        return f"v{text} is not a Kubernetes 1.x version"
    if version[:2] > NEWEST_KNOWN_KUBE_PROXY:
        newest = "v{}.{}".format(*NEWEST_KNOWN_KUBE_PROXY)
        return (
            f"v{text} is newer than any kube-proxy ipvslab knows ({newest}); it is assumed to"
            f" set what {newest} sets"
        )
    if version[:2] < (1, 8):
        return f"v{text} predates kube-proxy's IPVS mode (alpha in v1.8)"
    return None


def parse_kube_version(text: str) -> tuple[int, int, int]:
    """'v1.22.3', '1.28', 'v1.28.2-eks-abc' -> (1, 22, 3)."""
    match = _VERSION.match(text.strip())
    if not match:
        raise ValueError(f"not a kube-proxy version: {text!r} (expected like v1.22.3)")
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


@dataclass(frozen=True, slots=True)
class SysctlAction:
    """One sysctl kube-proxy sets (or leaves) at start-up, and why."""

    name: str
    value: int | None  # None: left as the node has it
    reason: str


def at_least(version: tuple[int, int, int], *branches: tuple[int, int, int]) -> bool:
    """True when version is at or past the first patch release carrying a change on its
    own minor branch, or at or past the first minor release that carries it."""
    first_minor = max(branches)
    if version[:2] >= first_minor[:2]:
        return version >= first_minor
    for branch in branches:
        if version[:2] == branch[:2]:
            return version >= branch
    return False


def kube_proxy_sysctls(
    kube_version: tuple[int, int, int], kernel_version: tuple[int, int]
) -> list[SysctlAction]:
    """The net.ipv4.vs sysctls kube-proxy (IPVS mode) writes at start-up."""
    actions = [
        SysctlAction("conntrack", 1, "set by the IPVS proxier in every version (fatal if it fails)")
    ]
    # conn_reuse_mode=0: #71114 in v1.13.0 (1.12.5 backport [INFERRED]).
    if at_least(kube_version, (1, 12, 5), (1, 13, 0)):
        if kube_version >= (1, 19, 0) and kernel_version < (4, 1):
            # #88541 (v1.19.0): kernels below 4.1 are skipped with a logged error.
            actions.append(
                SysctlAction("conn_reuse_mode", None, "v1.19+ skips kernels < 4.1 (#88541)")
            )
        elif at_least(kube_version, (1, 20, 15), (1, 21, 9), (1, 22, 0)) and (
            kernel_version >= (5, 9)
        ):
            # #102122 (v1.22.0; back-ported to 1.21.9 / 1.20.15 [INFERRED]).
            actions.append(
                SysctlAction(
                    "conn_reuse_mode", None, "v1.22+ leaves it as-is on kernel >= 5.9 (#102122)"
                )
            )
        else:
            actions.append(
                SysctlAction(
                    "conn_reuse_mode", 0, "set to 0 against the 1 s SYN drop (#71114, #70747)"
                )
            )
    # expire_nodest_conn / expire_quiescent_template = 1: #71834 in v1.14.0, 1.12.5.
    if at_least(kube_version, (1, 12, 5), (1, 14, 0)):
        actions.append(SysctlAction("expire_nodest_conn", 1, "#71834 (v1.14.0, 1.12.5)"))
        actions.append(SysctlAction("expire_quiescent_template", 1, "#71834 (v1.14.0, 1.12.5)"))
    return actions


def apply_kube_proxy(
    node: Sysctls, kube_version: tuple[int, int, int], kernel_version: tuple[int, int]
) -> Sysctls:
    """The node's sysctls after kube-proxy started on it."""
    values = {name: getattr(node, name) for name in Sysctls.names()}
    for action in kube_proxy_sysctls(kube_version, kernel_version):
        if action.value is not None:
            values[action.name] = action.value
    return Sysctls(**values)


# ------------------------------------------------------------------ behaviour by version


class DeleteCondition:
    """When the graceful termination manager may delete a weight-0 TCP real server."""

    IMMEDIATE = "immediate"  # no graceful termination: deleted at once
    ACTIVE_ZERO = "ActiveConn == 0"  # #66012 (v1.13.0, 1.12.2)
    ACTIVE_PLUS_INACTIVE_ZERO = "ActiveConn + InActConn == 0"  # #71515 (v1.14.0, 1.12.4, 1.13.1)


@dataclass(frozen=True, slots=True)
class KubeProxyProfile:
    """What one kube-proxy version's IPVS proxier does (reference kube-proxy-ipvs.md §1, §3, §6)."""

    version: tuple[int, int, int]
    tcp_delete: str  # a DeleteCondition
    udp_immediate: bool  # UDP real servers deleted at once, not drained
    sctp_immediate: bool
    timeout_flags: bool  # --ipvs-tcp/tcpfin/udp-timeout exist
    terminating_fallback: bool  # serving-terminating endpoints used when none is ready
    deprecated: bool  # logs the IPVS deprecation warning at start
    gate_default: bool  # KubeProxyIPVS feature gate default (IPVS mode allowed)

    # The graceful termination list is re-checked on its own 1-minute loop
    # (rsCheckDeleteInterval, every version since #66012); there is no timeout.
    CHECK_INTERVAL_S = 60

    @property
    def label(self) -> str:
        return "v" + ".".join(str(n) for n in self.version)


def kube_proxy_profile(version: tuple[int, int, int]) -> KubeProxyProfile:
    """The IPVS proxier behaviour of ``version`` (1.11 onwards)."""
    if at_least(version, (1, 12, 4), (1, 13, 1), (1, 14, 0)):
        # #71515: ActiveConn + InactiveConn (1.14.0; 1.12.4, 1.13.1, 1.11.6 backports).
        tcp_delete = DeleteCondition.ACTIVE_PLUS_INACTIVE_ZERO
    elif at_least(version, (1, 12, 2), (1, 13, 0)):
        # #66012 graceful termination manager, first with ActiveConn == 0 only.
        tcp_delete = DeleteCondition.ACTIVE_ZERO
    else:
        # Before #66012 (v1.13.0, backported to 1.12.2) a real server left at once.
        tcp_delete = DeleteCondition.IMMEDIATE
    # #77802 (v1.15.0) meant UDP to go at once but compared with "udp" in lower case,
    # so it never matched until #78999 (v1.16.0; 1.12.10, 1.13/1.14 patches, 1.15.x).
    udp_immediate = tcp_delete == DeleteCondition.IMMEDIATE or at_least(
        version, (1, 12, 10), (1, 13, 8), (1, 14, 4), (1, 15, 1), (1, 16, 0)
    )
    return KubeProxyProfile(
        version=version,
        tcp_delete=tcp_delete,
        udp_immediate=udp_immediate,
        # IsRsGracefulTerminationNeeded() skips SCTP too: ~1.20 [UNVERIFIED in the reference].
        sctp_immediate=version >= (1, 20, 0) or tcp_delete == DeleteCondition.IMMEDIATE,
        # #85517, v1.18.0.
        timeout_flags=version >= (1, 18, 0),
        # KEP-1669 ProxyTerminatingEndpoints: beta (on by default) 1.26, GA 1.28.
        terminating_fallback=version >= (1, 26, 0),
        # KEP-5495 / PR #134539: the deprecation warning from v1.35.
        deprecated=version >= (1, 35, 0),
        # KEP update PR #6120: KubeProxyIPVS gate planned Default false in 1.40.
        gate_default=version < (1, 40, 0),
    )


# The newest kube-proxy a scenario may name in IPVS mode: --proxy-mode=ipvs is
# planned to fail to start once KubeProxyIPVS is locked off (1.43, PR #6120).
LAST_IPVS_KUBE_PROXY = (1, 42)
FIRST_MODELLED_KUBE_PROXY = (1, 11)
