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
    # Checks that failed on this input ("check name: error"); their findings are missing.
    check_errors: tuple[str, ...] = ()

    @property
    def worst(self) -> Severity | None:
        return max((f.severity for f in self.findings), key=lambda s: s.rank, default=None)

    def at_or_above(self, severity: Severity) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity >= severity)


def diagnose(snapshot: NodeSnapshot, *, strict: bool = False) -> Diagnosis:
    """Every check over the snapshot. One failing check costs only its own findings
    (recorded in ``check_errors``) unless ``strict``, which re-raises (for debugging)."""
    facts = node_facts(snapshot)
    findings: list[Finding] = []
    errors: list[str] = []
    for check in all_checks():
        try:
            findings.extend(check(snapshot, facts))
        except Exception as exc:
            if strict:
                raise
            name = check.__module__.rsplit(".", 1)[-1]
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
    findings.sort(key=lambda f: -f.severity.rank)  # stable: report order within a severity
    return Diagnosis(snapshot, facts, tuple(findings), tuple(errors))
