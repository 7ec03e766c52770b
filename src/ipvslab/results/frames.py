"""A run's records as polars DataFrames: the trace, the real-server samples,
kube-proxy's real-server changes and the pods' lifecycle."""

from __future__ import annotations

from dataclasses import asdict

import polars as pl

from ipvslab.cluster.run import RunResult
from ipvslab.cluster.trace import Result, Trace

_CATEGORICAL = ("client", "node", "service", "protocol", "entry_before", "decision", "path", "pod")


def trace_frame(trace: Trace) -> pl.DataFrame:
    """One row per connection attempt, strings decoded, times in microseconds."""
    columns = trace.columns
    data: dict[str, pl.Series] = {}
    for name in (
        "time_us",
        "client",
        "client_ip",
        "client_port",
        "node",
        "service",
        "protocol",
        "entry_before",
        "decision",
        "path",
        "real_server",
        "pod",
        "result",
        "connect_us",
        "syn_retransmits",
        "weight0",
        "removed",
        "pod_gone",
    ):
        raw = pl.Series(name, columns[name])
        if name in _CATEGORICAL:
            texts = pl.Series(trace.codes[name].texts, dtype=pl.String)
            data[name] = texts.gather(raw.cast(pl.UInt32)).alias(name) if len(texts) else raw
        elif name == "result":
            labels = pl.Series([r.label for r in Result], dtype=pl.String)
            data[name] = labels.gather(raw.cast(pl.UInt32)).alias(name)
        elif name in ("weight0", "removed", "pod_gone"):
            data[name] = raw.cast(pl.Boolean)
        elif name in ("client_ip", "real_server"):
            data[name] = raw
        else:
            data[name] = raw.cast(pl.Int64)
    frame = pl.DataFrame(data)
    if frame.height == 0:
        return frame
    return frame.with_columns(_dotted_expr("client_ip"), _dotted_expr("real_server"))


def _dotted_expr(name: str) -> pl.Expr:
    """An integer IPv4 column as dotted text ("" for 0), vectorised."""
    ip = pl.col(name)
    text = pl.concat_str(
        [((ip // (1 << shift)) % 256).cast(pl.String) for shift in (24, 16, 8, 0)], separator="."
    )
    return pl.when(ip == 0).then(pl.lit("")).otherwise(text).alias(name)


def samples_frame(run: RunResult) -> pl.DataFrame:
    return pl.DataFrame(
        [asdict(s) for s in run.samples],
        schema={
            "time_us": pl.Int64,
            "node": pl.String,
            "service": pl.String,
            "server": pl.String,
            "weight": pl.Int64,
            "active": pl.Int64,
            "inactive": pl.Int64,
            "terminating": pl.Boolean,
            "pod_alive": pl.Boolean,
        },
    )


def server_log_frame(run: RunResult) -> pl.DataFrame:
    return pl.DataFrame(
        [asdict(e) for e in run.server_log],
        schema={
            "time": pl.Int64,
            "node": pl.String,
            "service": pl.String,
            "server": pl.String,
            "action": pl.String,
        },
    ).rename({"time": "time_us"})


def pod_log_frame(run: RunResult) -> pl.DataFrame:
    return pl.DataFrame(
        run.pod_log,
        schema={"time_us": pl.Int64, "pod": pl.String, "event": pl.String},
        orient="row",
    )
