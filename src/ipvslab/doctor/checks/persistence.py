"""Finding 5: session affinity keeps clients on a weight-0 real server.

kube-proxy maps ``sessionAffinity: ClientIP`` to IPVS persistence (flag
persistent, timeout = ``timeoutSeconds``, default 10800 s). For each client
(per persistence netmask) IPVS keeps a template entry with client port 0 that
names the real server; while it lives, ip_vs_sched_persist() sends the client's
new connections to that server without asking the scheduler, and every new
connection restarts the template's timer to the full persistence timeout.

ip_vs_check_template() gives a template up when its server is no longer
available (removed) -- so removed servers are finding 3's business -- but a server
at weight 0 only when ``expire_quiescent_template=1``. With 0 (the kernel default;
kube-proxy sets 1 since #71834, v1.14.0 / v1.12.5) a draining pod keeps its
clients: kube-proxy cannot delete it, and once the pod exits they fail until
their template expires. ``expire_nodest_conn`` does not help: since c95c07836fa4
a reused port's SYN to a weight-0 server is rescheduled, but the template sends
it straight back.
"""

from __future__ import annotations

from dataclasses import dataclass

from ipvslab.doctor.checks._common import (
    addrport,
    conn_source,
    dest_line,
    duration,
    hz_fits,
    index_entries,
    kube_proxy_sets,
    kube_version_text,
    persistence_seconds,
    service_key,
    service_label,
    service_line,
    service_option,
    services_by_fwmark,
    services_by_key,
    set_sysctl,
    states_text,
    sysctl_text,
    table_source,
    template_service,
)
from ipvslab.doctor.conn_summary import RECENT_WINDOW, DestEntries
from ipvslab.doctor.facts import NodeFacts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.records import IPAddress, RealServerEntry, ServiceEntry
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.doctor.wording import plural


@dataclass
class _Trapped:
    """Templates of one persistent service pointing at one of its weight-0 servers."""

    dest: RealServerEntry
    templates: int = 0
    max_expires: int = 0
    entries: DestEntries | None = None

    @property
    def recent(self) -> int:
        return self.entries.recent if self.entries is not None else 0

    @property
    def opening_recent(self) -> int:
        return self.entries.opening_recent if self.entries is not None else 0

    @property
    def closed_recent(self) -> int:
        return self.entries.closed_recent if self.entries is not None else 0


def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
    table, conns = snapshot.ipvs, snapshot.conns
    if table is None or conns is None:
        return []
    # ip_vs_check_template() gives up a template to a weight-0 server only with
    # expire_quiescent_template=1 (3.x through current); kube-proxy sets it since #71834
    # (v1.14.0, v1.12.5). A removed (not available) server's template is given up anyway.
    if facts.value("expire_quiescent_template") != 0:
        return []
    services = services_by_key(table.services)
    fwmarks = services_by_fwmark(table.services)
    trapped: dict[int, dict[tuple[IPAddress, int], _Trapped]] = {}
    for t, stats in conns.template_groups.items():
        if t.virtual_port == 0xFFFF:
            continue  # already invalidated by ip_vs_check_template()
        svc = template_service(t, services, fwmarks)
        if svc is None or not svc.flags.persistent:
            continue
        dest = next(
            (
                d
                for d in svc.destinations
                if (d.address, d.port) == (t.dest_addr, t.dest_port) and d.weight == 0
            ),
            None,
        )
        if dest is None:
            continue
        per_svc = trapped.setdefault(id(svc), {})
        found = per_svc.get((dest.address, dest.port))
        if found is None:
            found = per_svc[(dest.address, dest.port)] = _Trapped(dest)
        found.templates += stats.count
        found.max_expires = max(found.max_expires, stats.max_expires)
    if not trapped:
        return []
    entries = index_entries(conns)
    findings = []
    for svc in table.services:
        servers = trapped.get(id(svc))
        if not servers:
            continue
        key = service_key(svc)
        if key is not None:
            for (addr, port), server in servers.items():
                server.entries = entries.get((*key, addr, port))
        findings.append(_finding(snapshot, facts, svc, list(servers.values())))
    return findings


def _renewed(svc: ServiceEntry, max_expires: int) -> bool:
    """A template with (nearly) its full timeout left was renewed by a new connection.

    ip_vs_sched_persist() puts the template back with ``jiffies + timeout`` at every
    new connection it controls. /proc prints the timeout in jiffies: any of the usual
    HZ values that matches counts.
    """
    return any(s - RECENT_WINDOW <= max_expires <= s for s in persistence_seconds(svc.flags))


def _finding(
    snapshot: NodeSnapshot, facts: NodeFacts, svc: ServiceEntry, servers: list[_Trapped]
) -> Finding:
    label = service_label(svc)
    servers.sort(key=lambda s: (-s.templates, str(s.dest.address), s.dest.port))
    templates = sum(s.templates for s in servers)
    longest = max(s.max_expires for s in servers)
    renewed = [s for s in servers if _renewed(svc, s.max_expires)]
    opening = sum(s.opening_recent for s in servers)
    closed_recent = sum(s.closed_recent for s in servers)
    sending = bool(renewed) or opening > 0 or closed_recent > 0
    severity = Severity.CRITICAL if sending else Severity.WARNING
    rips = ", ".join(addrport(s.dest.address, s.dest.port) for s in servers)

    evidence = [f"{table_source(snapshot)}: {service_line(svc, longest)}"]
    for s in servers:
        evidence.append(f"{table_source(snapshot)}:   {dest_line(s.dest)}")
    for s in servers:
        rip = addrport(s.dest.address, s.dest.port)
        line = (
            f"{conn_source(snapshot)}: {plural(s.templates, 'persistence template')}"
            " (client port 0) of "
            f"{label} -> {rip}, the longest lives {duration(s.max_expires)} more"
        )
        if _renewed(svc, s.max_expires):
            line += " (renewed by a new connection in the last seconds)"
        evidence.append(line)
        if s.entries is not None:
            evidence.append(
                f"{conn_source(snapshot)}: {plural(s.entries.total, 'connection')}"
                f" {label} -> {rip} "
                f"({states_text(s.entries.by_state)}), {s.entries.recent} touched in the last "
                f"{RECENT_WINDOW} s"
            )
    evidence.append(sysctl_text(facts, "expire_quiescent_template"))

    timeout = persistence_seconds(svc.flags)
    fits = hz_fits(svc.flags, longest)
    if len(timeout) == 1:
        lasting = f"full persistence timeout ({duration(timeout[0])})"
    elif len(fits) == 1 and svc.flags.timeout is not None:
        lasting = f"full persistence timeout ({duration(svc.flags.timeout // fits[0])})"
    else:
        lasting = "full persistence timeout"
    meaning = (
        f"{label} has session affinity (IPVS persistence). With expire_quiescent_template=0 "
        "the kernel keeps a client's template even though its server has weight 0, so the "
        f"clients behind these {plural(templates, 'template')} are sent to {rips} for every new "
        f"connection, and each one renews the template for another {lasting}. kube-proxy "
        "cannot delete the server while those connections exist; once the pod exits, these "
        "clients get refused or time out ('no route to host') until their template expires "
        f"(longest now: {duration(longest)}). expire_nodest_conn does not help: a rescheduled "
        "SYN is sent back by the template."
    )
    if sending:
        meaning += " New connections are being sent there right now."

    fix = [
        set_sysctl("expire_quiescent_template", 1)
        + "  (each client's next connection then drops its template and is scheduled to a "
        "live server: ip_vs_check_template())",
    ]
    if kube_proxy_sets(facts, "expire_quiescent_template") == 1:
        fix.append(
            f"{kube_version_text(facts)} sets expire_quiescent_template=1 at start (#71834): "
            "find what reset it (sysctl.d, tuned, another IPVS user)"
        )
    else:
        fix.append(
            "kube-proxy v1.14.0+ (and v1.12.5+) sets expire_quiescent_template=1 at start "
            f"(#71834): upgrade {kube_version_text(facts)}"
        )
    for s in servers:
        fix.append(
            f"ipvsadm -d {service_option(svc)} -r {addrport(s.dest.address, s.dest.port)}  "
            f"(removes the server now: its templates are dropped at each client's next "
            f"connection, but this cuts the {s.dest.active_conns} live "
            f"connection{'' if s.dest.active_conns == 1 else 's'} on it)"
        )

    data: dict[str, object] = {
        "service": label,
        "persistence_timeout": svc.flags.timeout,
        "persistence_timeout_unit": svc.flags.timeout_unit.value,
        "persistence_timeout_s": (
            [svc.flags.timeout // fits[0]]
            if len(fits) == 1 and svc.flags.timeout is not None
            else list(timeout)
        ),
        "templates": templates,
        "max_expires": longest,
        "renewed": bool(renewed),
        "opening_recent": opening,
        "closed_recent": closed_recent,
        "expire_quiescent_template": facts.value("expire_quiescent_template"),
        "servers": [
            {
                "server": addrport(s.dest.address, s.dest.port),
                "weight": s.dest.weight,
                "templates": s.templates,
                "max_expires": s.max_expires,
                "renewed": _renewed(svc, s.max_expires),
                "entries": s.entries.total if s.entries is not None else 0,
                "recent": s.recent,
            }
            for s in servers
        ],
    }
    title = (
        f"Session affinity keeps sending {plural(templates, 'client')} of {label} to weight-0 "
        f"server{'s' if len(servers) != 1 else ''} {rips} (expire_quiescent_template=0)"
    )
    return Finding(
        kind=FindingKind.PERSISTENCE_TRAP,
        severity=severity,
        title=title,
        evidence=tuple(evidence),
        meaning=meaning,
        fix=tuple(fix),
        subject=label,
        data=data,
    )
