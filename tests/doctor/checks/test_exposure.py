"""Finding 1: exposure to problem 1 (#81775) and problem 2 (#70747), from capture directories.

Expectations come from the seeds (Huawei CCE FAQ: which OS has which problem), the
references (which kernel versions carry f0a5e4d7a594 and c95c07836fa4, what kube-proxy
sets) and, for the era matrix, from ``ipvslab.explain`` asked the same question.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.checks import exposure
from ipvslab.doctor.diagnose import diagnose
from ipvslab.doctor.facts import node_facts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.doctor.report import build_report
from ipvslab.explain import ExplainRequest, ServerCondition, explain

from .node_edit import filter_conns, proc_hex, write_node

NODES = Path(__file__).resolve().parents[2] / "fixtures" / "doctor" / "nodes"
STALE = FindingKind.STALE_FORWARDING_EXPOSURE
DROP = FindingKind.SYN_DROP_EXPOSURE


def exposure_findings(root: Path) -> dict[FindingKind, Finding]:
    snapshot = snapshot_from_capture(capture_from_layout(root))
    found = exposure.check(snapshot, node_facts(snapshot))
    kinds = [f.kind for f in found]
    assert len(kinds) == len(set(kinds)), "one finding per problem"
    return {f.kind: f for f in found}


def write_exposure_node(
    root: Path,
    uname: str | None,
    kube: str | None = "v1.28.2",
    sysctl: dict[str, int] | None = None,
    proxy_mode: str = "ipvs",
) -> Path:
    """A capture directory with one service (one weight-0 server) and a quiet table."""
    return write_node(root, uname, kube, sysctl, proxy_mode, draining=True)


# --------------------------------------------------------------------------- fixtures


def test_rolling_update_on_ubuntu_1804_is_critical_stale_forwarding() -> None:
    found = exposure_findings(NODES / "exposure-bionic-rollout")
    stale = found[STALE]
    # The CCE FAQ: Ubuntu 18.04 with kube-proxy's conn_reuse_mode=0 has problem 1.
    assert stale.severity is Severity.CRITICAL
    evidence = "\n".join(stale.evidence)
    assert "10.244.1.10:8080" in evidence and "weight 0" in evidence
    assert "net.ipv4.vs.conn_reuse_mode = 0 (read on the node)" in evidence
    assert "d752c364" in evidence  # the decision path names its commit
    assert "ubuntu-18.04" in evidence  # and the preset with its evidence
    fix = "\n".join(stale.fix)
    # No sysctl avoids both problems on 4.15: the fix is a kernel with the upstream fixes.
    assert not any(line.startswith("sysctl -w") for line in stale.fix)
    assert "c95c07836fa4" in fix and "5.4.163" in fix
    assert "f0a5e4d7a594" in fix and "5.9" in fix
    assert "problem 2" in fix  # the trade-off of switching to conn_reuse_mode=1 is spelt out
    assert stale.data["live_servers"][0]["weight"] == 0
    assert json.loads(json.dumps(stale.data))["problems"] == ["problem 1", "problem 2"]


def test_kernel_upgrade_to_a_stable_backport_warns_that_kube_proxy_resets_mode_1() -> None:
    # "upgrade to 5.4.59 (f0a5e4d7a594), then set conn_reuse_mode=1" is not enough:
    # 5.4.59 is < 5.9 by version number, so every kube-proxy from 1.13 writes 0 again at
    # each start (#71114, #88541, #102122) and problem 1 comes back.
    stale = exposure_findings(NODES / "exposure-bionic-quiet")[STALE]
    [line] = [x for x in stale.fix if x.startswith("upgrade the kernel") and "f0a5e4d7a594" in x]
    assert "5.4.59" in line
    assert "re-apply it after each kube-proxy start" in line
    assert "5.9" in line and "#102122" in line


def test_same_node_without_recent_traffic_to_the_weight0_server_is_a_warning() -> None:
    stale = exposure_findings(NODES / "exposure-bionic-quiet")[STALE]
    assert stale.severity is Severity.WARNING
    assert "happening now" not in stale.title


def test_centos_76_with_kube_proxy_128_drops_the_first_syn() -> None:
    # CCE FAQ: on CentOS 7.6 kube-proxy >= 1.19 leaves conn_reuse_mode=1 (kernel < 4.1 by
    # version number), so the node has problem 2, the 1 s delay.
    found = exposure_findings(NODES / "exposure-centos76-kp128")
    assert STALE not in found
    drop = found[DROP]
    assert drop.severity is Severity.WARNING
    evidence = "\n".join(drop.evidence)
    assert "f719e3754" in evidence
    assert "net.ipv4.vs.conn_reuse_mode = 1 (not captured; the kernel default)" in evidence
    assert "net.ipv4.vs.conntrack = 1 (not captured; what kube-proxy v1.28.2 sets" in evidence
    assert "centos-7.6" in evidence
    assert "1 s" in drop.title
    assert any("upgrade the kernel" in line for line in drop.fix)
    assert not any(line.startswith("sysctl -w") for line in drop.fix)


def test_ubuntu_2004_fix_is_conn_reuse_mode_1_which_kube_proxy_124_undoes() -> None:
    stale = exposure_findings(NODES / "exposure-focal91-kp124")[STALE]
    assert stale.severity is Severity.WARNING
    # 5.4.0-91 carries f0a5e4d7a594 (5.4.59): mode 1 no longer drops the SYN.
    assert stale.fix[0].startswith("sysctl -w net.ipv4.vs.conn_reuse_mode=1")
    assert any("/etc/sysctl.d/" in line for line in stale.fix)
    # kube-proxy sets 0 on every kernel < 5.9 by version number: it undoes the fix.
    assert any("kube-proxy v1.24.17 writes net.ipv4.vs.conn_reuse_mode=0" in x for x in stale.fix)
    # The lasting fix: c95c07836fa4 (5.4.163), where expire_nodest_conn=1 fixes mode 0.
    assert any("c95c07836fa4" in line and "5.4.163" in line for line in stale.fix)


def test_debian_12_with_kube_proxy_128_is_not_exposed() -> None:
    assert exposure_findings(NODES / "exposure-debian12-kp128") == {}


def test_unknown_kernel_gives_no_exposure_finding(tmp_path: Path) -> None:
    root = tmp_path / "node"
    shutil.copytree(NODES / "exposure-bionic-rollout", root)
    (root / "uname-r.txt").unlink()
    assert exposure_findings(root) == {}


def test_ipvs_kube_proxy_of_unknown_version_on_centos_76_names_both_problems(
    tmp_path: Path,
) -> None:
    # On CentOS 7.6 (3.10 with the 4.1 conn_reuse_mode backported, before every fix) the
    # version decides: kube-proxy below 1.12.5 leaves mode 1 (problem 2, the 1 s drop),
    # 1.12.5-1.18 write mode 0 (problem 1, #71114), and 1.19+ skip kernels < 4.1 (#88541)
    # and leave mode 1 again. No single answer is right without the version.
    root = write_exposure_node(tmp_path / "n", "3.10.0-957.el7.x86_64", kube=None)
    snapshot = snapshot_from_capture(capture_from_layout(root))
    facts = node_facts(snapshot)
    assert facts.exposure is None
    ranges = dict(facts.exposure_by_kube_version)
    assert ranges["v1.11.0-v1.12.4"].problems == ("problem 2",)
    assert ranges["v1.13.0-v1.13.x"].problems == ("problem 1",)
    # From 1.14 (and 1.12.5) expire_nodest_conn=1 too: before 5.9 a reused port of a
    # removed server then loses its first SYN (04231e52d355 came later).
    assert "problem 1" in ranges["v1.14-v1.18"].problems
    assert ranges["v1.19 and newer"].problems == ("problem 2",)
    assert exposure_findings(root) == {}  # no finding claims one problem


def test_ipvs_kube_proxy_of_unknown_version_on_debian_12_only_v1_13_is_exposed(
    tmp_path: Path,
) -> None:
    # On 6.1 mode 1 has no drop (f0a5e4d7a594, 5.9) and mode 0 leaves weight-0 servers
    # when expire_nodest_conn=1 (c95c07836fa4, 5.16). Only 1.13 writes mode 0 without
    # expire_nodest_conn=1 (#71114 without #71834), so only it is exposed.
    root = write_exposure_node(tmp_path / "n", "6.1.0-18-amd64", kube=None)
    facts = node_facts(snapshot_from_capture(capture_from_layout(root)))
    assert [(label, e.problems) for label, e in facts.exposure_by_kube_version] == [
        ("v1.11.0-v1.12.x", ()),
        ("v1.13.0-v1.13.x", ("problem 1",)),
        ("v1.14 and newer", ()),
    ]


def test_ipvs_kube_proxy_of_unknown_version_with_the_sysctls_read_is_judged(
    tmp_path: Path,
) -> None:
    # The values read on the node decide, whatever kube-proxy's version.
    root = write_exposure_node(
        tmp_path / "n",
        "6.1.0-18-amd64",
        kube=None,
        sysctl={"conn_reuse_mode": 1, "conntrack": 1, "expire_nodest_conn": 1},
    )
    facts = node_facts(snapshot_from_capture(capture_from_layout(root)))
    assert facts.exposure is not None and facts.exposure.problems == ()
    assert facts.exposure_by_kube_version == ()


def test_kube_proxy_in_iptables_mode_without_ipvs_services_is_not_asked(tmp_path: Path) -> None:
    root = write_exposure_node(tmp_path / "n", "4.15.0-213-generic", proxy_mode="iptables")
    (root / "proc" / "net" / "ip_vs").write_text(
        "IP Virtual Server version 1.2.1 (size=4096)\n"
        "Prot LocalAddress:Port Scheduler Flags\n"
        "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n"
    )
    assert exposure_findings(root) == {}


def test_entries_to_a_removed_server_with_recent_traffic_make_it_critical(tmp_path: Path) -> None:
    root = write_exposure_node(
        tmp_path / "n",
        "5.4.0-91-generic",
        "v1.24.17",
        {"conn_reuse_mode": 0, "conntrack": 1, "expire_nodest_conn": 0},
    )
    with (root / "proc" / "net" / "ip_vs_conn").open("a") as f:
        f.write(
            f"TCP {proc_hex('10.244.3.30')} 9C44 {proc_hex('10.96.0.10')} 0050"
            f" {proc_hex('10.244.4.40')} 1F90 SYN_RECV          59\n"
        )
    stale = exposure_findings(root)[STALE]
    assert stale.severity is Severity.CRITICAL
    assert any("10.244.4.40:8080 (removed from the service)" in e for e in stale.evidence)


def test_tencentos_fix_is_conn_reuse_old_conntrack(tmp_path: Path) -> None:
    # TencentOS-kernel PR #17: conn_reuse_old_conntrack=1 reschedules without the drop.
    root = write_exposure_node(
        tmp_path / "n",
        "5.4.119-19-0009.1",
        "v1.28.2",
        {
            "conn_reuse_mode": 1,
            "conntrack": 1,
            "expire_nodest_conn": 1,
            "conn_reuse_old_conntrack": 0,
        },
    )
    drop = exposure_findings(root)[DROP]
    assert drop.fix[0].startswith("sysctl -w net.ipv4.vs.conn_reuse_old_conntrack=1")


# --------------------------------------------------------------------------- era matrix

ERAS = [
    "3.10.0-957.el7.x86_64",  # CentOS 7.6
    "4.15.0-213-generic",  # Ubuntu 18.04
    "5.4.0-91-generic",  # Ubuntu 20.04
    "5.15.0-91-generic",  # Ubuntu 22.04
    "6.1.0-18-amd64",  # Debian 12
]
SETTINGS: dict[str, dict[str, int] | None] = {
    "kube-proxy defaults": None,
    "node mode 0": {"conn_reuse_mode": 0, "conntrack": 1, "expire_nodest_conn": 1},
    "node mode 1": {"conn_reuse_mode": 1, "conntrack": 1, "expire_nodest_conn": 1},
    "node mode 0, expire 0": {"conn_reuse_mode": 0, "conntrack": 1, "expire_nodest_conn": 0},
}


def _twin_problems(uname: str, kube: str, sysctl: dict[str, int] | None) -> set[tuple[str, str]]:
    """What explain says, condition by condition, with the same inputs."""
    out = set()
    for condition in ServerCondition:
        request = ExplainRequest(
            kernel=uname,
            kube_proxy=kube if sysctl is None else None,
            server=condition,
            **(sysctl or {}),  # type: ignore[arg-type]
        )
        result = explain(request)
        out.add((condition.value, result.problem))
    return out


@pytest.mark.parametrize("kube", ["v1.17.0", "v1.21.3", "v1.28.2"])
@pytest.mark.parametrize("setting", list(SETTINGS))
@pytest.mark.parametrize("uname", ERAS)
def test_exposure_agrees_with_explain(tmp_path: Path, uname: str, kube: str, setting: str) -> None:
    sysctl = SETTINGS[setting]
    found = exposure_findings(write_exposure_node(tmp_path / "n", uname, kube, sysctl))
    twin = _twin_problems(uname, kube, sysctl)
    stale = any(p == "problem 1" for c, p in twin if c != ServerCondition.HEALTHY.value)
    drop = any(p == "problem 2" for _, p in twin)
    assert (STALE in found) == stale
    assert (DROP in found) == drop
    for finding in found.values():
        # Every fix offered as a sysctl change was checked on this kernel; a kernel
        # upgrade is offered whenever no sysctl change clears the finding.
        sysctl_fix = any(line.startswith("sysctl -w") for line in finding.fix)
        upgrade = any("upgrade the kernel" in line for line in finding.fix)
        assert sysctl_fix or upgrade
        assert finding.severity in (Severity.INFO, Severity.WARNING)  # quiet table


@pytest.mark.parametrize(
    ("uname", "expected_fix"),
    [
        # c95c07836fa4 (5.16, stable 5.15.6): expire_nodest_conn=1 fixes mode 0.
        ("5.15.0-91-generic", "sysctl -w net.ipv4.vs.expire_nodest_conn=1"),
        ("6.1.0-18-amd64", "sysctl -w net.ipv4.vs.expire_nodest_conn=1"),
        # f0a5e4d7a594 (5.4.59) but not c95c07836fa4: mode 1 is the way.
        ("5.4.0-91-generic", "sysctl -w net.ipv4.vs.conn_reuse_mode=1"),
        # Neither fix: a newer kernel.
        ("4.15.0-213-generic", "upgrade the kernel"),
        ("3.10.0-957.el7.x86_64", "upgrade the kernel"),
    ],
)
def test_stale_forwarding_fix_fits_the_era(tmp_path: Path, uname: str, expected_fix: str) -> None:
    sysctl = {"conn_reuse_mode": 0, "conntrack": 1, "expire_nodest_conn": 0}
    stale = exposure_findings(write_exposure_node(tmp_path / "n", uname, "v1.28.2", sysctl))[STALE]
    assert any(line.startswith(expected_fix) for line in stale.fix)
    if expected_fix.startswith("upgrade"):
        assert not any(line.startswith("sysctl -w") for line in stale.fix)


def test_no_sysctls_and_no_kube_proxy_is_no_verdict_not_a_clean_bill(tmp_path: Path) -> None:
    # A pasted ipvsadm table with only a kernel: kube-proxy writes conntrack=1 in every
    # version and conn_reuse_mode=0 on most, so the kernel defaults would hide the
    # problem kube-proxy causes. The exposure must stay unknown.
    root = write_exposure_node(tmp_path / "n", "4.15.0-213-generic", kube=None, proxy_mode="")
    for name in ("kube-proxy",):
        shutil.rmtree(root / name, ignore_errors=True)
    snapshot = snapshot_from_capture(capture_from_layout(root))
    facts = node_facts(snapshot)
    assert snapshot.kube_proxy is None
    assert facts.exposure is None
    assert facts.exposure_problem is not None and "sysctl -a" in facts.exposure_problem


def _iptables_node(tmp_path: Path) -> Path:
    """Bionic, kube-proxy v1.24 in iptables mode, beside an IPVS table with a weight-0 server."""
    return write_node(
        tmp_path / "n",
        "4.15.0-213-generic",
        "v1.24.17",
        {"conn_reuse_mode": 0},
        "iptables",
        draining=True,
    )


def test_iptables_mode_beside_an_idle_leftover_ipvs_table_gets_no_ipvs_findings(
    tmp_path: Path,
) -> None:
    # After a switch from IPVS to iptables mode the virtual services stay, but kube-proxy
    # deleted kube-ipvs0 and DNATs Service traffic in PREROUTING: the table carries nothing.
    root = _iptables_node(tmp_path)
    filter_conns(root, lambda fields: False)  # no entry: nothing goes through it
    diagnosis = diagnose(snapshot_from_capture(capture_from_layout(root)))
    kinds = {f.kind for f in diagnosis.findings}
    assert STALE not in kinds and DROP not in kinds
    assert FindingKind.STUCK_GRACEFUL_TERMINATION not in kinds  # kube-proxy drains nothing here
    # Nor does the exposure say "exposed" (an alert on the metric would fire for nothing).
    exposure_info = build_report(diagnosis).exposure
    assert exposure_info.verdict == "not applicable"
    assert exposure_info.syn_drop is False and exposure_info.stale_forwarding is False


def test_iptables_mode_beside_a_busy_ipvs_table_says_whose_table_it_is(tmp_path: Path) -> None:
    # keepalived or lvscare on an iptables-mode node: the IPVS reuse problems are real,
    # but kube-proxy is not the one to blame or to configure.
    root = _iptables_node(tmp_path)
    stale = exposure_findings(root)[STALE]
    assert stale.evidence[0].startswith("kube-proxy runs in iptables mode")
    assert "keepalived" in stale.evidence[0]
