"""What reading inputs safely costs: the bounded reader and the ticket-paste splitter.

Every input is read through ``doctor.bounded`` (lines cut at 64 KiB, size caps), and
pasted files up to 8 MiB are split into their outputs (``parsers.paste``). This prints
lines/s for a generated /proc/net/ip_vs_conn read plainly and through the bounded
reader, and the time to split an 8 MiB single-output file and a ticket-shaped paste.

Run: ``.venv/bin/python benchmarks/bench_input_reading.py [lines]``. Prints figures;
asserts nothing (timings depend on the machine).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from ipvslab.doctor.bounded import bounded_text
from ipvslab.doctor.parsers.paste import split_paste

HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"


def row(i: int) -> str:
    return f"TCP 0AF4{i % 65536:04X} {i % 65536:04X} 0A60000A 0050 0AF40214 1F90 ESTABLISHED 890\n"


def timed(label: str, lines: int, run: object) -> None:
    assert callable(run)
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    print(f"{label:<40} {seconds:7.3f} s  {lines / seconds / 1e6:6.2f} M lines/s")


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as where:
        path = Path(where) / "ip_vs_conn"
        with path.open("w") as out:
            out.write(HEADER)
            out.writelines(row(i) for i in range(lines))
        print(f"{lines:,} lines, {path.stat().st_size / 1e6:.0f} MB")

        def plain() -> None:
            with path.open(encoding="utf-8", errors="replace", newline="") as stream:
                sum(1 for _ in stream)

        def bounded() -> None:
            with bounded_text(path.open("rb"), source=str(path)) as stream:
                sum(1 for _ in stream)

        timed("plain text file iteration", lines, plain)
        timed("bounded reader (doctor.bounded)", lines, bounded)

        eight = path.read_text()[: 8 << 20]
        count = eight.count("\n")
        timed("split_paste, 8 MiB of one output", count, lambda: split_paste(eight))
        ticket = ("$ uname -r\n5.4.0-150-generic\n$ ipvsadm -Lnc\n" + eight[: 4 << 20]) * 2
        timed("split_paste, 8 MiB ticket paste", ticket.count("\n"), lambda: split_paste(ticket))


if __name__ == "__main__":
    main()
