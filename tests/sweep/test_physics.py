"""What a sweep shows about the kernel, from the kernel's documented behaviour.

A client with a range of 40 local ports opens short connections to a Service; the
server closes first, so IPVS keeps each entry in TIME_WAIT for 120 s while the
client may use the port again at once. connect() on 4.6+ kernels walks the even
ports first (client-tcp-ports.md), so the first 20 connections use fresh ports and
every later one in a 20 s run reuses a port whose entry is still in TIME_WAIT.

- On 4.19 with conn_reuse_mode=1 and conntrack=1 (kube-proxy sets conntrack; the
  sweep sets the mode), f719e3754 drops the first SYN of such a reused port: the
  client connects after its 1 s retransmission (kubernetes#70747).
- 5.10 carries f0a5e4d7 (v5.9): the same reuse is rescheduled without the drop.
So sweeping the client rate, the drop count is zero below 20 connections, then
counts every reuse, on 4.19 only.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from ipvslab.sweep import executors

from .support import kernels_by_rate, load, sweep_into

SWEEP = kernels_by_rate("20s", "[0.5, 2, 8]")


def test_sweeping_client_rate_finds_the_first_syn_drop_on_4_19_and_not_on_5_10(
    tmp_path: Path,
) -> None:
    frame = sweep_into(tmp_path, load(tmp_path, SWEEP), executors.local(2)).table
    assert frame.height == 6
    fresh_ports = 20  # the even half of 40000-40039
    for row in frame.iter_rows(named=True):
        reused = max(0, row["connections"] - fresh_ports)
        # Every connection past the fresh ports met its port's entry in TIME_WAIT.
        assert row["reused_port"] == reused, row
        if row["cluster.kernel"] == "4.19":
            assert row["first_syn_dropped"] == reused, row
        else:
            assert row["first_syn_dropped"] == 0, row
        # A drop costs the retransmission timeout, never a failed connection.
        assert row["error_rate"] == 0.0
        assert (row["connect_ms.p99"] >= 1000) == (row["first_syn_dropped"] > 0), row
    old = frame.filter(pl.col("cluster.kernel") == "4.19").sort("clients.0.load.rate")
    # 0.5/s for 20 s: about 10 connections, all on fresh ports; 8/s: about 160.
    assert old["first_syn_dropped"].to_list()[0] == 0
    assert 100 <= old["first_syn_dropped"].to_list()[-1] <= 200
    assert old["first_syn_dropped"].is_sorted()
