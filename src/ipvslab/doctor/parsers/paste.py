"""Ticket-shaped pastes: several command outputs in one text, split into one text each.

What a user pastes into a ticket: ``uname -r``, ``ipvsadm -Ln``, ``ipvsadm -Lnc`` and
``sysctl -a`` one after the other, with or without the shell prompts
(``[root@node-1 ~]# ipvsadm -Ln``, ``$ sudo sysctl -a``), indented by the ticket
system, with CRLF line ends. ``split_paste`` cuts such a text where one output ends:

* at a prompt or a bare command line (the line itself is dropped);
* at a line that opens an output (``IP Virtual Server version``, ``IPVS connection
  entries``, ``Pro FromIP``, ``Timeout (tcp tcpfin udp)``, ``Linux version``);
* around a lone kernel release (``5.4.0-150-generic``, what ``uname -r`` prints);
* where ``key = value`` sysctl lines follow other output.

Each part is dedented (common leading blanks removed). Pure: text in, parts out.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

from ipvslab.doctor.parsers.kernel_release import RELEASE_RE

_PROMPT = re.compile(
    r"^\s*(?:\[[^\]\n]{1,80}\]\s?[#$]|[\w.@:~/-]{0,80}[#$%>])\s*(?:sudo\s+)?(?P<cmd>\S.*)$"
)
# Commands whose output a ticket shows. `kube-proxy` only with --version: a kube-proxy
# command line (`kube-proxy --proxy-mode=ipvs ...`) is itself an input, not a prompt.
_COMMAND = re.compile(
    r"^(?:sudo\s+)?(?:(?:uname|ipvsadm|sysctl|cat|kubectl|crictl|docker|lsmod|head|tail|ps|pgrep"
    r"|grep|nsenter)(?:\s|$)|\S*kube-proxy\s+--version\b)"
)
_OPENERS = (
    "IP Virtual Server version",
    "IPVS connection entries",
    "Pro FromIP",
    "Timeout (tcp tcpfin udp)",
    "Linux version ",
)
# How rows of the big tables start (ip_vs_conn, ipvsadm -Ln / -Lnc): never a split point.
_ROWS = ("TCP ", "UDP ", "SCTP ", "FWM ", "-> ", "TCP\t", "UDP\t", "->\t")
_SYSCTL = re.compile(r"^[a-z0-9_\-]+(?:\.[A-Za-z0-9_\-@:]+)+\s*=", re.ASCII)


@dataclass(frozen=True)
class PastePart:
    first_line: int  # 1-based line of the whole text where the part starts
    text: str


_BARE_PROMPT = re.compile(r"^\s*(?:\[[^\]\n]{1,80}\]\s?[#$]|[\w.@:~/-]{1,80}[#$])\s*$")


def _is_command(line: str) -> bool:
    stripped = line.strip()
    if _COMMAND.match(stripped) or _BARE_PROMPT.match(line):
        return True
    prompt = _PROMPT.match(line)
    return prompt is not None and bool(_COMMAND.match(prompt["cmd"]))


def split_paste(text: str) -> list[PastePart]:
    """The outputs in ``text``, in order; one part when nothing splits it. Linear time."""
    parts: list[PastePart] = []
    lines: list[str] = []
    start = 1
    has_content = False  # the current part has a non-blank line
    sysctl_part = False  # ... and its first one is a sysctl assignment

    def close(next_start: int) -> None:
        nonlocal lines, start, has_content, sysctl_part
        if has_content:
            parts.append(PastePart(start, textwrap.dedent("".join(lines))))
        lines, start, has_content, sysctl_part = [], next_start, False, False

    for line_no, line in enumerate(text.splitlines(keepends=True), 1):
        stripped = line.strip()
        if has_content and stripped.startswith(_ROWS):  # the bulk of a table: no split here
            lines.append(line)
            continue
        if stripped and _is_command(line):
            close(line_no + 1)
            continue
        lone_release = RELEASE_RE.fullmatch(stripped) is not None
        opens = stripped.startswith(_OPENERS) or lone_release
        is_sysctl = _SYSCTL.match(stripped) is not None
        if has_content and (opens or (is_sysctl and not sysctl_part)):
            close(line_no)
        if not lines:
            start = line_no
        lines.append(line)
        if stripped and not has_content:
            has_content, sysctl_part = True, is_sysctl
        if lone_release:
            close(line_no + 1)
    close(0)
    return parts
