"""The what-if answer for a terminal: one column per variant, each figure as the range
over the seeds, then the recommendation and the assumptions."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ipvslab.what_if.result import Range, WhatIfReport, WhatIfVariant


def _errors(v: WhatIfVariant) -> str:
    kinds: dict[str, list[int]] = {}
    for run in v.runs:
        for kind, n in run.errors.items():
            kinds.setdefault(kind, []).append(n)
    parts = [
        f"{kind} {min(ns):,}" + (f"-{max(ns):,}" if max(ns) != min(ns) else "")
        for kind, ns in kinds.items()
        if max(ns)
    ]
    return ", ".join(parts) or "none"


def _dropped(v: WhatIfVariant) -> Range:
    values = [r.first_packet_dropped for r in v.runs]
    return Range(low=min(values, default=None), high=max(values, default=None))


def render_what_if(report: WhatIfReport, console: Console) -> None:
    actions = " and ".join(report.actions) or "no action"
    console.print(
        Text(
            f"What if: {actions} (at {report.action_at_s} s into each run, then"
            f" {report.after_s} s; seeds {', '.join(map(str, report.seeds))})",
            style="bold",
        ),
        soft_wrap=True,
    )
    table = Table(show_header=True, header_style="bold")
    table.add_column("", overflow="fold")
    ran = [v for v in report.variants if v.refused is None]
    # Long labels (sysctl=expire_quiescent_template=1) would wrap mid-word in 80 columns:
    # then the columns are lettered and the letters explained under the table.
    lettered = sum(len(v.label) for v in ran) > 40
    for i, v in enumerate(ran):
        table.add_column(chr(ord("A") + i) if lettered else v.label, overflow="fold")
    rows = (
        ("to terminating/dead pods", lambda v: v.to_old_pods.text()),
        ("errors", _errors),
        ("error rate", lambda v: v.error_rate.text("{:.1%}")),
        ("connect p99", lambda v: v.connect_p99_ms.text("{:,.1f} ms")),
        ("old servers stay (longest)", lambda v: v.longest_stay_s.text("{:,.0f} s")),
        ("old servers never deleted", lambda v: v.old_servers_kept.text()),
        ("first packets dropped", lambda v: _dropped(v).text()),
        (
            "new pods' share (even)",
            lambda v: (
                v.new_pods_share.text("{:.0%}")
                + (f" ({v.fair_share.text('{:.0%}')})" if v.fair_share.low is not None else "")
            ),
        ),
    )
    for label, cell in rows:
        table.add_row(label, *(cell(v) for v in ran))
    console.print(table)
    if lettered:
        for i, v in enumerate(ran):
            console.print(Text(f"{chr(ord('A') + i)} = {v.label}"), soft_wrap=True)
    for line in report.recommendation:
        console.print(Text("-> " + line), soft_wrap=False)
    console.print(Text("Assumptions: " + "; ".join(report.assumptions), style="dim"))
    services = ", ".join(f"{name} = {label}" for label, name in report.services.items())
    console.print(Text(f"Services modelled: {services}", style="dim"))
