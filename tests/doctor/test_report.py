"""The doctor's JSON report: built from a diagnosis, valid against the committed schema."""

from __future__ import annotations

import ipaddress
import json
import math
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

import pytest

from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.diagnose import Diagnosis, diagnose
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.report import (
    Report,
    build_report,
    jsonable,
    schema_text,
)
from ipvslab.explain import ServerCondition

ROOT = Path(__file__).resolve().parents[2]
NODES = ROOT / "tests" / "fixtures" / "doctor" / "cli"
SCHEMA = ROOT / "docs" / "doctor-report.schema.json"


def diagnosis_of(node: str) -> Diagnosis:
    return diagnose(snapshot_from_capture(capture_from_layout(NODES / node)))


def test_committed_schema_is_the_generated_one() -> None:
    """Regenerate it with:
    .venv/bin/python -m ipvslab.doctor.report --write docs/doctor-report.schema.json
    """
    assert SCHEMA.read_text(encoding="utf-8") == schema_text()


@pytest.mark.parametrize("node", ["healthy", "ubuntu-18.04-81775", "malformed", "pasted"])
def test_report_round_trips_through_json(node: str) -> None:
    report = build_report(diagnosis_of(node), generated_at=datetime(2024, 5, 1, tzinfo=UTC))
    text = report.model_dump_json()
    again = Report.model_validate(json.loads(text))
    assert again == report
    assert again.model_dump_json() == text


def test_report_of_the_81775_node() -> None:
    report = build_report(diagnosis_of("ubuntu-18.04-81775"))
    node = report.node
    assert (node.kernel.release, node.kernel.preset, node.kernel.era) == (
        "4.15.0-213-generic",
        "ubuntu-18.04",
        "4.14 - <5.9",
    )
    assert "first_syn_drop" in node.kernel.features
    assert node.distro is not None and node.distro.id == "ubuntu"
    assert node.kube_proxy is not None
    assert (node.kube_proxy.version, node.kube_proxy.mode) == ("v1.20.0", "ipvs")
    assert node.kube_proxy.flags["proxy-mode"] == "ipvs"
    assert {a.sysctl: a.value for a in node.kube_proxy.sysctl_actions}["conn_reuse_mode"] == 0
    assert node.sysctls["conn_reuse_mode"].value == 0
    assert node.sysctls["conn_reuse_mode"].origin.value == "node"
    assert node.sysctls["conn_reuse_old_conntrack"].origin.value == "not in this kernel"
    assert (node.services, node.real_servers, node.ipvs_version) == (2, 3, "1.2.1")

    exposure = report.exposure
    assert exposure.known and exposure.stale_forwarding and exposure.syn_drop
    assert "#81775" in exposure.verdict
    assert "d752c364571743d6" in exposure.reason  # the decisive step's commit
    by_condition = {c.condition: c for c in exposure.conditions}
    assert by_condition[ServerCondition.WEIGHT0_POD_GONE].problem == "problem 1"
    assert by_condition[ServerCondition.WEIGHT0_POD_GONE].steps[-1].commit

    [stuck] = report.stuck_real_servers
    assert (stuck.service, stuck.address, stuck.port) == ("TCP 10.96.33.7:80", "10.244.1.10", 8080)
    assert (stuck.active_conns, stuck.inactive_conns, stuck.entries) == (3, 40, 43)
    assert stuck.by_state == {"ESTABLISHED": 3, "TIME_WAIT": 40}

    assert report.connections is not None
    assert report.connections.by_state == {"ESTABLISHED": 6, "TIME_WAIT": 42}
    assert report.input_problems == []
    assert report.input.missing == [
        "proc/net/ip_vs_stats",
        "proc/version",
        "proc/version_signature",
        "kube-proxy/config.yaml",
        "ipvsadm-Ln.txt",
        "ipvsadm-Ln-stats.txt",
        "ipvsadm-Lnc.txt",
        "ipvsadm-timeout.txt",
    ]


def test_healthy_node_is_not_exposed() -> None:
    report = build_report(diagnosis_of("healthy"))
    assert report.exposure.known
    assert (report.exposure.stale_forwarding, report.exposure.syn_drop) == (False, False)
    assert report.stuck_real_servers == []


def test_without_a_kernel_release_exposure_is_unknown_and_says_why() -> None:
    report = build_report(diagnosis_of("pasted"))
    assert not report.exposure.known
    assert report.exposure.stale_forwarding is None
    assert "uname -r" in report.exposure.reason
    assert report.node.kernel.release is None
    assert report.node.kernel.problem is not None


def test_malformed_line_becomes_an_input_problem_with_its_line() -> None:
    report = build_report(diagnosis_of("malformed"))
    [problem] = report.input_problems
    assert problem.source.endswith("malformed/proc/net/ip_vs_conn")
    assert (problem.line, problem.field) == (3, "FPrt")
    assert str(problem).endswith("proc/net/ip_vs_conn:3: FPrt: expected 4 hex digits, got 'ZZZZ'")
    assert report.connections is not None and report.connections.total == 7  # the rest was read


class _Colour(Enum):
    RED = "red"


def test_findings_summary_and_odd_data_become_json() -> None:
    base = diagnosis_of("healthy")
    findings = (
        Finding(
            FindingKind.STUCK_GRACEFUL_TERMINATION,
            Severity.CRITICAL,
            "a weight-0 server keeps its entries",
            ("10.244.1.10:8080 weight 0, 43 entries",),
            "new connections from reused ports reach a terminating pod",
            ("kubectl -n prod delete pod web-1",),
            subject="TCP 10.96.33.7:80",
            data={
                "server": ipaddress.ip_address("10.244.1.10"),
                "by": {("TCP", 80): 3},
                "kinds": {_Colour.RED},
                "ratio": math.nan,
                "when": datetime(2024, 5, 1, tzinfo=UTC),
            },
        ),
        Finding(FindingKind.PORT_REUSE_PRESSURE, Severity.INFO, "t", (), "m", ()),
    )
    report = build_report(Diagnosis(base.snapshot, base.facts, findings))
    assert report.summary.findings == 2
    assert (report.summary.counts.critical, report.summary.counts.info) == (1, 1)
    assert report.summary.worst is Severity.CRITICAL
    data = json.loads(report.model_dump_json())["findings"][0]
    assert data["id"] == "stuck-graceful-termination" and data["severity"] == "critical"
    assert data["data"] == {
        "server": "10.244.1.10",
        "by": {"TCP:80": 3},
        "kinds": ["red"],
        "ratio": "nan",
        "when": "2024-05-01T00:00:00+00:00",
    }
    assert [f.id for f in report.at_or_above(Severity.WARNING)] == [
        FindingKind.STUCK_GRACEFUL_TERMINATION
    ]


def test_jsonable_passes_plain_values_through() -> None:
    assert jsonable({"a": [1, 2.5, "x", None, True]}) == {"a": [1, 2.5, "x", None, True]}
    assert jsonable((ipaddress.ip_address("2001:db8::1"),)) == ["2001:db8::1"]


def test_docs_describe_every_finding_and_metric() -> None:
    from ipvslab.doctor.prometheus import METRICS, PREFIX

    doc = (ROOT / "docs" / "doctor.md").read_text(encoding="utf-8")
    for kind in FindingKind:
        assert f"### `{kind.value}`" in doc, kind
    for name, _ in METRICS:
        assert f"`{PREFIX}{name}`" in doc, name


def test_a_failing_check_costs_only_its_own_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    from ipvslab.doctor import checks
    from ipvslab.doctor.checks import port_pressure

    node = Path(__file__).parent.parent / "fixtures/doctor/nodes/graceful-stuck"
    snapshot = snapshot_from_capture(capture_from_layout(node))
    healthy = diagnose(snapshot)

    def broken(*_: object) -> list[Finding]:
        raise RuntimeError("boom")

    broken.__module__ = port_pressure.__name__
    original = checks.all_checks()
    monkeypatch.setattr(
        "ipvslab.doctor.diagnose.all_checks",
        lambda: tuple(broken if c is port_pressure.check else c for c in original),
    )
    hurt = diagnose(snapshot)
    lost = {f.kind for f in healthy.findings} - {f.kind for f in hurt.findings}
    assert lost == {FindingKind.PORT_REUSE_PRESSURE}
    assert hurt.check_errors == ("port_pressure: RuntimeError: boom",)
    problems = build_report(hurt).input_problems
    assert any(p.field == "check port_pressure" and "boom" in p.message for p in problems)
    with pytest.raises(RuntimeError):
        diagnose(snapshot, strict=True)


def test_a_drop_only_for_removed_servers_is_not_called_the_conntrack_drop() -> None:
    # Ubuntu 18.04, conn_reuse_mode=0, expire_nodest_conn=1: a reused port whose server
    # was removed loses one SYN; a healthy or weight-0 server's port loses none.
    node = Path(__file__).parent.parent / "fixtures/doctor/nodes/graceful-stuck"
    report = build_report(diagnose(snapshot_from_capture(capture_from_layout(node))))
    assert report.exposure.syn_drop is True
    assert "#70747" not in report.exposure.verdict
    assert "only when the old real server was removed" in report.exposure.verdict
