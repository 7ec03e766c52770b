"""Client port picker benchmark: connect() + close() calls per second (prints, asserts nothing).

Scenarios, each on every port-selection era (a kernel of that era):

1. uncrowded: one pod, 1,000 short connections/s to one ClusterIP:port, the
   server closes first (no client TIME_WAIT): the first port tried is free.
2. crowded: one pod, 300 connections/s, the client closes first: after 47 s every
   even port is in TIME_WAIT and each connect() walks all 14,116 of them before
   an odd port (the reference's §5.2 "spills into odd ports" case). 60 s measured
   after 120 s of warm-up.
3. exhausted: the same at 600 connections/s: both parities fill (28,232 TIME_WAITs)
   and over a minute about a fifth of the connects walk the whole range and get
   EADDRNOTAVAIL (in bursts, as the TIME_WAITs of a busy second expire together).
4. node: 100 pods on one node (one HostPorts), 30,000 connections/s in total
   round-robin to 10 Services, server closes first.

Rates are per CPU second of this process (time.process_time()), so that other
work on a shared machine disturbs them less; they are still lower when it is busy.

The simulator's budget (issue #7): about 4 million connect()+close() per run at
500,000 simulated connections/s, so one connect() plus one close() should stay
well under 2 µs.

    .venv/bin/python benchmarks/bench_client_ports.py [--connects N]
"""

from __future__ import annotations

import argparse
import gc
import platform
import resource
import sys
import time

from ipvslab.cluster.client_tcp import ClientNetns, ClientSysctls, CloseHow
from ipvslab.cluster.port_picker import ERA_COMMITS, HostPorts, PortSelection

KERNELS: dict[PortSelection, tuple[int, int, int]] = {
    PortSelection.GLOBAL_HINT: (3, 10, 0),
    PortSelection.GLOBAL_HINT_EVEN_START: (4, 4, 0),
    PortSelection.GLOBAL_HINT_PARITY: (4, 19, 0),
    PortSelection.PERTURB_TABLE_256: (5, 15, 0),
    PortSelection.PERTURB_TABLE_65536: (6, 1, 0),
}

SECOND = 1_000_000
CLUSTER_IP = 0x0A60000A  # 10.96.0.10
POD_BASE = 0x0AF40100  # 10.244.1.0


def one_pod(
    kernel: tuple[int, int, int], rate: int, how: CloseHow, connects: int, warmup_s: int
) -> tuple[float, int]:
    """(connect+close pairs per second, EADDRNOTAVAIL count) for one busy pod."""
    pod = ClientNetns(HostPorts(kernel, seed=1), POD_BASE + 5, ClientSysctls())
    gap = SECOND // rate
    connect = pod.connect
    close = pod.close
    now = 0
    for _ in range(warmup_s * rate):
        port = connect(CLUSTER_IP, 80, now)
        if port > 0:
            close(port, CLUSTER_IP, 80, now, how)
        now += gap
    failed = 0
    gc.collect()
    start = time.process_time()
    for _ in range(connects):
        port = connect(CLUSTER_IP, 80, now)
        if port > 0:
            close(port, CLUSTER_IP, 80, now, how)
        else:
            failed += 1
        now += gap
    elapsed = time.process_time() - start
    return connects / elapsed, failed


def node(kernel: tuple[int, int, int], connects: int) -> float:
    """connect+close pairs per second for 100 pods sharing one kernel."""
    host = HostPorts(kernel, seed=1)
    pods = [ClientNetns(host, POD_BASE + 10 + k) for k in range(100)]
    services = [(CLUSTER_IP + k, 80) for k in range(10)]
    gap = SECOND // 30_000 or 1
    now = 0
    server_first = CloseHow.SERVER_FIRST
    gc.collect()
    start = time.process_time()
    for n in range(connects):
        pod = pods[n % 100]
        daddr, dport = services[n % 7]
        port = pod.connect(daddr, dport, now)
        pod.close(port, daddr, dport, now, server_first)
        now += gap
    return connects / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connects", type=int, default=200_000, help="measured per scenario")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} ({sys.implementation.name}), {platform.machine()}")
    print(f"{args.connects:,} connect()+close() pairs measured per scenario\n")
    header = f"{'era':<28}{'scenario':<14}{'pairs/s':>12}{'µs/pair':>10}  notes"
    print(header)
    print("-" * len(header))
    for era, kernel in KERNELS.items():
        rows: list[tuple[str, float, str]] = []
        rate, _ = one_pod(kernel, 1000, CloseHow.SERVER_FIRST, args.connects, 1)
        rows.append(("uncrowded", rate, ""))
        rate, failed = one_pod(kernel, 300, CloseHow.CLIENT_FIRST, 300 * 60, 120)
        rows.append(("crowded", rate, f"{failed} EADDRNOTAVAIL of {300 * 60}"))
        rate, failed = one_pod(kernel, 600, CloseHow.CLIENT_FIRST, 600 * 60, 120)
        rows.append(("exhausted", rate, f"{failed} EADDRNOTAVAIL of {600 * 60}"))
        rows.append(("node 100 pods", node(kernel, args.connects), ""))
        for name, rate, note in rows:
            label = f"{era.name.lower()} {kernel[0]}.{kernel[1]}"
            print(f"{label:<28}{name:<14}{rate:>12,.0f}{1e6 / rate:>10.2f}  {note}")
        print(f"{'':<28}({ERA_COMMITS[era]})")
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\npeak RSS {rss_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
