"""``/proc/net/ip_vs_conn`` and ``/proc/net/ip_vs_conn_sync`` (``ip_vs_conn_seq_show()``).

Rows: ``%-3s %08X %04X %08X %04X %s %04X %-11s %7u%s`` (IPv6 rows print ``%pI6``
full-form addresses); the trailing ``%s`` is `` <PEName> <PEData>`` when a
persistence engine stored data. Kernels before the ``jiffies_delta_to_msecs()``
change print Expires with ``%7lu`` of ``(expires - jiffies) / HZ``, which wraps for
a timer already due; such values come back negative. The ``_sync`` file has an
``Origin`` column (``SYNC``/``LOCAL``) before Expires and no PE columns.

Built for size: ``iter_proc_ip_vs_conn`` streams entries with constant memory; the
common row goes through a fast path (one ``split()``, dict lookups for
addresses and ports), anything unusual through a careful slow path that reports
what it cannot read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    Stream,
    hex_int,
    hex_ports,
    lines_of,
    proc_address,
)
from ipvslab.doctor.records import ConnEntry, IPAddress, ParseIssue, ParseResult, Protocol

SOURCE = "/proc/net/ip_vs_conn"
SYNC_SOURCE = "/proc/net/ip_vs_conn_sync"
HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData"
SYNC_HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Origin Expires"
ORIGINS = frozenset({"SYNC", "LOCAL"})

_PROTOCOL_BY_NAME: dict[str, Protocol] = {p.name: p for p in Protocol}
# The fast path handles only service protocols; "IP" rows are fwmark templates.
_FAST_PROTOCOLS: dict[str, Protocol] = {
    n: p for n, p in _PROTOCOL_BY_NAME.items() if p is not Protocol.IP
}
ADDRESS_CACHE_LIMIT = 1 << 16
EXPIRES_LIMIT = 1 << 31
FAST_PROTOCOLS = _FAST_PROTOCOLS
_new_entry = tuple.__new__


def iter_proc_ip_vs_conn(
    stream: Stream,
    source: str = SOURCE,
    issues: list[ParseIssue] | None = None,
    *,
    max_issues: int = DEFAULT_MAX_ISSUES,
) -> Iterator[ConnEntry]:
    """Streams the entries of ``/proc/net/ip_vs_conn``.

    Issues go to ``issues`` (at most ``max_issues`` of them, then one summary) as
    they are met; pass a list and read it after the iterator is exhausted.
    """
    return _iter_conn(stream, IssueLog(source, issues, max_issues), sync=False)


def iter_proc_ip_vs_conn_sync(
    stream: Stream,
    source: str = SYNC_SOURCE,
    issues: list[ParseIssue] | None = None,
    *,
    max_issues: int = DEFAULT_MAX_ISSUES,
) -> Iterator[ConnEntry]:
    """Streams the entries of ``/proc/net/ip_vs_conn_sync`` (``origin`` set)."""
    return _iter_conn(stream, IssueLog(source, issues, max_issues), sync=True)


def parse_proc_ip_vs_conn(
    stream: Stream, source: str = SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[tuple[ConnEntry, ...]]:
    """All entries as a tuple (for small inputs; use the iterator for big tables)."""
    issues: list[ParseIssue] = []
    entries = tuple(iter_proc_ip_vs_conn(stream, source, issues, max_issues=max_issues))
    return ParseResult(entries, tuple(issues))


def parse_proc_ip_vs_conn_sync(
    stream: Stream, source: str = SYNC_SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[tuple[ConnEntry, ...]]:
    issues: list[ParseIssue] = []
    entries = tuple(iter_proc_ip_vs_conn_sync(stream, source, issues, max_issues=max_issues))
    return ParseResult(entries, tuple(issues))


def _iter_conn(stream: Stream, log: IssueLog, sync: bool) -> Iterator[ConnEntry]:
    cache: dict[str, IPAddress] = {}
    ports = hex_ports()
    protocols = _FAST_PROTOCOLS
    width = 10 if sync else 9
    new = _new_entry
    cls = ConnEntry
    limit = EXPIRES_LIMIT
    line_no = 0
    line = ""
    first_had_newline = False
    parsed = True
    for line in lines_of(stream):
        line_no += 1
        fields = line.split()
        if len(fields) == width:
            # Fast path: every lookup below raises KeyError for anything not seen
            # and validated before, which sends the line to the slow path.
            try:
                name = fields[0]
                protocol = protocols[name]
                client = cache[fields[1]]
                cport = ports[fields[2]]
                vaddr = cache[fields[3]]
                vport = ports[fields[4]]
                daddr = cache[fields[5]]
                dport = ports[fields[6]]
                if sync:
                    origin: str | None = fields[8]
                    if origin not in ORIGINS:
                        raise KeyError(origin)
                    expires = int(fields[9])
                else:
                    origin = None
                    expires = int(fields[8])
            except (KeyError, ValueError):
                pass
            else:
                if 0 <= expires < limit:
                    parsed = True
                    yield new(
                        cls,
                        (
                            protocol,
                            name,
                            client,
                            cport,
                            vaddr,
                            vport,
                            None,
                            daddr,
                            dport,
                            fields[7],
                            expires,
                            None,
                            None,
                            origin,
                        ),
                    )
                    continue
        if line_no == 1:
            first_had_newline = line.endswith("\n")
        entry = parse_conn_fields(fields, line, line_no, sync, cache, log)
        parsed = entry is not None
        if entry is not None and entry is not SKIP:
            yield entry
    if line_no == 0:
        log.add(0, "input", "empty input")
    elif first_had_newline and line_no > 1 and not line.endswith("\n"):
        note = "kept, but it may be incomplete" if parsed else "skipped"
        log.add(line_no, "line", f"input ends without a newline: truncated last line {note}")
    log.finish()


# Returned by the slow path for lines that are fine but carry no entry (headers, blanks).
SKIP: ConnEntry = ConnEntry(
    None, "", ipaddress.IPv4Address(0), 0, None, 0, None, ipaddress.IPv4Address(0), 0, "", 0
)


def parse_conn_fields(
    fields: list[str],
    line: str,
    line_no: int,
    sync: bool,
    cache: dict[str, IPAddress],
    log: IssueLog,
) -> ConnEntry | None:
    """The careful path for one row: the entry, ``SKIP`` (header, blank) or None (reported)."""
    if not fields:
        return SKIP
    if fields[0] == "Pro" and fields[1:2] == ["FromIP"]:
        if sync and "Origin" not in fields:
            log.add(line_no, "header", "this is /proc/net/ip_vs_conn, not ip_vs_conn_sync")
        elif not sync and "Origin" in fields:
            log.add(line_no, "header", "this is /proc/net/ip_vs_conn_sync, not ip_vs_conn")
        return SKIP
    need = 10 if sync else 9
    if len(fields) < need:
        truncated = not line.endswith("\n")
        why = " (truncated line)" if truncated else ""
        log.add(line_no, "line", f"{len(fields)} fields, expected {need}{why}")
        return None
    if len(fields) > need and sync:
        log.add(line_no, "line", f"{len(fields)} fields, expected {need}")
        return None
    pe_name: str | None = None
    pe_data: str | None = None
    if len(fields) > need:
        pe_name = fields[need]
        parts = line.split(None, need + 1)
        pe_data = parts[need + 1].strip() if len(parts) > need + 1 else ""
    name = fields[0]
    protocol = _PROTOCOL_BY_NAME.get(name)
    if protocol is None and not _is_other_protocol_name(name):
        log.add(line_no, "protocol", f"unknown protocol {name!r}")
        return None
    client = cached_address(fields[1], cache)
    if client is None:
        log.add(line_no, "FromIP", f"expected %08X or full IPv6, got {fields[1]!r}")
        return None
    ports = [hex_int(fields[i], 4) for i in (2, 4, 6)]
    for column, value, text in zip(("FPrt", "TPrt", "DPrt"), ports, fields[2:7:2], strict=True):
        if value is None:
            log.add(line_no, column, f"expected 4 hex digits, got {text!r}")
            return None
    cport, vport, dport = (p for p in ports if p is not None)
    vaddr: IPAddress | None
    fwmark: int | None = None
    if protocol is Protocol.IP:
        # fwmark template: ToIP holds the mark (IPv6: in the first 32 bits).
        fwmark = _fwmark(fields[3], client.version)
        vaddr = None
        if fwmark is None:
            log.add(line_no, "ToIP", f"expected a fwmark, got {fields[3]!r}")
            return None
    else:
        vaddr = cached_address(fields[3], cache)
        if vaddr is None or vaddr.version != client.version:
            log.add(line_no, "ToIP", f"expected an address like FromIP, got {fields[3]!r}")
            return None
    daddr = cached_address(fields[5], cache)
    if daddr is None:
        log.add(line_no, "DestIP", f"expected %08X or full IPv6, got {fields[5]!r}")
        return None
    state = fields[7]
    origin: str | None = None
    if sync:
        origin = fields[8]
        if origin not in ORIGINS:
            log.add(line_no, "Origin", f"expected SYNC or LOCAL, got {origin!r}")
            return None
    expires_text = fields[need - 1]
    expires = _expires(expires_text)
    if expires is None:
        log.add(line_no, "Expires", f"expected a decimal number of seconds, got {expires_text!r}")
        return None
    return ConnEntry(
        protocol,
        name,
        client,
        cport,
        vaddr,
        vport,
        fwmark,
        daddr,
        dport,
        state,
        expires,
        pe_name,
        pe_data,
        origin,
    )


def _is_other_protocol_name(name: str) -> bool:
    """ip_vs_proto_name() names the model has no enum for: ``ICMP``, ``IP_<n>``."""
    if name in ("ICMP", "ICMPv6", "AH", "ESP"):
        return True
    return name.startswith("IP_") and name[3:].isascii() and name[3:].isdigit()


def cached_address(text: str, cache: dict[str, IPAddress]) -> IPAddress | None:
    addr = cache.get(text)
    if addr is None:
        addr = proc_address(text)
        if addr is not None:
            if len(cache) >= ADDRESS_CACHE_LIMIT:
                cache.clear()
            cache[text] = addr
    return addr


def _fwmark(text: str, version: int) -> int | None:
    if version == 4:
        return hex_int(text, 8)
    addr = proc_address(text)
    if addr is None or addr.version != 6:
        return None
    return int(addr) >> 96


def _expires(text: str) -> int | None:
    if not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    if value < EXPIRES_LIMIT:
        return value
    # %7lu of a negative (already due) jiffies delta, on 32- or 64-bit kernels.
    if value < 1 << 32:
        return value - (1 << 32)
    if 1 << 63 <= value < 1 << 64:
        return value - (1 << 64)
    return None
