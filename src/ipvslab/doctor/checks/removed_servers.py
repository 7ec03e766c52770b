"""Finding 3: connection entries whose real server was removed (or whose service is gone).

Deleting a real server (or its whole service) does not delete the connection
entries that point at it: the server moves to the kernel's trash while entries
reference it, and it is no longer "available". What a packet on such an entry
meets depends on the era and on ``expire_nodest_conn``:

* ``expire_nodest_conn=0``: the packet is dropped silently and the entry's timer is
  not restarted, so the flow is blackholed until the entry expires (a SYN from a
  reused port too, unless ``conn_reuse_mode`` reschedules its TIME_WAIT entry first);
* ``expire_nodest_conn=1`` before 04231e52d355 (v5.9): the packet is dropped and the
  entry expired; the sender's retransmission (a SYN's ~1 s later) is scheduled afresh;
* ``expire_nodest_conn=1`` since 04231e52d355: deleting the server queues a flush of
  its entries, and a packet still hitting one is rescheduled in the same pass.

Templates (client port 0) of a removed server are harmless by comparison:
ip_vs_check_template() gives them up at the client's next connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ipvslab.doctor.checks._common import (
    MAX_LISTED,
    ServiceKey,
    addrport,
    conn_source,
    feature_where,
    has_feature,
    index_entries,
    kernel_text,
    kube_proxy_sets,
    kube_version_text,
    list_command,
    services_by_fwmark,
    services_by_key,
    set_sysctl,
    states_text,
    sysctl_text,
    table_source,
    template_service,
    twin_condition,
)
from ipvslab.doctor.conn_summary import RECENT_WINDOW, ConnGroup, DestEntries, GroupStats
from ipvslab.doctor.facts import NodeFacts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.records import IPAddress, ServiceEntry
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.doctor.wording import n_entries, plural
from ipvslab.explain import ServerCondition
from ipvslab.kernel.features import Feature

DestKey = tuple[IPAddress, int]


@dataclass
class _Server:
    """What still points at one removed real server of one service."""

    entries: DestEntries | None = None
    templates: int = 0
    template_max_expires: int = 0

    @property
    def total(self) -> int:
        return self.entries.total if self.entries is not None else 0

    @property
    def max_expires(self) -> int:
        longest = self.entries.max_expires if self.entries is not None else 0
        return max(longest, self.template_max_expires)


@dataclass
class _Orphans:
    label: str  # "TCP 10.96.0.10:80", "FWM 1"
    service: ServiceEntry | None  # None: the service no longer exists
    servers: dict[DestKey, _Server] = field(default_factory=dict)
    groups: list[tuple[ConnGroup, GroupStats]] = field(default_factory=list)

    def server(self, dest: DestKey) -> _Server:
        found = self.servers.get(dest)
        if found is None:
            found = self.servers[dest] = _Server()
        return found

    @property
    def entries(self) -> int:
        return sum(s.total for s in self.servers.values())

    @property
    def templates(self) -> int:
        return sum(s.templates for s in self.servers.values())

    @property
    def by_state(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.servers.values():
            if s.entries is not None:
                for state, n in s.entries.by_state.items():
                    out[state] = out.get(state, 0) + n
        return out

    @property
    def live(self) -> int:
        return sum(s.entries.live for s in self.servers.values() if s.entries is not None)

    @property
    def closed(self) -> int:
        return self.entries - self.live

    @property
    def max_expires(self) -> int:
        return max((s.max_expires for s in self.servers.values()), default=0)

    @property
    def recent(self) -> int:
        return sum(s.entries.recent for s in self.servers.values() if s.entries is not None)


def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
    table, conns = snapshot.ipvs, snapshot.conns
    if table is None or conns is None:
        return []
    services = services_by_key(table.services)
    fwmarks = services_by_fwmark(table.services)
    dests = {id(svc): {(d.address, d.port) for d in svc.destinations} for svc in table.services}
    # Connections of an fwmark service carry the address the client used, not the mark;
    # they belong to no (protocol, VIP, port) service but are not orphans.
    fwmark_dests = {dest for svc in fwmarks.values() for dest in dests[id(svc)]}
    orphans: dict[str, _Orphans] = {}

    def group_for(label: str, svc: ServiceEntry | None) -> _Orphans:
        found = orphans.get(label)
        if found is None:
            found = orphans[label] = _Orphans(label, svc)
        return found

    def orphaned(skey: ServiceKey, dest: DestKey) -> tuple[bool, ServiceEntry | None]:
        svc = services.get(skey)
        if svc is not None:
            # A server line that could not be read may be this one: not called removed.
            return dest not in dests[id(svc)] and not svc.may_list(*dest), svc
        if table.unreadable_services:
            return False, None  # its service line may be the unreadable one
        return dest not in fwmark_dests, None

    for ekey, held in index_entries(conns).items():
        skey: ServiceKey = (ekey[0], ekey[1], ekey[2])
        dest = (ekey[3], ekey[4])
        gone, svc = orphaned(skey, dest)
        if gone:
            group_for(_label(skey), svc).server(dest).entries = held
    for g, stats in conns.groups.items():
        skey = (g.protocol, g.virtual_addr, g.virtual_port)
        if _label(skey) in orphans and orphaned(skey, (g.dest_addr, g.dest_port))[0]:
            orphans[_label(skey)].groups.append((g, stats))
    for t, tstats in conns.template_groups.items():
        # Invalidated by ip_vs_check_template() (vport 0xFFFF, 3.x through current): no
        # longer found by lookups, it only waits for its controlled connections.
        if t.virtual_port == 0xFFFF:
            continue
        svc = template_service(t, services, fwmarks)
        dest = (t.dest_addr, t.dest_port)
        if svc is not None and (dest in dests[id(svc)] or svc.may_list(*dest)):
            continue
        if svc is None and table.unreadable_services:
            continue
        if t.fwmark is not None:
            label = f"FWM {t.fwmark}"
        elif t.virtual_addr is not None:
            label = f"{t.protocol} {addrport(t.virtual_addr, t.virtual_port)}"
        else:
            continue
        server = group_for(label, svc).server(dest)
        server.templates += tstats.count
        server.template_max_expires = max(server.template_max_expires, tstats.max_expires)
    return [
        _finding(snapshot, facts, group)
        for group in sorted(orphans.values(), key=lambda g: (-g.entries, -g.templates, g.label))
    ]


def _label(skey: ServiceKey) -> str:
    return f"{skey[0]} {addrport(skey[1], skey[2])}"


def _finding(snapshot: NodeSnapshot, facts: NodeFacts, group: _Orphans) -> Finding:
    nodest = facts.value("expire_nodest_conn")
    # 04231e52d355 (v5.9): deleting a server queues a flush of its entries when
    # expire_nodest_conn=1, and a packet on a leftover entry is rescheduled at once.
    flushes = has_feature(facts, Feature.NODEST_RESCHEDULE)
    removed = twin_condition(facts, ServerCondition.REMOVED)
    live, closed = group.live, group.closed

    if nodest == 0:
        # ip_vs_in() "Check the server status": with expire_nodest_conn=0 a packet for an
        # unavailable server is dropped and its timer not restarted (3.x through current;
        # 04231e52d355 changed only the =1 branch). A reused port's SYN on a closed entry
        # may be rescheduled first (d752c364, v4.1): the kernel twin says which.
        if live:
            severity = Severity.CRITICAL
        elif closed and removed is not None:
            severity = {"problem 1": Severity.CRITICAL, "problem 2": Severity.WARNING}.get(
                removed.problem, Severity.INFO
            )
        elif closed:
            severity = Severity.WARNING
        else:
            severity = Severity.INFO
    elif flushes:
        severity = Severity.INFO
    else:
        # Before 04231e52d355 (v5.9), expire_nodest_conn=1 expires the entry but still
        # drops the packet: the sender's retransmission is scheduled afresh.
        severity = Severity.WARNING if group.entries else Severity.INFO

    exists = group.service is not None
    servers = sorted(group.servers.items(), key=lambda kv: (-kv[1].total, -kv[1].templates))
    evidence: list[str] = []
    if group.service is not None:
        current = ", ".join(addrport(d.address, d.port) for d in group.service.destinations)
        evidence.append(
            f"{table_source(snapshot)}: {group.label} has real servers {current or '(none)'}"
        )
    else:
        evidence.append(f"{table_source(snapshot)}: no service {group.label}")
    for dest, server in servers[:MAX_LISTED]:
        rip = addrport(*dest)
        parts = []
        if server.entries is not None:
            parts.append(
                f"{n_entries(server.total)} ({states_text(server.entries.by_state)}), longest "
                f"expires in {server.entries.max_expires} s"
            )
        if server.templates:
            parts.append(
                f"{plural(server.templates, 'persistence template')} (client port 0), longest "
                f"{server.template_max_expires} s"
            )
        evidence.append(f"{conn_source(snapshot)}: {group.label} -> {rip}: " + "; ".join(parts))
    if len(servers) > MAX_LISTED:
        rest = sum(s.total + s.templates for _, s in servers[MAX_LISTED:])
        evidence.append(
            f"... and {plural(len(servers) - MAX_LISTED, 'more server')} ({n_entries(rest)})"
        )
    examples = sorted(group.groups, key=lambda gs: (-gs[1].count, gs[0].state))[:3]
    for g, stats in examples:
        evidence.append(
            f"e.g. {g.protocol} {addrport(g.virtual_addr, g.virtual_port)} -> "
            f"{addrport(g.dest_addr, g.dest_port)} {g.state} x{stats.count}, expires in "
            f"{stats.min_expires}-{stats.max_expires} s"
        )
    if servers:
        dest, _ = servers[0]
        evidence.append("list them: " + list_command(*dest))
    if group.recent:
        evidence.append(
            f"{group.recent} of them {'was' if group.recent == 1 else 'were'} touched in the"
            f" last {RECENT_WINDOW} s (before the "
            "removal or, with expire_nodest_conn=1, just before being expired)"
        )
    evidence.append(sysctl_text(facts, "expire_nodest_conn"))
    if flushes is not None:
        evidence.append(
            f"{kernel_text(facts)} "
            + (
                "has 04231e52d355 (5.9): removing a server flushes its entries when "
                "expire_nodest_conn=1"
                if flushes
                else "lacks 04231e52d355 (5.9): entries of a removed server stay until they expire"
            )
        )
    if removed is not None and closed:
        evidence.append(
            "kernel twin: a SYN from a reused client port whose TIME_WAIT entry points at a "
            f"removed server is {removed.symptom}"
        )

    where = "its real server was removed" if exists else "its service was deleted"
    meaning = (
        f"IPVS keeps a connection entry after {where}, until the entry expires (longest here: "
        f"{group.max_expires} s); packets that hit one never reach a live pod. "
    )
    if nodest == 0:
        meaning += (
            "With expire_nodest_conn=0 every packet on these entries is dropped without a "
            "trace and does not renew them: "
        )
        udp = group.by_state.get("UDP", 0)
        if live:
            meaning += f"the {live} open flows hang (timeouts) until their entry expires"
            if udp:
                meaning += (
                    f"; the {udp} UDP entries blackhole their clients' datagrams, e.g. DNS "
                    "queries (kubernetes#71514, #76664)"
                )
        else:
            meaning += "no open flow is left on them"
        if closed and removed is not None:
            meaning += f"; a new connection from a reused client port is {removed.symptom}"
        meaning += "."
    elif flushes:
        meaning += (
            "This kernel flushes them when the server is deleted and reschedules any packet "
            "that still hits one, so they should vanish within moments; if a second capture "
            "still shows them, they are templates still controlling connections or came from "
            "the IPVS sync daemon."
        )
    else:
        meaning += (
            "With expire_nodest_conn=1 the first packet on an entry is dropped and expires it; "
            "the retransmission (about 1 s later for a SYN) goes to a live pod, and an open "
            "connection is reset by that pod."
        )
    if group.templates:
        meaning += (
            f" The {plural(group.templates, 'persistence template')}"
            f" {'is' if group.templates == 1 else 'are'} given up at"
            f" {'its' if group.templates == 1 else 'their'} client's"
            " next connection (ip_vs_check_template())."
        )

    fix: list[str] = []
    if nodest != 1:
        fix.append(set_sysctl("expire_nodest_conn", 1))
        if kube_proxy_sets(facts, "expire_nodest_conn") == 1:
            fix.append(
                f"{kube_version_text(facts)} sets expire_nodest_conn=1 at start (#71834): "
                "find what reset it (sysctl.d, tuned, another IPVS user)"
            )
        else:
            fix.append(
                "kube-proxy v1.14.0+ (and v1.12.5+) sets expire_nodest_conn=1 at start "
                "(#71834): upgrade " + kube_version_text(facts)
            )
    if flushes is False:
        fix.append(
            "a kernel with 04231e52d355 ("
            + feature_where(Feature.NODEST_RESCHEDULE)
            + ") flushes a removed server's entries at once and reschedules their packets "
            "without a drop"
        )
    elif flushes is None:
        fix.append("capture uname -r to tell whether this kernel flushes them (5.9+)")
    fix.append(
        f"otherwise they go by themselves within {group.max_expires} s: ipvsadm has no command "
        "to delete single connection entries"
    )

    data: dict[str, object] = {
        "service": group.label,
        "service_exists": exists,
        "entries": group.entries,
        "templates": group.templates,
        "by_state": group.by_state,
        "live": live,
        "closed": closed,
        "recent": group.recent,
        "max_expires": group.max_expires,
        "expire_nodest_conn": nodest,
        "flush_on_removal": flushes,
        "servers": [
            {
                "server": addrport(*dest),
                "entries": s.total,
                "by_state": dict(s.entries.by_state) if s.entries is not None else {},
                "templates": s.templates,
                "max_expires": s.max_expires,
            }
            for dest, s in servers
        ],
    }
    what = (
        f"{plural(group.entries, 'connection entry', 'connection entries')}"
        if group.entries
        else ""
    )
    if group.templates:
        what += (" and " if what else "") + f"{plural(group.templates, 'persistence template')}"
    if exists:
        title = (
            f"{what} of {group.label} still point at {len(servers)} removed real "
            f"server{'s' if len(servers) != 1 else ''}"
        )
    else:
        title = f"{what} still point at {group.label}, which no longer exists"
    title = title[0].upper() + title[1:]
    return Finding(
        kind=FindingKind.ENTRIES_TO_REMOVED_SERVERS,
        severity=severity,
        title=title,
        evidence=tuple(evidence),
        meaning=meaning,
        fix=tuple(fix),
        subject=group.label,
        data=data,
    )
