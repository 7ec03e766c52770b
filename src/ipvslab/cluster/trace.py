"""The per-connection trace of a run, kept in compact columns.

One row per connection attempt (TCP connect() or UDP request), written when
its result is known. Numbers go to typed arrays and repeated strings (client,
node, service, decision, pod, result) to small integer codes, so a run of
millions of connections stays within a few hundred bytes a row.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, fields
from enum import IntEnum


class Result(IntEnum):
    """What the client's connect() (or UDP request) ended with."""

    ESTABLISHED = 0
    EHOSTUNREACH = 1
    ECONNREFUSED = 2
    ETIMEDOUT = 3
    EADDRNOTAVAIL = 4

    @property
    def label(self) -> str:
        return "established" if self is Result.ESTABLISHED else self.name


class Codes:
    """Strings to small integer codes and back."""

    __slots__ = ("by_text", "texts")

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.by_text: dict[str, int] = {}

    def code(self, text: str) -> int:
        found = self.by_text.get(text)
        if found is None:
            found = self.by_text[text] = len(self.texts)
            self.texts.append(text)
        return found


@dataclass(frozen=True, slots=True)
class TraceRow:
    """One row, as a test or the script runner reads it back."""

    time_us: int
    client: str
    client_ip: int
    client_port: int
    node: str
    service: str
    protocol: str
    entry_before: str  # the dataplane entry the first SYN met: "STATE ip:port", or ""
    decision: str  # the first SYN's decision
    path: str
    real_server: int  # pod IP reached by the attempt that answered (0: none)
    pod: str
    result: str
    connect_us: int  # connect() latency (or time to the error)
    syn_retransmits: int
    weight0: bool  # the first SYN went to a weight-0 real server
    removed: bool  # ... or to one no longer in the service
    pod_gone: bool  # ... or to a pod that no longer existed


_CATEGORIES = ("client", "node", "service", "protocol", "entry_before", "decision", "path", "pod")
_NUMBERS = ("time_us", "client_ip", "client_port", "real_server", "connect_us")
_SMALL = ("result", "syn_retransmits", "weight0", "removed", "pod_gone")
_ADD_ORDER = tuple(f.name for f in fields(TraceRow))


class Trace:
    """Append-only columns; ``rows()`` and ``to_polars()`` read them back."""

    def __init__(self) -> None:
        self.codes: dict[str, Codes] = {name: Codes() for name in _CATEGORIES}
        self.columns: dict[str, array[int]] = {}
        for name in _CATEGORIES:
            self.columns[name] = array("H")
        for name in _NUMBERS:
            self.columns[name] = array("q")
        for name in _SMALL:
            self.columns[name] = array("b")
        # The columns' append methods and the codes in add()'s argument order (per row).
        self._appends = tuple(self.columns[name].append for name in _ADD_ORDER)
        self._codes_in_order = tuple(self.codes[name] for name in _CATEGORIES)

    def __len__(self) -> int:
        return len(self.columns["time_us"])

    def add(
        self,
        time_us: int,
        client: str,
        client_ip: int,
        client_port: int,
        node: str,
        service: str,
        protocol: str,
        entry_before: str,
        decision: str,
        path: str,
        real_server: int,
        pod: str,
        result: Result,
        connect_us: int,
        syn_retransmits: int,
        weight0: bool,
        removed: bool,
        pod_gone: bool,
    ) -> None:
        (
            c_time,
            c_client,
            c_client_ip,
            c_client_port,
            c_node,
            c_service,
            c_protocol,
            c_entry,
            c_decision,
            c_path,
            c_real_server,
            c_pod,
            c_result,
            c_connect,
            c_retransmits,
            c_weight0,
            c_removed,
            c_pod_gone,
        ) = self._appends
        (
            k_client,
            k_node,
            k_service,
            k_protocol,
            k_entry,
            k_decision,
            k_path,
            k_pod,
        ) = self._codes_in_order
        c_time(time_us)
        c_client(k_client.code(client))
        c_client_ip(client_ip)
        c_client_port(client_port)
        c_node(k_node.code(node))
        c_service(k_service.code(service))
        c_protocol(k_protocol.code(protocol))
        c_entry(k_entry.code(entry_before))
        c_decision(k_decision.code(decision))
        c_path(k_path.code(path))
        c_real_server(real_server)
        c_pod(k_pod.code(pod))
        c_result(int(result))
        c_connect(connect_us)
        c_retransmits(min(syn_retransmits, 127))
        c_weight0(weight0)
        c_removed(removed)
        c_pod_gone(pod_gone)

    def row(self, index: int) -> TraceRow:
        c = self.columns
        text = {name: self.codes[name].texts[c[name][index]] for name in _CATEGORIES}
        return TraceRow(
            time_us=c["time_us"][index],
            client=text["client"],
            client_ip=c["client_ip"][index],
            client_port=c["client_port"][index],
            node=text["node"],
            service=text["service"],
            protocol=text["protocol"],
            entry_before=text["entry_before"],
            decision=text["decision"],
            path=text["path"],
            real_server=c["real_server"][index],
            pod=text["pod"],
            result=Result(c["result"][index]).label,
            connect_us=c["connect_us"][index],
            syn_retransmits=c["syn_retransmits"][index],
            weight0=bool(c["weight0"][index]),
            removed=bool(c["removed"][index]),
            pod_gone=bool(c["pod_gone"][index]),
        )

    def rows(self) -> list[TraceRow]:
        return [self.row(i) for i in range(len(self))]

    def category_texts(self, name: str) -> list[str]:
        return list(self.codes[name].texts)
