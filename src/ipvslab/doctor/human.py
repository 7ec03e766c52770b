"""The report for people: a header about the node, then each finding, then input problems.

Rendered from the same ``Report`` as ``--json`` so the two never disagree. Every
piece of input text goes through ``rich.text.Text`` (never markup), so brackets in
IPv6 addresses or odd input cannot restyle or break the output. Commands and
evidence lines are never wrapped (``soft_wrap``) so they copy and paste whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.text import Text

from ipvslab.doctor.finding import Severity
from ipvslab.doctor.report import ExposureInfo, FindingInfo, KernelInfo, NodeInfo, Report
from ipvslab.doctor.wording import plural
from ipvslab.kernel.presets import era_for

SEVERITY_STYLE = {
    Severity.CRITICAL: "bold red",
    Severity.WARNING: "bold yellow",
    Severity.INFO: "bold cyan",
}
NO_IPVS = (
    "No IPVS on this node: /proc/net/ip_vs does not exist (why, and what to do: the note"
    " below). Nothing to check in the IPVS tables; versions and sysctls follow."
)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` with control characters (escape sequences from odd input) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _printable_values(value: Any) -> Any:
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(str(k)): _printable_values(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable_values(v) for v in value]
    return value


def render(
    report: Report,
    console: Console,
    *,
    title: str | None = None,
    fail_on: Severity = Severity.WARNING,
) -> None:
    """Prints the whole report (header, findings, input problems, result line)."""
    # Input text reaches the terminal: no control character or escape sequence of it may.
    report = Report.model_validate(_printable_values(report.model_dump()))
    if title:
        console.print(Text(printable(title), style="bold"), soft_wrap=True)
    if report.node.ipvs_present is False:
        print_wrapped(console, Text(NO_IPVS, style="bold"))
        console.print()
    render_header(report, console)
    if report.services:
        console.print()
        render_services(report, console)
    console.print()
    render_findings(report.findings, console)
    if report.input_problems:
        console.print()
        render_input_problems(report, console)
    if report.what_if is not None:
        from ipvslab.what_if.render import render_what_if

        console.print()
        render_what_if(report.what_if, console)
    console.print()
    render_result(report, console, fail_on=fail_on)


# --------------------------------------------------------------------------- header


LABEL_WIDTH = 12


def render_header(report: Report, console: Console) -> None:
    # A terminal that cannot show the arrow (a latin-1 locale) gets ASCII.
    arrow = "→" if console.encoding.lower().startswith("utf") else "->"
    for label, value in _header_rows(report, arrow):
        print_row(console, label, value)


def print_row(console: Console, label: str, value: Text, indent: int = LABEL_WIDTH) -> None:
    """``label`` then ``value`` wrapped with a hanging indent (no trailing blanks)."""
    print_wrapped(console, value, indent=indent, first=Text(label.ljust(indent), style="bold"))


def print_wrapped(
    console: Console, text: Text, *, indent: int = 0, first: Text | None = None
) -> None:
    """``text`` wrapped to the console, every line indented, none with trailing blanks."""
    width = max(console.width - indent, 20)
    for i, line in enumerate(text.wrap(console, width, justify="default", overflow="fold")):
        line.rstrip()
        head = first if i == 0 and first is not None else Text(" " * indent)
        console.print(head + line, soft_wrap=True)


def _header_rows(report: Report, arrow: str) -> Iterable[tuple[str, Text]]:
    node = report.node
    where = report.input
    if where.hostname or where.collected_at:
        text = Text(where.hostname or "?")
        if where.collected_at:
            text.append(f", captured {where.collected_at}", style="dim")
        yield "Node", text
    yield from _kernel_rows(node, arrow)
    distro = node.distro
    if distro is not None and (distro.pretty_name or distro.id):
        yield "Distro", Text(distro.pretty_name or f"{distro.id} {distro.version_id or ''}".strip())
    else:
        yield "Distro", Text("not captured (/etc/os-release)", style="dim")
    yield "kube-proxy", _kube_proxy_text(report)
    yield from _ipvs_rows(report)
    pad = max((len(name) for name in node.sysctls), default=0)
    for i, (name, s) in enumerate(node.sysctls.items()):
        line = Text(f"net.ipv4.vs.{name.ljust(pad)} = {s.value}")
        line.append(f"  {s.detail}", style="dim")
        yield ("Sysctls" if i == 0 else ""), line
    yield from _exposure_rows(report.exposure, ipvs_present=node.ipvs_present)
    for note in report.input.notes:
        yield "Note", Text(note)


def _backported(k: KernelInfo) -> list[str]:
    """Features this kernel has that mainline at its version lacks (distro backports)."""
    assert k.version is not None
    major, minor = (int(n) for n in k.version.split(".")[:2])
    mainline = {f.value for f in era_for(major, minor).features.enabled}
    return [f for f in k.features if f not in mainline]


def _kernel_rows(node: NodeInfo, arrow: str) -> Iterable[tuple[str, Text]]:
    k = node.kernel
    if k.release is None and k.version is None:
        text = Text("not captured (uname -r)", style="yellow")
        text.append("; pass --kernel RELEASE to judge exposure", style="dim")
        yield "Kernel", text
        return
    text = Text(k.release or "?")
    if k.version is not None:
        text.append(f" {arrow} ")
        if k.preset is not None:
            text.append(f"preset {k.preset}", style="bold")
            if k.distro:
                text.append(f" ({k.distro})")
            text.append(", ")
        text.append(f"mainline-equivalent {k.version}, era {k.era}")
        backported = _backported(k)
        if backported:
            # A distro kernel's backports make it behave unlike its version's era.
            text.append(f" by number, with backported {', '.join(backported)}")
    if k.problem is not None:
        doubt = "era uncertain" if k.version is not None else "unknown"
        text.append(f" {arrow} {doubt}: {k.problem}", style="yellow")
    yield "Kernel", text
    if k.version is not None:
        features = ", ".join(k.features) or "none of the tracked IPVS changes"
        yield "", Text(f"features: {features}", style="dim")
    for warning in k.warnings:
        yield "", Text(f"warning: {warning}", style="yellow")


def _kube_proxy_text(report: Report) -> Text:
    kp = report.node.kube_proxy
    if kp is None:
        return Text("not found (no command line, config or version captured)", style="dim")
    text = Text(kp.version or "version unknown")
    if kp.version is None:
        text.append(" (pass --kube-proxy-version vX.Y.Z)", style="dim")
    settings_read = any(
        k.startswith("kube-proxy/") and k != "kube-proxy/version.txt" for k in report.input.sources
    )
    if kp.mode:
        text.append(f", mode {kp.mode}")
    elif settings_read:
        text.append(", mode not set (iptables by default)")
    else:
        text.append(", mode unknown (no command line or config captured)")
    if kp.source:
        text.append(f"  (from {kp.source})", style="dim")
    return text


def _ipvs_rows(report: Report) -> Iterable[tuple[str, Text]]:
    node = report.node
    if node.ipvs_present is False:
        yield "IPVS", Text("absent on this node", style="bold")
        return
    parts: list[str] = []
    if node.services is not None:
        parts.append(f"{plural(node.services, 'virtual service')}, ")
        parts.append(f"{plural(node.real_servers or 0, 'real server')}")
        if node.ipvs_version:
            parts.append(f" (IPVS {node.ipvs_version})")
    else:
        parts.append("no IPVS table among the inputs")
    conns = report.connections
    if conns is not None:
        states = ", ".join(f"{n} {s}" for s, n in conns.by_state.items())
        parts.append(f"; {plural(conns.total, 'connection entry', 'connection entries')}")
        if states:
            parts.append(f" ({states})")
        if conns.templates:
            parts.append(f", {plural(conns.templates, 'persistence template')}")
    yield "IPVS", Text("".join(parts))
    if conns is not None and (conns.busiest_clients or conns.client_counts.count_error):
        bound = conns.client_counts
        sketch = f"top-{bound.tracked_clients_limit} sketch of clients"
        if conns.busiest_clients:
            busiest = ", ".join(f"{c.client} ({c.entries})" for c in conns.busiest_clients[:3])
            how = (
                "exact"
                if bound.count_error == 0
                else f"each may be low by up to {bound.count_error}"
            )
            text = f"busiest clients by entries: {busiest}; counts {how} ({sketch})"
        else:
            most = plural(bound.count_error, "entry", "entries")
            text = f"no client holds more than {most} ({sketch})"
        yield "", Text(text, style="dim")
    for s in report.stuck_real_servers:
        where = f"[{s.address}]:{s.port}" if ":" in s.address else f"{s.address}:{s.port}"
        entries = (
            f", {plural(s.entries, 'entry', 'entries')} of this service in the connection table"
            if s.entries is not None
            else ""
        )
        yield (
            "",
            Text(
                f"weight 0 but still holding entries: {where} in {s.service} "
                f"({s.active_conns} active, {s.inactive_conns} inactive{entries})",
                style="yellow",
            ),
        )


def _exposure_rows(
    exposure: ExposureInfo, *, ipvs_present: bool | None
) -> Iterable[tuple[str, Text]]:
    if not exposure.known:
        style = "yellow"
    elif exposure.stale_forwarding or exposure.syn_drop:
        style = "bold red"
    else:
        style = "green"
    verdict = Text(exposure.verdict, style=style)
    if ipvs_present is False and exposure.known:
        verdict = Text("none while IPVS is not loaded; once loaded with these settings: ") + verdict
    yield "Exposure", verdict
    reason = exposure.reason
    if exposure.known:
        reason = f"a SYN from a reused client port, old entry in {exposure.old_state}: {reason}"
    yield "", Text(reason, style="dim")


# --------------------------------------------------------------------------- IPVS table

# Services the human output lists (the ones worth a look first); --json has them all.
SERVICES_SHOWN = 12


def render_services(report: Report, console: Console) -> None:
    """The IPVS table, compact: each service, its real servers, and the entries of that
    service to each by state (weight-0 servers and busy services first)."""
    shown = sorted(report.services, key=_service_rank)[:SERVICES_SHOWN]
    order = {id(svc): i for i, svc in enumerate(report.services)}
    shown.sort(key=lambda svc: order[id(svc)])
    head = f"IPVS table ({plural(len(report.services), 'service')}"
    if len(shown) < len(report.services):
        head += f", the {len(shown)} with weight-0 servers or the most entries; --json has all"
    console.print(Text(head + ")", style="bold"), soft_wrap=True)
    for svc in shown:
        line = Text(f"  {svc.name} {svc.scheduler}")
        if svc.persistence_timeout is not None:
            line.append(f" persistent {_persistence(svc)}")
        if "ops" in svc.flags:
            line.append(" ops")
        if svc.stats is not None:
            line.append(
                f"  ({svc.stats.conns} conns, {svc.stats.in_packets}/{svc.stats.out_packets}"
                " packets in/out in all)",
                style="dim",
            )
        if svc.removed_entries:
            line.append(
                f"  {plural(svc.removed_entries, 'entry', 'entries')} to removed servers",
                style="yellow",
            )
        console.print(line, soft_wrap=True)
        for rs in svc.real_servers:
            where = f"[{rs.address}]:{rs.port}" if ":" in rs.address else f"{rs.address}:{rs.port}"
            row = Text(
                f"    -> {where} {rs.forward} weight {rs.weight}, ActiveConn {rs.active_conns},"
                f" InActConn {rs.inactive_conns}",
                style="yellow" if rs.weight == 0 and (rs.entries or rs.active_conns) else "",
            )
            if rs.entries is not None:
                states = ", ".join(
                    f"{state} {n}" for state, n in sorted(rs.by_state.items(), key=lambda x: -x[1])
                )
                row.append(f"; {plural(rs.entries, 'entry', 'entries')}")
                if states:
                    row.append(f" ({states})")
            if rs.templates:
                row.append(f", {plural(rs.templates, 'template')}")
                if rs.invalidated_templates:
                    row.append(f" ({rs.invalidated_templates} given up)")
            if rs.stats is not None:
                row.append(f"; {rs.stats.conns} conns in all", style="dim")
            console.print(row, soft_wrap=True)
    if report.unattributed_entries:
        console.print(
            Text(
                f"  {plural(report.unattributed_entries, 'entry', 'entries')} of services no"
                " longer in the table",
                style="yellow",
            ),
            soft_wrap=True,
        )
    stats = report.ipvs_stats
    if stats is not None:
        console.print(
            Text(
                f"  since boot: {_counters_text(stats.totals)}; now: {stats.rates.conns} conn/s,"
                f" {stats.rates.in_packets}/{stats.rates.out_packets} packets/s in/out,"
                f" {stats.rates.in_bytes}/{stats.rates.out_bytes} bytes/s in/out",
                style="dim",
            ),
            soft_wrap=True,
        )


def _service_rank(svc: Any) -> tuple[int, int]:
    attention = any(rs.weight == 0 and (rs.entries or rs.active_conns) for rs in svc.real_servers)
    entries = sum(rs.entries or 0 for rs in svc.real_servers) + svc.removed_entries
    return (0 if attention or svc.removed_entries else 1, -entries)


def _persistence(svc: Any) -> str:
    if svc.persistence_unit == "seconds" or len(svc.persistence_seconds) == 1:
        return f"{svc.persistence_seconds[0]} s" if svc.persistence_seconds else ""
    return f"{svc.persistence_timeout} jiffies"


def _counters_text(c: Any) -> str:
    approx = " (at least)" if c.approximate else ""
    return (
        f"{c.conns} conns, {c.in_packets}/{c.out_packets} packets in/out,"
        f" {c.in_bytes}/{c.out_bytes} bytes in/out{approx}"
    )


# --------------------------------------------------------------------------- findings


def render_findings(findings: list[FindingInfo], console: Console) -> None:
    if not findings:
        console.print(Text("Findings: none", style="bold green"))
        return
    counts: dict[Severity, int] = {}
    for f in findings:
        counts[f.severity] = counts.get(f.severity, 0) + 1
    summary = ", ".join(f"{n} {s.value}" for s, n in sorted(counts.items(), key=_worst_first))
    print_wrapped(console, Text(f"Findings ({len(findings)}: {summary})", style="bold"))
    for f in findings:
        console.print()
        render_finding(f, console)


def _worst_first(item: tuple[Severity, int]) -> int:
    return -item[0].rank


def render_finding(f: FindingInfo, console: Console) -> None:
    head = Text()
    head.append(f.severity.value.upper(), style=SEVERITY_STYLE[f.severity])
    head.append(f"  {f.title}", style="bold")
    head.append(f"  [{f.id.value}]", style="dim")
    print_wrapped(console, head, indent=2, first=Text())
    if f.subject:
        print_wrapped(console, Text(f"about: {f.subject}"), indent=2)
    if f.evidence:
        console.print(Text("  evidence:", style="bold"))
        for line in f.evidence:
            console.print(Text(f"    {line}"), soft_wrap=True)
    if f.meaning:
        meaning = Text("meaning: ", style="bold")
        meaning.append(f.meaning)
        print_wrapped(console, meaning, indent=2)
    if f.fix:
        console.print(Text("  fix:", style="bold"))
        for line in f.fix:
            console.print(Text(f"    {line}", style="cyan"), soft_wrap=True)


# --------------------------------------------------------------------------- problems, result


def render_input_problems(report: Report, console: Console) -> None:
    problems = report.input_problems
    print_wrapped(
        console,
        Text(
            f"Input problems ({len(problems)}): skipped; everything else above was diagnosed",
            style="bold yellow",
        ),
    )
    for p in problems:
        console.print(Text(f"  {p}"), soft_wrap=True)


def render_result(report: Report, console: Console, *, fail_on: Severity) -> None:
    failing = report.at_or_above(fail_on)
    if failing:
        text = Text(
            f"Result: {plural(len(failing), 'finding')} at or above {fail_on.value}",
            style=SEVERITY_STYLE[max((f.severity for f in failing), key=lambda s: s.rank)],
        )
    elif report.inconclusive:
        text = Text(
            f"Result: inconclusive: no finding at or above {fail_on.value}, but the node"
            " could not be judged (" + "; ".join(report.inconclusive) + ")",
            style="yellow",
        )
    else:
        text = Text(f"Result: healthy (no finding at or above {fail_on.value})", style="green")
    if report.input_problems:
        text.append(
            f"; {plural(len(report.input_problems), 'input problem')}: the diagnosis is incomplete",
            style="yellow",
        )
    print_wrapped(console, text)
