"""Finding 2: a TCP real server stuck at weight 0 (kube-proxy graceful termination).

The fixture ``graceful-stuck`` is an Ubuntu 18.04 node (4.15, kube-proxy v1.20.15,
conn_reuse_mode=0) during a rollout: the old pod 10.244.1.7:8080 of 10.100.20.30:80
sits at weight 0 while one busy client reuses its source ports (kubernetes#81775).
Variants are made by copying the fixture and changing one thing.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvslab.doctor.checks import graceful_termination
from ipvslab.doctor.conn_summary import summarize_conns
from ipvslab.doctor.facts import node_facts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.parsers.kernel_release import parse_kernel_release
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
)
from ipvslab.doctor.snapshot import NodeSnapshot

from .node_edit import NODES, copy_node, filter_conns, findings_by_subject, set_sysctl

STUCK = FindingKind.STUCK_GRACEFUL_TERMINATION
OLD = "TCP 10.100.20.30:80 -> 10.244.1.7:8080"
OLD_HEX = "0AF40107"  # 10.244.1.7


def stuck_findings(root: Path) -> dict[str, Finding]:
    return findings_by_subject(root, STUCK)


def set_dest_counters(root: Path, dest_hex: str, active: int, inactive: int) -> None:
    path = root / "proc" / "net" / "ip_vs"
    out = []
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith(f"  -> {dest_hex}:"):
            head = line[: line.index("Masq")]
            line = f"{head}Masq    0      {active:<10} {inactive:<10}\n"
        out.append(line)
    path.write_text("".join(out))


# --------------------------------------------------------------------------- end to end


def test_reused_ports_keep_a_weight0_pod_alive_critical() -> None:
    found = stuck_findings(NODES / "graceful-stuck")
    # Only the weight-0 server that still holds entries: not the drained 10.244.3.9
    # (kube-proxy deletes it at its next check), not the weight-1 servers.
    assert list(found) == [OLD]
    f = found[OLD]
    assert f.severity is Severity.CRITICAL
    assert "keeps getting new connections" in f.title
    d = f.data
    assert (d["weight"], d["active_conns"], d["inactive_conns"]) == (0, 6, 172)
    assert d["entries"] == 178
    assert d["by_state"] == {"TIME_WAIT": 172, "ESTABLISHED": 4, "SYN_RECV": 2}
    # The longest entry is an ESTABLISHED one at 899 s; kube-proxy checks every 60 s.
    assert (d["earliest_removal_s"], d["latest_removal_s"]) == (899, 959)
    assert d["opening_recent"] == 2  # two SYNs reached a server the scheduler never picks
    assert d["refreshing"] is True and d["reuse_reaches_server"] is True
    assert d["clients"] == 1 and d["clients_recent_entries"] > 0
    text = "\n".join(f.evidence)
    assert "-> 10.244.1.7:8080 Masq weight 0, ActiveConn 6, InActConn 172" in text
    assert "TIME_WAIT 172, ESTABLISHED 4, SYN_RECV 2" in text
    assert "10.244.3.21 (223 entries" in text
    assert "sent to the terminating pod" in text  # the kernel twin's answer for this node
    assert "no route to host" in f.meaning
    # Fix: this 4.15 kernel has no c95c07836fa4, so the way out is a kernel with it;
    # and the manual deletion, saying that it cuts the live connections.
    assert any("c95c07836fa4" in x and "5.4.163" in x for x in f.fix)
    assert any("ipvsadm --set 0 30 0" in x and "TIME_WAIT stays 120 s" in x for x in f.fix)
    manual = [x for x in f.fix if x.startswith("ipvsadm -d -t 10.100.20.30:80 -r 10.244.1.7:8080")]
    assert manual and "cuts the 6 live connections" in manual[0]


def test_manual_deletion_says_what_happens_to_one_live_connection(tmp_path: Path) -> None:
    # One ESTABLISHED connection left: "1 live connection", not "1 live connections"; and
    # no promise that its next packet is "rescheduled to another pod": a mid-stream TCP
    # packet is never scheduled (no SYN), so the client sees a reset or a timeout.
    root = copy_node("graceful-stuck", tmp_path)
    set_dest_counters(root, OLD_HEX, 1, 172)
    f = stuck_findings(root)[OLD]
    [manual] = [x for x in f.fix if x.startswith("ipvsadm -d -t 10.100.20.30:80")]
    assert "cuts the 1 live connection still on it" in manual
    assert "rescheduled to another pod" not in manual
    assert "reset or a timeout" in manual


def test_pasted_ipvsadm_output_gives_the_same_finding() -> None:
    proc = stuck_findings(NODES / "graceful-stuck")[OLD]
    pasted = stuck_findings(NODES / "graceful-stuck-ipvsadm")[OLD]
    assert pasted.severity is proc.severity
    assert pasted.data == proc.data
    assert pasted.fix == proc.fix
    assert pasted.evidence[0].startswith("ipvsadm -Ln: TCP 10.100.20.30:80 rr")
    assert any(e.startswith("ipvsadm -Lnc: 178 entries") for e in pasted.evidence)


def test_drained_server_is_no_finding(tmp_path: Path) -> None:
    root = copy_node("graceful-stuck", tmp_path)
    filter_conns(root, lambda row: row[5] != OLD_HEX)
    set_dest_counters(root, OLD_HEX, 0, 0)
    assert stuck_findings(root) == {}


def test_fixed_kernel_leaves_an_ordinary_drain(tmp_path: Path) -> None:
    # Ubuntu 22.04 (5.15, has c95c07836fa4) with expire_nodest_conn=1: a reused port is
    # rescheduled. Only old TIME_WAIT entries are left: info, with when it goes.
    root = copy_node("graceful-stuck", tmp_path)
    (root / "uname-r.txt").write_text("5.15.0-91-generic\n")
    set_sysctl(root, "conn_reuse_mode", 1)
    filter_conns(
        root, lambda row: row[5] != OLD_HEX or (row[7] == "TIME_WAIT" and int(row[8]) < 100)
    )
    f = stuck_findings(root)[OLD]
    assert f.severity is Severity.INFO
    assert "draining" in f.title
    assert f.data["refreshing"] is False and f.data["reuse_reaches_server"] is False
    assert f.data["latest_removal_s"] == f.data["max_expires"] + 60 <= 160
    assert "within about" in f.meaning
    assert any(x.startswith("none needed") for x in f.fix)
    assert not any(x.startswith("sysctl -w") for x in f.fix)


def test_fix_names_the_sysctls_of_the_kernel_era(tmp_path: Path) -> None:
    root = copy_node("graceful-stuck", tmp_path)
    # 5.15 with c95c07836fa4 but expire_nodest_conn=0: that one sysctl fixes it.
    (root / "uname-r.txt").write_text("5.15.0-91-generic\n")
    set_sysctl(root, "expire_nodest_conn", 0)
    f = stuck_findings(root)[OLD]
    assert f.severity is Severity.CRITICAL  # the SYNs in SYN_RECV still got there
    assert f.fix[0].startswith("sysctl -w net.ipv4.vs.expire_nodest_conn=1")
    assert "whatever conn_reuse_mode is" in f.fix[0]
    assert not any("conn_reuse_mode=1" in x for x in f.fix)

    # Mainline 5.10.0 has f0a5e4d7a594 (5.9) but not c95c07836fa4 (5.10.83): the weight-0
    # reschedule needs conn_reuse_mode != 0, which kube-proxy v1.19 sets back to 0.
    (root / "uname-r.txt").write_text("5.10.0\n")
    set_sysctl(root, "expire_nodest_conn", 1)
    (root / "kube-proxy" / "version.txt").write_text("Kubernetes v1.19.16\n")
    f = stuck_findings(root)[OLD]
    assert any(x.startswith("sysctl -w net.ipv4.vs.conn_reuse_mode=1") for x in f.fix)
    assert any("v1.22+ leaves it alone" in x and "#102122" in x for x in f.fix)
    assert not any(x.startswith("sysctl -w net.ipv4.vs.expire_nodest_conn") for x in f.fix)


def test_table_alone_is_enough(tmp_path: Path) -> None:
    # A ticket with only ipvsadm -Ln: the counters show it; the states cannot be seen.
    root = copy_node("graceful-stuck-ipvsadm", tmp_path)
    (root / "ipvsadm-Lnc.txt").unlink()
    f = stuck_findings(root)[OLD]
    assert f.severity is Severity.WARNING  # exposed node, refreshes not visible
    assert f.data["entries"] is None and f.data["inactive_conns"] == 172
    assert any("ipvsadm -Lnc | grep -F '10.244.1.7:8080'" in e for e in f.evidence)
    assert "may never drain" in f.title


def test_nothing_without_the_table() -> None:
    snapshot = NodeSnapshot()
    assert graceful_termination.check(snapshot, node_facts(snapshot)) == []


# --------------------------------------------------------------------------- properties

V4 = ipaddress.IPv4Address
V6 = ipaddress.IPv6Address
VIPS = (V4("10.96.0.1"), V4("10.96.0.2"), V6("2001:db8::1"))
RIPS = (V4("10.244.0.1"), V4("10.244.0.2"), V4("10.244.0.3"), V6("2001:db8::a1"))
PORTS = (80, 443)
TCP_STATES = ("ESTABLISHED", "SYN_RECV", "FIN_WAIT", "TIME_WAIT", "CLOSE", "CLOSE_WAIT")
KERNELS = ("4.15.0-112-generic", "5.15.0-91-generic", "3.10.0-957.el7.x86_64", "5.10.0")


@st.composite
def services(draw: st.DrawFn) -> tuple[ServiceEntry, ...]:
    keys = draw(
        st.lists(
            st.tuples(
                st.sampled_from((Protocol.TCP, Protocol.UDP)),
                st.sampled_from(VIPS),
                st.sampled_from(PORTS),
            ),
            unique=True,
            max_size=4,
        )
    )
    out = []
    for proto, vip, port in keys:
        rips = draw(st.lists(st.sampled_from(RIPS), unique=True, max_size=3))
        dests = tuple(
            RealServerEntry(
                rip,
                8080,
                ForwardMethod.MASQ,
                draw(st.sampled_from((0, 0, 1, 5))),
                draw(st.integers(0, 5)),
                draw(st.integers(0, 50)),
            )
            for rip in rips
            if rip.version == vip.version
        )
        persistent = draw(st.booleans())
        flags = ServiceFlags(True, 10800, netmask=0xFFFFFFFF) if persistent else ServiceFlags()
        family = Family.IPV6 if vip.version == 6 else Family.IPV4
        out.append(ServiceEntry(proto, vip, port, None, family, "rr", flags, dests))
    return tuple(out)


@st.composite
def conn_entries(draw: st.DrawFn) -> list[ConnEntry]:
    out = []
    for _ in range(draw(st.integers(0, 60))):
        proto = draw(st.sampled_from((Protocol.TCP, Protocol.TCP, Protocol.UDP)))
        vip = draw(st.sampled_from(VIPS))
        rip = draw(st.sampled_from([r for r in RIPS if r.version == vip.version]))
        client = V6("2001:db8::99") if vip.version == 6 else V4("10.244.9.9")
        template = draw(st.integers(0, 9)) == 0
        state = (
            draw(st.sampled_from(("NONE", "ASSURED")))
            if template
            else draw(st.sampled_from(TCP_STATES))
            if proto is Protocol.TCP
            else "UDP"
        )
        vport = (
            draw(st.sampled_from((*PORTS, 0xFFFF))) if template else draw(st.sampled_from(PORTS))
        )
        out.append(
            ConnEntry(
                proto,
                proto.name,
                client,
                0 if template else draw(st.integers(1024, 65535)),
                vip,
                vport,
                None,
                rip,
                vport if template and vport == 0xFFFF else 8080,
                state,
                draw(st.integers(0, 11000 if template else 900)),
            )
        )
    return out


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[NodeSnapshot, list[ConnEntry]]:
    entries = draw(conn_entries())
    sysctls = {
        f"net.ipv4.vs.{name}": str(draw(st.integers(0, 1)))
        for name in ("conn_reuse_mode", "expire_nodest_conn", "expire_quiescent_template")
    }
    kernel = draw(st.sampled_from((None, *KERNELS)))
    snapshot = NodeSnapshot(
        kernel_release=parse_kernel_release(kernel).value if kernel else None,
        sysctls=SysctlMap(sysctls),
        ipvs=draw(st.none() | services().map(lambda s: IpvsTable("1.2.1", 4096, s))),
        conns=draw(st.sampled_from((None, summarize_conns(entries)))),
    )
    return snapshot, entries


def _split_subject(subject: str) -> tuple[str, str]:
    service, server = subject.split(" -> ")
    return service, server


def _label(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshots())
def test_findings_match_the_tables(case: tuple[NodeSnapshot, list[ConnEntry]]) -> None:
    snapshot, entries = case
    found = graceful_termination.check(snapshot, node_facts(snapshot))
    if snapshot.ipvs is None:
        assert found == []
        return
    expected = set()
    for svc in snapshot.ipvs.services:
        assert svc.address is not None
        for d in svc.destinations:
            mine = [
                e
                for e in (entries if snapshot.conns is not None else [])
                if e.client_port != 0
                and (e.protocol_name, e.virtual_addr, e.virtual_port, e.dest_addr, e.dest_port)
                == (
                    svc.protocol.name if svc.protocol else "",
                    svc.address,
                    svc.port,
                    d.address,
                    d.port,
                )
            ]
            holds = d.active_conns + d.inactive_conns > 0 or bool(mine)
            if svc.protocol is Protocol.TCP and d.weight == 0 and holds:
                subject = f"TCP {_label(svc.address, svc.port)} -> {_label(d.address, d.port)}"
                expected.add(subject)
                f = next(x for x in found if x.subject == subject)
                if snapshot.conns is not None and mine:
                    # The counts are exactly what the connection entries say.
                    assert f.data["entries"] == len(mine)
                    assert f.data["by_state"] == dict(Counter(e.state for e in mine))
                    assert f.data["max_expires"] == max(e.expires for e in mine)
                    assert f.data["latest_removal_s"] == f.data["max_expires"] + 60
                assert (f.severity is Severity.CRITICAL) == f.data["refreshing"]
    # Never about a server with weight > 0, a UDP service, or a server holding nothing.
    assert {f.subject for f in found} == expected
    assert len(found) == len(expected)
    for f in found:
        service, _ = _split_subject(f.subject)
        assert service.startswith("TCP ")
        assert f.data["weight"] == 0


def test_no_shorter_fin_timeout_is_advised_when_it_is_already_short(tmp_path: Path) -> None:
    # kube-proxy --ipvs-tcpfin-timeout=30s (v1.18+, #85517) already in force: advising
    # the same value again is noise.
    root = copy_node("graceful-stuck", tmp_path)
    before = stuck_findings(root)[OLD]
    assert any(line.startswith("shorter idle timeouts") for line in before.fix)
    (root / "kube-proxy" / "cmdline").write_text(
        "kube-proxy --proxy-mode=ipvs --ipvs-tcpfin-timeout=30s\n"
    )
    after = stuck_findings(root)[OLD]
    assert not any("tcpfin" in line for line in after.fix)
