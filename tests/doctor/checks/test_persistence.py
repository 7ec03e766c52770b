"""Finding 5: session affinity (IPVS persistence) keeps clients on a weight-0 server.

The fixture ``persistence-trap`` is a CentOS 7.6 node (3.10, HZ=1000) with
kube-proxy v1.12.3, which has graceful termination but does not set
expire_quiescent_template yet (#71834 came in v1.12.5 / v1.14.0). Service
10.111.103.161:80 has sessionAffinity ClientIP (10800 s); its old pod
10.244.4.8:8080 is at weight 0 and six clients hold templates to it (seed 003).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.checks import persistence
from ipvslab.doctor.conn_summary import summarize_conns
from ipvslab.doctor.diagnose import diagnose
from ipvslab.doctor.facts import node_facts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.records import (
    ConnEntry,
    Family,
    ForwardMethod,
    IpvsTable,
    Protocol,
    RealServerEntry,
    ServiceEntry,
    ServiceFlags,
    SysctlMap,
    TimeoutUnit,
)
from ipvslab.doctor.snapshot import NodeSnapshot

from .node_edit import NODES, copy_node, filter_conns, findings_by_subject, set_sysctl

TRAP = FindingKind.PERSISTENCE_TRAP
SVC = "TCP 10.111.103.161:80"
OLD_HEX = "0AF40408"  # 10.244.4.8


def diagnosis_of(root: Path) -> dict[FindingKind, list[Finding]]:
    """Every finding of a capture directory, end to end through ``diagnose``, by kind."""
    out: dict[FindingKind, list[Finding]] = {}
    for f in diagnose(snapshot_from_capture(capture_from_layout(root))).findings:
        out.setdefault(f.kind, []).append(f)
    return out


def trap_findings(root: Path) -> dict[str, Finding]:
    return findings_by_subject(root, TRAP)


# --------------------------------------------------------------------------- end to end


def test_templates_pin_clients_to_the_weight0_pod_critical() -> None:
    found = trap_findings(NODES / "persistence-trap")
    assert list(found) == [SVC]
    f = found[SVC]
    assert f.severity is Severity.CRITICAL
    assert f.title == (
        f"Session affinity keeps sending 6 clients of {SVC} to weight-0 server 10.244.4.8:8080 "
        "(expire_quiescent_template=0)"
    )
    d = f.data
    assert (d["templates"], d["max_expires"], d["renewed"]) == (6, 10797, True)
    # /proc prints 10800000 jiffies; the template renewed seconds ago says HZ=1000.
    assert (d["persistence_timeout"], d["persistence_timeout_unit"]) == (10800000, "jiffies")
    assert d["persistence_timeout_s"] == [10800]
    assert d["expire_quiescent_template"] == 0
    assert [s["server"] for s in d["servers"]] == ["10.244.4.8:8080"]
    assert d["servers"][0]["templates"] == 6 and d["servers"][0]["entries"] == 8
    text = "\n".join(f.evidence)
    assert "persistent 10800000 jiffies = 10800 s (HZ=1000" in text
    assert "-> 10.244.4.8:8080 Masq weight 0, ActiveConn 3, InActConn 5" in text
    assert "6 persistence templates (client port 0)" in text
    assert "net.ipv4.vs.expire_quiescent_template = 0 (read on the node)" in text
    assert "renews the template" in f.meaning and "3 h 0 min" in f.meaning
    assert f.fix[0].startswith("sysctl -w net.ipv4.vs.expire_quiescent_template=1 && echo")
    assert any("upgrade kube-proxy v1.12.3" in x and "#71834" in x for x in f.fix)
    assert any(x.startswith("ipvsadm -d -t 10.111.103.161:80 -r 10.244.4.8:8080") for x in f.fix)


def test_the_same_server_is_a_stuck_graceful_termination_too() -> None:
    stuck = diagnosis_of(NODES / "persistence-trap")[FindingKind.STUCK_GRACEFUL_TERMINATION]
    assert [f.subject for f in stuck] == [f"{SVC} -> 10.244.4.8:8080"]
    assert any(
        x.startswith("sysctl -w net.ipv4.vs.expire_quiescent_template=1") for x in stuck[0].fix
    )


def test_pasted_ipvsadm_output_gives_the_same_finding() -> None:
    proc = trap_findings(NODES / "persistence-trap")[SVC]
    pasted = trap_findings(NODES / "persistence-trap-ipvsadm")[SVC]
    assert pasted.severity is proc.severity
    # ipvsadm prints the timeout in seconds.
    assert (pasted.data["persistence_timeout"], pasted.data["persistence_timeout_unit"]) == (
        10800,
        "seconds",
    )
    for key in ("templates", "max_expires", "renewed", "persistence_timeout_s", "servers"):
        assert pasted.data[key] == proc.data[key]
    assert pasted.fix == proc.fix
    assert "ipvsadm -Ln: TCP 10.111.103.161:80 rr persistent 10800 s" in pasted.evidence


def test_expire_quiescent_template_1_no_finding(tmp_path: Path) -> None:
    root = copy_node("persistence-trap", tmp_path)
    set_sysctl(root, "expire_quiescent_template", 1)
    assert trap_findings(root) == {}
    pasted = copy_node("persistence-trap-ipvsadm", tmp_path)
    set_sysctl(pasted, "expire_quiescent_template", 1)
    assert trap_findings(pasted) == {}


def test_kube_proxy_that_sets_it_means_something_reset_it(tmp_path: Path) -> None:
    root = copy_node("persistence-trap", tmp_path)
    (root / "kube-proxy" / "version.txt").write_text("Kubernetes v1.14.0\n")
    f = trap_findings(root)[SVC]
    assert any("sets expire_quiescent_template=1 at start" in x for x in f.fix)
    assert not any("upgrade" in x for x in f.fix)


def test_quiet_templates_are_a_warning(tmp_path: Path) -> None:
    # No template renewed lately and no connection opened or closed on the weight-0 pod
    # in the last seconds: the trap is set but nobody is walking into it right now.
    root = copy_node("persistence-trap", tmp_path)
    filter_conns(
        root,
        lambda row: (
            row[5] != OLD_HEX
            or (row[2] == "0000" and int(row[8]) < 10000)
            or (row[2] != "0000" and row[7] == "ESTABLISHED" and int(row[8]) < 890)
        ),
    )
    f = trap_findings(root)[SVC]
    assert f.severity is Severity.WARNING
    assert f.data["renewed"] is False
    assert f.data["templates"] == 5


def test_removed_server_templates_are_not_a_trap(tmp_path: Path) -> None:
    # Someone ran ipvsadm -d for the old pod: ip_vs_check_template() gives up a template
    # whose server is not available whatever expire_quiescent_template says, so it is no
    # trap; its leftovers are finding 3's.
    root = copy_node("persistence-trap", tmp_path)
    ip_vs = root / "proc" / "net" / "ip_vs"
    ip_vs.write_text(
        "".join(line for line in ip_vs.read_text().splitlines(True) if OLD_HEX not in line)
    )
    found = diagnosis_of(root)
    assert TRAP not in found
    removed = found[FindingKind.ENTRIES_TO_REMOVED_SERVERS]
    assert [(f.subject, f.data["entries"], f.data["templates"]) for f in removed] == [(SVC, 8, 6)]


def test_nothing_without_both_tables(tmp_path: Path) -> None:
    root = copy_node("persistence-trap", tmp_path)
    (root / "proc" / "net" / "ip_vs_conn").unlink()
    assert trap_findings(root) == {}
    snapshot = NodeSnapshot()
    assert persistence.check(snapshot, node_facts(snapshot)) == []


# --------------------------------------------------------------------------- properties

V4 = ipaddress.IPv4Address
VIPS = (V4("10.96.0.1"), V4("10.96.0.2"))
RIPS = (V4("10.244.0.1"), V4("10.244.0.2"), V4("10.244.0.3"))


@st.composite
def cases(draw: st.DrawFn) -> tuple[NodeSnapshot, list[ConnEntry]]:
    services = []
    for vip in draw(st.lists(st.sampled_from(VIPS), unique=True, max_size=2)):
        dests = tuple(
            RealServerEntry(r, 8080, ForwardMethod.MASQ, draw(st.sampled_from((0, 1))), 1, 1)
            for r in draw(st.lists(st.sampled_from(RIPS), unique=True, max_size=3))
        )
        flags = (
            ServiceFlags(True, 10800 * draw(st.sampled_from((250, 1000))), TimeoutUnit.JIFFIES)
            if draw(st.booleans())
            else ServiceFlags()
        )
        services.append(ServiceEntry(Protocol.TCP, vip, 80, None, Family.IPV4, "rr", flags, dests))
    entries = []
    for i in range(draw(st.integers(0, 40))):
        template = draw(st.booleans())
        invalidated = template and draw(st.integers(0, 4)) == 0
        entries.append(
            ConnEntry(
                Protocol.TCP,
                "TCP",
                V4(f"10.244.9.{i % 250 + 1}"),
                0 if template else draw(st.integers(1024, 65535)),
                draw(st.sampled_from(VIPS)),
                0xFFFF if invalidated else 80,
                None,
                draw(st.sampled_from(RIPS)),
                0xFFFF if invalidated else 8080,
                "ASSURED" if template else draw(st.sampled_from(("ESTABLISHED", "TIME_WAIT"))),
                draw(st.integers(0, 10800 if template else 900)),
            )
        )
    eqt = draw(st.integers(0, 1))
    snapshot = NodeSnapshot(
        sysctls=SysctlMap({"net.ipv4.vs.expire_quiescent_template": str(eqt)}),
        ipvs=IpvsTable("1.2.1", 4096, tuple(services)),
        conns=summarize_conns(entries),
    )
    return snapshot, entries


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_template_counts_are_what_the_table_says(
    case: tuple[NodeSnapshot, list[ConnEntry]],
) -> None:
    snapshot, entries = case
    assert snapshot.ipvs is not None
    found = persistence.check(snapshot, node_facts(snapshot))
    if snapshot.sysctl_int("expire_quiescent_template") == 1:
        assert found == []  # absent whenever the kernel gives such templates up
        return
    trapped = {
        (s.address, d.address)
        for s in snapshot.ipvs.services
        if s.flags.persistent
        for d in s.destinations
        if d.weight == 0
    }
    mine = [
        e
        for e in entries
        if e.client_port == 0
        and e.virtual_port != 0xFFFF
        and (e.virtual_addr, e.dest_addr) in trapped
    ]
    assert sum(f.data["templates"] for f in found) == len(mine)
    for f in found:
        vip = ipaddress.ip_address(f.subject.split()[1].split(":")[0])
        ours = [e for e in mine if e.virtual_addr == vip]
        assert f.data["max_expires"] == max(e.expires for e in ours)
        for server in f.data["servers"]:
            assert server["weight"] == 0
        assert (f.severity is Severity.CRITICAL) == (
            f.data["renewed"] or f.data["opening_recent"] > 0 or f.data["closed_recent"] > 0
        )
