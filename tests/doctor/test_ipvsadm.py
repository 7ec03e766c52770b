from __future__ import annotations

from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from ipvslab.doctor.parsers.ipvsadm_conn import parse_expire, parse_ipvsadm_conn
from ipvslab.doctor.parsers.ipvsadm_list import parse_ipvsadm_list
from ipvslab.doctor.parsers.ipvsadm_stats import parse_ipvsadm_stats, parse_largenum
from ipvslab.doctor.records import (
    ConnEntry,
    DestStats,
    Family,
    ForwardMethod,
    Protocol,
    RealServerEntry,
    ServiceEntry,
    ServiceFlags,
    StatsCounters,
)
from ipvslab.doctor.render import largenum, render_ipvsadm_conn, render_ipvsadm_list

Reader = Callable[[str], str]
V4 = IPv4Address
V6 = IPv6Address


def test_kubernetes_81775_example_reads_weight_zero_server_with_old_connections(
    fixture_text: Reader,
) -> None:
    result = parse_ipvsadm_list(fixture_text("ipvsadm_81775.txt"))
    assert result.issues == ()
    assert result.value.services == (
        ServiceEntry(
            Protocol.TCP,
            V4("172.16.255.241"),
            80,
            None,
            Family.IPV4,
            "rr",
            ServiceFlags(),
            (RealServerEntry(V4("172.16.8.106"), 80, ForwardMethod.MASQ, 0, 10, 14048),),
        ),
    )
    line = render_ipvsadm_list(result.value).splitlines()[-1]
    assert line.rstrip() == "  -> 172.16.8.106:80              Masq    0      10         14048"


def test_list_fixture_reads_flags_fwmarks_and_ipv6(fixture_text: Reader) -> None:
    result = parse_ipvsadm_list(fixture_text("ipvsadm_list.txt"))
    assert result.issues == ()
    svcs = result.value.services
    assert [(s.protocol, s.address, s.port, s.fwmark, s.family, s.scheduler) for s in svcs] == [
        (Protocol.TCP, V4("10.96.0.1"), 443, None, Family.IPV4, "rr"),
        (Protocol.TCP, V4("172.16.255.241"), 80, None, Family.IPV4, "sh"),
        (Protocol.UDP, V4("10.96.0.10"), 53, None, Family.IPV4, "rr"),
        (Protocol.TCP, V6("2001:db8::1"), 80, None, Family.IPV6, "wlc"),
        (None, None, 0, 1, Family.IPV4, "rr"),
        (None, None, 0, 2, Family.IPV6, "lc"),
    ]
    assert [s.flags for s in svcs] == [
        ServiceFlags(),
        ServiceFlags(True, 300, netmask=0xFFFFFF00),
        ServiceFlags(True, 60, netmask=0xFFFFFFFF, one_packet=True, pe_name="sip"),
        ServiceFlags(True, 60, netmask=64),
        ServiceFlags(True, 1800, netmask=0xFFFFFFFF),
        ServiceFlags(),
    ]
    assert svcs[3].destinations == (
        RealServerEntry(V6("2001:db8::a1"), 8080, ForwardMethod.LOCAL, 5, 0, 0),
    )
    assert svcs[5].destinations == ()


def test_list_fixture_renders_back_to_the_same_data(fixture_text: Reader) -> None:
    table = parse_ipvsadm_list(fixture_text("ipvsadm_list.txt")).value
    assert parse_ipvsadm_list(render_ipvsadm_list(table)).value == table


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("TCP  kubernetes.default:https rr", "address"),
        ("TCP  10.0.0.1:80", "scheduler"),
        ("TCP  10.0.0.1:80 rr persistent", "flags"),
        ("TCP  10.0.0.1:80 rr persistent x", "persistent"),
        ("TCP  10.0.0.1:80 rr persistent 5 mask 300.0.0.0", "mask"),
        ("FWM  0x1 rr", "fwmark"),
        ("GRE  10.0.0.1:80 rr", "protocol"),
    ],
)
def test_bad_service_line_is_reported_with_its_field(line: str, field: str) -> None:
    result = parse_ipvsadm_list(line + "\n  -> 10.0.0.2:80   Masq 1 0 0\n")
    assert result.value.services == ()
    assert [(i.line_no, i.field) for i in result.issues] == [(1, field), (2, "line")]


def test_stats_view_given_to_the_list_parser_is_refused(fixture_text: Reader) -> None:
    result = parse_ipvsadm_list(fixture_text("ipvsadm_stats.txt"))
    assert result.issues[0].field == "header"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "        0"),
        (99_999_999, " 99999999"),
        (100_000_000, "  100000K"),
        (999_999_999, "  999999K"),
        (1_000_000_000, "    1000M"),
        (99_999_999_999, "   99999M"),
        (100_000_000_000, "     100G"),
        (100_000_000_000_000, "     100T"),
    ],
)
def test_largenum_matches_ipvsadm_and_reads_back_as_lower_bound(value: int, text: str) -> None:
    assert len(text) == 9
    assert largenum(value) == text
    number, approximate = parse_largenum(text.strip()) or (None, None)
    assert number is not None and number <= value
    assert approximate == (value >= 10**8)


def test_largenum_exact_widens_for_long_numbers() -> None:
    assert largenum(5, exact=True) == "        5"
    assert largenum(123_456_789_012, exact=True) == " 123456789012"


def test_stats_fixture_reads_suffixed_counters(fixture_text: Reader) -> None:
    result = parse_ipvsadm_stats(fixture_text("ipvsadm_stats.txt"))
    assert result.issues == ()
    kube, fwm, v6 = result.value.services
    big = StatsCounters(12, 3400, 3100, 123_456_000, 98_765_000_000, approximate=True)
    assert (kube.protocol, kube.address, kube.port, kube.counters) == (
        Protocol.TCP,
        V4("10.96.0.1"),
        443,
        big,
    )
    assert kube.destinations == (DestStats(V4("192.168.1.10"), 6443, big),)
    assert (fwm.fwmark, fwm.counters) == (1, StatsCounters(0, 0, 0, 0, 0))
    assert (v6.family, v6.counters) == (
        Family.IPV6,
        StatsCounters(1, 2, 1, 1_234_000_000_000, 56_000_000_000_000, approximate=True),
    )


def test_stats_bad_counter_is_reported() -> None:
    result = parse_ipvsadm_stats("TCP  10.0.0.1:80  1 2 3 4X 5\n")
    assert [(i.line_no, i.field) for i in result.issues] == [(1, "InBytes")]


def test_conn_fixture_reads_expire_addresses_and_fwmark_templates(fixture_text: Reader) -> None:
    result = parse_ipvsadm_conn(fixture_text("ipvsadm_conn.txt"))
    assert result.issues == ()
    assert result.value == (
        ConnEntry(Protocol.TCP, "TCP", V4("10.244.1.5"), 54321, V4("10.96.0.1"), 443, None,
                  V4("192.168.1.10"), 6443, "ESTABLISHED", 899),
        ConnEntry(Protocol.TCP, "TCP", V4("10.244.1.5"), 54322, V4("10.96.0.1"), 443, None,
                  V4("192.168.1.11"), 6443, "TIME_WAIT", 51),
        ConnEntry(Protocol.UDP, "UDP", V4("10.244.1.6"), 40001, V4("10.96.0.10"), 53, None,
                  V4("10.244.2.7"), 53, "UDP", 287),
        ConnEntry(Protocol.IP, "IP", V4("10.244.1.5"), 0, None, 0, 1, V4("10.0.0.5"), 0,
                  "NONE", 1799),
        ConnEntry(Protocol.TCP, "TCP", V6("2001:db8::99"), 50000, V6("2001:db8::1"), 80, None,
                  V6("2001:db8::a1"), 8080, "SYN_RECV", 59),
    )  # fmt: skip


def test_conn_persistent_columns_read_pe_name_and_data(fixture_text: Reader) -> None:
    result = parse_ipvsadm_conn(fixture_text("ipvsadm_conn_pe.txt"))
    assert result.issues == ()
    sip, plain = result.value
    assert (sip.pe_name, sip.pe_data, sip.expires) == (
        "sip",
        "a84b4c76e66710@pc33.example.com",
        179,
    )
    assert (plain.pe_name, plain.pe_data) == (None, None)
    again = render_ipvsadm_conn(result.value, persistent_conn=True)
    assert parse_ipvsadm_conn(again).value == result.value


@pytest.mark.parametrize(
    ("text", "seconds"), [("00:00", 0), ("14:59", 899), ("120:05", 7205), ("1:05", None),
                          ("00:60", None), ("0a:00", None), ("0000", None)]
)  # fmt: skip
def test_expire_column(text: str, seconds: int | None) -> None:
    assert parse_expire(text) == seconds


def test_conn_bad_rows_are_reported() -> None:
    text = (
        "IPVS connection entries\n"
        "TCP 14:59  ESTABLISHED 10.244.1.5:54321   10.96.0.1:443\n"
        "TCP 14:59  ESTABLISHED 10.244.1.5:99999   10.96.0.1:443 10.0.0.1:80\n"
        "TCP xx:59  ESTABLISHED 10.244.1.5:1   10.96.0.1:443 10.0.0.1:80\n"
        "TCP 14:59  ESTABLISHED 10.244.1.5:1   [::1]:443 10.0.0.1:80\n"
    )
    result = parse_ipvsadm_conn(text)
    assert result.value == ()
    assert [(i.line_no, i.field) for i in result.issues] == [
        (2, "line"),
        (3, "source"),
        (4, "expire"),
        (5, "virtual"),
    ]


# ---------------------------------------------------------------- ipvsadm -L --timeout


def test_timeout_line_gives_the_three_timeouts() -> None:
    from ipvslab.doctor.parsers import parse_ipvsadm_timeout
    from ipvslab.doctor.records import IpvsTimeouts

    result = parse_ipvsadm_timeout("Timeout (tcp tcpfin udp): 900 30 300\n")
    assert (result.value, result.issues) == (IpvsTimeouts(900, 30, 300), ())


def test_timeout_garbage_is_reported_with_its_line() -> None:
    from ipvslab.doctor.parsers import parse_ipvsadm_timeout

    result = parse_ipvsadm_timeout("\nTimeout (tcp tcpfin udp): 900 x 300\n", "t.txt")
    assert result.value is None
    assert [(i.source, i.line_no, i.field) for i in result.issues] == [("t.txt", 2, "timeouts")]


def test_pasted_timeouts_set_what_the_doctor_calls_a_full_timeout(tmp_path: Path) -> None:
    from ipvslab.doctor.capture import capture_from, snapshot_from_capture
    from ipvslab.doctor.facts import node_facts
    from ipvslab.doctor.parsers import DoctorFormat, sniff_format

    text = "Timeout (tcp tcpfin udp): 300 30 60\n"
    assert sniff_format([text]) is DoctorFormat.IPVSADM_TIMEOUT
    pasted = tmp_path / "timeouts from the node.txt"
    pasted.write_text(text)
    # An entry touched 5 s ago under a 300 s ESTABLISHED timeout: recent only if the
    # doctor uses the node's 300 s, not the 900 s default.
    conns = tmp_path / "conns.txt"
    conns.write_text(
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
        "TCP 0AF40303 9C40 0A60000A 0050 0AF40101 1F90 ESTABLISHED    295\n"
    )
    snapshot = snapshot_from_capture(capture_from([str(pasted), str(conns)]))
    assert snapshot.issues == ()
    facts = node_facts(snapshot)
    assert facts.timeouts[("TCP", "ESTABLISHED")] == 300
    assert facts.timeouts[("TCP", "FIN_WAIT")] == 30
    assert facts.timeouts[("TCP", "TIME_WAIT")] == 120  # --set tcpfin leaves TIME_WAIT alone
    assert facts.timeouts[("UDP", "UDP")] == 60
    assert snapshot.conns is not None
    assert sum(g.recent for g in snapshot.conns.groups.values()) == 1
