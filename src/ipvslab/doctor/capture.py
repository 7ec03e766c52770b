"""Inputs of the doctor, wherever they come from, and their parsing into a snapshot.

A ``Capture`` is a set of input files, each of a known kind, each opened lazily
as a text stream (a million-line ``ip_vs_conn`` is never held in memory). Live
nodes, ``doctor collect`` archives, directories and pasted files all become a
``Capture``; ``snapshot_from_capture`` parses one into a ``NodeSnapshot``.

The capture layout (archive members and directory paths, relative to its root)::

    manifest.json                 what was collected, when, and what failed
    proc/net/ip_vs                /proc/net/ip_vs
    proc/net/ip_vs_conn           /proc/net/ip_vs_conn
    proc/net/ip_vs_stats          /proc/net/ip_vs_stats
    sysctl.txt                    net.ipv4.vs.* and friends, in `sysctl -a` form
    uname-r.txt                   the kernel release (/proc/sys/kernel/osrelease)
    etc/os-release                /etc/os-release
    kube-proxy/cmdline            /proc/<pid>/cmdline of kube-proxy (NUL-separated)
    kube-proxy/config.yaml        its --config file (KubeProxyConfiguration)
    kube-proxy/version.txt        `kube-proxy --version`
    ipvsadm-Ln.txt, ipvsadm-Ln-stats.txt, ipvsadm-Lnc.txt   pasted ipvsadm output
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import IO, Any

from ipvslab.doctor.conn_summary import (
    ConnSummary,
    state_timeouts,
    summarize_conns,
    summarize_proc_ip_vs_conn,
)
from ipvslab.doctor.parsers import (
    iter_ipvsadm_conn,
    parse_ipvsadm_list,
    parse_ipvsadm_stats,
    parse_kernel_release,
    parse_kube_proxy_cmdline,
    parse_kube_proxy_config,
    parse_kube_proxy_version,
    parse_os_release,
    parse_proc_ip_vs,
    parse_proc_ip_vs_stats,
    parse_sysctl,
)
from ipvslab.doctor.records import KubeProxySettings, ParseIssue, ParseResult, SysctlMap
from ipvslab.doctor.snapshot import KubeProxyInfo, NodeSnapshot


class InputKind(Enum):
    """Each input the doctor reads; the value is its path in the capture layout."""

    MANIFEST = "manifest.json"
    PROC_IP_VS = "proc/net/ip_vs"
    PROC_IP_VS_CONN = "proc/net/ip_vs_conn"
    PROC_IP_VS_STATS = "proc/net/ip_vs_stats"
    SYSCTL = "sysctl.txt"
    KERNEL_RELEASE = "uname-r.txt"
    OS_RELEASE = "etc/os-release"
    KUBE_PROXY_CMDLINE = "kube-proxy/cmdline"
    KUBE_PROXY_CONFIG = "kube-proxy/config.yaml"
    KUBE_PROXY_VERSION = "kube-proxy/version.txt"
    IPVSADM_LIST = "ipvsadm-Ln.txt"
    IPVSADM_STATS = "ipvsadm-Ln-stats.txt"
    IPVSADM_CONN = "ipvsadm-Lnc.txt"

    @property
    def path(self) -> str:
        return self.value


Opener = Callable[[], contextlib.AbstractContextManager[IO[str]]]


@dataclass(frozen=True)
class CaptureFile:
    kind: InputKind
    source: str  # what error messages name: a path, "archive.tgz:proc/net/ip_vs", "<stdin>"
    open: Opener


@dataclass(frozen=True)
class Capture:
    """Input files by kind, plus what could not be read at all (``problems``)."""

    files: dict[InputKind, CaptureFile] = field(default_factory=dict)
    live: bool = False
    ipvs_present: bool | None = None
    problems: tuple[ParseIssue, ...] = ()
    notes: tuple[str, ...] = ()
    manifest: dict[str, Any] = field(default_factory=dict)

    def with_file(self, file: CaptureFile) -> Capture:
        return replace(self, files={**self.files, file.kind: file})


def path_opener(path: Path) -> Opener:
    """Opens a file as text, replacing undecodable bytes (never raises on content)."""

    def opener() -> contextlib.AbstractContextManager[IO[str]]:
        return path.open(encoding="utf-8", errors="replace", newline="")

    return opener


def capture_from_layout(root: Path) -> Capture:
    """A directory in the capture layout (see the module docstring)."""
    files = {}
    for kind in InputKind:
        path = root / kind.path
        if path.is_file():
            files[kind] = CaptureFile(kind, str(path), path_opener(path))
    return Capture(files=files)


def snapshot_from_capture(capture: Capture) -> NodeSnapshot:
    """Parses every input of a capture. Unreadable lines become issues, never exceptions."""
    issues: list[ParseIssue] = list(capture.problems)
    sources = {kind.path: f.source for kind, f in capture.files.items()}

    def parse(kind: InputKind, parser: Callable[..., ParseResult[Any]]) -> Any:
        file = capture.files.get(kind)
        if file is None:
            return None
        try:
            with file.open() as stream:
                result = parser(stream, file.source)
        except OSError as exc:
            issues.append(ParseIssue(file.source, 0, "file", f"cannot read: {exc.strerror or exc}"))
            return None
        issues.extend(result.issues)
        return result.value

    release = parse(InputKind.KERNEL_RELEASE, parse_kernel_release)
    os_release = parse(InputKind.OS_RELEASE, parse_os_release)
    sysctls = parse(InputKind.SYSCTL, parse_sysctl) or SysctlMap()
    ipvs = parse(InputKind.PROC_IP_VS, parse_proc_ip_vs)
    listed = parse(InputKind.IPVSADM_LIST, parse_ipvsadm_list)
    stats = parse(InputKind.PROC_IP_VS_STATS, parse_proc_ip_vs_stats)
    service_stats = parse(InputKind.IPVSADM_STATS, parse_ipvsadm_stats)
    kube_proxy = _kube_proxy(capture, parse)
    settings = kube_proxy.settings if kube_proxy else KubeProxySettings()
    timeouts = state_timeouts(
        settings.ipvs_tcp_timeout, settings.ipvs_tcpfin_timeout, settings.ipvs_udp_timeout
    )

    def proc_conns(stream: IO[str], source: str) -> ParseResult[ConnSummary]:
        found: list[ParseIssue] = []
        summary = summarize_proc_ip_vs_conn(stream, source, found, timeouts=timeouts)
        return ParseResult(summary, tuple(found))

    def ipvsadm_conns(stream: IO[str], source: str) -> ParseResult[ConnSummary]:
        found: list[ParseIssue] = []
        summary = summarize_conns(iter_ipvsadm_conn(stream, source, found), timeouts)
        return ParseResult(summary, tuple(found))

    conns = parse(InputKind.PROC_IP_VS_CONN, proc_conns)
    if conns is None:
        conns = parse(InputKind.IPVSADM_CONN, ipvsadm_conns)
    return NodeSnapshot(
        kernel_release=release,
        os_release=os_release,
        sysctls=sysctls,
        ipvs=ipvs if ipvs is not None else listed,
        stats=stats,
        service_stats=service_stats,
        conns=conns,
        kube_proxy=kube_proxy,
        ipvs_present=capture.ipvs_present,
        sources=sources,
        issues=tuple(issues),
        notes=capture.notes,
    )


def _kube_proxy(capture: Capture, parse: Callable[..., Any]) -> KubeProxyInfo | None:
    cmdline = parse(InputKind.KUBE_PROXY_CMDLINE, parse_kube_proxy_cmdline)
    config = parse(InputKind.KUBE_PROXY_CONFIG, parse_kube_proxy_config)
    version = parse(InputKind.KUBE_PROXY_VERSION, parse_kube_proxy_version)
    if cmdline is None and config is None and version is None:
        return None
    flags = cmdline.settings if cmdline is not None else KubeProxySettings()
    base = config if config is not None else KubeProxySettings()
    # A flag given on the command line wins over the config file's value.
    merged = KubeProxySettings(
        **{
            name: getattr(flags, name) if getattr(flags, name) is not None else getattr(base, name)
            for name in KubeProxySettings.__dataclass_fields__
        }
    )
    source = capture.files.get(InputKind.KUBE_PROXY_CMDLINE) or capture.files.get(
        InputKind.KUBE_PROXY_CONFIG
    )
    return KubeProxyInfo(
        settings=merged,
        version=version,
        argv=cmdline.argv if cmdline is not None else (),
        flags=dict(cmdline.flags) if cmdline is not None else {},
        source=source.source if source is not None else "",
    )
