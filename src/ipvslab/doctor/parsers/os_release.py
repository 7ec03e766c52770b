"""``/etc/os-release`` (``KEY=value`` lines, values optionally quoted, shell escapes)."""

from __future__ import annotations

from ipvslab.doctor.parsers._common import DEFAULT_MAX_ISSUES, IssueLog, LineTracker, Stream, shown
from ipvslab.doctor.records import OsRelease, ParseResult

SOURCE = "/etc/os-release"


def parse_os_release(
    stream: Stream, source: str = SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[OsRelease]:
    log = IssueLog(source, max_issues=max_issues)
    lines = LineTracker()
    fields: dict[str, str] = {}
    parsed = True
    for line_no, line in lines.track(stream):
        text = line.strip()
        parsed = True
        if not text or text.startswith("#"):
            continue
        key, sep, raw = text.partition("=")
        if not sep or not key or not (key.replace("_", "").isalnum() and key.isascii()):
            log.add(line_no, "line", f"expected KEY=value, got {shown(text)}")
            parsed = False
            continue
        value = unquote(raw)
        if value is None:
            log.add(line_no, key, f"unbalanced quotes in {shown(raw)}")
            parsed = False
            continue
        fields[key] = value
    lines.report_truncation(log, parsed)
    if lines.line_no == 0:
        log.add(0, "input", "empty input")
    return ParseResult(
        OsRelease(
            id=fields.get("ID"),
            id_like=tuple(fields.get("ID_LIKE", "").split()),
            name=fields.get("NAME"),
            version_id=fields.get("VERSION_ID"),
            version_codename=fields.get("VERSION_CODENAME"),
            pretty_name=fields.get("PRETTY_NAME"),
            fields=fields,
        ),
        log.finish(),
    )


def unquote(raw: str) -> str | None:
    """A shell-style value: ``"..."`` (backslash escapes ``\\ " $ ` ``), ``'...'`` or bare."""
    if not raw:
        return ""
    quote = raw[0]
    if quote not in "\"'":
        return raw
    if len(raw) < 2 or raw[-1] != quote:
        return None
    inner = raw[1:-1]
    if quote == "'":
        return inner
    out: list[str] = []
    i = 0
    while i < len(inner):
        c = inner[i]
        if c == "\\" and i + 1 < len(inner) and inner[i + 1] in '\\"$`':
            out.append(inner[i + 1])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)
