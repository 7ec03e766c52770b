"""``/proc/net/ip_vs``: virtual services and real servers (``ip_vs_info_seq_show()``).

Service lines: ``TCP  0A000001:0050 rr  `` (hex address and port), IPv6
``TCP  [2001:0db8:...:0001]:0050 rr ``, fwmark ``FWM  00000001 rr ``; then
optional ``ops`` and ``persistent <jiffies> <hex netmask>``. Real servers:
``  -> 0A000002:1F90      Masq    1      0          0``.
"""

from __future__ import annotations

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    LineTracker,
    Stream,
    dec_int,
    hex_int,
    proc_addrport,
    shown,
    signed_dec_int,
)
from ipvslab.doctor.parsers._table import (
    SERVICE_PROTOCOLS,
    VERSION_RE,
    TableBuilder,
    parse_dest_row,
)
from ipvslab.doctor.records import (
    Family,
    IpvsTable,
    ParseResult,
    Protocol,
    RealServerEntry,
    ServiceEntry,
    ServiceFlags,
    TimeoutUnit,
)

SOURCE = "/proc/net/ip_vs"
SERVICE_HEADER = "Prot LocalAddress:Port Scheduler Flags"
DEST_HEADER = "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn"


def parse_proc_ip_vs(
    stream: Stream, source: str = SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[IpvsTable]:
    """Parses ``/proc/net/ip_vs``; malformed lines are reported and skipped."""
    log = IssueLog(source, max_issues=max_issues)
    lines = LineTracker()
    builder = TableBuilder(infer_fwmark_family=True)
    parsed_last = True
    for line_no, line in lines.track(stream):
        parsed_last = _parse_line(line, line_no, builder, log)
    lines.report_truncation(log, parsed_last)
    if lines.line_no == 0:
        log.add(0, "input", "empty input")
    return ParseResult(builder.table(), log.finish())


def _parse_line(line: str, line_no: int, builder: TableBuilder, log: IssueLog) -> bool:
    fields = line.split()
    if not fields:
        return True
    if fields[0] == "IP" and fields[1:3] == ["Virtual", "Server"]:
        match = VERSION_RE.match(line.rstrip("\r\n"))
        if match is None:
            log.add(line_no, "version", f"unreadable version line: {shown(line.strip())}")
            return False
        builder.version = match.group(1)
        builder.size = int(match.group(2))
        return True
    if fields[0] == "Prot" or fields[:2] == ["->", "RemoteAddress:Port"]:
        return True
    if fields[0] == "->":
        if not builder.has_service:
            log.add(line_no, "line", "real server line without a readable service above it")
            return False
        dest = _parse_dest(fields, line_no, log)
        if dest is None:
            builder.mark_unreadable(proc_addrport(fields[1]) if len(fields) > 1 else None)
            return False
        builder.add_dest(dest)
        return True
    service = _parse_service(fields, line_no, log)
    builder.start(service)
    return service is not None


def _parse_service(fields: list[str], line_no: int, log: IssueLog) -> ServiceEntry | None:
    if len(fields) < 3:
        log.add(line_no, "line", f"service line has {len(fields)} fields, expected at least 3")
        return None
    proto_name, key, scheduler = fields[0], fields[1], fields[2]
    if proto_name == "FWM":
        fwmark = hex_int(key, 8)
        if fwmark is None:
            log.add(line_no, "fwmark", f"expected 8 hex digits, got {shown(key)}")
            return None
        protocol = None
        address = None
        port = 0
        family = Family.IPV4
    elif proto_name in SERVICE_PROTOCOLS:
        addrport = proc_addrport(key)
        if addrport is None:
            log.add(line_no, "address", f"expected HEXADDR:PORT or [IPv6]:PORT, got {shown(key)}")
            return None
        address, port = addrport
        fwmark = None
        protocol = Protocol[proto_name]
        family = Family(address.version)
    else:
        log.add(line_no, "protocol", f"unknown protocol {shown(proto_name)}")
        return None
    flags = _parse_flags(fields[3:], line_no, log)
    if flags is None:
        return None
    return ServiceEntry(protocol, address, port, fwmark, family, scheduler, flags)


def _parse_flags(rest: list[str], line_no: int, log: IssueLog) -> ServiceFlags | None:
    one_packet = False
    persistent = False
    timeout: int | None = None
    netmask: int | None = None
    i = 0
    while i < len(rest):
        word = rest[i]
        if word == "ops":
            one_packet = True
            i += 1
        elif word == "persistent":
            if i + 2 >= len(rest):
                log.add(line_no, "persistent", "expected 'persistent <timeout> <netmask>'")
                return None
            timeout = dec_int(rest[i + 1])
            netmask = hex_int(rest[i + 2], 8)
            if timeout is None or netmask is None:
                log.add(
                    line_no,
                    "persistent",
                    f"expected decimal timeout and 8-hex-digit netmask, got {rest[i + 1 : i + 3]}",
                )
                return None
            persistent = True
            i += 3
        else:
            log.add(line_no, "flags", f"unknown service flag {shown(word)}")
            return None
    return ServiceFlags(
        persistent=persistent,
        timeout=timeout,
        timeout_unit=TimeoutUnit.JIFFIES,
        netmask=netmask,
        one_packet=one_packet,
    )


def _parse_dest(fields: list[str], line_no: int, log: IssueLog) -> RealServerEntry | None:
    return parse_dest_row(
        fields, line_no, log, proc_addrport, "HEXADDR:PORT or [IPv6]:PORT", signed_dec_int
    )
