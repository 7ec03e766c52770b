"""Whole-process `ipvslab doctor --from` on big generated connection tables, next to awk.

Run: ``.venv/bin/python benchmarks/bench_doctor_conn.py [--lines 1000000 3600000]
[--runs 3]``. For each size it writes a node in the capture layout (a kernel release,
an IPVS table of 200 services with 10 pods each, and /proc/net/ip_vs_conn), then runs
``ipvslab doctor --from NODE --json`` as a subprocess and prints its wall time and
peak RSS, next to a one-pass ``awk`` count of the same file per (service, real
server, state). It prints figures and asserts nothing: the targets of issue 9 are
<= 1 s for 1 M lines and <= 4 s for 3.6 M (30,000 conn/s x 120 s), peak RSS <= 500 MB,
and timings depend on the machine and on what else runs on it.

The table is shaped like a busy node: 10 % UDP (DNS), TCP mostly ESTABLISHED and
TIME_WAIT; half the entries come from 2,000 pod addresses that each hold many, the
other half from distinct outside addresses (a NodePort behind a load balancer
that keeps client addresses).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEADER = "Pro FromIP   FPrt ToIP     TPrt DestIP   DPrt State       Expires PEName PEData\n"
STATES = ["ESTABLISHED"] * 5 + ["TIME_WAIT"] * 4 + ["FIN_WAIT", "CLOSE", "SYN_RECV"]
SERVICES = 200
PODS_PER_SERVICE = 10
AWK_SUMMARY = '{n[$1" "$4" "$5" "$6" "$7" "$8]++} END {for (k in n) c++; print c " groups"}'


def write_node(root: Path, lines: int, seed: int = 9) -> Path:
    rng = random.Random(seed)
    (root / "proc" / "net").mkdir(parents=True)
    (root / "uname-r.txt").write_text("5.15.0-91-generic\n")
    table = [
        "IP Virtual Server version 1.2.1 (size=4096)\n",
        "Prot LocalAddress:Port Scheduler Flags\n",
        "  -> RemoteAddress:Port Forward Weight ActiveConn InActConn\n",
    ]
    for s in range(SERVICES):
        udp = s % 10 == 0
        table.append(
            f"{'UDP' if udp else 'TCP'}  {0x0A600000 + s:08X}:{53 if udp else 80:04X} rr\n"
        )
        for p in range(PODS_PER_SERVICE):
            dest = 0x0AF48000 + s * PODS_PER_SERVICE + p
            table.append(f"  -> {dest:08X}:{53 if udp else 8080:04X}      Masq    1      0   0\n")
    (root / "proc" / "net" / "ip_vs").write_text("".join(table))
    path = root / "proc" / "net" / "ip_vs_conn"
    with path.open("w") as out:
        out.write(HEADER)
        batch: list[str] = []
        for i in range(lines):
            s = rng.randrange(SERVICES)
            udp = s % 10 == 0
            client = 0x0AF40000 + rng.randrange(2000) if i % 2 else 0x64000000 + i
            dest = 0x0AF48000 + s * PODS_PER_SERVICE + rng.randrange(PODS_PER_SERVICE)
            if udp:
                state, vport, dport, expires = "UDP", 53, 53, rng.randrange(300)
            else:
                state, vport, dport = rng.choice(STATES), 80, 8080
                expires = rng.randrange(900 if state == "ESTABLISHED" else 120)
            batch.append(
                f"{'UDP' if udp else 'TCP'} {client:08X} {rng.randrange(1024, 65536):04X} "
                f"{0x0A600000 + s:08X} {vport:04X} {dest:08X} {dport:04X} {state:<11} "
                f"{expires:7d}\n"
            )
            if len(batch) >= 100_000:
                out.writelines(batch)
                batch.clear()
        out.writelines(batch)
    return path


def run(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one process."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[1_000_000, 3_600_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ipvslab = Path(sys.executable).with_name("ipvslab")
    awk = shutil.which("awk")
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; {args.runs} runs each")
    with tempfile.TemporaryDirectory() as tmp:
        for lines in args.lines:
            root = Path(tmp) / f"node-{lines}"
            t0 = time.perf_counter()
            conn = write_node(root, lines)
            size = conn.stat().st_size / 1e6
            print(
                f"\n{lines:,} lines ({size:.0f} MB), generated in {time.perf_counter() - t0:.1f} s"
            )
            doctor = [str(ipvslab), "doctor", "--from", str(root), "--json"]
            figures = [run(doctor) for _ in range(args.runs)]
            walls = [w for w, _ in figures]
            rss = max(r for _, r in figures)
            print(
                f"  ipvslab doctor --from: wall min {min(walls):.2f} s, median"
                f" {statistics.median(walls):.2f} s; peak RSS {rss:.0f} MB"
            )
            if awk is not None:
                awk_walls = [run([awk, AWK_SUMMARY, str(conn)])[0] for _ in range(args.runs)]
                print(
                    f"  awk one-pass summary:  wall min {min(awk_walls):.2f} s, median"
                    f" {statistics.median(awk_walls):.2f} s"
                )
            start = [str(ipvslab), "doctor", "--from", str(root / "uname-r.txt"), "--json"]
            print(
                f"  start-up alone (a one-line input): {min(run(start)[0] for _ in range(3)):.2f} s"
            )
            shutil.rmtree(root)


if __name__ == "__main__":
    main()
