"""The doctor's report: what ``ipvslab doctor --json`` prints, as pydantic models.

``build_report(diagnosis)`` turns a ``Diagnosis`` into a ``Report``; the human
output (``doctor.human``) and the metrics (``doctor.prometheus``) are both
rendered from it, so the three never disagree.

The JSON schema in ``docs/doctor-report.schema.json`` is generated from these
models; regenerate it after changing them::

    .venv/bin/python -m ipvslab.doctor.report --write docs/doctor-report.schema.json

(``tests/doctor/test_report.py`` fails while the committed file is stale.)
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import json
import math
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ipvslab import __version__
from ipvslab.doctor.checks._common import kube_proxy_not_ipvs, persistence_seconds
from ipvslab.doctor.conn_summary import TOP_CLIENT_SERVICES, TOP_CLIENTS
from ipvslab.doctor.diagnose import Diagnosis
from ipvslab.doctor.facts import Exposure, NodeFacts, ValueOrigin
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.parsers._common import format_text_addrport
from ipvslab.doctor.records import (
    IPAddress,
    IpvsStatsTable,
    KubeProxySettings,
    ParseIssue,
    ServiceEntry,
    ServiceStats,
    StatsCounters,
)
from ipvslab.doctor.service_conns import ServiceConnIndex, index_services
from ipvslab.doctor.snapshot import NodeSnapshot
from ipvslab.explain import ServerCondition
from ipvslab.kernel.presets import era_for
from ipvslab.what_if.result import WhatIfReport

# Bump on any change a consumer must know about (a field removed, renamed or retyped).
SCHEMA_VERSION = 1
# Clients `connections.busiest_clients` lists.
BUSIEST_LISTED = 10
SCHEMA_PATH = Path("docs") / "doctor-report.schema.json"

_STRICT = ConfigDict(extra="forbid")


class GeneratedBy(BaseModel):
    model_config = _STRICT

    tool: str = "ipvslab"
    version: str = Field(description="ipvslab's version.")


class InputInfo(BaseModel):
    """Where the inputs came from."""

    model_config = _STRICT

    live: bool | None = Field(
        description="True: read live from a node; False: from files; null: not known."
    )
    sources: dict[str, str] = Field(
        description="Input kind (its path in the capture layout) -> the file it was read from."
    )
    missing: list[str] = Field(
        description="Input kinds of the capture layout that were not among the inputs."
    )
    collected_at: str | None = Field(
        default=None, description="When a `doctor collect` archive was taken (its manifest)."
    )
    hostname: str | None = Field(
        default=None, description="The node a `doctor collect` archive was taken on."
    )
    notes: list[str] = Field(default_factory=list)


class KernelInfo(BaseModel):
    """The kernel release and what ipvslab knows about its IPVS code."""

    model_config = _STRICT

    release: str | None = Field(description="`uname -r` as captured (or given with --kernel).")
    preset: str | None = Field(description="The kernel preset it matched (`ipvslab presets`).")
    distro: str | None = Field(description="The preset's distro, when a preset matched.")
    version: str | None = Field(description="Mainline-equivalent version, major.minor.patch.")
    era: str | None = Field(description="The mainline era of that version (`>= 5.16`, ...).")
    features: list[str] = Field(description="IPVS behaviours this kernel has (feature names).")
    warnings: list[str] = Field(description="Doubts about the resolution (assumed features).")
    problem: str | None = Field(
        description="Why the kernel era is unknown, when it is (then exposure is unknown)."
    )


class DistroInfo(BaseModel):
    model_config = _STRICT

    id: str | None
    version_id: str | None
    pretty_name: str | None


class SysctlActionInfo(BaseModel):
    """One sysctl kube-proxy of this version writes at start-up on this kernel."""

    model_config = _STRICT

    sysctl: str
    value: int | None = Field(description="The value it sets; null: left as the node has it.")
    reason: str


class KubeProxySettingsInfo(BaseModel):
    """kube-proxy's effective settings (a flag wins over the config file); null = not set."""

    model_config = _STRICT

    mode: str | None = None
    ipvs_scheduler: str | None = None
    ipvs_sync_period: float | None = Field(default=None, description="Seconds.")
    ipvs_min_sync_period: float | None = Field(default=None, description="Seconds.")
    ipvs_tcp_timeout: float | None = Field(default=None, description="Seconds.")
    ipvs_tcpfin_timeout: float | None = Field(default=None, description="Seconds.")
    ipvs_udp_timeout: float | None = Field(default=None, description="Seconds.")
    ipvs_strict_arp: bool | None = None
    ipvs_exclude_cidrs: list[str] | None = None
    masquerade_all: bool | None = None
    cluster_cidr: str | None = None
    config_file: str | None = None


class KubeProxyInfo(BaseModel):
    model_config = _STRICT

    version: str | None = Field(description="`kube-proxy --version` (v1.28.2-eks-a5df82a).")
    mode: str | None = Field(description="Proxy mode (ipvs, iptables, ...), if known.")
    ipvs_mode: bool
    flags: dict[str, str] = Field(description="Every --flag on its command line.")
    settings: KubeProxySettingsInfo
    sysctl_actions: list[SysctlActionInfo] = Field(
        description="What this kube-proxy version writes at start-up on this kernel."
    )
    source: str = Field(description="The file its settings were read from.")


class SysctlInfo(BaseModel):
    model_config = _STRICT

    value: int
    origin: ValueOrigin = Field(
        description="node: read on the node; kube-proxy: not captured, what this kube-proxy"
        " sets; kernel default: not captured and nothing sets it; not in this kernel."
    )
    detail: str = Field(description="The origin in words (for kube-proxy: why it sets it).")


class NodeInfo(BaseModel):
    model_config = _STRICT

    kernel: KernelInfo
    distro: DistroInfo | None
    kube_proxy: KubeProxyInfo | None
    sysctls: dict[str, SysctlInfo] = Field(
        description="The effective net.ipv4.vs.<name> values the checks used, by <name>."
    )
    ipvs_present: bool | None = Field(
        description="False: read live and /proc/net/ip_vs is absent (no IPVS on this node);"
        " true: present; null: not known (files)."
    )
    ipvs_version: str | None = Field(description="IPVS version line (1.2.1), if captured.")
    services: int | None = Field(description="Virtual services; null without an IPVS table.")
    real_servers: int | None = Field(description="Real servers over all services.")


class ExposureStep(BaseModel):
    model_config = _STRICT

    text: str
    commit: str = Field(description="The kernel commit behind this step ('' if none).")


class ExposureCondition(BaseModel):
    """What a SYN from a reused client port meets when the old entry's server is in a state."""

    model_config = _STRICT

    condition: ServerCondition
    problem: str = Field(description="'problem 1', 'problem 2' or 'none'.")
    outcome: str
    destination: str = Field(description="'old server', 'other server' or 'none'.")
    symptom: str
    steps: list[ExposureStep] = Field(description="The path through ip_vs_in().")


class ExposureInfo(BaseModel):
    """The node's exposure to the two reuse problems, from the kernel twin."""

    model_config = _STRICT

    known: bool = Field(description="False when the kernel era or sysctls are unknown.")
    stale_forwarding: bool | None = Field(
        description="Problem 1 (#81775): a reused port follows the old entry to a weight-0 or"
        " deleted pod."
    )
    syn_drop: bool | None = Field(
        description="Problem 2 (#70747): the first SYN from a reused port is dropped (1 s delay)."
    )
    verdict: str
    reason: str
    old_state: str = Field(description="State of the old entry the question is asked for.")
    conditions: list[ExposureCondition]


class FindingInfo(BaseModel):
    model_config = _STRICT

    id: FindingKind
    severity: Severity
    title: str
    subject: str = Field(description="What it is about (a service, a real server), or ''.")
    evidence: list[str]
    meaning: str
    fix: list[str] = Field(description="Exact commands or settings, one per item.")
    data: dict[str, Any] = Field(description="The evidence as numbers (finding-specific).")


class SeverityCounts(BaseModel):
    model_config = _STRICT

    info: int = 0
    warning: int = 0
    critical: int = 0


class Summary(BaseModel):
    model_config = _STRICT

    findings: int
    counts: SeverityCounts
    worst: Severity | None = Field(description="The worst severity found; null when none.")


class Connections(BaseModel):
    """The connection table (/proc/net/ip_vs_conn or ipvsadm -Lnc)."""

    model_config = _STRICT

    total: int = Field(description="Every entry, persistence templates included.")
    by_state: dict[str, int] = Field(description="Connection entries (not templates) by state.")
    by_protocol: dict[str, int]
    templates: int = Field(description="Persistence templates (client port 0).")
    invalidated_templates: int
    busiest_clients: list[BusyClient] = Field(
        description=f"The {BUSIEST_LISTED} clients holding the most entries, from the sketch."
    )
    client_counts: ClientCountBound


class BusyClient(BaseModel):
    model_config = _STRICT

    client: str
    entries: int
    closed: int = Field(description="Entries of connections already closed (FIN/RST seen).")
    recent: int = Field(description="Entries touched in the last 10 s.")


class ClientCountBound(BaseModel):
    """How far per-client counts can be trusted: they come from bounded sketches.

    Memory grows with the IPVS table, not with clients: clients and (client, service)
    pairs are counted in top-K (Misra-Gries) sketches of at most `tracked_clients_limit`
    clients and `tracked_pairs_limit` pairs.
    """

    model_config = _STRICT

    tracked_clients_limit: int
    count_error: int = Field(
        description="0: every per-client count is exact. Else each may be low by up to this"
        " many entries, and a client not listed holds at most this many."
    )
    tracked_pairs_limit: int
    pair_count_error: int = Field(
        description="The same for (client, service) pairs (the port-reuse-pressure finding)."
    )


class StuckRealServer(BaseModel):
    """A real server at weight 0 of one service that still holds entries of that service.

    Counted per (service, real server): the same pod behind its ClusterIP and the
    NodePorts is listed only under the services whose entries hold it.
    """

    model_config = _STRICT

    service: str = Field(description="'TCP 10.96.0.10:80', 'FWM 1'.")
    address: str
    port: int
    weight: int
    active_conns: int
    inactive_conns: int
    entries: int | None = Field(
        description="Entries of this service to this server in the connection table (not"
        " those of other services sharing the server); null when the table was not captured."
    )
    by_state: dict[str, int] = Field(description="Those entries by state.")


class Counters(BaseModel):
    """IPVS counters: totals since the service (or boot) or per-second rates."""

    model_config = _STRICT

    conns: int
    in_packets: int
    out_packets: int
    in_bytes: int
    out_bytes: int
    approximate: bool = Field(
        description="ipvsadm printed a K/M/G/T suffix: the values are lower bounds."
    )


class IpvsStats(BaseModel):
    """/proc/net/ip_vs_stats: totals since boot and the estimator's rates."""

    model_config = _STRICT

    totals: Counters
    rates: Counters = Field(description="Per second (conns/s, packets/s, bytes/s).")


class RealServerInfo(BaseModel):
    """One real server of one service, with the entries of that service to it."""

    model_config = _STRICT

    address: str
    port: int
    forward: str = Field(description="Masq, Local, Tunnel or Route.")
    weight: int
    active_conns: int = Field(description="ActiveConn as the table printed it.")
    inactive_conns: int = Field(description="InActConn as the table printed it.")
    entries: int | None = Field(
        description="Entries of this service to this server in the connection table; null"
        " when no table was read."
    )
    by_state: dict[str, int] = Field(description="Those entries by state.")
    templates: int = Field(description="Persistence templates of this service to it.")
    invalidated_templates: int = Field(
        description="Of those, templates ip_vs_check_template() gave up (ports 0xFFFF)."
    )
    stats: Counters | None = Field(description="From `ipvsadm -Ln --stats`, when captured.")


class ServiceInfo(BaseModel):
    """A virtual service of the IPVS table."""

    model_config = _STRICT

    name: str = Field(description="'TCP 10.96.0.10:80', 'FWM 1'.")
    protocol: str | None = Field(description="TCP, UDP, SCTP; null for an fwmark service.")
    address: str | None = Field(description="The VIP; null for an fwmark service.")
    port: int
    fwmark: int | None
    family: int = Field(description="4 or 6.")
    scheduler: str
    flags: list[str] = Field(description="'persistent', 'ops' (one-packet scheduling), 'pe'.")
    persistence_timeout: int | None = Field(
        description="As the source printed it (see persistence_unit); null if not persistent."
    )
    persistence_unit: str | None = Field(
        description="'seconds' (ipvsadm) or 'jiffies' (/proc/net/ip_vs prints timeout × HZ)."
    )
    persistence_seconds: list[int] = Field(
        description="The timeout in seconds; from jiffies, one value per usual HZ that divides it."
    )
    netmask: int | None = Field(
        description="Persistence netmask as printed: the IPv4 mask as a number"
        " (4294967295 = /32), or the IPv6 prefix length from ipvsadm."
    )
    pe_name: str | None = Field(description="Persistence engine (sip), if any.")
    stats: Counters | None = Field(description="From `ipvsadm -Ln --stats`, when captured.")
    real_servers: list[RealServerInfo]
    removed_entries: int = Field(
        description="Entries of this service to real servers it no longer has."
    )


class InputProblem(BaseModel):
    """A line or input that could not be read (it was skipped; the rest was diagnosed)."""

    model_config = _STRICT

    source: str
    line: int = Field(description="1-based; 0 = the input as a whole.")
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.field}: {self.message}"


class Report(BaseModel):
    """The result of `ipvslab doctor --json`."""

    model_config = ConfigDict(
        extra="forbid",
        title="ipvslab doctor report",
        json_schema_extra={"$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    schema_version: int = Field(default=SCHEMA_VERSION, description="Bumped on breaking changes.")
    generated_by: GeneratedBy
    generated_at: datetime | None = Field(
        description="When the report was made (null when not asked for)."
    )
    input: InputInfo
    node: NodeInfo
    exposure: ExposureInfo
    findings: list[FindingInfo] = Field(description="Worst first.")
    summary: Summary
    connections: Connections | None = Field(description="null when no table was captured.")
    stuck_real_servers: list[StuckRealServer]
    services: list[ServiceInfo] = Field(
        description="The IPVS table: every virtual service with its real servers, their"
        " counters and the entries of that service to each (per service, never pooled)."
    )
    unattributed_entries: int = Field(
        description="Entries whose (protocol, VIP, port) is no service and whose server no"
        " single fwmark service holds (a deleted service)."
    )
    ipvs_stats: IpvsStats | None = Field(description="/proc/net/ip_vs_stats, when captured.")
    input_problems: list[InputProblem]
    inconclusive: list[str] = Field(
        description="Why the node could not be judged (empty when it could): the exposure is"
        " unknown or uncertain, so 'no findings' does not mean healthy. `ipvslab doctor`"
        " then exits 3 unless --inconclusive-ok."
    )
    what_if: WhatIfReport | None = Field(
        default=None,
        description="With --what-if: the node run in the cluster twin with the actions, as it"
        " is and with each setting changed (null without --what-if).",
    )

    def at_or_above(self, severity: Severity) -> list[FindingInfo]:
        return [f for f in self.findings if f.severity >= severity]


# --------------------------------------------------------------------------- building


def build_report(
    diagnosis: Diagnosis,
    *,
    live: bool | None = None,
    generated_at: datetime | None = None,
    manifest: Mapping[str, Any] | None = None,
) -> Report:
    """The report of a diagnosis. Pure: ``generated_at`` is left out unless given."""
    snapshot, facts = diagnosis.snapshot, diagnosis.facts
    tally = {s.value: 0 for s in Severity}
    for f in diagnosis.findings:
        tally[f.severity.value] += 1
    manifest = manifest or {}
    exposure = _exposure_info(facts, snapshot)
    index = service_index(snapshot)
    return Report(
        generated_by=GeneratedBy(version=__version__),
        generated_at=generated_at,
        input=_input_info(snapshot, live, manifest),
        node=_node_info(snapshot, facts),
        exposure=exposure,
        findings=[_finding_info(f) for f in diagnosis.findings],
        summary=Summary(
            findings=len(diagnosis.findings),
            counts=SeverityCounts(**tally),
            worst=diagnosis.worst,
        ),
        connections=_connections(snapshot),
        stuck_real_servers=stuck_real_servers(snapshot, index),
        services=services(snapshot, index),
        unattributed_entries=index.unattributed_entries if index is not None else 0,
        ipvs_stats=(
            IpvsStats(
                totals=_counters(snapshot.stats.totals), rates=_counters(snapshot.stats.rates)
            )
            if snapshot.stats is not None
            else None
        ),
        input_problems=input_problems(snapshot, facts, diagnosis.check_errors),
        inconclusive=inconclusive_reasons(exposure),
    )


def inconclusive_reasons(exposure: ExposureInfo) -> list[str]:
    """Why no verdict can be given: without a known exposure, "no findings" proves nothing
    (the exposure checks need the kernel era and the sysctls)."""
    if exposure.known:
        return []
    return [f"exposure {exposure.verdict}: {exposure.reason}"]


def input_problems(
    snapshot: NodeSnapshot, facts: NodeFacts, check_errors: tuple[str, ...] = ()
) -> list[InputProblem]:
    """Parse issues of every input, sysctl values the checks could not use, and checks
    that failed on this input (a bug in ipvslab: its findings are missing)."""
    out = [_problem(i) for i in snapshot.issues]
    out.extend(
        InputProblem(
            source="ipvslab",
            line=0,
            field="check " + error.split(":", 1)[0],
            message="this check failed, its findings are missing (please report): "
            + error.split(":", 1)[1].strip(),
        )
        for error in check_errors
    )
    sysctl_source = snapshot.sources.get("sysctl.txt", "sysctl")
    out.extend(
        InputProblem(source=sysctl_source, line=0, field="sysctl", message=p)
        for p in facts.sysctl_problems
    )
    return out


def _problem(issue: ParseIssue) -> InputProblem:
    return InputProblem(
        source=issue.source, line=issue.line_no, field=issue.field, message=issue.message
    )


def _input_info(
    snapshot: NodeSnapshot, live: bool | None, manifest: Mapping[str, Any]
) -> InputInfo:
    from ipvslab.doctor.capture import InputKind  # capture imports parsers: keep this light

    present = set(snapshot.sources)
    missing = [k.path for k in InputKind if k is not InputKind.MANIFEST and k.path not in present]
    if live:
        # A live read takes /proc; ipvsadm output is only ever pasted.
        missing = [m for m in missing if not m.startswith("ipvsadm")]
    collected = manifest.get("collected_at")
    hostname = manifest.get("hostname")
    return InputInfo(
        live=live,
        sources=dict(sorted(snapshot.sources.items())),
        missing=missing,
        collected_at=str(collected) if collected is not None else None,
        hostname=str(hostname) if hostname is not None else None,
        notes=list(snapshot.notes),
    )


def _node_info(snapshot: NodeSnapshot, facts: NodeFacts) -> NodeInfo:
    kernel = facts.kernel
    release = snapshot.kernel_release
    kernel_info = KernelInfo(
        release=release.text if release is not None else None,
        preset=kernel.preset.name if kernel is not None and kernel.preset is not None else None,
        distro=kernel.preset.distro if kernel is not None and kernel.preset is not None else None,
        version=kernel.version_text if kernel is not None else None,
        era=era_for(*kernel.version[:2]).label if kernel is not None else None,
        features=[f.value for f in kernel.features.enabled] if kernel is not None else [],
        # The uncertainty is the kernel's `problem`; not repeated among the warnings.
        warnings=[
            w for w in kernel.warnings if kernel.uncertain is None or kernel.uncertain not in w
        ]
        if kernel is not None
        else [],
        problem=facts.kernel_problem,
    )
    os_release = snapshot.os_release
    distro = (
        DistroInfo(
            id=os_release.id, version_id=os_release.version_id, pretty_name=os_release.pretty_name
        )
        if os_release is not None
        else None
    )
    kp = snapshot.kube_proxy
    kube_proxy = None
    if kp is not None:
        kube_proxy = KubeProxyInfo(
            version=kp.version.text if kp.version is not None else None,
            mode=kp.settings.mode,
            ipvs_mode=kp.ipvs_mode,
            flags=dict(kp.flags),
            settings=_settings(kp.settings),
            sysctl_actions=[
                SysctlActionInfo(sysctl=a.name, value=a.value, reason=a.reason)
                for a in facts.kube_actions
            ],
            source=kp.source,
        )
    version_text = kp.version.text if kp is not None and kp.version is not None else None
    reasons = {a.name: a.reason for a in facts.kube_actions if a.value is not None}
    sysctls = {
        name: SysctlInfo(
            value=s.value,
            origin=s.origin,
            detail=_origin_detail(s.origin, reasons.get(name), version_text),
        )
        for name, s in facts.sysctls.items()
    }
    ipvs = snapshot.ipvs
    return NodeInfo(
        kernel=kernel_info,
        distro=distro,
        kube_proxy=kube_proxy,
        sysctls=sysctls,
        ipvs_present=snapshot.ipvs_present,
        ipvs_version=ipvs.version if ipvs is not None else None,
        services=len(ipvs.services) if ipvs is not None else None,
        real_servers=sum(len(s.destinations) for s in ipvs.services) if ipvs is not None else None,
    )


def _settings(settings: KubeProxySettings) -> KubeProxySettingsInfo:
    values = {f.name: getattr(settings, f.name) for f in dataclasses.fields(settings)}
    known = set(KubeProxySettingsInfo.model_fields)
    return KubeProxySettingsInfo.model_validate(
        {k: list(v) if isinstance(v, tuple) else v for k, v in values.items() if k in known}
    )


def _origin_detail(origin: ValueOrigin, reason: str | None, kube_version: str | None) -> str:
    if origin is ValueOrigin.NODE:
        return "read on the node"
    if origin is ValueOrigin.KUBE_PROXY:
        who = f"kube-proxy {kube_version}" if kube_version else "kube-proxy"
        return (
            f"not captured: {who} sets it ({reason})" if reason else f"not captured: {who} sets it"
        )
    if origin is ValueOrigin.DEFAULT:
        return "not captured: the kernel default"
    return "not in this kernel"


_PROBLEM_NAMES = {
    "problem 1": "problem 1 (stale forwarding to a terminating or deleted pod, #81775)",
    "problem 2": "problem 2 (first SYN dropped, 1 s connect delay, #70747)",
}


def _exposure_info(facts: NodeFacts, snapshot: NodeSnapshot) -> ExposureInfo:
    other_mode = kube_proxy_not_ipvs(snapshot)
    if other_mode is not None and snapshot.conns is not None and snapshot.conns.total == 0:
        # A leftover of IPVS mode: kube-proxy deleted kube-ipvs0 at start and NATs Service
        # traffic before IPVS sees it, and the empty table shows nothing else uses IPVS.
        return ExposureInfo(
            known=True,
            stale_forwarding=False,
            syn_drop=False,
            verdict="not applicable",
            reason=f"kube-proxy runs in {other_mode} mode and the IPVS table here"
            " carries no connection (a leftover of IPVS mode; `ipvsadm -C` clears it)",
            old_state="TIME_WAIT",
            conditions=[],
        )
    exposure: Exposure | None = facts.exposure
    if exposure is None:
        uncertain = facts.kernel is not None and facts.kernel.uncertain is not None
        if facts.exposure_problem is not None:
            why = facts.exposure_problem
            if facts.exposure_by_kube_version:
                why += ". By version: " + "; ".join(
                    f"{label}: {_verdict(e)[0]}" for label, e in facts.exposure_by_kube_version
                )
            elif facts.guessed_exposure is not None:
                guess, _, _ = _verdict(facts.guessed_exposure)
                why += f". With the kernel defaults it would be {guess}"
        elif uncertain and facts.kernel_problem is not None:
            why = facts.kernel_problem
            if facts.guessed_exposure is not None:
                guess, _, _ = _verdict(facts.guessed_exposure)
                why += f". If it behaved like that guess it would be {guess}"
        elif facts.kernel_problem is not None:
            why = f"the kernel era is unknown: {facts.kernel_problem}"
        elif facts.sysctl_problems:
            why = "the sysctls are not valid: " + "; ".join(facts.sysctl_problems)
        else:
            why = "not enough inputs"
        return ExposureInfo(
            known=False,
            stale_forwarding=None,
            syn_drop=None,
            verdict="uncertain" if uncertain else "unknown",
            reason=why,
            old_state="TIME_WAIT",
            conditions=[],
        )
    verdict, reason, conditions = _verdict(exposure)
    return ExposureInfo(
        known=True,
        stale_forwarding=exposure.stale_forwarding,
        syn_drop=exposure.syn_drop,
        verdict=verdict,
        reason=reason,
        old_state="TIME_WAIT",
        conditions=conditions,
    )


def _verdict(exposure: Exposure) -> tuple[str, str, list[ExposureCondition]]:
    """The verdict ("exposed to ...", "not exposed ..."), its reason and the conditions."""
    conditions = []
    for condition, e in exposure.explanations.items():
        conditions.append(
            ExposureCondition(
                condition=condition,
                problem=e.problem,
                outcome=e.outcome.name,
                destination=e.destination,
                symptom=e.symptom,
                steps=[ExposureStep(text=s.text, commit=s.commit) for s in e.steps],
            )
        )
    problems = exposure.problems
    exposed = [c for c in conditions if c.problem != "none"] if problems else conditions
    reason = "; ".join(f"old server {c.condition.value}: {c.symptom}" for c in exposed)
    decided = list(dict.fromkeys(step for c in exposed for step in _decisive(c)))
    if decided:
        reason += ". Decided by: " + "; ".join(decided)
    if problems:
        names = []
        for p in problems:
            name = _PROBLEM_NAMES[p]
            hit = {c.condition for c in conditions if c.problem == p}
            if hit == {ServerCondition.REMOVED}:
                # With expire_nodest_conn=1 before 5.9 only a removed server's entry drops
                # the SYN (then expires): a 1 s delay, not the conntrack drop of #70747.
                name = "a 1 s first-SYN drop, only when the old real server was removed"
            names.append(name)
        verdict = "exposed to " + " and ".join(names)
    else:
        verdict = "not exposed to either reuse problem"
    return verdict, reason, conditions


def _decisive(condition: ExposureCondition) -> list[str]:
    """The steps that decided it, with their commits (the first one is always the lookup)."""
    steps = [s for s in condition.steps[1:] if s.commit] or condition.steps[1:]
    return [f"{s.text} [{s.commit}]" if s.commit else s.text for s in steps]


def _finding_info(finding: Finding) -> FindingInfo:
    data = jsonable(finding.data)
    assert isinstance(data, dict)
    return FindingInfo(
        id=finding.kind,
        severity=finding.severity,
        title=finding.title,
        subject=finding.subject,
        evidence=list(finding.evidence),
        meaning=finding.meaning,
        fix=list(finding.fix),
        data=data,
    )


def jsonable(value: Any) -> Any:
    """``value`` with everything JSON cannot hold turned into what it can (never raises)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Enum):
        return jsonable(value.value)
    if isinstance(value, Mapping):
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, datetime | date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    return str(value)


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, Enum):
        return str(key.value)
    if isinstance(key, tuple):
        return ":".join(str(_key(k)) for k in key)
    return str(key)


def _connections(snapshot: NodeSnapshot) -> Connections | None:
    conns = snapshot.conns
    if conns is None:
        return None
    return Connections(
        total=conns.total,
        by_state=dict(sorted(conns.by_state.items())),
        by_protocol=dict(sorted(conns.by_protocol.items())),
        templates=conns.templates,
        invalidated_templates=conns.invalidated_templates,
        busiest_clients=[
            BusyClient(
                client=str(client),
                entries=count,
                closed=conns.busiest_clients[client].closed,
                recent=conns.busiest_clients[client].recent,
            )
            for client, count in conns.top_clients(BUSIEST_LISTED)
        ],
        client_counts=ClientCountBound(
            tracked_clients_limit=TOP_CLIENTS,
            count_error=conns.client_error,
            tracked_pairs_limit=TOP_CLIENT_SERVICES,
            pair_count_error=conns.client_service_error,
        ),
    )


def service_name(service: ServiceEntry) -> str:
    """``TCP 10.96.0.10:80``, ``UDP [2001:db8::a]:53``, ``FWM 1``."""
    if service.fwmark is not None:
        return f"FWM {service.fwmark}"
    protocol = service.protocol.name if service.protocol is not None else "?"
    if service.address is None:
        return f"{protocol} ?:{service.port}"
    return f"{protocol} {format_text_addrport(service.address, service.port)}"


def service_index(snapshot: NodeSnapshot) -> ServiceConnIndex | None:
    """The IPVS table's services with their entries (None without a table)."""
    if snapshot.ipvs is None:
        return None
    return index_services(snapshot.ipvs, snapshot.conns)


def stuck_real_servers(
    snapshot: NodeSnapshot, index: ServiceConnIndex | None = None
) -> list[StuckRealServer]:
    """Real servers at weight 0 still counted or holding entries, per (service, server).

    A pod is a real server of its ClusterIP and of the NodePort on every node IP:
    only the services whose own entries (or counters) hold it are listed.
    """
    index = index or service_index(snapshot)
    if index is None:
        return []
    return [
        StuckRealServer(
            service=service_name(service),
            address=str(server.dest.address),
            port=server.dest.port,
            weight=server.dest.weight,
            active_conns=server.dest.active_conns,
            inactive_conns=server.dest.inactive_conns,
            entries=server.total if index.table_read else None,
            by_state=dict(sorted(server.entries.by_state.items())) if server.entries else {},
        )
        for service, server in index.stuck()
    ]


def services(snapshot: NodeSnapshot, index: ServiceConnIndex | None = None) -> list[ServiceInfo]:
    """The IPVS table with, per (service, real server), its entries, templates and stats."""
    index = index or service_index(snapshot)
    if index is None:
        return []
    stats = _service_stats(snapshot.service_stats)
    out = []
    for s in index.services:
        svc = s.service
        flags = svc.flags
        service_counters, dest_counters = stats.get(_stats_key(svc), (None, {}))
        out.append(
            ServiceInfo(
                name=service_name(svc),
                protocol=svc.protocol.name if svc.protocol is not None else None,
                address=str(svc.address) if svc.address is not None else None,
                port=svc.port,
                fwmark=svc.fwmark,
                family=int(svc.family),
                scheduler=svc.scheduler,
                flags=[
                    name
                    for name, on in (
                        ("persistent", flags.persistent),
                        ("ops", flags.one_packet),
                        ("pe", flags.pe_name is not None),
                    )
                    if on
                ],
                persistence_timeout=flags.timeout if flags.persistent else None,
                persistence_unit=flags.timeout_unit.value if flags.persistent else None,
                persistence_seconds=list(persistence_seconds(flags)),
                netmask=flags.netmask,
                pe_name=flags.pe_name,
                stats=_counters(service_counters) if service_counters is not None else None,
                real_servers=[
                    RealServerInfo(
                        address=str(server.dest.address),
                        port=server.dest.port,
                        forward=server.dest.forward.value,
                        weight=server.dest.weight,
                        active_conns=server.dest.active_conns,
                        inactive_conns=server.dest.inactive_conns,
                        entries=server.total if index.table_read else None,
                        by_state=(
                            dict(sorted(server.entries.by_state.items())) if server.entries else {}
                        ),
                        templates=server.templates,
                        invalidated_templates=server.invalidated_templates,
                        stats=(_counters(dest_counters[key]) if key in dest_counters else None),
                    )
                    for key, server in s.servers.items()
                ],
                removed_entries=s.removed_entries,
            )
        )
    return out


StatsKey = tuple[str | None, str | None, int, int | None]


def _stats_key(svc: ServiceEntry | ServiceStats) -> StatsKey:
    protocol = svc.protocol.name if svc.protocol is not None else None
    address = str(svc.address) if svc.address is not None else None
    return (protocol, address, svc.port, svc.fwmark)


def _service_stats(
    table: IpvsStatsTable | None,
) -> dict[StatsKey, tuple[StatsCounters, dict[tuple[IPAddress, int], StatsCounters]]]:
    if table is None:
        return {}
    return {
        _stats_key(s): (s.counters, {(d.address, d.port): d.counters for d in s.destinations})
        for s in table.services
    }


def _ipvs_stats(snapshot: NodeSnapshot) -> IpvsStats | None:
    stats = snapshot.stats
    if stats is None:
        return None
    return IpvsStats(totals=_counters(stats.totals), rates=_counters(stats.rates))


def _counters(c: StatsCounters) -> Counters:
    return Counters(
        conns=c.conns,
        in_packets=c.in_packets,
        out_packets=c.out_packets,
        in_bytes=c.in_bytes,
        out_bytes=c.out_bytes,
        approximate=c.approximate,
    )


# --------------------------------------------------------------------------- schema


# Enum descriptions in the schema (not the enums' docstrings, which are for developers).
_ENUM_DESCRIPTIONS = {
    "Severity": "info < warning < critical.",
    "FindingKind": "What a finding is about (see docs/doctor.md, one section per id).",
    "ValueOrigin": "Where an effective sysctl value comes from.",
    "ServerCondition": "What happened to the old entry's real server before the new SYN.",
}


def schema() -> dict[str, Any]:
    out = Report.model_json_schema()
    for name, definition in out.get("$defs", {}).items():
        if name in _ENUM_DESCRIPTIONS:
            definition["description"] = _ENUM_DESCRIPTIONS[name]
    return out


def schema_text() -> str:
    """The committed ``docs/doctor-report.schema.json``, byte for byte."""
    return json.dumps(schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ipvslab.doctor.report",
        description="Print (or --write) the JSON schema of `ipvslab doctor --json`.",
    )
    parser.add_argument("--write", metavar="PATH", type=Path, help=f"write it (to {SCHEMA_PATH})")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(schema_text())
    else:
        args.write.write_text(schema_text(), encoding="utf-8")
        print(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
