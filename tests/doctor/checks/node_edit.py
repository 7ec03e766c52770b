"""Helpers for the check tests: copy a fixture capture directory and edit it.

Each test starts from a node in ``tests/fixtures/doctor/nodes/`` and changes one
thing (a sysctl, some connection rows) to show a finding appear or go away.
"""

from __future__ import annotations

import ipaddress
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.diagnose import diagnose
from ipvslab.doctor.finding import Finding, FindingKind

NODES = Path(__file__).resolve().parents[2] / "fixtures" / "doctor" / "nodes"


def findings_by_subject(root: Path, kind: FindingKind) -> dict[str, Finding]:
    """The findings of one kind for a capture directory, end to end through ``diagnose``."""
    diagnosis = diagnose(snapshot_from_capture(capture_from_layout(root)))
    return {f.subject: f for f in diagnosis.findings if f.kind is kind}


def copy_node(name: str, tmp_path: Path) -> Path:
    root = tmp_path / name
    shutil.copytree(NODES / name, root)
    return root


def filter_conns(root: Path, keep: Callable[[list[str]], bool]) -> None:
    """Keeps the header and the /proc/net/ip_vs_conn rows ``keep`` accepts (split fields)."""
    path = root / "proc" / "net" / "ip_vs_conn"
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "".join(line for line in lines[1:] if keep(line.split())))


def set_sysctl(root: Path, name: str, value: int) -> None:
    path = root / "sysctl.txt"
    pattern = rf"^net\.ipv4\.vs\.{name} = .*$"
    text = re.sub(pattern, f"net.ipv4.vs.{name} = {value}", path.read_text(), flags=re.M)
    path.write_text(text)


def proc_hex(ip: str) -> str:
    """An IPv4 address as /proc/net/ip_vs* prints it (%08X)."""
    return f"{int(ipaddress.IPv4Address(ip)):08X}"


def write_node(
    root: Path,
    uname: str | None,
    kube: str | None,
    sysctl: dict[str, int] | None,
    proxy_mode: str = "ipvs",
    draining: bool = False,
) -> Path:
    """A small capture directory: one rr service 10.96.0.10:80 with a live server
    10.244.2.20 and, when ``draining``, a weight-0 one 10.244.1.10 with a TIME_WAIT entry."""
    h = proc_hex
    (root / "proc" / "net").mkdir(parents=True)
    (root / "kube-proxy").mkdir()
    if uname is not None:
        (root / "uname-r.txt").write_text(uname + "\n")
    if kube is not None:
        (root / "kube-proxy" / "version.txt").write_text(f"Kubernetes {kube}\n")
    (root / "kube-proxy" / "cmdline").write_text(f"kube-proxy --proxy-mode={proxy_mode}\n")
    if sysctl is not None:
        text = "".join(f"net.ipv4.vs.{k} = {v}\n" for k, v in sysctl.items())
        (root / "sysctl.txt").write_text(text)
    weight0 = f"  -> {h('10.244.1.10')}:1F90      Masq    0      0          1\n" if draining else ""
    (root / "proc" / "net" / "ip_vs").write_text(
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
        f"TCP  {h('10.96.0.10')}:0050 rr\n"
        f"{weight0}"
        f"  -> {h('10.244.2.20')}:1F90      Masq    1      1          0\n"
    )
    if draining:
        (root / "proc" / "net" / "ip_vs_conn").write_text(
            "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
            f"TCP {h('10.244.3.30')} 9C40 {h('10.96.0.10')} 0050 {h('10.244.1.10')} 1F90"
            " TIME_WAIT        60\n"
            f"TCP {h('10.244.3.30')} 9C42 {h('10.96.0.10')} 0050 {h('10.244.2.20')} 1F90"
            " ESTABLISHED     800\n"
        )
    return root
