"""Writing a file whole or not at all: into a hidden temporary beside it, then renamed
over it (a reader never sees half a file, and a failed write leaves the old one)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_atomic(path: Path, write: Callable[[Path], Any]) -> None:
    """``write(tmp)``, then ``tmp`` renamed to ``path``; OSError with the temporary removed."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
