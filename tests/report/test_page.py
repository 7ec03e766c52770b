"""The page shell: what callers give it is escaped, figures share one plotly.js,
links reach their sections."""

from __future__ import annotations

import plotly.graph_objects as go

from ipvslab.report.page import Cell, Facts, Figure, Page, Section, Table, Text, anchor


def _figure(name: str) -> go.Figure:
    return go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name=name))


def test_text_from_a_folder_is_escaped_not_run() -> None:
    hostile = "<script>alert(1)</script> & <b>"
    page = Page(
        hostile,
        sections=[
            Section(
                "s",
                hostile,
                [Text([hostile]), Facts([(hostile, hostile)]), Table([hostile], [[hostile]])],
            )
        ],
    )
    text = page.render()
    assert "<script>alert(1)" not in text
    # <title>, <h1>, the contents, <h2>, the paragraph, both sides of the fact, the
    # table's header and cell: nine places, all escaped.
    assert text.count("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;") == 9


def test_two_figures_share_one_plotly_bundle_and_get_their_own_divs() -> None:
    page = Page(
        "two",
        sections=[
            Section("a", "A", [Figure(_figure("first"))]),
            Section("b", "B", [], [Section("b1", "B1", [Figure(_figure("second"), "note")])]),
        ],
    )
    text = page.render()
    assert text.count("* plotly.js v") == 1
    assert 'id="figure-1"' in text and 'id="figure-2"' in text
    assert [t.name for f in page.figures() for t in f.data] == ["first", "second"]
    assert "<h3>B1</h3>" in text


def test_a_linked_coloured_cell_points_at_a_section() -> None:
    target = anchor("run", "one-second-delay", "kernel 5.10 + kp 1.22")
    assert target == "run-one-second-delay-kernel-5-10---kp-1-22"
    page = Page(
        "links",
        sections=[
            Section("m", "M", [Table(["x"], [[Cell("✓ 0%", "verdict-cured", "#" + target)]])]),
            Section(target, "run"),
        ],
    )
    text = page.render()
    assert f'<td class="verdict-cured"><a href="#{target}">✓ 0%</a></td>' in text
    assert f'<section id="{target}">' in text


def test_a_page_without_figures_carries_no_plotly() -> None:
    text = Page("table only", sections=[Section("t", "T", [Table(["a"], [["1"]])])]).render()
    assert "plotly.js" not in text.split("<footer>")[0]
    assert len(text) < 20_000
