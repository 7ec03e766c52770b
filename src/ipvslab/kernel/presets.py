"""Kernel presets: mainline eras and distro kernels mapped to feature flags.

Pure data plus a resolver. ``resolve_kernel`` accepts a preset name or alias
("centos-7.6", "ubuntu-20.04"), a mainline version ("4.19", "5.4.59") or a full
``uname -r`` string ("3.10.0-957.el7.x86_64", "5.15.0-91-generic") and returns the
features of that kernel, the normalized version and any warnings. Given the
kernel.org stable version a distro build is based on (``upstream``: Debian's
/proc/version, Ubuntu's /proc/version_signature), it uses that instead of the
sublevel 0 that such releases show. When the era cannot be decided (a vendor tree
such as RHEL 8/9 or Oracle UEK, or a distro release hiding its stable sublevel),
the resolution says why in ``uncertain``.

Every preset carries the evidence for its flags; rows or flags that rest on
reasoning rather than a source say so ("assumed"). docs/kernel-presets.md holds
the same table with sources.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field, replace

from ipvslab.kernel.features import FEATURE_INFO, Feature, KernelFeatures

Version = tuple[int, int, int]


# --------------------------------------------------------------------------- stable


@dataclass(frozen=True, slots=True)
class StableBackport:
    """A feature that a stable series picked up at a given sublevel."""

    feature: Feature
    series: tuple[int, int]
    sublevel: int
    evidence: str


# Verified from stable review mails ("[PATCH 4.14 096/228] ...") and release
# announcements ("Linux 5.4.59") on stable@vger.kernel.org.
STABLE_BACKPORTS: tuple[StableBackport, ...] = (
    StableBackport(
        Feature.UNCONFIRMED_CONNTRACK_REUSE,
        (4, 14),
        194,
        "[PATCH 4.14 096/228] in the 4.14.194-rc1 review, 2020-08-20",
    ),
    StableBackport(
        Feature.UNCONFIRMED_CONNTRACK_REUSE,
        (4, 19),
        140,
        "Linux 4.19.140 announcement, 2020-08-19",
    ),
    StableBackport(
        Feature.UNCONFIRMED_CONNTRACK_REUSE,
        (5, 4),
        59,
        "Linux 5.4.59 announcement, 2020-08-19",
    ),
    StableBackport(
        Feature.UNCONFIRMED_CONNTRACK_REUSE,
        (5, 7),
        16,
        "[PATCH 5.7 178/393] in the 5.7.16-rc1 review, 2020-08-17",
    ),
    StableBackport(
        Feature.UNCONFIRMED_CONNTRACK_REUSE,
        (5, 8),
        2,
        "Linux 5.8.2 announcement, 2020-08-19",
    ),
    StableBackport(
        Feature.WEIGHT0_RESCHEDULE_ANY_MODE,
        (4, 14),
        257,
        "[PATCH 4.14 014/106] in the 4.14.257-rc1 review, 2021-12-06",
    ),
    StableBackport(
        Feature.WEIGHT0_RESCHEDULE_ANY_MODE,
        (4, 19),
        219,
        "Linux 4.19.219 announcement ([PATCH 4.19 37/69]), 2021-12",
    ),
    StableBackport(
        Feature.WEIGHT0_RESCHEDULE_ANY_MODE,
        (5, 4),
        163,
        "Linux 5.4.163 announcement ([PATCH 5.4 46/92]), 2021-12",
    ),
    StableBackport(
        Feature.WEIGHT0_RESCHEDULE_ANY_MODE,
        (5, 10),
        83,
        "Linux 5.10.83 announcement, 2021-12",
    ),
    StableBackport(
        Feature.WEIGHT0_RESCHEDULE_ANY_MODE,
        (5, 15),
        6,
        "[PATCH 5.15 067/179] in the 5.15.6-rc1 review, 2021-11-29",
    ),
)


def mainline_features(version: Version) -> KernelFeatures:
    """Features of a kernel.org kernel: its mainline era plus stable backports."""
    major, minor, sublevel = version
    features = KernelFeatures.mainline(major, minor)
    added = tuple(
        b.feature for b in STABLE_BACKPORTS if b.series == (major, minor) and sublevel >= b.sublevel
    )
    return features.with_features(*added) if added else features


# --------------------------------------------------------------------------- eras


@dataclass(frozen=True, slots=True)
class MainlineEra:
    """A run of mainline releases with the same features: first <= version < until."""

    first: tuple[int, int] | None  # None = everything before `until`
    until: tuple[int, int] | None  # None = up to the newest release
    features: KernelFeatures

    @property
    def label(self) -> str:
        if self.first is None and self.until is not None:
            return f"< {self.until[0]}.{self.until[1]}"
        if self.first is not None and self.until is None:
            return f">= {self.first[0]}.{self.first[1]}"
        assert self.first is not None and self.until is not None
        return f"{self.first[0]}.{self.first[1]} - <{self.until[0]}.{self.until[1]}"

    def contains(self, major: int, minor: int) -> bool:
        v = (major, minor)
        return (self.first is None or v >= self.first) and (self.until is None or v < self.until)


def mainline_eras() -> tuple[MainlineEra, ...]:
    """The mainline eras, cut at every first-release in FEATURE_INFO."""
    cuts = sorted({i.mainline for i in FEATURE_INFO.values() if i.mainline is not None})
    bounds: list[tuple[int, int] | None] = [None, *cuts, None]
    eras = []
    for first, until in itertools.pairwise(bounds):
        probe = first if first is not None else (2, 6)
        eras.append(MainlineEra(first, until, KernelFeatures.mainline(*probe)))
    return tuple(eras)


def era_for(major: int, minor: int) -> MainlineEra:
    return next(e for e in mainline_eras() if e.contains(major, minor))


# --------------------------------------------------------------------------- presets


@dataclass(frozen=True, slots=True)
class BuildBackport:
    """A feature a distro series gained at some build (Ubuntu ABI number, ...)."""

    feature: Feature
    min_build: tuple[int, ...]
    evidence: str
    assumed: bool = True


@dataclass(frozen=True, slots=True)
class KernelPreset:
    """A distro kernel (or family of builds) and the IPVS behaviour it has."""

    name: str
    aliases: tuple[str, ...]
    distro: str
    release_examples: tuple[str, ...]  # realistic `uname -r` strings
    release_pattern: re.Pattern[str]  # which `uname -r` strings belong to the preset
    base_version: Version  # the kernel.org version the distro kernel started from
    features: KernelFeatures  # the newest known build of the preset
    evidence: str
    assumed: bool  # True when the row as a whole rests on reasoning, not a source
    build_backports: tuple[BuildBackport, ...] = field(default=())

    def features_for_build(self, build: tuple[int, ...] | None) -> KernelFeatures:
        """Features of one build: drop backports the build is older than."""
        if build is None or not self.build_backports:
            return self.features
        missing = tuple(b.feature for b in self.build_backports if build < b.min_build)
        return self.features.with_features(remove=missing) if missing else self.features


def _m(major: int, minor: int) -> KernelFeatures:
    return KernelFeatures.mainline(major, minor)


_F = Feature

_RHEL7_LIKE = KernelFeatures(
    conn_reuse_mode=True,
    preestablished_active=False,
    first_syn_drop=True,
    close_state_reuse=False,
    reuse_old_conntrack=False,
    unconfirmed_conntrack_reuse=False,
    nodest_reschedule=False,
    weight0_reschedule_any_mode=False,
    # The original SCTP machine: halfline/rhel7 (RHEL_MINOR = 3) and the RHEL 7-based
    # OpenVZ/vzkernel, whose SCTP code has later backports (CHECKSUM_PARTIAL,
    # NETIF_F_SCTP_CRC), both still have it (docs/kernel-presets.md 2.3).
    sctp_new_state_machine=False,
)

_EULER29 = _m(4, 18).with_features(
    remove=(_F.UNCONFIRMED_CONNTRACK_REUSE, _F.NODEST_RESCHEDULE, _F.WEIGHT0_RESCHEDULE_ANY_MODE)
)

# Huawei CCE FAQ: EulerOS 2.9 builds fixed for problem 1 (reused port stuck on a
# removed server while kube-proxy sets conn_reuse_mode=0).
_EULER29_FIXED_X86 = (147, 5, 1, 6, 686)
_EULER29_FIXED_ARM = (2103, 1, 0, 584)


PRESETS: tuple[KernelPreset, ...] = (
    KernelPreset(
        name="centos-7.6",
        aliases=("centos7.6", "rhel-7.6", "el7.6"),
        distro="CentOS 7.6",
        release_examples=("3.10.0-957.el7.x86_64", "3.10.0-957.27.2.el7.x86_64"),
        release_pattern=re.compile(r"^3\.10\.0-957(\.\d+)*\.el7"),
        base_version=(3, 10, 0),
        features=_RHEL7_LIKE,
        evidence=(
            "Huawei CCE FAQ (seed 002): CentOS 7.6 has problem 2, the 1 s first-SYN drop with"
            " conn_reuse_mode=1, so Red Hat carries conn_reuse_mode and f719e3754 in 3.10."
            " pre-established ActiveConn, CLOSE reuse and the 5.9+ fixes: assumed absent."
            " SCTP: the original state machine, read in a RHEL 7.3 tree (halfline/rhel7)"
            " and a later RHEL 7-based one (OpenVZ/vzkernel); 7.6 itself assumed alike."
        ),
        assumed=False,
    ),
    KernelPreset(
        name="centos-7",
        aliases=("centos7", "rhel-7", "el7"),
        distro="CentOS/RHEL 7 (other than 7.6)",
        release_examples=("3.10.0-1160.el7.x86_64", "3.10.0-862.el7.x86_64"),
        release_pattern=re.compile(r"^3\.10\.0-\d+(\.\d+)*\.el7"),
        base_version=(3, 10, 0),
        features=_RHEL7_LIKE,
        evidence=(
            "assumed: same IPVS code as CentOS 7.6 (only 7.6 is named by the CCE FAQ),"
            " including the original SCTP state machine (RHEL 7.3 tree halfline/rhel7)"
        ),
        assumed=True,
    ),
    KernelPreset(
        name="euleros-2.5",
        aliases=("euleros2.5", "eulerosv2r7"),
        distro="EulerOS 2.5",
        release_examples=("3.10.0-862.14.1.5.h442.eulerosv2r7.x86_64",),
        release_pattern=re.compile(r"^3\.10\.0-.*eulerosv2r7"),
        base_version=(3, 10, 0),
        features=_RHEL7_LIKE,
        evidence=(
            "Huawei CCE FAQ (seed 002): EulerOS 2.5 has problem 2 (1 s first-SYN drop), like"
            " CentOS 7.6. Release string format (3.10.0-862.*.eulerosv2r7) assumed. SCTP:"
            " the original state machine, assumed from its RHEL 7.5 base (862) and the"
            " RHEL 7-based trees read (halfline/rhel7, OpenVZ/vzkernel)."
        ),
        assumed=False,
    ),
    KernelPreset(
        name="euleros-2.9-fixed",
        aliases=("euleros2.9-fixed", "eulerosv2r9-fixed"),
        distro="EulerOS 2.9 (fixed builds)",
        release_examples=(
            "4.18.0-147.5.1.6.h686.eulerosv2r9.x86_64",
            "4.19.90-vhulk2103.1.0.h584.eulerosv2r9.aarch64",
        ),
        release_pattern=re.compile(r"eulerosv2r9"),
        base_version=(4, 18, 0),
        features=_EULER29.with_features(_F.WEIGHT0_RESCHEDULE_ANY_MODE),
        evidence=(
            "Huawei CCE FAQ (seed 002): from 4.18.0-147.5.1.6.h686 (x86) and"
            " 4.19.90-vhulk2103.1.0.h584 (ARM) problem 1 is fixed. Modelled as"
            " weight0_reschedule_any_mode; assumed, because vhulk2103 (2021-03) predates"
            " upstream c95c07836fa4 (2021-11), so Huawei's own patch may differ in detail."
        ),
        assumed=False,
    ),
    KernelPreset(
        name="euleros-2.9",
        aliases=("euleros2.9", "eulerosv2r9"),
        distro="EulerOS 2.9 (before the fixed builds)",
        release_examples=(
            "4.18.0-147.5.1.2.h340.eulerosv2r9.x86_64",
            "4.19.90-vhulk2011.1.0.h400.eulerosv2r9.aarch64",
        ),
        release_pattern=re.compile(r"eulerosv2r9"),
        base_version=(4, 18, 0),
        features=_EULER29,
        evidence=(
            "Huawei CCE FAQ (seed 002): older EulerOS 2.9 kernels have problem 1 with"
            " kube-proxy's conn_reuse_mode=0 (no weight-0 reschedule). Other flags from the"
            " 4.18/4.19 mainline era; unconfirmed-conntrack reuse assumed absent."
        ),
        assumed=False,
    ),
    KernelPreset(
        name="ubuntu-16.04",
        aliases=("xenial", "ubuntu16.04"),
        distro="Ubuntu 16.04 (GA kernel)",
        release_examples=("4.4.0-210-generic", "4.4.0-21-generic"),
        release_pattern=re.compile(r"^4\.4\.0-\d{1,4}-[a-z]"),
        base_version=(4, 4, 0),
        features=_m(4, 4).with_features(_F.FIRST_SYN_DROP),
        evidence=(
            "assumed: 4.4 mainline era; first_syn_drop on because a 4.4.263-based tree carries"
            " f719e3754. 4.4 stable never got f0a5e4d7a594 or c95c07836fa4."
        ),
        assumed=True,
    ),
    KernelPreset(
        name="ubuntu-18.04",
        aliases=("bionic", "ubuntu18.04"),
        distro="Ubuntu 18.04 (GA kernel)",
        release_examples=("4.15.0-213-generic", "4.15.0-20-generic"),
        release_pattern=re.compile(r"^4\.15\.0-\d{1,4}-[a-z]"),
        base_version=(4, 15, 0),
        features=_m(4, 15),
        evidence=(
            "Huawei CCE FAQ (seed 002): Ubuntu 18.04 has problem 1 (kube-proxy sets"
            " conn_reuse_mode=0, no weight-0 fix). 4.15 has no stable series of its own;"
            " a backport of f0a5e4d7a594 through Ubuntu's stable patchsets: assumed absent."
        ),
        assumed=False,
    ),
    KernelPreset(
        name="ubuntu-20.04",
        aliases=("focal", "ubuntu20.04"),
        distro="Ubuntu 20.04 (GA kernel)",
        release_examples=("5.4.0-26-generic", "5.4.0-91-generic", "5.4.0-200-generic"),
        release_pattern=re.compile(r"^5\.4\.0-\d{1,4}-[a-z]"),
        base_version=(5, 4, 0),
        features=_m(5, 4).with_features(
            _F.UNCONFIRMED_CONNTRACK_REUSE, _F.WEIGHT0_RESCHEDULE_ANY_MODE
        ),
        evidence=(
            "5.4 mainline era plus the 5.4.y stable backports Ubuntu imports (5.4.59:"
            " f0a5e4d7a594, 5.4.163: c95c07836fa4). The ABI numbers where they arrive (48, 96)"
            " are assumed from release dates; no focal changelog was found."
        ),
        assumed=False,
        build_backports=(
            BuildBackport(
                _F.UNCONFIRMED_CONNTRACK_REUSE,
                (48,),
                "5.4.59 (2020-08-19) reaches focal around 5.4.0-48 (assumed)",
            ),
            BuildBackport(
                _F.WEIGHT0_RESCHEDULE_ANY_MODE,
                (96,),
                "5.4.163 (2021-12-01) reaches focal around 5.4.0-96 (assumed)",
            ),
        ),
    ),
    KernelPreset(
        name="ubuntu-22.04",
        aliases=("jammy", "ubuntu22.04"),
        distro="Ubuntu 22.04 (GA kernel)",
        release_examples=("5.15.0-91-generic", "5.15.0-25-generic"),
        release_pattern=re.compile(r"^5\.15\.0-\d{1,4}-[a-z]"),
        base_version=(5, 15, 0),
        features=_m(5, 15).with_features(_F.WEIGHT0_RESCHEDULE_ANY_MODE),
        evidence=(
            "Huawei CCE FAQ (seed 002): fixed (>= 5.9). c95c07836fa4 is in 5.15.6"
            " (2021-11); the jammy GA kernel (April 2022) is later, so it is assumed"
            " present in every 5.15.0-* build."
        ),
        assumed=False,
    ),
    KernelPreset(
        name="hce-2.0",
        aliases=("hce2.0", "hce2", "huawei-cloud-euleros-2.0"),
        distro="Huawei Cloud EulerOS 2.0",
        release_examples=("5.10.0-60.18.0.50.r865_35.hce2.x86_64",),
        release_pattern=re.compile(r"^5\.10\.0-.*\.hce2\."),
        base_version=(5, 10, 0),
        features=_m(5, 10).with_features(_F.WEIGHT0_RESCHEDULE_ANY_MODE),
        evidence=(
            "Huawei CCE FAQ (seed 002): fixed (>= 5.9, kube-proxy leaves conn_reuse_mode=1)."
            " c95c07836fa4 (5.10.83 stable) assumed carried. Release string format assumed."
        ),
        assumed=False,
    ),
    KernelPreset(
        name="tencentos-5.4",
        aliases=("tencentos", "tencentos-server-3", "tlinux-5.4", "tkernel4"),
        distro="TencentOS Server (TencentOS-kernel 5.4)",
        release_examples=("5.4.119-19-0009.1", "5.4.32-1-0001"),
        release_pattern=re.compile(r"^5\.4\.\d+-\d+[-.]\d{4}|^5\.4\.\d+-.*\.tl\d"),
        base_version=(5, 4, 0),
        features=_m(5, 4).with_features(_F.REUSE_OLD_CONNTRACK),
        evidence=(
            "Tencent/TencentOS-kernel PR #17 (merged 2020-06-23; PR #44 fixed its sysctl"
            " entry): conn_reuse_old_conntrack=1 reschedules without the drop. The TOS tree"
            " at 5.4.32-1 still has the f719e3754 helper, so f0a5e4d7a594 is assumed absent;"
            " c95c07836fa4 assumed absent."
        ),
        assumed=False,
    ),
    KernelPreset(
        name="debian-12",
        aliases=("bookworm", "debian12"),
        distro="Debian 12",
        release_examples=("6.1.0-18-amd64", "6.1.0-25-cloud-amd64"),
        release_pattern=re.compile(r"^6\.1\.0-\d+-"),
        base_version=(6, 1, 0),
        features=_m(6, 1),
        evidence="6.1 is after every mainline change listed (>= 5.16); no distro patches known",
        assumed=False,
    ),
)


def list_presets() -> tuple[KernelPreset, ...]:
    """All presets, in table order (for `--all-presets`)."""
    return PRESETS


def _key(text: str) -> str:
    return re.sub(r"[\s_]+", "-", text.strip().lower())


_BY_NAME: dict[str, KernelPreset] = {}
for _p in PRESETS:
    for _n in (_p.name, *_p.aliases):
        _BY_NAME[_key(_n)] = _p


def get_preset(name: str) -> KernelPreset:
    """A preset by name or alias; KeyError if there is none."""
    try:
        return _BY_NAME[_key(name)]
    except KeyError:
        raise KeyError(f"no kernel preset named {name!r}") from None


# --------------------------------------------------------------------------- resolver


@dataclass(frozen=True, slots=True)
class KernelResolution:
    """What a kernel string means: preset (if any), features, version, warnings."""

    text: str
    preset: KernelPreset | None
    features: KernelFeatures
    version: Version
    warnings: tuple[str, ...] = ()
    # Why the features are only a guess (None: decided). The features are still filled
    # in, as the closest mainline/preset guess, for what-if questions.
    uncertain: str | None = None
    # The stable version given with the release (/proc/version, version_signature).
    upstream: Version | None = None

    @property
    def version_text(self) -> str:
        return ".".join(str(n) for n in self.version)


# The oldest kernel modelled: CentOS/RHEL 7's 3.10 (the oldest preset). IPVS's
# conn_reuse_mode (d752c3645717, v4.1) and everything after it are newer still.
OLDEST_MODELLED_KERNEL = (3, 10)

_PLAIN = re.compile(r"^(?:v|linux-|mainline-)?(\d+)\.(\d+)(?:\.(\d+))?$")
_RELEASE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?([-+.~_][0-9A-Za-z._+~-]*)$")


def _version(major: str, minor: str, sub: str | None, text: str) -> Version:
    v = (int(major), int(minor), int(sub) if sub is not None else 0)
    if v[0] < 2 or v[0] > 99 or v[1] > 99:
        raise ValueError(f"not a Linux kernel version: {text!r}")
    return v


def _euleros29_build(release: str) -> tuple[bool, tuple[int, ...]] | None:
    """(is_arm, build key) of an EulerOS 2.9 release, None if it cannot be read."""
    arm = re.search(r"-vhulk(\d+)\.(\d+)\.(\d+)\.h(\d+)\.", release)
    if arm:
        return True, tuple(int(g) for g in arm.groups())
    x86 = re.search(r"^\d+\.\d+\.\d+-([\d.]+)\.h(\d+)\.", release)
    if x86:
        nums = tuple(int(n) for n in x86.group(1).split(".") if n)
        return False, (*nums, int(x86.group(2)))
    return None


# Ubuntu's derivative kernels (-aws, -gcp, -azure, -oracle, -kvm ...) number their ABI
# from 1000 and upload less often than -generic: cloud ABI 1000+N is no older than
# generic ABI N of the same series (5.4.0-1103-aws and 5.4.0-150-generic are both of
# 2023-05). So N decides a build backport only when it is recent enough; else unknown.
UBUNTU_DERIVATIVE_ABI = 1000

# Vendor trees: built from an old base with backports ipvslab has no record of.
# (RHEL/CentOS 7 have presets of their own, from the Huawei CCE FAQ.)
_VENDOR_TREES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\.el(\d+)uek\b"), "Oracle UEK for EL{0}"),
    (re.compile(r"\.el([89]|1\d)(?:_\d+)?(?:\.|$)"), "RHEL {0} family"),
)


def _vendor_tree(release: str) -> str | None:
    for pattern, name in _VENDOR_TREES:
        found = pattern.search(release)
        if found:
            return name.format(found.group(1))
    return None


def _features_for_upstream(preset: KernelPreset, upstream: Version) -> KernelFeatures:
    """A preset's features at a known stable version: its build backports are the stable
    series' ones (STABLE_BACKPORTS), present from their sublevel on."""
    missing = []
    for backport in preset.build_backports:
        stable = next(
            (
                b
                for b in STABLE_BACKPORTS
                if b.feature is backport.feature and b.series == upstream[:2]
            ),
            None,
        )
        if stable is not None and upstream[2] < stable.sublevel:
            missing.append(backport.feature)
    return preset.features.with_features(remove=tuple(missing)) if missing else preset.features


def _upstream_text(upstream: Version) -> str:
    return ".".join(str(n) for n in upstream)


def _resolve_release(text: str, upstream: Version | None) -> KernelResolution | None:
    """A `uname -r` string that belongs to a preset, or None."""
    for preset in PRESETS:
        if not preset.release_pattern.search(text):
            continue
        match = _RELEASE.match(text)
        version = (
            _version(match.group(1), match.group(2), match.group(3), text)
            if match
            else preset.base_version
        )
        warnings: list[str] = []
        if preset.name.startswith("euleros-2.9"):
            build = _euleros29_build(text)
            if build is None:
                preset = get_preset("euleros-2.9")
                warnings.append(
                    f"cannot read the EulerOS 2.9 build of {text!r}; assuming a build"
                    " before the fixed ones"
                )
            else:
                is_arm, key = build
                fixed = key >= (_EULER29_FIXED_ARM if is_arm else _EULER29_FIXED_X86)
                preset = get_preset("euleros-2.9-fixed" if fixed else "euleros-2.9")
            return KernelResolution(text, preset, preset.features, version, tuple(warnings))
        if preset.name == "centos-7":
            warnings.append(
                f"{text!r} is a RHEL/CentOS 7 kernel other than 7.6; its features are"
                " assumed to match CentOS 7.6"
            )
        features = preset.features
        uncertain: str | None = None
        abi = re.match(r"^\d+\.\d+\.\d+-(\d+)", text)
        if preset.build_backports and upstream is not None and upstream[:2] == version[:2]:
            features = _features_for_upstream(preset, upstream)
            warnings.append(f"built from stable {_upstream_text(upstream)} (version signature)")
        elif preset.build_backports and abi is not None:
            number = int(abi.group(1))
            derivative = number >= UBUNTU_DERIVATIVE_ABI
            abi_build = number - UBUNTU_DERIVATIVE_ABI if derivative else number
            features = preset.features_for_build((abi_build,))
            if derivative and features != preset.features:
                uncertain = (
                    f"{text} is an Ubuntu cloud kernel whose ABI ({number}) does not tell"
                    f" which {version[0]}.{version[1]}.y stable fixes it carries; give"
                    " /proc/version_signature (or `cat /proc/version_signature`)"
                )
        return KernelResolution(
            text,
            preset,
            features,
            version,
            tuple(warnings) + ((f"exposure uncertain: {uncertain}",) if uncertain else ()),
            uncertain,
        )
    return None


def resolve_kernel(text: str, upstream: Version | None = None) -> KernelResolution:
    """Resolve a preset name, a mainline version or a `uname -r` string.

    ``upstream`` is the kernel.org stable version a distro release is built from, when
    known (Debian's /proc/version, Ubuntu's /proc/version_signature); it is used only
    for a release of the same major.minor. Raises ValueError naming the text when it is
    none of these.
    """
    stripped = text.strip()
    if not stripped:
        raise ValueError(f"empty kernel string: {text!r}")

    preset = _BY_NAME.get(_key(stripped))
    if preset is not None:
        return KernelResolution(stripped, preset, preset.features, preset.base_version)

    plain = _PLAIN.match(stripped.lower())
    if plain:
        version = _version(plain.group(1), plain.group(2), plain.group(3), text)
        return KernelResolution(stripped, None, mainline_features(version), version)

    by_release = _resolve_release(stripped, upstream)
    if by_release is None:
        release = _RELEASE.match(stripped)
        if release:
            version = _version(release.group(1), release.group(2), release.group(3), text)
            by_release = _resolve_unlisted(stripped, version, upstream)
    if by_release is not None:
        return replace(by_release, upstream=upstream) if upstream is not None else by_release

    raise ValueError(
        f"not a kernel preset, mainline version or `uname -r` string: {text!r}"
        f" (presets: {', '.join(p.name for p in PRESETS)})"
    )


def _resolve_unlisted(text: str, version: Version, upstream: Version | None) -> KernelResolution:
    """A release no preset knows: mainline at its stable version, when that is known."""
    series = f"{version[0]}.{version[1]}"
    era = era_for(version[0], version[1])
    vendor = _vendor_tree(text)
    if vendor is not None:
        # RHEL 8/9 and UEK keep an old base version and backport selectively: neither
        # the base nor its sublevel says which IPVS fixes a build has.
        why = (
            f"{text} is a vendor kernel ({vendor}): built from {series} with vendor backports that"
            " ipvslab has no record of, so its IPVS era cannot be decided (judged as"
            f" mainline {series}.{version[2]} only as a guess)"
        )
        return KernelResolution(
            text, None, mainline_features(version), version, (f"exposure uncertain: {why}",), why
        )
    if upstream is not None and upstream[:2] == version[:2]:
        warning = (
            f"{text!r} matches no kernel preset; built from stable {_upstream_text(upstream)}"
            f" (/proc/version or /proc/version_signature): mainline {series} (era {era.label})"
            f" with stable backports up to sublevel {upstream[2]}; distro backports are not known"
        )
        return KernelResolution(text, None, mainline_features(upstream), upstream, (warning,))
    warning = (
        f"{text!r} matches no kernel preset; using mainline {series}"
        f" (era {era.label}) with stable backports up to sublevel {version[2]}; distro"
        " backports are not known"
    )
    hidden = version[2] == 0 and text[len(f"{series}.0") :].startswith("-")
    later = [b for b in STABLE_BACKPORTS if b.series == version[:2] and b.sublevel > version[2]]
    if hidden and later:
        # Debian (4.19.0-25-amd64) and Ubuntu name the ABI, not the stable sublevel: the
        # fixes that reached this series at .{sublevel} may or may not be in.
        fixes = ", ".join(f"{series}.{b.sublevel}" for b in later)
        why = (
            f"{text} does not say which {series}.y stable release it is built from, and"
            f" reuse fixes reached {series} in {fixes}; give /proc/version (Debian prints"
            " the stable version there) or /proc/version_signature (Ubuntu)"
        )
        return KernelResolution(
            text,
            None,
            mainline_features(version),
            version,
            (warning, f"exposure uncertain: {why}"),
            why,
        )
    return KernelResolution(text, None, mainline_features(version), version, (warning,))
