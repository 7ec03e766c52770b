"""Helpers for the check tests: copy a fixture capture directory and edit it.

Each test starts from a node in ``tests/fixtures/doctor/nodes/`` and changes one
thing (a sysctl, some connection rows) to show a finding appear or go away.
"""

from __future__ import annotations

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
