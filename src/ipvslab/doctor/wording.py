"""Counts in words: "1 client", "2 clients", "1 entry", "3 entries"."""

from __future__ import annotations


def plural(n: int, one: str, many: str | None = None) -> str:
    """``n`` followed by the noun in the number it takes (``many`` defaults to one + s)."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def n_entries(n: int) -> str:
    """``n`` connection-table entries: "1 entry", "40 entries"."""
    return plural(n, "entry", "entries")
