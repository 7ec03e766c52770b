"""The sweep's page (sweep.html): one metric against the swept fields, self-contained.

The plot puts the first swept field (or ``--x``) on the x axis and draws one line per
combination of the other swept fields' values (``cluster.kernel=4.19``); runs that
differ only in their seed are one point, their mean, with bars from the lowest to
the highest. The page inlines plotly.js once and loads nothing from elsewhere, so
it opens offline. Below the plot, the table of what was plotted.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from .expand import SEED

DEFAULT_METRIC = "error_rate"
MAX_TABLE_ROWS = 2_000
"""Rows of the table under the plot (the page stays small; the data is in results.*)."""


class PageError(ValueError):
    """A metric or x field the table cannot plot."""


@dataclass
class Line:
    """One line of the plot: the other swept fields' values, and its points."""

    label: str
    x: list[Any] = field(default_factory=list)
    mean: list[float | None] = field(default_factory=list)
    low: list[float | None] = field(default_factory=list)
    high: list[float | None] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)


def numeric_columns(frame: pl.DataFrame, parameters: Sequence[str]) -> list[str]:
    """The metrics a page can plot."""
    skip = {"run", "scenario_hash", *parameters}
    return [
        name
        for name, dtype in frame.schema.items()
        if name not in skip and (dtype.is_numeric() or dtype == pl.Boolean)
    ]


def lines(
    frame: pl.DataFrame, parameters: Sequence[str], metric: str, x: str | None = None
) -> tuple[str, list[Line]]:
    """The x field and the lines of the plot of ``metric``."""
    if metric not in frame.columns:
        known = ", ".join(numeric_columns(frame, parameters)[:40]) or "none yet"
        raise PageError(f"--metric {metric!r} is not a column of the table; metrics: {known}")
    if metric not in numeric_columns(frame, parameters):
        raise PageError(f"--metric {metric!r} is not a number")
    swept = [p for p in parameters if p != SEED] or [SEED]
    x = x or swept[0]
    if x not in parameters:
        raise PageError(f"--x {x!r} is not a swept field; swept: {', '.join(parameters)}")
    others = [p for p in swept if p != x]
    grouped: dict[tuple[Any, ...], dict[Any, list[float]]] = {}
    seeds: dict[tuple[Any, ...], dict[Any, int]] = {}
    for row in frame.iter_rows(named=True):
        key = tuple(row[p] for p in others)
        value = row[metric]
        points = grouped.setdefault(key, {})
        points.setdefault(row[x], [])
        seeds.setdefault(key, {}).setdefault(row[x], 0)
        if value is not None:
            points[row[x]].append(float(value))
            seeds[key][row[x]] += 1
    numeric_x = frame.schema[x].is_numeric()
    result: list[Line] = []
    for key, points in grouped.items():
        label = ", ".join(f"{p}={_show(v)}" for p, v in zip(others, key, strict=True))
        line = Line(label or metric)
        order = sorted(points, key=lambda v: (v is None, v)) if numeric_x else list(points)
        for value in order:
            got = points[value]
            line.x.append(value)
            line.mean.append(sum(got) / len(got) if got else None)
            line.low.append(min(got) if got else None)
            line.high.append(max(got) if got else None)
            line.seeds.append(seeds[key][value])
        result.append(line)
    return x, result


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


def figure(x: str, plotted: list[Line], metric: str) -> Any:
    """A plotly figure of the lines."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for line in plotted:
        spread = any(n > 1 for n in line.seeds)
        error_y = None
        if spread:
            error_y = {
                "type": "data",
                "symmetric": False,
                "array": [
                    h - m if h is not None and m is not None else None
                    for h, m in zip(line.high, line.mean, strict=True)
                ],
                "arrayminus": [
                    m - lo if lo is not None and m is not None else None
                    for lo, m in zip(line.low, line.mean, strict=True)
                ],
            }
        fig.add_trace(
            go.Scatter(
                x=[_show(v) if not isinstance(v, int | float) else v for v in line.x],
                y=line.mean,
                mode="lines+markers",
                name=line.label,
                error_y=error_y,
                customdata=line.seeds,
                hovertemplate=f"{html.escape(x)}=%{{x}}<br>{html.escape(metric)}=%{{y}}"
                "<br>seeds: %{customdata}<extra>%{fullData.name}</extra>",
            )
        )
    fig.update_layout(
        xaxis_title=x,
        yaxis_title=metric
        + (
            " (mean over seeds, bars: lowest to highest)"
            if any(n > 1 for line in plotted for n in line.seeds)
            else ""
        ),
        legend_title="",
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 30, "b": 60},
    )
    return fig


def render(
    frame: pl.DataFrame,
    parameters: Sequence[str],
    metric: str = DEFAULT_METRIC,
    x: str | None = None,
    title: str = "sweep",
    facts: dict[str, str] | None = None,
) -> str:
    """The page's HTML, on the report's page shell (plotly.js inlined once)."""
    from ipvslab.report.page import Facts, Figure, Page, Section, Table, Text

    x, plotted = lines(frame, parameters, metric, x)
    shown = [c for c in ("run", *parameters, metric) if c in frame.columns]
    rows = [
        [_show(row[c]) for c in shown] for row in frame.head(MAX_TABLE_ROWS).iter_rows(named=True)
    ]
    runs: list[Table | Text] = [Table(shown, rows)]
    if frame.height > MAX_TABLE_ROWS:
        runs.append(Text([f"{frame.height - MAX_TABLE_ROWS:,} more rows in results.parquet."]))
    page = Page(
        f"{title}: {metric}",
        sections=[
            Section("setup", "What ran", [Facts(list((facts or {}).items()))]),
            Section("plot", f"{metric} against {x}", [Figure(figure(x, plotted, metric))]),
            Section("runs", "Runs", list(runs)),
        ],
    )
    return page.render()
