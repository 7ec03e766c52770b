"""The install compiles hot modules (setup.py); an edited source must never be
shadowed by its stale extension: ipvslab then runs every compiled module from
source."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import ipvslab


def _layout(
    tmp_path: Path, source_text: bytes, recorded: bytes | None
) -> dict[str, tuple[str, str]]:
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    source = kernel / "ipvs.py"
    source.write_bytes(source_text)
    extension = kernel / "ipvs.cpython-311-x86_64-linux-gnu.so"
    extension.write_bytes(b"\x7fELF")
    if recorded is not None:
        digest = hashlib.sha256(recorded).hexdigest()
        (tmp_path / "_compiled_sources.json").write_text(json.dumps({"kernel/ipvs.py": digest}))
    return {"ipvslab.kernel.ipvs": (str(extension), str(source))}


def test_the_source_it_was_compiled_from_runs_compiled(tmp_path: Path) -> None:
    extensions = _layout(tmp_path, b"x = 1\n", recorded=b"x = 1\n")
    assert not ipvslab._stale(extensions, str(tmp_path))


def test_an_edited_source_runs_from_source(tmp_path: Path) -> None:
    extensions = _layout(tmp_path, b"x = 2\n", recorded=b"x = 1\n")
    assert ipvslab._stale(extensions, str(tmp_path))


def test_without_a_record_a_source_newer_than_its_extension_counts_as_edited(
    tmp_path: Path,
) -> None:
    extensions = _layout(tmp_path, b"x = 1\n", recorded=None)
    extension, source = extensions["ipvslab.kernel.ipvs"]
    os.utime(source, (1_000, 1_000))
    os.utime(extension, (2_000, 2_000))
    assert not ipvslab._stale(extensions, str(tmp_path))
    os.utime(source, (3_000, 3_000))
    assert ipvslab._stale(extensions, str(tmp_path))


def test_no_extensions_nothing_to_guard(tmp_path: Path) -> None:
    assert not ipvslab._stale({}, str(tmp_path))


def test_packets_and_forwarded_stay_frozen_compiled_or_not() -> None:
    """Packet and Forwarded fill their fields with native stores when compiled; to
    every caller they remain frozen, hashable values."""
    import dataclasses
    from ipaddress import IPv4Address

    import pytest

    from ipvslab.cluster.dataplane import Forwarded
    from ipvslab.kernel.packet import Packet, Protocol, TcpFlags

    def packet() -> Packet:
        return Packet(Protocol.TCP, IPv4Address("10.244.0.5"), 40000, IPv4Address("10.96.0.10"), 80)

    syn = Packet(
        Protocol.TCP, IPv4Address("10.244.0.5"), 40000, IPv4Address("10.96.0.10"), 80, TcpFlags.SYN
    )
    assert packet() == packet() and hash(packet()) == hash(packet()) and syn != packet()
    assert (syn.client_port, syn.flags, syn.mark, syn.sctp_chunk) == (40000, TcpFlags.SYN, 0, None)
    forwarded = Forwarded(0x0AF40005, "SCHEDULE", "SCHEDULE")
    assert (forwarded.weight0, forwarded.removed, forwarded.refused) == (False, False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        syn.client_port = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        forwarded.pod_ip = 1  # type: ignore[misc]


def _record(tmp_path: Path, recorded: bytes, size: int, mtime_ns: int) -> None:
    entry = {"sha256": hashlib.sha256(recorded).hexdigest(), "size": size, "mtime_ns": mtime_ns}
    (tmp_path / "_compiled_sources.json").write_text(json.dumps({"kernel/ipvs.py": entry}))


def test_an_edit_that_keeps_the_size_and_a_touched_mtime_is_still_seen(tmp_path: Path) -> None:
    # setup.py records size and mtime so that start-up need not hash an unchanged file;
    # a file whose size or mtime differ is judged by its content.
    extensions = _layout(tmp_path, b"x = 2\n", recorded=None)
    source = Path(extensions["ipvslab.kernel.ipvs"][1])
    stat = source.stat()
    _record(tmp_path, b"x = 1\n", stat.st_size, stat.st_mtime_ns - 1)
    assert ipvslab._stale(extensions, str(tmp_path))
    _record(tmp_path, b"x = 2\n", stat.st_size, stat.st_mtime_ns - 1)  # touched, same text
    assert not ipvslab._stale(extensions, str(tmp_path))
    _record(tmp_path, b"x = 1\n", stat.st_size, stat.st_mtime_ns)  # size and mtime as built
    assert not ipvslab._stale(extensions, str(tmp_path))
