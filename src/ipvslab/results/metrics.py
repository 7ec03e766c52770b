"""The time series and the summary of a run, computed from its trace and samples.

Time series (one row per ``interval`` of connection start time): attempts,
established, errors by kind, connect latency p50/p99 of the established ones,
attempts that met an existing entry (port reuse), that went to a weight-0 real
server or to a pod that was gone, and the real servers stuck at weight 0 (on
kube-proxy's graceful termination list) at the interval's start.

Shares: new connections per pod per interval (what the load-balancing graphs of
seed 000 show: load frozen on old pods, new pods starved).

Summary: totals, error rate, latency percentiles, achieved rate, imbalance
(max/mean and Gini over the pods' connection counts), the new pods' share after
each scale-out against their fair share, and when each old real server was
finally deleted, or that it never was.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import polars as pl

from ipvslab.cluster.trace import Result

if TYPE_CHECKING:
    from ipvslab.cluster.run import RunResult

ERRORS = [r.label for r in Result if r is not Result.ESTABLISHED]
_MS = 1000.0


def time_series(
    trace: pl.DataFrame, samples: pl.DataFrame, interval: int, end: int
) -> pl.DataFrame:
    """One row per interval from 0 to ``end`` (µs), empty intervals included."""
    bins = pl.DataFrame({"t_us": pl.int_range(0, max(end, 1), interval, eager=True)})
    if trace.height:
        grouped = (
            trace.with_columns((pl.col("time_us") // interval * interval).alias("t_us"))
            .group_by("t_us")
            .agg(
                pl.len().alias("attempted"),
                (pl.col("result") == "established").sum().alias("established"),
                *[(pl.col("result") == e).sum().alias(e) for e in ERRORS],
                pl.col("connect_us")
                .filter(pl.col("result") == "established")
                .quantile(0.5, "nearest")
                .truediv(_MS)
                .alias("connect_p50_ms"),
                pl.col("connect_us")
                .filter(pl.col("result") == "established")
                .quantile(0.99, "nearest")
                .truediv(_MS)
                .alias("connect_p99_ms"),
                (pl.col("entry_before") != "").sum().alias("reused_port"),
                (pl.col("decision") == "DROP_SYN").sum().alias("first_syn_dropped"),
                pl.col("weight0").sum().alias("to_weight0"),
                (pl.col("removed") | pl.col("pod_gone")).sum().alias("to_removed_or_gone"),
            )
        )
        series = bins.join(grouped, on="t_us", how="left")
    else:
        series = bins.with_columns(
            *[pl.lit(0).alias(c) for c in ("attempted", "established", *ERRORS)],
            pl.lit(None, pl.Float64).alias("connect_p50_ms"),
            pl.lit(None, pl.Float64).alias("connect_p99_ms"),
            *[
                pl.lit(0).alias(c)
                for c in ("reused_port", "first_syn_dropped", "to_weight0", "to_removed_or_gone")
            ],
        )
    if samples.height:
        stuck = (
            samples.filter(pl.col("terminating") & (pl.col("weight") == 0))
            .with_columns((pl.col("time_us") // interval * interval).alias("t_us"))
            .group_by("t_us")
            .agg(pl.len().alias("stuck_weight0_servers"))
        )
        series = series.join(stuck, on="t_us", how="left")
    else:
        series = series.with_columns(pl.lit(0).alias("stuck_weight0_servers"))
    counts = [c for c in series.columns if c not in ("t_us", "connect_p50_ms", "connect_p99_ms")]
    return (
        series.with_columns(pl.col(c).fill_null(0).cast(pl.Int64) for c in counts)
        .with_columns((pl.col("t_us") / 1e6).alias("t_s"))
        .sort("t_us")
        .select("t_s", pl.exclude("t_s"))
    )


def shares(trace: pl.DataFrame, interval: int) -> pl.DataFrame:
    """New connections per pod per interval, and each pod's share of the interval."""
    if trace.height == 0:
        return pl.DataFrame(
            schema={
                "t_s": pl.Float64,
                "service": pl.String,
                "pod": pl.String,
                "connections": pl.Int64,
                "share": pl.Float64,
            }
        )
    counted = (
        trace.filter(pl.col("pod") != "")
        .with_columns((pl.col("time_us") // interval * interval).alias("t_us"))
        .group_by("t_us", "service", "pod")
        .agg(pl.len().cast(pl.Int64).alias("connections"))
    )
    return (
        counted.with_columns(
            (pl.col("connections") / pl.col("connections").sum().over("t_us", "service")).alias(
                "share"
            ),
            (pl.col("t_us") / 1e6).alias("t_s"),
        )
        .sort("t_us", "service", "pod")
        .select("t_s", "service", "pod", "connections", "share")
    )


def gini(values: list[int]) -> float:
    """The Gini coefficient of non-negative counts (0: equal, toward 1: one takes all)."""
    if not values or sum(values) == 0:
        return 0.0
    ordered = sorted(values)
    n = len(ordered)
    weighted = sum((i + 1) * v for i, v in enumerate(ordered))
    return (2 * weighted) / (n * sum(ordered)) - (n + 1) / n


def _percentile(series: pl.Series, q: float) -> float | None:
    if series.len() == 0:
        return None
    value = series.quantile(q, "nearest")
    return None if value is None else float(value) / _MS


def only_udp(summary: dict[str, Any]) -> bool:
    """Every attempt of the summary is a UDP request: its figures are requests and
    answers, and conn_reuse_mode's first-SYN drop (TCP only) does not apply."""
    udp = summary.get("udp_requests", 0)
    return isinstance(udp, int) and udp > 0 and udp == summary.get("connections")


def summarize(run: RunResult, trace: pl.DataFrame, samples: pl.DataFrame) -> dict[str, Any]:
    scenario = run.scenario
    duration_s = max(run.end_us, 1) / 1e6
    total = trace.height
    established = trace.filter(pl.col("result") == "established")
    errors = {e: int((trace["result"] == e).sum()) if total else 0 for e in ERRORS}
    latency = established["connect_us"] if established.height else pl.Series([], dtype=pl.Int64)
    summary: dict[str, Any] = {
        "scenario": scenario.name,
        "seed": scenario.seed,
        "simulated_s": duration_s,
        "interrupted": run.interrupted,
        "connections": total,
        "established": established.height,
        "errors": errors,
        "error_rate": (total - established.height) / total if total else 0.0,
        "achieved_rate_per_s": established.height / duration_s,
        "connect_ms": {
            "p50": _percentile(latency, 0.5),
            "p90": _percentile(latency, 0.9),
            "p99": _percentile(latency, 0.99),
            "max": float(latency.max()) / _MS if latency.len() else None,  # type: ignore[arg-type]
        },
        "reused_port": int((trace["entry_before"] != "").sum()) if total else 0,
        "first_syn_dropped": int((trace["decision"] == "DROP_SYN").sum()) if total else 0,
        "to_weight0": int(trace["weight0"].sum()) if total else 0,
        "to_removed_or_gone": int((trace["removed"] | trace["pod_gone"]).sum()) if total else 0,
        "syn_retransmits": int(trace["syn_retransmits"].sum()) if total else 0,
        # UDP requests among the connections (their "connect" is the answer, their
        # retransmissions are retries; IPVS's reuse handling never drops them).
        "udp_requests": int((trace["protocol"] == "UDP").sum()) if total else 0,
    }
    summary["imbalance"] = _imbalance(run, established)
    summary["scale_outs"] = _scale_outs(run, established)
    summary["real_servers"] = _real_servers(run, samples)
    summary["warnings"] = [
        *run.warnings,
        *run.event_errors,
        *(
            f"script step {step.index} ({step.action}): {step.result}"
            for step in run.steps
            if step.result.startswith(("error", "not run"))
        ),
    ]
    return summary


def _imbalance(run: RunResult, established: pl.DataFrame) -> dict[str, Any]:
    """Max/mean and Gini of new connections per pod, over every pod of the service
    that was ever ready (a starved pod counts as zero, it is the point)."""
    out: dict[str, Any] = {}
    ever_ready: dict[str, set[str]] = {s.name: set() for s in run.scenario.services}
    for _, pod, what in run.pod_log:
        if what == "ready":
            service = pod.rsplit("-", 1)[0]
            ever_ready.setdefault(service, set()).add(pod)
    for service, pods in ever_ready.items():
        counted = dict(
            established.filter(pl.col("service") == service).group_by("pod").len().iter_rows()
        )
        counts = [int(counted.get(pod, 0)) for pod in sorted(pods | set(counted))]
        if not counts or not sum(counts):
            continue
        mean = sum(counts) / len(counts)
        out[service] = {
            "pods": len(counts),
            "max_over_mean": max(counts) / mean,
            "gini": gini(counts),
        }
    return out


def _scale_outs(run: RunResult, established: pl.DataFrame) -> list[dict[str, Any]]:
    """For each scale-out: the new pods' share of new connections once they were
    all ready, against their fair share (new pods / all pods)."""
    results: list[dict[str, Any]] = []
    ready_at = {pod: t for t, pod, what in run.pod_log if what == "ready"}
    created_at = {pod: t for t, pod, what in run.pod_log if what == "created"}
    for event in run.scenario.events:
        if event.scale is None:
            continue
        service = event.scale.service
        new_pods = sorted(
            p for p, t in created_at.items() if t >= event.at and p.startswith(f"{service}-")
        )
        if not new_pods or any(p not in ready_at for p in new_pods):
            continue
        since = max(ready_at[p] for p in new_pods)
        window = established.filter((pl.col("service") == service) & (pl.col("time_us") >= since))
        if window.height == 0:
            continue
        pods = window["pod"].unique().to_list()
        to_new = int(window["pod"].is_in(new_pods).sum())
        all_pods = max(len(set(pods) | set(new_pods)), 1)
        results.append(
            {
                "service": service,
                "at_s": event.at / 1e6,
                "new_pods": new_pods,
                "measured_from_s": since / 1e6,
                "new_pods_share": to_new / window.height,
                "fair_share": len(new_pods) / all_pods,
            }
        )
    return results


def _real_servers(run: RunResult, samples: pl.DataFrame) -> list[dict[str, Any]]:
    """Every real server kube-proxy set to weight 0: when, and when it was deleted."""
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for e in run.server_log:
        key = (e.node, e.service, e.server)
        if e.action == "weight-0":
            rows[key] = {
                "node": e.node,
                "service": e.service,
                "server": e.server,
                "weight0_at_s": e.time / 1e6,
                "deleted_at_s": None,
                "checks_kept": 0,
            }
        elif (
            key in rows
            and e.action in ("deleted", "deleted by hand")
            and rows[key]["deleted_at_s"] is None
        ):
            rows[key]["deleted_at_s"] = e.time / 1e6
        elif key in rows and e.action == "kept":
            rows[key]["checks_kept"] += 1
    last = samples.filter(pl.col("time_us") == samples["time_us"].max()) if samples.height else None
    for row in rows.values():
        row["never_deleted"] = row["deleted_at_s"] is None
        if last is not None and row["never_deleted"]:
            match = last.filter(
                (pl.col("node") == row["node"])
                & (pl.col("service") == row["service"])
                & (pl.col("server") == row["server"])
            )
            if match.height:
                row["active_at_end"] = int(match["active"][0])
                row["inactive_at_end"] = int(match["inactive"][0])
    return list(rows.values())
