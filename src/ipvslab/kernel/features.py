"""Kernel eras as explicit feature flags.

The model never compares version numbers: every behaviour that changed between
kernels is a named feature here, with the commit that introduced it. A kernel is
a set of features (see presets.py for versions and distro kernels).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from enum import Enum


class Feature(Enum):
    """Each behaviour change in net/netfilter/ipvs that matters for connection reuse."""

    # d752c364571743d696c2a54a449ce77550c35ac5 "ipvs: allow rescheduling of new
    # connections when port reuse is detected" (v4.1): the conn_reuse_mode sysctl,
    # is_new_conn() and is_new_conn_expected(). Without it a SYN always follows an
    # existing entry.
    CONN_REUSE_MODE = "conn_reuse_mode"
    # be2cef49904b34dd5f75d96bbc8cd8341bab1bc0 "ipvs: count pre-established TCP
    # states as active" (Michal Kubecek, v4.8, bsc#970114): SYN_SENT, SYN_RECV and
    # SYNACK count as ActiveConn. Before it only ESTABLISHED did.
    PREESTABLISHED_ACTIVE = "preestablished_active"
    # f719e3754ee2f7275437e61a6afd520181fdd43b "ipvs: drop first packet to redirect
    # conntrack": rescheduling a reused entry that uses conntrack drops the SYN.
    FIRST_SYN_DROP = "first_syn_drop"
    # IP_VS_TCP_S_CLOSE joins TIME_WAIT in is_new_conn_expected().
    CLOSE_STATE_REUSE = "close_state_reuse"
    # Tencent/TencentOS-kernel PR #17 "ipvs: avoid drop first packet by reusing
    # conntrack": sysctl conn_reuse_old_conntrack, reschedule without the drop.
    REUSE_OLD_CONNTRACK = "reuse_old_conntrack"
    # f0a5e4d7a594e0fe237d3dfafb069bb82f80f42f "ipvs: allow connection reuse for
    # unconfirmed conntrack" (v5.9): drop only when the conntrack is confirmed.
    UNCONFIRMED_CONNTRACK_REUSE = "unconfirmed_conntrack_reuse"
    # 04231e52d355 "ipvs: queue delayed work to expire no destination connections
    # if expire_nodest_conn=1" (v5.9): a packet for a removed server is rescheduled
    # instead of dropped, and removal flushes the server's entries.
    NODEST_RESCHEDULE = "nodest_reschedule"
    # c95c07836fa4c1767ed11d8eca0769c652760e32 "netfilter: ipvs: Fix reuse
    # connection if RS weight is 0" (v5.16 and stable): expire_nodest_conn moves a
    # reused port off a weight-0 server whatever conn_reuse_mode says.
    WEIGHT0_RESCHEDULE_ANY_MODE = "weight0_reschedule_any_mode"
    # Julian Anastasov's 2013 rewrite of the SCTP state machine (commit hash not
    # found): 14 states with INIT1/REJECTED, per-direction tables and an input-only
    # table. Without it SCTP entries run the original 2906f66a5682 machine
    # (sctp_states.LEGACY_*). The mainline release is an UNVERIFIED bound.
    SCTP_NEW_STATE_MACHINE = "sctp_new_state_machine"


@dataclass(frozen=True, slots=True)
class FeatureInfo:
    """Where a feature comes from: its commit and the first mainline release with it."""

    feature: Feature
    commit: str
    title: str
    mainline: tuple[int, int] | None  # first mainline release, None = never mainline
    evidence: str


FEATURE_INFO: dict[Feature, FeatureInfo] = {
    info.feature: info
    for info in (
        FeatureInfo(
            Feature.CONN_REUSE_MODE,
            "d752c364571743d696c2a54a449ce77550c35ac5",
            "ipvs: allow rescheduling of new connections when port reuse is detected",
            (4, 1),
            "committed 2015-02-25 after the 4.0 merge window; kubernetes/website PR #47363",
        ),
        FeatureInfo(
            Feature.PREESTABLISHED_ACTIVE,
            "be2cef49904b34dd5f75d96bbc8cd8341bab1bc0",
            "ipvs: count pre-established TCP states as active",
            (4, 8),
            "v4.8-rc1 per SUSE's backport header (Patch-mainline: v4.8-rc1, Git-commit:"
            " be2cef49904b, bsc#970114); earlier header in openSUSE/kernel-source@001842e3"
            " patches.suse/ipvs-count-pre-established-TCP-states-as-active.patch: queued in"
            " horms/ipvs-next as 625b44fc15f8, target v4.8-rc1, authored 2016-06-03."
            " No v4.7/v4.8 tree was read to confirm",
        ),
        FeatureInfo(
            Feature.FIRST_SYN_DROP,
            "f719e3754ee2f7275437e61a6afd520181fdd43b",
            "ipvs: drop first packet to redirect conntrack",
            (4, 10),
            "2016 commit; mainline release not identified (v4.6-v4.10, 4.10 kept as the latest"
            " bound). Reached older trees by backport: present in a 4.4.263-based tree"
            " (Realme-2-Pro-Resources/kernel_realme_sdm660), in RHEL 7.6 and EulerOS 2.5"
            " 3.10 kernels (Huawei CCE FAQ); named in Fixes: of f0a5e4d7a594",
        ),
        FeatureInfo(
            Feature.CLOSE_STATE_REUSE,
            "unidentified",
            "IP_VS_TCP_S_CLOSE in is_new_conn_expected()",
            (4, 14),
            "ASSUMED v4.14, commit not identified: absent at torvalds f5ca0eb3 and in a"
            " 4.4.263-based tree; present in 4.14.190+ (LeCmnGend/kernel_ginkgo-archived) and"
            " 4.19 (LineageOS/android_kernel_qcom_sm8250) stable-based trees",
        ),
        FeatureInfo(
            Feature.REUSE_OLD_CONNTRACK,
            "TencentOS-kernel PR #17",
            "ipvs: avoid drop first packet by reusing conntrack",
            None,
            "Tencent/TencentOS-kernel PR #17 (2020-06-23), PR #44; never mainline",
        ),
        FeatureInfo(
            Feature.UNCONFIRMED_CONNTRACK_REUSE,
            "f0a5e4d7a594e0fe237d3dfafb069bb82f80f42f",
            "ipvs: allow connection reuse for unconfirmed conntrack",
            (5, 9),
            "net-next pull 2020-07-08 (v5.9); stable 4.14.194, 4.19.140, 5.4.59, 5.7.16, 5.8.2"
            " (stable review/announce mails, 2020-08)",
        ),
        FeatureInfo(
            Feature.NODEST_RESCHEDULE,
            "04231e52d355",
            "ipvs: queue delayed work to expire no destination connections if expire_nodest_conn=1",
            (5, 9),
            "[PATCH 2/7] Netfilter updates for net-next 2020-08-02 (v5.9); no stable"
            " backport found",
        ),
        FeatureInfo(
            Feature.WEIGHT0_RESCHEDULE_ANY_MODE,
            "c95c07836fa4c1767ed11d8eca0769c652760e32",
            "netfilter: ipvs: Fix reuse connection if RS weight is 0",
            (5, 16),
            "netdev/net.git 2021-11-19 (v5.16-rc); stable 4.14.257, 4.19.219, 5.4.163,"
            " 5.10.83, 5.15.6; not queued for 4.4/4.9",
        ),
        FeatureInfo(
            Feature.SCTP_NEW_STATE_MACHINE,
            "unidentified",
            "SCTP state machine rewrite (Julian Anastasov, 2013; title and hash not found)",
            (3, 18),
            "UNVERIFIED v3.18, the latest possible bound: the old table is in a 3.10"
            " Android tree (melvilli/kernel_msm8916_outrageous, HEAD side of its v3.18"
            " merge) and the new one on the v3.18 side of the same merge; the commit and"
            " its release (3.11-3.18) were not found. RHEL 7 3.10 kernels never took it:"
            " halfline/rhel7 (RHEL 7.3) and OpenVZ/vzkernel (RHEL 7-based, later"
            " backports) keep the old machine",
        ),
    )
}


@dataclass(frozen=True, slots=True)
class KernelFeatures:
    """The behaviour switches of one kernel build."""

    conn_reuse_mode: bool = True
    preestablished_active: bool = True
    first_syn_drop: bool = True
    close_state_reuse: bool = True
    reuse_old_conntrack: bool = False
    unconfirmed_conntrack_reuse: bool = True
    nodest_reschedule: bool = True
    weight0_reschedule_any_mode: bool = True
    sctp_new_state_machine: bool = True

    def has(self, feature: Feature) -> bool:
        return bool(getattr(self, feature.value))

    def with_features(self, *add: Feature, remove: tuple[Feature, ...] = ()) -> KernelFeatures:
        """A copy with some features switched on and others off (backports, distro patches)."""
        changes = {f.value: True for f in add}
        changes.update({f.value: False for f in remove})
        return replace(self, **changes)

    def overridden(self, overrides: Mapping[str, bool]) -> KernelFeatures:
        """A copy with the named features set as given (a scenario's
        ``kernel_overrides``, the lab's era modules); others unchanged."""
        if not overrides:
            return self
        on = tuple(Feature(name) for name, value in sorted(overrides.items()) if value)
        off = tuple(Feature(name) for name, value in sorted(overrides.items()) if not value)
        return self.with_features(*on, remove=off)

    @property
    def enabled(self) -> tuple[Feature, ...]:
        return tuple(f for f in Feature if self.has(f))

    @classmethod
    def mainline(cls, major: int, minor: int) -> KernelFeatures:
        """The features of mainline release major.minor, from FEATURE_INFO."""
        version = (major, minor)
        values = {}
        for f in fields(cls):
            info = FEATURE_INFO[Feature(f.name)]
            values[f.name] = info.mainline is not None and version >= info.mainline
        return cls(**values)
