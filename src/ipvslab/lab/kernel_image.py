"""A kernel to boot: a Debian ``linux-image-*`` package fetched and unpacked into a
cache directory (never into the repository).

``apt-get download`` fetches the package (only Debian's registry is needed),
``dpkg-deb -x`` unpacks it, ``depmod`` writes the modules.dep a .deb does not ship.
virtme-ng then finds ``lib/modules/<release>`` beside ``boot/vmlinuz-<release>``
and hands the guest those modules (ip_vs among them).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# Debian's meta-package for the current kernel of the release the host runs.
DEFAULT_META = "linux-image-amd64"
_PACKAGE = re.compile(r"^linux-image-(\d[\w.+~-]*)$")
_VERSIONED = re.compile(r"^linux-image-\d+\.\d+\.\d+")
_DEPENDS = re.compile(r"^\s*Depends:\s*(linux-image-\S+)\s*$", re.MULTILINE)


class KernelImageError(RuntimeError):
    """The kernel could not be had (which command failed, and its message)."""


@dataclass(frozen=True)
class KernelImage:
    release: str  # `uname -r` inside the guest
    vmlinuz: Path
    root: Path  # holds boot/ and lib/modules/<release>/


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ipvslab" / "kernels"


def release_of(package: str) -> str:
    """``linux-image-6.1.0-57-amd64`` -> ``6.1.0-57-amd64``."""
    found = _PACKAGE.match(package)
    if found is None or package.endswith("-dbg"):
        raise KernelImageError(f"{package!r} is not a Debian linux-image-<release> package")
    return found.group(1)


def depends_of(apt_cache_output: str) -> str | None:
    """The linux-image package a meta-package depends on (``apt-cache depends``)."""
    names: list[str] = _DEPENDS.findall(apt_cache_output)
    for name in names:
        try:
            release_of(name)
        except KernelImageError:
            continue
        return name
    return None


def _run(args: list[str], cwd: Path | None = None) -> str:
    if shutil.which(args[0]) is None:
        raise KernelImageError(f"{args[0]} is not installed (needed to fetch a Debian kernel)")
    done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise KernelImageError(
            f"{' '.join(args)}: exit {done.returncode}: {done.stderr.strip()[-500:]}"
        )
    return done.stdout


def resolve_package(name: str = DEFAULT_META) -> str:
    """A meta-package (linux-image-amd64, linux-image-6.12-amd64) resolved to the
    versioned package it depends on; a versioned name is returned as it is."""
    if _VERSIONED.match(name):
        return name
    found = depends_of(_run(["apt-cache", "depends", name]))
    if found is None:
        raise KernelImageError(f"apt-cache depends {name}: no linux-image package in its Depends")
    return found


def fetch_debian_kernel(package: str = DEFAULT_META, cache: Path | None = None) -> KernelImage:
    """The unpacked kernel of ``package`` (fetched on first use, then cached)."""
    package = resolve_package(package)
    release = release_of(package)
    root = (cache or cache_dir()) / release
    vmlinuz = root / "boot" / f"vmlinuz-{release}"
    modules = root / "lib" / "modules" / release
    if vmlinuz.is_file() and (modules / "modules.dep").is_file():
        return KernelImage(release, vmlinuz, root)
    download = root.parent / "downloads"
    download.mkdir(parents=True, exist_ok=True)
    _run(["apt-get", "download", package], cwd=download)
    debs = sorted(download.glob(f"{package}_*.deb"))
    if not debs:
        raise KernelImageError(f"apt-get download {package} left no .deb in {download}")
    partial = root.with_name(root.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    _run(["dpkg-deb", "-x", str(debs[-1]), str(partial)])
    _run(["depmod", "-b", str(partial), release])
    shutil.rmtree(root, ignore_errors=True)
    partial.rename(root)
    return KernelImage(release, vmlinuz, root)


def local_kernel(vmlinuz: Path) -> KernelImage:
    """A vmlinuz given by path, its modules in ``<root>/lib/modules/<release>``
    where ``<root>`` holds the ``boot/`` it sits in."""
    name = vmlinuz.name
    if not name.startswith("vmlinuz-") or not vmlinuz.is_file():
        raise KernelImageError(f"{vmlinuz}: not a vmlinuz-<release> file")
    release = name.removeprefix("vmlinuz-")
    return KernelImage(release, vmlinuz, vmlinuz.parent.parent)
