"""Finding 3: connection entries (and templates) whose real server or service is gone.

The fixture ``removed-blackhole`` is an Ubuntu 18.04 node (4.15) with kube-proxy
v1.11.10, which deletes real servers at once and leaves expire_nodest_conn at 0:
pod 10.244.1.9:8080 of 10.100.40.50:80, CoreDNS pod 10.244.0.6:53 and the whole
service 10.100.99.9:443 are gone while their entries are still in the table.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.checks import removed_servers
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
    SysctlMap,
)
from ipvslab.doctor.snapshot import NodeSnapshot

from .node_edit import NODES, copy_node, filter_conns, findings_by_subject, set_sysctl

REMOVED = FindingKind.ENTRIES_TO_REMOVED_SERVERS
WEB, DNS, GONE = "TCP 10.100.40.50:80", "UDP 10.96.0.10:53", "TCP 10.100.99.9:443"
# DestIP of the entries whose server or service is gone: 10.244.1.9, 10.244.0.6, 10.244.3.3.
ORPHAN_HEX = {"0AF40109", "0AF40006", "0AF40303"}


def removed_findings(root: Path) -> dict[str, Finding]:
    return findings_by_subject(root, REMOVED)


def check_order(root: Path) -> list[Finding]:
    """Finding 3 straight from the check, in the order it reports them."""
    snapshot = snapshot_from_capture(capture_from_layout(root))
    return removed_servers.check(snapshot, node_facts(snapshot))


# --------------------------------------------------------------------------- end to end


def test_entries_of_removed_servers_are_blackholed_critical() -> None:
    found = removed_findings(NODES / "removed-blackhole")
    assert set(found) == {WEB, DNS, GONE}
    assert all(f.severity is Severity.CRITICAL for f in found.values())

    web = found[WEB]
    assert web.title == f"28 connection entries of {WEB} still point at 1 removed real server"
    assert web.data["entries"] == 28 and web.data["templates"] == 0
    assert web.data["by_state"] == {"TIME_WAIT": 25, "ESTABLISHED": 3}
    assert web.data["max_expires"] == 610
    assert [s["server"] for s in web.data["servers"]] == ["10.244.1.9:8080"]
    assert web.data["service_exists"] is True and web.data["flush_on_removal"] is False
    text = "\n".join(web.evidence)
    assert "has real servers 10.244.2.31:8080, 10.244.1.44:8080" in text
    assert "-> 10.244.1.9:8080 ESTABLISHED x3, expires in 88-610 s" in text
    assert "grep -F ' 0AF40109 1F90 ' /proc/net/ip_vs_conn" in text
    assert "net.ipv4.vs.expire_nodest_conn = 0 (read on the node)" in text
    assert "the 3 open flows hang" in web.meaning

    dns = found[DNS]
    assert dns.data["by_state"] == {"UDP": 4}
    assert "DNS" in dns.meaning

    gone = found[GONE]
    assert gone.data["service_exists"] is False
    assert gone.title.endswith(f"still point at {GONE}, which no longer exists")
    assert f"no service {GONE}" in gone.evidence[0]

    for f in found.values():
        assert f.fix[0].startswith("sysctl -w net.ipv4.vs.expire_nodest_conn=1")
        assert any("upgrade kube-proxy v1.11.10" in x and "#71834" in x for x in f.fix)
        assert any("04231e52d355" in x for x in f.fix)
    # Biggest first.
    assert [f.subject for f in check_order(NODES / "removed-blackhole")] == [WEB, DNS, GONE]


def test_pasted_ipvsadm_output_gives_the_same_findings() -> None:
    proc = removed_findings(NODES / "removed-blackhole")
    pasted = removed_findings(NODES / "removed-blackhole-ipvsadm")
    assert set(pasted) == set(proc)
    for subject, f in pasted.items():
        assert f.severity is proc[subject].severity
        assert f.data == proc[subject].data
        assert f.fix == proc[subject].fix
    assert pasted[WEB].evidence[0].startswith("ipvsadm -Ln: ")


def test_entries_gone_no_finding(tmp_path: Path) -> None:
    root = copy_node("removed-blackhole", tmp_path)
    filter_conns(root, lambda row: row[5] not in ORPHAN_HEX)
    assert removed_findings(root) == {}


def test_expire_nodest_conn_before_5_9_drops_once(tmp_path: Path) -> None:
    root = copy_node("removed-blackhole", tmp_path)
    set_sysctl(root, "expire_nodest_conn", 1)
    found = removed_findings(root)
    assert set(found) == {WEB, DNS, GONE}
    for f in found.values():
        assert f.severity is Severity.WARNING
        assert "about 1 s" in f.meaning
        assert not any(x.startswith("sysctl -w") for x in f.fix)
        assert any("04231e52d355 (mainline 5.9)" in x for x in f.fix)


def test_kernel_5_9_flushes_them_info(tmp_path: Path) -> None:
    root = copy_node("removed-blackhole", tmp_path)
    (root / "uname-r.txt").write_text("5.15.0-91-generic\n")
    set_sysctl(root, "expire_nodest_conn", 1)
    found = removed_findings(root)
    assert {f.severity for f in found.values()} == {Severity.INFO}
    assert all(f.data["flush_on_removal"] is True for f in found.values())
    assert "should vanish within moments" in found[WEB].meaning


def test_closed_entries_only_follow_the_kernel_twin(tmp_path: Path) -> None:
    # Only TIME_WAIT entries to the removed pod, expire_nodest_conn=0: what a reused
    # port's SYN meets there decides. On 4.15 with conn_reuse_mode=1 (and conntrack=1)
    # the SYN is dropped once and retried (#70747): warning. With conn_reuse_mode=0 it
    # follows the entry and is blackholed: critical.
    root = copy_node("removed-blackhole", tmp_path)
    filter_conns(root, lambda row: row[5] not in ORPHAN_HEX or row[7] == "TIME_WAIT")
    web = removed_findings(root)[WEB]
    assert web.severity is Severity.WARNING
    assert "first SYN dropped" in web.meaning
    set_sysctl(root, "conn_reuse_mode", 0)
    web = removed_findings(root)[WEB]
    assert web.severity is Severity.CRITICAL
    assert "dropped until the old entry expires" in web.meaning


def test_nothing_without_both_tables(tmp_path: Path) -> None:
    root = copy_node("removed-blackhole", tmp_path)
    (root / "proc" / "net" / "ip_vs_conn").unlink()
    assert removed_findings(root) == {}
    snapshot = NodeSnapshot()
    assert removed_servers.check(snapshot, node_facts(snapshot)) == []


# --------------------------------------------------------------------------- properties

V4 = ipaddress.IPv4Address
VIPS = (V4("10.96.0.1"), V4("10.96.0.2"), V4("10.96.0.3"))
RIPS = (V4("10.244.0.1"), V4("10.244.0.2"), V4("10.244.0.3"))
PROTOS = (Protocol.TCP, Protocol.UDP)


@st.composite
def cases(draw: st.DrawFn) -> tuple[NodeSnapshot, list[ConnEntry]]:
    keys = draw(
        st.lists(st.tuples(st.sampled_from(PROTOS), st.sampled_from(VIPS)), unique=True, max_size=4)
    )
    services = []
    for proto, vip in keys:
        rips = draw(st.lists(st.sampled_from(RIPS), unique=True, max_size=3))
        dests = tuple(RealServerEntry(r, 8080, ForwardMethod.MASQ, 1, 0, 0) for r in rips)
        services.append(ServiceEntry(proto, vip, 80, None, Family.IPV4, "rr", destinations=dests))
    entries = []
    for _ in range(draw(st.integers(0, 60))):
        proto = draw(st.sampled_from(PROTOS))
        template = draw(st.integers(0, 5)) == 0
        invalidated = template and draw(st.booleans())
        state = (
            "NONE"
            if template
            else "UDP"
            if proto is Protocol.UDP
            else draw(st.sampled_from(("ESTABLISHED", "TIME_WAIT", "SYN_RECV", "CLOSE")))
        )
        entries.append(
            ConnEntry(
                proto,
                proto.name,
                V4("10.244.9.9"),
                0 if template else draw(st.integers(1024, 65535)),
                draw(st.sampled_from(VIPS)),
                0xFFFF if invalidated else 80,
                None,
                draw(st.sampled_from(RIPS)),
                0xFFFF if invalidated else 8080,
                state,
                draw(st.integers(0, 900)),
            )
        )
    snapshot = NodeSnapshot(
        kernel_release=parse_kernel_release(
            draw(st.sampled_from(("4.15.0-112-generic", "5.15.0-91-generic")))
        ).value,
        sysctls=SysctlMap(
            {
                "net.ipv4.vs.expire_nodest_conn": str(draw(st.integers(0, 1))),
                "net.ipv4.vs.conn_reuse_mode": str(draw(st.integers(0, 1))),
            }
        ),
        ipvs=IpvsTable("1.2.1", 4096, tuple(services)),
        conns=summarize_conns(entries),
    )
    return snapshot, entries


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_counts_are_what_the_entries_say(case: tuple[NodeSnapshot, list[ConnEntry]]) -> None:
    snapshot, entries = case
    assert snapshot.ipvs is not None
    found = removed_servers.check(snapshot, node_facts(snapshot))
    table = {
        (s.protocol.name if s.protocol else "", s.address): {d.address for d in s.destinations}
        for s in snapshot.ipvs.services
    }

    def orphan(e: ConnEntry) -> bool:
        dests = table.get((e.protocol_name, e.virtual_addr))
        return dests is None or e.dest_addr not in dests

    conns = [e for e in entries if e.client_port != 0 and orphan(e)]
    templates = [
        e for e in entries if e.client_port == 0 and e.virtual_port != 0xFFFF and orphan(e)
    ]
    assert sum(f.data["entries"] for f in found) == len(conns)
    assert sum(f.data["templates"] for f in found) == len(templates)
    by_state: Counter[str] = Counter()
    for f in found:
        by_state.update(f.data["by_state"])
        # One finding per service, naming servers that are not among its destinations.
        proto, vip = f.subject.split()[0], ipaddress.ip_address(f.subject.split()[1].split(":")[0])
        listed = table.get((proto, vip))
        assert f.data["service_exists"] == (listed is not None)
        for server in f.data["servers"]:
            assert (
                listed is None or ipaddress.ip_address(server["server"].split(":")[0]) not in listed
            )
        assert f.data["max_expires"] == max(
            e.expires
            for e in conns + templates
            if (e.protocol_name, e.virtual_addr) == (proto, vip)
        )
        if f.data["expire_nodest_conn"] == 1 and f.data["flush_on_removal"]:
            assert f.severity is Severity.INFO
    assert by_state == Counter(e.state for e in conns)
    assert len({f.subject for f in found}) == len(found)


def test_an_unreadable_server_line_does_not_make_its_server_removed(tmp_path: Path) -> None:
    # A ticket paste with one mangled line (a wrapped or cut-off column) must not turn a
    # healthy server with traffic into "removed": only the truly removed one is reported.
    root = copy_node("removed-blackhole-ipvsadm", tmp_path)
    listing = root / "ipvsadm-Ln.txt"
    lines = listing.read_text().splitlines()
    [i] = [n for n, line in enumerate(lines) if "-> 10.244.2.31:8080" in line]
    lines[i] = "  -> 10.244.2.31:8080             Masq    1      3"  # InActConn cut off
    listing.write_text("\n".join(lines) + "\n")
    web = removed_findings(root)[WEB]
    assert [s["server"] for s in web.data["servers"]] == ["10.244.1.9:8080"]


def test_an_unreadable_service_line_makes_no_service_vanish(tmp_path: Path) -> None:
    root = copy_node("removed-blackhole-ipvsadm", tmp_path)
    listing = root / "ipvsadm-Ln.txt"
    listing.write_text(listing.read_text().replace("TCP  10.100.40.50:80 rr", "TCP  10.100.40.50"))
    # The web service's line is unreadable: its entries are not called orphans of a
    # deleted service, and no other service's judgement is made up either.
    found = removed_findings(root)
    assert all("no longer exists" not in f.title for f in found.values())
