"""The page of ``ipvslab doctor --what-if --report FILE``: the prediction per variant as
a table and as bars (each bar the mean over the seeds, its whisker the range), the
recommendation, and what the twin was given (the node, the services, the assumptions)."""

from __future__ import annotations

import plotly.graph_objects as go

from ipvslab.report.page import Facts, Figure, Page, Section, Table, Text
from ipvslab.what_if.result import WhatIfReport, WhatIfVariant

# (row label, the variant's range, number format)
ROWS: tuple[tuple[str, str, str], ...] = (
    ("to terminating/dead pods", "to_old_pods", "{:,.0f}"),
    ("errors", "errors", "{:,.0f}"),
    ("error rate", "error_rate", "{:.1%}"),
    ("connect p99 (ms)", "connect_p99_ms", "{:,.1f}"),
    ("old servers stay, longest (s)", "longest_stay_s", "{:,.0f}"),
    ("old servers never deleted", "old_servers_kept", "{:,.0f}"),
    ("new pods' share", "new_pods_share", "{:.0%}"),
    ("new pods' even share", "fair_share", "{:.0%}"),
)


def _bars(ran: list[WhatIfVariant]) -> go.Figure:
    figure = go.Figure()
    for name, attribute in (("to terminating/dead pods", "to_old_pods"), ("errors", "errors")):
        means, plus, minus = [], [], []
        for v in ran:
            values = (
                [float(getattr(r, attribute)) for r in v.runs]
                if attribute != "errors"
                else [float(sum(r.errors.values())) for r in v.runs]
            )
            mean = sum(values) / len(values) if values else 0.0
            means.append(mean)
            plus.append(max(values, default=0.0) - mean)
            minus.append(mean - min(values, default=0.0))
        figure.add_trace(
            go.Bar(
                name=name,
                x=[v.label for v in ran],
                y=means,
                error_y={"type": "data", "symmetric": False, "array": plus, "arrayminus": minus},
            )
        )
    figure.update_layout(
        barmode="group",
        yaxis_title="connections from the action on (mean over seeds)",
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 30, "b": 80},
    )
    return figure


def build(report: WhatIfReport, node: list[tuple[str, str]], title: str) -> Page:
    """``node``: the facts of the node as the doctor read it (kernel, kube-proxy, ...)."""
    ran = [v for v in report.variants if v.refused is None]
    table = Table(
        ["", *(v.label for v in ran)],
        [
            [label, *(getattr(v, attribute).text(fmt, joiner=" - ") for v in ran)]
            for label, attribute, fmt in ROWS
        ],
        caption=f"From the action on ({report.action_at_s} s into each run, then"
        f" {report.after_s} s), each figure the range over seeds"
        f" {', '.join(map(str, report.seeds))}.",
    )
    refused = [f"{v.label}: not possible here: {v.refused}" for v in report.variants if v.refused]
    actions = " and ".join(report.actions) or "no action"
    return Page(
        title,
        f"what if: {actions}",
        [
            Section(
                "prediction",
                "Prediction",
                [Figure(_bars(ran)), table, *([Text(refused)] if refused else [])],
            ),
            Section("recommendation", "Recommendation", [Text(report.recommendation)]),
            Section(
                "setup",
                "What the twin was given",
                [
                    Facts(node),
                    Facts(sorted(report.services.items()), folded="services modelled"),
                    Text(report.assumptions),
                ],
            ),
        ],
    )
