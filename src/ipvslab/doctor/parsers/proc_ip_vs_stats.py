"""``/proc/net/ip_vs_stats``: global totals and rates, all in hex (``%8LX ... %16LX``).

::

       Total Incoming Outgoing         Incoming         Outgoing
       Conns  Packets  Packets            Bytes            Bytes
         1F       3C        0             1A2B                0

     Conns/s   Pkts/s   Pkts/s          Bytes/s          Bytes/s
           0        0        0                0                0
"""

from __future__ import annotations

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    LineTracker,
    Stream,
    hex_word,
    shown,
)
from ipvslab.doctor.records import GlobalStats, ParseResult, StatsCounters

SOURCE = "/proc/net/ip_vs_stats"
HEADER_WORDS = frozenset({"Total", "Conns", "Conns/s"})


def parse_proc_ip_vs_stats(
    stream: Stream, source: str = SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[GlobalStats | None]:
    """The totals row and the rates row; ``None`` if the totals row is missing."""
    log = IssueLog(source, max_issues=max_issues)
    lines = LineTracker()
    rows: list[StatsCounters] = []
    parsed = True
    for line_no, line in lines.track(stream):
        fields = line.split()
        parsed = True
        if not fields or fields[0] in HEADER_WORDS:
            continue
        values = [hex_word(f) for f in fields]
        if len(fields) != 5 or any(v is None for v in values):
            log.add(line_no, "line", f"expected 5 hex counters, got {shown(line.strip())}")
            parsed = False
            continue
        if len(rows) == 2:
            log.add(line_no, "line", "more than two counter rows")
            parsed = False
            continue
        c, ip, op, ib, ob = (v for v in values if v is not None)
        rows.append(StatsCounters(c, ip, op, ib, ob))
    lines.report_truncation(log, parsed)
    if lines.line_no == 0:
        log.add(0, "input", "empty input")
        return ParseResult(None, log.finish())
    if not rows:
        log.add(0, "input", "no counter rows")
        return ParseResult(None, log.finish())
    if len(rows) == 1:
        log.add(0, "input", "rates row missing; rates set to 0")
        rows.append(StatsCounters(0, 0, 0, 0, 0))
    return ParseResult(GlobalStats(rows[0], rows[1]), log.finish())
