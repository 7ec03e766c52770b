"""What the doctor knows about a node: every input parsed, nothing judged yet.

A ``NodeSnapshot`` is built from a ``Capture`` (a live node, a ``doctor collect``
archive, a directory or pasted files) by ``doctor.capture.snapshot_from_capture``.
Every field may be missing: a ticket often holds only ``ipvsadm -Ln``. The checks
in ``doctor.checks`` say what they need and stay quiet when it is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipvslab.doctor.conn_summary import ConnSummary
from ipvslab.doctor.records import (
    GlobalStats,
    IpvsStatsTable,
    IpvsTable,
    IpvsTimeouts,
    KernelRelease,
    KubeProxySettings,
    KubeProxyVersion,
    OsRelease,
    ParseIssue,
    ProcVersion,
    SysctlMap,
    VersionSignature,
)


@dataclass(frozen=True)
class KubeProxyInfo:
    """kube-proxy as found on the node: its flags merged over its config file.

    ``settings`` holds the effective values (a flag wins over the config file, as
    kube-proxy applies them); ``version`` is None when it could not be learnt.
    """

    settings: KubeProxySettings
    version: KubeProxyVersion | None = None
    argv: tuple[str, ...] = ()
    flags: dict[str, str] = field(default_factory=dict)
    source: str = ""

    @property
    def ipvs_mode(self) -> bool:
        return (self.settings.mode or "").lower() == "ipvs"


@dataclass(frozen=True)
class NodeSnapshot:
    """Parsed inputs, with where each came from (``sources``: input kind -> file)."""

    kernel_release: KernelRelease | None = None
    # /proc/version and Ubuntu's /proc/version_signature: the stable version behind a
    # distro release that hides it (4.19.0-25-amd64 is 4.19.289).
    proc_version: ProcVersion | None = None
    version_signature: VersionSignature | None = None
    os_release: OsRelease | None = None
    sysctls: SysctlMap = field(default_factory=SysctlMap)
    ipvs: IpvsTable | None = None
    stats: GlobalStats | None = None
    service_stats: IpvsStatsTable | None = None
    conns: ConnSummary | None = None
    kube_proxy: KubeProxyInfo | None = None
    # `ipvsadm -L --timeout`, when pasted: the timeouts the kernel has now.
    ipvs_timeouts: IpvsTimeouts | None = None
    # False: the node was read live and has no /proc/net/ip_vs (module not loaded,
    # or not the host's network namespace). None: not known (captured files).
    ipvs_present: bool | None = None
    sources: dict[str, str] = field(default_factory=dict)
    # The user said no kube-proxy runs here (``--kube-proxy none``): values not captured
    # are the kernel defaults, not unknown.
    no_kube_proxy: bool = False
    issues: tuple[ParseIssue, ...] = ()
    notes: tuple[str, ...] = ()

    def sysctl_int(self, name: str) -> int | None:
        """``net.ipv4.vs.<name>`` as an int, or None when not captured."""
        return self.sysctls.get_int(f"net.ipv4.vs.{name}")
