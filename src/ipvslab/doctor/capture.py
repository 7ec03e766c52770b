"""Inputs of the doctor, wherever they come from, and their parsing into a snapshot.

A ``Capture`` is a set of input files, each of a known kind, each opened lazily
as a text stream (a million-line ``ip_vs_conn`` is never held in memory). Live
nodes (``doctor.live``), ``doctor collect`` archives (``doctor.archive``),
directories and pasted files (``capture_from``) all become a ``Capture``;
``snapshot_from_capture`` parses one into a ``NodeSnapshot``.

The capture layout (archive members and directory paths, relative to its root)::

    manifest.json                 what was collected, when, and what failed
    proc/net/ip_vs                /proc/net/ip_vs
    proc/net/ip_vs_conn           /proc/net/ip_vs_conn
    proc/net/ip_vs_stats          /proc/net/ip_vs_stats
    sysctl.txt                    net.ipv4.vs.* and friends, in `sysctl -a` form
    uname-r.txt                   the kernel release (/proc/sys/kernel/osrelease)
    proc/version                  /proc/version (Debian prints the stable version there)
    proc/version_signature        Ubuntu's /proc/version_signature (the stable version)
    etc/os-release                /etc/os-release
    kube-proxy/cmdline            /proc/<pid>/cmdline of kube-proxy (NUL-separated)
    kube-proxy/config.yaml        its --config file (KubeProxyConfiguration)
    kube-proxy/version.txt        `kube-proxy --version`
    ipvsadm-Ln.txt, ipvsadm-Ln-stats.txt, ipvsadm-Lnc.txt   pasted ipvsadm output
    ipvsadm-timeout.txt           `ipvsadm -L --timeout` (the kernel's current timeouts)

An archive keeps these under one top directory (``ipvslab-capture/``).

``capture_from`` reads what a user hands over (``--from``): ``-`` (stdin), a
directory or tar archive in the layout (files outside the layout are sniffed, never
skipped), any other directory or archive (every file in it is sniffed), or single
files (sniffed; gzip-compressed files too).
Nothing it meets raises: a missing path, an unknown format, a damaged archive or
a second input of a kind already read becomes a ``problems`` entry naming the file.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import lzma
import os
import posixpath
import stat
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import IO, Any, BinaryIO, TextIO

from ipvslab.doctor.bounded import (
    DECOMPRESSED_LIMIT,
    READ_TIMEOUT,
    STREAM_LIMIT,
    bounded_text,
    open_special,
    size_text,
    wait_readable,
)
from ipvslab.doctor.conn_summary import (
    ConnSummary,
    state_timeouts_of,
    summarize_conns,
    summarize_proc_ip_vs_conn,
)
from ipvslab.doctor.parsers import (
    DoctorFormat,
    iter_ipvsadm_conn,
    parse_ipvsadm_list,
    parse_ipvsadm_stats,
    parse_ipvsadm_timeout,
    parse_kernel_release,
    parse_kube_proxy_cmdline,
    parse_kube_proxy_config,
    parse_kube_proxy_version,
    parse_os_release,
    parse_proc_ip_vs,
    parse_proc_ip_vs_stats,
    parse_proc_version,
    parse_sysctl,
    parse_version_signature,
    sniff_format,
)
from ipvslab.doctor.parsers._common import clip
from ipvslab.doctor.parsers.paste import split_paste
from ipvslab.doctor.parsers.sniff import SNIFF_LINES
from ipvslab.doctor.records import KubeProxySettings, ParseIssue, ParseResult, SysctlMap
from ipvslab.doctor.snapshot import KubeProxyInfo, NodeSnapshot
from ipvslab.doctor.wording import plural


class InputKind(Enum):
    """Each input the doctor reads; the value is its path in the capture layout."""

    MANIFEST = "manifest.json"
    PROC_IP_VS = "proc/net/ip_vs"
    PROC_IP_VS_CONN = "proc/net/ip_vs_conn"
    PROC_IP_VS_STATS = "proc/net/ip_vs_stats"
    SYSCTL = "sysctl.txt"
    KERNEL_RELEASE = "uname-r.txt"
    PROC_VERSION = "proc/version"
    VERSION_SIGNATURE = "proc/version_signature"
    OS_RELEASE = "etc/os-release"
    KUBE_PROXY_CMDLINE = "kube-proxy/cmdline"
    KUBE_PROXY_CONFIG = "kube-proxy/config.yaml"
    KUBE_PROXY_VERSION = "kube-proxy/version.txt"
    IPVSADM_LIST = "ipvsadm-Ln.txt"
    IPVSADM_STATS = "ipvsadm-Ln-stats.txt"
    IPVSADM_CONN = "ipvsadm-Lnc.txt"
    IPVSADM_TIMEOUT = "ipvsadm-timeout.txt"

    @property
    def path(self) -> str:
        return self.value


Opener = Callable[[], contextlib.AbstractContextManager[IO[str]]]

# The manifest written by ``doctor.archive.write_archive`` and read back here.
MANIFEST_FORMAT = "ipvslab-capture"
MANIFEST_VERSION = 1
MANIFEST_LIMIT = 4 << 20  # bytes; a manifest is a few KiB
ARCHIVE_TOP = "ipvslab-capture"
# How much of an input is read to tell its format (bytes, or characters of a text
# stream; SNIFF_LINES lines fit easily).
SNIFF_BYTES = 32 << 10
# stdin and pipes are read once and kept in memory up to this size, then on disk.
SPOOL_MEMORY = 8 << 20
# Pasted files up to this size are read whole, decoded (UTF-16 too) and split into the
# outputs they hold (doctor.parsers.paste); larger ones are streamed as one input.
PASTE_LIMIT = 8 << 20
# An archive member's name is echoed (in sources and problems) up to this many characters.
MEMBER_NAME_ECHO = 120
TAR_SUFFIXES = (".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
LAYOUT_PATHS: dict[str, InputKind] = {kind.path: kind for kind in InputKind}

# Sniffed format -> the input it is. PROC_IP_VS_CONN_SYNC and UNKNOWN are not inputs.
FORMAT_KINDS: dict[DoctorFormat, InputKind] = {
    DoctorFormat.PROC_IP_VS: InputKind.PROC_IP_VS,
    DoctorFormat.PROC_IP_VS_CONN: InputKind.PROC_IP_VS_CONN,
    DoctorFormat.PROC_IP_VS_STATS: InputKind.PROC_IP_VS_STATS,
    DoctorFormat.IPVSADM_LIST: InputKind.IPVSADM_LIST,
    DoctorFormat.IPVSADM_STATS: InputKind.IPVSADM_STATS,
    DoctorFormat.IPVSADM_CONN: InputKind.IPVSADM_CONN,
    DoctorFormat.IPVSADM_TIMEOUT: InputKind.IPVSADM_TIMEOUT,
    DoctorFormat.SYSCTL: InputKind.SYSCTL,
    DoctorFormat.OS_RELEASE: InputKind.OS_RELEASE,
    DoctorFormat.KERNEL_RELEASE: InputKind.KERNEL_RELEASE,
    DoctorFormat.PROC_VERSION: InputKind.PROC_VERSION,
    DoctorFormat.VERSION_SIGNATURE: InputKind.VERSION_SIGNATURE,
    DoctorFormat.KUBE_PROXY_CMDLINE: InputKind.KUBE_PROXY_CMDLINE,
    DoctorFormat.KUBE_PROXY_CONFIG: InputKind.KUBE_PROXY_CONFIG,
    DoctorFormat.KUBE_PROXY_VERSION: InputKind.KUBE_PROXY_VERSION,
}
_KIND_LABELS: dict[InputKind, str] = {kind: fmt.value for fmt, kind in FORMAT_KINDS.items()}
_KIND_LABELS[InputKind.MANIFEST] = "capture manifest"

# What damaged compressed data raises while it is read (OSError aside).
_DATA_ERRORS: tuple[type[Exception], ...] = (
    EOFError,
    zlib.error,
    lzma.LZMAError,
    tarfile.TarError,
)
_READ_ERRORS: tuple[type[Exception], ...] = (OSError, *_DATA_ERRORS)


def kind_label(kind: InputKind) -> str:
    """How messages name an input kind: ``ipvsadm -Ln``, ``/proc/net/ip_vs``."""
    return _KIND_LABELS.get(kind, kind.path)


@dataclass(frozen=True)
class CaptureFile:
    kind: InputKind
    source: str  # what error messages name: a path, "archive.tgz:proc/net/ip_vs", "<stdin>"
    open: Opener


@dataclass(frozen=True)
class Capture:
    """Input files by kind, plus what could not be read at all (``problems``)."""

    files: dict[InputKind, CaptureFile] = field(default_factory=dict)
    live: bool = False
    ipvs_present: bool | None = None
    problems: tuple[ParseIssue, ...] = ()
    notes: tuple[str, ...] = ()
    manifest: dict[str, Any] = field(default_factory=dict)
    # Filled while the files are read (a size cap reached): reported with the parse issues.
    read_issues: list[ParseIssue] = field(default_factory=list)

    def with_file(self, file: CaptureFile) -> Capture:
        return replace(self, files={**self.files, file.kind: file})


def file_problem(source: str, message: str, line_no: int = 0) -> ParseIssue:
    """A problem with an input as a whole (``field`` ``file``)."""
    return ParseIssue(source, line_no, "file", message)


def os_error_text(exc: OSError) -> str:
    """``Permission denied`` rather than ``[Errno 13] Permission denied: '/x'``."""
    return exc.strerror or str(exc) or type(exc).__name__


class CaptureBuilder:
    """Collects files, problems and notes; refuses a second input of a kind."""

    def __init__(self, *, live: bool = False) -> None:
        self.files: dict[InputKind, CaptureFile] = {}
        self.problems: list[ParseIssue] = []
        self.notes: list[str] = []
        self.manifest: dict[str, Any] = {}
        self.ipvs_present: bool | None = None
        self.live = live
        self.read_issues: list[ParseIssue] = []

    def add(self, kind: InputKind, source: str, opener: Opener) -> bool:
        """Adds an input; a second one of the same kind becomes a problem (False)."""
        first = self.files.get(kind)
        if first is not None:
            self.problem(
                source,
                f"a second {kind_label(kind)} input: {first.source} was already read as one, "
                "so this one is skipped (give one per kind)",
            )
            return False
        self.files[kind] = CaptureFile(kind, source, opener)
        return True

    def problem(self, source: str, message: str, line_no: int = 0) -> None:
        self.problems.append(file_problem(source, message, line_no))

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def build(self) -> Capture:
        return Capture(
            files=dict(self.files),
            live=self.live,
            ipvs_present=self.ipvs_present,
            problems=tuple(self.problems),
            notes=tuple(self.notes),
            manifest=dict(self.manifest),
            read_issues=self.read_issues,
        )


# ---------------------------------------------------------------------------
# Openers: each returns a fresh text stream (utf-8, undecodable bytes replaced).


def path_opener(path: Path) -> Opener:
    """Opens a file as text, replacing undecodable bytes (never raises on content); lines
    are cut at ``bounded.MAX_LINE_BYTES``."""

    def opener() -> contextlib.AbstractContextManager[IO[str]]:
        return bounded_text(path.open("rb"), source=str(path))

    return opener


def text_opener(text: str) -> Opener:
    """An input held in memory (small files read once, generated text)."""

    def opener() -> contextlib.AbstractContextManager[IO[str]]:
        return io.StringIO(text, newline="")

    return opener


@contextlib.contextmanager
def _data_errors_as_os_errors(what: str) -> Iterator[None]:
    """Damaged compressed data raises EOFError, zlib.error ...: make it an OSError,
    which ``snapshot_from_capture`` reports as an unreadable file."""
    try:
        yield
    except _DATA_ERRORS as exc:
        raise OSError(f"{what} is damaged ({type(exc).__name__}: {exc})") from exc


def gzip_opener(path: Path, sink: list[ParseIssue] | None = None) -> Opener:
    """A gzip-compressed text file, decompressed as it is read (up to DECOMPRESSED_LIMIT)."""

    @contextlib.contextmanager
    def opener() -> Iterator[IO[str]]:
        raw = gzip.open(path, "rb")  # noqa: SIM115 (closed with the text stream)
        with (
            _data_errors_as_os_errors("the gzip data"),
            bounded_text(raw, source=str(path), limit=DECOMPRESSED_LIMIT, sink=sink) as stream,
        ):
            yield stream

    return opener


def member_opener(
    archive: Path, name: str, source: str = "", sink: list[ParseIssue] | None = None
) -> Opener:
    """A regular-file member of a tar archive, streamed (the archive is reopened each time)
    and capped at DECOMPRESSED_LIMIT bytes (a small .tar.gz can hold gigabytes of NULs)."""

    @contextlib.contextmanager
    def opener() -> Iterator[IO[str]]:
        with (
            _data_errors_as_os_errors(f"archive member {name}"),
            tarfile.open(archive, "r:*") as tar,
        ):
            for member in tar:
                if member.name == name and member.isfile():
                    raw = tar.extractfile(member)
                    if raw is None:
                        break
                    where = source or f"{archive}:{name}"
                    limit = DECOMPRESSED_LIMIT
                    with bounded_text(raw, source=where, limit=limit, sink=sink) as stream:
                        yield stream
                    return
            raise OSError(f"archive member {name} not found")

    return opener


def _spool_opener(spool: IO[bytes]) -> Opener:
    """A stream read once (stdin, a pipe), kept in a spooled temporary file."""

    @contextlib.contextmanager
    def opener() -> Iterator[IO[str]]:
        spool.seek(0)
        stream = bounded_text(_Unclosed(spool), source="<stream>")
        with stream:
            yield stream

    return opener


# ---------------------------------------------------------------------------
# Sniffing


def sniff_head(head: str, complete: bool = True) -> DoctorFormat:
    """The format of an input from its first ``SNIFF_BYTES`` characters.

    When ``head`` is not the whole input its last line may be cut off: it is
    dropped (unless it is the only line).
    """
    lines = head.splitlines(keepends=True)
    if not complete and len(lines) > 1:
        lines.pop()
    return sniff_format(lines[:SNIFF_LINES])


_TEXT_CONTROLS = frozenset("\t\n\r\0")


def _looks_binary(head: str) -> bool:
    """NULs (a /proc cmdline has them) along with bytes no text has: an image, a core file;
    or nothing but NULs (/dev/zero, a zeroed disk image).

    Without this the sniffer would take any binary file for a kube-proxy command line.
    """
    if "\0" not in head:
        return False
    if not head.strip("\0\n"):
        return True
    return "\ufffd" in head or any(c < " " and c not in _TEXT_CONTROLS for c in head)


def _sniffed_kind(
    builder: CaptureBuilder, source: str, head: str, complete: bool
) -> InputKind | None:
    """The input kind of a head, or None with a problem or note saying why it is skipped."""
    if _looks_binary(head):
        builder.problem(source, "a binary file, not one of the doctor's inputs; skipped")
        return None
    fmt = sniff_head(head, complete)
    if fmt is DoctorFormat.PROC_IP_VS_CONN_SYNC:
        builder.note(
            f"{source}: this is /proc/net/ip_vs_conn_sync, which the doctor does not diagnose; "
            "skipped. Give /proc/net/ip_vs_conn (or `ipvsadm -Lnc`) instead."
        )
        return None
    kind = FORMAT_KINDS.get(fmt)
    if kind is None:
        if not head.strip():
            builder.problem(source, "empty input; skipped")
        else:
            builder.problem(
                source,
                "could not tell which input this is (expected /proc/net/ip_vs*, ipvsadm -Ln / "
                "-Lnc / --stats, sysctl -a, uname -r, /proc/version, /proc/version_signature, "
                "/etc/os-release or kube-proxy's command line, config or --version); skipped",
            )
    return kind


def _add_sniffed(
    builder: CaptureBuilder, source: str, head: str, complete: bool, opener: Opener
) -> None:
    kind = _sniffed_kind(builder, source, head, complete)
    if kind is not None:
        builder.add(kind, source, opener)


def _is_gzip(path: Path) -> bool:
    with path.open("rb") as raw:
        return raw.read(2) == b"\x1f\x8b"


def decode_input(data: bytes) -> tuple[str, bool]:
    """Text of a pasted input, and whether it needed more than plain UTF-8: UTF-16
    (PowerShell's `>` writes it, with a BOM) or a UTF-8 BOM. Undecodable bytes are
    replaced; CRLF is left to the parsers."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", "replace").removeprefix("\ufeff"), True
    sample = data[:64]
    if len(sample) >= 8 and not sample[1::2].strip(b"\0") and b"\0" not in sample[0::2]:
        return data.decode("utf-16-le", "replace"), True  # no BOM: ASCII with NULs between
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", "replace"), True
    return data.decode("utf-8", "replace"), False


def _add_paste(builder: CaptureBuilder, source: str, text: str, *, decoded: bool) -> bool:
    """A pasted text as one input per output it holds; False to read it as it is."""
    if _looks_binary(text[:SNIFF_BYTES]):
        return False
    parts = split_paste(text)
    if len(parts) >= 2:
        for part in parts:
            where = f"{source} (part from line {part.first_line})"
            _add_sniffed(builder, where, part.text, True, text_opener(part.text))
        return True
    if parts and (decoded or parts[0].text != text):  # UTF-16, a prompt or indentation
        _add_sniffed(builder, source, parts[0].text, True, text_opener(parts[0].text))
        return True
    return False


def _add_plain_file(builder: CaptureBuilder, path: Path, source: str) -> None:
    """A single file of any known format; gzip-compressed files are decompressed, small
    ones split when they hold several outputs (a ticket paste)."""
    try:
        gzipped = _is_gzip(path)
        if not gzipped and path.stat().st_size <= PASTE_LIMIT:
            data = path.read_bytes()
            text, decoded = decode_input(data)
            if _add_paste(builder, source, text, decoded=decoded):
                return
        opener = gzip_opener(path, builder.read_issues) if gzipped else path_opener(path)
        with opener() as stream:
            head = stream.read(SNIFF_BYTES)
    except OSError as exc:
        builder.problem(source, f"cannot read: {os_error_text(exc)}")
        return
    _add_sniffed(builder, source, head, len(head) < SNIFF_BYTES, opener)


class _Unclosed(io.RawIOBase):
    """The spool seen through a stream that may be closed without closing the spool."""

    def __init__(self, spool: IO[bytes]) -> None:
        super().__init__()
        self._spool = spool

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._spool.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _add_stream(
    builder: CaptureBuilder,
    stream: TextIO | BinaryIO | IO[bytes],
    source: str,
    timeout: float | None = None,
) -> None:
    """stdin, a pipe or a device: its head sniffed first (so /dev/zero or an unknown
    stream is not read on), then the rest spooled (memory, then disk) up to STREAM_LIMIT.
    With ``timeout``, each wait for data is bounded (a FIFO whose writer stalls)."""
    binary = getattr(stream, "buffer", None) if isinstance(stream, io.TextIOBase) else None
    source_stream: TextIO | BinaryIO | IO[bytes] = binary if binary is not None else stream
    fd = _fileno(source_stream) if timeout is not None else None

    def read(size: int) -> bytes:
        if fd is not None and timeout is not None and not wait_readable(fd, timeout):
            raise TimeoutError(f"no data for {timeout:g} s; stopped reading")
        chunk = source_stream.read(size)
        return chunk.encode("utf-8", "replace") if isinstance(chunk, str) else chunk

    # Lives as long as the capture's opener; removed when closed or collected.
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115
    try:
        head = b""
        while len(head) < SNIFF_BYTES:
            chunk = read(SNIFF_BYTES - len(head))
            if not chunk:
                break
            head += chunk
        text, _ = decode_input(head)
        complete = len(head) < SNIFF_BYTES
        pasted = not _looks_binary(text) and len(split_paste(text)) >= 2
        kind = None if pasted else _sniffed_kind(builder, source, text, complete)
        if kind is None and not pasted:
            spool.close()
            return
        spool.write(head)
        total = len(head)
        while chunk := read(1 << 16):
            if total + len(chunk) > STREAM_LIMIT:
                spool.write(chunk[: STREAM_LIMIT - total])
                builder.problem(
                    source, f"larger than {size_text(STREAM_LIMIT)}; read only up to there"
                )
                break
            spool.write(chunk)
            total += len(chunk)
    except (OSError, ValueError) as exc:  # ValueError: a closed stream, or strict decoding
        spool.close()
        builder.problem(source, f"cannot read: {exc}")
        return
    if total <= PASTE_LIMIT:
        spool.seek(0)
        data = spool.read()
        whole, decoded = decode_input(data)
        if _add_paste(builder, source, whole, decoded=decoded):
            spool.close()
            return
    if kind is None:
        kind = _sniffed_kind(builder, source, text, complete)
        if kind is None:
            spool.close()
            return
    builder.add(kind, source, _spool_opener(spool))


def _fileno(stream: TextIO | BinaryIO | IO[bytes]) -> int | None:
    try:
        return stream.fileno()
    except (OSError, ValueError, AttributeError):
        return None


# ---------------------------------------------------------------------------
# Layout directories and archives


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # EACCES on a parent: not one we can read
        return False


def is_our_manifest(data: bytes) -> bool:
    """A ``doctor collect`` manifest (perhaps damaged), not some other ``manifest.json``."""
    try:
        manifest = json.loads(data.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        return f'"{MANIFEST_FORMAT}"'.encode() in data
    return isinstance(manifest, dict) and manifest.get("format") == MANIFEST_FORMAT


def _is_layout(paths: Callable[[str], bool], manifest: Callable[[], bytes]) -> bool:
    """In the capture layout: it has a layout path, or a manifest.json of ours."""
    if any(paths(path) for path in LAYOUT_PATHS if path != InputKind.MANIFEST.path):
        return True
    return paths(InputKind.MANIFEST.path) and is_our_manifest(manifest())


def _is_layout_dir(root: Path) -> bool:
    def manifest() -> bytes:
        try:
            with (root / InputKind.MANIFEST.path).open("rb") as raw:
                return raw.read(MANIFEST_LIMIT)
        except OSError:
            return b""

    return _is_layout(lambda path: _is_file(root / path), manifest)


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _layout_root(root: Path) -> Path | None:
    """The directory in the capture layout: ``root`` itself, or its only subdirectory
    (an unpacked archive's ``ipvslab-capture/``)."""
    if _is_layout_dir(root):
        return root
    try:
        entries = [e for e in root.iterdir() if not e.name.startswith(".")]
    except OSError:
        return None
    if len(entries) == 1 and _is_dir(entries[0]) and _is_layout_dir(entries[0]):
        return entries[0]
    return None


def _read_manifest_file(builder: CaptureBuilder, path: Path, source: str) -> None:
    try:
        with path.open("rb") as raw:
            data = raw.read(MANIFEST_LIMIT + 1)
    except OSError as exc:
        builder.problem(source, f"cannot read: {os_error_text(exc)}")
        return
    apply_manifest(builder, data, source)


def apply_manifest(builder: CaptureBuilder, data: bytes, source: str) -> None:
    """Restores what a ``doctor collect`` manifest records: whether IPVS was present,
    the notes and the problems met while collecting. Anything malformed is a problem."""
    if len(data) > MANIFEST_LIMIT:
        builder.problem(source, f"larger than {MANIFEST_LIMIT} bytes; not read", 0)
        return
    try:
        manifest = json.loads(data.decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        builder.problem(source, f"not valid JSON: {exc.msg}", exc.lineno)
        return
    except (ValueError, RecursionError) as exc:
        builder.problem(source, f"not valid JSON: {type(exc).__name__}")
        return
    if not isinstance(manifest, dict):
        builder.problem(source, "not a JSON object; ignored")
        return
    builder.manifest = manifest

    def bad(name: str, expected: str) -> None:
        builder.problems.append(ParseIssue(source, 0, name, f"expected {expected}; ignored"))

    version = manifest.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > MANIFEST_VERSION:
        builder.note(
            f"{source}: written by a newer ipvslab (manifest format {version}, this one reads "
            f"{MANIFEST_VERSION}); read as well as possible."
        )
    present = manifest.get("ipvs_present")
    if isinstance(present, bool):
        if builder.ipvs_present is None:
            builder.ipvs_present = present
    elif present is not None:
        bad("ipvs_present", "true, false or null")
    notes = manifest.get("notes", [])
    if isinstance(notes, list) and all(isinstance(n, str) for n in notes):
        for note in notes:
            builder.note(note)
    else:
        bad("notes", "a list of strings")
    problems = manifest.get("problems", [])
    if not isinstance(problems, list):
        bad("problems", "a list")
        return
    for index, item in enumerate(problems):
        issue = _issue_from_json(item)
        if issue is None:
            bad(f"problems[{index}]", "an object with source, line_no, field and message")
        else:
            builder.problems.append(issue)


def _issue_from_json(item: object) -> ParseIssue | None:
    if not isinstance(item, dict):
        return None
    source, line_no, name, message = (
        item.get("source"),
        item.get("line_no", 0),
        item.get("field", "file"),
        item.get("message"),
    )
    if not (isinstance(source, str) and isinstance(name, str) and isinstance(message, str)):
        return None
    if not isinstance(line_no, int) or isinstance(line_no, bool) or line_no < 0:
        return None
    return ParseIssue(source, line_no, name, message)


def issue_to_json(issue: ParseIssue) -> dict[str, Any]:
    """A problem as the manifest stores it (read back by ``apply_manifest``)."""
    return {
        "source": issue.source,
        "line_no": issue.line_no,
        "field": issue.field,
        "message": issue.message,
    }


def _add_layout_dir(builder: CaptureBuilder, root: Path) -> None:
    for kind in InputKind:
        path = root / kind.path
        if not _is_file(path):
            continue
        added = builder.add(kind, str(path), path_opener(path))
        if added and kind is InputKind.MANIFEST:
            _read_manifest_file(builder, path, str(path))
    # Any other file is sniffed like a pasted one: a ticket directory that happens to
    # hold a sysctl.txt must not have its other files silently skipped.
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.relative_to(root).as_posix() not in LAYOUT_PATHS and _is_file(path):
                _add_file(builder, path, str(path))


def capture_from_layout(root: Path) -> Capture:
    """A directory in the capture layout (see the module docstring), with its manifest."""
    builder = CaptureBuilder()
    _add_layout_dir(builder, root)
    return builder.build()


def _add_sniffed_dir(builder: CaptureBuilder, root: Path) -> None:
    """Every regular file under a directory, each sniffed (sorted, links to dirs not followed)."""
    found = 0

    def walk_error(exc: OSError) -> None:
        builder.problem(exc.filename or str(root), f"cannot read: {os_error_text(exc)}")

    for dirpath, dirnames, filenames in os.walk(root, onerror=walk_error):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if _is_file(path):
                found += 1
                _add_file(builder, path, str(path))
    if not found:
        builder.problem(str(root), "no files in this directory")


def _normal_member_name(name: str) -> str:
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    return name


def _top_prefix(names: Sequence[str]) -> str:
    """``top/`` when every member sits under the one top directory, else ``""``."""
    tops = {name.split("/", 1)[0] for name in names}
    if len(tops) == 1 and all("/" in name for name in names):
        return next(iter(tops)) + "/"
    return ""


def _looks_like_tar_name(path: Path) -> bool:
    return path.name.lower().endswith(TAR_SUFFIXES)


@dataclass
class _Member:
    name: str  # as stored in the archive
    head: bytes  # the first SNIFF_BYTES (MANIFEST_LIMIT + 1 for a manifest)
    complete: bool


def _list_archive(path: Path) -> tuple[list[_Member], str | None]:
    """Regular-file members with their first bytes, in one pass; and the damage met, if any."""
    members: list[_Member] = []
    seen: set[str] = set()
    try:
        with tarfile.open(path, "r:*") as tar:
            for info in tar:
                if not info.isfile() or info.name in seen:
                    continue
                seen.add(info.name)
                raw = tar.extractfile(info)
                if raw is None:
                    continue
                is_manifest = posixpath.basename(info.name) == InputKind.MANIFEST.path
                limit = MANIFEST_LIMIT + 1 if is_manifest else SNIFF_BYTES
                with raw:
                    head = raw.read(limit)
                members.append(_Member(info.name, head, len(head) < limit))
    except _READ_ERRORS as exc:
        return members, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return members, None


def _add_archive(builder: CaptureBuilder, path: Path, source: str) -> None:
    members, damage = _list_archive(path)
    if damage is not None:
        read = f"; {plural(len(members), 'file')} before the damage were read" if members else ""
        builder.problem(source, f"damaged or unreadable archive ({damage}){read}")
    if not members:
        if damage is None:
            builder.problem(source, "the archive holds no files")
        return
    prefix = _top_prefix([_normal_member_name(m.name) for m in members])
    by_path = {_normal_member_name(m.name)[len(prefix) :]: m for m in members}
    manifest = by_path.get(InputKind.MANIFEST.path)
    if not _is_layout(lambda rel: rel in by_path, lambda: manifest.head if manifest else b""):
        for member in members:
            _add_sniffed_member(builder, path, source, member)
        return
    for kind in InputKind:
        found = by_path.get(kind.path)
        if found is None:
            continue
        member_source = f"{source}:{clip(found.name, MEMBER_NAME_ECHO)}"
        opener = member_opener(path, found.name, member_source, builder.read_issues)
        added = builder.add(kind, member_source, opener)
        if added and kind is InputKind.MANIFEST:
            apply_manifest(builder, found.head, member_source)
    for rel, member in sorted(by_path.items()):
        if rel not in LAYOUT_PATHS:  # sniffed, as in a layout directory
            _add_sniffed_member(builder, path, source, member)


def _add_sniffed_member(builder: CaptureBuilder, path: Path, source: str, member: _Member) -> None:
    _add_sniffed(
        builder,
        f"{source}:{clip(member.name, MEMBER_NAME_ECHO)}",
        member.head.decode("utf-8", "replace"),
        member.complete,
        member_opener(
            path,
            member.name,
            f"{source}:{clip(member.name, MEMBER_NAME_ECHO)}",
            builder.read_issues,
        ),
    )


def _add_path(builder: CaptureBuilder, text: str) -> None:
    path = Path(text)
    try:
        info = path.stat()
    except FileNotFoundError:
        builder.problem(text, "no such file or directory")
        return
    except OSError as exc:
        builder.problem(text, f"cannot read: {os_error_text(exc)}")
        return
    if stat.S_ISDIR(info.st_mode):
        layout = _layout_root(path)
        if layout is not None:
            _add_layout_dir(builder, layout)
        else:
            _add_sniffed_dir(builder, path)
        return
    if not stat.S_ISREG(info.st_mode):  # a pipe (`--from <(ipvsadm -Ln)`), a device
        try:
            raw = open_special(text, READ_TIMEOUT)
        except OSError as exc:
            builder.problem(text, f"cannot read: {os_error_text(exc)}")
            return
        if raw is None:
            builder.problem(
                text, f"no data within {READ_TIMEOUT:g} s (a FIFO nobody writes to?); skipped"
            )
            return
        with raw:
            _add_stream(builder, raw, text, timeout=READ_TIMEOUT)
        return
    _add_file(builder, path, text)


def _add_file(builder: CaptureBuilder, path: Path, source: str) -> None:
    """A regular file: a tar archive, or a single (possibly gzip-compressed) input."""
    try:
        is_tar = tarfile.is_tarfile(path)
    except _READ_ERRORS as exc:
        if isinstance(exc, OSError) and exc.errno is not None:
            builder.problem(source, f"cannot read: {os_error_text(exc)}")
            return
        is_tar = False
    if is_tar:
        _add_archive(builder, path, source)
    elif _looks_like_tar_name(path):
        builder.problem(source, "not a readable tar archive (damaged, truncated or not a tar file)")
    else:
        _add_plain_file(builder, path, source)


def capture_from(paths: Sequence[str], stdin: TextIO | None = None) -> Capture:
    """What the user hands over (``doctor --from``), each path one of:

    * ``-``: stdin (pasted text), sniffed;
    * a directory in the capture layout (it has ``manifest.json`` or any layout
      path, itself or in its only subdirectory): read by layout, with its manifest;
      any other file in it is sniffed;
    * any other directory: every regular file under it, sniffed;
    * a tar archive (``.tar``, ``.tgz``, ``.tar.gz`` ...; members may sit under one
      top directory): by layout when it has one, else every member sniffed;
    * any other file (or pipe): sniffed; gzip-compressed files are decompressed.

    Never raises for what it reads: unknown formats, missing paths, damaged
    archives and second inputs of a kind become ``problems`` naming the file.
    """
    builder = CaptureBuilder()
    stdin_read = False
    for text in paths:
        if text == "-":
            if stdin_read:
                builder.problem("<stdin>", "stdin was given twice; read once")
                continue
            stdin_read = True
            _add_stream(builder, stdin if stdin is not None else sys.stdin, "<stdin>")
        else:
            _add_path(builder, text)
    return builder.build()


# ---------------------------------------------------------------------------
# Parsing


def snapshot_from_capture(capture: Capture) -> NodeSnapshot:
    """Parses every input of a capture. Unreadable lines become issues, never exceptions."""
    issues: list[ParseIssue] = list(capture.problems)
    sources = {kind.path: f.source for kind, f in capture.files.items()}

    def parse(kind: InputKind, parser: Callable[..., ParseResult[Any]]) -> Any:
        file = capture.files.get(kind)
        if file is None:
            return None
        try:
            with file.open() as stream:
                result = parser(stream, file.source)
        except OSError as exc:
            issues.append(ParseIssue(file.source, 0, "file", f"cannot read: {os_error_text(exc)}"))
            return None
        except _DATA_ERRORS as exc:  # damaged compressed data, should an opener not convert it
            issues.append(ParseIssue(file.source, 0, "file", f"damaged data: {exc}"))
            return None
        issues.extend(result.issues)
        return result.value

    release = parse(InputKind.KERNEL_RELEASE, parse_kernel_release)
    proc_version = parse(InputKind.PROC_VERSION, parse_proc_version)
    signature = parse(InputKind.VERSION_SIGNATURE, parse_version_signature)
    if release is None and proc_version is not None:
        # Only /proc/version was given: it names the release too.
        release = parse_kernel_release(proc_version.release, sources["proc/version"]).value
    os_release = parse(InputKind.OS_RELEASE, parse_os_release)
    sysctls = parse(InputKind.SYSCTL, parse_sysctl) or SysctlMap()
    ipvs = parse(InputKind.PROC_IP_VS, parse_proc_ip_vs)
    listed = parse(InputKind.IPVSADM_LIST, parse_ipvsadm_list)
    stats = parse(InputKind.PROC_IP_VS_STATS, parse_proc_ip_vs_stats)
    service_stats = parse(InputKind.IPVSADM_STATS, parse_ipvsadm_stats)
    kube_proxy = _kube_proxy(capture, parse)
    settings = kube_proxy.settings if kube_proxy else KubeProxySettings()
    ipvs_timeouts = parse(InputKind.IPVSADM_TIMEOUT, parse_ipvsadm_timeout)
    timeouts = state_timeouts_of(ipvs_timeouts, settings)

    def proc_conns(stream: IO[str], source: str) -> ParseResult[ConnSummary]:
        found: list[ParseIssue] = []
        summary = summarize_proc_ip_vs_conn(stream, source, found, timeouts=timeouts)
        return ParseResult(summary, tuple(found))

    def ipvsadm_conns(stream: IO[str], source: str) -> ParseResult[ConnSummary]:
        found: list[ParseIssue] = []
        summary = summarize_conns(iter_ipvsadm_conn(stream, source, found), timeouts)
        return ParseResult(summary, tuple(found))

    conns = parse(InputKind.PROC_IP_VS_CONN, proc_conns)
    if conns is None:
        conns = parse(InputKind.IPVSADM_CONN, ipvsadm_conns)
    issues.extend(capture.read_issues)  # size caps reached while parsing
    return NodeSnapshot(
        kernel_release=release,
        proc_version=proc_version,
        version_signature=signature,
        os_release=os_release,
        sysctls=sysctls,
        ipvs=ipvs if ipvs is not None else listed,
        stats=stats,
        service_stats=service_stats,
        conns=conns,
        kube_proxy=kube_proxy,
        ipvs_timeouts=ipvs_timeouts,
        ipvs_present=capture.ipvs_present,
        sources=sources,
        issues=tuple(issues),
        notes=capture.notes,
    )


def _kube_proxy(capture: Capture, parse: Callable[..., Any]) -> KubeProxyInfo | None:
    cmdline = parse(InputKind.KUBE_PROXY_CMDLINE, parse_kube_proxy_cmdline)
    config = parse(InputKind.KUBE_PROXY_CONFIG, parse_kube_proxy_config)
    version = parse(InputKind.KUBE_PROXY_VERSION, parse_kube_proxy_version)
    if cmdline is None and config is None and version is None:
        return None
    flags = cmdline.settings if cmdline is not None else KubeProxySettings()
    base = config if config is not None else KubeProxySettings()
    # A flag given on the command line wins over the config file's value.
    merged = KubeProxySettings(
        **{
            name: getattr(flags, name) if getattr(flags, name) is not None else getattr(base, name)
            for name in KubeProxySettings.__dataclass_fields__
        }
    )
    source = capture.files.get(InputKind.KUBE_PROXY_CMDLINE) or capture.files.get(
        InputKind.KUBE_PROXY_CONFIG
    )
    return KubeProxyInfo(
        settings=merged,
        version=version,
        argv=cmdline.argv if cmdline is not None else (),
        flags=dict(cmdline.flags) if cmdline is not None else {},
        source=source.source if source is not None else "",
    )
