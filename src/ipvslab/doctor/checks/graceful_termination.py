"""Finding 2: a TCP real server at weight 0 that still holds connection entries.

kube-proxy does not delete a removed endpoint's real server at once: it sets its
weight to 0 and deletes it only when IPVS counts no connection to it
(``ActiveConn + InActConn == 0``), re-checking every minute with no time limit.
Anything that keeps putting entries on the server keeps it there: a SYN from a
reused client port that follows its old entry (``conn_reuse_mode=0`` without the
weight-0 reschedule, kubernetes#81775), or a persistence template
(``expire_quiescent_template=0``). A weight-0 server is never picked by the
scheduler, so an entry a packet opened on it in the last seconds came that way.
"""

from __future__ import annotations

from ipvslab.doctor.checks._common import (
    KUBE_PROXY_CHECK_INTERVAL,
    OPENING_STATES,
    ServiceKey,
    addrport,
    client_activity,
    conn_source,
    dest_line,
    duration,
    feature_where,
    has_feature,
    index_entries,
    kernel_text,
    kube_proxy_not_ipvs,
    kube_proxy_sets,
    kube_version_text,
    list_command,
    service_key,
    service_label,
    service_line,
    service_option,
    set_sysctl,
    states_text,
    sysctl_text,
    table_source,
    twin_condition,
)
from ipvslab.doctor.conn_summary import (
    CLIENT_SERVICE_MIN,
    RECENT_WINDOW,
    DestEntries,
)
from ipvslab.doctor.facts import NodeFacts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.records import (
    Protocol,
    RealServerEntry,
    ServiceEntry,
)
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.doctor.wording import n_entries, plural
from ipvslab.explain import ServerCondition
from ipvslab.kernel.features import Feature


def check(snapshot: NodeSnapshot, facts: NodeFacts) -> list[Finding]:
    if kube_proxy_not_ipvs(snapshot) is not None:
        return []  # kube-proxy in another mode manages no IPVS real server
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
            f"{conn_source(snapshot)}: {n_entries(held.total)} {label} -> {rip}: "
            f"{states_text(held.by_state)}"
        )
        evidence.append(
            f"longest-lived entry: {held.longest_state}, expires in {duration(last)}; kube-proxy "
            f"can delete the server {last}-{last + KUBE_PROXY_CHECK_INTERVAL} s from now at the "
            "earliest (it re-checks every 60 s), if nothing renews the entries"
        )
        if held.recent:
            evidence.append(
                f"touched in the last {RECENT_WINDOW} s: {n_entries(held.recent)} "
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
        busiest = ", ".join(f"{c} ({n_entries(n)}, {r} recent)" for c, n, r in clients.busiest)
        evidence.append(
            f"{clients.opening} of {plural(clients.clients, 'client')}"
            f" with {CLIENT_SERVICE_MIN}+ entries "
            f"to {label} touched {n_entries(clients.recent)} in the last {RECENT_WINDOW} s: "
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
        unknown = (
            f"values unknown ({facts.exposure_problem})"
            if facts.exposure_problem is not None
            else f"kernel era unknown ({facts.kernel_problem or 'not resolved'})"
        )
        evidence.append(
            f"{unknown}: whether a reused port can reach this server could not be worked out"
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
    elif reuse_open is None and facts.exposure_problem is not None:
        meaning += (
            "The net.ipv4.vs values in force are unknown, so whether reused client ports "
            "renew these entries could not be worked out; paste `sysctl -a` or give "
            "--kube-proxy."
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
    shorter = timeout_fix(facts, held)
    if shorter is not None:
        fix.append(shorter)
    fix.append(
        f"ipvsadm -d {service_option(svc)} -r {rip}  (removes it now; this cuts the "
        f"{_live(dest.active_conns)} still on it"
        + (
            # A mid-stream TCP packet is never scheduled (tcp_conn_schedule() wants a SYN):
            # once the entry is expired it reaches the node's own stack, which resets it.
            ": with expire_nodest_conn=1 their entries are expired at their next packet"
            " and the clients see a reset or a timeout"
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
        title = (
            f"Weight-0 server {rip} of {label} still holds {n_entries(total)} and may never drain"
        )
    else:
        title = f"Weight-0 server {rip} of {label} is draining: {n_entries(total)} left"
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


def timeout_fix(facts: NodeFacts, held: DestEntries | None) -> str | None:
    """Shorter IPVS timeouts, with what they do and do not shorten; None when the FIN
    timeout is already as short as this would make it."""
    fin = facts.timeouts.get(("TCP", "FIN_WAIT"))
    tcp = facts.timeouts.get(("TCP", "ESTABLISHED"))
    if fin is not None and fin <= 30:
        return None
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


def _live(n: int) -> str:
    return f"{n} live connection" + ("" if n == 1 else "s")
