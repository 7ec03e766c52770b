"""Run every check over a snapshot: the doctor's pure core (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from ipvslab.doctor.checks import all_checks
from ipvslab.doctor.facts import NodeFacts, node_facts
from ipvslab.doctor.finding import Finding, Severity
from ipvslab.doctor.snapshot import NodeSnapshot


@dataclass(frozen=True)
class Diagnosis:
    snapshot: NodeSnapshot
    facts: NodeFacts
    findings: tuple[Finding, ...]

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def at_or_above(self, severity: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= severity)


def diagnose(snapshot: NodeSnapshot) -> Diagnosis:
    facts = node_facts(snapshot)
    findings: list[Finding] = []
    for check in all_checks():
        findings.extend(check(snapshot, facts))
    findings.sort(key=lambda f: -f.severity.rank)  # stable: report order within a severity
    return Diagnosis(snapshot, facts, tuple(findings))
