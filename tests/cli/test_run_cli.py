"""`ipvslab run` as a user runs it: outputs written, clear errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from typer.testing import CliRunner

from ipvslab.cli.main import app

SCENARIO = """\
name: small rollout
duration: 12s
cluster:
  kernel: 4.19.0-25-amd64
  kube_proxy: {version: v1.17.0}
services:
  - name: web
    deployment: {replicas: 2, readiness_delay: 1s}
clients:
  - name: busy
    service: web
    load: {kind: open, rate: 50}
events:
  - at: 5s
    rollout: {service: web}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.yaml"
    path.write_text(text)
    return path


def test_run_writes_the_trace_the_time_series_and_the_summary(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["run", str(_write(tmp_path, SCENARIO)), "--out", str(out), "--seed", "3"]
    )
    assert result.exit_code == 0, result.output
    assert "connections" in result.output
    trace = pl.read_parquet(out / "trace.parquet")
    series = pl.read_parquet(out / "timeseries.parquet")
    summary = json.loads((out / "summary.json").read_text())
    assert trace.height == summary["connections"] > 400
    assert summary["seed"] == 3
    assert series.height == 12  # one row per second of the run
    assert series["attempted"].sum() == trace.height
    assert {"servers.parquet", "server_log.parquet", "pods.parquet", "shares.parquet"} <= set(
        p.name for p in out.iterdir()
    )
    assert (out / "timeseries.csv").read_text().startswith("t_s,")


def test_a_wrong_field_names_file_line_and_field_and_exits_2(tmp_path: Path) -> None:
    bad = SCENARIO.replace("rate: 50", "rate: fast")
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, bad)), "--out", str(tmp_path)])
    assert result.exit_code == 2
    # Line 12, column 30: the value of rate in "    load: {kind: open, rate: fast}".
    assert "scenario.yaml:12:30: clients[0].load.rate: expected a number > 0" in result.output
    assert "Traceback" not in result.output


def test_an_unknown_kernel_is_refused_with_its_field(tmp_path: Path) -> None:
    bad = SCENARIO.replace("4.19.0-25-amd64", "windows-11")
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, bad)), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "cluster.kernel" in result.output
    assert "windows-11" in result.output


def test_ipvs_mode_on_a_kube_proxy_without_it_is_refused(tmp_path: Path) -> None:
    bad = SCENARIO.replace("v1.17.0", "v1.43.0")
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, bad)), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nftables" in result.output


def test_a_missing_scenario_file_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "nope.yaml" in result.output
    assert "Traceback" not in result.output


def test_scenario_mistakes_found_before_the_run_name_their_field(tmp_path: Path) -> None:
    cases = {
        "scheduler: bogus": (
            "kube_proxy: {version: v1.17.0}",
            "kube_proxy: {version: v1.17.0, scheduler: bogus}",
            "unknown IPVS scheduler",
        ),
        "pod_cidr": (
            "  kernel: 4.19.0-25-amd64",
            "  kernel: 4.19.0-25-amd64\n  pod_cidr: foo",
            "IPv4 network",
        ),
        "max_surge": (
            "{replicas: 2, readiness_delay: 1s}",
            "{replicas: 2, readiness_delay: 1s, max_surge: lots}",
            "percentage",
        ),
        "udp load": ("{kind: open, rate: 50}", "{kind: udp, rate: 50}", "cannot use TCP service"),
    }
    for name, (old, new, expected) in cases.items():
        text = SCENARIO.replace(old, new)
        assert text != SCENARIO, name
        result = CliRunner().invoke(
            app, ["run", str(_write(tmp_path, text)), "--out", str(tmp_path)]
        )
        assert result.exit_code == 2, (name, result.output)
        assert expected in result.output, (name, result.output)
        assert "Traceback" not in result.output


def test_a_script_step_naming_an_unknown_service_is_refused(tmp_path: Path) -> None:
    text = SCENARIO + "script:\n  - kill_pod: {service: nope}\n"
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, text)), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "script[0]" in result.output and "'nope'" in result.output


def test_running_out_of_pod_ips_stops_the_run_but_keeps_what_ran(tmp_path: Path) -> None:
    text = SCENARIO.replace("rollout: {service: web}", "scale: {service: web, replicas: 400}")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, text)), "--out", str(out)])
    assert result.exit_code == 2
    assert "no free pod IP" in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["connections"] > 100  # the five seconds before the scale-out
    assert pl.read_parquet(out / "trace.parquet").height == summary["connections"]


def test_kube_proxy_1_17_cannot_start_on_a_kernel_without_conn_reuse_mode(tmp_path: Path) -> None:
    # #71114 made setting the sysctl fatal; 3.10 mainline lacks it (d752c364 is 4.1):
    # kube-proxy exits at start (#82065) until 1.19 (#88541) only logs it.
    text = SCENARIO.replace("4.19.0-25-amd64", '"3.10"')
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, text)), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "#82065" in result.output
    fixed = text.replace("v1.17.0", "v1.19.0")
    ok = CliRunner().invoke(app, ["run", str(_write(tmp_path, fixed)), "--out", str(tmp_path)])
    assert ok.exit_code == 0, ok.output


def test_nftables_mode_needs_kernel_5_13_and_kube_proxy_1_29(tmp_path: Path) -> None:
    text = SCENARIO.replace("  kube_proxy:", "  dataplane: nftables\n  kube_proxy:")
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, text)), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "nftables" in result.output


def test_unbounded_durations_and_intervals_are_refused(tmp_path: Path) -> None:
    for line, expected in (
        ("duration: 999999h", "7 days"),
        ("duration: 12s\ninterval: 1us", "interval must be at least 1ms"),
    ):
        text = SCENARIO.replace("duration: 12s", line)
        result = CliRunner().invoke(
            app, ["run", str(_write(tmp_path, text)), "--out", str(tmp_path)]
        )
        assert result.exit_code == 2, result.output
        assert expected in result.output


def test_a_udp_script_step_on_a_tcp_service_is_refused(tmp_path: Path) -> None:
    text = SCENARIO + "script:\n  - udp: {client: busy}\n"
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, text)), "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "a udp step cannot use TCP service 'web'" in result.output


def test_a_dns_run_speaks_of_requests_and_answers_not_syns(tmp_path: Path) -> None:
    # conn_reuse_mode's first-SYN drop is for TCP only: a UDP-only run must not show a
    # "first SYN dropped" line (always 0) nor call answers "connect time".
    text = """\
name: dns
duration: 3s
cluster:
  kernel: "4.19"
  kube_proxy: {version: v1.20.0}
services:
  - name: dns
    port: 53
    target_port: 53
    protocol: UDP
    deployment: {replicas: 2}
clients:
  - name: q
    service: dns
    load: {kind: udp, rate: 50}
"""
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, text)), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "requests (UDP)" in result.output and "answer time" in result.output
    assert "first SYN dropped" not in result.output and "connect time" not in result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["udp_requests"] == summary["connections"] > 0
