"""``ipvsadm -Ln --stats`` (ipvsadm 1.26 ``print_title()`` / ``print_largenum()``).

::

    IP Virtual Server version 1.2.1 (size=4096)
    Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes
      -> RemoteAddress:Port
    TCP  10.96.0.1:443                     12     3400     3100   123456K   98765M
      -> 192.168.1.10:6443                 12     3400     3100   123456K   98765M

Each counter is ``%9llu`` below 10^8, else ``%8llu`` of the value divided by
10^3/10^6/10^9/10^12 followed by ``K``/``M``/``G``/``T``; such values are read back as
the lower bound and the row is marked ``approximate``. ``--exact`` prints plain
numbers, which read back exactly.
"""

from __future__ import annotations

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    LineTracker,
    Stream,
    dec_int,
    shown,
    text_addrport,
)
from ipvslab.doctor.parsers._table import VERSION_RE
from ipvslab.doctor.parsers.ipvsadm_list import parse_service_key
from ipvslab.doctor.records import (
    DestStats,
    IpvsStatsTable,
    ParseResult,
    ServiceStats,
    StatsCounters,
)

SOURCE = "ipvsadm -Ln --stats"
COLUMNS = ("Conns", "InPkts", "OutPkts", "InBytes", "OutBytes")
SUFFIX_SCALE = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_ipvsadm_stats(
    stream: Stream, source: str = SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[IpvsStatsTable]:
    log = IssueLog(source, max_issues=max_issues)
    lines = LineTracker()
    version: str | None = None
    size: int | None = None
    services: list[ServiceStats] = []
    current: ServiceStats | None = None
    dests: list[DestStats] = []
    have_service = False
    parsed = True

    def close() -> None:
        nonlocal current, dests
        if current is not None:
            services.append(
                ServiceStats(
                    current.protocol,
                    current.address,
                    current.port,
                    current.fwmark,
                    current.family,
                    current.counters,
                    tuple(dests),
                )
            )
        current = None
        dests = []

    for line_no, line in lines.track(stream):
        fields = line.split()
        parsed = True
        if not fields:
            continue
        if fields[:3] == ["IP", "Virtual", "Server"]:
            match = VERSION_RE.match(line.rstrip("\r\n"))
            if match is None:
                log.add(line_no, "version", f"unreadable version line: {shown(line.strip())}")
                parsed = False
            else:
                version, size = match.group(1), int(match.group(2))
            continue
        if fields[0] == "Prot":
            if "Conns" not in fields:
                log.add(line_no, "header", "not the --stats view")
                parsed = False
            continue
        if fields == ["->", "RemoteAddress:Port"]:
            continue
        if fields[0] == "->":
            if not have_service:
                log.add(line_no, "line", "real server line without a readable service above it")
                parsed = False
                continue
            if len(fields) != 7:
                log.add(line_no, "line", f"real server line has {len(fields)} fields, expected 7")
                parsed = False
                continue
            addrport = text_addrport(fields[1])
            counters = _counters(fields[2:], line_no, log)
            if addrport is None:
                log.add(line_no, "address", f"expected numeric ADDR:PORT, got {shown(fields[1])}")
            if addrport is None or counters is None:
                parsed = False
                continue
            dests.append(DestStats(addrport[0], addrport[1], counters))
            continue
        close()
        have_service = False
        key = parse_service_key(fields, line_no, log)
        if key is None:
            parsed = False
            continue
        protocol, address, port, fwmark, family, rest = key
        if len(rest) != 5:
            log.add(line_no, "line", f"expected 5 counters after the service, got {len(rest)}")
            parsed = False
            continue
        counters = _counters(rest, line_no, log)
        if counters is None:
            parsed = False
            continue
        current = ServiceStats(protocol, address, port, fwmark, family, counters)
        have_service = True
    close()
    lines.report_truncation(log, parsed)
    if lines.line_no == 0:
        log.add(0, "input", "empty input")
    return ParseResult(IpvsStatsTable(version, size, tuple(services)), log.finish())


def parse_largenum(text: str) -> tuple[int, bool] | None:
    """``print_largenum()`` text to (lower-bound value, approximate)."""
    scale = SUFFIX_SCALE.get(text[-1:])
    if scale is not None:
        value = dec_int(text[:-1])
        return None if value is None else (value * scale, True)
    value = dec_int(text)
    return None if value is None else (value, False)


def _counters(words: list[str], line_no: int, log: IssueLog) -> StatsCounters | None:
    values: list[int] = []
    approximate = False
    for column, word in zip(COLUMNS, words, strict=True):
        parsed = parse_largenum(word)
        if parsed is None:
            log.add(line_no, column, f"expected a number with optional K/M/G/T, got {shown(word)}")
            return None
        values.append(parsed[0])
        approximate = approximate or parsed[1]
    conns, in_packets, out_packets, in_bytes, out_bytes = values
    return StatsCounters(conns, in_packets, out_packets, in_bytes, out_bytes, approximate)
