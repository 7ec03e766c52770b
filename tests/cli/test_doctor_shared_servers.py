"""Real servers shared by several services are judged per (service, real server).

``shared-servers`` is an Ubuntu 18.04 node (kube-proxy v1.20.15, conn_reuse_mode=0)
during a rollout: the old pod 10.244.1.7:8080 is at weight 0 behind its ClusterIP
10.96.45.12:80 and behind the NodePort 30080 of each of the four node IPs
(eth0, docker0, flannel.1, cni0), as kube-proxy's IPVS mode lays them out, and
behind an fwmark service (FWM 100) of an outside load balancer. Only the ClusterIP's
own entries (2 ESTABLISHED, 37 TIME_WAIT) hold it; its twins have no entry and
ActiveConn = InActConn = 0.

``template-invalidated`` is a Debian 12 node (kube-proxy v1.31.0) with session
affinity: all that is left of the weight-0 server 10.244.3.5:8080 is one template
that ip_vs_check_template() gave up (client port 0, ports 0xFFFF). Templates are not
in ActiveConn/InActConn, so kube-proxy deletes the server at its next check.
"""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from typer.testing import CliRunner, Result

from ipvslab.cli.main import app
from ipvslab.doctor.report import Report

NODES = Path(__file__).resolve().parents[1] / "fixtures" / "doctor" / "nodes"
SHARED = NODES / "shared-servers"
TEMPLATE = NODES / "template-invalidated"

runner = CliRunner()


def doctor(*args: str | Path) -> Result:
    result = runner.invoke(app, ["doctor", *map(str, args)])
    assert "Traceback" not in result.output
    return result


def json_report(root: Path) -> Report:
    return Report.model_validate(json.loads(doctor("--from", root, "--json").stdout))


def metrics(root: Path, tmp_path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    prom = tmp_path / "ipvslab.prom"
    doctor("--from", root, "--prometheus", prom)
    out = {}
    for family in text_string_to_metric_families(prom.read_text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_a_pod_behind_clusterip_and_nodeports_is_stuck_only_where_its_entries_are() -> None:
    report = json_report(SHARED)
    stuck = [(s.service, s.address, s.port) for s in report.stuck_real_servers]
    assert stuck == [("TCP 10.96.45.12:80", "10.244.1.7", 8080)]
    s = report.stuck_real_servers[0]
    assert (s.active_conns, s.inactive_conns, s.entries) == (2, 37, 39)
    assert s.by_state == {"ESTABLISHED": 2, "TIME_WAIT": 37}


def test_header_json_metrics_and_findings_agree_on_the_stuck_servers(tmp_path: Path) -> None:
    report = json_report(SHARED)
    found = [f.subject for f in report.findings if f.id.value == "stuck-graceful-termination"]
    assert found == ["TCP 10.96.45.12:80 -> 10.244.1.7:8080"]
    values = metrics(SHARED, tmp_path)
    assert values[("ipvslab_doctor_stuck_real_servers", ())] == 1
    per_server = {
        labels: v
        for (name, labels), v in values.items()
        if name == "ipvslab_doctor_stuck_real_server_connections"
    }
    assert per_server == {
        (("real_server", "10.244.1.7:8080"), ("service", "TCP 10.96.45.12:80")): 39
    }
    out = doctor("--from", SHARED, "--no-color").output
    assert out.count("weight 0 but still holding entries") == 1
    assert "39 entries of this service" in " ".join(out.split())
    for twin in ("10.0.1.11:30080", "172.17.0.1:30080", "10.244.1.0:30080", "FWM 100"):
        assert f"in TCP {twin}" not in out and f"in {twin}" not in out


def test_only_an_invalidated_template_on_a_weight0_server_raises_no_warning(
    tmp_path: Path,
) -> None:
    result = doctor("--from", TEMPLATE, "--no-color")
    assert result.exit_code == 0, result.output
    report = json_report(TEMPLATE)
    assert report.stuck_real_servers == []
    assert all(f.severity.value == "info" for f in report.findings)
    assert report.connections is not None and report.connections.invalidated_templates == 1
    assert metrics(TEMPLATE, tmp_path)[("ipvslab_doctor_stuck_real_servers", ())] == 0
    assert "weight 0 but still holding entries" not in result.output


# --------------------------------------------------------------------------- the tables


def test_json_services_list_each_server_with_the_entries_of_that_service() -> None:
    report = json_report(SHARED)
    names = [s.name for s in report.services]
    assert names == [
        "TCP 10.96.0.1:443",
        "UDP 10.96.0.10:53",
        "TCP 10.96.45.12:80",
        "TCP 10.96.45.13:9090",
        "TCP 10.0.1.11:30080",
        "TCP 172.17.0.1:30080",
        "TCP 10.244.1.0:30080",
        "TCP 10.244.1.1:30080",
        "FWM 100",
    ]
    by_name = {s.name: s for s in report.services}
    cluster_ip = by_name["TCP 10.96.45.12:80"]
    assert (cluster_ip.protocol, cluster_ip.address, cluster_ip.port) == ("TCP", "10.96.45.12", 80)
    assert cluster_ip.scheduler == "rr" and cluster_ip.flags == []
    servers = {(rs.address, rs.port): rs for rs in cluster_ip.real_servers}
    old = servers[("10.244.1.7", 8080)]
    assert (old.forward, old.weight, old.active_conns, old.inactive_conns) == ("Masq", 0, 2, 37)
    assert (old.entries, old.by_state) == (39, {"ESTABLISHED": 2, "TIME_WAIT": 37})
    # ipvsadm -Ln --stats of the same node: the server's own counters, not the service's.
    assert old.stats is not None and old.stats.conns == 28097
    assert cluster_ip.stats is not None and cluster_ip.stats.conns == 48210
    for twin in ("TCP 172.17.0.1:30080", "TCP 10.244.1.0:30080", "TCP 10.244.1.1:30080"):
        assert [rs.entries for rs in by_name[twin].real_servers] == [0, 0]
    nodeport = {rs.address: rs.entries for rs in by_name["TCP 10.0.1.11:30080"].real_servers}
    assert nodeport == {"10.244.2.9": 5, "10.244.1.7": 0}
    fwmark = by_name["FWM 100"]
    assert (fwmark.fwmark, fwmark.protocol, fwmark.address) == (100, None, None)
    assert {rs.address: rs.entries for rs in fwmark.real_servers} == {
        "10.244.2.9": 2,
        "10.244.1.7": 0,
    }
    assert report.unattributed_entries == 0
    # /proc/net/ip_vs_stats prints hex: 19C7B conns since boot, 29 (hex) conns/s now.
    assert report.ipvs_stats is not None
    assert (report.ipvs_stats.totals.conns, report.ipvs_stats.rates.conns) == (105595, 41)


def test_persistence_and_templates_per_server_in_json() -> None:
    svc = {s.name: s for s in json_report(TEMPLATE).services}["TCP 10.96.7.7:80"]
    assert svc.flags == ["persistent"]
    # /proc/net/ip_vs prints the timeout in jiffies: 2700000 is 10800 s at HZ=250.
    assert (svc.persistence_timeout, svc.persistence_unit) == (2700000, "jiffies")
    assert 10800 in svc.persistence_seconds
    assert svc.netmask == 0xFFFFFFFF
    templates = {rs.address: (rs.templates, rs.invalidated_templates) for rs in svc.real_servers}
    assert templates == {"10.244.3.6": (1, 0), "10.244.3.5": (1, 1)}


def test_human_output_has_the_table_section() -> None:
    out = doctor("--from", SHARED, "--no-color").output
    assert "IPVS table (9 services)" in out
    lines = [line.strip() for line in out.splitlines()]
    assert "TCP 10.96.45.12:80 rr  (48210 conns, 385680/337470 packets in/out in all)" in lines
    assert (
        "-> 10.244.1.7:8080 Masq weight 0, ActiveConn 2, InActConn 37; 39 entries"
        " (TIME_WAIT 37, ESTABLISHED 2); 28097 conns in all"
    ) in lines
    assert any(line.startswith("since boot: 105595 conns") for line in lines)


def test_metrics_carry_the_ipvs_statistics(tmp_path: Path) -> None:
    values = metrics(SHARED, tmp_path)
    assert values[("ipvslab_doctor_ipvs_since_boot", (("counter", "conns"),))] == 105595
    assert values[("ipvslab_doctor_ipvs_rate", (("counter", "in_bytes"),))] == 0x5190
    key = (("counter", "out_bytes"), ("service", "TCP 10.96.45.12:80"))
    assert values[("ipvslab_doctor_service_stats", key)] == 212845250
    server = (
        ("counter", "conns"),
        ("real_server", "10.244.2.9:8080"),
        ("service", "FWM 100"),
    )
    assert values[("ipvslab_doctor_real_server_stats", server)] == 41
