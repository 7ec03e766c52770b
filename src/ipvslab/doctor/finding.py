"""A finding: what the doctor tells an on-call engineer about one problem.

Every finding carries the evidence (the lines and counts that show it), what it
means for traffic, and the fix as exact commands or settings. ``data`` holds the
same evidence as numbers for ``--json`` and ``--prometheus``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Severity(Enum):
    """Ordered: ``Severity.WARNING >= Severity.INFO``."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Severity):
            return NotImplemented
        return self.rank < other.rank


_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


class FindingKind(Enum):
    """The problems the doctor looks for (the ``id`` in JSON and metrics)."""

    STALE_FORWARDING_EXPOSURE = "stale-forwarding-exposure"  # problem 1 (#81775)
    SYN_DROP_EXPOSURE = "syn-drop-exposure"  # problem 2 (#70747)
    STUCK_GRACEFUL_TERMINATION = "stuck-graceful-termination"
    ENTRIES_TO_REMOVED_SERVERS = "entries-to-removed-servers"
    PORT_REUSE_PRESSURE = "port-reuse-pressure"
    PERSISTENCE_TRAP = "persistence-trap"
    SETTINGS_DIFFER_FROM_KUBE_PROXY = "settings-differ-from-kube-proxy"
    IPVS_MODE_DEPRECATED = "ipvs-mode-deprecated"  # kube-proxy v1.35, KEP-5495


@dataclass(frozen=True)
class Finding:
    kind: FindingKind
    severity: Severity
    title: str  # one line
    evidence: tuple[str, ...]  # lines and counts that show it
    meaning: str  # what it does to traffic
    fix: tuple[str, ...]  # exact commands or settings, one per item
    subject: str = ""  # what it is about (a service, a real server, a client), if any
    data: dict[str, Any] = field(default_factory=dict)  # the evidence as numbers
