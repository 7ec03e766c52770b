"""kube-proxy's IPVS proxier by version, from kube-proxy-ipvs.md §1.2 and §6."""

from __future__ import annotations

import pytest

from ipvslab.cluster.kube_proxy import DeleteCondition, kube_proxy_profile


@pytest.mark.parametrize(
    ("version", "condition"),
    [
        ((1, 11, 5), DeleteCondition.IMMEDIATE),  # before #66012
        ((1, 12, 1), DeleteCondition.IMMEDIATE),
        ((1, 12, 2), DeleteCondition.ACTIVE_ZERO),  # #70006 backport of #66012
        ((1, 13, 0), DeleteCondition.ACTIVE_ZERO),
        ((1, 12, 4), DeleteCondition.ACTIVE_PLUS_INACTIVE_ZERO),  # #71515 backports
        ((1, 13, 1), DeleteCondition.ACTIVE_PLUS_INACTIVE_ZERO),
        ((1, 14, 0), DeleteCondition.ACTIVE_PLUS_INACTIVE_ZERO),
        ((1, 31, 0), DeleteCondition.ACTIVE_PLUS_INACTIVE_ZERO),
    ],
)
def test_tcp_real_server_deletion_condition_by_version(
    version: tuple[int, int, int], condition: str
) -> None:
    assert kube_proxy_profile(version).tcp_delete == condition


def test_udp_graceful_termination_was_broken_in_1_15_0_and_fixed_in_1_16() -> None:
    # #77802 (1.15.0) compared the protocol with "udp" in lower case: never matched.
    assert not kube_proxy_profile((1, 15, 0)).udp_immediate
    assert kube_proxy_profile((1, 16, 0)).udp_immediate  # #78999
    assert kube_proxy_profile((1, 12, 10)).udp_immediate  # backport in CHANGELOG-1.12


def test_timeout_flags_from_1_18_and_deprecation_from_1_35() -> None:
    assert not kube_proxy_profile((1, 17, 9)).timeout_flags
    assert kube_proxy_profile((1, 18, 0)).timeout_flags  # #85517
    assert not kube_proxy_profile((1, 34, 0)).deprecated
    assert kube_proxy_profile((1, 35, 0)).deprecated  # KEP-5495
    assert kube_proxy_profile((1, 39, 0)).gate_default
    assert not kube_proxy_profile((1, 40, 0)).gate_default  # planned, PR #6120
