from __future__ import annotations

import io
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

from ipvslab.doctor.parsers.proc_ip_vs import parse_proc_ip_vs
from ipvslab.doctor.records import (
    Family,
    ForwardMethod,
    Protocol,
    RealServerEntry,
    ServiceEntry,
    ServiceFlags,
    TimeoutUnit,
)
from ipvslab.doctor.render import render_proc_ip_vs

Reader = Callable[[str], str]
JIFFIES = TimeoutUnit.JIFFIES


def test_fixture_reads_every_service_and_real_server(fixture_text: Reader) -> None:
    result = parse_proc_ip_vs(io.StringIO(fixture_text("proc_ip_vs.txt")))
    assert result.issues == ()
    table = result.value
    assert (table.version, table.conn_table_size) == ("1.2.1", 4096)
    assert table.services == (
        ServiceEntry(
            Protocol.TCP,
            IPv4Address("10.96.0.1"),
            443,
            None,
            Family.IPV4,
            "rr",
            ServiceFlags(timeout_unit=JIFFIES),
            (
                RealServerEntry(IPv4Address("192.168.1.10"), 6443, ForwardMethod.MASQ, 1, 3, 17),
                RealServerEntry(IPv4Address("192.168.1.11"), 6443, ForwardMethod.MASQ, 0, 0, 2),
            ),
        ),
        ServiceEntry(
            Protocol.UDP,
            IPv4Address("10.96.0.10"),
            53,
            None,
            Family.IPV4,
            "rr",
            ServiceFlags(timeout_unit=JIFFIES, one_packet=True),
            (RealServerEntry(IPv4Address("10.244.2.7"), 53, ForwardMethod.MASQ, 1, 0, 5),),
        ),
        ServiceEntry(
            Protocol.TCP,
            IPv4Address("172.16.255.241"),
            80,
            None,
            Family.IPV4,
            "sh",
            ServiceFlags(True, 75000, JIFFIES, 0xFFFFFF00),
            (
                RealServerEntry(IPv4Address("172.16.8.106"), 80, ForwardMethod.ROUTE, 0, 10, 14048),
                RealServerEntry(IPv4Address("172.16.8.107"), 80, ForwardMethod.TUNNEL, 2, 1, 0),
            ),
        ),
        ServiceEntry(
            Protocol.TCP,
            IPv6Address("2001:db8::1"),
            80,
            None,
            Family.IPV6,
            "wlc",
            ServiceFlags(True, 3600, JIFFIES, 0x80000000),
            (RealServerEntry(IPv6Address("2001:db8::a1"), 8080, ForwardMethod.LOCAL, 5, 0, 0),),
        ),
        ServiceEntry(
            None,
            None,
            0,
            1,
            Family.IPV4,
            "rr",
            ServiceFlags(True, 1800, JIFFIES, 0xFFFFFFFF),
            (RealServerEntry(IPv4Address("10.0.0.5"), 0, ForwardMethod.MASQ, 1, 0, 0),),
        ),
        ServiceEntry(
            None, None, 0, 2, Family.IPV4, "lc", ServiceFlags(timeout_unit=JIFFIES, one_packet=True)
        ),
    )


def test_fixture_renders_back_byte_for_byte(fixture_text: Reader) -> None:
    text = fixture_text("proc_ip_vs.txt")
    assert render_proc_ip_vs(parse_proc_ip_vs(text).value) == text


def test_service_line_has_two_trailing_spaces_without_ops() -> None:
    table = parse_proc_ip_vs("TCP  0A000001:0050 rr  \n").value
    assert render_proc_ip_vs(table).splitlines(keepends=True)[-1] == "TCP  0A000001:0050 rr  \n"


def test_fwmark_service_takes_ipv6_family_from_its_real_servers() -> None:
    text = (
        "FWM  00000007 rr \n"
        "  -> [2001:0db8:0000:0000:0000:0000:0000:0002]:0000      Masq    1      0          0\n"
    )
    (svc,) = parse_proc_ip_vs(text).value.services
    assert (svc.fwmark, svc.family) == (7, Family.IPV6)


@pytest.mark.parametrize(
    ("text", "line_no", "field"),
    [
        ("TCP  0A00001:0050 rr  \n", 1, "address"),
        ("TCP  0A000001:50 rr  \n", 1, "address"),
        ("ICMP 0A000001:0050 rr\n", 1, "protocol"),
        ("TCP  0A000001:0050 rr persistent 300\n", 1, "persistent"),
        ("TCP  0A000001:0050 rr bogus\n", 1, "flags"),
        ("FWM  1 rr\n", 1, "fwmark"),
        ("  -> 0A000001:0050      Masq    1      0          0\n", 1, "line"),
        ("TCP  0A000001:0050 rr  \n  -> 0A000002:0050      FullNat 1 0 0\n", 2, "forward"),
        ("TCP  0A000001:0050 rr  \n  -> 0A000002:0050      Masq 1 x 0\n", 2, "counters"),
        ("TCP  0A000001:0050 rr  \n  -> 0A000002:0050      Masq 1 0\n", 2, "line"),
        ("IP Virtual Server version x (size=1)\n", 1, "version"),
    ],
)
def test_malformed_line_is_reported_and_skipped(text: str, line_no: int, field: str) -> None:
    result = parse_proc_ip_vs(text)
    assert [(i.line_no, i.field) for i in result.issues] == [(line_no, field)]


def test_good_lines_after_a_bad_one_are_still_read() -> None:
    text = "TCP  nothex:0050 rr  \n  -> 0A000002:0050      Masq    1 0 0\nUDP  0A000001:0035 rr  \n"
    result = parse_proc_ip_vs(text)
    assert [s.port for s in result.value.services] == [53]
    assert [i.line_no for i in result.issues] == [1, 2]


def test_truncated_last_line_is_reported() -> None:
    text = (
        "Prot LocalAddress:Port Scheduler Flags\nTCP  0A000001:0050 rr  \n  -> 0A000002:0050   Ma"
    )
    result = parse_proc_ip_vs(text)
    assert [(i.line_no, i.field) for i in result.issues][-1] == (3, "line")
    assert "truncated" in result.issues[-1].message
    assert result.value.services[0].destinations == ()


def test_empty_input_is_reported() -> None:
    result = parse_proc_ip_vs(io.StringIO(""))
    assert result.value.services == ()
    assert [i.message for i in result.issues] == ["empty input"]
