"""Helpers the graceful-termination, removed-server and persistence checks share:
how a service, a real server, a count, a duration or a sysctl is shown, and the
indexes of the connection summary by service and real server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ipvslab.doctor.capture import InputKind
from ipvslab.doctor.conn_summary import (
    OPENING_STATES as OPENING_STATES,
)
from ipvslab.doctor.conn_summary import (
    RECENT_WINDOW,
    ConnSummary,
    DestEntries,
    EntryKey,
    TemplateGroup,
)
from ipvslab.doctor.facts import NodeFacts, ValueOrigin
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

ServiceKey = tuple[str, IPAddress, int]  # protocol name as /proc prints it, VIP, port
DestKey = tuple[IPAddress, int]

# kube-proxy's graceful-termination loop re-checks its list every minute
# (rsCheckDeleteInterval = 1 * time.Minute since #66012, v1.13.0 / v1.12.2).
KUBE_PROXY_CHECK_INTERVAL = 60
# The persistence timeout /proc/net/ip_vs prints is in jiffies (svc->timeout = s * HZ);
# the usual CONFIG_HZ values.
COMMON_HZ = (1000, 250, 300, 100)
# How many servers / groups a finding names before it summarises the rest.
MAX_LISTED = 5
SYSCTL_FILE = "/etc/sysctl.d/90-ipvs.conf"


def kube_proxy_not_ipvs(snapshot: NodeSnapshot) -> str | None:
    """kube-proxy's mode when it is known and not IPVS (then the IPVS table is not its own)."""
    kp = snapshot.kube_proxy
    if kp is None or kp.settings.mode is None or kp.ipvs_mode:
        return None
    return kp.settings.mode


def foreign_table_line(mode: str) -> str:
    """Why an IPVS table beside kube-proxy in another mode is not kube-proxy's."""
    return (
        f"kube-proxy runs in {mode} mode, so these virtual services are not its own: a"
        " leftover of IPVS mode carries no Service traffic (kube-proxy deletes kube-ipvs0 at"
        f" start and {mode} NATs Service traffic before IPVS sees it; `ipvsadm -C` clears"
        " it), but another IPVS user on the node (keepalived, lvscare, kube-vip) has the same"
        " reuse behaviour"
    )


def index_entries(conns: ConnSummary | None) -> dict[EntryKey, DestEntries]:
    """The connection groups of a summary per (service, real server) (computed once)."""
    if conns is None:
        return {}
    return conns.by_service_dest


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
    """Whether the node's kernel has a feature; None when the kernel era is unknown or
    uncertain (a vendor tree, a hidden stable sublevel)."""
    if facts.kernel is None or facts.kernel.uncertain is not None:
        return None
    return facts.kernel.features.has(feature)


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
