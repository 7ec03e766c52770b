"""`doctor --what-if`: a node's capture run in the cluster twin with a rollout.

Expectations come from the kernel's and kube-proxy's behaviour, not from the model's
output: with conn_reuse_mode=0 before c95c07836fa4 (5.16) a reused client port follows
its old entry to a weight-0 and then deleted pod (kubernetes#81775); mode 1 before
f0a5e4d7a594 (5.9) reschedules it but drops the first SYN (1 s, #70747); 6.1 has both
fixes; kube-proxy >= 1.22 leaves mode 1 on >= 5.9 (#102122). A client reuses ports
within IPVS's 120 s TIME_WAIT once it opens more than about 118 connections/s (14,116
even ports of the default range on the 4.6-5.17 port picker).
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ipvslab.cli.main import app
from ipvslab.cluster.cluster import Cluster
from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.facts import node_facts
from ipvslab.what_if.answer import what_if
from ipvslab.what_if.changes import WhatIfError, parse_what_if
from ipvslab.what_if.node_scenario import NodeModel, node_model
from ipvslab.what_if.predict import scenario_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "doctor" / "nodes"
SERVICE = "10.96.0.10:80"


def _hex(ip: str) -> str:
    return f"{int(ipaddress.IPv4Address(ip)):08X}"


def busy_node(root: Path, uname: str, kube: str, sysctls: dict[str, int], entries: int) -> Path:
    """One Service with two pods and one client pod whose TIME_WAIT entries show
    entries / 120 s new connections per second (the shape of seed 001's load test)."""
    (root / "proc" / "net").mkdir(parents=True)
    (root / "kube-proxy").mkdir()
    (root / "uname-r.txt").write_text(uname + "\n")
    (root / "kube-proxy" / "version.txt").write_text(f"Kubernetes {kube}\n")
    (root / "kube-proxy" / "cmdline").write_text("kube-proxy --proxy-mode=ipvs\n")
    (root / "sysctl.txt").write_text(
        "".join(f"net.ipv4.vs.{k} = {v}\n" for k, v in sysctls.items())
    )
    pods = ("10.244.1.10", "10.244.2.20")
    (root / "proc" / "net" / "ip_vs").write_text(
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
        f"TCP  {_hex('10.96.0.10')}:0050 rr\n"
        + "".join(
            f"  -> {_hex(p)}:1F90      Masq    1      0          {entries // 2}\n" for p in pods
        )
    )
    rng = random.Random(7)
    rows = ["Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"]
    for i in range(entries):
        rows.append(
            f"TCP {_hex('10.244.3.30')} {32768 + i % 28000:04X} {_hex('10.96.0.10')} 0050"
            f" {_hex(pods[i % 2])} 1F90 TIME_WAIT   {rng.randint(1, 120):7d}\n"
        )
    (root / "proc" / "net" / "ip_vs_conn").write_text("".join(rows))
    return root


def predict(root: Path, *asks: str, seeds: int = 1) -> dict[str, dict[str, object]]:
    snapshot = snapshot_from_capture(capture_from_layout(root))
    report = what_if(snapshot, node_facts(snapshot), list(asks), seeds=seeds)
    return {v.label: v.model_dump() for v in report.variants}


BIONIC_MODE0 = {"conn_reuse_mode": 0, "conntrack": 1, "expire_nodest_conn": 1}


def test_a_rollout_on_a_mode_0_bionic_node_with_a_busy_client_sends_it_to_dead_pods(
    tmp_path: Path,
) -> None:
    # 18,000 TIME_WAIT entries: 150 connections/s, above the ~118/s where ports recur
    # within 120 s. kube-proxy v1.20 wrote mode 0 on 4.15 (#71114).
    root = busy_node(tmp_path / "n", "4.15.0-213-generic", "v1.20.0", BIONIC_MODE0, 18_000)
    found = predict(root, f"rollout={SERVICE}", "sysctl=conn_reuse_mode=1", "kernel=6.1")
    as_is = found["as is"]
    assert as_is["to_old_pods"]["low"] > 0
    [run] = as_is["runs"]
    assert run["errors"]["EHOSTUNREACH"] > 0  # the pod is gone: "no route to host"
    # Mode 1 on 4.15 reschedules, but the first SYN is dropped: a 1 s p99.
    mode1 = found["sysctl=conn_reuse_mode=1"]
    assert mode1["to_old_pods"]["high"] == 0
    assert mode1["connect_p99_ms"]["low"] >= 1000
    # 6.1 has both fixes: nothing bad, and no slow connects.
    fixed = found["kernel=6.1"]
    assert fixed["to_old_pods"]["high"] == 0 and fixed["errors"]["high"] == 0
    assert fixed["connect_p99_ms"]["high"] < 100


def test_the_recommendation_names_the_change_that_clears_it(tmp_path: Path) -> None:
    root = busy_node(tmp_path / "n", "4.15.0-213-generic", "v1.20.0", BIONIC_MODE0, 18_000)
    snapshot = snapshot_from_capture(capture_from_layout(root))
    report = what_if(snapshot, node_facts(snapshot), [f"rollout={SERVICE}", "kernel=6.1"], 1)
    text = "\n".join(report.recommendation)
    assert "move to kernel 6.1 before" in text
    assert "errors" in report.recommendation[0]


def test_the_same_rollout_on_debian_12_with_kube_proxy_1_28_predicts_nothing_bad(
    tmp_path: Path,
) -> None:
    root = busy_node(
        tmp_path / "n",
        "6.1.0-18-amd64",
        "v1.28.2",
        {"conn_reuse_mode": 1, "conntrack": 1, "expire_nodest_conn": 1},
        18_000,
    )
    as_is = predict(root, f"rollout={SERVICE}")["as is"]
    assert as_is["to_old_pods"]["high"] == 0 and as_is["errors"]["high"] == 0
    assert as_is["new_pods_share"]["low"] > 0.9  # the new pods take the load


def test_a_prediction_is_a_function_of_the_capture_and_the_seed(tmp_path: Path) -> None:
    root = busy_node(tmp_path / "n", "4.15.0-213-generic", "v1.20.0", BIONIC_MODE0, 15_000)
    assert predict(root, f"rollout={SERVICE}") == predict(root, f"rollout={SERVICE}")


@pytest.mark.parametrize(
    ("ask", "message"),
    [
        ("rolout=10.96.0.10:80", "expected one of rollout=..."),
        ("rollout=web", "expected a service as VIP:PORT"),
        ("scale=10.96.0.10:80", "expected scale=VIP:PORT:+N"),
        ("sysctl=conn_reuse=1", "not a net.ipv4.vs sysctl"),
        ("mode=userspace", "mode is one of iptables, nftables"),
    ],
)
def test_a_what_if_that_cannot_be_read_says_why(ask: str, message: str) -> None:
    with pytest.raises(WhatIfError, match=message.replace("+", r"\+").replace(".", r"\.")):
        parse_what_if(ask)


def test_cli_on_a_doctor_fixture_prints_the_prediction_and_its_json() -> None:
    node = FIXTURES / "exposure-bionic-rollout"
    args = ["doctor", "--from", str(node), "--what-if", f"rollout={SERVICE}", "--seeds", "1"]
    human = CliRunner().invoke(app, [*args, "--jobs", "1", "--no-color"])
    assert "What if: rollout=10.96.0.10:80" in human.output
    assert "Assumptions:" in human.output
    result = CliRunner().invoke(app, [*args, "--jobs", "1", "--json"])
    report = json.loads(result.stdout)
    assert report["what_if"]["actions"] == [f"rollout={SERVICE}"]
    assert report["what_if"]["variants"][0]["label"] == "as is"


def test_cli_refuses_an_unknown_service_and_lists_the_real_ones() -> None:
    node = FIXTURES / "exposure-bionic-rollout"
    result = CliRunner().invoke(
        app, ["doctor", "--from", str(node), "--what-if", "rollout=10.96.0.99:80"]
    )
    assert result.exit_code == 2
    assert "no IPVS service TCP 10.96.0.99:80" in result.output
    assert "TCP 10.96.0.10:80" in result.output
    # The diagnosis of what could be read still comes first (docs/doctor.md).
    assert result.output.index("Findings") < result.output.index("no IPVS service")


def test_cli_refuses_a_capture_without_the_connection_table(tmp_path: Path) -> None:
    listing = tmp_path / "ipvsadm-Ln.txt"
    listing.write_text(
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"
        "TCP  10.96.0.10:80 rr\n"
        "  -> 10.244.1.10:8080             Masq    1      3          40\n"
    )
    result = CliRunner().invoke(
        app,
        ["doctor", "--from", str(listing), "--kernel", "4.19", "--what-if", f"rollout={SERVICE}"],
    )
    assert result.exit_code == 2
    assert "needs the connection table" in result.output


def test_with_only_a_rollout_asked_the_doctors_own_sysctl_fixes_are_tried(
    tmp_path: Path,
) -> None:
    # 6.1 with mode 0 and expire_nodest_conn=0 read on the node: c95c07836fa4 (5.16)
    # moves a reused port off a weight-0 server in mode 0 only with expire_nodest_conn=1,
    # so that (or mode 1, no drop since f0a5e4d7a594) is the change to make first.
    root = busy_node(
        tmp_path / "n",
        "6.1.0-18-amd64",
        "v1.24.17",
        {"conn_reuse_mode": 0, "conntrack": 1, "expire_nodest_conn": 0},
        18_000,
    )
    snapshot = snapshot_from_capture(capture_from_layout(root))
    report = what_if(snapshot, node_facts(snapshot), [f"rollout={SERVICE}"], 1)
    as_is, *suggested = report.variants
    assert as_is.to_old_pods.low and as_is.to_old_pods.low > 0
    assert suggested and all(v.label.endswith("(suggested)") for v in suggested)
    assert any(v.to_old_pods.high == 0 and v.errors.high == 0 for v in suggested)
    assert any("before rollout=" in line for line in report.recommendation)


def test_rolling_one_port_of_a_service_rolls_the_pods_behind_its_other_ports(
    tmp_path: Path,
) -> None:
    # A Service with ports 80 and 443 is two IPVS services over the same pod IPs: its
    # Deployment's rollout replaces the pods of both. The busy client uses port 80 only.
    root = busy_node(tmp_path / "n", "4.15.0-213-generic", "v1.20.0", BIONIC_MODE0, 18_000)
    table = root / "proc" / "net" / "ip_vs"
    pods = ("10.244.1.10", "10.244.2.20")
    table.write_text(
        table.read_text()
        + f"TCP  {_hex('10.96.0.10')}:01BB rr\n"
        + "".join(f"  -> {_hex(p)}:20FB      Masq    1      0          0\n" for p in pods)
    )
    as_is = predict(root, "rollout=10.96.0.10:443")["as is"]
    assert as_is["to_old_pods"]["low"] > 0  # port 80's client follows entries to dead pods


def test_the_report_page_holds_the_prediction_and_loads_nothing(tmp_path: Path) -> None:
    node = FIXTURES / "exposure-bionic-rollout"
    page = tmp_path / "what-if.html"
    args = ["doctor", "--from", str(node), "--what-if", f"rollout={SERVICE}"]
    result = CliRunner().invoke(app, [*args, "--seeds", "1", "--jobs", "1", "--report", str(page)])
    assert f"what-if page written to {page}" in result.output
    html = page.read_text()
    assert "Prediction" in html and "Recommendation" in html and "as is" in html
    assert "4.15.0-213-generic" in html  # what the twin was given
    assert not re.search(r"<script[^>]*\bsrc=", html)  # opens offline
    assert html.count("plotly-graph-div") == 1


def test_report_without_what_if_is_refused() -> None:
    node = FIXTURES / "exposure-bionic-rollout"
    result = CliRunner().invoke(app, ["doctor", "--from", str(node), "--report", "x.html"])
    assert result.exit_code == 2
    assert "add --what-if" in result.output


def _model(root: Path, *targets: str) -> NodeModel:
    snapshot = snapshot_from_capture(capture_from_layout(root))
    refs = [parse_what_if(f"rollout={t}").service for t in targets]
    return node_model(snapshot, node_facts(snapshot), [r for r in refs if r is not None])


def test_a_client_whose_entries_fill_its_ports_gets_its_recent_rate(tmp_path: Path) -> None:
    # A reused port renews its entry, so closed entries / 120 s cannot pass E / 120 s
    # (about 118/s): at 300/s the table holds every even port once, a quarter of them
    # touched in the last 10 s. The rate must come from those, or the twin would sit
    # just below the reuse threshold of the 4.6-5.17 port picker and predict nothing.
    root = busy_node(tmp_path / "n", "4.15.0-213-generic", "v1.20.0", BIONIC_MODE0, 14_116)
    rows = (root / "proc" / "net" / "ip_vs_conn").read_text().splitlines(keepends=True)
    recent = [r[:-8] + f"{115:7d}\n" if i % 4 == 0 else r for i, r in enumerate(rows[1:])]
    (root / "proc" / "net" / "ip_vs_conn").write_text(rows[0] + "".join(recent))
    rates = [c["load"]["rate"] for c in _model(root, SERVICE).base["clients"]]
    assert max(rates) > 300  # 3,529 recent entries / 10 s, not 14,116 / 120 s


def test_weight_0_servers_of_the_capture_are_drained_pods_in_the_twin() -> None:
    # exposure-bionic-rollout: 10.244.1.10 at weight 0 still holding entries, 10.244.2.20 live.
    model = _model(FIXTURES / "exposure-bionic-rollout", SERVICE)
    [service] = model.base["services"]
    assert service["deployment"]["replicas"] == 2
    assert model.base["events"] == [
        {"at": "0s", "set_ready": {"service": service["name"], "pod": 1, "ready": False}}
    ]


def test_a_persistent_service_read_from_proc_jiffies_is_affinity_in_seconds() -> None:
    # /proc/net/ip_vs prints the timeout in jiffies (10800000 at HZ=1000): 10800 s.
    model = _model(FIXTURES / "persistence-trap", "10.111.103.161:80")
    assert {s.get("session_affinity") for s in model.base["services"]} >= {"10800s"}
    model.scenario(1)  # a valid scenario


def test_a_busy_node_with_many_services_and_clients_fits_the_twins_nodes(tmp_path: Path) -> None:
    root = busy_node(tmp_path / "n", "6.1.0-18-amd64", "v1.28.2", {"conntrack": 1}, 100)
    table = root / "proc" / "net" / "ip_vs"
    conn = root / "proc" / "net" / "ip_vs_conn"
    rows = []
    for s in range(12):
        vip = f"10.96.{s}.1"
        table.write_text(
            table.read_text()
            + f"TCP  {_hex(vip)}:0050 rr\n"
            + "".join(
                f"  -> {_hex(f'10.244.{s}.{p}')}:1F90      Masq    1      0   0\n" for p in range(8)
            )
        )
        for c in range(30):
            for k in range(20):
                rows.append(
                    f"TCP {_hex(f'10.245.{c}.{s}')} {40000 + k:04X} {_hex(vip)} 0050"
                    f" {_hex(f'10.244.{s}.{k % 8}')} 1F90 TIME_WAIT   {60:7d}\n"
                )
    conn.write_text(conn.read_text() + "".join(rows))
    model = _model(root, "10.96.3.1:80")
    Cluster(model.scenario(1))  # laid out without running out of pod addresses on a node


def test_a_kernel_change_is_a_reboot_kube_proxy_writes_its_values_again(tmp_path: Path) -> None:
    root = busy_node(tmp_path / "n", "4.15.0-213-generic", "v1.24.17", {"conn_reuse_mode": 1}, 100)
    model = _model(root, SERVICE)
    assert model.base["cluster"]["sysctls"] == {"conn_reuse_mode": 1}
    moved = scenario_of(model, [], [parse_what_if("kernel=5.4.0-91-generic")], 1)
    assert moved.cluster.sysctls == {}  # v1.24 then writes mode 0 on < 5.9 (#102122)


def test_an_unknown_kube_proxy_whose_versions_disagree_is_asked_for(tmp_path: Path) -> None:
    root = busy_node(tmp_path / "n", "3.10.0-957.el7.x86_64", "v1.20.0", {}, 100)
    (root / "kube-proxy" / "version.txt").unlink()
    with pytest.raises(WhatIfError, match=r"--kube-proxy vX\.Y\.Z"):
        _model(root, SERVICE)


@pytest.mark.parametrize(
    ("ask", "message"),
    [
        ("sysctl=conn_reuse_mode=7", "must be 0..3"),
        ("kernel=banana", "not a kernel preset"),
        ("kernel=2.6.32", "starts at 3.10"),
    ],
)
def test_a_setting_out_of_range_is_refused_when_read(ask: str, message: str) -> None:
    with pytest.raises(WhatIfError, match=message):
        parse_what_if(ask)


def _recent(root: Path, every: int) -> None:
    """Marks every ``every``-th TIME_WAIT entry as touched in the last 10 s."""
    path = root / "proc" / "net" / "ip_vs_conn"
    rows = path.read_text().splitlines(keepends=True)
    touched = [r[:-8] + f"{115:7d}\n" if i % every == 0 else r for i, r in enumerate(rows[1:])]
    path.write_text(rows[0] + "".join(touched))


def test_a_client_reusing_ports_below_saturation_still_gets_its_recent_rate(
    tmp_path: Path,
) -> None:
    # With random port choice a 143/s client holds about 10,000 of the 14,116 even ports
    # (E(1 - e^(-N*T/E)), client-tcp-ports.md §5): closed / 120 s says 84/s, under the
    # ~118/s where the 4.6-5.17 picker starts reusing; its last 10 s say 143/s.
    root = busy_node(tmp_path / "n", "4.19.0", "v1.20.0", {"conn_reuse_mode": 1}, 10_140)
    _recent(root, 7)  # 1,449 touched in the last 10 s
    rates = [c["load"]["rate"] for c in _model(root, SERVICE).base["clients"]]
    assert max(rates) > 140


def test_a_target_with_no_client_in_the_table_is_refused(tmp_path: Path) -> None:
    root = busy_node(tmp_path / "n", "4.19.0", "v1.20.0", {"conn_reuse_mode": 1}, 100)
    conns = root / "proc" / "net" / "ip_vs_conn"
    conns.write_text(conns.read_text().splitlines(keepends=True)[0])  # header only
    with pytest.raises(WhatIfError, match=r"no client of TCP 10\.96\.0\.10:80"):
        _model(root, SERVICE)


def test_figures_are_the_acted_on_services_not_the_whole_node(tmp_path: Path) -> None:
    # A busy client on :80 and a quiet one on 10.96.9.9:80 (another Deployment): rolling
    # the quiet one must not report the busy one's connections as its own.
    root = busy_node(tmp_path / "n", "6.1.0-18-amd64", "v1.28.2", {"conntrack": 1}, 6_000)
    table = root / "proc" / "net" / "ip_vs"
    table.write_text(
        table.read_text()
        + f"TCP  {_hex('10.96.9.9')}:0050 rr\n"
        + f"  -> {_hex('10.244.7.7')}:1F90      Masq    1   0   0\n"
    )
    conns = root / "proc" / "net" / "ip_vs_conn"
    quiet = "".join(
        f"TCP {_hex('10.244.3.31')} {40000 + k:04X} {_hex('10.96.9.9')} 0050"
        f" {_hex('10.244.7.7')} 1F90 TIME_WAIT   {60:7d}\n"
        for k in range(240)  # 2/s
    )
    conns.write_text(conns.read_text() + quiet)
    [run] = predict(root, "rollout=10.96.9.9:80")["as is"]["runs"]
    assert 0 < run["connections"] < 600  # ~2/s for 180 s, not the busy service's 50/s


def test_a_scale_out_that_starves_the_new_pods_is_not_called_clean(tmp_path: Path) -> None:
    # Seed 000 symptom 3: with conn_reuse_mode=0 a reused port follows its old entry to
    # its old, healthy pod (linux-ipvs.md §7), so a busy client that reuses every port
    # keeps its load on the old pods and the new ones get little (kubernetes#81775).
    root = busy_node(tmp_path / "n", "5.10.0", "v1.20.0", {"conn_reuse_mode": 0}, 20_000)
    snapshot = snapshot_from_capture(capture_from_layout(root))
    report = what_if(snapshot, node_facts(snapshot), [f"scale={SERVICE}:+3"], 1)
    as_is = report.variants[0]
    assert as_is.fair_share.low is not None and as_is.fair_share.low >= 0.5
    assert as_is.new_pods_share.high is not None and as_is.new_pods_share.high < 0.25
    assert "new pods starved" in report.recommendation[0]
