"""The sweep's page: a metric against the first swept field, one line per value of
the others, the seeds averaged; one HTML file that loads nothing from elsewhere."""

from __future__ import annotations

import re

import polars as pl
import pytest

from ipvslab.sweep.page import PageError, lines, render

PARAMETERS = ["clients.0.load.rate", "cluster.kernel", "seed"]


def frame() -> pl.DataFrame:
    rows = []
    for kernel, drops in (("4.19", {1: [0, 0], 4: [20, 30], 16: [200, 260]}), ("5.10", None)):
        for rate in (16, 1, 4):  # finished out of order: the plot sorts a numeric x
            for seed in (1, 2):
                value = 0 if drops is None else drops[rate][seed - 1]
                rows.append(
                    {
                        "run": len(rows),
                        "clients.0.load.rate": rate,
                        "cluster.kernel": kernel,
                        "seed": seed,
                        "scenario_hash": f"h{len(rows)}",
                        "first_syn_dropped": value,
                        "error_rate": 0.0,
                        "warnings": "",
                    }
                )
    return pl.DataFrame(rows)


def test_one_line_per_kernel_with_the_mean_and_spread_over_seeds() -> None:
    x, plotted = lines(frame(), PARAMETERS, "first_syn_dropped")
    assert x == "clients.0.load.rate"
    assert [line.label for line in plotted] == ["cluster.kernel=4.19", "cluster.kernel=5.10"]
    old, new = plotted
    assert old.x == [1, 4, 16]
    assert old.mean == [0, 25, 230]
    assert (old.low, old.high) == ([0, 20, 200], [0, 30, 260])
    assert old.seeds == [2, 2, 2]
    assert new.mean == [0, 0, 0]


def test_another_x_keeps_the_sweep_s_order_of_text_values() -> None:
    x, plotted = lines(frame(), PARAMETERS, "first_syn_dropped", x="cluster.kernel")
    assert x == "cluster.kernel"
    assert [line.label for line in plotted] == [
        "clients.0.load.rate=16",
        "clients.0.load.rate=1",
        "clients.0.load.rate=4",
    ]
    assert plotted[0].x == ["4.19", "5.10"]


def test_a_metric_that_is_not_a_number_column_is_refused_with_the_choices() -> None:
    with pytest.raises(PageError, match=r"'syn_drops' is not a column.*first_syn_dropped"):
        lines(frame(), PARAMETERS, "syn_drops")
    with pytest.raises(PageError, match="'warnings' is not a number"):
        lines(frame(), PARAMETERS, "warnings")


def test_the_page_is_self_contained_with_plotly_inlined_once() -> None:
    page = render(frame(), PARAMETERS, "first_syn_dropped", title="syn-drop", facts={"a": "<b>"})
    assert page.startswith("<!DOCTYPE html>")
    # Nothing loaded from elsewhere: no script or stylesheet by address, no @import.
    assert not re.search(r"<script[^>]*\bsrc=", page)
    assert not re.search(r"<link[^>]*\bhref=", page)
    assert "@import" not in page
    assert len(re.findall(r"\* plotly\.js v\d", page)) == 1
    assert page.count('class="plotly-graph-div"') == 1
    assert "&lt;b&gt;" in page and "<b>" not in page  # the facts are escaped
    _, plotted = lines(frame(), PARAMETERS, "first_syn_dropped")
    assert plotted[0].mean == [0, 25, 230]
