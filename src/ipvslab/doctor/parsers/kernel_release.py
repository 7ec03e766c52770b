"""A kernel release (``uname -r``, or the ``Linux version ...`` line of /proc/version).

Only split here: ``major.minor[.patch]`` and the local suffix; mapping a release
to IPVS behaviour is the kernel presets' job.
"""

from __future__ import annotations

import re

from ipvslab.doctor.parsers._common import Stream, lines_of
from ipvslab.doctor.records import KernelRelease, ParseIssue, ParseResult

SOURCE = "uname -r"
RELEASE_RE = re.compile(r"(\d{1,4})\.(\d{1,4})(?:\.(\d{1,6}))?(\S*)", re.ASCII)


def parse_kernel_release(stream: Stream, source: str = SOURCE) -> ParseResult[KernelRelease | None]:
    """The first non-empty line: ``5.15.0-91-generic`` -> 5, 15, 0, ``-91-generic``."""
    line_no = 0
    for line in lines_of(stream):
        line_no += 1
        text = line.strip()
        if not text:
            continue
        words = text.split()
        if words[:2] == ["Linux", "version"] and len(words) > 2:
            text = words[2]
        elif len(words) != 1:
            return ParseResult(None, (ParseIssue(source, line_no, "release", _bad(text)),))
        match = RELEASE_RE.fullmatch(text)
        if match is None:
            return ParseResult(None, (ParseIssue(source, line_no, "release", _bad(text)),))
        major, minor, patch, local = match.groups()
        release = KernelRelease(text, int(major), int(minor), int(patch or 0), local)
        return ParseResult(release)
    return ParseResult(None, (ParseIssue(source, 0, "input", "empty input"),))


def _bad(text: str) -> str:
    return f"expected a release like 5.15.0-91-generic, got {text[:80]!r}"
