"""``ipvsadm -Ln`` (ipvsadm 1.26 ``print_service_entry()``).

::

    IP Virtual Server version 1.2.1 (size=4096)
    Prot LocalAddress:Port Scheduler Flags
      -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
    TCP  172.16.255.241:80 rr persistent 300 mask 255.255.255.0 pe sip ops
      -> 172.16.8.106:80              Masq    0      10         14048
    FWM  1 IPv6 rr

Addresses are dotted IPv4 or ``[compressed IPv6]``; fwmarks are decimal. The
persistence timeout is in seconds; ``mask`` is printed only when it is not /32
(/128), so a missing mask reads as the full mask.
"""

from __future__ import annotations

import ipaddress

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    LineTracker,
    Stream,
    dec_int,
    shown,
    text_addrport,
)
from ipvslab.doctor.parsers._table import (
    SERVICE_PROTOCOLS,
    VERSION_RE,
    TableBuilder,
    parse_dest_row,
)
from ipvslab.doctor.records import (
    Family,
    IPAddress,
    IpvsTable,
    ParseResult,
    Protocol,
    RealServerEntry,
    ServiceEntry,
    ServiceFlags,
    TimeoutUnit,
)

SOURCE = "ipvsadm -Ln"
SERVICE_HEADER = "Prot LocalAddress:Port Scheduler Flags"
DEST_HEADER = "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn"
FULL_MASK = {Family.IPV4: 0xFFFFFFFF, Family.IPV6: 128}


def parse_ipvsadm_list(
    stream: Stream, source: str = SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[IpvsTable]:
    """Parses ``ipvsadm -Ln`` (also ``-L -n --nosort``); other ``-L`` views are refused."""
    log = IssueLog(source, max_issues=max_issues)
    lines = LineTracker()
    builder = TableBuilder()
    parsed = True
    for line_no, line in lines.track(stream):
        parsed = _parse_line(line, line_no, builder, log)
    lines.report_truncation(log, parsed)
    if lines.line_no == 0:
        log.add(0, "input", "empty input")
    return ParseResult(builder.table(), log.finish())


def _parse_line(line: str, line_no: int, builder: TableBuilder, log: IssueLog) -> bool:
    fields = line.split()
    if not fields:
        return True
    if fields[:3] == ["IP", "Virtual", "Server"]:
        match = VERSION_RE.match(line.rstrip("\r\n"))
        if match is None:
            log.add(line_no, "version", f"unreadable version line: {shown(line.strip())}")
            return False
        builder.version = match.group(1)
        builder.size = int(match.group(2))
        return True
    if fields[0] == "Prot":
        if "Scheduler" not in fields:
            log.add(line_no, "header", "not the plain -Ln view (--stats/--rate/...?)")
            return False
        return True
    if fields[:2] == ["->", "RemoteAddress:Port"]:
        return True
    if fields[0] == "->":
        if not builder.has_service:
            log.add(line_no, "line", "real server line without a readable service above it")
            return False
        dest = _parse_dest(fields, line_no, log)
        if dest is None:
            builder.mark_unreadable(text_addrport(fields[1]) if len(fields) > 1 else None)
            return False
        builder.add_dest(dest)
        return True
    service = parse_service_key(fields, line_no, log)
    if service is None:
        builder.start(None)
        return False
    protocol, address, port, fwmark, family, rest = service
    if not rest:
        log.add(line_no, "scheduler", "service line without a scheduler")
        builder.start(None)
        return False
    flags = _parse_flags(rest[1:], family, line_no, log)
    if flags is None:
        builder.start(None)
        return False
    builder.start(ServiceEntry(protocol, address, port, fwmark, family, rest[0], flags))
    return True


ServiceKey = tuple[Protocol | None, IPAddress | None, int, int | None, Family, list[str]]


def parse_service_key(fields: list[str], line_no: int, log: IssueLog) -> ServiceKey | None:
    """``TCP  10.0.0.1:80`` / ``FWM  1 [IPv6]``; returns the key and the remaining words."""
    if len(fields) < 2:
        log.add(line_no, "line", f"service line has {len(fields)} fields, expected at least 2")
        return None
    name, key = fields[0], fields[1]
    if name == "FWM":
        fwmark = dec_int(key, 0xFFFFFFFF)
        if fwmark is None:
            log.add(line_no, "fwmark", f"expected a decimal fwmark, got {shown(key)}")
            return None
        rest = fields[2:]
        family = Family.IPV4
        if rest[:1] == ["IPv6"]:
            family = Family.IPV6
            rest = rest[1:]
        return None, None, 0, fwmark, family, rest
    if name not in SERVICE_PROTOCOLS:
        log.add(line_no, "protocol", f"unknown protocol {shown(name)}")
        return None
    addrport = text_addrport(key)
    if addrport is None:
        log.add(line_no, "address", f"expected numeric ADDR:PORT (ipvsadm -n), got {shown(key)}")
        return None
    address, port = addrport
    return Protocol[name], address, port, None, Family(address.version), fields[2:]


def _parse_flags(
    rest: list[str], family: Family, line_no: int, log: IssueLog
) -> ServiceFlags | None:
    persistent = False
    timeout: int | None = None
    netmask: int | None = None
    pe_name: str | None = None
    one_packet = False
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "ops":
            one_packet = True
            i += 1
            continue
        if i + 1 >= len(rest):
            log.add(line_no, "flags", f"flag {shown(word)} without a value")
            return None
        value = rest[i + 1]
        if word == "persistent":
            timeout = dec_int(value)
            if timeout is None:
                log.add(line_no, "persistent", f"expected seconds, got {shown(value)}")
                return None
            persistent = True
        elif word == "mask":
            netmask = _mask(value, family)
            if netmask is None:
                log.add(line_no, "mask", f"unreadable netmask {shown(value)}")
                return None
        elif word == "pe":
            pe_name = value
        else:
            log.add(line_no, "flags", f"unknown service flag {shown(word)}")
            return None
        i += 2
    if persistent and netmask is None:
        netmask = FULL_MASK[family]
    return ServiceFlags(
        persistent=persistent,
        timeout=timeout,
        timeout_unit=TimeoutUnit.SECONDS,
        netmask=netmask,
        one_packet=one_packet,
        pe_name=pe_name,
    )


def _mask(text: str, family: Family) -> int | None:
    if family is Family.IPV6:
        return dec_int(text, 128)
    try:
        return int(ipaddress.IPv4Address(text))
    except ValueError:
        return None


def _parse_dest(fields: list[str], line_no: int, log: IssueLog) -> RealServerEntry | None:
    return parse_dest_row(
        fields, line_no, log, text_addrport, "numeric ADDR:PORT (ipvsadm -n)", dec_int
    )
