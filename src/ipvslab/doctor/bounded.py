"""Bounded reading of inputs: no line, file or wait grows without limit.

Every input the doctor opens is read through a ``BoundedReader``:

* a line longer than ``MAX_LINE_BYTES`` keeps only its start (the parser then reports
  it, echoing at most a few dozen characters), so a file of NULs or one endless line
  never becomes one huge string;
* decompressed data (archive members, ``.gz`` files) and streams stop at a size cap,
  and the stop is reported as an input problem naming the input; what was read before
  it is still diagnosed;
* FIFOs and devices are waited for at most ``READ_TIMEOUT`` seconds without data.
"""

from __future__ import annotations

import io
import os
import select
from typing import IO, Protocol

from ipvslab.doctor.records import ParseIssue

# Longer lines are cut here: the longest real line (an ipvsadm -Ln service with every
# flag, a kube-proxy command line) is a few hundred bytes.
MAX_LINE_BYTES = 64 << 10
# Decompressed archive members, .gz files and pasted streams stop here: a busy node's
# /proc/net/ip_vs_conn of 3.6 M entries is about 400 MB.
DECOMPRESSED_LIMIT = 1 << 30
STREAM_LIMIT = 1 << 30
# Seconds a FIFO or device may go without data (a FIFO nobody writes to).
READ_TIMEOUT = 30.0
# Read size; never more than MAX_LINE_BYTES, so only a line crossing chunks can be too long
# and a chunk is checked with two C-level searches.
CHUNK = 1 << 16


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...

    def close(self) -> None: ...


def size_text(limit: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if limit >= 1 << shift and limit % (1 << shift) == 0:
            return f"{limit >> shift} {unit}"
    return f"{limit} bytes"


class BoundedReader(io.RawIOBase):
    """A binary stream with its lines cut at ``max_line`` bytes and its size capped.

    Reaching ``limit`` ends the stream there (EOF) and adds one issue to ``sink``.
    """

    def __init__(
        self,
        raw: Readable,
        *,
        source: str,
        limit: int | None = None,
        sink: list[ParseIssue] | None = None,
        max_line: int = MAX_LINE_BYTES,
    ) -> None:
        super().__init__()
        self._raw = raw
        self._source = source
        self._limit = limit
        self._sink = sink
        self._max_line = max_line
        self._total = 0
        self._line = 0  # bytes of the current line seen so far
        self._pending = b""
        self._eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._eof:
            chunk = self._raw.read(CHUNK)
            if not chunk:
                self._eof = True
                break
            if self._limit is not None and self._total + len(chunk) > self._limit:
                chunk = chunk[: self._limit - self._total]
                self._eof = True
                if self._sink is not None:
                    self._sink.append(
                        ParseIssue(
                            self._source,
                            0,
                            "file",
                            f"larger than {size_text(self._limit)}; read only up to there",
                        )
                    )
            self._total += len(chunk)
            self._pending = self._cut_long_lines(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _cut_long_lines(self, chunk: bytes) -> bytes:
        first = chunk.find(b"\n")
        if first < 0:  # the whole chunk continues the current line
            keep = max(0, self._max_line - self._line)
            self._line += len(chunk)
            return chunk[:keep] if keep < len(chunk) else chunk
        tail = len(chunk) - chunk.rfind(b"\n") - 1
        if self._line + first <= self._max_line and len(chunk) <= self._max_line:
            self._line = tail  # the usual case: every line in it is short enough
            return chunk
        parts = chunk.split(b"\n")
        out = [parts[0][: max(0, self._max_line - self._line)]]
        out.extend(part[: self._max_line] for part in parts[1:])
        self._line = tail
        return b"\n".join(out)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def bounded_text(
    raw: Readable,
    *,
    source: str,
    limit: int | None = None,
    sink: list[ParseIssue] | None = None,
) -> io.TextIOWrapper:
    """``raw`` as utf-8 text (bad bytes replaced), lines and size bounded."""
    reader = BoundedReader(raw, source=source, limit=limit, sink=sink)
    buffered = io.BufferedReader(reader, buffer_size=CHUNK)
    return io.TextIOWrapper(buffered, encoding="utf-8", errors="replace", newline="")


def wait_readable(fd: int, timeout: float) -> bool:
    """True when ``fd`` has data (or EOF) within ``timeout`` seconds."""
    ready, _, _ = select.select([fd], [], [], timeout)
    return bool(ready)


def open_special(path: str, timeout: float) -> IO[bytes] | None:
    """A FIFO or device opened for reading without blocking on a missing writer.

    Returns None when no data came within ``timeout`` seconds. Raises OSError when it
    cannot be opened.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not wait_readable(fd, timeout):
            os.close(fd)
            return None
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")
