"""Era modules: the booted Debian kernel's own ``ip_vs`` rebuilt out of tree with
an older kernel's reuse decision restored, so that era's behaviour can be
measured on a real datapath (issue #10, "Older kernels on a real datapath").

The one era so far is ``drop``: f0a5e4d7a594 ("ipvs: allow connection reuse for
unconfirmed conntrack", v5.9) reverted in ``ip_vs_in()``. A SYN that reuses an
entry marked ``IP_VS_CONN_F_NFCT`` is dropped whenever it carries any
conntrack, confirmed or not (the helper as f719e3754ee2 left it), and the old
entry keeps its NFCT flag. 04231e52d355 (the dead-server block) and
c95c07836fa4 (expire_nodest_conn in every reuse mode) stay as 6.1 has them.

Everything comes from Debian's registry at the booted kernel's exact version:
``linux-source-<series>`` (net/netfilter/ipvs), ``linux-headers-<release>``,
``linux-headers-<abi>-common`` and ``linux-kbuild-<series>``; ``patch`` applies
the era's diff and the host's gcc builds the modules. The result is cached under
``~/.cache/ipvslab/era/<release>/<era>-<patch digest>/`` with ``ERA.txt`` beside
``ip_vs.ko`` saying what it reverts; ``modinfo -F ipvslab_era ip_vs.ko`` says
the same.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ipvslab.lab.kernel_image import KernelImage

IPVS_DIR = "net/netfilter/ipvs"
# 6.1.0-57-amd64, 6.1.0-57-cloud-amd64, 6.1.0-57-rt-amd64: version, ABI, flavour.
_RELEASE = re.compile(r"^(\d+)\.(\d+)\.(\d+)-(\d+)-([a-z0-9]+(?:-[a-z0-9]+)*)$")
_VERSION_FIELD = re.compile(r"^Version:\s*(\S+)\s*$", re.MULTILINE)


class EraModuleError(RuntimeError):
    """The era module could not be built (which step failed, and its message)."""


@dataclass(frozen=True)
class Era:
    name: str
    patch: str  # file in era_patches/
    reverts: tuple[str, ...]
    keeps: tuple[str, ...]
    summary: str
    # The model's features for this era on top of the booted kernel's preset.
    features_on: tuple[str, ...]
    features_off: tuple[str, ...]

    def patch_text(self) -> str:
        return resources.files("ipvslab.lab").joinpath("era_patches", self.patch).read_text()

    def describe(self) -> str:
        return (
            f"era {self.name}: {self.summary}\n"
            f"reverts: {', '.join(self.reverts)}\n"
            f"keeps: {', '.join(self.keeps)}\n"
        )


ERAS: dict[str, Era] = {
    "drop": Era(
        name="drop",
        patch="drop.patch",
        # f0a5e4d7a594 (v5.9) is what ended the drop: reverting its ip_vs_in() hunk
        # brings back the pre-5.9 conntrack check and keeps the NFCT flag.
        reverts=("f0a5e4d7a594 (ipvs: allow connection reuse for unconfirmed conntrack)",),
        keeps=(
            "04231e52d355 (dead-server block reschedules)",
            "c95c07836fa4 (expire_nodest_conn in every reuse mode)",
        ),
        summary=(
            "a reused entry with IP_VS_CONN_F_NFCT and a SYN with any conntrack:"
            " the SYN is dropped (first-SYN drop of 2016-5.8)"
        ),
        features_on=("first_syn_drop",),
        features_off=("unconfirmed_conntrack_reuse",),
    ),
}


@dataclass(frozen=True)
class DebianKernel:
    """What names the packages of one Debian kernel build."""

    release: str  # 6.1.0-57-amd64
    version: str  # 6.1.192-3 (the Debian package version)

    def _parts(self) -> tuple[str, ...]:
        found = _RELEASE.match(self.release)
        if found is None:
            raise EraModuleError(f"{self.release!r} is not a Debian release like 6.1.0-57-amd64")
        return found.groups()

    @property
    def series(self) -> str:
        major, minor, *_ = self._parts()
        return f"{major}.{minor}"

    @property
    def common(self) -> str:
        """``6.1.0-57-cloud-amd64`` -> ``6.1.0-57-common`` (shared by every flavour)."""
        major, minor, patch, abi, _ = self._parts()
        return f"{major}.{minor}.{patch}-{abi}-common"

    def packages(self) -> list[str]:
        names = [
            f"linux-source-{self.series}",
            f"linux-headers-{self.release}",
            f"linux-headers-{self.common}",
            f"linux-kbuild-{self.series}",
        ]
        return [f"{name}={self.version}" for name in names]


@dataclass(frozen=True)
class EraModule:
    era: Era
    release: str
    directory: Path  # holds ip_vs.ko (and the schedulers), ERA.txt

    @property
    def ip_vs(self) -> Path:
        return self.directory / "ip_vs.ko"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ipvslab" / "era"


def version_of(apt_cache_show: str) -> str | None:
    """The first ``Version:`` of ``apt-cache show`` output."""
    found = _VERSION_FIELD.search(apt_cache_show)
    return found.group(1) if found else None


def download_command(kernel: DebianKernel) -> list[str]:
    return ["apt-get", "download", *kernel.packages()]


def build_command(headers: Path, module_dir: Path, jobs: int) -> list[str]:
    """Kbuild's out-of-tree build of the ipvs directory against the headers."""
    return ["make", "-C", str(headers), f"M={module_dir}", f"-j{jobs}", "modules"]


def patch_command(source_root: Path, dry_run: bool) -> list[str]:
    return [
        "patch",
        "-p1",
        "--forward",
        "--batch",
        "--no-backup-if-mismatch",
        "-d",
        str(source_root),
        *(["--dry-run"] if dry_run else []),
    ]


def _run(args: list[str], cwd: Path | None = None, stdin: str | None = None) -> str:
    if shutil.which(args[0]) is None:
        raise EraModuleError(f"{args[0]} is not installed (needed to build the era module)")
    done = subprocess.run(args, cwd=cwd, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr.strip() or done.stdout.strip())[-800:]
        raise EraModuleError(f"{' '.join(args[:6])}: exit {done.returncode}: {message}")
    return done.stdout


def apply_patch(era: Era, source_root: Path) -> None:
    """The era's diff applied to ``source_root`` (which holds net/netfilter/ipvs),
    checked first with a dry run so that a source it does not fit is left as it was."""
    text = era.patch_text()
    try:
        _run(patch_command(source_root, dry_run=True), stdin=text)
    except EraModuleError as err:
        raise EraModuleError(
            f"the {era.name} era patch does not apply to {source_root / IPVS_DIR}: {err}"
        ) from None
    _run(patch_command(source_root, dry_run=False), stdin=text)


def debian_kernel(image: KernelImage) -> DebianKernel:
    """The booted kernel's package version: from the .deb it was unpacked from
    when that is in the cache, else the registry's."""
    for folder in (image.root.parent, image.root.parent / "downloads"):
        debs = sorted(folder.glob(f"linux-image-{image.release}_*_*.deb"))
        if debs:
            return DebianKernel(image.release, debs[-1].name.split("_")[1])
    try:
        shown = _run(["apt-cache", "show", f"linux-image-{image.release}"])
    except EraModuleError as err:
        raise EraModuleError(f"cannot tell the package version of {image.release}: {err}") from None
    version = version_of(shown)
    if version is None:
        raise EraModuleError(f"apt-cache show linux-image-{image.release}: no Version")
    return DebianKernel(image.release, version)


def _digest(era: Era) -> str:
    return hashlib.sha256(era.patch_text().encode()).hexdigest()[:12]


def _unpack(kernel: DebianKernel, downloads: Path, tree: Path) -> tuple[Path, Path]:
    """Headers, kbuild and the ipvs sources unpacked into ``tree``: the headers
    directory to build against and the source root."""
    for spec in kernel.packages():
        name, version = spec.split("=")
        debs = sorted(downloads.glob(f"{name}_{version.replace(':', '%3a')}_*.deb"))
        if not debs:
            raise EraModuleError(f"apt-get download {spec} left no .deb in {downloads}")
        _run(["dpkg-deb", "-x", str(debs[-1]), str(tree)])
    headers = tree / "usr" / "src" / f"linux-headers-{kernel.release}"
    common = tree / "usr" / "src" / f"linux-headers-{kernel.common}"
    # Debian's flavour Makefile includes the common one by its absolute path in /usr/src.
    (headers / "Makefile").write_text(f"include {common}/Makefile\n")
    tarball = tree / "usr" / "src" / f"linux-source-{kernel.series}.tar.xz"
    top = f"linux-source-{kernel.series}"
    _run(["tar", "-xJf", str(tarball), "-C", str(tree), f"{top}/{IPVS_DIR}"])
    tarball.unlink()
    return headers, tree / top


def build_era_module(
    image: KernelImage, era: Era, cache: Path | None = None, jobs: int = 2
) -> EraModule:
    """The era's ``ip_vs.ko`` for the booted kernel (built on first use, then cached)."""
    kernel = debian_kernel(image)
    base = cache or cache_dir()
    done = base / kernel.release / f"{era.name}-{_digest(era)}"
    module = EraModule(era, kernel.release, done)
    if module.ip_vs.is_file() and (done / "ERA.txt").is_file():
        return module
    downloads = base / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    _run(download_command(kernel), cwd=downloads)
    work = done.with_name(done.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    headers, source = _unpack(kernel, downloads, work / "tree")
    apply_patch(era, source)
    _run(build_command(headers, source / IPVS_DIR, jobs))
    vermagic = _run(["modinfo", "-F", "vermagic", str(source / IPVS_DIR / "ip_vs.ko")]).split()
    if not vermagic or vermagic[0] != kernel.release:
        raise EraModuleError(
            f"the rebuilt ip_vs.ko has vermagic {' '.join(vermagic)!r}, not {kernel.release}"
        )
    out = work / "modules"
    out.mkdir()
    for ko in sorted((source / IPVS_DIR).glob("*.ko")):
        shutil.copy2(ko, out / ko.name)
    (out / "ERA.txt").write_text(
        f"ip_vs for {kernel.release} (Debian {kernel.version}), rebuilt by ipvslab\n"
        + era.describe()
    )
    shutil.rmtree(done, ignore_errors=True)
    out.rename(done)
    shutil.rmtree(work, ignore_errors=True)
    return module


def era_named(name: str) -> Era:
    try:
        return ERAS[name]
    except KeyError:
        raise EraModuleError(f"unknown era {name!r} (known: {', '.join(ERAS)})") from None


__all__ = [
    "ERAS",
    "DebianKernel",
    "Era",
    "EraModule",
    "EraModuleError",
    "apply_patch",
    "build_command",
    "build_era_module",
    "debian_kernel",
    "download_command",
    "era_named",
    "patch_command",
    "version_of",
]
