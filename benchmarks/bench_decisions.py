"""Decision path and connection table benchmark (prints figures, asserts nothing).

1. Memory: fills the connection table to 1,000,000 live entries (ESTABLISHED,
   from 40 client IPs) and prints bytes per live entry (tracemalloc).
2. Speed: on top of those entries, one client IP opens short connections to a
   ClusterIP with 10 real servers (rr, kernel 6.1, conn_reuse_mode=1,
   conntrack=1), picking source ports as Linux v4.6-v5.11 does (the next even
   port each time, so ports come back while IPVS still holds them in TIME_WAIT).
   Every packet (SYN, ACK, FIN, ACK from the client; SYN-ACK, FIN from the
   server) goes through the full ip_vs_in()/ip_vs_out() path. Prints packets
   (decisions) per second on one core, and the pure decide() rate.

Targets (issue #2): >= 1,000,000 decisions/s, <= 200 bytes per live entry.
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from ipvslab.kernel.conntrack import ConntrackStatus
from ipvslab.kernel.decision import ExistingEntry, decide
from ipvslab.kernel.features import KernelFeatures
from ipvslab.kernel.ipvs import IpvsKernel
from ipvslab.kernel.packet import Packet, Protocol, TcpFlags, parse_address
from ipvslab.kernel.service import VirtualService
from ipvslab.kernel.sysctls import Sysctls
from ipvslab.kernel.tcp_states import TcpState

SYN, ACK, FIN = TcpFlags.SYN, TcpFlags.ACK, TcpFlags.FIN
PORT_LOW, PORT_HIGH = 32768, 60999


def build() -> tuple[IpvsKernel, VirtualService]:
    kernel = IpvsKernel(KernelFeatures.mainline(6, 1), Sysctls(conn_reuse_mode=1, conntrack=1))
    service = kernel.add_service(
        VirtualService(Protocol.TCP, parse_address("10.96.0.10"), 80, "rr")
    )
    for i in range(10):
        kernel.add_dest(service, parse_address(f"10.244.{i}.10"), 8080)
    return kernel, service


def fill(kernel: IpvsKernel, live: int) -> float:
    """Open `live` ESTABLISHED connections (15 min timers); return bytes per entry."""
    vip = parse_address("10.96.0.10")
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    made = 0
    client_index = 0
    while made < live:
        client = parse_address(f"10.1.{client_index // 250}.{client_index % 250 + 1}")
        client_index += 1
        for port in range(1024, 65536):
            if made >= live:
                break
            kernel.receive(Packet(Protocol.TCP, client, port, vip, 80, SYN), 0)
            kernel.receive(Packet(Protocol.TCP, client, port, vip, 80, ACK), 0)
            made += 1
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / live


def stream(kernel: IpvsKernel, connections: int, rate: int) -> tuple[int, float, int, int]:
    """Short connections from one client; returns (packets, seconds, reused, dropped)."""
    vip = parse_address("10.96.0.10")
    client = parse_address("10.2.0.1")
    packets = reused = dropped = 0
    port = PORT_LOW
    step_ms = max(1, 1000 // rate)
    now = 1000
    receive, reply = kernel.receive, kernel.reply
    start = time.perf_counter()
    for _ in range(connections):
        port += 2
        if port > PORT_HIGH:
            port = PORT_LOW
        syn = Packet(Protocol.TCP, client, port, vip, 80, SYN)
        result = receive(syn, now)
        packets += 1
        if result.decision.path[0].name == "ENTRY_FOUND":
            reused += 1
        if result.dropped:
            dropped += 1
            continue
        reply(syn, SYN | ACK, now)
        receive(Packet(Protocol.TCP, client, port, vip, 80, ACK), now)
        receive(Packet(Protocol.TCP, client, port, vip, 80, FIN | ACK), now)
        reply(syn, FIN | ACK, now)
        receive(Packet(Protocol.TCP, client, port, vip, 80, ACK), now)
        packets += 5
        now += step_ms
    return packets, time.perf_counter() - start, reused, dropped


def pure_decisions(n: int) -> float:
    features = KernelFeatures.mainline(6, 1)
    sysctls = Sysctls(conn_reuse_mode=1, conntrack=1)
    entry = ExistingEntry(Protocol.TCP, TcpState.TIME_WAIT, dest_weight=1, uses_nfct=True)
    start = time.perf_counter()
    for _ in range(n):
        decide(True, entry, ConntrackStatus.NEW, sysctls, features)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--live", type=int, default=1_000_000, help="live entries to hold")
    parser.add_argument("--connections", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=500, help="client connections per second")
    args = parser.parse_args()

    kernel, service = build()
    # The IPVS connection table alone (the figure the target is about); the
    # conntrack twin, which stands for netfilter's own table, is off while filling.
    kernel.track_conntrack = False
    t0 = time.perf_counter()
    per_entry = fill(kernel, args.live)
    fill_s = time.perf_counter() - t0
    kernel.track_conntrack = True
    print(f"live entries          {len(kernel.table):>12,}")
    print(f"bytes per live entry  {per_entry:>12.1f}   (IPVS table; target <= 200)")
    print(f"fill time             {fill_s:>12.2f} s  ({args.live / fill_s:,.0f} new entries/s)")

    packets, seconds, reused, dropped = stream(kernel, args.connections, args.rate)
    print(f"stream packets        {packets:>12,}   ({args.connections:,} connections)")
    print(f"decisions per second  {packets / seconds:>12,.0f}   (target >= 1,000,000)")
    print(f"SYNs meeting an entry {reused:>12,}   dropped {dropped:,}")
    print(f"pure decide() calls/s {pure_decisions(200_000):>12,.0f}")
    counts = sorted((d.active_conns, d.inactive_conns) for d in service.destinations)
    print(f"rr spread (act, inact) min {counts[0]} max {counts[-1]}")


if __name__ == "__main__":
    main()
