"""``ipvsadm -L --timeout`` (ipvsadm 1.26 ``print_timeout()``).

::

    Timeout (tcp tcpfin udp): 900 120 300

The three values are seconds, as ``ipvsadm --set`` takes them. This is the only
place the kernel's current timeouts show: /proc has none of them.
"""

from __future__ import annotations

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    LineTracker,
    Stream,
    dec_int,
)
from ipvslab.doctor.records import IpvsTimeouts, ParseResult

SOURCE = "ipvsadm -L --timeout"
PREFIX = "Timeout (tcp tcpfin udp):"


def parse_ipvsadm_timeout(
    stream: Stream, source: str = SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[IpvsTimeouts | None]:
    log = IssueLog(source, max_issues=max_issues)
    lines = LineTracker()
    found: IpvsTimeouts | None = None
    for line_no, line in lines.track(stream):
        text = line.strip()
        if not text:
            continue
        if not text.startswith(PREFIX):
            log.add(line_no, "line", f"expected '{PREFIX} TCP TCPFIN UDP', got {text[:60]!r}")
            continue
        words = text[len(PREFIX) :].split()
        values = [dec_int(w) for w in words]
        if len(words) != 3 or any(v is None for v in values):
            log.add(line_no, "timeouts", f"expected three whole seconds, got {' '.join(words)!r}")
            continue
        if found is not None:
            log.add(line_no, "line", "a second timeout line; the first one is used")
            continue
        tcp, tcpfin, udp = (v for v in values if v is not None)
        found = IpvsTimeouts(tcp, tcpfin, udp)
    if lines.line_no == 0:
        log.add(0, "input", "empty input")
    elif found is None and not log.issues:
        log.add(0, "input", "no timeout line found")
    return ParseResult(found, log.finish())
