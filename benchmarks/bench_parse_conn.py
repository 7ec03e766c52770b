"""Times the /proc/net/ip_vs_conn parser on a generated 1,000,000-line file.

Run: ``.venv/bin/python benchmarks/bench_parse_conn.py [lines]``. Prints figures;
asserts nothing (timings depend on the machine).
"""

from __future__ import annotations

import ipaddress
import random
import resource
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

from ipvslab.doctor.conn_summary import ConnAggregator, summarize_proc_ip_vs_conn
from ipvslab.doctor.parsers.proc_ip_vs_conn import iter_proc_ip_vs_conn
from ipvslab.doctor.records import ConnEntry, ParseIssue, Protocol
from ipvslab.doctor.render import iter_render_proc_ip_vs_conn

STATES = ["ESTABLISHED"] * 6 + ["TIME_WAIT"] * 3 + ["FIN_WAIT", "CLOSE", "SYN_RECV"]


def generate(n: int, seed: int = 1) -> Iterator[ConnEntry]:
    rng = random.Random(seed)
    clients = [ipaddress.IPv4Address(0x0AF40000 + i) for i in range(5000)]
    vips = [ipaddress.IPv4Address(0x0A600000 + i) for i in range(200)]
    # Each service has its own 10 real servers, as kube-proxy sets them up.
    dests = [ipaddress.IPv4Address(0x0AF48000 + i) for i in range(2000)]
    for i in range(n):
        udp = i % 10 == 0
        service = rng.randrange(len(vips))
        yield ConnEntry(
            Protocol.UDP if udp else Protocol.TCP,
            "UDP" if udp else "TCP",
            rng.choice(clients),
            rng.randrange(1024, 65536),
            vips[service],
            53 if udp else 80,
            None,
            dests[service * 10 + rng.randrange(10)],
            53 if udp else 8080,
            "UDP" if udp else rng.choice(STATES),
            rng.randrange(0, 900),
        )


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ip_vs_conn"
        t0 = time.perf_counter()
        with path.open("w") as f:
            f.writelines(iter_render_proc_ip_vs_conn(generate(n)))
        size_mb = path.stat().st_size / 1e6
        print(f"generated {n:,} lines ({size_mb:.1f} MB) in {time.perf_counter() - t0:.2f} s")

        issues: list[ParseIssue] = []
        with path.open() as f:
            t0 = time.perf_counter()
            count = sum(1 for _ in iter_proc_ip_vs_conn(f, str(path), issues))
            dt = time.perf_counter() - t0
        print(f"iterate entries:   {count:,} entries, {dt:.3f} s, {n / dt:,.0f} lines/s")
        if issues:
            print(f"  issues: {len(issues)} (first: {issues[0]})")

        with path.open() as f:
            t0 = time.perf_counter()
            summary = ConnAggregator().add_all(iter_proc_ip_vs_conn(f, str(path))).summary()
            dt = time.perf_counter() - t0
        print(
            f"iterate + ConnAggregator: {summary.total:,} entries, {len(summary.by_dest)} dests, "
            f"{len(summary.busiest_clients)} clients, {dt:.3f} s, {n / dt:,.0f} lines/s"
        )

        with path.open() as f:
            t0 = time.perf_counter()
            summary = summarize_proc_ip_vs_conn(f, str(path))
            dt = time.perf_counter() - t0
        print(
            f"one-pass summary:  {summary.total:,} entries, {len(summary.by_dest)} dests, "
            f"{len(summary.busiest_clients)} clients, {dt:.3f} s, {n / dt:,.0f} lines/s"
        )

        with path.open() as f:
            tracemalloc.start()
            summarize_proc_ip_vs_conn(f, str(path))
            _, peak_summary = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        print(f"peak traced memory, one-pass summary: {peak_summary / 1e6:.2f} MB (tracemalloc)")

        with path.open() as f:
            tracemalloc.start()
            for _ in iter_proc_ip_vs_conn(f, str(path)):
                pass
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
        print(f"peak traced memory while streaming: {peak / 1e6:.2f} MB (tracemalloc)")
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(f"process max RSS: {rss / 1024:.1f} MB (includes the generator)")


if __name__ == "__main__":
    main()
