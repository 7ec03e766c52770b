"""capture_from: what users hand over with --from (pasted files, stdin, directories, archives)."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipvslab.doctor.archive import write_archive
from ipvslab.doctor.capture import (
    Capture,
    InputKind,
    capture_from,
    capture_from_layout,
    snapshot_from_capture,
)
from ipvslab.doctor.live import capture_live

from .test_live import make_node_root

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "doctor"
CAPTURES = FIXTURES / "captures"


def kinds(capture: Capture) -> dict[InputKind, str]:
    return {kind: file.source for kind, file in capture.files.items()}


def test_directory_of_pasted_files_is_sniffed() -> None:
    ticket = CAPTURES / "ticket-pasted"
    capture = capture_from([str(ticket)])
    assert kinds(capture) == {
        InputKind.IPVSADM_LIST: str(ticket / "ipvs from customer.txt"),
        InputKind.IPVSADM_CONN: str(ticket / "conns.log"),
        InputKind.SYSCTL: str(ticket / "node1-sysctl"),
    }
    assert capture.problems == () and capture.ipvs_present is None and not capture.live
    snap = snapshot_from_capture(capture)
    assert snap.ipvs is not None and len(snap.ipvs.services) == 6
    assert snap.conns is not None and snap.conns.total == 5
    assert snap.sysctl_int("conn_reuse_mode") == 1
    # The sysctl -a fixture has a `sysctl: permission denied` line: named by file and line.
    assert [(i.source, i.line_no) for i in snap.issues] == [(str(ticket / "node1-sysctl"), 6)]


def test_single_files_and_stdin() -> None:
    pasted = (FIXTURES / "ipvsadm_list.txt").read_text()
    capture = capture_from(
        [str(FIXTURES / "proc_ip_vs_conn.txt"), "-", str(FIXTURES / "kube_proxy_configmap.yaml")],
        stdin=io.StringIO(pasted),
    )
    assert kinds(capture) == {
        InputKind.PROC_IP_VS_CONN: str(FIXTURES / "proc_ip_vs_conn.txt"),
        InputKind.IPVSADM_LIST: "<stdin>",
        InputKind.KUBE_PROXY_CONFIG: str(FIXTURES / "kube_proxy_configmap.yaml"),
    }
    snap = snapshot_from_capture(capture)
    assert snap.ipvs is not None and snap.sources["ipvsadm-Ln.txt"] == "<stdin>"
    assert snap.kube_proxy is not None and snap.kube_proxy.settings.cluster_cidr == "10.244.0.0/16"
    # Opened twice (sniff, parse) and parsed again: stdin was kept.
    assert snapshot_from_capture(capture).ipvs == snap.ipvs


def test_stdin_with_undecodable_bytes_is_read() -> None:
    raw = b"net.ipv4.vs.conn_reuse_mode = 1\nkernel.hostname = n\xff\xfe1\n"
    stdin = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8")  # strict, like sys.stdin
    capture = capture_from(["-", "-"], stdin=stdin)
    assert kinds(capture) == {InputKind.SYSCTL: "<stdin>"}
    assert [p.message for p in capture.problems] == ["stdin was given twice; read once"]
    sysctls = snapshot_from_capture(capture).sysctls
    assert sysctls.get("kernel.hostname") == "n\ufffd\ufffd1"


def test_unknown_format_missing_path_and_empty_file(tmp_path: Path) -> None:
    notes = tmp_path / "notes.md"
    notes.write_text("# what the customer said\nit is slow sometimes\n")
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    missing = tmp_path / "nope.txt"
    capture = capture_from([str(notes), str(missing), str(empty)])
    assert capture.files == {}
    problems = {p.source: p for p in capture.problems}
    assert set(problems) == {str(notes), str(missing), str(empty)}
    assert all(p.line_no == 0 and p.field == "file" for p in capture.problems)
    assert "could not tell which input this is" in problems[str(notes)].message
    assert problems[str(missing)].message == "no such file or directory"
    assert problems[str(empty)].message == "empty input; skipped"
    assert snapshot_from_capture(capture).issues == capture.problems


def test_two_inputs_of_one_kind(tmp_path: Path) -> None:
    first = tmp_path / "a.txt"
    second = tmp_path / "b.txt"
    shutil.copy(FIXTURES / "ipvsadm_list.txt", first)
    shutil.copy(FIXTURES / "ipvsadm_81775.txt", second)
    capture = capture_from([str(first), str(second)])
    assert kinds(capture) == {InputKind.IPVSADM_LIST: str(first)}
    [problem] = capture.problems
    assert problem.source == str(second)
    assert f"a second ipvsadm -Ln input: {first} was already read" in problem.message


def test_conn_sync_is_skipped_with_a_note() -> None:
    path = FIXTURES / "proc_ip_vs_conn_sync.txt"
    capture = capture_from([str(path)])
    assert capture.files == {} and capture.problems == ()
    [note] = capture.notes
    assert note.startswith(f"{path}: this is /proc/net/ip_vs_conn_sync")


def test_gzip_compressed_file(tmp_path: Path) -> None:
    packed = tmp_path / "conns.gz"
    packed.write_bytes(gzip.compress((FIXTURES / "proc_ip_vs_conn.txt").read_bytes()))
    capture = capture_from([str(packed)])
    assert kinds(capture) == {InputKind.PROC_IP_VS_CONN: str(packed)}
    conns = snapshot_from_capture(capture).conns
    assert conns is not None and conns.total == 9


def test_pipe_is_read_once(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    text = (FIXTURES / "ipvsadm_stats.txt").read_bytes()

    def feed() -> None:
        with fifo.open("wb") as out:
            out.write(text)

    writer = threading.Thread(target=feed)
    writer.start()
    capture = capture_from([str(fifo)])
    writer.join(timeout=10)
    assert kinds(capture) == {InputKind.IPVSADM_STATS: str(fifo)}
    assert snapshot_from_capture(capture).service_stats is not None


def test_layout_directory_restores_its_manifest() -> None:
    layout = CAPTURES / "layout-no-ipvs"
    capture = capture_from([str(layout)])
    assert capture.ipvs_present is False and capture.live is False
    assert capture.notes == ("IPVS is not loaded here: /proc/net/ip_vs does not exist.",)
    assert [(p.source, p.message) for p in capture.problems] == [
        ("/proc/812/cmdline", "cannot read: Permission denied")
    ]
    assert capture.manifest["hostname"] == "node-7"
    snap = snapshot_from_capture(capture)
    assert snap.kernel_release is not None and snap.kernel_release.version == (5, 4, 0)
    assert snap.kube_proxy is not None and snap.kube_proxy.version is not None
    assert snap.sysctls.get_int("net.ipv4.tcp_tw_reuse") == 2
    assert snap.ipvs_present is False
    # The older entry point reads the same directory the same way.
    assert capture_from_layout(layout).files.keys() == capture.files.keys()
    assert capture_from_layout(layout).notes == capture.notes


def test_malformed_manifest_is_a_problem(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{\n  "ipvs_present": tru\n}\n')
    (tmp_path / "uname-r.txt").write_text("6.1.0\n")
    capture = capture_from([str(tmp_path)])
    [problem] = capture.problems
    assert (problem.source, problem.line_no) == (str(tmp_path / "manifest.json"), 2)
    assert problem.message.startswith("not valid JSON")
    assert InputKind.KERNEL_RELEASE in capture.files and capture.ipvs_present is None

    (tmp_path / "manifest.json").write_text('{"ipvs_present": "yes", "problems": [1], "notes": 2}')
    fields = [p.field for p in capture_from([str(tmp_path)]).problems]
    assert fields == ["ipvs_present", "notes", "problems[0]"]


def make_tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_someone_elses_manifest_does_not_make_a_layout(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text('{"name": "my-ticket-bundle"}\n')
    shutil.copy(FIXTURES / "ipvsadm_list.txt", tmp_path / "ipvsadm.txt")
    capture = capture_from([str(tmp_path)])
    assert kinds(capture) == {InputKind.IPVSADM_LIST: str(tmp_path / "ipvsadm.txt")}
    assert [p.source for p in capture.problems] == [str(tmp_path / "manifest.json")]


def test_layout_directory_reports_files_it_cannot_use(tmp_path: Path) -> None:
    (tmp_path / "uname-r.txt").write_text("6.1.0\n")
    (tmp_path / "proc").mkdir()
    (tmp_path / "proc/cpuinfo").write_text("x\n")
    capture = capture_from([str(tmp_path)])
    assert kinds(capture) == {InputKind.KERNEL_RELEASE: str(tmp_path / "uname-r.txt")}
    [problem] = capture.problems
    assert problem.source == str(tmp_path / "proc/cpuinfo")
    assert "could not tell which input this is" in problem.message


def test_a_ticket_directory_with_a_sysctl_txt_still_reads_its_other_files(tmp_path: Path) -> None:
    # What a user attaches to a ticket: their own file names, one of which happens to be a
    # layout path. Every file is used; none is skipped because the directory "looks like" a
    # capture.
    (tmp_path / "sysctl.txt").write_text("net.ipv4.vs.conn_reuse_mode = 0\n")
    shutil.copy(FIXTURES / "ipvsadm_list.txt", tmp_path / "ipvsadm_ln_node3.txt")
    shutil.copy(FIXTURES / "ipvsadm_conn.txt", tmp_path / "conns.log")
    (tmp_path / "uname.txt").write_text("4.15.0-213-generic\n")
    capture = capture_from([str(tmp_path)])
    assert kinds(capture) == {
        InputKind.SYSCTL: str(tmp_path / "sysctl.txt"),
        InputKind.IPVSADM_LIST: str(tmp_path / "ipvsadm_ln_node3.txt"),
        InputKind.IPVSADM_CONN: str(tmp_path / "conns.log"),
        InputKind.KERNEL_RELEASE: str(tmp_path / "uname.txt"),
    }
    assert capture.problems == ()
    snap = snapshot_from_capture(capture)
    assert snap.ipvs is not None and snap.ipvs.services and snap.conns is not None
    assert snap.kernel_release is not None and snap.kernel_release.text == "4.15.0-213-generic"


def test_a_layout_archive_sniffs_its_other_members(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "node.tgz",
        {
            "node/sysctl.txt": b"net.ipv4.vs.conntrack = 1\n",
            "node/ipvsadm.out": (FIXTURES / "ipvsadm_list.txt").read_bytes(),
            "node/notes.md": b"customer says: 1s delays since Tuesday\n",
        },
    )
    capture = capture_from([str(archive)])
    assert kinds(capture) == {
        InputKind.SYSCTL: f"{archive}:node/sysctl.txt",
        InputKind.IPVSADM_LIST: f"{archive}:node/ipvsadm.out",
    }
    assert [p.source for p in capture.problems] == [f"{archive}:node/notes.md"]


def test_archive_of_pasted_files_is_sniffed(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "ticket.tgz",
        {
            "ticket/list.txt": (FIXTURES / "ipvsadm_list.txt").read_bytes(),
            "ticket/uname": b"5.10.186-179.751.amzn2.x86_64\n",
            "ticket/readme": b"hello there, see attached\n",
        },
    )
    capture = capture_from([str(archive)])
    assert kinds(capture) == {
        InputKind.IPVSADM_LIST: f"{archive}:ticket/list.txt",
        InputKind.KERNEL_RELEASE: f"{archive}:ticket/uname",
    }
    assert [p.source for p in capture.problems] == [f"{archive}:ticket/readme"]
    snap = snapshot_from_capture(capture)
    assert snap.kernel_release is not None and snap.kernel_release.version == (5, 10, 186)


def test_flat_layout_archive(tmp_path: Path) -> None:
    archive = make_tar(
        tmp_path / "flat.tar.gz",
        {
            "./proc/net/ip_vs": (FIXTURES / "proc_ip_vs.txt").read_bytes(),
            "./sysctl.txt": b"net.ipv4.vs.expire_nodest_conn = 1\n",
            "./extra.log": b"x\n",
        },
    )
    capture = capture_from([str(archive)])
    assert kinds(capture) == {
        InputKind.PROC_IP_VS: f"{archive}:./proc/net/ip_vs",
        InputKind.SYSCTL: f"{archive}:./sysctl.txt",
    }
    assert [p.source for p in capture.problems] == [f"{archive}:./extra.log"]
    assert snapshot_from_capture(capture).sysctl_int("expire_nodest_conn") == 1


def test_directory_with_a_screenshot_and_an_archive(tmp_path: Path) -> None:
    ticket = tmp_path / "ticket"
    ticket.mkdir()
    # A PNG has NULs like a /proc cmdline: it must not be taken for kube-proxy's.
    (ticket / "a-screenshot.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\x01")
    shutil.copy(FIXTURES / "kube_proxy_cmdline.bin", ticket / "b-cmdline")
    make_tar(ticket / "c-more.tgz", {"x/ipvsadm.txt": (FIXTURES / "ipvsadm_list.txt").read_bytes()})
    capture = capture_from([str(ticket)])
    assert kinds(capture) == {
        InputKind.KUBE_PROXY_CMDLINE: str(ticket / "b-cmdline"),
        InputKind.IPVSADM_LIST: f"{ticket / 'c-more.tgz'}:x/ipvsadm.txt",
    }
    [problem] = capture.problems
    assert problem.source == str(ticket / "a-screenshot.png")
    assert problem.message.startswith("a binary file")


@pytest.fixture(scope="module")
def collected_archive(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    base = tmp_path_factory.mktemp("collected")
    live = capture_live(make_node_root(base / "node"), exec_version=False)
    archive = write_archive(
        live,
        base / "a.tar.gz",
        collected_at=datetime(2024, 1, 1, tzinfo=UTC),
        hostname="n",
        ipvslab_version="0",
    )
    return archive.read_bytes()


def test_corrupt_archives_are_problems(tmp_path: Path, collected_archive: bytes) -> None:
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"\x1f\x8b\x08\x00 this is not really gzip" * 10)
    truncated = tmp_path / "truncated.tgz"
    truncated.write_bytes(collected_archive[: len(collected_archive) // 2])
    capture = capture_from([str(garbage), str(truncated)])
    by_source = {p.source: p.message for p in capture.problems}
    assert by_source[str(garbage)].startswith("not a readable tar archive")
    assert "damaged or unreadable archive" in by_source[str(truncated)]
    snapshot_from_capture(capture)  # members before the damage: read or reported, no raise


def test_archive_damaged_inside_a_member_is_reported_when_parsed(
    tmp_path: Path, collected_archive: bytes
) -> None:
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(collected_archive)
    capture = capture_from([str(archive)])
    archive.write_bytes(collected_archive[:200])  # damaged after it was listed
    snap = snapshot_from_capture(capture)
    assert any(i.source.startswith(f"{archive}:") and i.field == "file" for i in snap.issues)


# --- never raises ---------------------------------------------------------

_NAMES = st.sampled_from(["a.txt", "b", "c.tar.gz", "d.tgz", "e.gz", "manifest.json", "f.tar"])
_FIXTURE_TEXTS = [
    p.read_bytes() for p in sorted(FIXTURES.iterdir()) if p.is_file() and p.suffix != ".md"
]
_CONTENT = st.one_of(
    st.binary(max_size=600),
    st.text(max_size=600).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from(_FIXTURE_TEXTS),
    st.tuples(st.sampled_from(_FIXTURE_TEXTS), st.binary(max_size=40), st.integers(0, 400)).map(
        lambda t: t[0][: t[2]] + t[1] + t[0][t[2] :]
    ),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.dictionaries(_NAMES, _CONTENT, max_size=5), stdin=st.text(max_size=300))
def test_any_files_never_raise(files: dict[str, bytes], stdin: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, data in files.items():
            (root / name).write_bytes(data)
        paths = [str(root / name) for name in files] + ["-", str(root / "missing")]
        for capture in (
            capture_from(paths, stdin=io.StringIO(stdin)),
            capture_from([str(root)]),
        ):
            snapshot_from_capture(capture)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_damaged_archives_never_raise(collected_archive: bytes, data: st.DataObject) -> None:
    blob = bytearray(collected_archive)
    cut = data.draw(st.integers(0, len(blob)), label="cut")
    flips = data.draw(st.lists(st.integers(0, len(blob) - 1), max_size=4), label="flips")
    for index in flips:
        blob[index] ^= 0xFF
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "capture.tar.gz"
        archive.write_bytes(bytes(blob[:cut] if data.draw(st.booleans()) else blob))
        snapshot_from_capture(capture_from([str(archive)]))


@settings(max_examples=40, deadline=None)
@given(members=st.dictionaries(st.sampled_from(list(InputKind)), _CONTENT, max_size=6))
def test_layout_archives_with_any_content_never_raise(members: dict[InputKind, bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        archive = make_tar(
            Path(tmp) / "x.tgz", {f"ipvslab-capture/{k.path}": v for k, v in members.items()}
        )
        capture = capture_from([str(archive)])
        if set(members) - {InputKind.MANIFEST}:  # a lone manifest.json may be anyone's
            assert set(capture.files) == set(members)
        snapshot_from_capture(capture)
