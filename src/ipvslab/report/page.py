"""The HTML page shell every report uses: a title, facts, sections with text,
tables and plotly figures, rendered into one self-contained HTML string.

plotly.js is embedded once, in the page's head; each figure is a div and a call to
it. Nothing is loaded from elsewhere (no CDN, no web font), so the page opens
offline from a file. The layout is a Jinja2 template with autoescaping: text given
to the page is always escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import ClassVar

import jinja2
import plotly.graph_objects as go
import plotly.io as pio
from plotly.offline import get_plotlyjs

from ipvslab import __version__


@dataclass(frozen=True)
class Cell:
    """A table cell: its text, a CSS class (colour), a link and a tooltip."""

    text: str
    css: str = ""
    href: str = ""
    title: str = ""


@dataclass(frozen=True)
class Table:
    kind: ClassVar[str] = "table"
    header: Sequence[str]
    rows: Sequence[Sequence[Cell | str]]
    caption: str = ""
    css: str = ""

    def cells(self) -> list[list[Cell]]:
        return [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in self.rows]


@dataclass(frozen=True)
class Figure:
    kind: ClassVar[str] = "figure"
    figure: go.Figure
    caption: str = ""


@dataclass(frozen=True)
class Text:
    kind: ClassVar[str] = "text"
    paragraphs: Sequence[str]


@dataclass(frozen=True)
class Facts:
    """Name: value lines (the scenario, kernel, kube-proxy, sysctls, version)."""

    kind: ClassVar[str] = "facts"
    items: Sequence[tuple[str, str]]
    folded: str = ""  # when set, shown folded under this summary line


Block = Table | Figure | Text | Facts


@dataclass
class Section:
    anchor: str  # the id links point to
    title: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)

    def figures(self) -> list[go.Figure]:
        own = [b.figure for b in self.blocks if isinstance(b, Figure)]
        return own + [f for s in self.subsections for f in s.figures()]


@dataclass
class Page:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)
    legend: Sequence[tuple[str, str]] = ()  # CSS class -> meaning, for coloured cells

    def figures(self) -> list[go.Figure]:
        return [f for s in self.sections for f in s.figures()]

    def render(self) -> str:
        counter = iter(range(1, 1_000_000))

        def figure_html(block: Figure) -> str:
            html: str = pio.to_html(
                block.figure,
                full_html=False,
                include_plotlyjs=False,  # the page's head holds plotly.js, once
                div_id=f"figure-{next(counter)}",
                config={"displaylogo": False, "responsive": True},
                validate=False,
            )
            return html

        return _template().render(
            page=self,
            # A page without a figure (a reproduce of seed 002's table alone) needs none.
            plotlyjs=get_plotlyjs() if self.figures() else "",
            figure_html=figure_html,
            version=__version__,
        )


@cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ipvslab.report", "templates"),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("page.html.j2")


def anchor(*parts: str) -> str:
    """An HTML id from names (letters, digits, '-' only)."""
    text = "-".join(parts).lower()
    return "".join(c if c.isalnum() else "-" for c in text).strip("-") or "section"
