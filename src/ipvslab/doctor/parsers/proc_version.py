"""``/proc/version`` and Ubuntu's ``/proc/version_signature``: the stable version a
distro kernel is built from, which its ``uname -r`` hides.

Debian names its kernels after the ABI (``4.19.0-25-amd64``) and prints the real
stable version after the build number in ``/proc/version`` (``#1 SMP Debian
4.19.289-2 (2023-08-08)``); Ubuntu prints it in ``/proc/version_signature``
(``Ubuntu 5.4.0-150.167-generic 5.4.233``, cloud kernels alike:
``Ubuntu 5.4.0-1103.111-aws 5.4.231``).
"""

from __future__ import annotations

import re
from typing import Any

from ipvslab.doctor.parsers._common import Stream, lines_of, shown
from ipvslab.doctor.parsers.kernel_release import RELEASE_RE
from ipvslab.doctor.records import ParseIssue, ParseResult, ProcVersion, VersionSignature

PROC_VERSION_SOURCE = "/proc/version"
SIGNATURE_SOURCE = "/proc/version_signature"

# After the build number ("#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)"): the
# compiler's "(Debian 8.3.0-6)" earlier on the line must not be taken for it.
_DEBIAN_TAG = re.compile(r"#\d+\S*(?: [A-Z_]+)* Debian (\d{1,3})\.(\d{1,3})\.(\d{1,4})\b", re.ASCII)
_SIGNATURE = re.compile(
    r"(?P<distro>[A-Za-z][\w.-]*) (?P<package>(?P<base>\d+\.\d+\.\d+)-(?P<abi>\d+)\.\d+"
    r"(?P<flavour>-[\w.+-]+)?) (?P<major>\d{1,3})\.(?P<minor>\d{1,3})\.(?P<sub>\d{1,4})"
    r"(?:[-+]\S*)?",
    re.ASCII,
)


def _first_line(stream: Stream, source: str) -> tuple[int, str] | ParseIssue:
    """The first non-empty line (stripped) with its number, or the issue of an empty input."""
    for line_no, line in enumerate(lines_of(stream), 1):
        if line.strip():
            return line_no, line.strip()
    return ParseIssue(source, 0, "input", "empty input")


def _rejected(source: str, line_no: int, field: str, expected: str, text: str) -> ParseResult[Any]:
    return ParseResult(
        None, (ParseIssue(source, line_no, field, f"expected {expected}, got {shown(text)}"),)
    )


def parse_proc_version(
    stream: Stream, source: str = PROC_VERSION_SOURCE
) -> ParseResult[ProcVersion | None]:
    """``Linux version RELEASE (...) #N ...``; the Debian stable version when tagged."""
    first = _first_line(stream, source)
    if isinstance(first, ParseIssue):
        return ParseResult(None, (first,))
    line_no, text = first
    words = text.split()
    if words[:2] != ["Linux", "version"] or len(words) < 3 or not RELEASE_RE.fullmatch(words[2]):
        return _rejected(source, line_no, "version", "'Linux version RELEASE ...'", text)
    release = words[2]
    tag = _DEBIAN_TAG.search(text)
    if tag is None:
        return ParseResult(ProcVersion(release))
    upstream = (int(tag.group(1)), int(tag.group(2)), int(tag.group(3)))
    release_series = RELEASE_RE.fullmatch(release)
    assert release_series is not None
    if (int(release_series.group(1)), int(release_series.group(2))) != upstream[:2]:
        # A backports kernel names its own series; a tag of another series is not its version.
        return ParseResult(ProcVersion(release))
    return ParseResult(ProcVersion(release, upstream, "Debian"))


def parse_version_signature(
    stream: Stream, source: str = SIGNATURE_SOURCE
) -> ParseResult[VersionSignature | None]:
    """``Ubuntu 5.4.0-150.167-generic 5.4.233`` -> release ``5.4.0-150-generic``, 5.4.233."""
    first = _first_line(stream, source)
    if isinstance(first, ParseIssue):
        return ParseResult(None, (first,))
    line_no, text = first
    match = _SIGNATURE.fullmatch(text)
    if match is None:
        expected = "like 'Ubuntu 5.4.0-150.167-generic 5.4.233'"
        return _rejected(source, line_no, "signature", expected, text)
    release = f"{match['base']}-{match['abi']}{match['flavour'] or ''}"
    upstream = (int(match["major"]), int(match["minor"]), int(match["sub"]))
    return ParseResult(VersionSignature(match["distro"], match["package"], release, upstream))
