"""doctor collect archives: written atomically, read back to the same snapshot."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import tarfile
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any

import pytest

from ipvslab.doctor.archive import default_archive_name, write_archive
from ipvslab.doctor.capture import (
    Capture,
    CaptureFile,
    InputKind,
    capture_from,
    snapshot_from_capture,
    text_opener,
)
from ipvslab.doctor.live import capture_live
from ipvslab.doctor.records import ParseIssue
from ipvslab.doctor.snapshot import NodeSnapshot

from .test_live import make_node_root

COLLECTED = datetime(2024, 3, 1, 12, 30, 5, tzinfo=UTC)


def write(capture: Capture, out: Path, hostname: str = "node-1") -> Path:
    return write_archive(
        capture, out, collected_at=COLLECTED, hostname=hostname, ipvslab_version="9.9.9"
    )


def parsed_fields(snap: NodeSnapshot) -> dict[str, Any]:
    """What was read, without where it was read from."""
    fields = {
        f.name: getattr(snap, f.name)
        for f in dataclasses.fields(snap)
        if f.name not in ("sources", "issues", "kube_proxy")
    }
    if snap.kube_proxy is not None:
        fields["kube_proxy"] = dataclasses.replace(snap.kube_proxy, source="")
    fields["issues"] = [(i.line_no, i.field, i.message) for i in snap.issues]
    return fields


def test_round_trip_gives_the_same_snapshot(tmp_path: Path) -> None:
    root = make_node_root(tmp_path / "node")
    live = capture_live(root)
    archive = write(live, tmp_path)
    assert archive == tmp_path / "ipvslab-capture-node-1-20240301T123005Z.tar.gz"
    back = capture_from([str(archive)])
    assert back.live is False and back.ipvs_present is True and back.problems == ()
    expected = snapshot_from_capture(live)
    snap = snapshot_from_capture(back)
    assert parsed_fields(snap) == parsed_fields(expected)
    assert snap.conns is not None and snap.conns.total > 0 and snap.kube_proxy is not None
    # Sources now name the archive members.
    assert snap.sources["proc/net/ip_vs_conn"] == f"{archive}:ipvslab-capture/proc/net/ip_vs_conn"


def test_round_trip_keeps_no_ipvs_notes_and_problems(tmp_path: Path) -> None:
    root = make_node_root(tmp_path / "node", ipvs=False)
    live = capture_live(root, exec_version=False)
    problem = ParseIssue("/proc/99/cmdline", 0, "file", "cannot read: Permission denied")
    live = dataclasses.replace(live, problems=(problem,))
    back = capture_from([str(write(live, tmp_path / "a.tgz"))])
    assert back.ipvs_present is False
    assert back.notes == live.notes and any("IPVS is not loaded" in n for n in back.notes)
    assert back.problems == (problem,)
    snap = snapshot_from_capture(back)
    assert snap.ipvs_present is False and problem in snap.issues


def test_archive_layout_and_manifest(tmp_path: Path) -> None:
    root = make_node_root(tmp_path / "node")
    live = capture_live(root, exec_version=False)
    archive = write(live, tmp_path / "out.tar.gz")
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        raw = tar.extractfile("ipvslab-capture/manifest.json")
        assert raw is not None
        manifest = json.load(raw)
    assert all(name.startswith("ipvslab-capture/") for name in names)
    assert "ipvslab-capture/proc/net/ip_vs_conn" in names
    assert "ipvslab-capture/kube-proxy/config.yaml" in names
    assert manifest["format_version"] == 1
    assert manifest["ipvslab_version"] == "9.9.9"
    assert manifest["collected_at"] == "2024-03-01T12:30:05+00:00"
    assert manifest["hostname"] == "node-1"
    assert manifest["live"] is True and manifest["ipvs_present"] is True
    by_path = {f["path"]: f for f in manifest["files"]}
    assert by_path["proc/net/ip_vs"]["source"] == str(root / "proc/net/ip_vs")
    assert by_path["kube-proxy/cmdline"]["kind"] == "KUBE_PROXY_CMDLINE"
    assert by_path["proc/net/ip_vs_conn"]["bytes"] == (root / "proc/net/ip_vs_conn").stat().st_size
    assert manifest["notes"] == list(live.notes)


def test_default_archive_name() -> None:
    east = timezone(timedelta(hours=9))
    moment = datetime(2024, 3, 1, 21, 30, 5, tzinfo=east)
    assert (
        default_archive_name("node-1", moment) == "ipvslab-capture-node-1-20240301T123005Z.tar.gz"
    )
    assert default_archive_name("ip-10-0-0-1.ec2.internal", COLLECTED).startswith(
        "ipvslab-capture-ip-10-0-0-1.ec2.internal-"
    )
    assert default_archive_name("../../etc/x y", COLLECTED) == (
        "ipvslab-capture-etc_x_y-20240301T123005Z.tar.gz"
    )
    assert default_archive_name("", COLLECTED).startswith("ipvslab-capture-node-")


def test_unreadable_input_is_left_out_and_recorded(tmp_path: Path) -> None:
    def broken() -> contextlib.AbstractContextManager[IO[str]]:
        raise PermissionError(13, "Permission denied")

    capture = Capture(
        files={
            InputKind.KERNEL_RELEASE: CaptureFile(
                InputKind.KERNEL_RELEASE, "/proc/sys/kernel/osrelease", broken
            ),
            InputKind.SYSCTL: CaptureFile(
                InputKind.SYSCTL, "/proc/sys", text_opener("net.ipv4.vs.conn_reuse_mode = 0\n")
            ),
        }
    )
    back = capture_from([str(write(capture, tmp_path / "a.tar.gz"))])
    assert InputKind.KERNEL_RELEASE not in back.files
    assert [(p.source, p.message) for p in back.problems] == [
        ("/proc/sys/kernel/osrelease", "cannot read: Permission denied")
    ]
    assert snapshot_from_capture(back).sysctl_int("conn_reuse_mode") == 0


def test_write_is_atomic(tmp_path: Path) -> None:
    target = tmp_path / "capture.tar.gz"
    target.write_bytes(b"previous archive")

    def failing() -> contextlib.AbstractContextManager[IO[str]]:
        raise RuntimeError("interrupted")

    capture = Capture(files={InputKind.SYSCTL: CaptureFile(InputKind.SYSCTL, "/proc/sys", failing)})
    with pytest.raises(RuntimeError):
        write(capture, target)
    assert target.read_bytes() == b"previous archive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture.tar.gz"]
    good = Capture(
        files={InputKind.SYSCTL: CaptureFile(InputKind.SYSCTL, "x", text_opener("a.b = 1\n"))}
    )
    assert write(good, target) == target
    assert tarfile.is_tarfile(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capture.tar.gz"]


class _Generated(io.TextIOBase):
    """A large connection table produced as it is read (never all in memory)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.done = 0
        self.pending = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires\n"

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> str:
        want = size if size is not None and size >= 0 else 1 << 62
        while len(self.pending) < want and self.done < self.rows:
            batch = min(1000, self.rows - self.done)
            self.pending += "".join(
                f"TCP 0AF4{i % 65536:04X} {i % 65536:04X} 0A600001 01BB C0A8010A 192B "
                "ESTABLISHED     899\n"
                for i in range(self.done, self.done + batch)
            )
            self.done += batch
        out, self.pending = self.pending[:want], self.pending[want:]
        return out


def test_big_inputs_are_streamed_not_held_in_memory(tmp_path: Path) -> None:
    rows = 300_000  # about 20 MB of text

    @contextlib.contextmanager
    def generated() -> Iterator[IO[str]]:
        yield _Generated(rows)  # type: ignore[misc]

    capture = Capture(
        files={
            InputKind.PROC_IP_VS_CONN: CaptureFile(
                InputKind.PROC_IP_VS_CONN, "/proc/net/ip_vs_conn", generated
            )
        }
    )
    tracemalloc.start()
    try:
        archive = write(capture, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    with tarfile.open(archive) as tar:
        member = tar.getmember("ipvslab-capture/proc/net/ip_vs_conn")
    assert member.size > 15 << 20
    with capture_from([str(archive)]).files[InputKind.PROC_IP_VS_CONN].open() as stream:
        assert sum(1 for _ in stream) == rows + 1


def test_unpacked_archive_directory_reads_the_same(tmp_path: Path) -> None:
    root = make_node_root(tmp_path / "node")
    live = capture_live(root, exec_version=False)
    archive = write(live, tmp_path)
    unpacked = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(unpacked, filter="data")
    for path in (unpacked, unpacked / "ipvslab-capture"):
        back = capture_from([str(path)])
        assert back.ipvs_present is True and back.notes == live.notes
        assert parsed_fields(snapshot_from_capture(back)) == parsed_fields(
            snapshot_from_capture(live)
        )
