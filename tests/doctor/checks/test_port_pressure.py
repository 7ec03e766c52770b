"""Finding 4: port reuse pressure.

The formula and its table are from client-tcp-ports.md §5.2; the node's exposure
(which decides whether reuse hurts) from the seeds: Ubuntu 20.04 with kube-proxy's
conn_reuse_mode=0 has problem 1, Debian 12 has neither.
"""

from __future__ import annotations

import ipaddress
import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.checks import port_pressure
from ipvslab.doctor.checks.port_pressure import reuse_probability
from ipvslab.doctor.conn_summary import ClientKey, ClientStats, ConnSummary
from ipvslab.doctor.facts import node_facts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.parsers.kernel_release import parse_kernel_release
from ipvslab.doctor.records import SysctlMap
from ipvslab.doctor.snapshot import NodeSnapshot

NODES = Path(__file__).resolve().parents[2] / "fixtures" / "doctor" / "nodes"

# client-tcp-ports.md §5.2 "Formula values" (E = 14116, T_I = 120 s), in percent.
REFERENCE_TABLE = [
    # N, server closes first (T_C = 0), client closes first (T_C = 60 s)
    (1, 0.8, 0.4),
    (5, 4.2, 2.1),
    (10, 8.1, 4.3),
    (20, 15.6, 8.9),
    (50, 34.6, 23.7),
    (100, 57.3, 52.3),
    (150, 72.1, 82.8),
    (200, 81.7, 99.7),
]
E_DEFAULT = 14116  # (60999 - 32768 + 1) / 2
T_I = 120


def pressure_findings(root: Path) -> list[Finding]:
    snapshot = snapshot_from_capture(capture_from_layout(root))
    return port_pressure.check(snapshot, node_facts(snapshot))


# --------------------------------------------------------------------------- the formula


@pytest.mark.parametrize(("rate", "server", "client"), REFERENCE_TABLE)
def test_formula_matches_the_reference_table(rate: int, server: float, client: float) -> None:
    assert reuse_probability(rate, T_I, 0, E_DEFAULT) * 100 == pytest.approx(server, abs=0.05)
    assert reuse_probability(rate, T_I, 60, E_DEFAULT) * 100 == pytest.approx(client, abs=0.05)


rates = st.floats(min_value=0, max_value=1e5, allow_nan=False)
holds = st.floats(min_value=0, max_value=3600, allow_nan=False)
refusals = st.sampled_from([0.0, 1.0, 60.0])
ports = st.integers(min_value=1, max_value=65535)


@given(rates, holds, refusals, ports)
def test_probability_is_a_probability(rate: float, hold: float, refuse: float, e: int) -> None:
    assert 0.0 <= reuse_probability(rate, hold, refuse, e) <= 1.0


@given(rates, rates, holds, refusals, ports)
def test_probability_grows_with_the_connection_rate(
    a: float, b: float, hold: float, refuse: float, e: int
) -> None:
    low, high = sorted((a, b))
    assert reuse_probability(low, hold, refuse, e) <= reuse_probability(high, hold, refuse, e)


@given(st.floats(min_value=0.01, max_value=1e4, allow_nan=False), ports)
def test_saturation_when_client_time_wait_holds_every_port(rate: float, e: int) -> None:
    # §5.2: from N·T_C >= E every even port is in the client's TIME_WAIT.
    if rate * 60 >= e:
        assert reuse_probability(rate, T_I, 60, e) == 1.0
    assert reuse_probability(0, T_I, 0, e) == 0.0


def test_no_reuse_while_the_client_holds_the_port_longer_than_ipvs() -> None:
    assert reuse_probability(100, 30, 60, E_DEFAULT) == 0.0


# --------------------------------------------------------------------------- capture dirs


def test_busy_client_on_an_exposed_node_is_critical() -> None:
    found = pressure_findings(NODES / "pressure-focal-busy-client")
    assert [f.kind for f in found] == [FindingKind.PORT_REUSE_PRESSURE]
    finding = found[0]
    assert finding.severity is Severity.CRITICAL
    assert "10.244.9.50" in finding.title and "10.96.0.20:443" in finding.title
    evidence = "\n".join(finding.evidence)
    # The node's own range 32768-36767 (R = 4000): E = 2000 ports of one parity.
    assert "32768-36767" in evidence and "E = 2000" in evidence
    assert "own network namespace" in evidence  # the range is the node's, clients may differ
    # 1200 closed entries held 120 s: N = 10/s; the reference formula gives p.
    row = finding.data["pairs"][0]
    assert row["rate_per_second"] == pytest.approx(10.0)
    assert row["p_server_closes"] == pytest.approx(1 - math.exp(-10 * 120 / 2000), abs=1e-3)
    assert row["p_client_closes"] == pytest.approx(1 - math.exp(-10 * 60 / (2000 - 600)), abs=1e-3)
    fix = "\n".join(finding.fix)
    # On 5.4.0-91 (f0a5e4d7a594 present) conn_reuse_mode=1 makes reuse harmless.
    assert "sysctl -w net.ipv4.vs.conn_reuse_mode=1" in fix
    assert "net.ipv4.ip_local_port_range" in fix
    assert "keep-alive" in fix
    assert json.loads(json.dumps(finding.data, allow_nan=False))["port_range"] == [32768, 36767]


def test_same_client_on_a_node_where_reuse_is_harmless_is_info() -> None:
    found = pressure_findings(NODES / "pressure-debian12-harmless")
    assert len(found) == 1
    assert found[0].severity is Severity.INFO
    assert "reschedules" in found[0].meaning
    assert not any("conn_reuse_mode" in line for line in found[0].fix)


def test_a_quiet_table_has_no_pressure() -> None:
    assert pressure_findings(NODES / "exposure-debian12-kp128") == []


def test_no_connection_table_no_finding(tmp_path: Path) -> None:
    (tmp_path / "uname-r.txt").write_text("5.4.0-91-generic\n")
    assert pressure_findings(tmp_path) == []


# --------------------------------------------------------------------------- properties


def _snapshot(uname: str | None, sysctl: dict[str, str], closed: int) -> NodeSnapshot:
    key = ClientKey(
        ipaddress.IPv4Address("10.244.3.30"), "TCP", ipaddress.IPv4Address("10.96.0.10"), 80
    )
    conns = ConnSummary(
        total=closed,
        templates=0,
        invalidated_templates=0,
        busiest_clients={key.client: ClientStats(closed, closed, 0)},
        client_services={key: ClientStats(closed, closed, 0)},
    )
    release = parse_kernel_release(uname).value if uname else None
    return NodeSnapshot(kernel_release=release, sysctls=SysctlMap(sysctl), conns=conns)


HARMLESS = {"net.ipv4.vs.conn_reuse_mode": "1", "net.ipv4.vs.conntrack": "1"}
EXPOSED = {"net.ipv4.vs.conn_reuse_mode": "0", "net.ipv4.vs.conntrack": "1"}


@given(st.integers(min_value=16, max_value=200_000))
def test_reuse_on_a_harmless_node_is_at_most_info(closed: int) -> None:
    snapshot = _snapshot("6.1.0-18-amd64", HARMLESS, closed)
    for finding in port_pressure.check(snapshot, node_facts(snapshot)):
        assert finding.severity is Severity.INFO


@given(st.integers(min_value=16, max_value=100_000), st.integers(min_value=16, max_value=100_000))
def test_severity_grows_with_pressure_on_an_exposed_node(a: int, b: int) -> None:
    def severity(closed: int) -> int:
        snapshot = _snapshot("4.15.0-213-generic", EXPOSED, closed)
        found = port_pressure.check(snapshot, node_facts(snapshot))
        return found[0].severity.rank if found else -1

    low, high = sorted((a, b))
    assert severity(low) <= severity(high)


def test_unknown_kernel_caps_at_warning() -> None:
    snapshot = _snapshot(None, EXPOSED, 50_000)
    found = port_pressure.check(snapshot, node_facts(snapshot))
    assert found[0].severity is Severity.WARNING
    assert "not captured" in found[0].meaning


def test_mode_0_on_a_fixed_kernel_is_not_called_harmless_for_load() -> None:
    # 6.1 with mode 0 and expire_nodest_conn=1: weight-0 and removed servers are left
    # (c95c07836fa4, 04231e52d355), but a reused port to a healthy server is not
    # rescheduled (mode 0, d752c364): the client's load stays on its old pods.
    sysctl = {
        "net.ipv4.vs.conn_reuse_mode": "0",
        "net.ipv4.vs.conntrack": "1",
        "net.ipv4.vs.expire_nodest_conn": "1",
    }
    snapshot = _snapshot("6.1.0-18-amd64", sysctl, 12_000)
    [finding] = port_pressure.check(snapshot, node_facts(snapshot))
    assert "stays on its old pod" in finding.meaning
    assert "harmless today" not in finding.meaning
