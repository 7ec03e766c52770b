"""What `ipvslab reproduce` measures in one run: the figures of the matrix.

Every figure is computed from the run's trace, pod log and real-server log,
never from the model's internals, so the same figures can be read off a
`ipvslab run` output folder.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from ipvslab.cluster.run import RunResult
from ipvslab.results.metrics import gini

_MS = 1000.0


@dataclass(frozen=True)
class Measures:
    connections: int
    established: int
    error_rate: float  # over the whole run
    error_rate_after_event: float  # over attempts started after the first event
    connect_p50_ms: float | None
    connect_p99_ms: float | None
    achieved_rate: float  # established per second over the run
    late_rate: float  # established per second over the second half of the run
    late_connect_p50_ms: float | None  # median connect time over the second half
    first_syn_dropped: int
    to_weight0_share: float  # share of established connections that went to weight-0 servers
    frozen_share: float  # ... to weight-0 (terminating) pods once every new pod was ready
    new_pods_share: float | None  # after a scale-out, the new pods' share of new connections
    fair_share: float | None
    gini_after_event: float  # over the pods' new connections after the first event
    # weight-0 servers still sent new connections in the last minute: reuse keeps
    # their entries alive, so kube-proxy cannot delete them (#81775)
    stuck_servers: int
    failed_after_event: int  # failed attempts started after the first event
    failure_window_s: float  # first to last failure after the first event

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(series: pl.Series, q: float) -> float | None:
    if series.len() == 0:
        return None
    value = series.quantile(q, "nearest")
    return None if value is None else float(value) / _MS


def _mean(flags: pl.Series) -> float:
    """The share of true values (0 for an empty column)."""
    return float(flags.cast(pl.Float64).sum()) / flags.len() if flags.len() else 0.0


def measure(run: RunResult, trace: pl.DataFrame) -> Measures:
    scenario = run.scenario
    duration_s = max(run.end_us, 1) / 1e6
    event_at = min((e.at for e in scenario.events), default=0)
    ok = pl.col("result") == "established"
    total = trace.height
    established = trace.filter(ok)
    after = trace.filter(pl.col("time_us") >= event_at)
    failed_after = after.filter(~ok)
    late = established.filter(pl.col("time_us") >= run.end_us // 2)

    frozen = 0.0
    window = _frozen_window(run, event_at)
    if window is not None:
        inside = established.filter(
            (pl.col("time_us") >= window[0]) & (pl.col("time_us") < window[1])
        )
        if inside.height:
            frozen = _mean(inside["weight0"])

    new_share: float | None = None
    fair: float | None = None
    scale = _scale_window(run)
    if scale is not None:
        since, new_pods = scale
        inside = established.filter(pl.col("time_us") >= since)
        if inside.height:
            new_share = _mean(inside["pod"].is_in(new_pods))
            pods = set(inside["pod"].unique().to_list()) | set(new_pods)
            fair = len(new_pods) / len(pods)

    after_ok = after.filter(ok)
    counts = after_ok.group_by("pod").len()["len"].to_list() if after_ok.height else []
    last_minute = trace.filter(
        (pl.col("time_us") >= run.end_us - 60_000_000) & (pl.col("weight0") | pl.col("pod_gone"))
    )
    stuck = last_minute["real_server"].n_unique() if last_minute.height else 0
    first_fail = failed_after["time_us"].min() if failed_after.height else None
    last_fail = failed_after["time_us"].max() if failed_after.height else None
    return Measures(
        connections=total,
        established=established.height,
        error_rate=(total - established.height) / total if total else 0.0,
        error_rate_after_event=failed_after.height / after.height if after.height else 0.0,
        connect_p50_ms=_pct(established["connect_us"], 0.5),
        connect_p99_ms=_pct(established["connect_us"], 0.99),
        achieved_rate=established.height / duration_s,
        late_rate=late.height / max(duration_s / 2, 1e-9),
        late_connect_p50_ms=_pct(late["connect_us"], 0.5),
        first_syn_dropped=int((trace["decision"] == "DROP_SYN").sum()) if total else 0,
        to_weight0_share=_mean(established["weight0"]),
        frozen_share=frozen,
        new_pods_share=new_share,
        fair_share=fair,
        gini_after_event=gini(counts),
        stuck_servers=stuck,
        failed_after_event=failed_after.height,
        failure_window_s=(
            (int(last_fail) - int(first_fail)) / 1e6  # type: ignore[arg-type]
            if first_fail is not None and last_fail is not None
            else 0.0
        ),
    )


def _frozen_window(run: RunResult, event_at: int) -> tuple[int, int] | None:
    """From the moment every pod created by the rollout was ready to the moment the
    first old pod was gone: old and new pods both alive, only the new ones wanted."""
    if not any(e.rollout is not None for e in run.scenario.events):
        return None
    created = {pod for t, pod, what in run.pod_log if what == "created" and t >= event_at}
    ready = [t for t, pod, what in run.pod_log if what == "ready" and pod in created]
    gone = [
        t for t, pod, what in run.pod_log if what == "gone" and pod not in created and t >= event_at
    ]
    if not ready or not gone or len(ready) < len(created):
        return None
    start, end = max(ready), min(gone)
    return (start, end) if end > start else None


def _scale_window(run: RunResult) -> tuple[int, list[str]] | None:
    for event in run.scenario.events:
        if event.scale is None:
            continue
        prefix = f"{event.scale.service}-"
        new = [
            p
            for t, p, w in run.pod_log
            if w == "created" and t >= event.at and p.startswith(prefix)
        ]
        ready = {p: t for t, p, w in run.pod_log if w == "ready" and p in new}
        if new and len(ready) == len(new):
            return max(ready.values()), new
    return None
