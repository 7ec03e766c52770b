"""Streaming aggregation of connection entries (memory grows with the IPVS table, not
with entries or clients).

Feed it any iterator of ``ConnEntry`` (``iter_ipvsadm_conn``), or let
``summarize_proc_ip_vs_conn`` read ``/proc/net/ip_vs_conn`` chunk by chunk: neither
holds the entries, only counters (``conn_columns`` counts them with polars):

* per (protocol, virtual service, real server, state): count, expiry range and
  how many entries were touched in the last ``RECENT_WINDOW`` seconds (their
  remaining time is within that window of the state's full timeout), exact;
* per persistence template group, exact;
* per client address: count, entries of closed connections, recent entries, for
  the ``TOP_CLIENTS`` busiest, with an error bound;
* the same per (client address, protocol, virtual service) for the
  ``TOP_CLIENT_SERVICES`` busiest pairs, reported from ``CLIENT_SERVICE_MIN``
  entries on (the port-reuse question is about heavy clients).
"""

from __future__ import annotations

import io
import ipaddress
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from ipvslab.doctor.parsers._common import (
    DEFAULT_MAX_ISSUES,
    IssueLog,
    Stream,
    format_proc_address,
)
from ipvslab.doctor.parsers.proc_ip_vs_conn import SKIP, SOURCE, parse_conn_fields
from ipvslab.doctor.records import (
    ConnEntry,
    IPAddress,
    IpvsTimeouts,
    KubeProxySettings,
    ParseIssue,
    Protocol,
)
from ipvslab.kernel.tcp_states import (
    DEFAULT_TCP_TIMEOUTS,
    DEFAULT_UDP_TIMEOUT,
    SECOND,
    TcpState,
)

if TYPE_CHECKING:
    import polars as pl

    from ipvslab.doctor.conn_columns import ConnCounts

DestKey = tuple[IPAddress, int]
# An entry counts as "recent" when a packet touched it in the last 10 seconds.
RECENT_WINDOW = 10
# (client, service) pairs are reported from this many entries on.
CLIENT_SERVICE_MIN = 16
# Clients the per-client top-K sketch keeps (``ConnSummary.busiest_clients``).
TOP_CLIENTS = 10_000
# (client, service) pairs the top-K sketch keeps (``conn_columns.TopK``): the bound
# the output states.
TOP_CLIENT_SERVICES = 10_000
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


# States a fresh connection passes through before ESTABLISHED (tcp_states[]): an entry
# in one of them that a packet touched in the last RECENT_WINDOW seconds is a new
# connection being opened.
OPENING_STATES = frozenset({"SYN_RECV", "SYN_SENT", "SYNACK"})
EntryKey = tuple[str, IPAddress, int, IPAddress, int]  # (protocol, VIP, port) + real server


@dataclass(frozen=True)
class DestEntries:
    """Connection entries (templates not included) of one service to one real server."""

    by_state: dict[str, int]
    recent_by_state: dict[str, int]
    min_expires: int
    max_expires: int
    longest_state: str  # the state of the longest-lived entry

    @property
    def total(self) -> int:
        return sum(self.by_state.values())

    @property
    def recent(self) -> int:
        return sum(self.recent_by_state.values())

    @property
    def opening_recent(self) -> int:
        """Connections being opened on the server right now (a SYN in the last seconds)."""
        return sum(n for s, n in self.recent_by_state.items() if s in OPENING_STATES)

    @property
    def closed_recent(self) -> int:
        """Connections that closed (FIN/RST seen) in the last seconds."""
        return sum(n for s, n in self.recent_by_state.items() if s in CLOSED_STATES)

    @property
    def live(self) -> int:
        """Entries of connections not closed yet (UDP entries count as live)."""
        return sum(n for s, n in self.by_state.items() if s not in CLOSED_STATES)


@dataclass
class _EntriesBuilder:
    by_state: dict[str, int] = field(default_factory=dict)
    recent_by_state: dict[str, int] = field(default_factory=dict)
    low: int | None = None
    high: int | None = None
    longest_state: str = ""

    def add(self, state: str, count: int, low: int, high: int, recent: int) -> None:
        self.by_state[state] = self.by_state.get(state, 0) + count
        if recent:
            self.recent_by_state[state] = self.recent_by_state.get(state, 0) + recent
        self.low = low if self.low is None else min(self.low, low)
        if self.high is None or high > self.high:
            self.high = high
            self.longest_state = state

    def build(self) -> DestEntries:
        return DestEntries(
            self.by_state,
            self.recent_by_state,
            self.low or 0,
            self.high or 0,
            self.longest_state,
        )


@dataclass(frozen=True)
class ConnSummary:
    """Counters of a connection table: exact per group, bounded per client.

    ``busiest_clients`` and ``client_services`` come from top-K sketches (at most
    ``TOP_CLIENTS`` clients and ``TOP_CLIENT_SERVICES`` pairs, ``conn_columns``): each
    count is exact when its ``client_error`` / ``client_service_error`` is 0, else a
    lower bound low by at most that much, and a client or pair not listed holds at most
    that many entries.
    """

    total: int
    templates: int
    invalidated_templates: int
    by_protocol: dict[str, int] = field(default_factory=dict)
    groups: dict[ConnGroup, GroupStats] = field(default_factory=dict)
    busiest_clients: dict[IPAddress, ClientStats] = field(default_factory=dict)
    client_error: int = 0
    # Only pairs with at least CLIENT_SERVICE_MIN entries.
    client_services: dict[ClientKey, ClientStats] = field(default_factory=dict)
    client_service_error: int = 0
    template_groups: dict[TemplateGroup, TemplateStats] = field(default_factory=dict)

    @property
    def client_services_complete(self) -> bool:
        """Whether every (client, service) pair with CLIENT_SERVICE_MIN+ entries is listed."""
        return self.client_service_error == 0

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
    def by_service_dest(self) -> dict[EntryKey, DestEntries]:
        """The groups per (service, real server), states together (built once: the
        checks and the report each look entries up this way)."""
        builders: dict[EntryKey, _EntriesBuilder] = {}
        for g, stats in self.groups.items():
            key = (g.protocol, g.virtual_addr, g.virtual_port, g.dest_addr, g.dest_port)
            builder = builders.get(key)
            if builder is None:
                builder = builders[key] = _EntriesBuilder()
            builder.add(g.state, stats.count, stats.min_expires, stats.max_expires, stats.recent)
        return {k: b.build() for k, b in builders.items()}

    @cached_property
    def templates_by_dest(self) -> dict[DestKey, int]:
        out: dict[DestKey, int] = {}
        for key, stats in self.template_groups.items():
            dkey = (key.dest_addr, key.dest_port)
            out[dkey] = out.get(dkey, 0) + stats.count
        return out

    def top_clients(self, n: int = 10) -> list[tuple[IPAddress, int]]:
        """The ``n`` clients holding the most entries (from the sketch; see the class)."""
        counts = ((client, stats.count) for client, stats in self.busiest_clients.items())
        return sorted(counts, key=lambda kv: (-kv[1], str(kv[0])))[:n]

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
    "busiest_clients",
    "client_error",
    "client_services",
    "client_service_error",
    "template_groups",
)


class ConnAggregator:
    """Counts entries as they stream past, in batches of columns (``conn_columns``).

    Each entry becomes one row in the ``/proc`` spelling; every ``BATCH`` rows the
    batch goes to the columnar counter, so memory holds one batch and the counters.
    """

    BATCH = 1 << 16

    def __init__(self, timeouts: Mapping[tuple[str, str], int] | None = None) -> None:
        from ipvslab.doctor.conn_columns import ROW_SCHEMA, ConnCounter

        self.counter = ConnCounter(timeouts or default_state_timeouts())
        self.columns: dict[str, list[Any]] = {name: [] for name in ROW_SCHEMA}
        self.pending = 0

    def add_all(self, entries: Iterable[ConnEntry]) -> ConnAggregator:
        for e in entries:
            self.add(e)
        return self

    def add(self, e: ConnEntry) -> None:
        c = self.columns
        c["proto"].append(e.protocol_name)
        c["client"].append(format_proc_address(e.client_addr))
        c["template"].append(e.client_port == 0 or e.virtual_addr is None)
        c["vaddr"].append(_proc_virtual(e))
        c["vport"].append(f"{e.virtual_port:04X}")
        c["daddr"].append(format_proc_address(e.dest_addr))
        c["dport"].append(f"{e.dest_port:04X}")
        c["state"].append(e.state)
        c["expires"].append(e.expires)
        self.pending += 1
        if self.pending >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            from ipvslab.doctor.conn_columns import rows_frame

            self.counter.add(rows_frame(self.columns))
            for values in self.columns.values():
                values.clear()
            self.pending = 0

    def summary(self) -> ConnSummary:
        self.flush()
        return _summary(self.counter.finish())


def _proc_virtual(e: ConnEntry) -> str:
    """ToIP as /proc prints it: the VIP, or an fwmark template's mark."""
    if e.virtual_addr is not None:
        return format_proc_address(e.virtual_addr)
    mark = e.fwmark or 0
    if e.client_addr.version == 6:
        return ipaddress.IPv6Address(mark << 96).exploded
    return f"{mark:08X}"


def _summary(counts: ConnCounts) -> ConnSummary:
    """The counters with their /proc text keys turned into addresses and ports."""
    from ipvslab.doctor.conn_columns import proc_address_of

    addresses: dict[str, IPAddress] = {}

    def addr(text: str) -> IPAddress:
        found = addresses.get(text)
        if found is None:
            found = addresses[text] = proc_address_of(text)
        return found

    by_protocol: dict[str, int] = {}
    groups: dict[ConnGroup, GroupStats] = {}
    for (proto, vaddr, vport_hex, daddr, dport, state), stats in counts.groups.items():
        by_protocol[proto] = by_protocol.get(proto, 0) + stats[0]
        port = int(vport_hex, 16)
        key = ConnGroup(proto, addr(vaddr), port, addr(daddr), int(dport, 16), state)
        groups[key] = GroupStats(*stats)
    templates: dict[TemplateGroup, TemplateStats] = {}
    invalidated = 0
    for (proto, vaddr, vport_text, daddr, dport), (n, high) in counts.templates.items():
        by_protocol[proto] = by_protocol.get(proto, 0) + n
        vport = int(vport_text, 16)
        if vport == 0xFFFF:
            invalidated += n
        if proto == Protocol.IP.name:
            # An fwmark template: ToIP holds the mark (IPv6: in its first 32 bits).
            mark = int(vaddr, 16) if len(vaddr) == 8 else int(addr(vaddr)) >> 96
            tkey = TemplateGroup(proto, None, vport, mark, addr(daddr), int(dport, 16))
        else:
            tkey = TemplateGroup(proto, addr(vaddr), vport, None, addr(daddr), int(dport, 16))
        templates[tkey] = TemplateStats(n, high)
    pairs = {
        ClientKey(addr(client), proto, addr(vaddr), int(vport, 16)): ClientStats(n, closed, recent)
        for client, proto, vaddr, vport, n, closed, recent in counts.client_services
        if n >= CLIENT_SERVICE_MIN
    }
    return ConnSummary(
        total=sum(by_protocol.values()),
        templates=sum(t.count for t in templates.values()),
        invalidated_templates=invalidated,
        by_protocol=by_protocol,
        groups=groups,
        busiest_clients={
            addr(client): ClientStats(n, closed, recent)
            for client, n, closed, recent in counts.clients
        },
        client_error=counts.client_error,
        client_services=pairs,
        client_service_error=counts.client_service_error,
        template_groups=templates,
    )


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
    """Parses and counts ``/proc/net/ip_vs_conn`` chunk by chunk, without building entries.

    Same rows accepted and same issues as ``iter_proc_ip_vs_conn``, and the same
    summary as ``summarize_conns`` over them. polars slices the well-formed rows of
    each chunk (``conn_columns.PROC_ROW``); every other line goes through the
    careful parser, which reports what it cannot read with its line number.
    """
    log = IssueLog(source, issues, max_issues)
    careful = ConnAggregator(timeouts)
    cache: dict[str, IPAddress] = {}
    line_no = 0
    first_had_newline = False
    last_ends = True  # whether the last line read ends with a newline
    parsed = True  # whether the last line read was understood

    def careful_line(line: str, no: int) -> bool:
        entry = parse_conn_fields(line.split(), line, no, False, cache, log)
        if entry is not None and entry is not SKIP:
            careful.add(entry)
        return entry is not None

    for chunk, split in _split_ahead(_chunks(stream)):
        if split is None:
            text = chunk if isinstance(chunk, str) else chunk.decode("utf-8", "replace")
            if isinstance(stream, str):
                lines: Iterable[str] = text.splitlines(True)
            elif hasattr(stream, "read"):
                lines = io.StringIO(text, newline="")
            else:
                lines = (text,)  # an item of a list of lines
            for line in lines:
                line_no += 1
                if line_no == 1:
                    first_had_newline = line.endswith("\n")
                parsed = careful_line(line, line_no)
                last_ends = line.endswith("\n")
            continue
        assert isinstance(chunk, bytes)
        height, rows, rest = split
        careful.counter.add(rows)
        if line_no == 0:
            first_had_newline = b"\n" in chunk
        last = line_no + height
        last_ends = chunk.endswith(b"\n")
        parsed = True
        for no_in_chunk, text in rest:
            no = line_no + no_in_chunk
            ok = careful_line((text or "") + ("\n" if no < last or last_ends else ""), no)
            if no == last:
                parsed = ok
        line_no = last
    if line_no == 0:
        log.add(0, "input", "empty input")
    elif first_had_newline and line_no > 1 and not last_ends:
        note = "kept, but it may be incomplete" if parsed else "skipped"
        log.add(line_no, "line", f"input ends without a newline: truncated last line {note}")
    log.finish()
    return careful.summary()


# A chunk as polars split it: its line count, its well-formed rows
# (``conn_columns.split_proc_rows``) and ``(line number in the chunk, text)`` of the rest.
Split = tuple[int, "pl.DataFrame", list[Any]]


def _split_chunk(chunk: bytes | str) -> Split | None:
    """What polars makes of ``chunk``, or None when the careful parser reads it alone."""
    from ipvslab.doctor.conn_columns import read_lines, split_proc_rows

    # polars would drop a byte-order mark and split at a lone \r: the careful parser
    # reads such chunks as a text file does.
    if not isinstance(chunk, bytes) or b"\r" in chunk or chunk.startswith(BOM):
        return None
    frame = read_lines(chunk)
    if frame is None:
        return None
    rows, rest = split_proc_rows(frame, 1)
    return frame.height, rows, rest


def _split_ahead(chunks: Iterator[bytes | str]) -> Iterator[tuple[bytes | str, Split | None]]:
    """Each chunk with ``_split_chunk``'s result, in order; the next chunk is split in a
    thread while the caller counts this one (polars lets go of the GIL, so on two
    cores splitting and counting overlap; one chunk more is held meanwhile)."""
    from concurrent.futures import Future, ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead: tuple[bytes | str, Future[Split | None]] | None = None
        for chunk in chunks:
            job = (chunk, pool.submit(_split_chunk, chunk))
            if ahead is not None:
                yield ahead[0], ahead[1].result()
            ahead = job
        if ahead is not None:
            yield ahead[0], ahead[1].result()


BOM = "\ufeff".encode()
# Bytes per chunk of /proc/net/ip_vs_conn (about 60,000 rows): memory holds one.
CHUNK_BYTES = 1 << 22
# Characters str.splitlines() ends a line at but a text stream does not.
_OTHER_LINE_ENDS = ("\v", "\f", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029")


def _chunks(stream: Stream) -> Iterator[bytes | str]:
    """``stream`` in pieces that end at a line end (the last one may not).

    ``bytes`` when polars may split it (UTF-8, lines ending in \\n); ``str`` for
    the careful parser alone. A whole ``str`` is split as ``str.splitlines()`` does,
    a list as its items: those stay with the careful parser when that differs.
    """
    if isinstance(stream, str):
        if any(c in stream for c in _OTHER_LINE_ENDS):
            yield stream
        else:
            yield from _text_chunks(io.StringIO(stream, newline=""))
        return
    raw = _binary(stream)
    if raw is not None:
        rest = b""
        while block := raw.read(CHUNK_BYTES):
            block = rest + block
            cut = block.rfind(b"\n") + 1
            if cut:
                yield block[:cut]
            rest = block[cut:]
        if rest:
            yield rest
        return
    if isinstance(stream, io.TextIOBase):
        yield from _text_chunks(stream)
        return
    yield from stream  # a list of lines: each item is one line


def _text_chunks(stream: IO[str] | io.TextIOBase) -> Iterator[bytes | str]:
    rest = ""
    while block := stream.read(CHUNK_BYTES):
        block = rest + block
        cut = block.rfind("\n") + 1
        if cut:
            yield _encoded(block[:cut])
        rest = block[cut:]
    if rest:
        yield _encoded(rest)


def _encoded(text: str) -> bytes | str:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: the careful parser reads them as they are
        return text


def _binary(stream: Iterable[str]) -> IO[bytes] | None:
    """The bytes under a text file not read yet (capture opens files as UTF-8 text)."""
    raw = getattr(stream, "buffer", None)
    if raw is None or not isinstance(stream, io.TextIOWrapper):
        return None
    if (stream.encoding or "").replace("-", "").lower() != "utf8":
        return None
    try:
        if stream.tell() != 0:
            return None
    except (OSError, ValueError):
        return None
    return raw  # type: ignore[no-any-return]
