"""``ipvsadm -Lnc`` (ipvsadm 1.26 ``list_conn()`` / ``print_conn()``).

::

    IPVS connection entries
    pro expire state       source             virtual            destination
    TCP 01:51  TIME_WAIT   10.244.1.5:54321   10.96.0.10:53      10.244.2.7:53

ipvsadm re-prints ``/proc/net/ip_vs_conn``: expire as ``MM:SS`` (minutes not
capped), addresses numeric (``[v6]:port`` for IPv6). With ``--persistent-conn``
the header gains ``pe name pe_data`` and rows that have PE data show it. A fwmark
template's virtual column is the fwmark printed as an address (``0.0.0.1:0``).
"""

from __future__ import annotations

from collections.abc import Iterator

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    LineTracker,
    Stream,
    dec_int,
    text_addrport,
)
from ipvslab.doctor.records import ConnEntry, IPAddress, ParseIssue, ParseResult, Protocol

SOURCE = "ipvsadm -Lnc"
TITLE = "IPVS connection entries"
_PROTOCOL_BY_NAME: dict[str, Protocol] = {p.name: p for p in Protocol}


def iter_ipvsadm_conn(
    stream: Stream,
    source: str = SOURCE,
    issues: list[ParseIssue] | None = None,
    *,
    max_issues: int = DEFAULT_MAX_ISSUES,
) -> Iterator[ConnEntry]:
    log = IssueLog(source, issues, max_issues)
    lines = LineTracker()
    parsed = True
    for line_no, line in lines.track(stream):
        fields = line.split()
        if not fields or fields[0] in ("IPVS", "pro"):
            parsed = True
            continue
        entry = _parse_row(fields, line_no, log)
        parsed = entry is not None
        if entry is not None:
            yield entry
    lines.report_truncation(log, parsed)
    if lines.line_no == 0:
        log.add(0, "input", "empty input")
    log.finish()


def parse_ipvsadm_conn(
    stream: Stream, source: str = SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[tuple[ConnEntry, ...]]:
    issues: list[ParseIssue] = []
    entries = tuple(iter_ipvsadm_conn(stream, source, issues, max_issues=max_issues))
    return ParseResult(entries, tuple(issues))


def parse_expire(text: str) -> int | None:
    """``MM:SS`` to seconds."""
    minutes, sep, seconds = text.partition(":")
    m = dec_int(minutes)
    s = dec_int(seconds, 59)
    if not sep or m is None or s is None or len(seconds) != 2 or len(minutes) < 2:
        return None
    return m * 60 + s


def _parse_row(fields: list[str], line_no: int, log: IssueLog) -> ConnEntry | None:
    if len(fields) not in (6, 8):
        log.add(line_no, "line", f"{len(fields)} fields, expected 6 (or 8 with PE data)")
        return None
    name = fields[0]
    protocol = _PROTOCOL_BY_NAME.get(name)
    expires = parse_expire(fields[1])
    if expires is None:
        log.add(line_no, "expire", f"expected MM:SS, got {fields[1]!r}")
        return None
    state = fields[2]
    parsed = []
    for column, text in zip(("source", "virtual", "destination"), fields[3:6], strict=True):
        addrport = text_addrport(text)
        if addrport is None:
            log.add(line_no, column, f"expected numeric ADDR:PORT, got {text!r}")
            return None
        parsed.append(addrport)
    (client, cport), (vaddr, vport), (daddr, dport) = parsed
    if vaddr.version != client.version:
        log.add(line_no, "virtual", "address family differs from the source column")
        return None
    fwmark: int | None = None
    virtual: IPAddress | None = vaddr
    if protocol is Protocol.IP:
        fwmark = int(vaddr) if vaddr.version == 4 else int(vaddr) >> 96
        virtual = None
    pe_name = fields[6] if len(fields) == 8 else None
    pe_data = fields[7] if len(fields) == 8 else None
    return ConnEntry(
        protocol,
        name,
        client,
        cport,
        virtual,
        vport,
        fwmark,
        daddr,
        dport,
        state,
        expires,
        pe_name,
        pe_data,
    )
