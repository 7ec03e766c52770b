"""The report's plots, built with plotly from a run's tables (polars frames).

The same four pictures serve a run folder and each run of a reproduce folder:
shares of new connections per real server over time, errors over time by kind,
the connect-time CDF, and the real servers stuck at weight 0 with kube-proxy's
attempts to delete them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import plotly.graph_objects as go
import polars as pl

from ipvslab.report.page import Figure, Text

# Errno -> colour, and the order they are drawn in.
ERROR_COLOURS = {
    "EHOSTUNREACH": "#d62728",
    "ECONNREFUSED": "#ff7f0e",
    "ETIMEDOUT": "#9467bd",
    "EADDRNOTAVAIL": "#8c564b",
}
# Other per-interval counts of the time series drawn beside the errors.
ROUTING_LINES = {
    "to_weight0": ("sent to a weight-0 server", "#1f77b4", "dash"),
    "to_removed_or_gone": ("sent to a removed server or a gone pod", "#17becf", "dash"),
    "first_syn_dropped": ("first SYN dropped (1 s retransmission)", "#7f7f7f", "dot"),
}
# A dropped first SYN is retransmitted after the initial RTO of 1 s (RFC 6298, the
# client kernel's TCP_TIMEOUT_INIT); #70747's delays sit on this line.
ONE_SECOND_MS = 1000.0
CDF_POINTS = 400  # points per CDF curve: enough to show a step, small on the page


def block(drawn: go.Figure | str, caption: str = "") -> Figure | Text:
    """The figure, or the note saying why there is nothing to draw."""
    return Text([drawn]) if isinstance(drawn, str) else Figure(drawn, caption)


_LAYOUT: dict[str, Any] = {
    "template": "plotly_white",
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "legend": {"orientation": "h", "y": -0.2},
    "height": 380,
}


@dataclass(frozen=True)
class Marker:
    """Something that happened at a time: a rollout, a scale-out, a sysctl change."""

    t_s: float
    label: str


def events_of(spec: dict[str, Any] | None, pods: pl.DataFrame) -> list[Marker]:
    """The scenario's events as markers; without the scenario (a folder written before
    ipvslab recorded it), the Deployment-level rows of the pod log (rollouts, scales)."""
    markers: list[Marker] = []
    if spec is not None:
        for event in spec.get("events") or []:
            if not isinstance(event, dict):
                continue
            action = next((k for k, v in event.items() if k != "at" and v is not None), "event")
            payload = event.get(action)
            what = [action]
            if isinstance(payload, dict):
                what += [str(payload[k]) for k in ("service", "node") if payload.get(k) is not None]
                if payload.get("pod") is not None and action != "rollout":
                    what.append(f"pod {payload['pod']}")
                if payload.get("name") is not None:
                    what.append(f"{payload['name']}={payload.get('value')}")
                if "replicas" in payload:
                    what.append(f"to {payload['replicas']}")
                if "weight" in payload:
                    what.append(f"weight {payload['weight']}")
                if "ready" in payload:
                    what.append("ready" if payload["ready"] else "not ready")
            at = event.get("at")
            if isinstance(at, int | float):
                markers.append(Marker(at / 1e6, " ".join(what)))
        return markers
    if pods.height:
        for t_us, pod, what in pods.filter(
            pl.col("event").str.starts_with("rollout") | pl.col("event").str.starts_with("scaled")
        ).iter_rows():
            markers.append(Marker(t_us / 1e6, f"{pod}: {what}"))
    return markers


def _mark(figure: go.Figure, markers: Sequence[Marker]) -> None:
    # Labels of events close together are staggered, so they do not print over each other.
    last: float | None = None
    level = 0
    for marker in sorted(markers, key=lambda m: m.t_s):
        level = level + 1 if last is not None and marker.t_s - last < 15 else 0
        last = marker.t_s
        figure.add_vline(x=marker.t_s, line_dash="dash", line_color="#444")
        figure.add_annotation(
            x=marker.t_s,
            y=1 - 0.08 * (level % 5),
            yref="paper",
            text=marker.label,
            showarrow=False,
            xanchor="left",
            font={"size": 10},
            bgcolor="rgba(255,255,255,0.7)",
        )


def shares_figure(
    shares: pl.DataFrame,
    markers: Sequence[Marker],
    title: str,
    pods: Sequence[str] = (),
    end_s: float | None = None,
) -> go.Figure | str:
    """Each pod's share of new connections per interval, stacked, events marked; every
    pod in ``pods`` is drawn, also one that never got a connection (at 0: starved), and
    the x axis spans the run to ``end_s``."""
    figure = go.Figure(layout={**_LAYOUT, "title": title})
    figure.update_xaxes(title_text="time (s)")
    if end_s is not None:
        figure.update_xaxes(range=[0, end_s])
    figure.update_yaxes(title_text="share of new connections", range=[0, 1], tickformat=".0%")
    if shares.height == 0:
        return f"{title}: no connection reached a pod."
    grid = (
        shares.pivot(on="pod", index="t_s", values="share", aggregate_function="sum")
        .fill_null(0.0)
        .sort("t_s")
    )
    for pod in sorted({*pods} - set(grid.columns)):
        grid = grid.with_columns(pl.lit(0.0).alias(pod))
    for pod in sorted(c for c in grid.columns if c != "t_s"):
        figure.add_trace(
            go.Scatter(
                x=grid["t_s"].to_list(),
                y=grid[pod].to_list(),
                name=pod,
                mode="lines",
                stackgroup="shares",
                line={"width": 0.5},
            )
        )
    _mark(figure, markers)
    return figure


def errors_figure(series: pl.DataFrame, markers: Sequence[Marker], title: str) -> go.Figure | str:
    """Failed attempts per interval by errno, and where the first SYNs went."""
    figure = go.Figure(layout={**_LAYOUT, "title": title})
    figure.update_xaxes(title_text="time (s)")
    figure.update_yaxes(title_text="attempts per interval", rangemode="tozero")
    if series.height == 0:
        return f"{title}: the run has no interval."
    x = series["t_s"].to_list()
    for errno, colour in ERROR_COLOURS.items():
        if errno in series.columns:
            figure.add_trace(
                go.Scatter(x=x, y=series[errno].to_list(), name=errno, line={"color": colour})
            )
    for column, (label, colour, dash) in ROUTING_LINES.items():
        if column in series.columns:
            figure.add_trace(
                go.Scatter(
                    x=x,
                    y=series[column].to_list(),
                    name=label,
                    line={"color": colour, "dash": dash},
                )
            )
    _mark(figure, markers)
    return figure


def cdf_points(connect_us: pl.Series) -> tuple[list[float], list[float]]:
    """The empirical CDF of connect times (ms), at most CDF_POINTS points, always
    including the smallest and largest value."""
    ordered = connect_us.drop_nulls().sort()
    n = ordered.len()
    if n == 0:
        return [], []
    count = min(n, CDF_POINTS)
    ranks = sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(count)})
    values = ordered.gather(ranks).to_list()
    return [float(v) / 1000.0 for v in values], [(r + 1) / n for r in ranks]


def latency_cdf_figure(
    curves: Sequence[tuple[str, pl.Series]],
    title: str,
    one_second_label: str = "1 s: a dropped first SYN",
) -> go.Figure | str:
    """Connect time of established connections, one CDF per configuration (log time
    axis, so a 0.2 ms connect and a 1 s retransmission both show)."""
    figure = go.Figure(layout={**_LAYOUT, "title": title})
    figure.update_xaxes(title_text="connect time (ms, log)", type="log")
    figure.update_yaxes(title_text="fraction of established", range=[0, 1.02], tickformat=".0%")
    drawn = 0
    for label, connect_us in curves:
        xs, ys = cdf_points(connect_us)
        if not xs:
            continue
        drawn += 1
        figure.add_trace(
            go.Scatter(x=xs, y=ys, name=label, mode="lines", line={"shape": "hv"}, meta=label)
        )
    if not drawn:
        return f"{title}: no connection was established."
    # Log axis from a decade below the fastest to past 1 s: a curve whose connects all
    # take one value (0.2 ms) is then a visible step, not a line on the axis.
    fastest = min(
        (float(s.drop_nulls().min()) / 1000.0 for _, s in curves if s.drop_nulls().len()),  # type: ignore[arg-type]
        default=0.1,
    )
    slowest = max(
        (float(s.drop_nulls().max()) / 1000.0 for _, s in curves if s.drop_nulls().len()),  # type: ignore[arg-type]
        default=ONE_SECOND_MS,
    )
    low = math.log10(max(fastest, 1e-3)) - 0.5
    high = math.log10(max(slowest, ONE_SECOND_MS) * 3)
    figure.update_xaxes(range=[low, high])
    figure.add_vline(
        x=ONE_SECOND_MS,
        line_dash="dot",
        line_color="#d62728",
        annotation_text=one_second_label,
        annotation_position="bottom right",
    )
    return figure


def stuck_servers_figure(
    samples: pl.DataFrame,
    server_log: pl.DataFrame,
    markers: Sequence[Marker],
    title: str,
    dataplane: str = "ipvs",
) -> go.Figure | str:
    """One row per real server: the samples where it sat at weight 0 on kube-proxy's
    graceful termination list, and kube-proxy's changes to it (weight 0, the
    one-minute check that kept it because it still had connections, deletion)."""
    figure = go.Figure(layout={**_LAYOUT, "title": title})
    figure.update_xaxes(title_text="time (s)")
    if samples.height == 0 and server_log.height == 0:
        return f"{title}: no IPVS real servers (dataplane {dataplane})."
    label = pl.concat_str(pl.col("server"), pl.lit(" on "), pl.col("node")).alias("label")
    stuck = samples.filter(pl.col("terminating") & (pl.col("weight") == 0)).with_columns(label)
    log = server_log.with_columns(label)
    rows = sorted(set(stuck["label"].to_list()) | set(log["label"].to_list()))
    figure.update_layout(height=max(300, 24 * len(rows) + 160))
    figure.update_yaxes(categoryorder="array", categoryarray=rows, type="category")
    if stuck.height:
        figure.add_trace(
            go.Scatter(
                x=(stuck["time_us"] / 1e6).to_list(),
                y=stuck["label"].to_list(),
                mode="markers",
                name="at weight 0 on the graceful termination list",
                marker={"symbol": "square", "size": 6, "color": "#bbbbbb"},
                customdata=stuck.select("active", "inactive").rows(),
                hovertemplate="%{x:.0f}s: ActiveConn %{customdata[0]},"
                " InActConn %{customdata[1]}<extra></extra>",
            )
        )
    styles = {
        "weight-0": ("set to weight 0 (deletion postponed)", "triangle-down", "#ff7f0e"),
        "kept": ("deletion attempt: kept, connections remain", "x", "#d62728"),
        "deleted": ("deleted", "circle", "#2ca02c"),
    }
    for action, (name, symbol, colour) in styles.items():
        rows_of = log.filter(pl.col("action") == action)
        if rows_of.height:
            figure.add_trace(
                go.Scatter(
                    x=(rows_of["time_us"] / 1e6).to_list(),
                    y=rows_of["label"].to_list(),
                    mode="markers",
                    name=name,
                    marker={"symbol": symbol, "size": 10, "color": colour},
                )
            )
    if not stuck.height and not any(log["action"].is_in(list(styles)).to_list()):
        return f"{title}: no real server was set to weight 0."
    _mark(figure, markers)
    return figure
