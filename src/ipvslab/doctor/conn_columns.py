"""Counting connection entries as columns, with polars.

A busy node's table holds millions of entries (30,000 conn/s × 120 s of TIME_WAIT is
3.6 M), most of them from distinct client addresses. Entries are counted in chunks
of rows, so memory holds one chunk plus counters that do not grow with clients:

* per (protocol, virtual service, real server, state): exact count, expiry range and
  the entries touched in the last ``RECENT_WINDOW`` seconds;
* per persistence template group: exact;
* per client address and per (client, protocol, virtual service): top-K sketches
  (Misra-Gries, mergeable) of at most ``TOP_CLIENTS`` clients and
  ``TOP_CLIENT_SERVICES`` pairs. Every count a sketch keeps is a lower bound, low by
  at most its ``error``; a key it does not keep holds at most ``error`` entries.
  ``error`` is 0 (all exact) while the keys fit.

Rows arrive as text columns in the ``/proc/net/ip_vs_conn`` spelling (hex addresses
and ports), whatever they were read from: ``conn_summary`` slices well-formed
``/proc`` rows straight from the file's bytes and turns every other entry (the
careful parser's, ``ipvsadm -Lnc``'s) into the same columns.

polars is imported with this module, and this module only when a table is counted,
so commands without a connection table do not pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ipvslab.doctor.conn_summary import (
    CLOSED_STATES,
    RECENT_WINDOW,
    TOP_CLIENT_SERVICES,
    TOP_CLIENTS,
)
from ipvslab.doctor.parsers._common import proc_address
from ipvslab.doctor.parsers.proc_ip_vs_conn import EXPIRES_LIMIT
from ipvslab.doctor.records import IPAddress

# Per-chunk pair counts wait until this many rows are pending, then merge into the sketch.
MERGE_ROWS = 1 << 18

# One row per entry, every field as /proc/net/ip_vs_conn prints it (hex addresses and
# ports; an fwmark template's ToIP is its mark).
ROW_SCHEMA: dict[str, Any] = {
    "proto": pl.String,
    "client": pl.String,
    "template": pl.Boolean,
    "vaddr": pl.String,
    "vport": pl.String,
    "daddr": pl.String,
    "dport": pl.String,
    "state": pl.String,
    "expires": pl.Int64,
}
GROUP_KEYS = ("proto", "vaddr", "vport", "daddr", "dport", "state")
TEMPLATE_KEYS = ("proto", "vaddr", "vport", "daddr", "dport")
PAIR_KEYS = ("client", "proto", "vaddr", "vport")
SERVICE_KEYS = PAIR_KEYS[1:]


@dataclass
class Totals:
    """Per-key totals of batches, merged by polars once ``MERGE_ROWS`` rows are pending
    (rows are grouped a few times, not per chunk, and never one by one in Python).

    ``merged`` says how each column combines (``pl.col("n").sum()``, ...); batches may be
    one row per entry or already combined, as long as ``merged`` applies to both.

    ``ids``: integer columns that identify ``key`` one to one in the batches of
    well-formed ``/proc`` rows (``split_proc_rows``); polars groups on one integer
    about twice as fast as on text, which it then only carries along. The first batch
    without them (the careful parser's rows) turns the totals to the text key for
    good: the groups are the same either way, so are the merges and the results.
    """

    key: str
    merged: tuple[pl.Expr, ...]
    ids: tuple[str, ...] = ()
    frame: pl.DataFrame | None = None
    pending: list[pl.DataFrame] = field(default_factory=list)
    pending_rows: int = 0

    def add(self, batch: pl.DataFrame) -> None:
        if self.ids and not all(c in batch.columns for c in self.ids):
            self.ids = ()
            self.frame = None if self.frame is None else self.frame.select(self.columns())
            self.pending = [p.select(self.columns()) for p in self.pending]
        self.pending.append(batch.select(self.columns()))
        self.pending_rows += batch.height
        if self.pending_rows >= MERGE_ROWS:
            self.merge()

    def columns(self) -> list[str]:
        return [*self.ids, self.key, *(e.meta.output_name() for e in self.merged)]

    def merge(self) -> None:
        if not self.pending:
            return
        frames = ([self.frame] if self.frame is not None else []) + self.pending
        self.pending, self.pending_rows = [], 0
        if self.ids:
            grouped = pl.concat(frames).group_by(self.ids)
            merged = grouped.agg(pl.col(self.key).first(), *self.merged)
        else:
            merged = pl.concat(frames).group_by(self.key).agg(self.merged)
        self.frame = self.reduce(merged)

    def reduce(self, merged: pl.DataFrame) -> pl.DataFrame:
        return merged

    def rows(self) -> list[tuple[Any, ...]]:
        """``(key, *columns)`` sorted by key: polars groups in no fixed order, and the
        output must not vary."""
        self.merge()
        if self.frame is None:
            return []
        names = [e.meta.output_name() for e in self.merged]
        return sorted(self.frame.select(self.key, *names).rows())


_SUMS = tuple(pl.col(c).sum() for c in ("n", "closed", "recent"))


@dataclass
class TopK(Totals):
    """A Misra-Gries summary of (n, closed, recent) counts per key, at most ``k`` keys.

    After each merge, when more than ``k`` keys remain, the (k+1)-th largest ``n`` is
    taken off every key and those left at 0 are dropped (Agarwal et al., "Mergeable
    summaries", 2012). ``error`` adds up what was taken: every count kept is low by at
    most ``error``, and a key not kept held at most ``error``. ``closed`` and ``recent``
    are cut to the reduced ``n``, so they are lower bounds too.
    """

    merged: tuple[pl.Expr, ...] = _SUMS
    k: int = 0
    error: int = 0

    def reduce(self, merged: pl.DataFrame) -> pl.DataFrame:
        if merged.height <= self.k:
            return merged
        cut = merged.get_column("n").top_k(self.k + 1).min()
        assert isinstance(cut, int)
        self.error += cut
        return (
            merged.with_columns(pl.col("n") - cut)
            .filter(pl.col("n") > 0)
            .with_columns(
                pl.min_horizontal("closed", "n").alias("closed"),
                pl.min_horizontal("recent", "n").alias("recent"),
            )
        )


@dataclass
class ConnCounts:
    """What ``ConnCounter`` ends with, keys still in /proc text."""

    # GROUP_KEYS -> [count, min expires, max expires, recent]
    groups: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    # TEMPLATE_KEYS -> [count, max expires]
    templates: dict[tuple[str, ...], list[int]] = field(default_factory=dict)
    # (client, n, closed, recent)
    clients: list[tuple[Any, ...]] = field(default_factory=list)
    client_error: int = 0
    # PAIR_KEYS + (n, closed, recent)
    client_services: list[tuple[Any, ...]] = field(default_factory=list)
    client_service_error: int = 0


class ConnCounter:
    """Counts batches of rows (``ROW_SCHEMA``) into bounded counters."""

    def __init__(self, timeouts: Mapping[tuple[str, str], int]) -> None:
        # An entry is recent when its remaining time is within RECENT_WINDOW of the
        # state's full timeout; a state without a known timeout never is.
        floor: pl.Expr = pl.lit(EXPIRES_LIMIT, dtype=pl.Int64)
        for proto in sorted({p for p, _ in timeouts}):
            floors = {s: t - RECENT_WINDOW for (p, s), t in timeouts.items() if p == proto}
            floor = (
                pl.when(pl.col("proto") == proto)
                .then(
                    pl.col("state").replace_strict(
                        floors, default=EXPIRES_LIMIT, return_dtype=pl.Int64
                    )
                )
                .otherwise(floor)
            )
        self.recent = (pl.col("expires") >= floor).cast(pl.Int64).alias("recent")
        self.closed = pl.col("state").is_in(sorted(CLOSED_STATES)).cast(pl.Int64).alias("closed")
        self.groups = Totals(
            "key",
            (
                pl.col("n").sum(),
                pl.col("lo").min(),
                pl.col("hi").max(),
                pl.col("recent").sum(),
            ),
        )
        self.templates = Totals("key", (pl.col("n").sum(), pl.col("hi").max()))
        self.clients = TopK("client", k=TOP_CLIENTS, ids=("cid",))
        self.pairs = TopK("key", k=TOP_CLIENT_SERVICES, ids=("pid",))
        # "proto vaddr vport" -> a small number, for the pairs' integer ids.
        self.services: dict[str, int] = {}

    def add(self, rows: pl.DataFrame) -> None:
        """Counts ``rows``: ``ROW_SCHEMA`` columns, or ``split_proc_rows``' (keys ready)."""
        if rows.height == 0:
            return
        proc = "cid" in rows.columns
        # Grouping on one string key is several times faster than on several columns.
        group_key = pl.col("gkey").alias("key") if proc else _joined(GROUP_KEYS)
        template_key = (
            pl.col("gkey").str.slice(0, PROC_TEMPLATE_KEY).alias("key")
            if proc
            else _joined(TEMPLATE_KEYS)
        )
        conns = rows.filter(~pl.col("template")).with_columns(self.recent, self.closed)
        self.groups.add(
            conns.group_by(group_key).agg(
                pl.len().cast(pl.Int64).alias("n"),
                pl.col("expires").min().alias("lo"),
                pl.col("expires").max().alias("hi"),
                pl.col("recent").sum(),
            )
        )
        self.templates.add(
            rows.filter(pl.col("template"))
            .group_by(template_key)
            .agg(pl.len().cast(pl.Int64).alias("n"), pl.col("expires").max().alias("hi"))
        )
        one = pl.lit(1, pl.Int64).alias("n")
        if not proc:
            self.clients.add(conns.select("client", one, "closed", "recent"))
            self.pairs.add(conns.select(_joined(PAIR_KEYS), one, "closed", "recent"))
            return
        if conns.height == 0:
            return  # nothing to count (an empty batch changes no sketch)
        # Well-formed /proc rows: an integer id per client and per pair (the client's
        # address, 32 bits, then the service's number).
        conns = conns.with_columns(pl.col("gkey").str.slice(0, PROC_SERVICE_KEY).alias("service"))
        for text in conns.get_column("service").unique().to_list():
            self.services.setdefault(text, len(self.services))
        number = pl.col("service").replace_strict(self.services, return_dtype=pl.Int64)
        pid = (pl.col("cid") * (1 << 31) + number).alias("pid")
        key = pl.concat_str("client", "service", separator=" ").alias("key")
        self.clients.add(conns.select("cid", "client", one, "closed", "recent"))
        self.pairs.add(conns.select(pid, key, one, "closed", "recent"))

    def finish(self) -> ConnCounts:
        return ConnCounts(
            groups={tuple(k.split(" ")): list(v) for k, *v in self.groups.rows()},
            templates={tuple(k.split(" ")): list(v) for k, *v in self.templates.rows()},
            clients=self.clients.rows(),
            client_error=self.clients.error,
            client_services=[(*k.split(" "), *v) for k, *v in self.pairs.rows()],
            client_service_error=self.pairs.error,
        )


def _joined(keys: tuple[str, ...]) -> pl.Expr:
    """The key columns as one string (no field holds a blank: they are split fields)."""
    return pl.concat_str(*keys, separator=" ").alias("key")


# --------------------------------------------------------------------------- /proc rows

# A /proc/net/ip_vs_conn row of an IPv4 TCP or UDP entry without persistence-engine
# data, exactly as ip_vs_conn_seq_show() prints it ("%-3s %08X %04X %08X %04X %08X
# %04X %-11s %7u"): fixed width, so its fields are slices. Anything else is the
# careful parser's.
PROC_ROW = (
    r"^(?:TCP|UDP) [0-9A-F]{8} [0-9A-F]{4} [0-9A-F]{8} [0-9A-F]{4} [0-9A-F]{8} [0-9A-F]{4}"
    r" [A-Z_]{1,11} +[0-9]{1,7}$"
)
PROC_ROW_LENGTH = 65
# Lengths of the leading parts of a /proc row's group key: "TCP 0A600000 0050" (the
# service) and "TCP 0A600000 0050 0AF48000 1F90" (a template's key).
PROC_SERVICE_KEY = 17
PROC_TEMPLATE_KEY = 31


def read_lines(data: bytes) -> pl.DataFrame | None:
    """The lines of ``data`` as one string column (null for an empty line), or None
    when polars cannot split it line for line (then the caller reads it in Python)."""
    try:
        frame = pl.read_csv(
            data,
            has_header=False,
            separator="\x1f",
            quote_char=None,
            schema={"line": pl.String},
        )
    except (pl.exceptions.PolarsError, ValueError):
        return None
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    return frame if frame.height == lines else None


def split_proc_rows(lines: pl.DataFrame, first_line_no: int) -> tuple[pl.DataFrame, list[Any]]:
    """The well-formed rows, and ``(line_no, text)`` of the rest.

    The rows hold the columns ``ConnCounter`` needs of ``ROW_SCHEMA`` (proto, client,
    template, state, expires), the client as an integer ("cid") and the group key
    ("gkey", ``GROUP_KEYS`` joined by blanks), sliced from the line at once: in a
    fixed-width row the fields from ToIP to State already stand blank-separated.
    """
    line = pl.col("line")
    ok = ((line.str.len_bytes() == PROC_ROW_LENGTH) & line.str.contains(PROC_ROW)).fill_null(False)
    mask = lines.select(ok).to_series()
    rows = (
        lines.filter(mask)
        .select(
            line.str.slice(0, 3).alias("proto"),
            line.str.slice(4, 8).alias("client"),
            (line.str.slice(13, 4) == "0000").alias("template"),
            line.str.slice(46, 11).str.strip_chars_end().alias("state"),
            line.str.slice(58).str.strip_chars_start().str.to_integer().alias("expires"),
            pl.concat_str(line.str.slice(0, 3), line.str.slice(17, 40).str.strip_chars_end()).alias(
                "gkey"
            ),
        )
        .with_columns(pl.col("client").str.to_integer(base=16).alias("cid"))
    )
    if rows.height == lines.height:
        return rows, []
    rest = lines.with_row_index("no", offset=first_line_no).filter(~mask).select("no", "line")
    return rows, rest.rows()


def rows_frame(columns: Mapping[str, list[Any]]) -> pl.DataFrame:
    return pl.DataFrame(dict(columns), schema=ROW_SCHEMA)


def proc_address_of(text: str) -> IPAddress:
    """``0A600001`` -> 10.96.0.1; the text was validated on the way in."""
    found = proc_address(text)
    assert found is not None
    return found
