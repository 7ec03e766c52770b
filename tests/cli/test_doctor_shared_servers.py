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
