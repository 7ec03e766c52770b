"""The connection table counted as columns: bounded by the table, exact where it says so.

A busy node's table comes from millions of client addresses. The per-client counts
are a top-K sketch with a stated error; the per-(service, real server, state) counts
stay exact; malformed lines in the middle of a big table are reported with their
own line number, whatever chunk they fall in.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from ipvslab.doctor import conn_columns, conn_summary
from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.conn_summary import summarize_conns, summarize_proc_ip_vs_conn
from ipvslab.doctor.diagnose import diagnose
from ipvslab.doctor.human import render_header
from ipvslab.doctor.parsers.proc_ip_vs_conn import HEADER, iter_proc_ip_vs_conn
from ipvslab.doctor.records import ParseIssue
from ipvslab.doctor.report import build_report

STATES = ("ESTABLISHED", "TIME_WAIT", "FIN_WAIT", "SYN_RECV", "CLOSE")


def row(client: int, port: int, service: int, dest: int, state: str, expires: int) -> str:
    """One /proc/net/ip_vs_conn row as ip_vs_conn_seq_show() prints it."""
    return (
        f"TCP {0x0AF40000 + client:08X} {port:04X} {0x0A600000 + service:08X} 0050 "
        f"{0x0AF48000 + dest:08X} 1F90 {state:<11} {expires:7d}\n"
    )


# --------------------------------------------------------------------------- the sketch


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batches=st.lists(
        st.lists(st.tuples(st.integers(0, 40), st.integers(1, 30)), max_size=30), max_size=8
    ),
    k=st.integers(1, 12),
    merge_rows=st.integers(1, 50),
)
def test_sketch_counts_are_lower_bounds_within_the_stated_error(
    batches: list[list[tuple[int, int]]], k: int, merge_rows: int
) -> None:
    true: Counter[str] = Counter()
    sketch = conn_columns.TopK("key", k=k)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conn_columns, "MERGE_ROWS", merge_rows)
        for batch in batches:
            for key, n in batch:
                true[str(key)] += n
            sketch.add(
                pl.DataFrame(
                    {
                        "key": [str(key) for key, _ in batch],
                        "n": [n for _, n in batch],
                        "closed": [n for _, n in batch],
                        "recent": [0 for _ in batch],
                    },
                    schema={
                        "key": pl.String,
                        "n": pl.Int64,
                        "closed": pl.Int64,
                        "recent": pl.Int64,
                    },
                )
            )
        kept = {pair: (n, closed) for pair, n, closed, _ in sketch.rows()}
    assert len(kept) <= k
    for pair, count in true.items():
        if pair in kept:
            n, closed = kept[pair]
            assert count - sketch.error <= n <= count
            assert closed <= n
        else:
            assert count <= sketch.error
    if len(true) <= k:
        assert sketch.error == 0 and {p: n for p, (n, _) in kept.items()} == dict(true)


def test_a_heavy_client_among_many_one_off_clients_stands_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 3,000 clients with one entry each (a NodePort behind a NAT-less LB) and one pod
    # that reuses ports on one service: the sketch keeps 50 pairs.
    monkeypatch.setattr(conn_columns, "TOP_CLIENT_SERVICES", 50)
    monkeypatch.setattr(conn_columns, "TOP_CLIENTS", 50)
    monkeypatch.setattr(conn_columns, "MERGE_ROWS", 500)
    monkeypatch.setattr(conn_summary, "CHUNK_BYTES", 8192)
    lines = [HEADER + "\n"]
    lines += [row(10 + i, 40000, 1, i % 7, "TIME_WAIT", 60) for i in range(3000)]
    lines[1500:1500] = [row(3, 32768 + i, 2, 1, "TIME_WAIT", 100) for i in range(400)]
    summary = summarize_proc_ip_vs_conn(io.StringIO("".join(lines)))
    assert summary.total == 3400
    assert sum(summary.by_state.values()) == 3400  # exact, sketch or not
    assert 0 < summary.client_service_error <= 3000 // 50
    assert 0 < summary.client_error <= 3000 // 50
    (client, count), *_ = summary.top_clients(1)
    assert str(client) == "10.244.0.3"
    assert 400 - summary.client_error <= count <= 400
    pair = next(k for k in summary.client_services if str(k.client) == "10.244.0.3")
    assert 400 - summary.client_service_error <= summary.client_services[pair].count <= 400
    assert len(summary.client_services) <= 50


# --------------------------------------------------------------------------- line-exact


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(
        st.one_of(
            st.builds(
                row,
                st.integers(0, 20),
                st.integers(1, 65535),
                st.integers(0, 3),
                st.integers(0, 5),
                st.sampled_from(STATES),
                st.integers(0, 900),
            ),
            st.sampled_from(
                [
                    "TCP 0AF40315 ZZZZ 0A64141E 0050 0AF40107 1F90 TIME_WAIT        92\n",
                    "TCP 0AF40315 D3D4 0A64141E 0050 0AF40107 1F90\n",
                    "\n",
                    "UDP 0AF40315 D3D4 0A64141E 0035 0AF40107 0035 UDP         -5\n",
                    "SCTP 0AF40315 D3D4 0A64141E 0050 0AF40107 1F90 ESTABLISHED     92\n",
                    "TCP 0af40315 d3d4 0a64141e 0050 0af40107 1f90 TIME_WAIT        92\n",
                    "TCP  0AF40315 D3D4 0A64141E 0050 0AF40107 1F90 TIME_WAIT       92\n",
                ]
            ),
        ),
        max_size=60,
    ),
    chunk=st.integers(40, 2000),
    newline_at_end=st.booleans(),
)
def test_chunks_and_columns_give_what_the_line_parser_gives(
    rows: list[str], chunk: int, newline_at_end: bool
) -> None:
    text = HEADER + "\n" + "".join(rows)
    if not newline_at_end:
        text = text.rstrip("\n")
    expected: list[ParseIssue] = []
    entries = list(iter_proc_ip_vs_conn(io.StringIO(text, newline=""), "conn", expected))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(conn_summary, "CHUNK_BYTES", chunk)
        for stream in (io.StringIO(text, newline=""), _text_file(text)):
            found: list[ParseIssue] = []
            summary = summarize_proc_ip_vs_conn(stream, "conn", found)
            assert found == expected
            assert summary == summarize_conns(entries)


def _text_file(text: str) -> io.TextIOWrapper:
    """What capture hands over for a file: UTF-8 text over bytes."""
    raw = io.BytesIO(text.encode())
    return io.TextIOWrapper(raw, encoding="utf-8", errors="replace", newline="")


def test_a_malformed_line_deep_in_a_big_table_keeps_its_line_number(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(conn_summary, "CHUNK_BYTES", 1 << 12)  # about 60 rows a chunk
    lines = [HEADER + "\n"] + [
        row(i % 300, 1024 + i, i % 4, i % 9, "TIME_WAIT", 50) for i in range(5000)
    ]
    lines[4321 - 1] = lines[4321 - 1].replace(" 0050 ", " 00G0 ", 1)
    issues: list[ParseIssue] = []
    summary = summarize_proc_ip_vs_conn(_text_file("".join(lines)), "ip_vs_conn", issues)
    assert [str(i) for i in issues] == ["ip_vs_conn:4321: TPrt: expected 4 hex digits, got '00G0'"]
    assert summary.total == 4999


# --------------------------------------------------------------------------- the report


def test_json_of_a_table_from_many_clients_stays_small_and_states_its_bound(
    tmp_path: Path,
) -> None:
    # 20,000 client addresses, one entry each, behind 4 services: more pairs than the
    # sketch keeps. The report lists 10 clients and says how far the counts can be off.
    root = tmp_path / "node"
    (root / "proc" / "net").mkdir(parents=True)
    (root / "uname-r.txt").write_text("5.15.0-91-generic\n")
    rows = [row(i, 40000 + i % 20000, i % 4, i % 4, "TIME_WAIT", 90) for i in range(20_000)]
    (root / "proc" / "net" / "ip_vs_conn").write_text(HEADER + "\n" + "".join(rows))
    report = build_report(diagnose(snapshot_from_capture(capture_from_layout(root))))
    conns = report.connections
    assert conns is not None and conns.total == 20_000
    assert len(conns.busiest_clients) <= 10
    assert conns.client_counts.tracked_pairs_limit == conn_summary.TOP_CLIENT_SERVICES
    assert conns.client_counts.tracked_clients_limit == conn_summary.TOP_CLIENTS
    assert conns.client_counts.count_error >= 1 and conns.client_counts.pair_count_error >= 1
    assert len(json.dumps(report.model_dump(mode="json"))) < 40_000
    console = Console(file=io.StringIO(), width=200)
    render_header(report, console)
    text = " ".join(console.file.getvalue().split())  # type: ignore[attr-defined]
    assert "no client holds more than 1 entry (top-10000 sketch of clients)" in text


GOOD = "TCP 0AF40315 D3D4 0A64141E 0050 0AF40107 1F90 TIME_WAIT        92\n"
ODD_INPUTS = {
    "NUL in an address": GOOD + "TCP 0AF40315 D3D4 0A64141E 0050 0AF4\x000107 1F90 CLOSE  9\n",
    "unit separator": GOOD + "TCP 0AF40315 D3D4 0A64141E 0050 0AF40107 1F90 CLOSE \x1f  9\n",
    "CRLF (a paste from Windows)": (HEADER + "\n" + GOOD * 3).replace("\n", "\r\n"),
    "a lone CR": GOOD + "junk\r" + GOOD,
    "byte-order mark": "\ufeff" + HEADER + "\n" + GOOD,
    "a quote": GOOD + '"' + GOOD + GOOD,
    "last line cut": GOOD + GOOD + "TCP 0AF40315 D3D4",
    "last line without newline": GOOD + GOOD.rstrip("\n"),
    "blank lines": "\n\n" + GOOD + "\n   \n" + GOOD,
    "nothing": "",
}


@pytest.mark.parametrize("name", sorted(ODD_INPUTS))
@pytest.mark.parametrize("damage", [False, True])
def test_odd_bytes_are_read_as_a_text_file_reads_them(name: str, damage: bool) -> None:
    raw = ODD_INPUTS[name].encode()
    if damage:  # a byte that is not UTF-8, replaced by U+FFFD as the text file does
        raw = raw.replace(b"0AF40107", b"0AF4\xff107", 1)
    expected: list[ParseIssue] = []
    entries = list(iter_proc_ip_vs_conn(_bytes_file(raw), "conn", expected))
    found: list[ParseIssue] = []
    summary = summarize_proc_ip_vs_conn(_bytes_file(raw), "conn", found)
    assert found == expected
    assert summary == summarize_conns(entries)


def _bytes_file(raw: bytes) -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8", errors="replace", newline="")


def test_same_table_same_report_byte_for_byte(tmp_path: Path) -> None:
    # polars groups in no fixed order: the report must not show it.
    root = tmp_path / "node"
    (root / "proc" / "net").mkdir(parents=True)
    (root / "uname-r.txt").write_text("4.15.0-213-generic\n")
    rows = [
        row(i % 97, 1024 + i, i % 13, i % 29, STATES[i % len(STATES)], i % 120) for i in range(6000)
    ]
    (root / "proc" / "net" / "ip_vs_conn").write_text(HEADER + "\n" + "".join(rows))

    def report_text() -> str:
        report = build_report(diagnose(snapshot_from_capture(capture_from_layout(root))))
        return json.dumps(report.model_dump(mode="json"))

    first = report_text()
    assert all(report_text() == first for _ in range(3))


def test_a_client_spread_over_many_services_keeps_its_total(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A pod calling 200 services twice each, among 3,000 one-off clients: no pair of
    # it stands out, but its total does, within the client sketch's own bound.
    monkeypatch.setattr(conn_columns, "TOP_CLIENT_SERVICES", 50)
    monkeypatch.setattr(conn_columns, "TOP_CLIENTS", 50)
    monkeypatch.setattr(conn_columns, "MERGE_ROWS", 500)
    monkeypatch.setattr(conn_summary, "CHUNK_BYTES", 8192)
    lines = [HEADER + "\n"]
    lines += [row(10 + i, 40000, 1, i % 7, "TIME_WAIT", 60) for i in range(3000)]
    lines[700:700] = [row(3, 32768 + i, i % 200, 1, "TIME_WAIT", 100) for i in range(400)]
    summary = summarize_proc_ip_vs_conn(io.StringIO("".join(lines)))
    (client, count), *_ = summary.top_clients(1)
    assert str(client) == "10.244.0.3"
    assert 400 - summary.client_error <= count <= 400
    assert not summary.client_services  # no pair reaches 16 entries


@pytest.mark.parametrize("batch", [100, 1 << 16])
def test_integer_client_ids_give_the_same_sketches_as_text_keys(
    monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    # Well-formed rows are grouped on integer ids, the careful parser's rows (here SIP
    # persistence-engine rows) on text: a table mixing both, past the sketches' bounds,
    # must count exactly as if every row were keyed by text.
    monkeypatch.setattr(conn_columns, "TOP_CLIENT_SERVICES", 40)
    monkeypatch.setattr(conn_columns, "TOP_CLIENTS", 40)
    monkeypatch.setattr(conn_columns, "MERGE_ROWS", 700)
    monkeypatch.setattr(conn_summary, "CHUNK_BYTES", 16384)
    monkeypatch.setattr(conn_summary.ConnAggregator, "BATCH", batch)
    lines = [HEADER + "\n"]
    for i in range(6000):
        text = row(i % 2500 if i % 3 else i % 40, 1024 + i, i % 30, i % 90, STATES[i % 5], i % 300)
        if i % 97 == 0:  # a SIP call's entry: Call-ID after the expiry, careful parser
            text = text[:-1] + f" sip    call-{i}@pbx.example\n"
        lines.append(text)
    table = "".join(lines)
    with_ids = summarize_proc_ip_vs_conn(io.StringIO(table))
    split = conn_columns.split_proc_rows

    def without_ids(frame: pl.DataFrame, first: int) -> tuple[pl.DataFrame, list[object]]:
        rows, rest = split(frame, first)
        key = pl.col("gkey").str
        fields = {"vaddr": (4, 8), "vport": (13, 4), "daddr": (18, 8), "dport": (27, 4)}
        rows = rows.with_columns(key.slice(*at).alias(name) for name, at in fields.items())
        return rows.select(*conn_columns.ROW_SCHEMA), rest

    monkeypatch.setattr(conn_columns, "split_proc_rows", without_ids)
    as_text = summarize_proc_ip_vs_conn(io.StringIO(table))
    assert with_ids.client_error > 0 and with_ids.client_service_error > 0
    assert with_ids == as_text
    assert with_ids.total == 6000
