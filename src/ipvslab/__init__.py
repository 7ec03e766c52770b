"""ipvslab: a twin of Linux IPVS connection reuse, and a doctor for real nodes.

The install may compile the simulator's hot modules with mypyc (setup.py); the
extensions then sit beside their sources and Python imports them first. When a
source differs from what was compiled (edited or checked out since the install;
setup.py records the sources' hashes), every compiled module is imported from
source instead (they are compiled as one
group, so it is all or none), with a warning, until the next install rebuilds
them: an edit is never shadowed by stale machine code.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import importlib.abc

__version__ = "0.1.0"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _extensions() -> dict[str, tuple[str, str]]:
    """Compiled modules of this package: name -> (extension path, source path)."""
    found: dict[str, tuple[str, str]] = {}
    suffixes = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for folder, _dirs, files in os.walk(_PACKAGE_DIR):
        for file in files:
            if not file.endswith(suffixes):
                continue
            stem = file.split(".", 1)[0]
            source = os.path.join(folder, stem + ".py")
            if os.path.exists(source):
                relative = os.path.relpath(os.path.join(folder, stem), _PACKAGE_DIR)
                name = __name__ + "." + relative.replace(os.sep, ".")
                found[name] = (os.path.join(folder, file), source)
    return found


def _source_first(sources: dict[str, str]) -> importlib.abc.MetaPathFinder:
    """A finder that imports the listed modules from their .py files, not their
    extensions (importlib.abc is imported only then: it costs start-up time)."""
    import importlib.abc

    class SourceFirst(importlib.abc.MetaPathFinder):
        def find_spec(
            self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
        ) -> importlib.machinery.ModuleSpec | None:
            source = sources.get(fullname)
            if source is None:
                return None
            return importlib.util.spec_from_file_location(fullname, source)

    return SourceFirst()


def _stale(extensions: dict[str, tuple[str, str]], package_dir: str = _PACKAGE_DIR) -> bool:
    """Does any compiled module's source differ from what was compiled?

    setup.py records the sources' SHA-256 when it compiles them; without that
    record, a source newer than its extension counts as changed.
    """
    if not extensions:
        return False
    try:
        with open(os.path.join(package_dir, "_compiled_sources.json"), "rb") as stamp:
            compiled_from = json.load(stamp)
    except (OSError, ValueError):
        compiled_from = None
    for extension, source in extensions.values():
        if not isinstance(compiled_from, dict):
            if os.path.getmtime(source) > os.path.getmtime(extension):
                return True
            continue
        relative = os.path.relpath(source, package_dir).replace(os.sep, "/")
        record = compiled_from.get(relative)
        if isinstance(record, dict):
            # Same size and mtime as when compiled: unchanged, no need to read it (every
            # command pays this check at start-up). Otherwise the content decides.
            stat = os.stat(source)
            if (record.get("size"), record.get("mtime_ns")) == (stat.st_size, stat.st_mtime_ns):
                continue
            record = record.get("sha256")
        with open(source, "rb") as text:
            if record != hashlib.sha256(text.read()).hexdigest():
                return True
    return False


_EXTENSIONS = _extensions()
_STALE = _stale(_EXTENSIONS)
if _STALE:
    sys.meta_path.insert(0, _source_first({n: s for n, (_, s) in _EXTENSIONS.items()}))
    warnings.warn(
        "ipvslab: sources changed since the compiled modules were built; running them as"
        " pure Python (reinstall with `pip install -e .` to compile again)",
        stacklevel=1,
    )


def compiled() -> list[str]:
    """The modules that run compiled in this process (imported or importable)."""
    return [] if _STALE else sorted(_EXTENSIONS)
