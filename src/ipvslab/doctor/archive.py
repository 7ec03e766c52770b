"""``doctor collect``: a capture written as a ``.tar.gz`` in the capture layout.

Members sit under one top directory, ``ipvslab-capture/`` (see ``doctor.capture``
for the layout), with ``manifest.json`` last: what was collected, when, by which
ipvslab, from where, and what could not be read. ``capture.capture_from`` reads
the archive back (``live`` is then False; ``ipvs_present``, notes and problems
come from the manifest).

Each input is streamed into a temporary file next to the archive to learn its
size (a tar header needs it first), so a 100 MB connection table is never held in
memory. The archive is written to a temporary file in the same directory and
renamed into place: a reader never sees half an archive. It is created with mode
0600: connection tables name client addresses.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from ipvslab.doctor.capture import (
    ARCHIVE_TOP,
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    Capture,
    CaptureFile,
    InputKind,
    file_problem,
    issue_to_json,
    os_error_text,
)
from ipvslab.doctor.records import ParseIssue

CHUNK_CHARS = 1 << 16
_HOST_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _utc(moment: datetime) -> datetime:
    """A naive time is taken as UTC."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def default_archive_name(hostname: str, collected_at: datetime) -> str:
    """``ipvslab-capture-<host>-<YYYYmmddTHHMMSSZ>.tar.gz`` (host made file-name safe)."""
    host = _HOST_UNSAFE.sub("_", hostname).strip("._") or "node"
    return f"ipvslab-capture-{host}-{_utc(collected_at):%Y%m%dT%H%M%SZ}.tar.gz"


def write_archive(
    capture: Capture,
    out: Path,
    *,
    collected_at: datetime,
    hostname: str,
    ipvslab_version: str,
) -> Path:
    """Writes ``capture`` as a ``.tar.gz`` and returns its path.

    ``out`` is the archive's path, or a directory to put ``default_archive_name``
    in. An input that cannot be read is left out and recorded in the manifest's
    problems. Raises ``OSError`` only when the archive itself cannot be written
    (no temporary file is left behind then).
    """
    target = out / default_archive_name(hostname, collected_at) if out.is_dir() else out
    directory = target.parent
    mtime = int(_utc(collected_at).timestamp())
    fd, temp_name = tempfile.mkstemp(dir=directory, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
                entries, problems = _add_inputs(tar, capture, directory, mtime)
                manifest = build_manifest(
                    capture,
                    entries,
                    problems,
                    collected_at=collected_at,
                    hostname=hostname,
                    ipvslab_version=ipvslab_version,
                )
                data = (json.dumps(manifest, indent=2) + "\n").encode("utf-8")
                info = _member_info(InputKind.MANIFEST.path, len(data), mtime)
                tar.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _fsync_dir(directory)
    return target


def build_manifest(
    capture: Capture,
    entries: list[dict[str, Any]],
    problems: list[ParseIssue],
    *,
    collected_at: datetime,
    hostname: str,
    ipvslab_version: str,
) -> dict[str, Any]:
    """The manifest: ``files`` lists each member (layout path, kind, where it was read)."""
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "ipvslab_version": ipvslab_version,
        "collected_at": _utc(collected_at).isoformat(),
        "hostname": hostname,
        "live": capture.live,
        "ipvs_present": capture.ipvs_present,
        "files": entries,
        "problems": [issue_to_json(p) for p in problems],
        "notes": list(capture.notes),
    }


def _add_inputs(
    tar: tarfile.TarFile, capture: Capture, directory: Path, mtime: int
) -> tuple[list[dict[str, Any]], list[ParseIssue]]:
    entries: list[dict[str, Any]] = []
    problems = list(capture.problems)
    for kind in InputKind:
        file = capture.files.get(kind)
        if file is None or kind is InputKind.MANIFEST:  # a fresh manifest is written
            continue
        with tempfile.TemporaryFile(dir=directory) as spool:
            try:
                size = _spool(file, spool)
            except OSError as exc:
                problems.append(file_problem(file.source, f"cannot read: {os_error_text(exc)}"))
                continue
            spool.seek(0)
            tar.addfile(_member_info(kind.path, size, mtime), spool)
        entries.append({"kind": kind.name, "path": kind.path, "source": file.source, "bytes": size})
    return entries, problems


def _spool(file: CaptureFile, spool: IO[bytes]) -> int:
    """Copies an input into ``spool`` as utf-8, chunk by chunk; returns its size in bytes."""
    size = 0
    with file.open() as stream:
        while chunk := stream.read(CHUNK_CHARS):
            data = chunk.encode("utf-8", "replace")
            spool.write(data)
            size += len(data)
    return size


def _member_info(path: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(f"{ARCHIVE_TOP}/{path}")
    info.size = size
    info.mtime = mtime
    info.mode = 0o644
    info.type = tarfile.REGTYPE
    return info


def _fsync_dir(directory: Path) -> None:
    """Makes the rename durable (best effort: not every filesystem allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
