"""The report as Prometheus metrics, for node_exporter's textfile collector.

``write_textfile(report, path)`` writes every metric below to ``path`` atomically
(prometheus_client's ``write_to_textfile``: a temporary file in the same
directory, then ``rename``), from a registry of its own, so nothing else a
process registered leaks in. Run ``ipvslab doctor --prometheus
/var/lib/node_exporter/textfile_collector/ipvslab.prom`` from a timer; the file
must end in ``.prom`` for the collector to read it.

Series sets are stable: every finding kind and severity is always present (0
when absent), so alerts can say ``ipvslab_doctor_finding{severity="critical"} > 0``.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client import CollectorRegistry, Gauge, write_to_textfile

from ipvslab.doctor.finding import FindingKind, Severity
from ipvslab.doctor.report import Report

PREFIX = "ipvslab_doctor_"

# (name without prefix, help) of every metric, for docs and tests.
METRICS: tuple[tuple[str, str], ...] = (
    ("info", "The node as the doctor saw it (labels); always 1."),
    ("findings", "Findings by severity."),
    ("finding", "Findings of each kind by severity (every kind x severity, 0 when absent)."),
    ("worst_severity", "Worst finding: 0 none, 1 info, 2 warning, 3 critical."),
    ("exposure", "1 when the node is exposed to the reuse problem (kernel twin), else 0."),
    ("exposure_known", "1 when the kernel era and sysctls were known, so exposure is meaningful."),
    ("sysctl", "Effective net.ipv4.vs sysctl value the checks used, with where it came from."),
    ("ipvs_present", "1 when the node has IPVS (/proc/net/ip_vs), 0 when not; absent if unknown."),
    ("virtual_services", "IPVS virtual services."),
    ("real_servers", "IPVS real servers over all services."),
    ("stuck_real_servers", "Real servers at weight 0 that still hold connection entries."),
    ("stuck_real_server_connections", "ActiveConn + InActConn of each stuck real server."),
    ("connection_entries", "IPVS connection entries (persistence templates excluded) by state."),
    ("connection_templates", "IPVS persistence templates."),
    ("ipvs_since_boot", "/proc/net/ip_vs_stats totals since boot (conns, packets, bytes)."),
    ("ipvs_rate", "/proc/net/ip_vs_stats estimator rates per second (conns, packets, bytes)."),
    ("service_stats", "ipvsadm -Ln --stats counters of each virtual service."),
    ("real_server_stats", "ipvsadm -Ln --stats counters of each real server of each service."),
    ("input_problems", "Input lines or files the doctor could not read (skipped)."),
    ("last_run_timestamp_seconds", "When the report was made (Unix time)."),
)
_HELP = dict(METRICS)

# The `counter` label of the IPVS statistics metrics.
COUNTERS = ("conns", "in_packets", "out_packets", "in_bytes", "out_bytes")
_WORST = {None: 0, Severity.INFO: 1, Severity.WARNING: 2, Severity.CRITICAL: 3}


def _gauge(registry: CollectorRegistry, name: str, labels: tuple[str, ...] = ()) -> Gauge:
    return Gauge(PREFIX + name, _HELP[name], labelnames=labels, registry=registry)


def build_registry(report: Report) -> CollectorRegistry:
    """A fresh registry holding the report's metrics."""
    registry = CollectorRegistry(auto_describe=True)
    node = report.node

    info = _gauge(registry, "info", ("kernel", "preset", "kube_proxy_version", "kube_proxy_mode"))
    kp = node.kube_proxy
    info.labels(
        kernel=node.kernel.release or "",
        preset=node.kernel.preset or "",
        kube_proxy_version=(kp.version or "") if kp is not None else "",
        kube_proxy_mode=(kp.mode or "") if kp is not None else "",
    ).set(1)

    findings = _gauge(registry, "findings", ("severity",))
    counts = report.summary.counts
    for severity in Severity:
        findings.labels(severity=severity.value).set(getattr(counts, severity.value))

    per_kind = _gauge(registry, "finding", ("kind", "severity"))
    tally = {(k, s): 0 for k in FindingKind for s in Severity}
    for f in report.findings:
        tally[(f.id, f.severity)] += 1
    for (kind, severity), count in tally.items():
        per_kind.labels(kind=kind.value, severity=severity.value).set(count)

    _gauge(registry, "worst_severity").set(_WORST[report.summary.worst])

    exposure = report.exposure
    _gauge(registry, "exposure_known").set(int(exposure.known))
    if exposure.known:
        gauge = _gauge(registry, "exposure", ("problem", "issue"))
        gauge.labels(problem="stale-forwarding", issue="kubernetes#81775").set(
            int(bool(exposure.stale_forwarding))
        )
        gauge.labels(problem="syn-drop", issue="kubernetes#70747").set(int(bool(exposure.syn_drop)))

    sysctl = _gauge(registry, "sysctl", ("name", "origin"))
    for name, value in node.sysctls.items():
        sysctl.labels(name=f"net.ipv4.vs.{name}", origin=value.origin.value).set(value.value)

    if node.ipvs_present is not None:
        _gauge(registry, "ipvs_present").set(int(node.ipvs_present))
    if node.services is not None:
        _gauge(registry, "virtual_services").set(node.services)
    if node.real_servers is not None:
        _gauge(registry, "real_servers").set(node.real_servers)

    _gauge(registry, "stuck_real_servers").set(len(report.stuck_real_servers))
    stuck = _gauge(registry, "stuck_real_server_connections", ("service", "real_server"))
    for s in report.stuck_real_servers:
        server = _addrport(s.address, s.port)
        stuck.labels(service=s.service, real_server=server).set(s.active_conns + s.inactive_conns)

    conns = report.connections
    if conns is not None:
        by_state = _gauge(registry, "connection_entries", ("state",))
        for state, count in conns.by_state.items():
            by_state.labels(state=state).set(count)
        _gauge(registry, "connection_templates").set(conns.templates)

    stats = report.ipvs_stats
    if stats is not None:
        for name, counters in (("ipvs_since_boot", stats.totals), ("ipvs_rate", stats.rates)):
            gauge = _gauge(registry, name, ("counter",))
            for counter in COUNTERS:
                gauge.labels(counter=counter).set(getattr(counters, counter))
    if any(svc.stats is not None for svc in report.services):
        per_service = _gauge(registry, "service_stats", ("service", "counter"))
        per_server = _gauge(registry, "real_server_stats", ("service", "real_server", "counter"))
        for svc in report.services:
            for counter in COUNTERS if svc.stats is not None else ():
                per_service.labels(service=svc.name, counter=counter).set(
                    getattr(svc.stats, counter)
                )
            for rs in svc.real_servers:
                for counter in COUNTERS if rs.stats is not None else ():
                    server = _addrport(rs.address, rs.port)
                    per_server.labels(service=svc.name, real_server=server, counter=counter).set(
                        getattr(rs.stats, counter)
                    )

    _gauge(registry, "input_problems").set(len(report.input_problems))
    if report.generated_at is not None:
        _gauge(registry, "last_run_timestamp_seconds").set(report.generated_at.timestamp())
    return registry


def _addrport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def write_textfile(report: Report, path: Path) -> None:
    """Writes the metrics to ``path`` atomically (OSError when it cannot)."""
    write_to_textfile(str(path), build_registry(report))
