"""Connection entries and templates per (virtual service, real server).

An entry of ``/proc/net/ip_vs_conn`` names the client, the virtual address:port the
packet was sent to and the real server, never the service that scheduled it. The
same pod is usually a real server of several services at once (its ClusterIP and
the NodePort on every node IP, kube-proxy IPVS mode), so entries must be counted
per service, never per real-server address alone:

* an entry belongs to the (protocol, VIP, port) service it names;
* an entry whose (protocol, VIP, port) is no service belongs to the fwmark service
  holding its real server (ip_vs_service_find() looks a packet's mark up first,
  and an fwmark service's entries carry the address the client used, not the
  mark), when exactly one fwmark service of that family holds it;
* anything else is unattributed (a deleted service, or ambiguous). The entries of a
  deleted service whose pods an fwmark service also holds go to that fwmark service:
  the table cannot tell the two apart (kube-proxy itself makes no fwmark services).

Templates (client port 0) are attributed by ip_vs_sched_persist()'s keys
(``checks._common.template_service``); an invalidated one (ports 0xFFFF, set by
ip_vs_check_template()) keeps only the real server's address, so it goes to the
service's server at that address when there is exactly one.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ipvslab.doctor.checks._common import (
    index_entries,
    services_by_fwmark,
    services_by_key,
    template_service,
)
from ipvslab.doctor.conn_summary import ConnSummary, DestEntries
from ipvslab.doctor.records import IPAddress, IpvsTable, RealServerEntry, ServiceEntry

DestKey = tuple[IPAddress, int]
INVALIDATED_PORT = 0xFFFF


@dataclass
class ServerConns:
    """What the connection table holds for one real server of one service."""

    dest: RealServerEntry
    entries: DestEntries | None = None  # None: no entry of this service to this server
    templates: int = 0
    invalidated_templates: int = 0

    @property
    def total(self) -> int:
        return self.entries.total if self.entries is not None else 0

    @property
    def stuck(self) -> bool:
        """At weight 0 and still counted or held (kube-proxy waits for both to reach 0).

        Templates are counted apart (``persistconns``, not ActiveConn/InActConn), so a
        server holding only templates is not waited for.
        """
        return self.dest.weight == 0 and (
            self.dest.active_conns + self.dest.inactive_conns > 0 or self.total > 0
        )


@dataclass
class ServiceConns:
    service: ServiceEntry
    servers: dict[DestKey, ServerConns] = field(default_factory=dict)
    # Entries of this service to a real server it no longer has.
    removed_entries: int = 0


@dataclass
class ServiceConnIndex:
    """Every service of the table with its servers' entries, in the table's order."""

    services: list[ServiceConns]
    table_read: bool  # False: no connection table among the inputs
    unattributed_entries: int = 0
    unattributed_templates: int = 0

    def stuck(self) -> Iterator[tuple[ServiceEntry, ServerConns]]:
        for s in self.services:
            for server in s.servers.values():
                if server.stuck:
                    yield s.service, server


def index_services(table: IpvsTable, conns: ConnSummary | None) -> ServiceConnIndex:
    """Attributes every connection group and template group of ``conns`` to its service."""
    out = ServiceConnIndex(
        services=[
            ServiceConns(svc, {(d.address, d.port): ServerConns(d) for d in svc.destinations})
            for svc in table.services
        ],
        table_read=conns is not None,
    )
    if conns is None:
        return out
    by_id = {id(s.service): s for s in out.services}
    by_key = services_by_key(table.services)
    fwmarks = services_by_fwmark(table.services)
    fwmark_holders: dict[DestKey, list[ServiceEntry]] = {}
    for marked in fwmarks.values():
        for d in marked.destinations:
            fwmark_holders.setdefault((d.address, d.port), []).append(marked)

    for (proto, vaddr, vport, daddr, dport), held in index_entries(conns).items():
        dest = (daddr, dport)
        svc: ServiceEntry | None = by_key.get((proto, vaddr, vport))
        if svc is None:
            holders = [s for s in fwmark_holders.get(dest, ()) if s.family == vaddr.version]
            svc = holders[0] if len(holders) == 1 else None
        if svc is None:
            out.unattributed_entries += held.total
            continue
        service = by_id[id(svc)]
        server = service.servers.get(dest)
        if server is None and svc.may_list(*dest):
            continue  # its real-server line could not be read: not "removed"
        if server is None:
            service.removed_entries += held.total
        else:
            server.entries = held

    for t, stats in conns.template_groups.items():
        invalidated = t.virtual_port == INVALIDATED_PORT
        owner = template_service(t, by_key, fwmarks)
        if owner is not None:
            candidates = [by_id[id(owner)]]
        elif invalidated and t.virtual_addr is not None:
            candidates = [
                by_id[id(s)] for k, s in by_key.items() if k[:2] == (t.protocol, t.virtual_addr)
            ]
        else:
            candidates = []
        server = candidates[0].servers.get((t.dest_addr, t.dest_port)) if owner else None
        if server is None and invalidated:
            # Only the server's address is left: the one server at that address.
            at_address = [
                server
                for service in candidates
                for k, server in service.servers.items()
                if k[0] == t.dest_addr
            ]
            server = at_address[0] if len(at_address) == 1 else None
        if server is None:
            out.unattributed_templates += stats.count
            continue
        server.templates += stats.count
        if invalidated:
            server.invalidated_templates += stats.count
    return out
