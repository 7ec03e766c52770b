"""The same sweep on a Dask cluster (two worker processes on this machine, started
here) gives the table the local process pool gives: each run is a function of its
scenario alone, whichever worker ran it and in whatever order they finished."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from polars.testing import assert_frame_equal

from ipvslab.sweep import executors
from ipvslab.sweep.expand import expand
from ipvslab.sweep.runner import run_sweep

from .support import load

distributed = pytest.importorskip("distributed")

SWEEP = """
base: base.yaml
set:
  duration: 5s
grid:
  cluster.kernel: ["4.19", "5.10"]
  clients.0.load.rate: [2, 6]
seeds: 2
"""


def test_a_sweep_on_a_local_dask_cluster_equals_the_local_pool(tmp_path: Path) -> None:
    sweep = load(tmp_path, SWEEP)
    planned = expand(sweep)
    pooled = tmp_path / "pool"
    pooled.mkdir()
    local = run_sweep(sweep, planned, pooled, executors.local(2)).table
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster:
        on_dask = tmp_path / "dask"
        on_dask.mkdir()
        result = run_sweep(sweep, planned, on_dask, executors.dask(cluster.scheduler_address))
    assert result.ran == len(planned) == 8
    assert_frame_equal(result.table, local)
    assert (on_dask / "results.csv").read_text() == (pooled / "results.csv").read_text()


def test_an_unreachable_scheduler_is_a_clear_error_soon(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sweep = load(tmp_path, SWEEP)
    out = tmp_path / "out"
    out.mkdir()
    started = time.monotonic()
    with pytest.raises(executors.ExecutorError) as caught:
        run_sweep(sweep, expand(sweep), out, executors.dask(f"tcp://127.0.0.1:{port}", 1.0))
    assert time.monotonic() - started < 30
    assert str(caught.value).startswith(
        f"--scheduler tcp://127.0.0.1:{port}: cannot reach the Dask scheduler"
    )
