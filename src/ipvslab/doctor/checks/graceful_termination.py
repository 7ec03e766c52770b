"""Finding 2: a TCP real server at weight 0 that still holds connection entries.

kube-proxy does not delete a removed endpoint's real server at once: it sets its
weight to 0 and deletes it only when IPVS counts no connection to it
(``ActiveConn + InActConn == 0``), re-checking every minute with no time limit.
Anything that keeps putting entries on the server keeps it there: a SYN from a
reused client port that follows its old entry (``conn_reuse_mode=0`` without the
weight-0 reschedule, kubernetes#81775), or a persistence template
(``expire_quiescent_template=0``). A weight-0 server is never picked by the
scheduler, so an entry a packet opened on it in the last seconds came that way.

The helpers in the first half are shared with ``removed_servers`` and
``persistence`` (how a service, a server, a count or a sysctl is shown).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ipvslab.doctor.capture import InputKind
from ipvslab.doctor.conn_summary import (
    CLIENT_SERVICE_MIN,
    CLOSED_STATES,
    RECENT_WINDOW,
    ConnSummary,
    TemplateGroup,
)
from ipvslab.doctor.facts import NodeFacts, ValueOrigin
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.parsers._common import format_proc_address, format_text_addrport
from ipvslab.doctor.records import (
    IPAddress,
    Protocol,
    RealServerEntry,
    ServiceEntry,
    ServiceFlags,
    TimeoutUnit,
)
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.explain import Explanation, ServerCondition
from ipvslab.kernel.features import FEATURE_INFO, Feature
from ipvslab.kernel.presets import STABLE_BACKPORTS

# --------------------------------------------------------------------------- shared helpers

ServiceKey = tuple[str, IPAddress, int]  # protocol name as /proc prints it, VIP, port
DestKey = tuple[IPAddress, int]
EntryKey = tuple[str, IPAddress, int, IPAddress, int]  # service key + real server

# kube-proxy's graceful-termination loop re-checks its list every minute
# (rsCheckDeleteInterval = 1 * time.Minute since #66012, v1.13.0 / v1.12.2).
KUBE_PROXY_CHECK_INTERVAL = 60
# States a fresh connection passes through before ESTABLISHED (tcp_states[]): an entry
# in one of them that a packet touched in the last RECENT_WINDOW seconds is a new
# connection being opened.
OPENING_STATES = frozenset({"SYN_RECV", "SYN_SENT", "SYNACK"})
# The persistence timeout /proc/net/ip_vs prints is in jiffies (svc->timeout = s * HZ);
# the usual CONFIG_HZ values.
COMMON_HZ = (1000, 250, 300, 100)
# How many servers / groups a finding names before it summarises the rest.
MAX_LISTED = 5
SYSCTL_FILE = "/etc/sysctl.d/90-ipvs.conf"


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


def index_entries(conns: ConnSummary | None) -> dict[EntryKey, DestEntries]:
    """The connection groups of a summary per (service, real server)."""
    if conns is None:
        return {}
    builders: dict[EntryKey, _EntriesBuilder] = {}
    for g, stats in conns.groups.items():
        key = (g.protocol, g.virtual_addr, g.virtual_port, g.dest_addr, g.dest_port)
        builder = builders.get(key)
        if builder is None:
            builder = builders[key] = _EntriesBuilder()
        builder.add(g.state, stats.count, stats.min_expires, stats.max_expires, stats.recent)
    return {k: b.build() for k, b in builders.items()}


def service_key(svc: ServiceEntry) -> ServiceKey | None:
    """(protocol, VIP, port) as connection entries name the service; None for fwmark."""
    if svc.protocol is None or svc.address is None:
        return None
    return (svc.protocol.name, svc.address, svc.port)


def addrport(addr: IPAddress, port: int) -> str:
    return format_text_addrport(addr, port)


def service_label(svc: ServiceEntry) -> str:
    """``TCP 10.96.0.10:80`` or ``FWM 1``."""
    if svc.fwmark is not None or svc.address is None:
        return f"FWM {svc.fwmark}"
    name = svc.protocol.name if svc.protocol is not None else "?"
    return f"{name} {addrport(svc.address, svc.port)}"


def service_option(svc: ServiceEntry) -> str:
    """The ipvsadm option that names the service: ``-t 10.96.0.10:80``."""
    if svc.fwmark is not None or svc.address is None:
        return f"-f {svc.fwmark}"
    flag = {Protocol.UDP: "-u", Protocol.SCTP: "--sctp-service"}.get(
        svc.protocol or Protocol.TCP, "-t"
    )
    return f"{flag} {addrport(svc.address, svc.port)}"


def persistence_text(flags: ServiceFlags, template_max: int | None = None) -> str:
    """``persistent 10800 s``; /proc prints jiffies, so the seconds depend on HZ.

    A template renewed in the last seconds (``template_max`` close to the timeout)
    tells which HZ it is when only one fits.
    """
    if not flags.persistent or flags.timeout is None:
        return ""
    if flags.timeout_unit is TimeoutUnit.SECONDS:
        return f"persistent {flags.timeout} s"
    fits = hz_fits(flags, template_max) if template_max is not None else ()
    if len(fits) == 1:
        hz = fits[0]
        return (
            f"persistent {flags.timeout} jiffies = {flags.timeout // hz} s "
            f"(HZ={hz}, from a template renewed in the last seconds)"
        )
    options = [f"{flags.timeout // hz} s at HZ={hz}" for hz in COMMON_HZ if flags.timeout % hz == 0]
    shown = ", ".join(options) if options else "seconds = jiffies / HZ"
    return f"persistent {flags.timeout} jiffies ({shown})"


def persistence_seconds(flags: ServiceFlags) -> tuple[int, ...]:
    """The persistence timeout in seconds; several candidates when /proc printed jiffies."""
    if not flags.persistent or flags.timeout is None:
        return ()
    if flags.timeout_unit is TimeoutUnit.SECONDS:
        return (flags.timeout,)
    return tuple(flags.timeout // hz for hz in COMMON_HZ if flags.timeout % hz == 0)


def hz_fits(flags: ServiceFlags, template_max: int) -> tuple[int, ...]:
    """The HZ values under which a template with ``template_max`` s left was just renewed.

    ip_vs_sched_persist() puts a template back to the full timeout at every new
    connection it controls, so a renewed template has (nearly) the full timeout left.
    """
    if flags.timeout is None or flags.timeout_unit is TimeoutUnit.SECONDS:
        return ()
    return tuple(
        hz
        for hz in COMMON_HZ
        if flags.timeout % hz == 0
        and flags.timeout // hz - RECENT_WINDOW <= template_max <= flags.timeout // hz
    )


def service_line(svc: ServiceEntry, template_max: int | None = None) -> str:
    extra = persistence_text(svc.flags, template_max)
    return f"{service_label(svc)} {svc.scheduler}{' ' + extra if extra else ''}"


def dest_line(dest: RealServerEntry) -> str:
    return (
        f"-> {addrport(dest.address, dest.port)} {dest.forward.value} weight {dest.weight}, "
        f"ActiveConn {dest.active_conns}, InActConn {dest.inactive_conns}"
    )


def table_source(snapshot: NodeSnapshot) -> str:
    if InputKind.PROC_IP_VS.path in snapshot.sources:
        return "/proc/net/ip_vs"
    if InputKind.IPVSADM_LIST.path in snapshot.sources:
        return "ipvsadm -Ln"
    return "IPVS table"


def conn_source(snapshot: NodeSnapshot) -> str:
    if InputKind.PROC_IP_VS_CONN.path in snapshot.sources:
        return "/proc/net/ip_vs_conn"
    if InputKind.IPVSADM_CONN.path in snapshot.sources:
        return "ipvsadm -Lnc"
    return "connection table"


def list_command(addr: IPAddress, port: int) -> str:
    """Commands that list the entries to one real server, in both forms."""
    proc = f"{format_proc_address(addr)} {port:04X}"
    return (
        f"ipvsadm -Lnc | grep -F '{addrport(addr, port)}'"
        f"  (or: grep -F ' {proc} ' /proc/net/ip_vs_conn)"
    )


def states_text(by_state: Mapping[str, int]) -> str:
    """``TIME_WAIT 172, ESTABLISHED 4`` (largest first)."""
    items = sorted(by_state.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{state} {count}" for state, count in items)


def duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def sysctl_text(facts: NodeFacts, name: str) -> str:
    found = facts.sysctls.get(name)
    if found is None:
        return f"net.ipv4.vs.{name}: unknown"
    where = {
        ValueOrigin.NODE: "read on the node",
        ValueOrigin.KUBE_PROXY: "not captured; what this kube-proxy sets",
        ValueOrigin.DEFAULT: "not captured; kernel default",
        ValueOrigin.ABSENT: "not in this kernel",
    }[found.origin]
    return f"net.ipv4.vs.{name} = {found.value} ({where})"


def set_sysctl(name: str, value: int) -> str:
    """Set a sysctl now and keep it across reboots."""
    return (
        f"sysctl -w net.ipv4.vs.{name}={value} && "
        f"echo 'net.ipv4.vs.{name} = {value}' >> {SYSCTL_FILE}"
    )


def feature_where(feature: Feature) -> str:
    """Which kernels carry a feature: ``mainline 5.16; stable 4.14.257, ...``."""
    info = FEATURE_INFO[feature]
    parts = []
    if info.mainline is not None:
        parts.append(f"mainline {info.mainline[0]}.{info.mainline[1]}")
    stable = [
        f"{b.series[0]}.{b.series[1]}.{b.sublevel}"
        for b in STABLE_BACKPORTS
        if b.feature is feature
    ]
    if stable:
        parts.append("stable " + ", ".join(stable))
    return "; ".join(parts)


def has_feature(facts: NodeFacts, feature: Feature) -> bool | None:
    """Whether the node's kernel has a feature; None when the kernel era is unknown."""
    return None if facts.kernel is None else facts.kernel.features.has(feature)


def kernel_text(facts: NodeFacts) -> str:
    if facts.kernel is None:
        return "kernel unknown"
    preset = facts.kernel.preset
    return f"kernel {facts.kernel.text}" + (f" ({preset.name})" if preset is not None else "")


def twin_condition(facts: NodeFacts, condition: ServerCondition) -> Explanation | None:
    """What the kernel twin says a reused-port SYN does here, for one old-server condition."""
    if facts.exposure is None:
        return None
    return facts.exposure.explanations.get(condition)


def kube_proxy_sets(facts: NodeFacts, name: str) -> int | None:
    """The value this kube-proxy version writes to a sysctl at start (None: leaves it)."""
    for action in facts.kube_actions:
        if action.name == name:
            return action.value
    return None


def kube_version_text(facts: NodeFacts) -> str:
    if facts.kube_version is None:
        return "kube-proxy (version unknown)"
    return "kube-proxy v" + ".".join(str(n) for n in facts.kube_version)


@dataclass(frozen=True)
class ClientActivity:
    """Heavy clients of one service (CLIENT_SERVICE_MIN+ entries each)."""

    clients: int
    entries: int
    recent: int
    opening: int  # clients with an entry touched in the last RECENT_WINDOW seconds
    busiest: tuple[tuple[IPAddress, int, int], ...]  # (client, entries, recent)


def client_activity(conns: ConnSummary | None, key: ServiceKey) -> ClientActivity:
    if conns is None:
        return ClientActivity(0, 0, 0, 0, ())
    rows = [
        (ck.client, stats.count, stats.recent)
        for ck, stats in conns.client_services.items()
        if (ck.protocol, ck.virtual_addr, ck.virtual_port) == key
    ]
    rows.sort(key=lambda r: (-r[2], -r[1], str(r[0])))
    return ClientActivity(
        clients=len(rows),
        entries=sum(r[1] for r in rows),
        recent=sum(r[2] for r in rows),
        opening=sum(1 for r in rows if r[2]),
        busiest=tuple(rows[:3]),
    )


def template_service(
    t: TemplateGroup,
    services: Mapping[ServiceKey, ServiceEntry],
    fwmarks: Mapping[int, ServiceEntry],
) -> ServiceEntry | None:
    """The service a persistence template belongs to (ip_vs_sched_persist() keys).

    A template of an fwmark service carries the mark; FTP (port 21) and port-zero
    services key their templates with virtual port 0.
    """
    if t.fwmark is not None:
        return fwmarks.get(t.fwmark)
    if t.virtual_addr is None:
        return None
    found = services.get((t.protocol, t.virtual_addr, t.virtual_port))
    if found is None and t.virtual_port == 0:
        found = services.get((t.protocol, t.virtual_addr, 21))
    return found


def services_by_key(services: Iterable[ServiceEntry]) -> dict[ServiceKey, ServiceEntry]:
    out: dict[ServiceKey, ServiceEntry] = {}
    for svc in services:
        key = service_key(svc)
        if key is not None:
            out.setdefault(key, svc)
    return out


def services_by_fwmark(services: Iterable[ServiceEntry]) -> dict[int, ServiceEntry]:
    return {svc.fwmark: svc for svc in services if svc.fwmark is not None}


# --------------------------------------------------------------------------- the check


def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
    table = snapshot.ipvs
    if table is None:
        return []
    entries = index_entries(snapshot.conns)
    findings = []
    for svc in table.services:
        key = service_key(svc)
        # Only TCP drains: kube-proxy deletes UDP (#77802, working since #78999, v1.16) and
        # SCTP (IsRsGracefulTerminationNeeded()) real servers at once. kube-proxy makes no
        # fwmark services.
        if key is None or key[0] != Protocol.TCP.name:
            continue
        for dest in svc.destinations:
            if dest.weight != 0:
                continue
            held = entries.get((*key, dest.address, dest.port))
            if dest.active_conns + dest.inactive_conns == 0 and held is None:
                continue  # nothing holds it: kube-proxy deletes it at its next check
            findings.append(_finding(snapshot, facts, svc, key, dest, held))
    return findings


def _finding(
    snapshot: NodeSnapshot,
    facts: NodeFacts,
    svc: ServiceEntry,
    key: ServiceKey,
    dest: RealServerEntry,
    held: DestEntries | None,
) -> Finding:
    label = service_label(svc)
    rip = addrport(dest.address, dest.port)
    counted = dest.active_conns + dest.inactive_conns
    total = held.total if held is not None else counted
    weight0 = twin_condition(facts, ServerCondition.WEIGHT0)
    # Problem 1 on a weight-0 server: a reused port's SYN follows its old entry here.
    reuse_open = None if weight0 is None else weight0.problem == "problem 1"
    # ip_vs_check_template() keeps a template to a weight-0 server unless
    # expire_quiescent_template is set (kube-proxy sets it since #71834, v1.14.0 / v1.12.5).
    affinity_open = svc.flags.persistent and facts.value("expire_quiescent_template") == 0
    path_open = bool(reuse_open) or affinity_open
    clients = client_activity(snapshot.conns, key)
    refreshing = held is not None and (
        held.opening_recent > 0 or (path_open and held.closed_recent > 0)
    )
    if refreshing:
        severity = Severity.CRITICAL
    elif path_open or reuse_open is None:
        severity = Severity.WARNING
    else:
        severity = Severity.INFO

    templates = [
        stats.max_expires
        for t, stats in (snapshot.conns.template_groups if snapshot.conns else {}).items()
        if (t.protocol, t.virtual_addr, t.virtual_port) == key
    ]
    evidence = [
        f"{table_source(snapshot)}: {service_line(svc, max(templates, default=None))}",
        f"{table_source(snapshot)}:   {dest_line(dest)}",
    ]
    if held is not None:
        last = held.max_expires
        evidence.append(
            f"{conn_source(snapshot)}: {held.total} entries {label} -> {rip}: "
            f"{states_text(held.by_state)}"
        )
        evidence.append(
            f"longest-lived entry: {held.longest_state}, expires in {duration(last)}; kube-proxy "
            f"can delete the server {last}-{last + KUBE_PROXY_CHECK_INTERVAL} s from now at the "
            "earliest (it re-checks every 60 s), if nothing renews the entries"
        )
        if held.recent:
            evidence.append(
                f"touched in the last {RECENT_WINDOW} s: {held.recent} entries "
                f"({states_text(held.recent_by_state)})"
            )
        else:
            evidence.append(f"no entry was touched in the last {RECENT_WINDOW} s")
        if held.opening_recent:
            opening = {s: n for s, n in held.recent_by_state.items() if s in OPENING_STATES}
            evidence.append(
                f"{states_text(opening)} touched in the last {RECENT_WINDOW} s: new connections "
                "reach a weight-0 server, which the scheduler never picks (only a reused client "
                "port or a persistence template sends them there)"
            )
    elif snapshot.conns is not None:
        evidence.append(
            f"{conn_source(snapshot)}: no entry to {rip} for {label} (the counters above were "
            "read at another moment)"
        )
    else:
        evidence.append(
            "connection table not captured: to see the states and remaining times run "
            + list_command(dest.address, dest.port)
        )
    if clients.clients:
        busiest = ", ".join(f"{c} ({n} entries, {r} recent)" for c, n, r in clients.busiest)
        evidence.append(
            f"{clients.opening} of {clients.clients} clients with {CLIENT_SERVICE_MIN}+ entries "
            f"to {label} touched {clients.recent} entries in the last {RECENT_WINDOW} s: "
            f"{busiest}"
        )
    if weight0 is not None:
        evidence.append(
            f"kernel twin ({kernel_text(facts)}, conn_reuse_mode="
            f"{facts.value('conn_reuse_mode')}, expire_nodest_conn="
            f"{facts.value('expire_nodest_conn')}): a SYN from a reused client port whose old "
            f"entry points at a weight-0 server is {weight0.symptom}"
        )
    else:
        evidence.append(
            f"kernel era unknown ({facts.kernel_problem or 'not resolved'}): whether a reused "
            "port can reach this server could not be worked out"
        )
    if affinity_open:
        evidence.append(
            f"{label} has session affinity (persistent) and "
            f"{sysctl_text(facts, 'expire_quiescent_template')}: clients holding a template "
            "are still sent here"
        )

    meaning = (
        f"kube-proxy set {rip} to weight 0 when its endpoint went away and deletes it only once "
        "IPVS counts no connection to it (ActiveConn + InActConn = 0, re-checked every 60 s, "
        "no time limit). "
    )
    if refreshing:
        meaning += (
            "New connections keep landing on it and renew its entries, so that count does not "
            "reach 0 and the server stays; once its pod is gone these connections fail "
            "('no route to host', timeouts; kubernetes#81775)."
        )
    elif path_open:
        why = []
        if reuse_open:
            why.append(
                "a SYN from a reused client port follows its old entry to this server instead "
                "of being rescheduled"
            )
        if affinity_open:
            why.append("session affinity keeps sending templated clients here")
        meaning += (
            f"On this node {' and '.join(why)}, so each such connection renews an entry: with "
            "busy clients it may never drain, and after the pod is gone those connections "
            "fail ('no route to host')."
        )
    elif reuse_open is None:
        meaning += (
            "The kernel era is unknown, so whether reused client ports renew these entries "
            "could not be worked out; capture uname -r."
        )
    else:
        when = (
            f"within about {duration(held.max_expires + KUBE_PROXY_CHECK_INTERVAL)}"
            if held is not None
            else "once the entries expire"
        )
        meaning += (
            "Nothing on this node sends new connections to it (a reused port is rescheduled), "
            f"so the entries run out and kube-proxy deletes it {when}; open ESTABLISHED "
            "connections keep it as long as they stay open."
        )

    fix: list[str] = []
    if reuse_open is not False:
        fix.extend(reuse_fixes(facts))
    if affinity_open:
        fix.append(
            set_sysctl("expire_quiescent_template", 1)
            + "  (templates to a weight-0 server are then dropped at the client's next "
            "connection; see persistence-trap)"
        )
    if severity is Severity.INFO:
        fix.append("none needed: kube-proxy deletes it once the entries above expire")
    fix.append(timeout_fix(facts, held))
    fix.append(
        f"ipvsadm -d {service_option(svc)} -r {rip}  (removes it now; this cuts the "
        f"{dest.active_conns} live connections still on it"
        + (
            ": with expire_nodest_conn=1 their next packet is rescheduled to another pod, "
            "which resets them"
            if facts.value("expire_nodest_conn")
            else ": with expire_nodest_conn=0 their packets are dropped until the entries expire"
        )
        + "; kube-proxy then drops it from its list)"
    )

    data: dict[str, object] = {
        "service": label,
        "server": rip,
        "weight": dest.weight,
        "active_conns": dest.active_conns,
        "inactive_conns": dest.inactive_conns,
        "entries": held.total if held is not None else None,
        "by_state": dict(held.by_state) if held is not None else {},
        "max_expires": held.max_expires if held is not None else None,
        "earliest_removal_s": held.max_expires if held is not None else None,
        "latest_removal_s": (
            held.max_expires + KUBE_PROXY_CHECK_INTERVAL if held is not None else None
        ),
        "recent": held.recent if held is not None else None,
        "recent_by_state": dict(held.recent_by_state) if held is not None else {},
        "opening_recent": held.opening_recent if held is not None else None,
        "clients": clients.clients,
        "clients_recent_entries": clients.recent,
        "reuse_reaches_server": reuse_open,
        "persistent": svc.flags.persistent,
        "refreshing": refreshing,
    }
    if refreshing:
        title = (
            f"Weight-0 server {rip} of {label} keeps getting new connections: kube-proxy "
            "cannot finish removing it"
        )
    elif severity is Severity.WARNING:
        title = f"Weight-0 server {rip} of {label} still holds {total} entries and may never drain"
    else:
        title = f"Weight-0 server {rip} of {label} is draining: {total} entries left"
    return Finding(
        kind=FindingKind.STUCK_GRACEFUL_TERMINATION,
        severity=severity,
        title=title,
        evidence=tuple(evidence),
        meaning=meaning,
        fix=tuple(fix),
        subject=f"{label} -> {rip}",
        data=data,
    )


def reuse_fixes(facts: NodeFacts) -> list[str]:
    """The sysctls that stop a reused port's SYN from following its entry to a weight-0 server."""
    reuse_mode = facts.value("conn_reuse_mode")
    nodest = facts.value("expire_nodest_conn")
    any_mode = has_feature(facts, Feature.WEIGHT0_RESCHEDULE_ANY_MODE)
    where_any = feature_where(Feature.WEIGHT0_RESCHEDULE_ANY_MODE)
    if any_mode is None:
        return [
            "capture uname -r: on a kernel with c95c07836fa4 "
            f"({where_any}) set expire_nodest_conn=1; on 5.9 - 5.15 also conn_reuse_mode=1"
        ]
    out = []
    if any_mode:
        # c95c07836fa4 (v5.16 + stable): the weight-0 clause no longer needs conn_reuse_mode.
        if nodest != 1:
            out.append(
                set_sysctl("expire_nodest_conn", 1)
                + "  (this kernel has c95c07836fa4: a reused port's SYN to a weight-0 server "
                "is rescheduled whatever conn_reuse_mode is)"
            )
        return out
    if has_feature(facts, Feature.UNCONFIRMED_CONNTRACK_REUSE):
        # f0a5e4d7a594 (v5.9 + stable): rescheduling drops the SYN only for a confirmed
        # conntrack, so conn_reuse_mode=1 no longer costs the 1 s delay of #70747.
        if nodest != 1:
            out.append(set_sysctl("expire_nodest_conn", 1))
        if reuse_mode == 0:
            out.append(
                set_sysctl("conn_reuse_mode", 1)
                + "  (before c95c07836fa4 the weight-0 reschedule needs conn_reuse_mode != 0; "
                "this kernel has f0a5e4d7a594, so it brings no 1 s SYN drop)"
            )
            if kube_proxy_sets(facts, "conn_reuse_mode") == 0:
                out.append(
                    f"{kube_version_text(facts)} writes conn_reuse_mode=0 at every start on this "
                    "kernel (#71114): v1.22+ leaves it alone on kernels >= 5.9 (#102122); on an "
                    "older kernel number re-apply the sysctl after kube-proxy starts"
                )
        out.append(f"better: a kernel with c95c07836fa4 ({where_any}) and expire_nodest_conn=1")
        return out
    if has_feature(facts, Feature.CONN_REUSE_MODE):
        out.append(
            f"upgrade the kernel to one with c95c07836fa4 ({where_any}) and set "
            "expire_nodest_conn=1; on this kernel conn_reuse_mode=1 plus expire_nodest_conn=1 "
            "would drain weight-0 servers but bring back the 1 s first-SYN drop with "
            "conntrack=1 (f719e3754ee2, kubernetes#70747)"
        )
        return out
    out.append(
        "upgrade the kernel: before d752c364 (4.1) a reused port always follows its old entry; "
        f"with c95c07836fa4 ({where_any}) set expire_nodest_conn=1"
    )
    return out


def timeout_fix(facts: NodeFacts, held: DestEntries | None) -> str:
    """Shorter IPVS timeouts, with what they do and do not shorten."""
    fin = facts.timeouts.get(("TCP", "FIN_WAIT"))
    tcp = facts.timeouts.get(("TCP", "ESTABLISHED"))
    states = set(held.by_state) if held is not None else set()
    note = ""
    if states and states <= {"TIME_WAIT", "CLOSE", "CLOSE_WAIT", "LAST_ACK"}:
        note = " These entries are past FIN_WAIT, so it will not shorten them."
    return (
        f"shorter idle timeouts (now tcp {tcp} s, tcpfin {fin} s): kube-proxy "
        "--ipvs-tcpfin-timeout=30s (v1.18+, #85517), or now: ipvsadm --set 0 30 0 "
        "(0 keeps a value). --set changes ESTABLISHED and FIN_WAIT only; TIME_WAIT stays "
        "120 s (ip_vs_set_timeout()), running timers keep their time, and a lower "
        "--ipvs-tcp-timeout also ends idle long-lived connections." + note
    )
