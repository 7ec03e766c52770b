"""``sysctl -a`` output and the ``/proc/sys/net/ipv4/vs/<name>`` one-file-per-value layout.

``sysctl -a`` prints ``net.ipv4.vs.conn_reuse_mode = 1``; busybox and ``sysctl -e``
variants print ``key=value``. Values are kept as text (some hold several
tab-separated numbers); ``SysctlMap.get_int`` reads single integers.
"""

from __future__ import annotations

from collections.abc import Iterable

from ipvslab.doctor.parsers._common import DEFAULT_MAX_ISSUES, IssueLog, LineTracker, Stream, shown
from ipvslab.doctor.records import ParseResult, SysctlMap

SOURCE = "sysctl -a"
PROC_SYS = "/proc/sys/"
VS_PREFIX = "net.ipv4.vs."


def parse_sysctl(
    stream: Stream, source: str = SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[SysctlMap]:
    log = IssueLog(source, max_issues=max_issues)
    lines = LineTracker()
    values: dict[str, str] = {}
    seen: dict[str, int] = {}  # key -> line of its first value
    parsed = True
    for line_no, line in lines.track(stream):
        text = line.strip()
        parsed = True
        if not text or text.startswith(("#", ";")):
            continue
        if text.startswith("sysctl:"):
            log.add(line_no, "line", f"sysctl error message: {text}")
            parsed = False
            continue
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key or any(c.isspace() for c in key):
            log.add(line_no, "line", f"expected 'key = value', got {shown(text)}")
            parsed = False
            continue
        key = key.replace("/", ".")
        value = value.strip()
        first = seen.get(key)
        if first is not None and values[key] != value:
            # `sysctl -a` prints each key once; two different values (files pasted
            # together, two nodes) leave the value in force unknown.
            log.add(
                line_no,
                key,
                f"given again with another value ({shown(value)}; line {first} has"
                f" {values[key]!r}): the node's value is unknown, line {first} was used",
            )
            parsed = False
            continue
        seen.setdefault(key, line_no)
        values[key] = value
    lines.report_truncation(log, parsed)
    if lines.line_no == 0:
        log.add(0, "input", "empty input")
    return ParseResult(SysctlMap(values), log.finish())


def sysctl_key(name: str) -> str | None:
    """``conn_reuse_mode``, ``net.ipv4.vs.conn_reuse_mode`` or
    ``/proc/sys/net/ipv4/vs/conn_reuse_mode`` to the dotted key."""
    name = name.strip()
    if not name:
        return None
    if name.startswith(PROC_SYS):
        return name[len(PROC_SYS) :].strip("/").replace("/", ".") or None
    if "/" in name:
        return None
    if "." in name:
        return name
    return VS_PREFIX + name


def parse_proc_sys_vs(
    files: Iterable[tuple[str, str]],
    source: str = "/proc/sys/net/ipv4/vs",
    *,
    max_issues: int = DEFAULT_MAX_ISSUES,
) -> ParseResult[SysctlMap]:
    """(file name, file text) pairs from ``/proc/sys/net/ipv4/vs/`` to a sysctl map."""
    log = IssueLog(source, max_issues=max_issues)
    values: dict[str, str] = {}
    for index, (name, text) in enumerate(files, start=1):
        key = sysctl_key(name)
        if key is None:
            log.add(index, "name", f"not a sysctl name: {shown(name)}")
            continue
        if not text.endswith("\n") and text:
            log.add(index, key, "value has no trailing newline (truncated read?)")
        value = text.strip()
        if "\n" in value:
            log.add(index, key, "value spans several lines; kept as text")
        values[key] = value
    return ParseResult(SysctlMap(values), log.finish())
