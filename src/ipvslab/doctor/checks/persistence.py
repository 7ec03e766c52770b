"""Placeholder until this check is written (returns no finding)."""

from __future__ import annotations

from ipvslab.doctor.facts import NodeFacts
from ipvslab.doctor.finding import Finding
from ipvslab.doctor.snapshot import NodeSnapshot


def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
    return []
