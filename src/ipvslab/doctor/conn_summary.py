"""Streaming aggregation of connection entries (constant memory per distinct key).

Feed it any iterator of ``ConnEntry`` (``iter_proc_ip_vs_conn`` for a million-row
table): it never holds the entries, only counters per destination, state and
client address.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    Stream,
    format_proc_address,
    hex_ports,
    lines_of,
    proc_address,
)
from ipvslab.doctor.parsers.proc_ip_vs_conn import (
    EXPIRES_LIMIT,
    FAST_PROTOCOLS,
    SKIP,
    SOURCE,
    parse_conn_fields,
)
from ipvslab.doctor.records import ConnEntry, IPAddress, ParseIssue

DestKey = tuple[IPAddress, int]


@dataclass(frozen=True)
class DestConnSummary:
    """Connections to one real server (templates not included)."""

    address: IPAddress
    port: int
    total: int
    by_state: dict[str, int]
    min_expires: int
    max_expires: int


@dataclass(frozen=True)
class ConnSummary:
    total: int
    templates: int
    invalidated_templates: int
    by_state: dict[str, int] = field(default_factory=dict)
    by_protocol: dict[str, int] = field(default_factory=dict)
    by_dest: dict[DestKey, DestConnSummary] = field(default_factory=dict)
    by_client: dict[IPAddress, int] = field(default_factory=dict)
    templates_by_dest: dict[DestKey, int] = field(default_factory=dict)

    def top_clients(self, n: int = 10) -> list[tuple[IPAddress, int]]:
        return sorted(self.by_client.items(), key=lambda kv: (-kv[1], str(kv[0])))[:n]


class ConnAggregator:
    """Counts per (dest, state), per client address, and expiry range per dest."""

    def __init__(self) -> None:
        self.total = 0
        self.templates = 0
        self.invalidated = 0
        self.dest_state: dict[tuple[IPAddress, int, str], int] = {}
        self.by_protocol: dict[str, int] = {}
        self.by_client: dict[IPAddress, int] = {}
        self.min_expires: dict[DestKey, int] = {}
        self.max_expires: dict[DestKey, int] = {}
        self.templates_by_dest: dict[DestKey, int] = {}

    def add_all(self, entries: Iterable[ConnEntry]) -> ConnAggregator:
        dest_state = self.dest_state
        by_client = self.by_client
        by_protocol = self.by_protocol
        min_exp = self.min_expires
        max_exp = self.max_expires
        total = 0
        for e in entries:
            total += 1
            by_protocol[e.protocol_name] = by_protocol.get(e.protocol_name, 0) + 1
            if e.client_port == 0:
                self._add_template(e)
                continue
            daddr = e.dest_addr
            dport = e.dest_port
            key = (daddr, dport, e.state)
            dest_state[key] = dest_state.get(key, 0) + 1
            client = e.client_addr
            by_client[client] = by_client.get(client, 0) + 1
            dkey = (daddr, dport)
            expires = e.expires
            low = min_exp.get(dkey)
            if low is None:
                min_exp[dkey] = max_exp[dkey] = expires
            elif expires < low:
                min_exp[dkey] = expires
            elif expires > max_exp[dkey]:
                max_exp[dkey] = expires
        self.total += total
        return self

    def add(self, entry: ConnEntry) -> None:
        self.add_all((entry,))

    def _add_template(self, e: ConnEntry) -> None:
        self.templates += 1
        if e.virtual_port == 0xFFFF:
            self.invalidated += 1
        dkey = (e.dest_addr, e.dest_port)
        self.templates_by_dest[dkey] = self.templates_by_dest.get(dkey, 0) + 1

    def summary(self) -> ConnSummary:
        by_state: dict[str, int] = {}
        states: dict[DestKey, dict[str, int]] = {}
        for (addr, port, state), count in self.dest_state.items():
            by_state[state] = by_state.get(state, 0) + count
            states.setdefault((addr, port), {})[state] = count
        by_dest = {
            key: DestConnSummary(
                key[0],
                key[1],
                sum(per_state.values()),
                per_state,
                self.min_expires[key],
                self.max_expires[key],
            )
            for key, per_state in states.items()
        }
        return ConnSummary(
            total=self.total,
            templates=self.templates,
            invalidated_templates=self.invalidated,
            by_state=by_state,
            by_protocol=dict(self.by_protocol),
            by_dest=by_dest,
            by_client=dict(self.by_client),
            templates_by_dest=dict(self.templates_by_dest),
        )


def summarize_conns(entries: Iterable[ConnEntry]) -> ConnSummary:
    return ConnAggregator().add_all(entries).summary()


def summarize_proc_ip_vs_conn(
    stream: Stream,
    source: str = SOURCE,
    issues: list[ParseIssue] | None = None,
    *,
    max_issues: int = DEFAULT_MAX_ISSUES,
) -> ConnSummary:
    """Parses and aggregates ``/proc/net/ip_vs_conn`` in one pass, without building entries.

    Same rows accepted and same issues as ``iter_proc_ip_vs_conn``; counts are keyed
    on the printed text while streaming (string hashes are cached, address objects'
    are not) and turned into addresses at the end.
    """
    log = IssueLog(source, issues, max_issues)
    cache: dict[str, IPAddress] = {}
    ports = hex_ports()
    protocols = FAST_PROTOCOLS
    limit = EXPIRES_LIMIT
    # (dest text, dest port text, state, protocol) -> [count, min expires, max expires]
    groups: dict[tuple[str, str, str, str], list[int]] = {}
    by_client: defaultdict[str, int] = defaultdict(int)
    templates = ConnAggregator()
    line_no = 0
    line = ""
    first_had_newline = False
    parsed = True
    for line in lines_of(stream):
        line_no += 1
        fields = line.split()
        if len(fields) == 9:
            # Every lookup validates its field (KeyError -> careful path) and leaves
            # the string's hash cached for the keys below.
            try:
                protocols[fields[0]]
                client = fields[1]
                cache[client]
                cport = ports[fields[2]]
                cache[fields[3]]
                ports[fields[4]]
                cache[fields[5]]
                ports[fields[6]]
                expires = int(fields[8])
            except (KeyError, ValueError):
                pass
            else:
                if cport and 0 <= expires < limit:
                    parsed = True
                    key = (fields[5], fields[6], fields[7], fields[0])
                    group = groups.get(key)
                    if group is None:
                        groups[key] = [1, expires, expires]
                    else:
                        group[0] += 1
                        if expires < group[1]:
                            group[1] = expires
                        elif expires > group[2]:
                            group[2] = expires
                    by_client[client] += 1
                    continue
        if line_no == 1:
            first_had_newline = line.endswith("\n")
        entry = parse_conn_fields(fields, line, line_no, False, cache, log)
        parsed = entry is not None
        if entry is None or entry is SKIP:
            continue
        if entry.client_port == 0:
            templates.total += 1
            templates.by_protocol[entry.protocol_name] = (
                templates.by_protocol.get(entry.protocol_name, 0) + 1
            )
            templates._add_template(entry)
            continue
        key = (
            format_proc_address(entry.dest_addr),
            f"{entry.dest_port:04X}",
            entry.state,
            entry.protocol_name,
        )
        expires = entry.expires
        group = groups.setdefault(key, [0, expires, expires])
        group[0] += 1
        group[1] = min(group[1], expires)
        group[2] = max(group[2], expires)
        by_client[format_proc_address(entry.client_addr)] += 1
    if line_no == 0:
        log.add(0, "input", "empty input")
    elif first_had_newline and line_no > 1 and not line.endswith("\n"):
        note = "kept, but it may be incomplete" if parsed else "skipped"
        log.add(line_no, "line", f"input ends without a newline: truncated last line {note}")
    log.finish()

    def addr(text: str) -> IPAddress:
        found = cache.get(text) or proc_address(text)
        assert found is not None  # every key was validated on the way in
        return found

    out = templates
    for (d, p, state, proto), (count, low, high) in groups.items():
        out.total += count
        out.by_protocol[proto] = out.by_protocol.get(proto, 0) + count
        dkey = (addr(d), int(p, 16))
        skey = (dkey[0], dkey[1], state)
        out.dest_state[skey] = out.dest_state.get(skey, 0) + count
        out.min_expires[dkey] = min(out.min_expires.get(dkey, low), low)
        out.max_expires[dkey] = max(out.max_expires.get(dkey, high), high)
    for c, count in by_client.items():
        a = addr(c)
        out.by_client[a] = out.by_client.get(a, 0) + count
    return out.summary()
