"""Kernel presets: names, `uname -r` strings and mainline versions resolve to features."""

from __future__ import annotations

import itertools

import pytest

from ipvslab.kernel.features import FEATURE_INFO, Feature, KernelFeatures
from ipvslab.kernel.presets import (
    STABLE_BACKPORTS,
    KernelPreset,
    era_for,
    get_preset,
    list_presets,
    mainline_eras,
    mainline_features,
    resolve_kernel,
)

F = Feature

# preset name -> a realistic `uname -r` of that preset
UNAME_BY_PRESET = {
    "centos-7.6": "3.10.0-957.27.2.el7.x86_64",
    "centos-7": "3.10.0-1160.el7.x86_64",
    "euleros-2.5": "3.10.0-862.14.1.5.h442.eulerosv2r7.x86_64",
    "euleros-2.9": "4.18.0-147.5.1.2.h340.eulerosv2r9.x86_64",
    "euleros-2.9-fixed": "4.18.0-147.5.1.6.h686.eulerosv2r9.x86_64",
    "ubuntu-16.04": "4.4.0-210-generic",
    "ubuntu-18.04": "4.15.0-213-generic",
    "ubuntu-20.04": "5.4.0-200-generic",
    "ubuntu-22.04": "5.15.0-91-generic",
    "hce-2.0": "5.10.0-60.18.0.50.r865_35.hce2.x86_64",
    "tencentos-5.4": "5.4.119-19-0009.1",
    "debian-12": "6.1.0-18-amd64",
}


def has(text: str, feature: Feature) -> bool:
    return resolve_kernel(text).features.has(feature)


# ---------------------------------------------------------------- every preset


def test_every_preset_has_a_uname_example_in_this_test() -> None:
    assert {p.name for p in list_presets()} == set(UNAME_BY_PRESET)


@pytest.mark.parametrize("preset", list_presets(), ids=lambda p: p.name)
def test_each_preset_resolves_from_its_name_and_aliases(preset: KernelPreset) -> None:
    for text in (preset.name, *preset.aliases, preset.name.upper()):
        resolution = resolve_kernel(text)
        assert resolution.preset is preset
        assert resolution.features == preset.features
        assert resolution.warnings == ()


@pytest.mark.parametrize(("name", "uname"), sorted(UNAME_BY_PRESET.items()))
def test_each_preset_resolves_from_a_realistic_uname(name: str, uname: str) -> None:
    resolution = resolve_kernel(uname)
    assert resolution.preset is not None
    assert resolution.preset.name == name
    assert resolution.features == get_preset(name).features


@pytest.mark.parametrize("preset", list_presets(), ids=lambda p: p.name)
def test_each_preset_states_evidence_or_says_assumed(preset: KernelPreset) -> None:
    assert preset.evidence.strip()
    if preset.assumed:
        assert "assumed" in preset.evidence.lower()


@pytest.mark.parametrize("preset", list_presets(), ids=lambda p: p.name)
def test_each_preset_example_release_belongs_to_it(preset: KernelPreset) -> None:
    for example in preset.release_examples:
        resolution = resolve_kernel(example)
        assert resolution.preset is not None
        assert resolution.preset.name.startswith(preset.name.split("-fixed")[0])


def test_presets_have_unique_names_and_aliases() -> None:
    keys = [k for p in list_presets() for k in (p.name, *p.aliases)]
    assert len(keys) == len(set(keys))


# ---------------------------------------------------------------- distro behaviour


def test_centos_7_6_drops_first_syn_with_conntrack() -> None:
    features = resolve_kernel("3.10.0-957.el7.x86_64").features
    assert features.conn_reuse_mode and features.first_syn_drop
    assert not features.unconfirmed_conntrack_reuse


def test_euleros_2_5_behaves_like_centos_7_6() -> None:
    assert resolve_kernel("euleros-2.5").features == resolve_kernel("centos-7.6").features


def test_other_centos_7_builds_warn_that_they_borrow_7_6_features() -> None:
    resolution = resolve_kernel("3.10.0-1160.el7.x86_64")
    assert resolution.features == get_preset("centos-7.6").features
    assert resolution.warnings and "7.6" in resolution.warnings[0]


def test_old_euleros_2_9_keeps_reused_ports_on_weight0_servers() -> None:
    for uname in (
        "4.18.0-147.5.1.6.h685.eulerosv2r9.x86_64",
        "4.18.0-147.5.1.2.h999.eulerosv2r9.x86_64",
        "4.19.90-vhulk2103.1.0.h583.eulerosv2r9.aarch64",
        "4.19.90-vhulk2011.1.0.h900.eulerosv2r9.aarch64",
    ):
        resolution = resolve_kernel(uname)
        assert resolution.preset is get_preset("euleros-2.9"), uname
        assert not resolution.features.weight0_reschedule_any_mode


def test_fixed_euleros_2_9_builds_move_reused_ports_off_weight0_servers() -> None:
    for uname in (
        "4.18.0-147.5.1.6.h686.eulerosv2r9.x86_64",
        "4.18.0-147.5.2.1.h700.eulerosv2r9.x86_64",
        "4.19.90-vhulk2103.1.0.h584.eulerosv2r9.aarch64",
        "4.19.90-vhulk2211.3.0.h1000.eulerosv2r9.aarch64",
    ):
        resolution = resolve_kernel(uname)
        assert resolution.preset is get_preset("euleros-2.9-fixed"), uname
        assert resolution.features.weight0_reschedule_any_mode


def test_unreadable_euleros_2_9_build_assumes_unfixed_and_warns() -> None:
    resolution = resolve_kernel("4.18.0-custom.eulerosv2r9.x86_64")
    assert resolution.preset is get_preset("euleros-2.9")
    assert resolution.warnings


def test_ubuntu_18_04_has_no_weight0_fix() -> None:
    assert not has("4.15.0-213-generic", F.WEIGHT0_RESCHEDULE_ANY_MODE)
    assert has("4.15.0-213-generic", F.FIRST_SYN_DROP)


def test_ubuntu_20_04_gains_stable_fixes_with_later_abi_numbers() -> None:
    ga = resolve_kernel("5.4.0-26-generic").features
    mid = resolve_kernel("5.4.0-91-generic").features
    late = resolve_kernel("5.4.0-200-generic").features
    assert not ga.unconfirmed_conntrack_reuse and not ga.weight0_reschedule_any_mode
    assert mid.unconfirmed_conntrack_reuse and not mid.weight0_reschedule_any_mode
    assert late.unconfirmed_conntrack_reuse and late.weight0_reschedule_any_mode
    assert not late.nodest_reschedule


def test_ubuntu_cloud_flavour_abi_is_not_read_as_a_generic_abi() -> None:
    # 5.4.0-1009-aws (spring 2020) is focal's AWS kernel, but its ABI is not the generic
    # one: whether it has the 5.4.59 / 5.4.163 fixes cannot be read from it.
    resolution = resolve_kernel("5.4.0-1009-aws")
    assert resolution.preset is not None and resolution.preset.name == "ubuntu-20.04"
    assert resolution.uncertain is not None and "version_signature" in resolution.uncertain


@pytest.mark.parametrize(
    "cloud", ["5.4.0-1103-aws", "5.4.0-1110-gcp", "5.4.0-1109-azure", "5.4.0-1101-oracle"]
)
def test_recent_ubuntu_cloud_kernels_resolve_like_their_generic_twin(cloud: str) -> None:
    # Same focal base, built in 2023 like 5.4.0-150-generic: same features, no doubt.
    generic = resolve_kernel("5.4.0-150-generic")
    resolution = resolve_kernel(cloud)
    assert resolution.preset == generic.preset
    assert resolution.features == generic.features
    assert resolution.uncertain is None


def test_version_signature_decides_an_old_cloud_kernel() -> None:
    # /proc/version_signature: "Ubuntu 5.4.0-1020.20-aws 5.4.44" (before 5.4.59) and
    # "Ubuntu 5.4.0-1060.63-aws 5.4.153" (after 5.4.59, before 5.4.163).
    early = resolve_kernel("5.4.0-1020-aws", (5, 4, 44))
    assert early.uncertain is None
    assert not early.features.unconfirmed_conntrack_reuse
    assert not early.features.weight0_reschedule_any_mode
    middle = resolve_kernel("5.4.0-1060-aws", (5, 4, 153))
    assert middle.features.unconfirmed_conntrack_reuse
    assert not middle.features.weight0_reschedule_any_mode
    assert resolve_kernel("5.4.0-1060-aws", (5, 4, 233)).features.weight0_reschedule_any_mode


def test_debian_release_hides_its_stable_version_until_proc_version_tells_it() -> None:
    # Debian 10 names 4.19.289 "4.19.0-25-amd64"; 4.19.140 and 4.19.219 carry the fixes.
    hidden = resolve_kernel("4.19.0-25-amd64")
    assert hidden.uncertain is not None and "/proc/version" in hidden.uncertain
    told = resolve_kernel("4.19.0-25-amd64", (4, 19, 289))
    assert told.uncertain is None and told.version == (4, 19, 289)
    assert told.features == mainline_features((4, 19, 289))
    assert told.features.weight0_reschedule_any_mode
    bullseye = resolve_kernel("5.10.0-28-amd64", (5, 10, 209))
    assert bullseye.features.weight0_reschedule_any_mode
    # A stable version of another series (a backports kernel's tag) is not used.
    assert resolve_kernel("5.10.0-28-amd64", (4, 19, 289)).uncertain is not None


@pytest.mark.parametrize(
    "vendor",
    [
        "4.18.0-513.el8.x86_64",
        "4.18.0-553.16.1.el8_10.x86_64",
        "5.14.0-362.8.1.el9_3.x86_64",
        "5.4.17-2136.307.3.1.el8uek.x86_64",
        "5.15.0-206.153.7.el9uek.x86_64",
    ],
)
def test_rhel_and_oracle_uek_kernels_are_uncertain_not_mainline(vendor: str) -> None:
    resolution = resolve_kernel(vendor)
    assert resolution.uncertain is not None and "vendor" in resolution.uncertain
    assert any(w.startswith("exposure uncertain:") for w in resolution.warnings)


def test_ubuntu_22_04_and_debian_12_have_every_mainline_fix() -> None:
    for text in ("5.15.0-91-generic", "6.1.0-18-amd64", "hce-2.0"):
        features = resolve_kernel(text).features
        assert features.unconfirmed_conntrack_reuse
        assert features.nodest_reschedule
        assert features.weight0_reschedule_any_mode
        assert not features.reuse_old_conntrack


def test_tencentos_reuses_old_conntrack_instead_of_dropping() -> None:
    features = resolve_kernel("5.4.119-19-0009.1").features
    assert features.reuse_old_conntrack and features.first_syn_drop
    assert not features.unconfirmed_conntrack_reuse


def test_tencentos_ignores_kernel_org_stable_sublevel() -> None:
    # 5.4.119 > 5.4.59 would switch f0a5e4d7a594 on for a kernel.org kernel.
    assert not has("5.4.119-19-0009.1", F.UNCONFIRMED_CONNTRACK_REUSE)
    assert has("5.4.119", F.UNCONFIRMED_CONNTRACK_REUSE)


# ---------------------------------------------------------------- mainline


@pytest.mark.parametrize(
    ("before", "after", "feature"),
    [
        ("4.0", "4.1", F.CONN_REUSE_MODE),
        # be2cef49904b, v4.8-rc1 per SUSE's backport header (was assumed v4.6)
        ("4.7", "4.8", F.PREESTABLISHED_ACTIVE),
        ("5.8", "5.9", F.UNCONFIRMED_CONNTRACK_REUSE),
        ("5.8", "5.9", F.NODEST_RESCHEDULE),
        ("5.15", "5.16", F.WEIGHT0_RESCHEDULE_ANY_MODE),
    ],
)
def test_mainline_boundary_switches_feature_on(before: str, after: str, feature: Feature) -> None:
    assert not has(before, feature)
    assert has(after, feature)


@pytest.mark.parametrize(
    ("name", "current_sctp"),
    [
        ("centos-7.6", False),
        ("centos-7", False),
        ("euleros-2.5", False),
        ("euleros-2.9", True),
        ("euleros-2.9-fixed", True),
        ("ubuntu-16.04", True),
        ("ubuntu-18.04", True),
        ("ubuntu-20.04", True),
        ("ubuntu-22.04", True),
        ("hce-2.0", True),
        ("tencentos-5.4", True),
        ("debian-12", True),
    ],
)
def test_sctp_state_machine_per_preset(name: str, current_sctp: bool) -> None:
    """RHEL 7 3.10 kernels keep the original SCTP machine (halfline/rhel7 at RHEL 7.3,
    OpenVZ/vzkernel); every other preset is past the 2013 rewrite."""
    assert get_preset(name).features.sctp_new_state_machine is current_sctp
    assert has(UNAME_BY_PRESET[name], F.SCTP_NEW_STATE_MACHINE) is current_sctp


def test_sctp_rewrite_bound_is_marked_unverified() -> None:
    info = FEATURE_INFO[F.SCTP_NEW_STATE_MACHINE]
    assert info.commit == "unidentified"
    assert "UNVERIFIED" in info.evidence
    assert not has("3.10", F.SCTP_NEW_STATE_MACHINE)
    assert not has("3.17.8", F.SCTP_NEW_STATE_MACHINE)
    assert has("3.18", F.SCTP_NEW_STATE_MACHINE)


def test_kernel_before_4_1_forwards_reused_ports_to_the_old_server() -> None:
    assert resolve_kernel("3.10").features.enabled == ()


@pytest.mark.parametrize(
    ("series", "sublevel", "feature"),
    [(b.series, b.sublevel, b.feature) for b in STABLE_BACKPORTS],
    ids=[f"{b.series[0]}.{b.series[1]}.{b.sublevel}-{b.feature.value}" for b in STABLE_BACKPORTS],
)
def test_stable_sublevel_switches_backport_on_exactly_there(
    series: tuple[int, int], sublevel: int, feature: Feature
) -> None:
    major, minor = series
    assert not has(f"{major}.{minor}.{sublevel - 1}", feature)
    assert has(f"{major}.{minor}.{sublevel}", feature)
    assert has(f"{major}.{minor}.{sublevel + 50}", feature)


def test_named_stable_backports_match_the_verified_sublevels() -> None:
    found = {(b.feature, b.series): b.sublevel for b in STABLE_BACKPORTS}
    assert found[(F.UNCONFIRMED_CONNTRACK_REUSE, (5, 4))] == 59
    assert found[(F.UNCONFIRMED_CONNTRACK_REUSE, (4, 19))] == 140
    assert found[(F.WEIGHT0_RESCHEDULE_ANY_MODE, (5, 10))] == 83
    assert found[(F.WEIGHT0_RESCHEDULE_ANY_MODE, (5, 15))] == 6
    assert (F.WEIGHT0_RESCHEDULE_ANY_MODE, (4, 9)) not in found


def test_stable_backport_does_not_leak_into_other_series() -> None:
    assert has("5.10.1", F.UNCONFIRMED_CONNTRACK_REUSE)  # mainline since 5.9
    assert not has("4.9.337", F.UNCONFIRMED_CONNTRACK_REUSE)
    assert not has("5.6.19", F.UNCONFIRMED_CONNTRACK_REUSE)


@pytest.mark.parametrize(
    "text", ["4.19", "5.4.0", "6.1.192", "v5.10", "mainline-4.14", "linux-5.9"]
)
def test_plain_mainline_versions_resolve_without_warnings(text: str) -> None:
    resolution = resolve_kernel(text)
    assert resolution.preset is None
    assert resolution.warnings == ()


def test_plain_version_is_normalized_to_three_parts() -> None:
    assert resolve_kernel("4.19").version == (4, 19, 0)
    assert resolve_kernel(" 6.1.192 ").version_text == "6.1.192"
    assert resolve_kernel("5.4.0-91-generic").version == (5, 4, 0)


def test_mainline_eras_cover_every_version_in_order() -> None:
    eras = mainline_eras()
    assert eras[0].first is None and eras[-1].until is None
    for a, b in itertools.pairwise(eras):
        assert a.until == b.first
    assert era_for(4, 0).until == (4, 1)
    assert era_for(5, 16).features == KernelFeatures.mainline(6, 1)


# ---------------------------------------------------------------- unknown / garbage


@pytest.mark.parametrize("text", ["5.8.0-63-generic", "4.9.0-13-amd64", "5.10.0-1-custom"])
def test_unknown_release_string_falls_back_to_mainline_with_warning(text: str) -> None:
    resolution = resolve_kernel(text)
    assert resolution.preset is None
    assert text in resolution.warnings[0]
    major, minor, sublevel = resolution.version
    assert resolution.features == KernelFeatures.mainline(major, minor)
    assert sublevel == 0
    # 5.8 and 5.10 got reuse fixes in stable (5.8.2, 5.10.83): sublevel 0 is only a guess.
    # 4.9 never got them, so 4.9.0-13-amd64 is decided.
    assert (resolution.uncertain is None) == (text == "4.9.0-13-amd64")


def test_unknown_release_string_uses_its_stable_sublevel() -> None:
    assert has("5.4.60-custom", F.UNCONFIRMED_CONNTRACK_REUSE)
    assert not has("5.4.58-custom", F.UNCONFIRMED_CONNTRACK_REUSE)


@pytest.mark.parametrize(
    "text", ["", "   ", "banana", "centos-9", "5", "1.2.3", "x5.4", "5.4.0 -1"]
)
def test_garbage_raises_value_error_naming_the_text(text: str) -> None:
    with pytest.raises(ValueError) as excinfo:
        resolve_kernel(text)
    assert repr(text) in str(excinfo.value)


def test_get_preset_rejects_unknown_names() -> None:
    with pytest.raises(KeyError, match="centos-9"):
        get_preset("centos-9")
