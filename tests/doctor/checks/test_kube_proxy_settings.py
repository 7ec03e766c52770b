"""Finding 6: node sysctls against what its kube-proxy version sets.

What kube-proxy sets comes from kube-proxy-ipvs.md §2 (#71114, #71834, #88541,
#102122); that it writes them only at start-up from the same place; whether the
difference helps or hurts from ``ipvslab.explain`` asked about kube-proxy's values.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.checks import kube_proxy_settings
from ipvslab.doctor.facts import node_facts
from ipvslab.doctor.finding import Finding, FindingKind, Severity
from ipvslab.explain import ExplainRequest, ServerCondition, explain

from .node_edit import write_node

NODES = Path(__file__).resolve().parents[2] / "fixtures" / "doctor" / "nodes"


def settings_findings(root: Path) -> list[Finding]:
    snapshot = snapshot_from_capture(capture_from_layout(root))
    found = kube_proxy_settings.check(snapshot, node_facts(snapshot))
    assert all(f.kind is FindingKind.SETTINGS_DIFFER_FROM_KUBE_PROXY for f in found)
    return found


def write_settings_node(
    root: Path,
    uname: str,
    kube: str | None,
    sysctl: dict[str, int] | None,
    proxy_mode: str = "ipvs",
) -> Path:
    return write_node(root, uname, kube, sysctl, proxy_mode)


def _twin_problems(uname: str, kube: str) -> list[str]:
    """explain's problems with kube-proxy's values on a node that had nothing else set."""
    problems = set()
    for condition in ServerCondition:
        result = explain(ExplainRequest(kernel=uname, kube_proxy=kube, server=condition))
        if result.problem != "none" and (
            result.problem == "problem 2" or condition is not ServerCondition.HEALTHY
        ):
            problems.add(result.problem)
    return sorted(problems)


# --------------------------------------------------------------------------- fixtures


def test_node_fix_that_kube_proxy_restart_undoes() -> None:
    # Ubuntu 20.04, 5.4.0-91: someone set conn_reuse_mode=1 (no drop there, f0a5e4d7a594),
    # but kube-proxy 1.24 writes 0 at every start on a kernel < 5.9 by version number.
    [finding] = settings_findings(NODES / "kpsettings-focal-node-mode1")
    assert finding.severity is Severity.WARNING
    assert "until kube-proxy restarts" in finding.title
    evidence = "\n".join(finding.evidence)
    assert "kube-proxy v1.24.17 writes 0" in evidence
    assert finding.data["problems_now"] == []
    assert finding.data["problems_after_kube_proxy_start"] == _twin_problems(
        "5.4.0-91-generic", "v1.24.17"
    )
    assert any("re-apply" in line and "conn_reuse_mode=1" in line for line in finding.fix)
    assert any("c95c07836fa4" in line for line in finding.fix)  # the lasting fix
    assert json.loads(json.dumps(finding.data))["after_kube_proxy_start"] == "worse"


def test_kube_proxy_before_122_forces_mode_0_on_kernel_59_plus() -> None:
    # 5.10.50 has f0a5e4d7a594 but not c95c07836fa4 (5.10.83): mode 0 means problem 1.
    found = settings_findings(NODES / "kpsettings-elrepo510-kp121")
    [bad] = [f for f in found if f.data.get("known_bad")]
    assert bad.severity is Severity.WARNING
    assert "conn_reuse_mode=0" in bad.title
    fix = "\n".join(bad.fix)
    assert "v1.22.0" in fix and "v1.21.9" in fix  # #102122 and its 1.21 backport
    assert "sysctl -w net.ipv4.vs.conn_reuse_mode=1" in fix  # the old 0 stays until reboot
    assert bad.data["problems_with_this"] == _twin_problems(
        "5.10.50-1.el7.elrepo.x86_64", "v1.21.3"
    )
    assert bad.data["problems_with_newest"] == []


def test_old_kube_proxy_never_advises_conn_reuse_mode_0_on_a_kernel_without_the_fixes() -> None:
    # Ubuntu 18.04 (4.15), kube-proxy 1.11.10: it sets no expire_* (a real harm, #71834),
    # and newer kube-proxy versions also write conn_reuse_mode=0, which on 4.15 swaps the
    # 1 s SYN drop for stale forwarding to deleted pods (#81775). That is a trade-off: the
    # finding must not tell the on-call engineer to `sysctl -w conn_reuse_mode=0`.
    found = settings_findings(NODES / "removed-blackhole")
    [bad] = [f for f in found if f.data.get("known_bad")]
    assert bad.severity is Severity.WARNING
    assert "expire_nodest_conn=0" in bad.title
    assert "trade-off" in bad.title
    assert "conn_reuse_mode=1," not in bad.title  # not among the values "newer versions fix"
    fix = "\n".join(bad.fix)
    assert "sysctl -w net.ipv4.vs.conn_reuse_mode=0" not in fix
    assert "sysctl -w net.ipv4.vs.expire_nodest_conn=1" in fix
    assert any(
        "do not copy net.ipv4.vs.conn_reuse_mode=0" in line and "problem 1" in line
        for line in bad.fix
    )


def test_value_left_behind_by_an_older_kube_proxy() -> None:
    # kube-proxy 1.28 leaves conn_reuse_mode on kernel >= 5.9; the node still has the 0
    # an older kube-proxy wrote (it survives an upgrade until reboot).
    [finding] = settings_findings(NODES / "kpsettings-elrepo510-upgraded-kp128")
    assert finding.severity is Severity.WARNING
    assert "leaves it" in finding.title
    assert any(line.startswith("sysctl -w net.ipv4.vs.conn_reuse_mode=1") for line in finding.fix)
    assert any("grep -rn 'net.ipv4.vs'" in line for line in finding.fix)


def test_node_below_kube_proxy_expire_settings_is_a_warning_until_restart() -> None:
    [finding] = settings_findings(NODES / "kpsettings-debian12-expire0")
    # Twin: no reuse problem on 6.1 either way; but expire_nodest_conn=0 keeps a deleted
    # server's entries (#71358) and expire_quiescent_template=0 keeps affinity clients on a
    # terminating pod (#71834).
    assert finding.severity is Severity.WARNING
    assert "until kube-proxy restarts" in finding.title
    assert "only when it starts" in finding.meaning
    assert "#71834" in finding.meaning
    assert finding.fix[0].startswith(
        "sysctl -w net.ipv4.vs.expire_nodest_conn=1 net.ipv4.vs.expire_quiescent_template=1"
    )


def test_difference_that_changes_nothing_is_info(tmp_path: Path) -> None:
    # kube-proxy 1.21 writes conn_reuse_mode=0 even on 6.1 (before #102122); the node has 1.
    # On 6.1 (c95c07836fa4) with expire_nodest_conn=1 neither value sends reused ports to
    # weight-0 or deleted pods.
    sysctl = {
        "conn_reuse_mode": 1,
        "conntrack": 1,
        "expire_nodest_conn": 1,
        "expire_quiescent_template": 1,
    }
    root = write_settings_node(tmp_path / "n", "6.1.0-18-amd64", "v1.21.3", sysctl)
    [differ] = [f for f in settings_findings(root) if "differences" in f.data]
    assert differ.severity is Severity.INFO
    assert differ.data["after_kube_proxy_start"] == "same"


def test_node_that_agrees_with_kube_proxy_has_no_finding() -> None:
    assert settings_findings(NODES / "exposure-debian12-kp128") == []


def test_unknown_kube_proxy_version_gives_nothing(tmp_path: Path) -> None:
    root = tmp_path / "node"
    shutil.copytree(NODES / "kpsettings-focal-node-mode1", root)
    (root / "kube-proxy" / "version.txt").unlink()
    assert settings_findings(root) == []


def test_kube_proxy_in_iptables_mode_gives_nothing(tmp_path: Path) -> None:
    root = write_settings_node(
        tmp_path / "n", "5.4.0-91-generic", "v1.24.17", {"conn_reuse_mode": 1}, "iptables"
    )
    assert settings_findings(root) == []


def test_old_kube_proxy_on_a_fully_fixed_kernel_is_only_info(tmp_path: Path) -> None:
    # 6.1 has c95c07836fa4: with expire_nodest_conn=1, mode 0 no longer sends reused
    # ports to weight-0 servers, but reused ports stay pinned to their old server.
    sysctl = {"conn_reuse_mode": 0, "conntrack": 1, "expire_nodest_conn": 1}
    root = write_settings_node(tmp_path / "n", "6.1.0-18-amd64", "v1.21.3", sysctl)
    [finding] = settings_findings(root)
    assert finding.severity is Severity.INFO
    assert finding.data["problems_with_this"] == []
    assert "pinned" in finding.meaning


# --------------------------------------------------------------------------- matrix


@pytest.mark.parametrize(
    ("uname", "kube", "node_mode"),
    [
        ("4.15.0-213-generic", "v1.28.2", 1),
        ("5.4.0-91-generic", "v1.21.3", 1),
        ("5.15.0-91-generic", "v1.21.3", 1),
        ("3.10.0-957.el7.x86_64", "v1.17.0", 1),
    ],
)
def test_exposure_after_kube_proxy_start_agrees_with_explain(
    tmp_path: Path, uname: str, kube: str, node_mode: int
) -> None:
    sysctl = {
        "conn_reuse_mode": node_mode,
        "conntrack": 1,
        "expire_nodest_conn": 1,
        "expire_quiescent_template": 1,
    }
    found = settings_findings(write_settings_node(tmp_path / "n", uname, kube, sysctl))
    [finding] = [f for f in found if "differences" in f.data]
    assert [d["sysctl"] for d in finding.data["differences"]] == ["conn_reuse_mode"]
    after = finding.data["problems_after_kube_proxy_start"]
    assert after == _twin_problems(uname, kube)
    # Only conn_reuse_mode differs (no other harm): a warning exactly when the twin sees
    # a difference between now and after kube-proxy's next start.
    assert (finding.severity is Severity.WARNING) == (after != finding.data["problems_now"])


def test_no_sysctl_w_of_kube_proxys_values_when_they_trade_one_problem_for_the_other(
    tmp_path: Path,
) -> None:
    # Debian 10's 4.19.118 (no f0a5e4d7a594 before 4.19.140, no c95c07836fa4 before .219):
    # mode 1 with conntrack drops the first SYN (#70747), kube-proxy 1.23's mode 0 brings
    # #81775. Writing kube-proxy's value would only swap problems, so it is no fix.
    root = write_settings_node(
        tmp_path / "n",
        "4.19.118",
        "v1.23.4",
        {"conn_reuse_mode": 1, "conntrack": 1, "expire_nodest_conn": 1},
    )
    (finding,) = settings_findings(root)
    fix = "\n".join(finding.fix)
    assert "conn_reuse_mode=0" not in fix
    assert "trade-off" in fix
    assert "4.19.140" in fix or "5.9" in fix  # the kernel that clears both


def test_a_node_value_newer_kube_proxy_leaves_is_not_reverted(tmp_path: Path) -> None:
    # Debian 12 (6.1) with kube-proxy v1.21.0, which writes conn_reuse_mode=0 at start
    # (#71114); v1.22+ leaves 1 on kernels >= 5.9 (#102122) and someone already set 1.
    # Both findings must pull the same way: no "sysctl -w conn_reuse_mode=0".
    root = write_settings_node(
        tmp_path / "n",
        "6.1.0-18-amd64",
        "v1.21.0",
        {"conn_reuse_mode": 1, "conntrack": 1, "expire_nodest_conn": 1},
    )
    found = settings_findings(root)
    fixes = [line for f in found for line in f.fix]
    assert not any("conn_reuse_mode=0" in line and "sysctl -w" in line for line in fixes)
    assert any(line.startswith("keep net.ipv4.vs.conn_reuse_mode=1") for line in fixes)
    assert any("v1.22.0" in line for line in fixes)  # the upgrade that makes it last
