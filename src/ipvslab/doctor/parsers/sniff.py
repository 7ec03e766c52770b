"""Which doctor format a pasted text is, from its first lines."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable
from enum import Enum
from typing import Any

from ipvslab.doctor.parsers._common import Stream, is_hex, lines_of
from ipvslab.doctor.parsers.ipvsadm_conn import parse_ipvsadm_conn
from ipvslab.doctor.parsers.ipvsadm_list import parse_ipvsadm_list
from ipvslab.doctor.parsers.ipvsadm_stats import parse_ipvsadm_stats
from ipvslab.doctor.parsers.ipvsadm_timeout import parse_ipvsadm_timeout
from ipvslab.doctor.parsers.kernel_release import RELEASE_RE, parse_kernel_release
from ipvslab.doctor.parsers.kube_proxy import (
    parse_kube_proxy_cmdline,
    parse_kube_proxy_config,
    parse_kube_proxy_version,
)
from ipvslab.doctor.parsers.os_release import parse_os_release
from ipvslab.doctor.parsers.proc_ip_vs import parse_proc_ip_vs
from ipvslab.doctor.parsers.proc_ip_vs_conn import (
    parse_proc_ip_vs_conn,
    parse_proc_ip_vs_conn_sync,
)
from ipvslab.doctor.parsers.proc_ip_vs_stats import parse_proc_ip_vs_stats
from ipvslab.doctor.parsers.proc_version import parse_proc_version, parse_version_signature
from ipvslab.doctor.parsers.sysctl import parse_sysctl
from ipvslab.doctor.records import ParseIssue, ParseResult

SNIFF_LINES = 40


class DoctorFormat(Enum):
    PROC_IP_VS = "/proc/net/ip_vs"
    PROC_IP_VS_CONN = "/proc/net/ip_vs_conn"
    PROC_IP_VS_CONN_SYNC = "/proc/net/ip_vs_conn_sync"
    PROC_IP_VS_STATS = "/proc/net/ip_vs_stats"
    IPVSADM_LIST = "ipvsadm -Ln"
    IPVSADM_STATS = "ipvsadm -Ln --stats"
    IPVSADM_CONN = "ipvsadm -Lnc"
    IPVSADM_TIMEOUT = "ipvsadm -L --timeout"
    SYSCTL = "sysctl -a"
    OS_RELEASE = "/etc/os-release"
    KERNEL_RELEASE = "uname -r"
    PROC_VERSION = "/proc/version"
    VERSION_SIGNATURE = "/proc/version_signature"
    KUBE_PROXY_CMDLINE = "kube-proxy command line"
    KUBE_PROXY_CONFIG = "kube-proxy config"
    KUBE_PROXY_VERSION = "kube-proxy --version"
    UNKNOWN = "unknown"


_SYSCTL_RE = re.compile(r"^[a-z0-9_\-]+(?:[./][A-Za-z0-9_\-@:]+)+\s*=", re.ASCII)
_OS_RELEASE_RE = re.compile(r"^[A-Z][A-Z0-9_]*=", re.ASCII)
_MMSS_RE = re.compile(r"^\d{2,}:\d{2}$", re.ASCII)
_VERSION_RE = re.compile(r"^(?:Kubernetes\s+)?v\d+\.\d+\.\d+\S*$", re.ASCII)
_SIGNATURE_RE = re.compile(r"^[A-Za-z][\w.-]* \d+\.\d+\.\d+-\d+\.\d+\S* \d+\.\d+\.\d+", re.ASCII)
_DOTTED_ADDRPORT = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d+$", re.ASCII)


def sniff_format(lines: Iterable[str]) -> DoctorFormat:
    """The format of a text from its first lines (``UNKNOWN`` if nothing fits)."""
    head = list(itertools.islice(lines_of(lines), SNIFF_LINES))
    text = "".join(head)
    stripped = [line.strip() for line in head if line.strip()]
    if not stripped:
        return DoctorFormat.UNKNOWN
    if "\0" in text:
        return DoctorFormat.KUBE_PROXY_CMDLINE
    if "kind: KubeProxyConfiguration" in text or "kubeproxy.config.k8s.io" in text:
        return DoctorFormat.KUBE_PROXY_CONFIG
    first = stripped[0]
    found = _sniff_ipvs(head, stripped)
    if found is not None:
        return found
    if any("kube-proxy" in s and "--" in s for s in stripped[:3]) or first.startswith("--"):
        return DoctorFormat.KUBE_PROXY_CMDLINE
    if len(stripped) == 1 and _VERSION_RE.match(first):
        return DoctorFormat.KUBE_PROXY_VERSION
    if len(stripped) == 1 and first.startswith("Linux version "):
        return DoctorFormat.PROC_VERSION
    if len(stripped) == 1 and RELEASE_RE.fullmatch(first):
        return DoctorFormat.KERNEL_RELEASE
    if len(stripped) == 1 and _SIGNATURE_RE.match(first):
        return DoctorFormat.VERSION_SIGNATURE
    if all(_OS_RELEASE_RE.match(s) or s.startswith("#") for s in stripped) and any(
        s.startswith(("ID=", "NAME=")) for s in stripped
    ):
        return DoctorFormat.OS_RELEASE
    if sum(bool(_SYSCTL_RE.match(s)) for s in stripped) * 2 > len(stripped):
        return DoctorFormat.SYSCTL
    return DoctorFormat.UNKNOWN


def _sniff_ipvs(head: list[str], stripped: list[str]) -> DoctorFormat | None:
    for raw, line in zip((h for h in head if h.strip()), stripped, strict=True):
        words = line.split()
        if line.startswith("Timeout (tcp tcpfin udp):"):
            return DoctorFormat.IPVSADM_TIMEOUT
        if line.startswith("Pro FromIP"):
            return (
                DoctorFormat.PROC_IP_VS_CONN_SYNC
                if "Origin" in words
                else DoctorFormat.PROC_IP_VS_CONN
            )
        if line.startswith(("Total Incoming", "Conns  Packets", "Conns/s")):
            return DoctorFormat.PROC_IP_VS_STATS
        if line == "IPVS connection entries" or words[:2] == ["pro", "expire"]:
            return DoctorFormat.IPVSADM_CONN
        if words[:1] == ["Prot"] and "Conns" in words:
            return DoctorFormat.IPVSADM_STATS
        if words[:2] == ["->", "RemoteAddress:Port"]:
            # /proc prints one space before Forward, ipvsadm pads the column; a header
            # re-spaced by a paste (tabs) leaves it to the data lines below.
            if "RemoteAddress:Port Forward" in raw:
                return DoctorFormat.PROC_IP_VS
            if "RemoteAddress:Port  " in raw:
                return DoctorFormat.IPVSADM_LIST if "Forward" in words else None
            continue
        if words[:1] == ["->"] and len(words) >= 2:
            if _DOTTED_ADDRPORT.match(words[1]):
                return DoctorFormat.IPVSADM_LIST if len(words) == 6 else DoctorFormat.IPVSADM_STATS
            return DoctorFormat.PROC_IP_VS
        if words[0] in ("TCP", "UDP", "SCTP", "IP") and len(words) >= 6:
            if (len(words) >= 9 and is_hex(words[1], 8)) or (
                ":" in words[1] and "[" not in words[1] and len(words[1]) == 39
            ):
                sync = len(words) == 10 and words[8] in ("SYNC", "LOCAL")
                return DoctorFormat.PROC_IP_VS_CONN_SYNC if sync else DoctorFormat.PROC_IP_VS_CONN
            if _MMSS_RE.match(words[1]):
                return DoctorFormat.IPVSADM_CONN
        if words[0] in ("TCP", "UDP", "SCTP", "FWM") and len(words) >= 2:
            key = words[1]
            if is_hex(key.partition(":")[0], 8) or (
                key.startswith("[") and "]:" in key and len(key.partition("]")[0]) == 40
            ):
                return DoctorFormat.PROC_IP_VS
            if words[0] == "FWM" and is_hex(key, 8) and not key.isdigit():
                return DoctorFormat.PROC_IP_VS
            numbers = words[2:]
            if len(numbers) >= 5 and all(n[:1].isdigit() for n in numbers[-5:]):
                return DoctorFormat.IPVSADM_STATS
            if _DOTTED_ADDRPORT.match(key) or words[0] == "FWM":
                return DoctorFormat.IPVSADM_LIST
    return None


_PARSERS: dict[DoctorFormat, Callable[[Stream, str], ParseResult[Any]]] = {
    DoctorFormat.PROC_IP_VS: parse_proc_ip_vs,
    DoctorFormat.PROC_IP_VS_CONN: parse_proc_ip_vs_conn,
    DoctorFormat.PROC_IP_VS_CONN_SYNC: parse_proc_ip_vs_conn_sync,
    DoctorFormat.PROC_IP_VS_STATS: parse_proc_ip_vs_stats,
    DoctorFormat.IPVSADM_LIST: parse_ipvsadm_list,
    DoctorFormat.IPVSADM_STATS: parse_ipvsadm_stats,
    DoctorFormat.IPVSADM_CONN: parse_ipvsadm_conn,
    DoctorFormat.IPVSADM_TIMEOUT: parse_ipvsadm_timeout,
    DoctorFormat.SYSCTL: parse_sysctl,
    DoctorFormat.OS_RELEASE: parse_os_release,
    DoctorFormat.KERNEL_RELEASE: parse_kernel_release,
    DoctorFormat.PROC_VERSION: parse_proc_version,
    DoctorFormat.VERSION_SIGNATURE: parse_version_signature,
    DoctorFormat.KUBE_PROXY_CMDLINE: parse_kube_proxy_cmdline,
    DoctorFormat.KUBE_PROXY_CONFIG: parse_kube_proxy_config,
    DoctorFormat.KUBE_PROXY_VERSION: parse_kube_proxy_version,
}


def parse_any(stream: Stream, source: str = "input") -> tuple[DoctorFormat, ParseResult[Any]]:
    """Sniffs the format from the first lines, then parses the whole stream with it."""
    it = lines_of(stream)
    head = list(itertools.islice(it, SNIFF_LINES))
    fmt = sniff_format(head)
    parser = _PARSERS.get(fmt)
    if parser is None:
        issue = ParseIssue(source, 0, "format", "could not tell which format this is")
        return fmt, ParseResult(None, (issue,))
    return fmt, parser(itertools.chain(head, it), source)
