"""Helpers shared by the parsers: issue collection, line numbering, address fields."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Iterator
from functools import cache

from ipvslab.doctor.records import IPAddress, ParseIssue

Stream = Iterable[str]
"""A text stream: an open text file, a list of lines, or a whole ``str``."""

DEFAULT_MAX_ISSUES = 1000
# No input text is echoed beyond this many characters (a 1 MB line stays one short issue).
ECHO_LIMIT = 80
MESSAGE_LIMIT = 300


def clip(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, the rest counted."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


def shown(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters with the rest counted."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text) - limit} more characters)"


def lines_of(stream: Stream) -> Iterator[str]:
    """Lines of a stream; a plain ``str`` is split into lines (keeping newlines)."""
    if isinstance(stream, str):
        return iter(stream.splitlines(keepends=True))
    return iter(stream)


class IssueLog:
    """Collects issues for one source, keeping at most ``max_issues`` (constant memory)."""

    __slots__ = ("issues", "max_issues", "source", "suppressed")

    def __init__(
        self,
        source: str,
        sink: list[ParseIssue] | None = None,
        max_issues: int = DEFAULT_MAX_ISSUES,
    ) -> None:
        self.source = source
        self.issues: list[ParseIssue] = [] if sink is None else sink
        self.max_issues = max_issues
        self.suppressed = 0

    def add(self, line_no: int, field: str, message: str) -> None:
        if len(self.issues) >= self.max_issues:
            self.suppressed += 1
            return
        # However a parser quotes the input, no issue echoes more than MESSAGE_LIMIT.
        self.issues.append(ParseIssue(self.source, line_no, field, clip(message, MESSAGE_LIMIT)))

    def finish(self) -> tuple[ParseIssue, ...]:
        """Adds a summary of suppressed issues (once) and returns all issues."""
        if self.suppressed:
            self.issues.append(
                ParseIssue(self.source, 0, "input", f"{self.suppressed} more issues not shown")
            )
            self.suppressed = 0
        return tuple(self.issues)


class LineTracker:
    """Numbers lines and notices a truncated last line.

    Only the last line of a file can lack its newline; a stream whose first line
    had one but whose last line has none was cut off. (Lists from
    ``str.splitlines()`` have no newlines at all and are never flagged.)
    """

    __slots__ = ("first_had_newline", "last", "line_no")

    def __init__(self) -> None:
        self.line_no = 0
        self.first_had_newline = False
        self.last = ""

    def track(self, stream: Stream) -> Iterator[tuple[int, str]]:
        for line in lines_of(stream):
            self.line_no += 1
            if self.line_no == 1:
                self.first_had_newline = line.endswith("\n")
            self.last = line
            yield self.line_no, line

    def is_truncated(self, line: str) -> bool:
        return self.first_had_newline and self.line_no > 1 and not line.endswith("\n")

    def report_truncation(self, log: IssueLog, parsed: bool) -> None:
        """Called after the loop: reports the last line if it lacks its newline."""
        if self.is_truncated(self.last):
            note = "kept, but it may be incomplete" if parsed else "skipped"
            log.add(
                self.line_no, "line", f"input ends without a newline: truncated last line {note}"
            )


def is_hex(text: str, length: int) -> bool:
    # ASCII alphanumerics without a non-hex letter: no sign, prefix, underscore or
    # non-ASCII digit can slip through to int(text, 16).
    return (
        len(text) == length
        and text.isascii()
        and text.isalnum()
        and not text.strip("0123456789ABCDEFabcdef")
    )


def hex_int(text: str, length: int) -> int | None:
    """A fixed-width hex field (``%04X``, ``%08X``), or None."""
    if not is_hex(text, length):
        return None
    return int(text, 16)


def hex_word(text: str) -> int | None:
    """A variable-width hex number (``%8LX``), or None."""
    if not text or len(text) > 16 or not is_hex(text, len(text)):
        return None
    return int(text, 16)


@cache
def hex_ports() -> dict[str, int]:
    """Every ``%04X`` string to its port: a dict lookup both parses and validates."""
    return {f"{i:04X}": i for i in range(65536)}


def proc_address(text: str) -> IPAddress | None:
    """An address as the kernel prints it: ``%08X`` IPv4 or ``%pI6`` full-form IPv6."""
    if len(text) == 8:
        if not is_hex(text, 8):
            return None
        return ipaddress.IPv4Address(int(text, 16))
    if ":" in text and "." not in text and "%" not in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError:
            return None
    return None


def proc_addrport(text: str) -> tuple[IPAddress, int] | None:
    """``0A000001:0050`` or ``[2001:0db8:...:0001]:0050``."""
    if text.startswith("["):
        end = text.find("]:")
        if end < 0:
            return None
        addr = proc_address(text[1:end])
        if addr is None or addr.version != 6:
            return None
        port = hex_int(text[end + 2 :], 4)
    else:
        head, sep, tail = text.partition(":")
        if not sep or len(head) != 8:
            return None
        addr = proc_address(head)
        port = hex_int(tail, 4)
    if addr is None or port is None:
        return None
    return addr, port


def dec_int(text: str, maximum: int | None = None) -> int | None:
    """A non-negative decimal number made of ASCII digits, or None."""
    if not text or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    if maximum is not None and value > maximum:
        return None
    return value


def signed_dec_int(text: str) -> int | None:
    if text.startswith("-"):
        value = dec_int(text[1:])
        return None if value is None else -value
    return dec_int(text)


def text_address(text: str) -> IPAddress | None:
    """A dotted IPv4 or compressed IPv6 address (``inet_ntop`` form)."""
    if not text or "%" in text or not text.isascii():
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def text_addrport(text: str) -> tuple[IPAddress, int] | None:
    """``10.0.0.1:80`` or ``[2001:db8::1]:80`` (ipvsadm numeric form)."""
    if text.startswith("["):
        end = text.find("]:")
        if end < 0:
            return None
        addr = text_address(text[1:end])
        if addr is None or addr.version != 6:
            return None
        port = dec_int(text[end + 2 :], 65535)
    else:
        head, sep, tail = text.rpartition(":")
        if not sep:
            return None
        addr = text_address(head)
        if addr is None or addr.version != 4:
            return None
        port = dec_int(tail, 65535)
    if port is None:
        return None
    return addr, port


def format_proc_address(addr: IPAddress) -> str:
    """The kernel's ``%08X`` / ``%pI6`` text for an address."""
    if addr.version == 4:
        return f"{int(addr):08X}"
    return addr.exploded


def format_text_addrport(addr: IPAddress, port: int) -> str:
    """ipvsadm's ``%s%s%s:%u`` numeric form."""
    if addr.version == 6:
        return f"[{addr.compressed}]:{port}"
    return f"{addr}:{port}"
