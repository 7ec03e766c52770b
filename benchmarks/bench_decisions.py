"""Decision path and connection table benchmark (prints figures, asserts nothing).

Scenario: a ClusterIP with 10 real servers (rr, kernel 6.1, conn_reuse_mode=1,
conntrack=1).

1. Table: 1,000,000 live ESTABLISHED entries (40 client IPs, SYN then ACK each,
   at time 0, the conntrack twin off: the IPVS table alone). Bytes per live entry
   by tracemalloc (everything the fill left allocated, after a collection), and
   the growth of resident memory per entry for comparison.
2. Speed: on top of those entries, one client IP opens short connections, picking
   source ports as Linux v4.6-v5.11 does (the next even port each time, so ports
   come back while IPVS still holds them in TIME_WAIT). Every packet (SYN, ACK,
   FIN-ACK, ACK from the client; SYN-ACK, FIN-ACK from the server) goes through
   the full ip_vs_in()/ip_vs_out() path: lookup, reuse decision, scheduling when
   needed, state transition, timer, counters, conntrack twin. One decision is one
   such packet. The packets are built before the clock starts (building Packet
   objects is the traffic generator's work, not IPVS's). The first half of the
   connections goes one packet per receive()/reply() call, the second half
   through receive_batch(); the 1M fill entries' first timers (SYN_RECV, 60 s)
   are reached before the clock starts, so that deferred fill work is not
   charged to either half.
3. decide() alone, the pure per-packet decision function, in a loop.

The figures are printed for the kernel as installed (compiled by setup.py with
mypyc unless the install fell back to pure Python; the first line says which)
and, unless --no-compiled, for the kernel modules compiled on their own
(benchmarks/build_compiled.py builds them into build/compiled).

Targets (issue "kernel twin"): >= 1,000,000 decisions/s on one core, <= 200 bytes
per live entry.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

from ipvslab.kernel import connection as connection_module
from ipvslab.kernel import ipvs as ipvs_module
from ipvslab.kernel.conntrack import ConntrackStatus
from ipvslab.kernel.decision import ExistingEntry, StepKind, decide
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.ipvs import IpvsKernel, PacketResult
from ipvslab.kernel.packet import Packet, Protocol, TcpFlags, parse_address
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import TcpState

SYN, ACK, FIN = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN
PORT_LOW, PORT_HIGH = 32768, 60999
VIP = parse_address("10.96.0.10")
CHILD_ENV = "IPVSLAB_BENCH_COMPILED_CHILD"

Event = tuple[Packet, int, TcpFlags | None]


def build() -> tuple[IpvsKernel, VirtualService]:
    kernel = IpvsKernel(KernelFeatures.mainline(6, 1), Sysctls(conn_reuse_mode=1, conntrack=1))
    service = kernel.add_service(VirtualService(Protocol.TCP, VIP, 80, "rr"))
    for i in range(10):
        kernel.add_dest(service, parse_address(f"10.244.{i}.10"), 8080)
    return kernel, service


def fill(kernel: IpvsKernel, live: int) -> None:
    """Open ``live`` ESTABLISHED connections (SYN, ACK at time 0; 15 min timers)."""
    made = 0
    client_index = 0
    while made < live:
        client = parse_address(f"10.1.{client_index // 250}.{client_index % 250 + 1}")
        client_index += 1
        events: list[Event] = []
        for port in range(1024, 65536):
            if made >= live:
                break
            events.append((Packet(Protocol.TCP, client, port, VIP, 80, SYN), 0, None))
            events.append((Packet(Protocol.TCP, client, port, VIP, 80, ACK), 0, None))
            made += 1
        kernel.receive_batch(events)


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_resident_bytes() -> int:
    """VmHWM: this process image's peak RSS (ru_maxrss would carry a parent's over exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def fill_rss(kernel: IpvsKernel, live: int) -> tuple[float, float]:
    """Fill; returns (seconds, resident memory growth per live entry)."""
    gc.collect()
    before = resident_bytes()
    start = time.perf_counter()
    fill(kernel, live)
    seconds = time.perf_counter() - start
    gc.collect()
    return seconds, (resident_bytes() - before) / live


def fill_traced(live: int) -> float:
    """Bytes per live entry of a fresh kernel's table, by tracemalloc."""
    kernel, _ = build()
    kernel.track_conntrack = False
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    fill(kernel, live)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    per_entry = (after - before) / len(kernel.table)
    del kernel
    gc.collect()
    return per_entry


def stream_events(connections: int, rate: int, now: int) -> list[Event]:
    """Short connections from one client, ports reused as Linux v4.6-v5.11 picks them."""
    client = parse_address("10.2.0.1")
    packets: dict[tuple[int, TcpFlags], Packet] = {}

    def packet(port: int, flags: TcpFlags) -> Packet:
        found = packets.get((port, flags))
        if found is None:
            found = packets[(port, flags)] = Packet(Protocol.TCP, client, port, VIP, 80, flags)
        return found

    step_ms = max(1, 1000 // rate)
    port = PORT_LOW
    events: list[Event] = []
    for _ in range(connections):
        port += 2
        if port > PORT_HIGH:
            port = PORT_LOW
        syn = packet(port, SYN)
        events.append((syn, now, None))
        events.append((syn, now, SYN | ACK))
        events.append((packet(port, ACK), now, None))
        events.append((packet(port, FIN | ACK), now, None))
        events.append((syn, now, FIN | ACK))
        events.append((packet(port, ACK), now, None))
        now += step_ms
    return events


def run_one_by_one(kernel: IpvsKernel, events: list[Event]) -> tuple[float, list[object]]:
    receive, reply = kernel.receive, kernel.reply
    results: list[object] = []
    append = results.append
    start = time.perf_counter()
    for packet, now, flags in events:
        if flags is None:
            append(receive(packet, now))
        else:
            append(reply(packet, flags, now))
    return time.perf_counter() - start, results


def run_batches(kernel: IpvsKernel, events: list[Event], size: int) -> tuple[float, list[object]]:
    results: list[object] = []
    start = time.perf_counter()
    for first in range(0, len(events), size):
        results.extend(kernel.receive_batch(events[first : first + size]))
    return time.perf_counter() - start, results


def syn_counts(events: list[Event], results: list[object]) -> tuple[int, int]:
    """(client SYNs that met an entry, packets dropped)."""
    met = dropped = 0
    for (packet, _, reply), result in zip(events, results, strict=True):
        if isinstance(result, PacketResult):
            if reply is None and packet.flags == SYN:
                met += result.decision.path[0] is StepKind.ENTRY_FOUND
            dropped += result.dropped
    return met, dropped


def pure_decisions(n: int) -> float:
    features = KernelFeatures.mainline(6, 1)
    sysctls = Sysctls(conn_reuse_mode=1, conntrack=1)
    entry = ExistingEntry(Protocol.TCP, TcpState.TIME_WAIT, dest_weight=1, uses_nfct=True)
    start = time.perf_counter()
    for _ in range(n):
        decide(True, entry, ConntrackStatus.NEW, sysctls, features)
    return n / (time.perf_counter() - start)


def is_compiled() -> bool:
    return all(not (m.__file__ or "").endswith(".py") for m in (ipvs_module, connection_module))


def figures(args: argparse.Namespace) -> None:
    kind = "mypyc-compiled" if is_compiled() else "pure Python"
    print(f"kernel twin           {kind}, CPython {platform.python_version()}")

    kernel, service = build()
    kernel.track_conntrack = False  # the IPVS table alone while filling
    fill_s, rss_per_entry = fill_rss(kernel, args.live)
    kernel.track_conntrack = True
    print(f"live entries          {len(kernel.table):>12,}")
    print(
        f"fill time             {fill_s:>12.2f} s  "
        f"({2 * args.live / fill_s:,.0f} packets/s through receive_batch)"
    )
    print(f"RSS growth per entry  {rss_per_entry:>12.1f}   bytes (resident memory over the fill)")

    # Reach the fill entries' first timers (60 s) before the clock starts.
    start_ms = 61_000
    kernel.advance(start_ms)
    events = stream_events(args.connections, args.rate, start_ms + 1)
    half = len(events) // 12 * 6  # whole connections in each half
    plain_s, plain_results = run_one_by_one(kernel, events[:half])
    batch_s, batch_results = run_batches(kernel, events[half:], args.batch)
    reused, dropped = syn_counts(events, plain_results + batch_results)
    print(f"stream packets        {len(events):>12,}   ({args.connections:,} connections)")
    print(
        f"decisions per second  {half / plain_s:>12,.0f}   one packet per receive()/reply() call"
        "  (target >= 1,000,000)"
    )
    print(
        f"decisions per second  {(len(events) - half) / batch_s:>12,.0f}   "
        f"receive_batch(), {args.batch:,} packets per call"
    )
    print(f"SYNs meeting an entry {reused:>12,}   dropped {dropped:,}")
    print(f"pure decide() calls/s {pure_decisions(args.decide):>12,.0f}")
    counts = sorted((d.active_conns, d.inactive_conns) for d in service.destinations)
    print(f"rr spread (act, inact) min {counts[0]} max {counts[-1]}")
    print(f"live entries at end   {len(kernel.table):>12,}")
    peak = peak_resident_bytes()
    print(f"peak RSS              {peak / 2**20:>12,.0f} MiB  (before the tracemalloc fill)")
    del kernel, service, events, plain_results, batch_results
    gc.collect()

    per_entry = fill_traced(args.live)
    print(
        f"bytes per live entry  {per_entry:>12.1f}   (IPVS table, tracemalloc, "
        f"{args.live:,} live; target <= 200)"
    )


def compiled_figures(args: argparse.Namespace, argv: list[str]) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import build_compiled

    try:
        tree = build_compiled.build(quiet=True)
    except SystemExit as err:
        print(f"\n(no compiled figures: {err})")
        return
    print()
    env = dict(os.environ, PYTHONPATH=str(tree), **{CHILD_ENV: "1"})
    subprocess.run([sys.executable, __file__, *argv], env=env, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=1_000_000, help="live entries to hold")
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=500, help="client connections per second")
    parser.add_argument("--batch", type=int, default=10_000, help="packets per receive_batch()")
    parser.add_argument("--decide", type=int, default=200_000, help="decide() calls to time")
    parser.add_argument(
        "--no-compiled", action="store_true", help="skip the mypyc-compiled kernel figures"
    )
    argv = sys.argv[1:]
    args = parser.parse_args(argv)
    figures(args)
    if not args.no_compiled and not os.environ.get(CHILD_ENV):
        compiled_figures(args, argv)


if __name__ == "__main__":
    main()
