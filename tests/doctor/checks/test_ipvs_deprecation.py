"""IPVS mode is deprecated (kube-proxy v1.35): can this node move to nftables mode?

Expectations from the shared reference ipvs-deprecation.md: nftables mode needs Linux
5.13+, nft 1.0.1+ and kube-proxy v1.33+ (GA; beta from v1.31); iptables mode is the way
out for older kernels; either removes the reuse problems.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ipvslab.doctor.capture import capture_from_layout, snapshot_from_capture
from ipvslab.doctor.checks import ipvs_deprecation
from ipvslab.doctor.facts import node_facts
from ipvslab.doctor.finding import Finding, FindingKind, Severity

from .node_edit import NODES, write_node


def finding(root: Path) -> Finding | None:
    snapshot = snapshot_from_capture(capture_from_layout(root))
    found = ipvs_deprecation.check(snapshot, node_facts(snapshot))
    assert len(found) <= 1
    return found[0] if found else None


def test_a_debian_12_node_with_a_recent_kube_proxy_can_move_to_nftables(tmp_path: Path) -> None:
    root = write_node(tmp_path / "n", "6.1.0-18-amd64", "v1.35.0", {"conn_reuse_mode": 1})
    found = finding(root)
    assert found is not None
    assert found.kind is FindingKind.IPVS_MODE_DEPRECATED and found.severity is Severity.INFO
    assert "can move to nftables mode" in found.title
    assert any("IPVSDeprecation" in line for line in found.evidence)
    assert any("nft --version" in line for line in found.fix)
    assert found.data["target_mode"] == "nftables"


def test_a_focal_kernel_is_too_old_for_nftables_so_iptables(tmp_path: Path) -> None:
    # 5.4 < 5.13: the node is also exposed (focal 5.4.0-91 lacks c95c07836fa4).
    root = NODES / "exposure-focal91-kp124"
    found = finding(root)
    assert found is not None
    assert "iptables mode is the way out" in found.title
    assert found.data == {
        "target_mode": "iptables",
        "kernel_supports_nftables": False,
        "kube_proxy_nftables": "none",
    }
    assert "moving removes it" in found.meaning


@pytest.mark.parametrize(
    ("kube", "stage"),
    [("v1.28.2", "none"), ("v1.30.1", "alpha"), ("v1.31.4", "beta"), ("v1.33.0", "ga")],
)
def test_the_kube_proxy_version_says_how_ready_nftables_mode_is(
    tmp_path: Path, kube: str, stage: str
) -> None:
    root = write_node(tmp_path / "n", "6.1.0-18-amd64", kube, {"conn_reuse_mode": 1})
    found = finding(root)
    assert found is not None and found.data["kube_proxy_nftables"] == stage
    upgrade = any("upgrade kube-proxy to v1.33" in line for line in found.fix)
    assert upgrade == (stage in ("none", "alpha"))


def test_nodes_not_in_ipvs_mode_get_no_such_finding(tmp_path: Path) -> None:
    root = write_node(tmp_path / "n", "6.1.0-18-amd64", "v1.33.0", None, proxy_mode="nftables")
    assert finding(root) is None
