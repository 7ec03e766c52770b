from __future__ import annotations

import io
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address

import pytest

from ipvslab.doctor.conn_summary import summarize_conns, summarize_proc_ip_vs_conn
from ipvslab.doctor.parsers.proc_ip_vs_conn import (
    iter_proc_ip_vs_conn,
    parse_proc_ip_vs_conn,
    parse_proc_ip_vs_conn_sync,
)
from ipvslab.doctor.records import ConnEntry, ParseIssue, Protocol
from ipvslab.doctor.render import render_proc_ip_vs_conn, render_proc_ip_vs_conn_sync

Reader = Callable[[str], str]
V4 = IPv4Address
V6 = IPv6Address
CLIENT = V4("10.244.1.5")
VIP = V4("10.96.0.1")

EXPECTED = (
    ConnEntry(Protocol.TCP, "TCP", CLIENT, 54321, VIP, 443, None, V4("192.168.1.10"), 6443,
              "ESTABLISHED", 899),
    ConnEntry(Protocol.TCP, "TCP", CLIENT, 54322, VIP, 443, None, V4("192.168.1.11"), 6443,
              "TIME_WAIT", 51),
    ConnEntry(Protocol.UDP, "UDP", V4("10.244.1.6"), 40001, V4("10.96.0.10"), 53, None,
              V4("10.244.2.7"), 53, "UDP", 287),
    ConnEntry(Protocol.SCTP, "SCTP", V4("10.244.1.7"), 2905, V4("10.96.0.2"), 2905, None,
              V4("10.244.2.8"), 2905, "ESTABLISHED", 899),
    ConnEntry(Protocol.TCP, "TCP", CLIENT, 0, V4("172.16.255.241"), 80, None,
              V4("172.16.8.106"), 80, "ASSURED", 1799),
    ConnEntry(Protocol.IP, "IP", CLIENT, 0, None, 0, 1, V4("10.0.0.5"), 0, "NONE", 1799),
    ConnEntry(Protocol.TCP, "TCP", V4("10.244.1.9"), 0, V4("172.16.255.241"), 0xFFFF, None,
              V4("172.16.8.106"), 0xFFFF, "NONE", 0),
    ConnEntry(Protocol.TCP, "TCP", V6("2001:db8::99"), 50000, V6("2001:db8::1"), 80, None,
              V6("2001:db8::a1"), 8080, "SYN_RECV", 59),
    ConnEntry(Protocol.UDP, "UDP", V4("192.168.0.5"), 5060, V4("192.168.0.1"), 5060, None,
              V4("192.168.0.100"), 5060, "UDP", 179, "sip", "a84b4c76e66710@pc33.example.com"),
)  # fmt: skip


def test_fixture_reads_every_kind_of_row(fixture_text: Reader) -> None:
    result = parse_proc_ip_vs_conn(io.StringIO(fixture_text("proc_ip_vs_conn.txt")))
    assert result.issues == ()
    assert result.value == EXPECTED


def test_templates_and_invalidated_templates_are_flagged(fixture_text: Reader) -> None:
    entries = parse_proc_ip_vs_conn(fixture_text("proc_ip_vs_conn.txt")).value
    assert [e.is_template for e in entries] == [False] * 4 + [True] * 3 + [False] * 2
    assert [e.is_invalidated_template for e in entries].count(True) == 1


def test_fixture_renders_back_byte_for_byte(fixture_text: Reader) -> None:
    text = fixture_text("proc_ip_vs_conn.txt")
    assert render_proc_ip_vs_conn(parse_proc_ip_vs_conn(text).value) == text


def test_old_kernel_wrapped_expires_reads_as_negative(fixture_text: Reader) -> None:
    result = parse_proc_ip_vs_conn(fixture_text("proc_ip_vs_conn_old.txt"))
    assert result.issues == ()
    assert [e.expires for e in result.value] == [899, -2]


def test_conn_sync_reads_origin(fixture_text: Reader) -> None:
    text = fixture_text("proc_ip_vs_conn_sync.txt")
    result = parse_proc_ip_vs_conn_sync(text)
    assert result.issues == ()
    assert [(e.origin, e.state, e.expires) for e in result.value] == [
        ("LOCAL", "ESTABLISHED", 899),
        ("SYNC", "TIME_WAIT", 51),
    ]
    assert render_proc_ip_vs_conn_sync(result.value) == text


def test_conn_sync_file_given_to_the_conn_parser_is_reported(fixture_text: Reader) -> None:
    result = parse_proc_ip_vs_conn(fixture_text("proc_ip_vs_conn_sync.txt"))
    assert result.value == ()
    assert [i.field for i in result.issues] == ["header", "Expires", "Expires"]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ("TCP 0AF4010 D431 0A600001 01BB C0A8010A 192B ESTABLISHED 899", "FromIP"),
        ("TCP 0AF40105 D43 0A600001 01BB C0A8010A 192B ESTABLISHED 899", "FPrt"),
        ("TCP 0AF40105 D431 0A600001 01bg C0A8010A 192B ESTABLISHED 899", "TPrt"),
        ("TCP 0AF40105 D431 0A600001 01BB C0A8010Z 192B ESTABLISHED 899", "DestIP"),
        ("TCP 0AF40105 D431 0A600001 01BB C0A8010A 192B ESTABLISHED -1", "Expires"),
        ("TCP 0AF40105 D431 0A600001 01BB C0A8010A 192B ESTABLISHED 1e3", "Expires"),
        ("XYZ 0AF40105 D431 0A600001 01BB C0A8010A 192B ESTABLISHED 899", "protocol"),
        ("TCP 0AF40105 D431 0A600001 01BB C0A8010A 192B ESTABLISHED", "line"),
        ("IP  0AF40105 0000 0000001 0000 0A000005 0000 NONE 1799", "ToIP"),
    ],
)
def test_malformed_row_is_reported_and_the_rest_parsed(row: str, field: str) -> None:
    good = "TCP 0AF40105 D432 0A600001 01BB C0A8010B 192B TIME_WAIT        51\n"
    issues: list[ParseIssue] = []
    entries = list(iter_proc_ip_vs_conn([good, row + "\n", good], "conn", issues))
    assert len(entries) == 2
    assert [(i.source, i.line_no, i.field) for i in issues] == [("conn", 2, field)]


def test_unknown_but_real_protocol_names_are_kept() -> None:
    row = "IP_47 0AF40105 0000 0A600001 0000 C0A8010A 0000 ERR!       10\n"
    (entry,) = parse_proc_ip_vs_conn(row).value
    assert (entry.protocol, entry.protocol_name, entry.state) == (None, "IP_47", "ERR!")


def test_ipv6_fwmark_template_reads_the_mark_from_the_first_word() -> None:
    row = (
        "IP  2001:0db8:0000:0000:0000:0000:0000:0099 0000 "
        "0000:0007:0000:0000:0000:0000:0000:0000 0000 "
        "2001:0db8:0000:0000:0000:0000:0000:00a1 0000 " + f"{'NONE':<11} {1799:7d}\n"
    )
    (entry,) = parse_proc_ip_vs_conn(row).value
    assert (entry.fwmark, entry.virtual_addr) == (7, None)
    assert render_proc_ip_vs_conn([entry], header=False) == row


def test_truncated_last_line_is_reported_and_skipped(fixture_text: Reader) -> None:
    text = fixture_text("proc_ip_vs_conn.txt")
    cut = text[: text.index("TIME_WAIT") + 4]
    result = parse_proc_ip_vs_conn(cut)
    assert len(result.value) == 1
    assert [(i.line_no, i.field) for i in result.issues] == [(3, "line"), (3, "line")]
    assert "truncated" in result.issues[-1].message


def test_complete_last_line_without_newline_is_kept_but_reported() -> None:
    text = "Pro FromIP ...\nTCP 0AF40105 D432 0A600001 01BB C0A8010B 192B TIME_WAIT 51"
    result = parse_proc_ip_vs_conn(text)
    assert len(result.value) == 1
    assert "kept" in result.issues[0].message


def test_lines_without_newlines_from_splitlines_are_not_called_truncated() -> None:
    text = "TCP 0AF40105 D432 0A600001 01BB C0A8010B 192B TIME_WAIT 51\n" * 2
    result = parse_proc_ip_vs_conn(text.splitlines())
    assert (len(result.value), result.issues) == (2, ())


def test_empty_and_header_only_inputs() -> None:
    empty = parse_proc_ip_vs_conn("")
    assert (empty.value, [i.message for i in empty.issues]) == ((), ["empty input"])
    header_only = parse_proc_ip_vs_conn(
        "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
    )
    assert (header_only.value, header_only.issues) == ((), ())


def test_issue_count_is_capped_for_constant_memory() -> None:
    issues: list[ParseIssue] = []
    list(iter_proc_ip_vs_conn(["garbage\n"] * 50, "x", issues, max_issues=5))
    assert len(issues) == 6
    assert issues[-1].message == "45 more issues not shown"


def test_summary_counts_per_dest_state_client_and_expiry(fixture_text: Reader) -> None:
    text = fixture_text("proc_ip_vs_conn.txt")
    summary = summarize_proc_ip_vs_conn(io.StringIO(text))
    assert summary == summarize_conns(parse_proc_ip_vs_conn(text).value)
    assert (summary.total, summary.templates, summary.invalidated_templates) == (9, 3, 1)
    assert summary.by_state == {
        "ESTABLISHED": 2,
        "TIME_WAIT": 1,
        "UDP": 2,
        "SYN_RECV": 1,
    }
    assert summary.by_protocol == {"TCP": 5, "UDP": 2, "SCTP": 1, "IP": 1}
    assert summary.busiest_clients[CLIENT].count == 2
    dest = summary.by_dest[(V4("192.168.1.10"), 6443)]
    assert (dest.total, dest.by_state, dest.min_expires, dest.max_expires) == (
        1,
        {"ESTABLISHED": 1},
        899,
        899,
    )
    assert summary.templates_by_dest == {
        (V4("172.16.8.106"), 80): 1,
        (V4("172.16.8.106"), 0xFFFF): 1,
        (V4("10.0.0.5"), 0): 1,
    }
    assert summary.top_clients(1) == [(CLIENT, 2)]


def test_summary_expiry_range_per_dest() -> None:
    rows = [
        f"TCP 0AF4010{i} D43{i} 0A600001 01BB C0A8010A 192B TIME_WAIT {e:7d}\n"
        for i, e in enumerate((50, 10, 90, 30))
    ]
    summary = summarize_proc_ip_vs_conn(rows)
    dest = summary.by_dest[(V4("192.168.1.10"), 6443)]
    assert (dest.min_expires, dest.max_expires, dest.total) == (10, 90, 4)
    assert summary == summarize_conns(parse_proc_ip_vs_conn(rows).value)
