"""Size caps and bounded echoes: what a user hits with a hostile or broken input.

A 12-line kube-proxy config of nested YAML aliases, a small .tar.gz holding gigabytes
of NULs, /dev/zero, a FIFO nobody writes to, a megabyte-long line: each ends quickly
with one short input problem, and what was read before it is still diagnosed.
"""

from __future__ import annotations

import gzip
import io
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipvslab.doctor import bounded, capture
from ipvslab.doctor.bounded import BoundedReader
from ipvslab.doctor.capture import capture_from, snapshot_from_capture
from ipvslab.doctor.parsers import parse_kube_proxy_config
from ipvslab.doctor.parsers._common import MESSAGE_LIMIT

from .test_capture import make_tar

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "doctor"
HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
ROW = "TCP 0AF40328 9C40 0A60000A 0050 0AF40214 1F90 ESTABLISHED     890\n"

# The classic "billion laughs", shaped as a kube-proxy config: 12 lines, 9^9 strings.
LAUGHS = """apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
mode: *h
ipvs: {scheduler: rr}
"""


def test_yaml_aliases_are_refused_in_a_kube_proxy_config() -> None:
    result = parse_kube_proxy_config(LAUGHS, "config.conf")  # not 9^9 strings in memory
    assert result.value is None
    [issue] = result.issues
    assert (issue.line_no, issue.field) == (4, "yaml")
    assert "aliases" in issue.message


def test_a_plain_config_with_an_anchor_but_no_alias_still_reads() -> None:
    text = (FIXTURES / "kube_proxy_configmap.yaml").read_text()
    assert parse_kube_proxy_config(text).value is not None


def test_an_oversized_config_is_not_read() -> None:
    huge = "kind: KubeProxyConfiguration\n" + "# padding\n" * 200_000
    result = parse_kube_proxy_config(huge)
    assert result.value is None and "larger than 1 MiB" in result.issues[0].message


def test_a_long_line_is_echoed_in_a_few_dozen_characters(tmp_path: Path) -> None:
    pasted = tmp_path / "ip_vs_conn.txt"
    pasted.write_text(HEADER + ROW + "TCP " + "A" * 5_000_000 + " 9C40\n" + ROW)
    snapshot = snapshot_from_capture(capture_from([str(pasted)]))
    assert snapshot.conns is not None and snapshot.conns.total == 2
    assert snapshot.issues
    assert all(len(i.message) <= MESSAGE_LIMIT + 40 for i in snapshot.issues)


def test_an_archive_member_is_capped_while_it_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real cap is 1 GiB; the same path with a 1 MiB cap and 4 MiB of NULs after
    # two good rows (the 2 GB of NULs of the issue compress to 2 MB alike).
    monkeypatch.setattr(capture, "DECOMPRESSED_LIMIT", 1 << 20)
    nuls = (HEADER + ROW + ROW).encode() + b"\0" * (4 << 20)
    archive = make_tar(
        tmp_path / "capture.tar.gz",
        {
            "ipvslab-capture/proc/net/ip_vs_conn": nuls,
            "ipvslab-capture/uname-r.txt": b"6.1.0-18-amd64\n",
        },
    )
    assert archive.stat().st_size < 64 << 10
    snapshot = snapshot_from_capture(capture_from([str(archive)]))
    assert snapshot.conns is not None and snapshot.conns.total == 2  # read before the cap
    messages = [i.message for i in snapshot.issues]
    assert any("larger than 1 MiB; read only up to there" in m for m in messages), messages
    assert all(len(m) <= MESSAGE_LIMIT + 40 for m in messages)


def test_a_gzip_file_is_capped_alike(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "DECOMPRESSED_LIMIT", 1 << 20)
    pasted = tmp_path / "ip_vs_conn.gz"
    pasted.write_bytes(gzip.compress((HEADER + ROW * 40_000).encode()))
    snapshot = snapshot_from_capture(capture_from([str(pasted)]))
    assert snapshot.conns is not None and 0 < snapshot.conns.total < 40_000
    assert any("larger than 1 MiB" in i.message for i in snapshot.issues)


def test_dev_zero_is_refused_at_once() -> None:
    found = capture_from(["/dev/zero"])  # returns: the head is sniffed, not the whole
    assert not found.files
    [problem] = found.problems
    assert problem.source == "/dev/zero" and "binary" in problem.message


def test_a_fifo_without_a_writer_times_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(capture, "READ_TIMEOUT", 0.2)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    found = capture_from([str(fifo)])
    [problem] = found.problems
    assert "no data within 0.2 s" in problem.message


def _cut_reference(data: bytes, max_line: int) -> bytes:
    return b"\n".join(line[:max_line] for line in data.split(b"\n"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.binary(max_size=40) | st.just(b"\n") | st.just(b"x" * 30), max_size=30),
    st.integers(1, 16),
    st.integers(1, 64),
)
def test_bounded_reader_cuts_every_line_and_nothing_else(
    pieces: list[bytes], max_line: int, chunk: int
) -> None:
    data = b"".join(pieces)
    original = bounded.CHUNK
    bounded.CHUNK = chunk
    try:
        reader = BoundedReader(io.BytesIO(data), source="x", max_line=max_line)
        out = io.BufferedReader(reader, buffer_size=7).read()
    finally:
        bounded.CHUNK = original
    assert out == _cut_reference(data, max_line)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 200))
def test_bounded_reader_stops_at_its_limit_and_says_so(data: bytes, limit: int) -> None:
    sink: list[object] = []
    reader = BoundedReader(io.BytesIO(data), source="m", limit=limit, sink=sink)  # type: ignore[arg-type]
    out = io.BufferedReader(reader).read()
    assert out == _cut_reference(data[:limit], bounded.MAX_LINE_BYTES)
    assert len(sink) == (1 if len(data) > limit else 0)


def test_a_long_archive_member_name_is_echoed_short(tmp_path: Path) -> None:
    name = "ticket/" + "x" * 5000 + ".txt"
    archive = make_tar(tmp_path / "t.tar.gz", {name: b"hello there\n"})
    [problem] = capture_from([str(archive)]).problems
    assert len(problem.source) < len(str(archive)) + 200
    assert "more characters" in problem.source
