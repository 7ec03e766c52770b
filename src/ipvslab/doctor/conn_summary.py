"""Streaming aggregation of connection entries (memory grows with groups, not entries).

Feed it any iterator of ``ConnEntry`` (``iter_proc_ip_vs_conn`` for a million-row
table), or let ``summarize_proc_ip_vs_conn`` read the text in one pass: neither
holds the entries, only counters per group:

* per (protocol, virtual service, real server, state): count, expiry range and
  how many entries were touched in the last ``RECENT_WINDOW`` seconds (their
  remaining time is within that window of the state's full timeout);
* per client address: count, entries of closed connections, recent entries;
* the same per (client address, protocol, virtual service), kept for the pairs
  holding at least ``CLIENT_SERVICE_MIN`` entries (the port-reuse question is
  about heavy clients) and tracked for at most ``CLIENT_SERVICE_LIMIT`` pairs;
* per persistence template group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple, TypeVar

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    Stream,
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
from ipvslab.doctor.records import (
    ConnEntry,
    IPAddress,
    IpvsTimeouts,
    KubeProxySettings,
    ParseIssue,
)
from ipvslab.kernel.tcp_states import (
    DEFAULT_TCP_TIMEOUTS,
    DEFAULT_UDP_TIMEOUT,
    SECOND,
    TcpState,
)

DestKey = tuple[IPAddress, int]
_K = TypeVar("_K")
# An entry counts as "recent" when a packet touched it in the last 10 seconds.
RECENT_WINDOW = 10
# (client, service) pairs: reported from this many entries on; tracked up to this many pairs.
CLIENT_SERVICE_MIN = 16
CLIENT_SERVICE_LIMIT = 200_000
# TCP states of connections that have closed (FIN or RST seen), as /proc prints them.
CLOSED_STATES = frozenset({"TIME_WAIT", "FIN_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK", "CLOSED"})


def default_state_timeouts() -> dict[tuple[str, str], int]:
    """Full timeout in seconds per (protocol, state name) with the kernel defaults."""
    out = {("TCP", s.name): ms // SECOND for s, ms in DEFAULT_TCP_TIMEOUTS.items()}
    out[("UDP", "UDP")] = DEFAULT_UDP_TIMEOUT // SECOND
    return out


def state_timeouts(
    tcp: float | None = None, tcpfin: float | None = None, udp: float | None = None
) -> dict[tuple[str, str], int]:
    """The defaults with ``ipvsadm --set tcp tcpfin udp`` applied (None or 0 keeps one).

    As ip_vs_set_timeout() does: tcp sets ESTABLISHED, tcpfin sets FIN_WAIT only.
    """
    out = default_state_timeouts()
    if tcp:
        out[("TCP", TcpState.ESTABLISHED.name)] = int(tcp)
    if tcpfin:
        out[("TCP", TcpState.FIN_WAIT.name)] = int(tcpfin)
    if udp:
        out[("UDP", "UDP")] = int(udp)
    return out


def state_timeouts_of(
    current: IpvsTimeouts | None, settings: KubeProxySettings | None
) -> dict[tuple[str, str], int]:
    """The timeouts in force: the kernel's own when ``ipvsadm -L --timeout`` showed them,
    else what kube-proxy's --ipvs-*-timeout flags set at start (#85517, v1.18), else the
    kernel defaults."""
    if current is not None:
        return state_timeouts(current.tcp, current.tcpfin, current.udp)
    if settings is None:
        return state_timeouts()
    return state_timeouts(
        settings.ipvs_tcp_timeout, settings.ipvs_tcpfin_timeout, settings.ipvs_udp_timeout
    )


class ConnGroup(NamedTuple):
    """Entries of one virtual service to one real server in one state."""

    protocol: str
    virtual_addr: IPAddress
    virtual_port: int
    dest_addr: IPAddress
    dest_port: int
    state: str


@dataclass(frozen=True, slots=True)
class GroupStats:
    count: int
    min_expires: int
    max_expires: int
    recent: int  # touched in the last RECENT_WINDOW seconds


class ClientKey(NamedTuple):
    client: IPAddress
    protocol: str
    virtual_addr: IPAddress
    virtual_port: int


@dataclass(frozen=True, slots=True)
class ClientStats:
    count: int
    closed: int  # entries of connections already closed (CLOSED_STATES)
    recent: int


class TemplateGroup(NamedTuple):
    """Persistence templates of one service (or fwmark) to one real server."""

    protocol: str
    virtual_addr: IPAddress | None
    virtual_port: int  # 0xFFFF: invalidated by ip_vs_check_template()
    fwmark: int | None
    dest_addr: IPAddress
    dest_port: int


@dataclass(frozen=True, slots=True)
class TemplateStats:
    count: int
    max_expires: int


@dataclass(frozen=True)
class DestConnSummary:
    """Connections to one real server, all services together (templates not included)."""

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
    by_protocol: dict[str, int] = field(default_factory=dict)
    groups: dict[ConnGroup, GroupStats] = field(default_factory=dict)
    client_totals: dict[IPAddress, ClientStats] = field(default_factory=dict)
    # Only pairs with at least CLIENT_SERVICE_MIN entries.
    client_services: dict[ClientKey, ClientStats] = field(default_factory=dict)
    client_services_complete: bool = True
    template_groups: dict[TemplateGroup, TemplateStats] = field(default_factory=dict)

    @cached_property
    def by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, stats in self.groups.items():
            out[key.state] = out.get(key.state, 0) + stats.count
        return out

    @cached_property
    def by_dest(self) -> dict[DestKey, DestConnSummary]:
        states: dict[DestKey, dict[str, int]] = {}
        low: dict[DestKey, int] = {}
        high: dict[DestKey, int] = {}
        for key, stats in self.groups.items():
            dkey = (key.dest_addr, key.dest_port)
            per_state = states.setdefault(dkey, {})
            per_state[key.state] = per_state.get(key.state, 0) + stats.count
            low[dkey] = min(low.get(dkey, stats.min_expires), stats.min_expires)
            high[dkey] = max(high.get(dkey, stats.max_expires), stats.max_expires)
        return {
            k: DestConnSummary(k[0], k[1], sum(v.values()), v, low[k], high[k])
            for k, v in states.items()
        }

    @cached_property
    def by_client(self) -> dict[IPAddress, int]:
        return {client: stats.count for client, stats in self.client_totals.items()}

    @cached_property
    def templates_by_dest(self) -> dict[DestKey, int]:
        out: dict[DestKey, int] = {}
        for key, stats in self.template_groups.items():
            dkey = (key.dest_addr, key.dest_port)
            out[dkey] = out.get(dkey, 0) + stats.count
        return out

    def top_clients(self, n: int = 10) -> list[tuple[IPAddress, int]]:
        return sorted(self.by_client.items(), key=lambda kv: (-kv[1], str(kv[0])))[:n]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConnSummary):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in _COMPARED)

    __hash__ = None  # type: ignore[assignment]


_COMPARED = (
    "total",
    "templates",
    "invalidated_templates",
    "by_protocol",
    "groups",
    "client_totals",
    "client_services",
    "client_services_complete",
    "template_groups",
)


class ConnAggregator:
    """Counts entries as they stream past (see the module docstring for the groups)."""

    def __init__(self, timeouts: Mapping[tuple[str, str], int] | None = None) -> None:
        self.timeouts = timeouts or default_state_timeouts()
        self.total = 0
        self.templates = 0
        self.invalidated = 0
        self.by_protocol: dict[str, int] = {}
        self.groups: dict[ConnGroup, list[int]] = {}
        self.client_totals: dict[IPAddress, list[int]] = {}
        self.client_services: dict[ClientKey, list[int]] = {}
        self.client_services_complete = True
        self.template_groups: dict[TemplateGroup, list[int]] = {}

    def recent_floor(self, protocol: str, state: str) -> int:
        """Smallest remaining time that still counts as touched in the last window."""
        full = self.timeouts.get((protocol, state))
        return EXPIRES_LIMIT if full is None else full - RECENT_WINDOW

    def add_all(self, entries: Iterable[ConnEntry]) -> ConnAggregator:
        for e in entries:
            self.add(e)
        return self

    def add(self, e: ConnEntry) -> None:
        name = e.protocol_name
        self.total += 1
        self.by_protocol[name] = self.by_protocol.get(name, 0) + 1
        if e.client_port == 0 or e.virtual_addr is None:
            self._add_template(e)
            return
        expires = e.expires
        recent = expires >= self.recent_floor(name, e.state)
        closed = e.state in CLOSED_STATES
        gkey = ConnGroup(name, e.virtual_addr, e.virtual_port, e.dest_addr, e.dest_port, e.state)
        self.add_group(gkey, 1, expires, expires, int(recent))
        self.add_client(e.client_addr, 1, int(closed), int(recent))
        ckey = ClientKey(e.client_addr, name, e.virtual_addr, e.virtual_port)
        self.add_client_service(ckey, 1, int(closed), int(recent))

    def add_group(self, key: ConnGroup, count: int, low: int, high: int, recent: int) -> None:
        stats = self.groups.get(key)
        if stats is None:
            self.groups[key] = [count, low, high, recent]
        else:
            stats[0] += count
            stats[1] = min(stats[1], low)
            stats[2] = max(stats[2], high)
            stats[3] += recent

    def add_client(self, client: IPAddress, count: int, closed: int, recent: int) -> None:
        _add3(self.client_totals, client, count, closed, recent)

    def add_client_service(self, key: ClientKey, count: int, closed: int, recent: int) -> None:
        if key in self.client_services or len(self.client_services) < CLIENT_SERVICE_LIMIT:
            _add3(self.client_services, key, count, closed, recent)
        else:
            self.client_services_complete = False

    def _add_template(self, e: ConnEntry) -> None:
        self.templates += 1
        if e.virtual_port == 0xFFFF:
            self.invalidated += 1
        key = TemplateGroup(
            e.protocol_name, e.virtual_addr, e.virtual_port, e.fwmark, e.dest_addr, e.dest_port
        )
        stats = self.template_groups.get(key)
        if stats is None:
            self.template_groups[key] = [1, e.expires]
        else:
            stats[0] += 1
            stats[1] = max(stats[1], e.expires)

    def summary(self) -> ConnSummary:
        return ConnSummary(
            total=self.total,
            templates=self.templates,
            invalidated_templates=self.invalidated,
            by_protocol=dict(self.by_protocol),
            groups={k: GroupStats(*v) for k, v in self.groups.items()},
            client_totals={k: ClientStats(*v) for k, v in self.client_totals.items()},
            client_services={
                k: ClientStats(*v)
                for k, v in self.client_services.items()
                if v[0] >= CLIENT_SERVICE_MIN
            },
            client_services_complete=self.client_services_complete,
            template_groups={k: TemplateStats(*v) for k, v in self.template_groups.items()},
        )


def _add3(table: dict[_K, list[int]], key: _K, count: int, closed: int, recent: int) -> None:
    stats = table.get(key)
    if stats is None:
        table[key] = [count, closed, recent]
    else:
        stats[0] += count
        stats[1] += closed
        stats[2] += recent


def summarize_conns(
    entries: Iterable[ConnEntry], timeouts: Mapping[tuple[str, str], int] | None = None
) -> ConnSummary:
    return ConnAggregator(timeouts).add_all(entries).summary()


def summarize_proc_ip_vs_conn(
    stream: Stream,
    source: str = SOURCE,
    issues: list[ParseIssue] | None = None,
    *,
    max_issues: int = DEFAULT_MAX_ISSUES,
    timeouts: Mapping[tuple[str, str], int] | None = None,
) -> ConnSummary:
    """Parses and aggregates ``/proc/net/ip_vs_conn`` in one pass, without building entries.

    Same rows accepted and same issues as ``iter_proc_ip_vs_conn``, and the same
    summary as ``summarize_conns`` over them. Counts are keyed on the printed text
    while streaming (string hashes are cached, address objects' are not) and
    turned into addresses at the end.
    """
    log = IssueLog(source, issues, max_issues)
    out = ConnAggregator(timeouts)
    floors: dict[tuple[str, str], int] = {}
    cache: dict[str, IPAddress] = {}

    def learn(text: str, cache: dict[str, IPAddress]) -> IPAddress | None:
        # A new address is parsed once, then found in the cache. Unbounded, unlike the
        # iterating parser's: the per-client counts hold as many keys anyway.
        addr = proc_address(text)
        if addr is not None:
            cache[text] = addr
        return addr

    ports = hex_ports()
    protocols = FAST_PROTOCOLS
    limit = EXPIRES_LIMIT
    # (protocol, vaddr, vport, daddr, dport, state) texts -> [count, min, max, recent, floor]
    groups: dict[tuple[str, str, str, str, str, str], list[int]] = {}
    # client text -> [count, closed, recent]
    clients: dict[str, list[int]] = {}
    # (client, protocol, vaddr, vport) texts -> [count, closed, recent]
    services: dict[tuple[str, str, str, str], list[int]] = {}
    services_limit = CLIENT_SERVICE_LIMIT
    closed_states = CLOSED_STATES
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
                name = fields[0]
                protocols[name]
                client = fields[1]
                if client not in cache and learn(client, cache) is None:
                    raise KeyError(client)
                cport = ports[fields[2]]
                vaddr = fields[3]
                if vaddr not in cache and learn(vaddr, cache) is None:
                    raise KeyError(vaddr)
                ports[fields[4]]
                dest = fields[5]
                if dest not in cache and learn(dest, cache) is None:
                    raise KeyError(dest)
                ports[fields[6]]
                expires = int(fields[8])
            except (KeyError, ValueError):
                pass
            else:
                if cport and 0 <= expires < limit:
                    parsed = True
                    state = fields[7]
                    key = (name, vaddr, fields[4], dest, fields[6], state)
                    group = groups.get(key)
                    if group is None:
                        floor = floors.get((name, state))
                        if floor is None:
                            floor = floors[(name, state)] = out.recent_floor(name, state)
                        recent = expires >= floor
                        groups[key] = [1, expires, expires, int(recent), floor]
                    else:
                        recent = expires >= group[4]
                        group[0] += 1
                        if expires < group[1]:
                            group[1] = expires
                        elif expires > group[2]:
                            group[2] = expires
                        group[3] += recent
                    closed = state in closed_states
                    cstats = clients.get(client)
                    if cstats is None:
                        clients[client] = [1, int(closed), int(recent)]
                    else:
                        cstats[0] += 1
                        cstats[1] += closed
                        cstats[2] += recent
                    skey = (client, name, vaddr, fields[4])
                    sstats = services.get(skey)
                    if sstats is not None:
                        sstats[0] += 1
                        sstats[1] += closed
                        sstats[2] += recent
                    elif len(services) < services_limit:
                        services[skey] = [1, int(closed), int(recent)]
                    else:
                        out.client_services_complete = False
                    continue
        if line_no == 1:
            first_had_newline = line.endswith("\n")
        entry = parse_conn_fields(fields, line, line_no, False, cache, log)
        parsed = entry is not None
        if entry is None or entry is SKIP:
            continue
        out.add(entry)
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

    port_of = hex_ports()
    for (name, v, vp, d, dp, state), (count, low, high, n_recent, _) in groups.items():
        out.total += count
        out.by_protocol[name] = out.by_protocol.get(name, 0) + count
        gkey = ConnGroup(name, addr(v), port_of[vp], addr(d), port_of[dp], state)
        out.add_group(gkey, count, low, high, n_recent)
    for c, (count, n_closed, n_recent) in clients.items():
        out.add_client(addr(c), count, n_closed, n_recent)
    known = out.client_services
    for (c, name, v, vp), (count, n_closed, n_recent) in services.items():
        if count < CLIENT_SERVICE_MIN and not known:
            continue
        ckey = ClientKey(addr(c), name, addr(v), port_of[vp])
        # Below the reporting floor a pair matters only if the careful path saw it too.
        if count >= CLIENT_SERVICE_MIN or ckey in known:
            out.add_client_service(ckey, count, n_closed, n_recent)
    return out.summary()
