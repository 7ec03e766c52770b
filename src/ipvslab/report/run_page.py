"""The report page of an `ipvslab run` folder (docs/run-output.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from ipvslab.report import figures, inputs
from ipvslab.report.inputs import ReportInputError, field
from ipvslab.report.page import Cell, Facts, Page, Section, Table, Text
from ipvslab.report.setup_block import config_label, setup_facts
from ipvslab.results.metrics import only_udp


def _ms(value: Any) -> str:
    return "-" if not isinstance(value, int | float) else f"{value:,.1f} ms"


def _count(summary: dict[str, Any], path: Path, name: str) -> str:
    return f"{field(summary, path, name, int):,}"


def _seconds(value: Any) -> str:
    return f"{value:.0f} s" if isinstance(value, int | float) else "-"


def _num(value: Any, spec: str) -> str:
    """A number of summary.json as the terminal shows it; "?" for anything else."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "?"
    if spec == "d" and not isinstance(value, int):
        return "?"
    return format(value, spec)


def _summary_facts(summary: dict[str, Any], path: Path) -> Facts:
    errors = field(summary, path, "errors", dict)
    connect = field(summary, path, "connect_ms", dict)
    failed = ", ".join(
        f"{k} {v:,}"
        for k, v in errors.items()
        if isinstance(v, int) and not isinstance(v, bool) and v
    )
    # The terminal's wording (cli/run.py): a UDP-only run has requests and answers, and
    # no first-SYN line (conn_reuse_mode's drop is for TCP SYNs only).
    udp = only_udp(summary)
    items = [
        ("simulated", f"{field(summary, path, 'simulated_s', (int, float)):.1f} s"),
        ("requests (UDP)" if udp else "connections", _count(summary, path, "connections")),
        ("answered" if udp else "established", _count(summary, path, "established")),
        (
            "errors",
            f"{field(summary, path, 'error_rate', (int, float)):.2%}"
            + (f": {failed}" if failed else ""),
        ),
        (
            "answer time" if udp else "connect time",
            f"p50 {_ms(connect.get('p50'))}, p99 {_ms(connect.get('p99'))},"
            f" max {_ms(connect.get('max'))}",
        ),
        ("reused ports", f"{_count(summary, path, 'reused_port')} met an existing entry"),
    ]
    if not udp:
        items.append(("first SYN dropped", _count(summary, path, "first_syn_dropped")))
    items.append(
        (
            "to weight-0 / gone",
            f"{_count(summary, path, 'to_weight0')}"
            f" / {_count(summary, path, 'to_removed_or_gone')}",
        )
    )
    imbalance = summary.get("imbalance")
    if isinstance(imbalance, dict):
        for service, imb in sorted(imbalance.items(), key=lambda kv: str(kv[0])):
            if isinstance(imb, dict):
                items.append(
                    (
                        f"imbalance {service}",
                        f"max/mean {_num(imb.get('max_over_mean'), '.2f')}, Gini"
                        f" {_num(imb.get('gini'), '.2f')} over {_num(imb.get('pods'), 'd')} pods",
                    )
                )
    scales = summary.get("scale_outs")
    for scale in scales if isinstance(scales, list) else []:
        if isinstance(scale, dict):
            items.append(
                (
                    f"scale-out {scale.get('service')} at {_num(scale.get('at_s'), 'g')}s",
                    f"new pods' share {_num(scale.get('new_pods_share'), '.1%')}"
                    f" (fair {_num(scale.get('fair_share'), '.1%')})",
                )
            )
    return Facts(items)


def _real_servers_table(summary: dict[str, Any], path: Path) -> Table | None:
    servers = field(summary, path, "real_servers", list)
    rows = []
    for rs in servers:
        if not isinstance(rs, dict):
            raise ReportInputError(f"{path}: field 'real_servers': expected objects")
        deleted = rs.get("deleted_at_s")
        rows.append(
            [
                str(rs.get("service", "")),
                str(rs.get("server", "")),
                str(rs.get("node", "")),
                _seconds(rs.get("weight0_at_s")),
                _seconds(deleted) if deleted is not None else "never",
                str(rs.get("checks_kept", 0)),
                f"{rs.get('active_at_end', '-')} / {rs.get('inactive_at_end', '-')}"
                if deleted is None
                else "",
            ]
        )
    if not rows:
        return None
    return Table(
        [
            "service",
            "real server",
            "node",
            "weight 0 at",
            "deleted at",
            "checks that kept it",
            "ActiveConn / InActConn at the end",
        ],
        rows,
        caption="kube-proxy checks its graceful termination list every minute and deletes a"
        " server only once its connections are gone; a reused port keeps them alive.",
    )


def _result_css(result: str) -> str:
    if result in ("ok", "established"):
        return "agrees"
    return "not-comparable" if result.startswith(("error", "not run")) else "differs"


def steps_table(steps: list[dict[str, Any]]) -> Table:
    """Script mode: each step as a person would type it on a node, with the entry
    before and after, to set beside the real thing (docs/run-output.md, steps.json)."""
    rows: list[list[Cell | str]] = []
    for step in steps:
        result = str(step.get("result", ""))
        time_us = step.get("time_us")
        port = step.get("client_port")
        rows.append(
            [
                str(step.get("index", "")),
                f"{time_us / 1e6:.3f} s" if isinstance(time_us, int | float) else "-",
                str(step.get("action", "")),
                f"{step.get('client', '')}:{port}" if step.get("client") else "",
                Cell(result, css=_result_css(result)),
                str(step.get("entry_before", "")),
                str(step.get("detail", "")),
                str(step.get("entry_after", "")),
                str(step.get("pod", "")),
            ]
        )
    return Table(
        [
            "step",
            "at",
            "action",
            "client:port",
            "result",
            "entry before",
            "decision",
            "entry after",
            "pod",
        ],
        rows,
        caption="Entries as ipvsadm -Lnc shows them: state, real server, expiry.",
    )


def build(folder: Path) -> Page:
    summary_path = folder / "summary.json"
    summary = inputs.read_json(summary_path)
    name = field(summary, summary_path, "scenario", str)
    seed = field(summary, summary_path, "seed", int)
    setup = summary.get("setup") if isinstance(summary.get("setup"), dict) else None
    scenario_file = summary.get("scenario_file")
    rerun = (
        f"ipvslab run {scenario_file} --seed {seed} --out {folder}"
        if isinstance(scenario_file, str)
        else ""
    )
    trace = inputs.read_parquet(
        folder / "trace.parquet", {k: inputs.TRACE[k] for k in ("result", "connect_us")}
    )
    series = inputs.read_parquet(folder / "timeseries.parquet", inputs.TIMESERIES)
    shares = inputs.read_parquet(folder / "shares.parquet", inputs.SHARES)
    samples = inputs.read_parquet(folder / "servers.parquet", inputs.SERVERS)
    server_log = inputs.read_parquet(folder / "server_log.parquet", inputs.SERVER_LOG)
    pods = inputs.read_parquet(folder / "pods.parquet", inputs.PODS)
    spec = setup.get("scenario_spec") if setup else None
    end_s = field(summary, summary_path, "simulated_s", (int, float))
    # An interrupted run ends early: events it never reached are not drawn.
    markers = [
        m
        for m in figures.events_of(spec if isinstance(spec, dict) else None, pods)
        if m.t_s <= end_s
    ]
    label = config_label(setup)
    dataplane = str(setup.get("dataplane", "?")) if setup else "?"

    share_figures = [
        figures.block(
            figures.shares_figure(
                shares.filter(pl.col("service") == service),
                markers,
                f"{service}: share of new connections per real server",
                # Every pod of the service, also one no connection reached (starved).
                sorted(
                    p
                    for p in set(pods["pod"].to_list())
                    if p.startswith(f"{service}-") and p[len(service) + 1 :].isdigit()
                ),
                end_s,
            )
        )
        for service in sorted(set(shares["service"].to_list())) or [""]
    ]
    established = trace.filter(pl.col("result") == "established")["connect_us"]
    sections = [
        Section("setup", "What ran", list(setup_facts(setup, rerun))),
        Section(
            "summary",
            "Summary",
            [
                *(
                    [
                        Text(
                            [
                                f"Interrupted at {end_s:.1f} s simulated (Ctrl-C): the figures"
                                " cover what was simulated; later events did not happen."
                            ]
                        )
                    ]
                    if summary.get("interrupted") is True
                    else []
                ),
                _summary_facts(summary, summary_path),
            ],
        ),
        Section(
            "shares",
            "Share of new connections per real server",
            [
                *share_figures,
                Text(
                    [
                        "Each band is a pod's part of the new connections that reached a pod in"
                        " the interval; dashed lines mark the scenario's events. Load that stays"
                        " on old pods after a rollout, or new pods that stay thin after a"
                        " scale-out, is connection reuse at work."
                    ]
                ),
            ],
        ),
        Section(
            "errors",
            "Errors over time",
            [
                figures.block(
                    figures.errors_figure(series, markers, "failed attempts by errno"),
                    "Attempts are counted in the interval they started. Dashed: first SYNs sent"
                    " to a weight-0 server, or to a removed server or a pod that is gone.",
                )
            ],
        ),
        Section(
            "latency",
            "Connect time",
            [
                figures.block(
                    figures.latency_cdf_figure(
                        [(label, established)],
                        "answer-time CDF" if only_udp(summary) else "connect-time CDF",
                        "1 s: a request sent again"
                        if only_udp(summary)
                        else "1 s: a dropped first SYN",
                    ),
                    "A step at 1 s is a request that went unanswered and was sent again after"
                    " its timeout (the UDP client's retry)."
                    if only_udp(summary)
                    else "A step at 1 s is the first SYN dropped and retransmitted (#70747).",
                )
            ],
        ),
        Section(
            "weight0",
            "Real servers at weight 0",
            [
                figures.block(
                    figures.stuck_servers_figure(
                        samples,
                        server_log,
                        markers,
                        "weight-0 servers and kube-proxy's deletion attempts",
                        dataplane,
                    )
                ),
                *([t] if (t := _real_servers_table(summary, summary_path)) else []),
            ],
        ),
    ]
    if (folder / "steps.json").is_file():
        steps = inputs.read_json_list(folder / "steps.json")
        sections.append(Section("steps", "Script steps", [steps_table(steps)]))
    warnings = summary.get("warnings")
    if isinstance(warnings, list) and warnings:
        sections.append(Section("warnings", "Warnings", [Text([str(w) for w in warnings])]))
    return Page(f"ipvslab run: {name} (seed {seed})", label, sections)
