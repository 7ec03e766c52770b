"""kube-proxy: its command line, its config file (KubeProxyConfiguration) and its version.

* Command line: ``/proc/<pid>/cmdline`` (NUL-separated) or a space-separated line
  as ``ps`` shows it. Flags follow pflag: ``--name=value``, ``--name value`` for
  non-boolean flags, ``--name`` alone for booleans.
* Config: YAML read with a safe loader that refuses aliases (``*name``: a dozen lines
  of nested aliases expand to gigabytes, and kube-proxy configs never need them) and
  at most ``CONFIG_LIMIT`` characters; a multi-document file or the kubeadm
  ``kube-proxy`` ConfigMap (``data: config.conf: |``) is searched for the
  ``KubeProxyConfiguration`` document.
* Version: ``Kubernetes v1.22.3`` (``kube-proxy --version``), ``v1.28.2-eks-a5df82a``.

Durations (``30s``, ``1m0s``, ``300ms``) are returned in seconds.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

import yaml

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    Stream,
    clip,
    lines_of,
    shown,
)
from ipvslab.doctor.records import (
    KubeProxyCommandLine,
    KubeProxySettings,
    KubeProxyVersion,
    ParseIssue,
    ParseResult,
)

CMDLINE_SOURCE = "/proc/<pid>/cmdline"
CONFIG_SOURCE = "kube-proxy config"
VERSION_SOURCE = "kube-proxy --version"
KIND = "KubeProxyConfiguration"
# A kube-proxy config (or its ConfigMap) is a few KiB.
CONFIG_LIMIT = 1 << 20


class _NoAliasLoader(yaml.SafeLoader):
    """PyYAML's safe loader without aliases: each ``*name`` is refused where it stands."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(
                None,
                None,
                "YAML aliases (*name) are not accepted in a kube-proxy config",
                event.start_mark,
            )
        return super().compose_node(parent, index)


# kube-proxy flags that take no separate value (pflag booleans).
BOOL_FLAGS = frozenset(
    {
        "masquerade-all",
        "ipvs-strict-arp",
        "cleanup",
        "cleanup-ipvs",
        "init-only",
        "profiling",
        "bind-address-hard-fail",
        "alsologtostderr",
        "logtostderr",
        "add-dir-header",
        "add_dir_header",
        "one-output",
        "skip-headers",
        "skip-log-headers",
        "version",
        "help",
        "h",
        "iptables-localhost-nodeports",
        "conntrack-tcp-be-liberal",
        "detect-local-mode-bridge",
    }
)
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)", re.ASCII)
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
VERSION_RE = re.compile(r"\bv?(\d{1,4})\.(\d{1,4})\.(\d{1,6})([-+][0-9A-Za-z.+_-]*)?", re.ASCII)


def parse_go_duration(text: str) -> float | None:
    """A Go ``time.Duration`` string (``1m30s``, ``300ms``, ``0``) in seconds, or None."""
    text = text.strip()
    if not text:
        return None
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    total = 0.0
    pos = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or pos == 0:
        return None
    return sign * total


def parse_go_bool(text: str) -> bool | None:
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


def split_cmdline(text: str) -> tuple[list[str], str | None]:
    """argv from NUL-separated or shell-style text; second item is a problem, if any."""
    if "\0" in text:
        return [a for a in text.split("\0") if a], None
    flat = _join_continued_lines(text)
    try:
        return shlex.split(flat), None
    except ValueError as exc:
        return flat.split(), f"could not split like a shell ({exc}); split on spaces"


def _join_continued_lines(text: str) -> str:
    """Drops shell line continuations (backslash-newline), except inside single quotes,
    where a shell keeps them as they are."""
    out: list[str] = []
    in_single = False
    i = 0
    while i < len(text):
        c = text[i]
        if in_single:
            in_single = c != "'"
        elif c == "'":
            in_single = True
        elif c == "\\":
            rest = text[i + 1 : i + 3]
            if rest.startswith("\n") or rest == "\r\n":
                i += 2 if rest.startswith("\n") else 3
                continue
            out.append(text[i : i + 2])
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


def parse_kube_proxy_cmdline(
    stream: Stream, source: str = CMDLINE_SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[KubeProxyCommandLine]:
    log = IssueLog(source, max_issues=max_issues)
    text = "".join(lines_of(stream))
    argv, problem = split_cmdline(text)
    if problem:
        log.add(1, "cmdline", problem)
    if not argv:
        log.add(0, "input", "empty input")
    flags: dict[str, str] = {}
    i = 1 if argv and not argv[0].startswith("-") else 0
    program = argv[0].rsplit("/", 1)[-1] if argv else ""
    if i == 1 and program == "hyperkube" and len(argv) > 1 and argv[1] in ("kube-proxy", "proxy"):
        # hyperkube images (before v1.17) run kube-proxy as `hyperkube kube-proxy|proxy`.
        i = 2
    elif argv and i == 1 and "kube-proxy" not in program:
        log.add(1, "argv[0]", f"program is {shown(argv[0])}, not kube-proxy")
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg in ("-", "--"):
            log.add(1, "argument", f"unexpected positional argument {shown(arg)}")
            continue
        name, sep, value = arg.lstrip("-").partition("=")
        if not name:
            log.add(1, "argument", f"unreadable flag {shown(arg)}")
            continue
        if not sep:
            if name in BOOL_FLAGS:
                value = "true"
            elif i < len(argv) and not argv[i].startswith("-"):
                value = argv[i]
                i += 1
            else:
                log.add(1, name, "flag without a value")
                continue
        flags[name] = value
    settings = _settings_from_flags(flags, log)
    return ParseResult(KubeProxyCommandLine(tuple(argv), flags, settings), log.finish())


def _settings_from_flags(flags: Mapping[str, str], log: IssueLog) -> KubeProxySettings:
    def duration(name: str) -> float | None:
        text = flags.get(name)
        if text is None:
            return None
        value = parse_go_duration(text)
        if value is None:
            log.add(1, name, f"not a duration: {shown(text)}")
        return value

    def boolean(name: str) -> bool | None:
        text = flags.get(name)
        if text is None:
            return None
        value = parse_go_bool(text)
        if value is None:
            log.add(1, name, f"not a boolean: {shown(text)}")
        return value

    exclude = flags.get("ipvs-exclude-cidrs")
    return KubeProxySettings(
        mode=flags.get("proxy-mode"),
        ipvs_scheduler=flags.get("ipvs-scheduler"),
        ipvs_sync_period=duration("ipvs-sync-period"),
        ipvs_min_sync_period=duration("ipvs-min-sync-period"),
        ipvs_tcp_timeout=duration("ipvs-tcp-timeout"),
        ipvs_tcpfin_timeout=duration("ipvs-tcpfin-timeout"),
        ipvs_udp_timeout=duration("ipvs-udp-timeout"),
        ipvs_strict_arp=boolean("ipvs-strict-arp"),
        ipvs_exclude_cidrs=None
        if exclude is None
        else tuple(c.strip() for c in exclude.split(",") if c.strip()),
        masquerade_all=boolean("masquerade-all"),
        cluster_cidr=flags.get("cluster-cidr"),
        config_file=flags.get("config"),
    )


def parse_kube_proxy_config(
    stream: Stream, source: str = CONFIG_SOURCE, *, max_issues: int = DEFAULT_MAX_ISSUES
) -> ParseResult[KubeProxySettings | None]:
    """The KubeProxyConfiguration in a YAML stream (plain, multi-document or ConfigMap)."""
    log = IssueLog(source, max_issues=max_issues)
    parts: list[str] = []
    size = 0
    for line in lines_of(stream):
        size += len(line)
        if size > CONFIG_LIMIT:
            log.add(0, "input", f"larger than {CONFIG_LIMIT >> 20} MiB: not a kube-proxy config")
            return ParseResult(None, log.finish())
        parts.append(line)
    text = "".join(parts)
    if not text.strip():
        log.add(0, "input", "empty input")
        return ParseResult(None, log.finish())
    config = _find_config(text, log, depth=0)
    if config is None:
        if not log.issues:
            log.add(0, "kind", f"no {KIND} document found")
        return ParseResult(None, log.finish())
    return ParseResult(_settings_from_config(config, log), log.finish())


def _find_config(text: str, log: IssueLog, depth: int) -> dict[str, Any] | None:
    try:
        documents = list(yaml.load_all(text, Loader=_NoAliasLoader))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line_no = mark.line + 1 if mark is not None else 0
        problem = getattr(exc, "problem", None)
        message = problem if isinstance(problem, str) else str(exc).splitlines()[0]
        log.add(line_no, "yaml", message[:200] if message else "invalid YAML")
        return None
    except (ValueError, RecursionError, TypeError) as exc:  # pathological input
        log.add(0, "yaml", f"unreadable YAML: {type(exc).__name__}")
        return None
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        if doc.get("kind") == KIND:
            return doc
        data = doc.get("data")
        if depth == 0 and doc.get("kind") == "ConfigMap" and isinstance(data, dict):
            for value in data.values():
                if isinstance(value, str) and KIND in value:
                    found = _find_config(value, log, depth + 1)
                    if found is not None:
                        return found
    # A config without kind (hand-written) still has the telltale keys.
    for doc in documents:
        if isinstance(doc, dict) and "kind" not in doc and ("mode" in doc or "ipvs" in doc):
            return doc
    return None


def _settings_from_config(config: Mapping[str, Any], log: IssueLog) -> KubeProxySettings:
    ipvs = config.get("ipvs")
    if ipvs is None:
        ipvs = {}
    if not isinstance(ipvs, dict):
        log.add(0, "ipvs", "the ipvs section is not a mapping")
        ipvs = {}
    iptables = config.get("iptables")
    if not isinstance(iptables, dict):
        iptables = {}

    def text(value: Any, name: str) -> str | None:
        if value is None or value == "":
            return None if value is None else ""
        if isinstance(value, str):
            return value
        log.add(0, name, f"expected a string, got {clip(repr(value))}")
        return None

    def duration(key: str) -> float | None:
        value = ipvs.get(key)
        if value is None:
            return None
        parsed = parse_go_duration(value) if isinstance(value, str) else None
        if parsed is None:
            log.add(0, f"ipvs.{key}", f"not a duration: {clip(repr(value))}")
        return parsed

    def boolean(value: Any, name: str) -> bool | None:
        if value is None or isinstance(value, bool):
            return value
        log.add(0, name, f"expected true/false, got {clip(repr(value))}")
        return None

    exclude = ipvs.get("excludeCIDRs")
    cidrs: tuple[str, ...] | None = None
    if isinstance(exclude, list):
        cidrs = tuple(str(c) for c in exclude)
    elif exclude is not None:
        log.add(0, "ipvs.excludeCIDRs", "expected a list")
    masquerade = config.get("masqueradeAll", iptables.get("masqueradeAll"))
    return KubeProxySettings(
        mode=text(config.get("mode"), "mode"),
        ipvs_scheduler=text(ipvs.get("scheduler"), "ipvs.scheduler"),
        ipvs_sync_period=duration("syncPeriod"),
        ipvs_min_sync_period=duration("minSyncPeriod"),
        ipvs_tcp_timeout=duration("tcpTimeout"),
        ipvs_tcpfin_timeout=duration("tcpFinTimeout"),
        ipvs_udp_timeout=duration("udpTimeout"),
        ipvs_strict_arp=boolean(ipvs.get("strictARP"), "ipvs.strictARP"),
        ipvs_exclude_cidrs=cidrs,
        masquerade_all=boolean(masquerade, "masqueradeAll"),
        cluster_cidr=text(config.get("clusterCIDR"), "clusterCIDR"),
    )


def parse_kube_proxy_version(
    stream: Stream, source: str = VERSION_SOURCE
) -> ParseResult[KubeProxyVersion | None]:
    """The first ``vX.Y.Z[-suffix]`` found (``Kubernetes v1.22.3``, image tags too)."""
    line_no = 0
    for line in lines_of(stream):
        line_no += 1
        match = VERSION_RE.search(line)
        if match is None:
            continue
        major, minor, patch, suffix = match.groups()
        version = KubeProxyVersion(match.group(0), int(major), int(minor), int(patch), suffix or "")
        return ParseResult(version)
    issue = ParseIssue(source, 0, "version", "no version like v1.28.2 found")
    return ParseResult(None, (issue,))
